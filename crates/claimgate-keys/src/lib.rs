//! Remote key material for claimgate: fetching a JWKS over HTTP(S) with bounded time and size.
//!
//! This is the I/O edge in front of the pure verdict: it turns a URI into a [`JwksParse`] or a
//! [`FetchError`] that names the cause (DNS, connect, TLS, timeout, HTTP status, content type,
//! size, parse). Caching, refresh and single-flight belong to the gateway, not here.

#![forbid(unsafe_code)]

use claimgate_jose::{parse_jwks, JwksParse};
use std::fmt;
use std::time::Duration;

/// The largest JWKS body read (256 KiB); a bigger one is refused, not truncated.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// How a fetch is bounded.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub timeout: Duration,
    pub ssl_verify_disabled: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            ssl_verify_disabled: false,
        }
    }
}

/// Why a key set could not be obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    Dns(String),
    Connect(String),
    Tls(String),
    Timeout,
    Status(u16),
    ContentType(String),
    TooLarge,
    Parse(String),
    Other(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(d) => write!(f, "DNS lookup failed ({d})"),
            Self::Connect(d) => write!(f, "connection failed ({d})"),
            Self::Tls(d) => write!(f, "TLS handshake failed ({d})"),
            Self::Timeout => f.write_str("timed out"),
            Self::Status(code) => write!(f, "HTTP status {code}"),
            Self::ContentType(ct) => write!(f, "content type '{ct}' is not JSON"),
            Self::TooLarge => write!(f, "the body is larger than {MAX_JWKS_BYTES} bytes"),
            Self::Parse(d) => f.write_str(d),
            Self::Other(d) => f.write_str(d),
        }
    }
}

impl std::error::Error for FetchError {}

fn classify(error: &reqwest::Error) -> FetchError {
    if error.is_timeout() {
        return FetchError::Timeout;
    }
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        chain.push_str(&e.to_string().to_lowercase());
        chain.push(' ');
        source = e.source();
    }
    let detail = chain.trim().to_owned();
    if chain.contains("dns")
        || chain.contains("failed to lookup")
        || chain.contains("name or service")
    {
        FetchError::Dns(detail)
    } else if chain.contains("certificate") || chain.contains("tls") || chain.contains("handshake")
    {
        FetchError::Tls(detail)
    } else if error.is_connect() {
        FetchError::Connect(detail)
    } else {
        FetchError::Other(detail)
    }
}

/// Fetches and parses a JWKS. Redirects are not followed (a key URL comes only from
/// configuration); the body is capped at [`MAX_JWKS_BYTES`].
pub async fn fetch_jwks(uri: &str, options: &FetchOptions) -> Result<JwksParse, FetchError> {
    let client = reqwest::Client::builder()
        .timeout(options.timeout)
        .connect_timeout(options.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .tls_danger_accept_invalid_certs(options.ssl_verify_disabled)
        .no_proxy()
        .build()
        .map_err(|e| FetchError::Other(e.to_string()))?;
    let mut response = client
        .get(uri)
        .header("accept", "application/json, application/jwk-set+json")
        .send()
        .await
        .map_err(|e| classify(&e))?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status().as_u16()));
    }
    if let Some(ct) = response.headers().get("content-type") {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        if !ct.contains("json") {
            return Err(FetchError::ContentType(ct));
        }
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
    {
        return Err(FetchError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e))? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    parse_jwks(&body).map_err(|e| FetchError::Parse(e.to_string()))
}
