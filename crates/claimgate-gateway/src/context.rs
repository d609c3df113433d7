//! OCI context variables in strings (`${request.path[id]}`, `${request.auth[sub]}`, ...), as
//! the gateway substitutes them into backend URLs.

use claimgate_config::{ContextTable, ContextVariable, Template, TemplatePart};
use claimgate_core::path::{self, PathRejection};
use claimgate_core::Claims;
use serde_json::Value;

/// What a request offers to `${...}` expressions.
#[derive(Debug)]
pub(crate) struct RequestContext<'a> {
    /// `request.cert[client_base64]`: the client certificate `mutualTls` passed, if any.
    pub(crate) client_cert: Option<&'a str>,
    pub(crate) path_params: &'a [(String, String)],
    pub(crate) claims: Option<&'a Claims>,
    pub(crate) headers: &'a http::HeaderMap,
    pub(crate) query: Option<&'a str>,
    pub(crate) host: Option<&'a str>,
}

impl<'a> RequestContext<'a> {
    /// What `parts` offers, with the route's path parameters and the verified claims (none when
    /// authentication failed: no claim is trusted then).
    pub(crate) fn new(
        parts: &'a http::request::Parts,
        path_params: &'a [(String, String)],
        claims: Option<&'a Claims>,
    ) -> Self {
        Self {
            client_cert: parts
                .extensions
                .get::<crate::mtls::ClientCertificate>()
                .map(|c| &*c.0),
            path_params,
            claims,
            headers: &parts.headers,
            query: parts.uri.query(),
            host: parts
                .headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok()),
        }
    }

    /// The value of a variable, empty when missing (as OCI renders a missing variable).
    pub(crate) fn variable(&self, variable: &ContextVariable) -> String {
        let key = variable.key.as_deref().unwrap_or("");
        match variable.table {
            ContextTable::Path => self
                .path_params
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
            ContextTable::Auth if variable.sub_key.is_none() => self
                .claims
                .and_then(|c| c.get(key))
                .map(|value| claim_text(&value))
                .unwrap_or_default(),
            ContextTable::Headers => self
                .headers
                .get(key)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            ContextTable::Query => self
                .query
                .unwrap_or("")
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| *name == key)
                .map(|(_, v)| v.to_owned())
                .unwrap_or_default(),
            ContextTable::Host => self.host.unwrap_or_default().to_owned(),
            ContextTable::Cert => self.client_cert.unwrap_or_default().to_owned(),
            // OAuth2 session claims, subdomains and usage plans are not available in claimgate.
            _ => String::new(),
        }
    }

    /// Expands a template into a header or parameter value, as written (no encoding).
    pub(crate) fn expand(&self, template: &Template) -> String {
        let mut out = String::new();
        for part in template.parts() {
            match part {
                TemplatePart::Literal(text) => out.push_str(text),
                TemplatePart::Variable(variable) => out.push_str(&self.variable(variable)),
            }
        }
        out
    }

    /// Expands a template into a query-parameter value: variable values are percent-encoded.
    pub(crate) fn expand_query_value(&self, template: &Template) -> String {
        let mut out = String::new();
        for part in template.parts() {
            match part {
                TemplatePart::Literal(text) => out.push_str(text),
                TemplatePart::Variable(variable) => {
                    percent_encode_into(&self.variable(variable), &mut out)
                }
            }
        }
        out
    }

    /// Substitutes every `${...}` in a backend URL template, escaping each value for the part
    /// of the URL it lands in (SPEC "Request paths, headers and connections"), so that no value
    /// changes the backend path's shape, adds a query or names another host:
    /// - path: a `{param}`/`{param*}` value is already a normalised path (its `/` kept); any
    ///   other value is percent-encoded whole and refused when it holds `/` or `\` or is `.`
    ///   or `..` (backends that decode `%2F` would read a new segment);
    /// - query: every value percent-encoded whole;
    /// - host: one DNS label, and the result never a link-local address.
    ///
    /// Query values arrive percent-encoded and are decoded first, so `?p=..%2Fadmin` is the
    /// `../admin` it means. The loader has checked the template's syntax.
    pub(crate) fn expand_url(&self, template: &str) -> Result<String, PathRejection> {
        let Ok(parsed) = Template::parse(template) else {
            return Ok(template.to_owned());
        };
        let mut out = String::with_capacity(template.len());
        let mut templated_host = false;
        for part in parsed.parts() {
            let variable = match part {
                TemplatePart::Literal(text) => {
                    out.push_str(text);
                    continue;
                }
                TemplatePart::Variable(variable) => variable,
            };
            let text = self.variable(variable);
            let value: std::borrow::Cow<'_, [u8]> = match variable.table {
                ContextTable::Query => path::percent_decode(&text),
                ContextTable::Path => path::percent_decode(&text),
                _ => std::borrow::Cow::Borrowed(text.as_bytes()),
            };
            match url_part(&out) {
                UrlPart::Path if variable.table == ContextTable::Path => {
                    // Normalised with the request path: valid path data as it stands.
                    out.push_str(&text)
                }
                UrlPart::Path => path::push_path_value(&value, &mut out)?,
                UrlPart::Query => path::push_query_value(&value, &mut out),
                UrlPart::Authority => {
                    templated_host = true;
                    path::push_host_value(&value, &mut out)?
                }
            }
        }
        if templated_host && link_local_host(&out) {
            return Err(PathRejection::ValueNotHostLabel);
        }
        Ok(out)
    }
}

/// The part of a URL that text appended after `so_far` lands in. Values appended before are
/// escaped, so they never add the `/`, `?` or `#` this reads (a `{param*}` value adds `/` only
/// in the path, where it changes nothing). Before the scheme's `://` counts as the host: the
/// strictest rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlPart {
    Authority,
    Path,
    Query,
}

fn url_part(so_far: &str) -> UrlPart {
    if so_far.contains(['?', '#']) {
        return UrlPart::Query;
    }
    match so_far.find("://") {
        Some(i) if so_far[i + 3..].contains('/') => UrlPart::Path,
        _ => UrlPart::Authority,
    }
}

/// Whether a URL's host is a link-local address (169.254.0.0/16, fe80::/10: where cloud
/// metadata services answer).
fn link_local_host(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else {
        return false;
    };
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        Ok(std::net::IpAddr::V4(v4)) => v4.is_link_local(),
        Ok(std::net::IpAddr::V6(v6)) => (v6.segments()[0] & 0xffc0) == 0xfe80,
        Err(_) => false,
    }
}

/// A claim as text: strings as they are, everything else as JSON.
pub(crate) fn claim_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn percent_encode_into(value: &str, out: &mut String) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_path_auth_and_headers() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-tenant", "acme corp".parse().unwrap());
        let claims: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"sub":"../admin","n":3}"#).unwrap();
        let claims = Claims::from_map(&claims).unwrap();
        let params = vec![("id".to_owned(), "42".to_owned())];
        let context = RequestContext {
            client_cert: None,
            path_params: &params,
            claims: Some(&claims),
            headers: &headers,
            query: Some("a=1&b=2"),
            host: Some("api.example"),
        };
        assert_eq!(
            context
                .expand_url("http://b/${request.path[id]}/${request.auth[n]}/${request.headers[x-tenant]}/${request.query[b]}/${request.auth[missing]}?s=${request.auth[sub]}")
                .unwrap(),
            "http://b/42/3/acme%20corp/2/?s=..%2Fadmin"
        );
        // A claim, header or query value cannot add a segment or climb.
        for template in [
            "http://b/${request.auth[sub]}",
            "http://b/x/${request.query[p]}",
        ] {
            let params = vec![];
            let context = RequestContext {
                path_params: &params,
                claims: Some(&claims),
                headers: &headers,
                query: Some("p=..%2Fadmin"),
                host: None,
                client_cert: None,
            };
            assert_eq!(
                context.expand_url(template),
                Err(PathRejection::ValueChangesPath),
                "{template}"
            );
        }
    }

    #[test]
    fn query_values_cannot_add_a_query_and_hosts_are_labels() {
        let headers = http::HeaderMap::new();
        let params = vec![("t".to_owned(), "acme".to_owned())];
        let context = |query: &'static str| RequestContext {
            path_params: &params,
            claims: None,
            headers: &headers,
            query: Some(query),
            host: None,
            client_cert: None,
        };
        assert_eq!(
            context("p=a%3Fc%3Dd%23x").expand_url("http://b/v/${request.query[p]}"),
            Ok("http://b/v/a%3Fc%3Dd%23x".to_owned())
        );
        assert_eq!(
            context("p=a&c=d").expand_url("http://b/v?x=${request.query[p]}&y=1"),
            Ok("http://b/v?x=a&y=1".to_owned())
        );
        assert_eq!(
            context("p=1").expand_url("http://${request.path[t]}.svc.internal/x"),
            Ok("http://acme.svc.internal/x".to_owned())
        );
        assert_eq!(
            context("p=evil.example%2F").expand_url("http://${request.query[p]}.svc/x"),
            Err(PathRejection::ValueNotHostLabel)
        );
        assert_eq!(
            context("p=254").expand_url("http://169.254.169.${request.query[p]}/latest"),
            Err(PathRejection::ValueNotHostLabel)
        );
    }
}
