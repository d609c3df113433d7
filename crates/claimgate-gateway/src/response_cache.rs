//! OCI's response cache (SPEC.md "Response caching", `reference/oci-policies.md` §C): answers
//! to `GET`, `HEAD` and `OPTIONS` kept in a Redis-compatible server named by the gateway
//! resource, for the route's `timeToLiveInSeconds`.
//!
//! - The key is a SHA-256 over the deployment id, the method, the path (never the query) and
//!   the values of `cacheKeyAdditions`, each length-prefixed (an absent value is not an empty
//!   one): `<--redis-key-prefix>rc:<hex>`.
//! - A value is a versioned binary encoding of the backend's own status, headers and body
//!   ([`encode_head`], [`decode`]), sealed under `--shared-state-key` when one is given; a value
//!   that does not decode or open is a miss, never an answer.
//! - Any trouble with the cache server is a `BYPASS`: the backend answers, nothing fails. The
//!   server has the same one-second circuit as `--redis` ([`SharedState`]).
//! - A body is stored while it streams to the client ([`Tee`]); at most
//!   `--response-cache-buffer-mib` is held for storing at once, across all requests.

use crate::logs::{Context, ExecutionRecord, Level, Logs};
use crate::metrics::Metrics;
use crate::respond::Body;
use crate::shared::{Fetched, Operation, SealKey, SharedState};
use arc_swap::ArcSwapOption;
use bytes::Bytes;
use claimgate_config::{
    Authentication, AuthorizerInput, ContextTable, Deployment, ResponseCacheServer, Route,
    ServerPolicy, Template, TemplatePart, TokenLocation,
};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt as _;
use prometheus_client::metrics::counter::Counter;
use serde_json::json;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

/// The header every answer that reached the lookup carries (as OCI).
pub(crate) const CACHE_STATUS: HeaderName = HeaderName::from_static("x-cache-status");

/// The obsolete cookie header (RFC 2965): an answer with it is never stored, as with `Set-Cookie`.
const SET_COOKIE2: HeaderName = HeaderName::from_static("set-cookie2");

/// OCI's largest cached response (service limits: 50 MB).
pub(crate) const MAX_STORED_BODY: usize = 50 * 1024 * 1024;

/// The most the status and headers of a stored answer may take (encoded): far above what the
/// backend client accepts in a response head.
const MAX_STORED_HEAD: usize = 1024 * 1024;

/// The largest value the cache writes, and so the most a lookup reads.
const MAX_STORED_VALUE: usize = MAX_STORED_HEAD + 4 + MAX_STORED_BODY;

/// The first byte of every stored value; anything else is not read.
const FORMAT_VERSION: u8 = 1;

/// How the gateway's response cache is set up (`serve --gateway`, `--redis-key-prefix`,
/// `--shared-state-key`, `--response-cache-buffer-mib`).
#[derive(Debug, Clone)]
pub struct ResponseCacheOptions {
    /// `responseCacheDetails` of `EXTERNAL_RESP_CACHE`; `None` when the gateway has no cache.
    pub server: Option<ResponseCacheServer>,
    pub key_prefix: String,
    pub seal_key: Option<SealKey>,
    /// Bytes held for storing at once, across all requests.
    pub buffer_bytes: usize,
}

impl Default for ResponseCacheOptions {
    fn default() -> Self {
        Self {
            server: None,
            key_prefix: "claimgate:".into(),
            seal_key: None,
            buffer_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What `X-Cache-Status` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheStatus {
    Hit,
    Miss,
    Bypass,
}

impl CacheStatus {
    fn value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Bypass => "BYPASS",
        })
    }

    fn index(self) -> usize {
        match self {
            Self::Hit => 0,
            Self::Miss => 1,
            Self::Bypass => 2,
        }
    }
}

/// What one deployment needs for caching, made when it is loaded: the names that make a
/// request private and its metric series.
#[derive(Debug)]
pub(crate) struct DeploymentCache {
    private: PrivateNames,
    /// `claimgate_response_cache_total{deployment, result}`: HIT, MISS, BYPASS.
    counters: [Counter; 3],
}

impl DeploymentCache {
    /// `None` when no route of the deployment looks answers up.
    pub(crate) fn new(deployment: &Deployment, metrics: &Metrics) -> Option<Self> {
        deployment
            .routes
            .iter()
            .any(|r| r.response_cache_lookup.is_some())
            .then(|| Self {
                private: PrivateNames::of(deployment),
                counters: metrics.response_cache(deployment.label()),
            })
    }
}

/// Headers and query parameters that carry credentials in a deployment (SPEC "Credentials in
/// logs and caches"): a request with any of them is private.
#[derive(Debug, Default)]
pub(crate) struct PrivateNames {
    headers: Vec<HeaderName>,
    query: Vec<String>,
}

impl PrivateNames {
    /// `Authorization`, `Proxy-Authorization`, `Cookie`, `X-APIGW-TOKEN`, RFC 6750's `access_token` parameter (a
    /// backend may read these whatever the deployment says; the same parameters
    /// [`claimgate_core::is_credential_parameter`] keeps out of the logs), and whatever the
    /// deployment's authentication (every `dynamicAuthentication` server, an authorizer
    /// function's token or `parameters`) and usage plans read a credential from.
    pub(crate) fn of(deployment: &Deployment) -> Self {
        let mut names = Self {
            headers: vec![
                header::AUTHORIZATION,
                // Credentials for a proxy on the way to the backend are credentials too.
                header::PROXY_AUTHORIZATION,
                header::COOKIE,
                HeaderName::from_static("x-apigw-token"),
            ],
            query: vec!["access_token".to_owned()],
        };
        match &deployment.authentication {
            Authentication::Jwt(policy) => names.add_location(&policy.location),
            Authentication::Custom(custom) => names.add_custom(custom),
            Authentication::Dynamic(dynamic) => {
                for server in &dynamic.servers {
                    match &server.policy {
                        ServerPolicy::Jwt(policy) => names.add_location(&policy.location),
                        ServerPolicy::Custom(custom) => names.add_custom(custom),
                    }
                }
            }
            _ => {}
        }
        for token in deployment
            .usage_plans
            .iter()
            .flat_map(|p| &p.token_locations)
        {
            names.add_variable(token);
        }
        names
    }

    fn add_location(&mut self, location: &TokenLocation) {
        match location {
            TokenLocation::Header { name, .. } => self.add_header(name),
            TokenLocation::Query { name } => self.add_query(name),
        }
    }

    /// An authorizer function's token, or every header and query parameter of its
    /// `parameters` (SPEC: "any header or parameter that ... authorizer `parameters` entry
    /// reads").
    fn add_custom(&mut self, custom: &claimgate_config::CustomAuthentication) {
        match &custom.input {
            AuthorizerInput::Single(location) => self.add_location(location),
            AuthorizerInput::Multi(arguments) => {
                for (_, variable) in arguments {
                    self.add_variable(variable);
                }
            }
        }
    }

    /// `request.headers[x]` or `request.query[x]`; other tables carry no raw credential.
    fn add_variable(&mut self, variable: &claimgate_config::ContextVariable) {
        match (variable.table, variable.key.as_deref()) {
            (ContextTable::Headers, Some(name)) => self.add_header(name),
            (ContextTable::Query, Some(name)) => self.add_query(name),
            _ => {}
        }
    }

    fn add_header(&mut self, name: &str) {
        if let Ok(name) = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
            if !self.headers.contains(&name) {
                self.headers.push(name);
            }
        }
    }

    fn add_query(&mut self, name: &str) {
        if !self.query.iter().any(|q| q.eq_ignore_ascii_case(name)) {
            self.query.push(name.to_owned());
        }
    }

    /// Whether the request carries a credential: one of the names, or a client certificate.
    fn is_private(&self, request: &CacheRequest<'_>) -> bool {
        request.client_certificate
            || request.session
            || self
                .headers
                .iter()
                .any(|name| request.headers.contains_key(name))
            || request.query.is_some_and(|query| {
                query.split('&').any(|pair| {
                    let name = pair.split_once('=').map_or(pair, |(name, _)| name);
                    self.query
                        .iter()
                        .any(|wanted| claimgate_core::path::query_name_is(name, wanted))
                })
            })
    }
}

/// What the lookup needs of a request.
pub(crate) struct CacheRequest<'r> {
    pub(crate) deployment_id: &'r str,
    pub(crate) method: &'r Method,
    pub(crate) path: &'r str,
    pub(crate) query: Option<&'r str>,
    pub(crate) headers: &'r HeaderMap,
    pub(crate) client_certificate: bool,
    /// Whether a body follows the head (declared or arriving).
    pub(crate) has_body: bool,
    /// The request came with an OAUTH2 session (its cookie or `X-APIGW-TOKEN` is taken out
    /// before the lookup, so the headers no longer show it).
    pub(crate) session: bool,
    /// Values of `cacheKeyAdditions`.
    pub(crate) context: &'r crate::context::RequestContext<'r>,
}

/// The outcome of the lookup phase.
pub(crate) enum Looked {
    /// The route does not cache, or the method is not cacheable: no header, nothing stored.
    NotCaching,
    /// Answer with this (status, headers and body as the backend gave them; `X-Cache-Status`
    /// set); response transformations and CORS still apply.
    Hit(Response<Body>),
    /// Ask the backend; its answer is stored when it qualifies ([`ResponseCache::store`]).
    Miss(Pending),
    /// Ask the backend and store nothing.
    Bypass,
}

impl Looked {
    /// The `X-Cache-Status` for the answer, if it gets one.
    pub(crate) fn status(&self) -> Option<CacheStatus> {
        match self {
            Self::NotCaching => None,
            Self::Hit(_) => Some(CacheStatus::Hit),
            Self::Miss(_) => Some(CacheStatus::Miss),
            Self::Bypass => Some(CacheStatus::Bypass),
        }
    }
}

/// A miss whose answer may be stored.
pub(crate) struct Pending {
    store: Arc<SharedState>,
    key: String,
    ttl: Duration,
}

/// The gateway's response cache: the server (replaced when `--gateway` changes) and the
/// bytes held for storing.
pub(crate) struct ResponseCache {
    store: ArcSwapOption<SharedState>,
    server: ArcSwapOption<ResponseCacheServer>,
    options: ResponseCacheOptions,
    held: Arc<AtomicUsize>,
    extra_roots: Vec<Vec<u8>>,
    metrics: Arc<Metrics>,
    logs: Logs,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("server", &self.server.load().as_ref().map(|s| s.shown()))
            .field("held", &self.held.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl ResponseCache {
    /// The cache of `options` (connected in the background: call from a runtime that lives as
    /// long as the process).
    pub(crate) fn new(
        options: ResponseCacheOptions,
        extra_roots: &[Vec<u8>],
        metrics: Arc<Metrics>,
        logs: Logs,
    ) -> Result<Self, String> {
        let cache = Self {
            store: ArcSwapOption::empty(),
            server: ArcSwapOption::empty(),
            held: Arc::new(AtomicUsize::new(0)),
            extra_roots: extra_roots.to_vec(),
            metrics,
            logs,
            options: ResponseCacheOptions {
                server: None,
                ..options.clone()
            },
        };
        cache.set_server(options.server)?;
        Ok(cache)
    }

    /// Uses `server` from now on (a reload of `--gateway`); an unchanged server keeps its
    /// connection. Entries written under the old server stay there.
    pub(crate) fn set_server(&self, server: Option<ResponseCacheServer>) -> Result<(), String> {
        if self.server.load().as_deref() == server.as_ref() {
            return Ok(());
        }
        let store = match &server {
            Some(server) => {
                let store = SharedState::response_cache(
                    server,
                    &self.options.key_prefix,
                    self.options.seal_key.as_ref(),
                    &self.extra_roots,
                    self.metrics.clone(),
                    self.logs.clone(),
                )?;
                tokio::spawn(store.clone().keep_connected());
                Some(store)
            }
            None => None,
        };
        self.store.store(store);
        self.server.store(server.map(Arc::new));
        Ok(())
    }

    /// The lookup phase (after authentication, authorization, usage plans and validation):
    /// `HIT` answers from the cache, `MISS` asks the backend and stores its answer, `BYPASS`
    /// asks the backend only.
    pub(crate) async fn lookup(
        &self,
        deployment: Option<&DeploymentCache>,
        route: &Route,
        request: &CacheRequest<'_>,
        context: Context<'_>,
        threshold: Level,
    ) -> Looked {
        let (Some(deployment), Some(policy)) = (deployment, &route.response_cache_lookup) else {
            return Looked::NotCaching;
        };
        if !is_cacheable_method(request.method) {
            return Looked::NotCaching;
        }
        let looked = self
            .look(deployment, route, policy, request, context, threshold)
            .await;
        if let Some(status) = looked.status() {
            deployment.counters[status.index()].inc();
        }
        looked
    }

    async fn look(
        &self,
        deployment: &DeploymentCache,
        route: &Route,
        policy: &claimgate_config::ResponseCacheLookup,
        request: &CacheRequest<'_>,
        context: Context<'_>,
        threshold: Level,
    ) -> Looked {
        let aborted = |cause: &str| {
            self.logs.execution(
                context,
                threshold,
                ExecutionRecord::new(
                    "responseCache.lookupAborted",
                    Level::Warn,
                    "The response cache was not used.",
                )
                .with("cause", json!(cause)),
            );
        };
        // The key has no room for a body: one client's answer to its body (a search) would be
        // everyone's.
        if request.has_body {
            aborted("the request has a body, which is not part of the cache key");
            return Looked::Bypass;
        }
        if !policy.private_caching && deployment.private.is_private(request) {
            aborted("the request carries credentials and isPrivateCachingEnabled is false");
            return Looked::Bypass;
        }
        let Some(store) = self.store.load_full() else {
            aborted("the gateway has no response cache (responseCacheDetails)");
            return Looked::Bypass;
        };
        if !store.is_up() {
            aborted("the cache server is unavailable");
            return Looked::Bypass;
        }
        let key = cache_key(&store, request, &policy.key_additions);
        // The key moves into the miss: no copy of it per request.
        let pending = |store, key| {
            route.response_cache_store.map(|s| Pending {
                store,
                key,
                ttl: Duration::from_secs(u64::from(s.time_to_live_seconds)),
            })
        };
        match store
            .fetch_at_most(Operation::ResponseCache, &key, MAX_STORED_VALUE)
            .await
        {
            Err(cause) => {
                aborted(&format!("the cache server did not answer: {cause}"));
                Looked::Bypass
            }
            Ok(Fetched::Absent) => {
                self.logs.execution(
                    context,
                    threshold,
                    ExecutionRecord::new(
                        "responseCache.lookupResultNotFound",
                        Level::Info,
                        "No cached response for the request.",
                    ),
                );
                miss(pending(store, key))
            }
            Ok(Fetched::TooLarge(bound)) => {
                aborted(&format!(
                    "the cached value is larger than the {bound} bytes claimgate writes at most (ignored)"
                ));
                miss(pending(store, key))
            }
            Ok(Fetched::Unsealed) => {
                aborted("the cached value does not open under --shared-state-key (ignored)");
                miss(pending(store, key))
            }
            Ok(Fetched::Value(value)) => match decode(value) {
                Some(mut response) => {
                    self.logs.execution(
                        context,
                        threshold,
                        ExecutionRecord::new(
                            "responseCache.lookupResultSuccess",
                            Level::Info,
                            "Answered from the response cache.",
                        ),
                    );
                    response
                        .headers_mut()
                        .insert(CACHE_STATUS, CacheStatus::Hit.value());
                    Looked::Hit(response)
                }
                None => {
                    aborted("the cached value is not one claimgate wrote (ignored)");
                    miss(pending(store, key))
                }
            },
        }
    }

    /// The store phase on a miss, with the backend's own answer (before response header
    /// transformations and CORS): stores it while it streams to the client when it qualifies
    /// (status 200, 204, 301 or 410, no `Set-Cookie`, at most 50 MB), else says why not.
    pub(crate) fn store(
        &self,
        pending: Pending,
        response: Response<Body>,
        context: Context<'_>,
        threshold: Level,
    ) -> Response<Body> {
        let refused = |cause: String| {
            self.logs
                .execution(context, threshold, storage_aborted(cause));
        };
        let status = response.status();
        if !matches!(status.as_u16(), 200 | 204 | 301 | 410) {
            refused(format!(
                "status {} is not cached (200, 204, 301, 410 are)",
                status.as_u16()
            ));
            return response;
        }
        // `Set-Cookie2` (RFC 2965) is obsolete, but a client that still reads it gets a cookie.
        if response.headers().contains_key(header::SET_COOKIE)
            || response.headers().contains_key(SET_COOKIE2)
        {
            refused("the answer sets a cookie (Set-Cookie)".into());
            return response;
        }
        if response
            .extensions()
            .get::<crate::proxy::CloseDelimited>()
            .is_some()
            && !response.body().is_end_stream()
        {
            refused(
                "the backend's body has no length and ends when its connection closes (a cut \
                 could not be told from its end)"
                    .into(),
            );
            return response;
        }
        if let Some(length) = response.body().size_hint().upper() {
            if length > MAX_STORED_BODY as u64 {
                refused(format!(
                    "the body is {length} bytes, above the {MAX_STORED_BODY} cached at most"
                ));
                return response;
            }
        }
        let head = encode_head(status, response.headers());
        if head.len() > MAX_STORED_HEAD {
            refused(format!(
                "the headers take {} bytes, above the {MAX_STORED_HEAD} cached at most",
                head.len()
            ));
            return response;
        }
        let filling = Filling {
            head,
            chunks: Vec::new(),
            length: 0,
            held: 0,
            budget: self.held.clone(),
            limit: self.options.buffer_bytes,
            pending,
            logs: self.logs.clone(),
            context: OwnedContext::of(context),
            threshold,
        };
        let (parts, body) = response.into_parts();
        let mut tee = Tee {
            inner: body,
            filling: Some(filling),
        };
        // A body that is already complete (empty) is stored at once.
        if tee.inner.is_end_stream() {
            if let Some(filling) = tee.filling.take() {
                filling.finish();
            }
        }
        Response::from_parts(parts, tee.boxed())
    }
}

fn miss(pending: Option<Pending>) -> Looked {
    match pending {
        Some(pending) => Looked::Miss(pending),
        // A lookup without a store policy: nothing is ever stored, so nothing can be found.
        None => Looked::Bypass,
    }
}

/// Sets `X-Cache-Status` on an answer that reached the lookup (before response header
/// transformations, which may remove it).
pub(crate) fn mark(response: &mut Response<Body>, status: CacheStatus) {
    response.headers_mut().insert(CACHE_STATUS, status.value());
}

fn is_cacheable_method(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD || method == Method::OPTIONS
}

fn storage_aborted(cause: String) -> ExecutionRecord {
    ExecutionRecord::new(
        "responseCache.backendResponseStorageAborted",
        Level::Warn,
        "The backend's response was not stored in the response cache.",
    )
    .with("cause", json!(cause))
}

/// `<prefix>rc:<hex SHA-256>` over the deployment id, method, path and key additions.
fn cache_key(store: &SharedState, request: &CacheRequest<'_>, additions: &[Template]) -> String {
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut field = |bytes: &[u8]| {
        digest.update(&(bytes.len() as u64).to_be_bytes());
        digest.update(bytes);
    };
    field(request.deployment_id.as_bytes());
    field(request.method.as_str().as_bytes());
    field(request.path.as_bytes());
    for addition in additions {
        // Each value is a marker and its length before it; the addition ends with another
        // marker. An absent variable has no value, so it differs from an empty one, and two
        // values (repeated header lines or parameters) differ from one that contains ", ".
        addition_values(request, addition, |value| {
            digest.update(&[VALUE]);
            digest.update(&(value.len() as u64).to_be_bytes());
            digest.update(value);
        });
        digest.update(&[END]);
    }
    let hash = digest.finish();
    let mut hex = [0u8; 64];
    for (i, byte) in hash.as_ref().iter().enumerate() {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        hex[2 * i] = DIGITS[usize::from(byte >> 4)];
        hex[2 * i + 1] = DIGITS[usize::from(byte & 15)];
    }
    store.key(
        Operation::ResponseCache,
        std::str::from_utf8(&hex).unwrap_or_default(),
    )
}

/// In the key: a value of a key addition follows.
const VALUE: u8 = 1;
/// In the key: a key addition's values end.
const END: u8 = 0;

/// Gives each value of one `cacheKeyAdditions` entry to `value`, none when the variable is
/// absent from the request. The key must tell apart whatever the backend can tell apart:
/// every line of a header, and every parameter whose name decodes to the wanted one (any
/// case), in order; a backend that decodes `%6Cang` or reads the last `lang` would otherwise
/// answer one request and have it stored under another's key.
fn addition_values(request: &CacheRequest<'_>, template: &Template, mut value: impl FnMut(&[u8])) {
    let [TemplatePart::Variable(variable)] = template.parts() else {
        return value(request.context.expand(template).as_bytes());
    };
    let key = variable.key.as_deref().unwrap_or("");
    match variable.table {
        ContextTable::Headers => {
            for line in request.headers.get_all(key) {
                value(line.as_bytes());
            }
        }
        ContextTable::Query => {
            for pair in request.query.into_iter().flat_map(|q| q.split('&')) {
                let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
                if claimgate_core::path::query_name_is(name, key) {
                    value(raw.as_bytes());
                }
            }
        }
        ContextTable::Host => {
            if let Some(host) = request.headers.get(header::HOST) {
                value(host.as_bytes());
            }
        }
        ContextTable::Auth if variable.sub_key.is_none() => {
            if let Some(claim) = request.context.claims.and_then(|claims| claims.get(key)) {
                value(claimgate_core::claim_text(&claim).as_bytes());
            }
        }
        _ => {
            let text = request.context.variable(variable);
            if !text.is_empty() {
                value(text.as_bytes());
            }
        }
    }
}

/// The status and headers of a stored value, in front of its body: the version, the status
/// (2 bytes), the number of headers (2 bytes), then each name (2-byte length) and value
/// (4-byte length). Hop-by-hop headers are gone already (the relay removed them);
/// `X-Cache-Status` is the gateway's own and never stored.
fn encode_head(status: StatusCode, headers: &HeaderMap) -> Vec<u8> {
    let kept = || headers.iter().filter(|(name, _)| **name != CACHE_STATUS);
    let size: usize = kept().map(|(n, v)| 6 + n.as_str().len() + v.len()).sum();
    let mut out = Vec::with_capacity(5 + size + 4);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&status.as_u16().to_be_bytes());
    let count = kept().count().min(usize::from(u16::MAX));
    out.extend_from_slice(&(count as u16).to_be_bytes());
    for (name, value) in kept().take(count) {
        out.extend_from_slice(&(name.as_str().len() as u16).to_be_bytes());
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// Reads a stored value back into an answer; `None` for anything [`encode_head`] and the
/// body after it did not make (another version, cut short, trailing bytes, bad names).
fn decode(value: Vec<u8>) -> Option<Response<Body>> {
    let value = Bytes::from(value);
    let mut reader = Reader {
        value: &value,
        at: 0,
    };
    if reader.take(1)? != [FORMAT_VERSION] {
        return None;
    }
    let status = StatusCode::from_u16(reader.u16()?).ok()?;
    let count = reader.u16()?;
    // The count is the value's to claim: allocation grows with headers actually read.
    let mut headers = HeaderMap::with_capacity(usize::from(count).min(64));
    for _ in 0..count {
        let length = usize::from(reader.u16()?);
        let name = HeaderName::from_bytes(reader.take(length)?).ok()?;
        let length = reader.u32()? as usize;
        let start = reader.at;
        reader.take(length)?;
        // A slice of the value itself: no copy per header.
        let header_value = HeaderValue::from_maybe_shared(value.slice(start..reader.at)).ok()?;
        headers.try_append(name, header_value).ok()?;
    }
    let length = reader.u32()? as usize;
    let start = reader.at;
    reader.take(length)?;
    if reader.at != value.len() {
        return None;
    }
    let body = value.slice(start..start + length);
    let mut response = Response::new(crate::respond::full(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Some(response)
}

/// Reads a stored value front to back; `None` past its end.
struct Reader<'v> {
    value: &'v [u8],
    at: usize,
}

impl<'v> Reader<'v> {
    fn take(&mut self, n: usize) -> Option<&'v [u8]> {
        let end = self.at.checked_add(n)?;
        let slice = self.value.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// A backend body on its way to the client, copied for the cache as it passes.
struct Tee {
    inner: Body,
    /// `None` once stored or given up.
    filling: Option<Filling>,
}

/// What a [`Tee`] holds for storing; the bytes held count against the gateway's buffer until
/// this is dropped (after the `SET`).
struct Filling {
    head: Vec<u8>,
    chunks: Vec<Bytes>,
    length: usize,
    /// Bytes reserved in `budget`.
    held: usize,
    budget: Arc<AtomicUsize>,
    limit: usize,
    pending: Pending,
    logs: Logs,
    /// The request's log context, for the records written once the body is complete.
    context: OwnedContext,
    threshold: Level,
}

/// A log [`Context`] kept past its request: the three strings in one allocation.
struct OwnedContext {
    /// `source`, `deployment_id`, then the request id when there is one.
    text: String,
    source_end: usize,
    deployment_end: usize,
    has_request_id: bool,
}

impl OwnedContext {
    fn of(context: Context<'_>) -> Self {
        let request_id = context.request_id.unwrap_or_default();
        let mut text = String::with_capacity(
            context.source.len() + context.deployment_id.len() + request_id.len(),
        );
        text.push_str(context.source);
        let source_end = text.len();
        text.push_str(context.deployment_id);
        let deployment_end = text.len();
        text.push_str(request_id);
        Self {
            text,
            source_end,
            deployment_end,
            has_request_id: context.request_id.is_some(),
        }
    }

    fn context(&self) -> Context<'_> {
        Context {
            source: &self.text[..self.source_end],
            deployment_id: &self.text[self.source_end..self.deployment_end],
            request_id: self
                .has_request_id
                .then(|| &self.text[self.deployment_end..]),
        }
    }
}

impl Filling {
    fn context(&self) -> Context<'_> {
        self.context.context()
    }

    fn abort(self, cause: String) {
        self.logs
            .execution(self.context(), self.threshold, storage_aborted(cause));
    }

    /// Takes `chunk`, or says why storing stops.
    fn add(&mut self, chunk: &Bytes) -> Result<(), String> {
        let n = chunk.len();
        if self.length + n > MAX_STORED_BODY {
            return Err(format!(
                "the body is larger than the {MAX_STORED_BODY} bytes cached at most"
            ));
        }
        let limit = self.limit;
        self.budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(n).filter(|total| *total <= limit)
            })
            .map_err(|_| {
                format!(
                    "--response-cache-buffer-mib is in use by other answers being stored ({} bytes)",
                    limit
                )
            })?;
        self.held += n;
        self.length += n;
        self.chunks.push(chunk.clone());
        Ok(())
    }

    /// The body is complete: writes the value in the background.
    fn finish(mut self) {
        tokio::spawn(async move {
            let length = (self.length as u32).to_be_bytes();
            // The head, the body's length and its chunks go into the command as they are: the
            // value is not assembled in a buffer of its own first (unless it is sealed).
            let mut parts = Vec::with_capacity(2 + self.chunks.len());
            parts.push(&self.head[..]);
            parts.push(&length[..]);
            parts.extend(self.chunks.iter().map(|chunk| &chunk[..]));
            let pending = &self.pending;
            let stored = pending
                .store
                .store_parts(Operation::ResponseCache, &pending.key, &parts, pending.ttl)
                .await;
            drop(parts);
            // The bytes stay counted against the buffer until the value is written.
            self.chunks = Vec::new();
            match stored {
                Ok(()) if Level::Info >= self.threshold => self.logs.execution(
                    self.context(),
                    self.threshold,
                    ExecutionRecord::new(
                        "responseCache.backendResponseStoredInCache",
                        Level::Info,
                        "The backend's response was stored in the response cache.",
                    )
                    .with("timeToLiveInSeconds", json!(pending.ttl.as_secs())),
                ),
                Ok(()) => {}
                Err(cause) => self.abort(format!("the cache server did not store it: {cause}")),
            }
        });
    }
}

impl Drop for Filling {
    fn drop(&mut self) {
        self.budget.fetch_sub(self.held, Ordering::Relaxed);
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        if let Some(filling) = self.filling.take() {
            filling.abort("the client went away before the body was complete".into());
        }
    }
}

impl http_body::Body for Tee {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(filling)) = (frame.data_ref(), this.filling.as_mut()) {
                    if let Err(cause) = filling.add(data) {
                        if let Some(filling) = this.filling.take() {
                            filling.abort(cause);
                        }
                    }
                }
                // hyper stops polling once the body says it ended.
                if this.inner.is_end_stream() {
                    if let Some(filling) = this.filling.take() {
                        filling.finish();
                    }
                }
            }
            Poll::Ready(Some(Err(error))) => {
                if let Some(filling) = this.filling.take() {
                    filling.abort(format!("the backend's body failed: {error}"));
                }
            }
            Poll::Ready(None) => {
                if let Some(filling) = this.filling.take() {
                    filling.finish();
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let mut value = encode_head(StatusCode::from_u16(status).unwrap(), &map);
        value.extend_from_slice(&(body.len() as u32).to_be_bytes());
        value.extend_from_slice(body);
        value
    }

    async fn body_of(response: Response<Body>) -> Vec<u8> {
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec()
    }

    #[tokio::test]
    async fn values_decode_to_what_was_encoded() {
        let value = round_trip(
            301,
            &[
                ("location", "/elsewhere"),
                ("vary", "a"),
                ("vary", "b"),
                ("x-cache-status", "MISS"),
            ],
            b"moved",
        );
        let response = decode(value).unwrap();
        assert_eq!(response.status(), 301);
        assert_eq!(response.headers()["location"], "/elsewhere");
        let vary: Vec<_> = response.headers().get_all("vary").iter().collect();
        assert_eq!(vary, ["a", "b"]);
        assert!(response.headers().get(CACHE_STATUS).is_none());
        assert_eq!(body_of(response).await, b"moved");
        let empty = decode(round_trip(204, &[], b"")).unwrap();
        assert_eq!(empty.status(), 204);
        assert!(body_of(empty).await.is_empty());
    }

    #[test]
    fn anything_else_is_not_a_value() {
        let good = round_trip(200, &[("content-type", "text/plain")], b"hello");
        assert!(decode(good.clone()).is_some());
        // Every truncation, one extra byte, another version, garbage: never an answer.
        for cut in 0..good.len() {
            assert!(decode(good[..cut].to_vec()).is_none(), "cut at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode(longer).is_none());
        let mut version = good.clone();
        version[0] = 2;
        assert!(decode(version).is_none());
        let mut status = good.clone();
        status[1..3].copy_from_slice(&1000u16.to_be_bytes());
        assert!(decode(status).is_none());
        let mut huge = good.clone();
        let body_length_at = good.len() - 5 - 4;
        huge[body_length_at..body_length_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(huge).is_none());
        assert!(decode(b"{\"status\":200}".to_vec()).is_none());
        assert!(decode(b"\x01\x00\xc8\xff\xff".to_vec()).is_none());
        // A header name that is no header name.
        let mut bad_name = round_trip(200, &[("x-a", "1")], b"");
        bad_name[7] = b' ';
        assert!(decode(bad_name).is_none());
    }
}
