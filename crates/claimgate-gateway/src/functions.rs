//! `ORACLE_FUNCTIONS_BACKEND`: the request handed to a function the way Fn's HTTP gateway
//! (and so OCI API Gateway) does, and the function's answer turned back into an HTTP response.
//!
//! To the function: a `POST` to its URL (from `--functions`) with the request body as it is,
//! `Fn-Intent: httprequest` (what the FDKs look for), `Fn-Http-Method`, `Fn-Http-Request-Url`
//! (the path and query the gateway routed, after query transformations) and each request
//! header as `Fn-Http-H-<Name>` (after header transformations, with the forwarding headers an
//! HTTP backend gets; hop-by-hop headers are never passed). From the function: `Fn-Http-Status`
//! (default 200) is the status, each `Fn-Http-H-<Name>` a header (hop-by-hop and framing ones
//! dropped: the gateway frames its own answer), the body the body, at most
//! [`MAX_ANSWER_BYTES`]. A function that answers outside 2xx, cannot be reached, names an
//! invalid status or answers too much is the gateway's failure: 502.

use crate::proxy::{BackendError, HOP_BY_HOP};
use crate::respond::Body;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use std::time::Duration;

/// The most a function may answer: OCI Functions' own limit on a response payload (6 MB).
pub(crate) const MAX_ANSWER_BYTES: usize = 6 * 1024 * 1024;

/// How long a function may take to answer in full: Fn's default function timeout.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);

const PREFIX: &str = "fn-http-h-";

/// Headers a function's `Fn-Http-H-*` never sets besides [`HOP_BY_HOP`]: the answer's framing
/// (the gateway frames the body it relays; a function's `Content-Length` would desynchronise
/// the client connection) and a proxy's challenge.
const NEVER_COPIED: [&str; 2] = ["content-length", "proxy-authenticate"];

/// Why a function gave no usable answer.
#[derive(Debug)]
pub(crate) enum FunctionFailure {
    /// It could not be called (refused, DNS, TLS, timeout) or the client's body failed.
    Call(BackendError),
    /// It answered outside 2xx (Fn answers 5xx when a function fails).
    Status(StatusCode),
    /// `Fn-Http-Status` is not a status in 200..=599.
    InvalidStatus(String),
    /// The answer is above [`MAX_ANSWER_BYTES`].
    TooLarge,
    /// The answer's body failed while it was read.
    Body(String),
}

impl FunctionFailure {
    /// 400/413 when the client's body was at fault, else 502.
    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::Call(error @ BackendError::ClientBody { .. }) => error.status(),
            _ => 502,
        }
    }

    /// A short cause token for the record.
    pub(crate) fn cause(&self) -> &'static str {
        match self {
            Self::Call(error) => error.token(),
            Self::Status(_) => "FUNCTION_ERROR",
            Self::InvalidStatus(_) => "INVALID_STATUS",
            Self::TooLarge => "RESPONSE_TOO_LARGE",
            Self::Body(_) => "RESPONSE_BODY_FAILED",
        }
    }

    pub(crate) fn detail(&self) -> String {
        match self {
            Self::Call(error) => error.detail(),
            Self::Status(status) => format!("the function answered {status}"),
            Self::InvalidStatus(value) => {
                format!("Fn-Http-Status '{value}' is not a status between 200 and 599")
            }
            Self::TooLarge => format!("the answer is above {MAX_ANSWER_BYTES} bytes"),
            Self::Body(detail) => format!("reading the answer failed: {detail}"),
        }
    }
}

/// Turns `inner` (the request an HTTP backend at the function's URL would get: client headers
/// after transformations, forwarding headers, the body) into the function's invocation.
/// `client_host` is the client's `Host`; `request_url` the routed path and query.
pub(crate) fn invocation(
    inner: Request<Body>,
    method: &Method,
    request_url: &str,
    client_host: Option<&HeaderValue>,
) -> Request<Body> {
    let (mut head, body) = inner.into_parts();
    let mut headers = HeaderMap::with_capacity(head.headers.len() + 8);
    for (name, value) in &head.headers {
        if matches!(*name, header::HOST | header::CONTENT_LENGTH) {
            continue;
        }
        headers.append(wrapped(name), value.clone());
    }
    if let Some(host) = client_host {
        headers.insert(wrapped(&header::HOST), host.clone());
    }
    // The POST's own framing and addressing, and what the FDKs read.
    for name in [header::HOST, header::CONTENT_LENGTH, header::CONTENT_TYPE] {
        if let Some(value) = head.headers.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    if let Some(id) = head.headers.get("opc-request-id") {
        headers.insert("opc-request-id", id.clone());
    }
    headers.insert("fn-intent", HeaderValue::from_static("httprequest"));
    headers.insert("fn-invoke-type", HeaderValue::from_static("sync"));
    headers.insert(
        "fn-http-method",
        HeaderValue::from_str(method.as_str()).unwrap_or(HeaderValue::from_static("GET")),
    );
    // The routed path is normalised and the query came in a valid request line: both are
    // valid header text; if not, the header is left out rather than the request forged.
    if let Ok(url) = HeaderValue::from_str(request_url) {
        headers.insert("fn-http-request-url", url);
    }
    head.method = Method::POST;
    head.headers = headers;
    Request::from_parts(head, body)
}

/// `Fn-Http-H-<name>` (header names are lower case in a `HeaderMap`, and always valid with
/// the prefix).
fn wrapped(name: &HeaderName) -> HeaderName {
    HeaderName::from_bytes(format!("{PREFIX}{}", name.as_str()).as_bytes())
        .expect("a valid header name with a token prefix is a valid header name")
}

/// The client's answer from the function's: status, headers and body unwrapped, the body read
/// in full (at most [`MAX_ANSWER_BYTES`], within `time_left`).
pub(crate) async fn answer(
    response: Response<Body>,
    time_left: Duration,
) -> Result<Response<Body>, FunctionFailure> {
    let (head, body) = response.into_parts();
    let (status, headers) = unwrap_head(&head)?;
    let bytes = read_body(body, time_left).await?;
    let mut response = Response::new(crate::respond::full(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// The status and headers the function's answer carries for the client.
fn unwrap_head(head: &http::response::Parts) -> Result<(StatusCode, HeaderMap), FunctionFailure> {
    if !head.status.is_success() {
        return Err(FunctionFailure::Status(head.status));
    }
    let status = match head.headers.get("fn-http-status") {
        None => StatusCode::OK,
        Some(value) => parse_status(value)?,
    };
    let declared = head
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_ANSWER_BYTES as u64) {
        return Err(FunctionFailure::TooLarge);
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &head.headers {
        let Some(inner) = name.as_str().strip_prefix(PREFIX) else {
            continue;
        };
        if inner.is_empty() || HOP_BY_HOP.contains(&inner) || NEVER_COPIED.contains(&inner) {
            continue;
        }
        if let Ok(inner) = HeaderName::from_bytes(inner.as_bytes()) {
            headers.append(inner, value.clone());
        }
    }
    // Older FDKs set the content type on the answer itself only.
    if !headers.contains_key(header::CONTENT_TYPE) {
        if let Some(content_type) = head.headers.get(header::CONTENT_TYPE) {
            headers.insert(header::CONTENT_TYPE, content_type.clone());
        }
    }
    Ok((status, headers))
}

/// `Fn-Http-Status`: a final status, 200 to 599.
fn parse_status(value: &HeaderValue) -> Result<StatusCode, FunctionFailure> {
    let text = String::from_utf8_lossy(value.as_bytes());
    match text.trim().parse::<u16>() {
        Ok(code @ 200..=599) => StatusCode::from_u16(code)
            .map_err(|_| FunctionFailure::InvalidStatus(text.chars().take(64).collect())),
        _ => Err(FunctionFailure::InvalidStatus(
            text.chars().take(64).collect(),
        )),
    }
}

/// The answer's body, at most [`MAX_ANSWER_BYTES`], within `time_left`.
async fn read_body(body: Body, time_left: Duration) -> Result<Bytes, FunctionFailure> {
    let limited = http_body_util::Limited::new(body, MAX_ANSWER_BYTES);
    // Boxed as `Send`: left generic, the collecting future's auto traits are inferred through
    // the request handler's higher-ranked lifetimes, which the compiler cannot prove `Send`.
    let collect: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<http_body_util::Collected<Bytes>, _>> + Send>,
    > = Box::pin(limited.collect());
    match tokio::time::timeout(time_left, collect).await {
        Err(_) => Err(FunctionFailure::Call(BackendError::Timeout)),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) => {
            if error.is::<http_body_util::LengthLimitError>() {
                Err(FunctionFailure::TooLarge)
            } else {
                Err(FunctionFailure::Body(error.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function_answer(headers: &[(&str, &str)], body: &'static str) -> Response<Body> {
        let mut response = Response::new(crate::respond::full(body));
        for (name, value) in headers {
            response.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        response
    }

    async fn unwrap_answer(headers: &[(&str, &str)]) -> Result<Response<Body>, FunctionFailure> {
        answer(function_answer(headers, "hi"), Duration::from_secs(5)).await
    }

    #[tokio::test]
    async fn status_and_headers_come_from_fn_http_headers_and_framing_never_does() {
        let response = unwrap_answer(&[
            ("Fn-Http-Status", "201"),
            ("Fn-Http-H-X-A", "1"),
            ("Fn-Http-H-X-A", "2"),
            ("Fn-Http-H-Transfer-Encoding", "chunked"),
            ("Fn-Http-H-Connection", "close"),
            ("Fn-Http-H-Content-Length", "999"),
            ("Fn-Http-H-", "x"),
            ("Fn-Call-Id", "abc"),
            ("Content-Type", "text/plain"),
        ])
        .await
        .unwrap();
        assert_eq!(response.status(), 201);
        let names: Vec<(&str, &str)> = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            [("x-a", "1"), ("x-a", "2"), ("content-type", "text/plain")]
        );
        assert_eq!(unwrap_answer(&[]).await.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn an_invalid_status_is_a_failure() {
        for bad in ["abc", "99", "600", "101", "", "2000"] {
            let failure = unwrap_answer(&[("Fn-Http-Status", bad)]).await.unwrap_err();
            assert!(
                matches!(failure, FunctionFailure::InvalidStatus(_)),
                "{bad}: {failure:?}"
            );
            assert_eq!(failure.status(), 502);
        }
    }
}
