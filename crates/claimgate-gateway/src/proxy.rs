//! `HTTP_BACKEND`: forwarding a request to the backend over pooled connections and streaming
//! both bodies, with OCI's forwarding headers and timeouts.

use crate::respond::Body;
use bytes::Bytes;
use http::uri::Authority;
use http::{header, HeaderName, HeaderValue, Request, Response, Uri};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
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

/// Backend connections: HTTP/1.1 over TCP, or over TLS verifying with the system roots (and
/// `--ca`), or over TLS for `isSslVerifyDisabled` backends.
///
/// Idle connections wait in a pool of the serving thread (each serving thread runs a runtime of
/// its own, and a connection's task runs on the runtime that opened it): a request takes one
/// without a lock or a message to another task, and its connection is given back once the
/// answer's body has been read to its end.
#[derive(Debug, Clone)]
pub(crate) struct BackendClient {
    /// Tells this client's connections apart from another's in a thread's pool.
    id: u64,
    verified: Arc<rustls::ClientConfig>,
    unverified: Arc<rustls::ClientConfig>,
}

/// An idle connection is closed after this long unused (checked by its own task, so within
/// twice this).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Which connections can serve a request: same client, TLS setting, scheme and authority.
#[derive(Debug, Clone)]
struct PoolKey {
    client: u64,
    https: bool,
    unverified: bool,
    authority: Authority,
}

// The authority as written, compared and hashed whole: `Authority`'s own `Hash` lowercases
// and hashes it byte by byte (2.3k instructions a request for a checkout and a check-in).
// Two spellings of one host only get separate pools.
impl PartialEq for PoolKey {
    fn eq(&self, other: &Self) -> bool {
        self.client == other.client
            && self.https == other.https
            && self.unverified == other.unverified
            && self.authority.as_str() == other.authority.as_str()
    }
}

impl Eq for PoolKey {}

impl std::hash::Hash for PoolKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.client << 2 | u64::from(self.https) << 1 | u64::from(self.unverified));
        state.write(self.authority.as_str().as_bytes());
    }
}

/// A connection's sender, with the state its task shares with the pool.
struct Connection {
    sender: SendRequest<Body>,
    idle: Arc<IdleState>,
}

/// Shared by a pooled connection and its task: whoever takes an idle connection first, a
/// request or the idle reaper, has it.
#[derive(Debug, Default)]
struct IdleState {
    /// Waiting in a pool.
    pooled: AtomicBool,
    /// Times the connection went back to a pool: unchanged over a whole [`IDLE_TIMEOUT`] while
    /// pooled means unused that long.
    returns: AtomicU64,
}

thread_local! {
    /// This thread's idle connections, most recently used last.
    static IDLE: std::cell::RefCell<HashMap<PoolKey, Vec<Connection>>> =
        std::cell::RefCell::new(HashMap::new());
}

/// This thread's most recently used idle connection for `key`, ready for a request. Closed,
/// reaped and busy ones met on the way are dropped.
fn checkout(key: &PoolKey) -> Option<Connection> {
    IDLE.with_borrow_mut(|pools| {
        let idle = pools.get_mut(key)?;
        while let Some(connection) = idle.pop() {
            // Lost to the reaper: its task is closing it.
            if !connection.idle.pooled.swap(false, Ordering::AcqRel) {
                continue;
            }
            // Not ready: closed by the backend, or a request body is still streaming on it.
            if connection.sender.is_ready() {
                return Some(connection);
            }
        }
        None
    })
}

/// Gives a connection whose exchange is over back to this thread's pool.
fn check_in(key: PoolKey, connection: Connection) {
    if connection.sender.is_closed() {
        return;
    }
    connection.idle.returns.fetch_add(1, Ordering::Relaxed);
    connection.idle.pooled.store(true, Ordering::Release);
    // The thread may be exiting (its pool already gone): the connection is then dropped.
    let _ = IDLE.try_with(|pools| {
        let Ok(mut pools) = pools.try_borrow_mut() else {
            return;
        };
        let idle = pools.entry(key).or_default();
        // Reaped and closed connections stay listed until met; sweep them now and then.
        if idle.len() >= 16 && idle.len().is_power_of_two() {
            idle.retain(|c| c.idle.pooled.load(Ordering::Acquire) && !c.sender.is_closed());
        }
        idle.push(connection);
    });
}

/// Drives a connection until it closes, or until it has waited unused in a pool for
/// [`IDLE_TIMEOUT`] (then dropping it closes the socket).
async fn drive<F>(connection: F, idle: Arc<IdleState>)
where
    F: std::future::Future<Output = hyper::Result<()>>,
{
    tokio::pin!(connection);
    let mut seen = idle.returns.load(Ordering::Relaxed);
    loop {
        tokio::select! {
            biased;
            _ = &mut connection => return,
            () = tokio::time::sleep(IDLE_TIMEOUT) => {
                let returns = idle.returns.load(Ordering::Relaxed);
                if returns == seen
                    && idle
                        .pooled
                        .compare_exchange(true, false, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    return;
                }
                seen = returns;
            }
        }
    }
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
        let mut verified = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut unverified = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(DangerAcceptAnyCertificate(provider)))
            .with_no_client_auth();
        // Backends are spoken to in HTTP/1.1 only.
        verified.alpn_protocols = vec![b"http/1.1".to_vec()];
        unverified.alpn_protocols = vec![b"http/1.1".to_vec()];
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Ok(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            verified: Arc::new(verified),
            unverified: Arc::new(unverified),
        })
    }

    /// Sends `request` (already addressed to the backend, in absolute form) and waits for the
    /// response head at most `timeout` (connecting included).
    pub(crate) async fn send(
        &self,
        request: Request<Body>,
        ssl_verify_disabled: bool,
        timeout: Duration,
    ) -> Result<Response<Body>, BackendError> {
        match tokio::time::timeout(timeout, self.exchange(request, ssl_verify_disabled)).await {
            Err(_) => Err(BackendError::Timeout),
            Ok(result) => result,
        }
    }

    async fn exchange(
        &self,
        mut request: Request<Body>,
        unverified: bool,
    ) -> Result<Response<Body>, BackendError> {
        let uri = request.uri();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(BackendError::Other(format!(
                    "unsupported scheme in the backend URL '{uri}'"
                )))
            }
        };
        let Some(authority) = uri.authority().cloned() else {
            return Err(BackendError::Other(format!(
                "the backend URL '{uri}' has no host"
            )));
        };
        let key = PoolKey {
            client: self.id,
            https,
            unverified: unverified && https,
            authority,
        };
        if !request.headers().contains_key(header::HOST) {
            let host = host_header(&key.authority, https);
            request.headers_mut().insert(header::HOST, host);
        }
        *request.uri_mut() = origin_form(request.uri());
        loop {
            let (mut connection, reused) = match checkout(&key) {
                Some(connection) => (connection, true),
                // Boxed: a new connection is rare, and its future large.
                None => (Box::pin(self.connect(&key)).await?, false),
            };
            match connection.sender.try_send_request(request).await {
                Ok(response) => return Ok(pooled_response(response, key, connection)),
                Err(mut error) => match error.take_message() {
                    // Nothing of it was sent: a reused connection the backend closed while
                    // idle; tried again on another (a fresh one in the end), as hyper-util's
                    // pool does.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(classify(&error.into_error())),
                },
            }
        }
    }

    /// Opens a connection (TCP, TLS for `https`) and starts its task on this runtime.
    async fn connect(&self, key: &PoolKey) -> Result<Connection, BackendError> {
        let host = key.authority.host();
        let port = key
            .authority
            .port_u16()
            .unwrap_or(if key.https { 443 } else { 80 });
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = connect_tcp(bare, port).await?;
        let _ = tcp.set_nodelay(true);
        let idle = Arc::new(IdleState::default());
        let sender = if key.https {
            let config = if key.unverified {
                &self.unverified
            } else {
                &self.verified
            };
            let name = ServerName::try_from(bare.to_owned()).map_err(|e| {
                BackendError::Tls(format!("'{bare}' is not a valid TLS server name: {e}"))
            })?;
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| BackendError::Tls(format!("TLS handshake failed: {e}")))?;
            let (sender, connection) = http1::handshake(TokioIo::new(tls))
                .await
                .map_err(|e| classify(&e))?;
            tokio::spawn(drive(connection, idle.clone()));
            sender
        } else {
            let (sender, connection) = http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| classify(&e))?;
            tokio::spawn(drive(connection, idle.clone()));
            sender
        };
        Ok(Connection { sender, idle })
    }
}

/// Connects to the first of the host's addresses that accepts.
async fn connect_tcp(host: &str, port: u16) -> Result<tokio::net::TcpStream, BackendError> {
    let addresses: Vec<SocketAddr> = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| BackendError::Dns(format!("dns error: {e}")))?
            .collect(),
    };
    let mut last = None;
    for address in addresses {
        match tokio::net::TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last = Some(error),
        }
    }
    Err(match last {
        None => BackendError::Dns(format!("dns error: no address found for '{host}'")),
        Some(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            BackendError::Refused(format!("tcp connect error: {e}"))
        }
        Some(e) if e.kind() == std::io::ErrorKind::TimedOut => BackendError::Timeout,
        Some(e) => BackendError::Other(format!("tcp connect error: {e}")),
    })
}

/// `Host` for a request without one: the authority, its port left out when it is the scheme's.
fn host_header(authority: &Authority, https: bool) -> HeaderValue {
    let default = if https { 443 } else { 80 };
    let text = match authority.port_u16() {
        Some(port) if port != default => authority.as_str(),
        _ => authority.host(),
    };
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The request target an HTTP/1.1 origin server expects: path and query only.
fn origin_form(uri: &Uri) -> Uri {
    match uri.path_and_query() {
        Some(path) if path.as_str() != "/" => Uri::from(path.clone()),
        _ => Uri::default(),
    }
}

/// The backend's answer, its body giving the connection back to the thread's pool once read to
/// its end (never when the backend closes the connection after it).
fn pooled_response(
    response: Response<Incoming>,
    key: PoolKey,
    connection: Connection,
) -> Response<Body> {
    let reusable = !closes_connection(&response);
    response.map(|body| {
        PooledBody {
            body,
            connection: reusable.then_some((key, connection)),
        }
        .map_err(Into::into)
        .boxed()
    })
}

/// Whether the backend closes the connection after this answer: `Connection: close`, or
/// HTTP/1.0 without `keep-alive`.
fn closes_connection(response: &Response<Incoming>) -> bool {
    let named = |token: &str| {
        response
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(token))
    };
    if response.version() <= http::Version::HTTP_10 {
        !named("keep-alive")
    } else {
        named("close")
    }
}

/// A backend answer's body; its connection goes back to the pool when the body has ended.
struct PooledBody {
    body: Incoming,
    connection: Option<(PoolKey, Connection)>,
}

impl PooledBody {
    fn check_in(&mut self) {
        if let Some((key, connection)) = self.connection.take() {
            check_in(key, connection);
        }
    }
}

impl http_body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = std::task::ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            None => this.check_in(),
            // A connection whose answer failed half-way is never reused.
            Some(Err(_)) => this.connection = None,
            Some(Ok(_)) if this.body.is_end_stream() => this.check_in(),
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // An empty answer (HEAD, 204, `Content-Length: 0`) may be dropped unread.
        if http_body::Body::is_end_stream(&self.body) {
            self.check_in();
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

fn classify(error: &hyper::Error) -> BackendError {
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

/// Whether `name` is one of [`HOP_BY_HOP`], compared as text (a header map lookup by `&str`
/// would parse, lowercase and hash the name at every use).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// The backend's URL for a request: the expanded URL plus the client's query. `parsed` is
/// `url` parsed already (a literal URL, at load), used as it is when there is no query.
pub(crate) fn backend_uri(
    url: &str,
    parsed: Option<&Uri>,
    query: Option<&str>,
) -> Result<Uri, String> {
    let query = query.filter(|q| !q.is_empty());
    if let (Some(uri), None) = (parsed, query) {
        return Ok(uri.clone());
    }
    let target = match query {
        Some(q) if url.contains('?') => format!("{url}&{q}"),
        Some(q) => format!("{url}?{q}"),
        None => url.to_owned(),
    };
    target
        .parse()
        .map_err(|e| format!("backend URL '{target}' is invalid: {e}"))
}

/// Builds the backend request for `uri` ([`backend_uri`]): the client's headers without
/// hop-by-hop ones, `Host` rewritten to the backend, and OCI's forwarding headers.
pub(crate) fn backend_request(
    uri: Uri,
    parts: &http::request::Parts,
    body: Body,
    peer: SocketAddr,
    request_id: &HeaderValue,
    transform: impl FnOnce(&mut http::HeaderMap),
) -> Result<Request<Body>, String> {
    let authority = uri
        .authority()
        .ok_or_else(|| format!("backend URL '{uri}' has no host"))?
        .clone();
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    // The client's headers and the five forwarding ones, without growing the map on the way.
    headers.reserve(parts.headers.len() + 5);
    // Names the client's `Connection` lists are hop-by-hop too; usually there are none (an
    // empty Vec does not allocate).
    let connection_listed: Vec<String> = parts
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect();
    for (name, value) in &parts.headers {
        if is_hop_by_hop(name) || connection_listed.iter().any(|c| c == name.as_str()) {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    // The route's transformations see the client's headers; the gateway's own forwarding
    // headers are added after them, so no transformation or client can forge those.
    transform(headers);
    let peer = peer_headers(peer.ip());
    let forwarded_for = match parts
        .headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
    {
        Some(chain) => {
            let ip = peer.address.to_str().unwrap_or_default();
            HeaderValue::from_str(&format!("{chain}, {ip}")).ok()
        }
        None => Some(peer.address.clone()),
    };
    if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
        headers.insert(header::HOST, host);
    }
    if let Some(forwarded_for) = forwarded_for {
        headers.insert(X_FORWARDED_FOR, forwarded_for);
    }
    headers.insert(X_REAL_IP, peer.address);
    headers.insert(header::FORWARDED, peer.forwarded);
    headers.insert(crate::server::OPC_REQUEST_ID, request_id.clone());
    Ok(request)
}

// Header names made at compile time: a name given as `&str` is parsed and checked at every use.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// A client address as the forwarding headers carry it: `X-Real-IP` (and `X-Forwarded-For`
/// when the client sent none) and `Forwarded`.
#[derive(Debug, Clone)]
struct PeerHeaders {
    ip: std::net::IpAddr,
    address: HeaderValue,
    forwarded: HeaderValue,
}

/// `ip` as text (for the access log), formatted once for the address this thread saw last.
pub(crate) fn peer_address(ip: std::net::IpAddr) -> HeaderValue {
    peer_headers(ip).address
}

/// `ip`'s forwarding headers, formatted once for the address this thread saw last: a
/// connection's requests, and a load balancer's, come from one address.
fn peer_headers(ip: std::net::IpAddr) -> PeerHeaders {
    thread_local! {
        static LAST: std::cell::RefCell<Option<PeerHeaders>> = const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some(headers) if headers.ip == ip => headers.clone(),
        _ => {
            let text = ip.to_string();
            let forwarded = if ip.is_ipv6() {
                format!("for=\"[{text}]\"")
            } else {
                format!("for={text}")
            };
            let headers = PeerHeaders {
                ip,
                address: HeaderValue::from_str(&text).expect("an IP address is a header value"),
                forwarded: HeaderValue::from_str(&forwarded)
                    .expect("a quoted IP address is a header value"),
            };
            *last = Some(headers.clone());
            headers
        }
    })
}

/// Removes hop-by-hop headers from a backend response before it is relayed, and drops the
/// backend's protocol version: the version is hop-by-hop too. An HTTP/1.0 backend would
/// otherwise make the server answer an HTTP/1.1 client `HTTP/1.0` and close its connection;
/// with the default version the server speaks the client's protocol, as for its own answers.
pub(crate) fn relay_response(mut response: Response<Body>) -> Response<Body> {
    if is_close_delimited(&response) {
        response.extensions_mut().insert(CloseDelimited);
    }
    // Usually there are none: one pass over the names finds out, and nothing is removed.
    if response
        .headers()
        .keys()
        .any(|name| is_hop_by_hop(name) && name != header::HOST)
    {
        remove_hop_by_hop(response.headers_mut());
    }
    *response.version_mut() = http::Version::default();
    response
}

/// Removes a backend answer's hop-by-hop headers, and those its `Connection` names: they are
/// meant for the gateway, never for the client (nor for the response cache) (RFC 9110 §7.6.1).
fn remove_hop_by_hop(headers: &mut http::HeaderMap) {
    let named: Vec<HeaderName> = headers
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
        headers.remove(name);
    }
    for name in HOP_BY_HOP.iter().filter(|n| **n != "host") {
        headers.remove(*name);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// What a scripted backend does with one request.
    struct Answer {
        bytes: &'static [u8],
        /// Closes the connection right after answering.
        close: bool,
    }

    /// A backend on a real socket answering each request (`connection index`, `request index
    /// on it`) as `script` says; returns its address and its count of accepted connections.
    async fn backend(script: fn(usize, usize) -> Answer) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let connection = count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    for request in 0.. {
                        // One request head (these requests have no body).
                        while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let end = buffer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                        buffer.drain(..end + 4);
                        let answer = script(connection, request);
                        if !answer.bytes.is_empty() {
                            stream.write_all(answer.bytes).await.unwrap();
                        }
                        if answer.close {
                            let _ = stream.shutdown().await;
                            return;
                        }
                    }
                });
            }
        });
        (address, accepted)
    }

    fn get(address: SocketAddr, path: &str) -> Request<Body> {
        let mut request = Request::new(crate::respond::full(String::new()));
        *request.uri_mut() = format!("http://{address}{path}").parse().unwrap();
        request
    }

    async fn call(client: &BackendClient, address: SocketAddr) -> Result<String, BackendError> {
        let response = client
            .send(get(address, "/x"), false, Duration::from_secs(10))
            .await?;
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Ok(String::from_utf8(body.to_vec()).unwrap())
    }

    const KEEP_ALIVE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    #[tokio::test]
    async fn a_keep_alive_connection_is_reused() {
        let (address, accepted) = backend(|_, _| Answer {
            bytes: KEEP_ALIVE,
            close: false,
        })
        .await;
        let client = BackendClient::new(&[]).unwrap();
        for _ in 0..5 {
            assert_eq!(call(&client, address).await.unwrap(), "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_backend_closed_while_idle_is_not_reused() {
        // Every connection answers once, then the backend closes it as if its idle timeout
        // had passed.
        let (address, accepted) = backend(|_, _| Answer {
            bytes: KEEP_ALIVE,
            close: true,
        })
        .await;
        let client = BackendClient::new(&[]).unwrap();
        for _ in 0..3 {
            assert_eq!(call(&client, address).await.unwrap(), "ok");
            // Time for the close to reach the connection's task.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    /// Reads one request head (up to its blank line) from a test backend's connection.
    async fn read_head(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the connection closed before a whole request head");
            buffer.extend_from_slice(&chunk[..n]);
        }
        buffer
    }

    /// A backend that answers one request, closes its side after `close_after`, and reports
    /// whether the gateway then closed the connection too within `wait`.
    async fn one_answer_then_close(
        close_after: Duration,
        wait: Duration,
    ) -> (SocketAddr, tokio::sync::oneshot::Receiver<bool>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (closed, closed_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            read_head(&mut stream).await;
            stream.write_all(KEEP_ALIVE).await.unwrap();
            tokio::time::sleep(close_after).await;
            stream.shutdown().await.unwrap();
            // The gateway's close reads as the end of the stream.
            let seen = tokio::time::timeout(wait, stream.read(&mut [0u8; 64])).await;
            let _ = closed.send(matches!(seen, Ok(Ok(0)) | Ok(Err(_))));
        });
        (address, closed_rx)
    }

    #[tokio::test]
    async fn a_connection_the_backend_closes_while_pooled_is_closed_at_once() {
        let (address, closed) =
            one_answer_then_close(Duration::from_millis(50), Duration::from_secs(5)).await;
        let client = BackendClient::new(&[]).unwrap();
        assert_eq!(call(&client, address).await.unwrap(), "ok");
        // Nothing uses the connection any more: its task notices the close and ends it (no
        // socket left half-closed in the pool).
        assert!(
            closed.await.unwrap(),
            "the gateway kept the closed connection open"
        );
    }

    #[tokio::test]
    async fn a_connection_close_answer_is_not_reused() {
        // The backend says it closes but leaves the socket open: the gateway must not send
        // a second request on it.
        let (address, accepted) = backend(|_, request| {
            assert_eq!(request, 0, "a request after Connection: close");
            Answer {
                bytes: b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
                close: false,
            }
        })
        .await;
        let client = BackendClient::new(&[]).unwrap();
        for _ in 0..3 {
            assert_eq!(call(&client, address).await.unwrap(), "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_http_1_0_close_delimited_answer_is_read_whole_and_not_reused() {
        let (address, accepted) = backend(|_, _| Answer {
            bytes: b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nthe whole body",
            close: true,
        })
        .await;
        let client = BackendClient::new(&[]).unwrap();
        for _ in 0..2 {
            assert_eq!(call(&client, address).await.unwrap(), "the whole body");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_request_sent_on_a_connection_that_then_closes_is_not_sent_again() {
        // The second request on the first connection is read and dropped unanswered: it may
        // have had effects, so it fails instead of going out a second time.
        let (address, accepted) = backend(|connection, request| match (connection, request) {
            (0, 0) => Answer {
                bytes: KEEP_ALIVE,
                close: false,
            },
            (0, _) => Answer {
                bytes: b"",
                close: true,
            },
            _ => Answer {
                bytes: KEEP_ALIVE,
                close: false,
            },
        })
        .await;
        let client = BackendClient::new(&[]).unwrap();
        assert_eq!(call(&client, address).await.unwrap(), "ok");
        let error = call(&client, address).await.unwrap_err();
        assert_eq!(error.token(), "REQUEST_ERROR", "{error:?}");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // The next request gets a fresh connection.
        assert_eq!(call(&client, address).await.unwrap(), "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_refused_connection_and_an_unknown_host_are_named() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let client = BackendClient::new(&[]).unwrap();
        let error = call(&client, address).await.unwrap_err();
        assert_eq!(error.token(), "CONNECTION_REFUSED", "{error:?}");
        let mut request = get(address, "/");
        *request.uri_mut() = "http://no-such-host.invalid/".parse().unwrap();
        let error = client
            .send(request, false, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert_eq!(error.token(), "DNS_NXDOMAIN", "{error:?}");
    }

    #[tokio::test]
    async fn a_backend_that_does_not_answer_times_out() {
        let (address, _) = backend(|_, _| Answer {
            bytes: b"",
            close: false,
        })
        .await;
        let client = BackendClient::new(&[]).unwrap();
        let error = client
            .send(get(address, "/"), false, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(error, BackendError::Timeout);
    }

    #[tokio::test]
    async fn the_request_goes_out_in_origin_form_with_a_host() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let head = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let head = read_head(&mut stream).await;
            stream.write_all(KEEP_ALIVE).await.unwrap();
            String::from_utf8(head).unwrap()
        });
        let client = BackendClient::new(&[]).unwrap();
        let response = client
            .send(get(address, "/a/b?c=d"), false, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let head = head.await.unwrap().to_ascii_lowercase();
        assert!(head.starts_with("get /a/b?c=d http/1.1\r\n"), "{head}");
        assert!(head.contains(&format!("\r\nhost: {address}\r\n")), "{head}");
    }

    #[test]
    fn a_url_parsed_at_load_is_used_as_it_is_only_without_a_query() {
        let url = "http://backend:8080/p?fixed=1";
        // Told apart from `url` on purpose: which of the two the URL comes from shows.
        let parsed: Uri = "http://parsed:8080/p?fixed=1".parse().unwrap();
        let target = |parsed, query| backend_uri(url, parsed, query).unwrap().to_string();
        for query in [None, Some("")] {
            assert_eq!(target(Some(&parsed), query), "http://parsed:8080/p?fixed=1");
            assert_eq!(target(None, query), url);
        }
        let with_query = "http://backend:8080/p?fixed=1&page=2";
        assert_eq!(target(Some(&parsed), Some("page=2")), with_query);
        assert_eq!(target(None, Some("page=2")), with_query);
        assert!(backend_uri("http://a b/", None, None)
            .unwrap_err()
            .contains("backend URL 'http://a b/' is invalid"));
    }

    #[test]
    fn forwarding_headers_name_each_peer_even_when_peers_alternate() {
        let parts = |forwarded_for: Option<&str>| {
            let mut request = Request::new(());
            if let Some(chain) = forwarded_for {
                request
                    .headers_mut()
                    .insert("x-forwarded-for", chain.parse().unwrap());
            }
            request.into_parts().0
        };
        let id = HeaderValue::from_static("REQ");
        let forward = |peer: &str, chain: Option<&str>| {
            let request = backend_request(
                "http://backend:8080/p".parse().unwrap(),
                &parts(chain),
                crate::respond::full(String::new()),
                peer.parse().unwrap(),
                &id,
                |_| {},
            )
            .unwrap();
            let header = |name: &str| request.headers()[name].to_str().unwrap().to_owned();
            [
                header("x-forwarded-for"),
                header("x-real-ip"),
                header("forwarded"),
                header("host"),
                header("opc-request-id"),
            ]
        };
        for _ in 0..2 {
            assert_eq!(
                forward("10.0.0.1:5000", None),
                [
                    "10.0.0.1",
                    "10.0.0.1",
                    "for=10.0.0.1",
                    "backend:8080",
                    "REQ"
                ]
            );
            assert_eq!(
                forward("[2001:db8::1]:5000", Some("192.0.2.7")),
                [
                    "192.0.2.7, 2001:db8::1",
                    "2001:db8::1",
                    "for=\"[2001:db8::1]\"",
                    "backend:8080",
                    "REQ"
                ]
            );
        }
    }

    #[test]
    fn the_host_header_leaves_out_the_default_port() {
        let authority = |a: &str| a.parse::<Authority>().unwrap();
        assert_eq!(
            host_header(&authority("example.com:80"), false),
            "example.com"
        );
        assert_eq!(
            host_header(&authority("example.com:443"), true),
            "example.com"
        );
        assert_eq!(
            host_header(&authority("example.com:443"), false),
            "example.com:443"
        );
        assert_eq!(host_header(&authority("[::1]:8080"), false), "[::1]:8080");
    }
}
