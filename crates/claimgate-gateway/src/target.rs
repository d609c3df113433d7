//! The request target, settled before routing: one path and one host for every reader.
//!
//! The path is normalised by [`claimgate_core::path::normalize`] (the rules and why are there),
//! the same function `claimgate check` uses, and the request's URI is rewritten to it, so
//! routing, `${request.path[...]}`, the backend request and the logs all see one form.
//!
//! The host (`request.host`: selectors, context variables) is the HTTP/2 `:authority` or an
//! absolute-form authority when the request has one, else `Host`. HTTP/2 carries no `Host`
//! header, so without this an h2 request would be judged as if it had no host (a
//! `dynamicAuthentication` selecting by host would fall to its default server): the authority is
//! copied into `Host`, and a request whose two disagree is refused, as is an HTTP/1.1 request
//! with no `Host` or with two (RFC 9112 §3.2).

use crate::logs::{ExecutionRecord, Level};
use claimgate_core::path::{normalize, PathRejection};
use http::header::HOST;
use http::uri::{PathAndQuery, Uri};
use http::{HeaderValue, Version};
use std::borrow::Cow;

/// Why a request is answered 400 before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetRejection {
    Path(PathRejection),
    Host(&'static str),
}

impl TargetRejection {
    /// The execution-log record's type.
    pub(crate) fn record_type(self) -> &'static str {
        match self {
            Self::Path(_) => "request.pathRejected",
            Self::Host(_) => "request.hostRejected",
        }
    }

    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Path(why) => why.reason(),
            Self::Host(why) => why,
        }
    }

    /// The execution-log record (WARN): the client's request, not the gateway, was at fault.
    pub(crate) fn record(self) -> ExecutionRecord {
        ExecutionRecord::new(
            self.record_type(),
            Level::Warn,
            format!("The request was refused: {}.", self.reason()),
        )
    }
}

/// Settles `parts`' host and path in place (no allocation when both are already settled).
pub(crate) fn settle(parts: &mut http::request::Parts) -> Result<(), TargetRejection> {
    settle_host(parts)?;
    let normal = match normalize(parts.uri.path()).map_err(TargetRejection::Path)? {
        Cow::Borrowed(_) => return Ok(()),
        Cow::Owned(normal) => normal,
    };
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("{normal}?{query}"),
        None => normal,
    };
    let mut uri = std::mem::take(&mut parts.uri).into_parts();
    // The normal form is made of characters a URI path accepts, so this cannot fail; if it ever
    // did, the request is refused rather than routed on a path it was not judged on.
    uri.path_and_query = Some(
        PathAndQuery::try_from(path_and_query)
            .map_err(|_| TargetRejection::Path(PathRejection::InvalidPercentEncoding))?,
    );
    parts.uri =
        Uri::from_parts(uri).map_err(|_| TargetRejection::Path(PathRejection::NotAbsolute))?;
    Ok(())
}

fn settle_host(parts: &mut http::request::Parts) -> Result<(), TargetRejection> {
    let mut hosts = parts.headers.get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(TargetRejection::Host(
            "the request has more than one Host header",
        ));
    }
    let authority = parts.uri.authority().map(|a| {
        let a = a.as_str();
        a.rsplit_once('@').map_or(a, |(_, host)| host)
    });
    match (authority, host) {
        (Some(authority), Some(host)) => {
            if !host.as_bytes().eq_ignore_ascii_case(authority.as_bytes()) {
                return Err(TargetRejection::Host(
                    "the Host header and the request's authority disagree",
                ));
            }
        }
        (Some(authority), None) => {
            let value = HeaderValue::from_str(authority).map_err(|_| {
                TargetRejection::Host("the request's authority is not a valid host")
            })?;
            parts.headers.insert(HOST, value);
        }
        (None, None) if parts.version == Version::HTTP_11 => {
            return Err(TargetRejection::Host(
                "the HTTP/1.1 request has no Host header",
            ));
        }
        (None, _) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, version: Version, hosts: &[&str]) -> http::request::Parts {
        let mut builder = http::Request::builder().uri(uri).version(version);
        for host in hosts {
            builder = builder.header(HOST, *host);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn rewrites_the_path_and_keeps_the_query() {
        let mut p = parts("/v2/public/../admin/x?a=1", Version::HTTP_11, &["h"]);
        settle(&mut p).unwrap();
        assert_eq!(p.uri, "/v2/admin/x?a=1");
        let mut p = parts("http://h/a/%2e/b", Version::HTTP_2, &[]);
        settle(&mut p).unwrap();
        assert_eq!(p.uri.path(), "/a/b");
        assert_eq!(p.uri.authority().unwrap().as_str(), "h");
    }

    #[test]
    fn refuses_bad_paths() {
        let mut p = parts("/public/..%2Fadmin", Version::HTTP_11, &["h"]);
        assert_eq!(
            settle(&mut p),
            Err(TargetRejection::Path(PathRejection::EncodedSlash))
        );
    }

    #[test]
    fn authority_becomes_the_host() {
        let mut p = parts("https://api.example:8443/x", Version::HTTP_2, &[]);
        settle(&mut p).unwrap();
        assert_eq!(p.headers[HOST], "api.example:8443");
        let mut p = parts("https://API.example/x", Version::HTTP_2, &["api.example"]);
        assert!(settle(&mut p).is_ok());
    }

    #[test]
    fn host_rules() {
        let mut p = parts("/x", Version::HTTP_11, &[]);
        assert!(matches!(settle(&mut p), Err(TargetRejection::Host(_))));
        let mut p = parts("/x", Version::HTTP_11, &["a", "b"]);
        assert!(matches!(settle(&mut p), Err(TargetRejection::Host(_))));
        let mut p = parts("https://a.example/x", Version::HTTP_2, &["b.example"]);
        assert!(matches!(settle(&mut p), Err(TargetRejection::Host(_))));
        let mut p = parts("/x", Version::HTTP_10, &[]);
        assert!(settle(&mut p).is_ok());
    }
}
