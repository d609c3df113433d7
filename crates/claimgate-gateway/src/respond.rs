//! The one place the gateway's own answers are made: status, JSON body, headers.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt as _, Full};

/// The body type of every response.
pub(crate) type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A body from bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// `{"message":"<reason phrase>","code":N}` with `Content-Type: application/json` and nothing
/// else.
fn bare_error(status: u16) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!(r#"{{"message":"{reason}","code":{}}}"#, status.as_u16());
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `{"message":"<reason phrase>","code":N}` with `Content-Type: application/json`, plus
/// `WWW-Authenticate` for 401/403 (RFC 6750).
pub(crate) fn error(status: u16) -> Response<Body> {
    let mut response = bare_error(status);
    let headers = response.headers_mut();
    match status {
        401 => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            );
        }
        403 => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer error="insufficient_scope""#),
            );
        }
        429 => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    response
}

/// 403 `{"message":"Forbidden","code":403}` of a usage plan: no Bearer challenge (the client
/// token is no credential).
pub(crate) fn forbidden() -> Response<Body> {
    bare_error(403)
}

/// 429 `{"message":"Too Many Requests","code":429}` with `Retry-After` in seconds.
pub(crate) fn too_many_requests(retry_after_seconds: u64) -> Response<Body> {
    let mut response = bare_error(429);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
    response
}

/// 401 for a client certificate `mutualTls` refuses: the body of every 401, but no Bearer
/// challenge (no token was judged).
pub(crate) fn client_certificate_refused() -> Response<Body> {
    bare_error(401)
}

/// 403 for a CORS preflight outside the policy (no `Access-Control-*` headers, so the browser
/// stops there).
pub(crate) fn preflight_refused() -> Response<Body> {
    bare_error(403)
}

/// 204 answering an allowed CORS preflight, with its `Access-Control-*` headers.
pub(crate) fn preflight(headers: http::HeaderMap) -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    *response.headers_mut() = headers;
    response
}

/// 405 with the methods the path allows.
pub(crate) fn method_not_allowed(allow: &[&str]) -> Response<Body> {
    let mut response = error(405);
    if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// A `STOCK_RESPONSE_BACKEND` answer.
pub(crate) fn stock(stock: &claimgate_config::StockResponse, head: bool) -> Response<Body> {
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(stock.body.clone().unwrap_or_default())
    };
    let mut response = Response::new(full(body));
    *response.status_mut() = StatusCode::from_u16(stock.status).unwrap_or(StatusCode::OK);
    for (name, value) in &stock.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}
