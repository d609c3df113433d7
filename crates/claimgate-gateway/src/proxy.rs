//! `HTTP_BACKEND`: forwarding a request to the backend over pooled connections and streaming
//! both bodies, with OCI's forwarding headers and timeouts.

use crate::respond::Body;
use http::{header, HeaderName, HeaderValue, Request, Response, Uri};
use http_body_util::BodyExt as _;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Why the backend did not answer, named with OCI's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BackendError {
    Dns(String),
    Refused(String),
    Timeout,
    Tls(String),
    Other(String),
    /// Not the backend's fault: the client's body failed while it was forwarded.
    ClientBody {
        too_large: bool,
        detail: String,
    },
}

impl BackendError {
    /// OCI's failure token for the execution log.
    pub(crate) fn token(&self) -> &'static str {
        match self {
            Self::Dns(_) => "DNS_NXDOMAIN",
            Self::Refused(_) => "CONNECTION_REFUSED",
            Self::Timeout => "TIMEOUT",
            Self::Tls(_) => "HANDSHAKE_FAILED",
            Self::Other(_) => "REQUEST_ERROR",
            Self::ClientBody { .. } => "CLIENT_BODY_INVALID",
        }
    }

    /// 504 for a timeout, 413/400 for the client's body, 502 otherwise.
    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::Timeout => 504,
            Self::ClientBody {
                too_large: true, ..
            } => 413,
            Self::ClientBody { .. } => 400,
            _ => 502,
        }
    }

    pub(crate) fn detail(&self) -> String {
        match self {
            Self::Dns(d) | Self::Refused(d) | Self::Tls(d) | Self::Other(d) => d.clone(),
            Self::ClientBody { detail, .. } => detail.clone(),
            Self::Timeout => "the backend did not answer within the route's timeouts".into(),
        }
    }
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Body>;

/// Pooled clients: one verifying TLS with the system roots, one for `isSslVerifyDisabled`.
/// Each thread keeps pools of its own: a pooled connection is driven by a task of the runtime
/// that opened it, so sharing pools across serving threads (one runtime each) would hand every
/// request to another thread and back.
#[derive(Debug, Clone)]
pub(crate) struct BackendClient {
    /// Tells this client's pools apart from another's in the thread's list.
    id: u64,
    verified: rustls::ClientConfig,
    unverified: rustls::ClientConfig,
}

/// A thread's pools, by [`BackendClient::id`].
struct ThreadPools {
    id: u64,
    verified: HttpsClient,
    unverified: HttpsClient,
}

thread_local! {
    static POOLS: std::cell::RefCell<Vec<ThreadPools>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn client(tls: rustls::ClientConfig) -> HttpsClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(https)
}

impl BackendClient {
    pub(crate) fn new(extra_roots: &[Vec<u8>]) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        // Certificates the system store cannot parse are skipped, as hyper-rustls does.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        for pem in extra_roots {
            use rustls::pki_types::pem::PemObject as _;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("a --ca file is not PEM: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("a --ca certificate is not usable: {e}"))?;
            }
        }
        let verified = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let unverified = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(DangerAcceptAnyCertificate(provider)))
            .with_no_client_auth();
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Ok(Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            verified,
            unverified,
        })
    }

    /// This thread's pool for the backend's TLS setting (a handle: cloning shares the pool).
    fn pool(&self, ssl_verify_disabled: bool) -> HttpsClient {
        POOLS.with_borrow_mut(|pools| {
            let index = match pools.iter().position(|p| p.id == self.id) {
                Some(index) => index,
                None => {
                    pools.push(ThreadPools {
                        id: self.id,
                        verified: client(self.verified.clone()),
                        unverified: client(self.unverified.clone()),
                    });
                    pools.len() - 1
                }
            };
            let pools = &pools[index];
            if ssl_verify_disabled {
                pools.unverified.clone()
            } else {
                pools.verified.clone()
            }
        })
    }

    /// Sends `request` (already addressed to the backend) and waits for the response head at
    /// most `timeout`.
    pub(crate) async fn send(
        &self,
        request: Request<Body>,
        ssl_verify_disabled: bool,
        timeout: Duration,
    ) -> Result<Response<Body>, BackendError> {
        let client = self.pool(ssl_verify_disabled);
        match tokio::time::timeout(timeout, client.request(request)).await {
            Err(_) => Err(BackendError::Timeout),
            Ok(Err(error)) => Err(classify(&error)),
            Ok(Ok(response)) => Ok(response.map(|body| body.map_err(|e| e.into()).boxed())),
        }
    }
}

/// A client's request body that failed while it was forwarded: malformed (bad chunking, cut
/// short) or larger than the limit. Found in the backend call's error, it makes the failure
/// the client's (400/413), never a backend outage in the logs.
#[derive(Debug)]
pub(crate) struct ClientBodyError {
    too_large: bool,
    cause: Box<dyn std::error::Error + Send + Sync>,
}

impl std::fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the client's request body: {}", self.cause)
    }
}

impl std::error::Error for ClientBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.cause)
    }
}

/// The client's body as forwarded: at most `limit` bytes, its failures marked as the
/// client's ([`ClientBodyError`]).
pub(crate) fn client_body(body: hyper::body::Incoming, limit: usize) -> Body {
    http_body_util::Limited::new(body, limit)
        .map_err(|cause| {
            let too_large = cause.is::<http_body_util::LengthLimitError>();
            Box::new(ClientBodyError { too_large, cause })
                as Box<dyn std::error::Error + Send + Sync>
        })
        .boxed()
}

fn classify(error: &hyper_util::client::legacy::Error) -> BackendError {
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        if let Some(body) = e.downcast_ref::<ClientBodyError>() {
            return BackendError::ClientBody {
                too_large: body.too_large,
                detail: body.cause.to_string(),
            };
        }
        chain.push_str(&e.to_string());
        chain.push_str(": ");
        source = e.source();
    }
    let chain = chain.trim_end_matches(": ").to_owned();
    let lower = chain.to_lowercase();
    if lower.contains("dns error") || lower.contains("failed to lookup") {
        BackendError::Dns(chain)
    } else if lower.contains("refused") {
        BackendError::Refused(chain)
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        BackendError::Tls(chain)
    } else if lower.contains("timed out") {
        BackendError::Timeout
    } else {
        BackendError::Other(chain)
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and `Host`: never passed on as they came, in either
/// direction, to an HTTP backend or a function.
pub(crate) const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Builds the backend request: the expanded URL plus the client's query, the client's headers
/// without hop-by-hop ones, `Host` rewritten to the backend, and OCI's forwarding headers.
pub(crate) fn backend_request(
    url: &str,
    query: Option<&str>,
    parts: &http::request::Parts,
    body: Body,
    peer: SocketAddr,
    request_id: &str,
    transform: impl FnOnce(&mut http::HeaderMap),
) -> Result<Request<Body>, String> {
    let target = match query {
        Some(q) if !q.is_empty() => {
            if url.contains('?') {
                format!("{url}&{q}")
            } else {
                format!("{url}?{q}")
            }
        }
        _ => url.to_owned(),
    };
    let uri: Uri = target
        .parse()
        .map_err(|e| format!("backend URL '{target}' is invalid: {e}"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| format!("backend URL '{target}' has no host"))?
        .clone();
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    let connection_listed: Vec<String> = parts
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect();
    for (name, value) in &parts.headers {
        let lower = name.as_str();
        if HOP_BY_HOP.contains(&lower) || connection_listed.iter().any(|c| c == lower) {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    // The route's transformations see the client's headers; the gateway's own forwarding
    // headers are added after them, so no transformation or client can forge those.
    transform(headers);
    let ip = peer.ip().to_string();
    let forwarded_for = match parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(chain) => format!("{chain}, {ip}"),
        None => ip.clone(),
    };
    let forwarded_ip = if peer.is_ipv6() {
        format!("for=\"[{ip}]\"")
    } else {
        format!("for={ip}")
    };
    let pairs = [
        (header::HOST, authority.as_str().to_owned()),
        (HeaderName::from_static("x-forwarded-for"), forwarded_for),
        (HeaderName::from_static("x-real-ip"), ip),
        (header::FORWARDED, forwarded_ip),
        (
            HeaderName::from_static("opc-request-id"),
            request_id.to_owned(),
        ),
    ];
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    Ok(request)
}

/// Removes hop-by-hop headers from a backend response before it is relayed, and drops the
/// backend's protocol version: the version is hop-by-hop too. An HTTP/1.0 backend would
/// otherwise make the server answer an HTTP/1.1 client `HTTP/1.0` and close its connection;
/// with the default version the server speaks the client's protocol, as for its own answers.
pub(crate) fn relay_response(mut response: Response<Body>) -> Response<Body> {
    if is_close_delimited(&response) {
        response.extensions_mut().insert(CloseDelimited);
    }
    // Headers the backend's `Connection` names are hop-by-hop too (RFC 9110 §7.6.1): they are
    // meant for the gateway, never for the client (nor for the response cache).
    let named: Vec<HeaderName> = response
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        // `close` and `keep-alive` (the usual values) cost nothing here.
        .filter(|name| {
            !name.eq_ignore_ascii_case("close")
                && !HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
        })
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    for name in named {
        response.headers_mut().remove(name);
    }
    for name in HOP_BY_HOP.iter().filter(|n| **n != "host") {
        response.headers_mut().remove(*name);
    }
    *response.version_mut() = http::Version::default();
    response
}

/// Marks a backend answer whose HTTP/1 body has neither `Content-Length` nor chunked coding: it
/// ends when the connection closes, so a cut cannot be told from its end (the response cache
/// never stores such a body).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CloseDelimited;

fn is_close_delimited(response: &Response<Body>) -> bool {
    let headers = response.headers();
    response.version() <= http::Version::HTTP_11
        && !headers.contains_key(header::CONTENT_LENGTH)
        && !headers.get_all(header::TRANSFER_ENCODING).iter().any(|v| {
            v.to_str().is_ok_and(|codings| {
                codings
                    .split(',')
                    .any(|coding| coding.trim().eq_ignore_ascii_case("chunked"))
            })
        })
}

/// Accepts any certificate: only for backends whose route sets `isSslVerifyDisabled`.
#[derive(Debug)]
struct DangerAcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for DangerAcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
