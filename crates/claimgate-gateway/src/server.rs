//! The gateway: accepts connections (HTTP/1.1 and h2c), finds the deployment and route, asks
//! the core for a verdict with the keys at hand, enforces it, and writes OCI's logs.

use crate::context::RequestContext;
use crate::keys::{Lookup, RemoteKeys, REFETCH_COOLDOWN};
use crate::logs::{Context, ExecutionRecord, Level, Logs};
use crate::proxy::{backend_request, relay_response, BackendClient};
use crate::respond::{self, Body};
use claimgate_config::{Authentication, Backend, Deployment, KeySource, LogLevel};
use claimgate_core::{
    evaluate, evaluate_cached, route, Decision, Failure, HeaderValues, KeyMaterial, RequestView,
    UnixTime, Unrouted, Verdict,
};
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde_json::{json, Map};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// The largest request body accepted (OCI: 20 MB); larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 20 * 1024 * 1024;

/// How the gateway runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bounds reading a request's headers (OCI: 15 s).
    pub read_timeout: Duration,
    /// How long in-flight requests may finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// Minimum time between two JWKS fetch attempts of one deployment.
    pub jwks_cooldown: Duration,
    /// Memory the verified-token cache may use, in bytes (0 disables it).
    pub token_cache_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(30),
            jwks_cooldown: REFETCH_COOLDOWN,
            token_cache_bytes: 32 * 1024 * 1024,
        }
    }
}

/// One deployment as served.
#[derive(Debug)]
struct Served {
    /// Position in the served set, for cache keys.
    index: u32,
    deployment: Deployment,
    keys: Option<Arc<RemoteKeys>>,
    threshold: Level,
}

/// A running gateway's shared state.
#[derive(Debug)]
pub struct Gateway {
    served: Vec<Served>,
    cache: crate::cache::TokenCache,
    logs: Logs,
    client: BackendClient,
    options: Options,
}

fn level(configured: Option<LogLevel>) -> Level {
    match configured {
        Some(LogLevel::Warn) => Level::Warn,
        Some(LogLevel::Error) => Level::Error,
        _ => Level::Info,
    }
}

impl Gateway {
    /// Builds the gateway and loads every remote key set once (failures are logged; requests
    /// then get 500 until a fetch succeeds).
    pub async fn start(
        deployments: Vec<Deployment>,
        logs: Logs,
        options: Options,
    ) -> Result<Arc<Self>, String> {
        let client = BackendClient::new()?;
        let mut served = Vec::with_capacity(deployments.len());
        for deployment in deployments {
            let threshold = level(deployment.execution_log_level);
            let keys = match &deployment.authentication {
                Authentication::Jwt(policy) => match &policy.keys {
                    KeySource::RemoteJwks(remote) => Some(Arc::new(RemoteKeys::new(
                        remote.uri.clone(),
                        remote.ssl_verify_disabled,
                        remote.max_cache_hours,
                        options.jwks_cooldown,
                        policy.flavor.log_prefix(),
                        threshold,
                        logs.clone(),
                        deployment.label().to_owned(),
                        deployment.id.clone(),
                    ))),
                    KeySource::Static(_) => None,
                },
                _ => None,
            };
            served.push(Served {
                index: served.len() as u32,
                deployment,
                keys,
                threshold,
            });
        }
        for s in &served {
            if let Some(keys) = &s.keys {
                keys.refresh(None).await;
            }
        }
        let cache = crate::cache::TokenCache::new(options.token_cache_bytes);
        Ok(Arc::new(Self {
            served,
            cache,
            logs,
            client,
            options,
        }))
    }

    /// JWKS fetch attempts so far, per deployment id (for tests and, later, metrics).
    pub fn key_fetches(&self) -> Vec<(String, u64)> {
        self.served
            .iter()
            .filter_map(|s| {
                s.keys
                    .as_ref()
                    .map(|k| (s.deployment.id.clone(), k.fetch_count()))
            })
            .collect()
    }

    /// Serves connections from `listener` until `shutdown` resolves, then lets in-flight
    /// requests finish for at most the shutdown grace.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut builder =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.options.read_timeout)
            .max_buf_size(8 * 1024);
        builder.http2().max_header_list_size(8 * 1024);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, peer)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let gateway = self.clone();
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let gateway = gateway.clone();
                        async move { Ok::<_, std::convert::Infallible>(gateway.handle(request, peer).await) }
                    });
                    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service).into_owned();
                    let watched = graceful.watch(connection);
                    tokio::spawn(async move {
                        let _ = watched.await;
                    });
                }
                () = &mut shutdown => break,
            }
        }
        drop(listener);
        let _ = tokio::time::timeout(self.options.shutdown_grace, graceful.shutdown()).await;
        Ok(())
    }

    /// Answers one request.
    pub async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let request_id = crate::ids::request_id(
            request
                .headers()
                .get("opc-request-id")
                .map(HeaderValue::as_bytes),
        );
        let path = request.uri().path().to_owned();
        let Some(served) = self.find(&path) else {
            return with_request_id(respond::error(404), &request_id);
        };
        let (parts, body) = request.into_parts();
        let deployment = &served.deployment;
        let context = Context {
            source: deployment.label(),
            deployment_id: &deployment.id,
            request_id: Some(&request_id),
        };
        let view = PartsView(&parts);
        let verdict = self.judge(served, &view).await;
        let threshold = verdict
            .route
            .as_ref()
            .and_then(|r| deployment.routes.get(r.index))
            .and_then(|r| r.execution_log_level)
            .map_or(served.threshold, |l| level(Some(l)));
        self.log_verdict(&verdict, context, threshold);

        let too_large = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > MAX_BODY_BYTES as u64);
        let response = match (&verdict.decision, &verdict.unrouted) {
            (Decision::Deny, Some(Unrouted::MethodNotAllowed { allow })) => {
                respond::method_not_allowed(allow)
            }
            (Decision::Deny, _) => respond::error(verdict.status.unwrap_or(401)),
            (Decision::Allow, _) if too_large => {
                self.logs.execution(
                    context,
                    threshold,
                    ExecutionRecord::new(
                        "request.bodyTooLarge",
                        Level::Error,
                        format!("The request body is larger than {MAX_BODY_BYTES} bytes."),
                    ),
                );
                respond::error(413)
            }
            (Decision::Allow, _) => {
                self.forward(
                    &verdict,
                    deployment,
                    &parts,
                    body,
                    peer,
                    &request_id,
                    context,
                    threshold,
                )
                .await
            }
        };
        let response = with_request_id(response, &request_id);
        if verdict.route.is_some() || verdict.unrouted.is_some() {
            self.access_log(context, &parts, &response, peer, started, deployment);
        }
        response
    }

    fn find(&self, path: &str) -> Option<&Served> {
        self.served
            .iter()
            .filter(|s| route::strip_prefix(&s.deployment.path_prefix, path).is_some())
            .max_by_key(|s| s.deployment.path_prefix.len())
    }

    /// Evaluates with the keys at hand; on an unknown kid, refreshes the remote set once
    /// (single-flight, rate-limited) and evaluates again.
    async fn judge(&self, served: &Served, view: &PartsView<'_>) -> Verdict {
        let now = wall_clock();
        let cache_enabled = self.options.token_cache_bytes > 0;
        let Some(keys) = &served.keys else {
            // Static keys (or none): generation 0 of this deployment.
            let scoped = self.cache.scoped(served.index, 0);
            let cache = cache_enabled.then_some(&scoped as &dyn claimgate_core::VerificationCache);
            let material = KeyMaterial::Unavailable {
                reason: "no remote key set",
            };
            return evaluate_cached(&served.deployment, view, material, now, cache);
        };
        match keys.lookup().await {
            Lookup::Unavailable(reason) => evaluate(
                &served.deployment,
                view,
                KeyMaterial::Unavailable { reason: &reason },
                now,
            ),
            Lookup::Keys(snapshot) => {
                let scoped = self.cache.scoped(served.index, snapshot.generation);
                let cache =
                    cache_enabled.then_some(&scoped as &dyn claimgate_core::VerificationCache);
                let verdict = evaluate_cached(
                    &served.deployment,
                    view,
                    KeyMaterial::Keys(&snapshot.keys),
                    now,
                    cache,
                );
                let unknown_kid = verdict
                    .failures()
                    .any(|c| matches!(c.failure(), Some(Failure::KeyUnknownKid { .. })));
                if !unknown_kid {
                    return verdict;
                }
                match keys
                    .refresh_for_unknown_kid(Some(snapshot.generation))
                    .await
                {
                    Some(newer) => evaluate(
                        &served.deployment,
                        view,
                        KeyMaterial::Keys(&newer.keys),
                        wall_clock(),
                    ),
                    None => verdict,
                }
            }
        }
    }

    /// Verified-token cache (hits, misses) so far.
    pub fn token_cache_counts(&self) -> (u64, u64) {
        self.cache.counts()
    }

    /// One execution record per failed check (with what was expected and found, never the
    /// token), then the success or authorization record.
    fn log_verdict(&self, verdict: &Verdict, context: Context<'_>, threshold: Level) {
        for event in verdict.events() {
            let mut record =
                ExecutionRecord::new(event.code, Level::from_name(event.level), event.message);
            if let Some(check) = event.check.and_then(|i| verdict.checks.get(i)) {
                record = record.with("check", json!(check.id.to_string()));
                if let Some(expected) = &check.expected {
                    record = record.with("expected", expected.clone());
                }
                if let Some(actual) = &check.actual {
                    record = record.with("actual", actual.clone());
                }
                if let Some(fix) = check.fix() {
                    record = record.with("fix", json!(fix));
                }
                if check.unverified {
                    record = record.with("unverified", json!(true));
                }
            }
            self.logs.execution(context, threshold, record);
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        verdict: &Verdict,
        deployment: &Deployment,
        parts: &http::request::Parts,
        body: Incoming,
        peer: SocketAddr,
        request_id: &str,
        context: Context<'_>,
        threshold: Level,
    ) -> Response<Body> {
        let Some(route_info) = &verdict.route else {
            return respond::error(404);
        };
        let Some(route) = deployment.routes.get(route_info.index) else {
            return respond::error(404);
        };
        match &route.backend {
            Backend::Stock(stock) => respond::stock(stock, parts.method == http::Method::HEAD),
            Backend::Unsupported { kind } => {
                self.logs.execution(
                    context,
                    threshold,
                    ExecutionRecord::new(
                        "httpBackend.requestError",
                        Level::Error,
                        format!("{kind} is not served by claimgate."),
                    ),
                );
                respond::error(502)
            }
            Backend::Http(backend) => {
                let request_context = RequestContext {
                    path_params: &route_info.params,
                    claims: verdict.claims.as_ref(),
                    headers: &parts.headers,
                    query: parts.uri.query(),
                    host: parts
                        .headers
                        .get(http::header::HOST)
                        .and_then(|v| v.to_str().ok()),
                };
                let url = request_context.expand_url(&backend.url);
                let body: Body = http_body_util::Limited::new(body, MAX_BODY_BYTES).boxed();
                let outbound =
                    match backend_request(&url, parts.uri.query(), parts, body, peer, request_id) {
                        Ok(r) => r,
                        Err(reason) => {
                            self.logs.execution(
                                context,
                                threshold,
                                ExecutionRecord::new(
                                    "httpBackend.urlInvalid",
                                    Level::Error,
                                    reason,
                                ),
                            );
                            return respond::error(502);
                        }
                    };
                let timeout = Duration::from_secs_f64(
                    backend.connect_timeout_seconds
                        + backend.send_timeout_seconds
                        + backend.read_timeout_seconds,
                );
                match self
                    .client
                    .send(outbound, backend.ssl_verify_disabled, timeout)
                    .await
                {
                    Ok(response) => relay_response(response),
                    Err(error) => {
                        self.logs.execution(
                            context,
                            threshold,
                            ExecutionRecord::new(
                                "httpBackend.requestError",
                                Level::Error,
                                format!(
                                    "Request to the backend failed: {} ({}).",
                                    error.token(),
                                    error.detail()
                                ),
                            )
                            .with("cause", json!(error.token()))
                            .with("backendUrl", json!(url)),
                        );
                        respond::error(error.status())
                    }
                }
            }
        }
    }

    fn access_log(
        &self,
        context: Context<'_>,
        parts: &http::request::Parts,
        response: &Response<Body>,
        peer: SocketAddr,
        started: Instant,
        deployment: &Deployment,
    ) {
        let uri = redacted_uri(parts, deployment);
        let protocol = format!("{:?}", parts.version);
        let mut data = Map::new();
        data.insert("httpMethod".into(), json!(parts.method.as_str()));
        data.insert("requestUri".into(), json!(uri));
        data.insert("serverProtocol".into(), json!(protocol));
        data.insert("status".into(), json!(response.status().as_u16()));
        data.insert(
            "bodyBytesSent".into(),
            json!(http_body::Body::size_hint(response.body())
                .exact()
                .unwrap_or(0)),
        );
        data.insert(
            "requestDuration".into(),
            json!((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0),
        );
        data.insert("remoteAddr".into(), json!(peer.ip().to_string()));
        data.insert(
            "httpUserAgent".into(),
            json!(parts
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")),
        );
        data.insert(
            "message".into(),
            json!(format!("{} {} {}", parts.method, uri, protocol)),
        );
        self.logs.access(context, data);
    }
}

/// The request URI for the access log, with a query-parameter token replaced: tokens are never
/// logged.
fn redacted_uri(parts: &http::request::Parts, deployment: &Deployment) -> String {
    let path = parts.uri.path();
    let Some(query) = parts.uri.query() else {
        return path.to_owned();
    };
    let token_param = match &deployment.authentication {
        Authentication::Jwt(policy) => match &policy.location {
            claimgate_config::TokenLocation::Query { name } => Some(name.as_str()),
            _ => None,
        },
        _ => None,
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if Some(name) == token_param => format!("{name}=[redacted]"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

fn with_request_id(mut response: Response<Body>, request_id: &str) -> Response<Body> {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("opc-request-id", value);
    }
    response
}

fn wall_clock() -> UnixTime {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    UnixTime(seconds as i64)
}

/// The verdict's view of a hyper request.
#[derive(Debug)]
struct PartsView<'a>(&'a http::request::Parts);

impl RequestView for PartsView<'_> {
    fn method(&self) -> &str {
        self.0.method.as_str()
    }
    fn path(&self) -> &str {
        self.0.uri.path()
    }
    fn query(&self) -> Option<&str> {
        self.0.uri.query()
    }
    fn header(&self, name: &str) -> HeaderValues<'_> {
        let mut values = self.0.headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (None, _) => HeaderValues::Absent,
            (Some(v), None) => v.to_str().map_or(HeaderValues::Many(1), HeaderValues::One),
            (Some(_), Some(_)) => HeaderValues::Many(2 + values.count()),
        }
    }
}
