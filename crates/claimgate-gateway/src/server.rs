//! The gateway: accepts connections (HTTP/1.1 and h2c), finds the deployment and route, asks
//! the core for a verdict with the keys at hand, enforces it, and writes OCI's logs.

pub mod admin;
mod custom;
mod edge;
mod oauth2;
mod phases;

use crate::context::RequestContext;
use crate::discovery::{
    AnswerCache, DiscoveredKeys, DiscoveryPolicy, IntrospectError, IntrospectionOptions, Reporter,
};
use crate::keys::{Lookup, RemoteKeys, RemoteKeysConfig, REFETCH_COOLDOWN};
use crate::logs::{Context, ExecutionRecord, Level, Logs, GATEWAY_CONTEXT};
use crate::metrics::Metrics;
use crate::proxy::{backend_request, backend_uri, relay_response, BackendClient};
use crate::respond::{self, Body};
use arc_swap::ArcSwap;
use claimgate_config::{Authentication, Backend, Deployment, KeySource, LogLevel, Secrets};
use claimgate_core::{
    evaluate_prepared, prepare_knowing, route, Explain, Failure, HeaderValues, Introspection,
    KeyMaterial, Prepared, RequestView, UnixTime, Verdict,
};
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// The gateway's logs record failed checks only (with what was expected and found), so its
/// verdicts do not explain passed checks: an allowed request builds no explanation.
const EXPLAIN: Explain = Explain::Failures;

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
    /// Introspection: answer lifetime, calls in flight, endpoints allowed the client secret.
    pub introspection: IntrospectionOptions,
    /// Memory all introspection answers may use, in bytes (`--introspection-cache-mib`).
    pub introspection_cache_bytes: u64,
    /// `--trusted-proxy`: peers whose `X-Forwarded-For` names the client for rate limiting.
    pub trusted_proxies: crate::limit::TrustedProxies,
    /// Where `rateLimiting` buckets live (in this process unless a shared store is given).
    pub rate_limits: Arc<dyn crate::limit::RateLimitStore>,
    /// `--redact-claim-values`: log a short hash instead of claim values.
    pub redact_claim_values: bool,
    /// `--ca`: PEM files whose certificates are trusted for outbound HTTPS besides the system
    /// roots (backends, JWKS, discovery, introspection).
    pub extra_roots: Vec<Vec<u8>>,
    /// Open client connections of one [`Gateway::serve`] (`serve` divides `--max-connections`
    /// among its threads).
    pub max_connections: usize,
    /// `--max-connection-age`: connections are closed gracefully at this age.
    pub max_connection_age: Duration,
    /// `--redis`: rate limits and introspection answers shared with other replicas.
    pub shared_state: Option<crate::shared::SharedStateOptions>,
    /// How long an authorizer function may take to answer (OCI: 10 s; then 502).
    pub function_timeout: Duration,
    /// Memory all authorizer-function answers may use, in bytes.
    pub function_cache_bytes: u64,
    /// `--session-key`: seals OAUTH2 sessions and login flows (the first key seals, all open).
    pub session_keys: Option<Arc<crate::session::SessionKeys>>,
    /// `--gateway`'s `responseCacheDetails` and the cache's own settings.
    pub response_cache: crate::response_cache::ResponseCacheOptions,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(30),
            jwks_cooldown: REFETCH_COOLDOWN,
            token_cache_bytes: 96 * 1024 * 1024,
            introspection: IntrospectionOptions::default(),
            introspection_cache_bytes: 32 * 1024 * 1024,
            trusted_proxies: crate::limit::TrustedProxies::default(),
            rate_limits: Arc::new(crate::limit::LocalStore::default()),
            redact_claim_values: false,
            extra_roots: Vec::new(),
            max_connections: 10_000,
            max_connection_age: Duration::from_secs(3600),
            shared_state: None,
            function_timeout: Duration::from_secs(10),
            function_cache_bytes: 32 * 1024 * 1024,
            session_keys: None,
            response_cache: crate::response_cache::ResponseCacheOptions::default(),
        }
    }
}

/// One deployment as served.
#[derive(Debug)]
struct Served {
    /// Identifies this deployment in this configuration generation, for cache keys: a reload
    /// never reuses a verification made under the previous policy.
    scope: u64,
    deployment: Deployment,
    keys: Option<Arc<RemoteKeys>>,
    discovery: Option<Arc<DiscoveryPolicy>>,
    /// `dynamicAuthentication`: each authentication server's own remote material, in the
    /// order of `authenticationServers`.
    servers: Vec<ServerMaterial>,
    threshold: Level,
    /// Rate limiting and CORS.
    edge: edge::Edge,
    /// What the response cache needs of the deployment (none when no route caches).
    cache: Option<crate::response_cache::DeploymentCache>,
    /// Whether an authorizer function takes `request.body` (read before authentication then),
    /// worked out once at load.
    authorizer_reads_body: bool,
    /// Each route's `HTTP_BACKEND` URL parsed at load, when it is a literal (no `${...}`): a
    /// request without a query forwards to it as it is, with no formatting or parsing.
    backend_uris: Vec<Option<http::Uri>>,
}

/// The verified-token cache as [`prepare_knowing`] asks it: whether a REMOTE_DISCOVERY token
/// is held verified under the keys its policy holds now (then it is a JWT, not an opaque token).
struct HeldTokens<'a> {
    served: &'a Served,
    /// `None` when the cache is off (`--token-cache-mib 0`): every token is parsed.
    cache: Option<&'a crate::cache::TokenCache>,
}

impl claimgate_core::VerifiedTokens for HeldTokens<'_> {
    fn holds(&self, server: Option<usize>, token: &str) -> bool {
        let Some(cache) = self.cache else {
            return false;
        };
        let (scope, _, discovery) = self.served.policy_material(server);
        discovery
            .and_then(|discovery| discovery.keys_generation())
            .is_some_and(|generation| cache.scoped(scope, generation).holds(token))
    }
}

/// The remote key material of one `dynamicAuthentication` server (static keys need none).
#[derive(Debug)]
struct ServerMaterial {
    /// Cache scope of this server: verifications never cross servers.
    scope: u64,
    keys: Option<Arc<RemoteKeys>>,
    discovery: Option<Arc<DiscoveryPolicy>>,
}

impl Served {
    /// Every remote key set of the deployment (its policy's, or its servers').
    fn all_keys(&self) -> impl Iterator<Item = &Arc<RemoteKeys>> {
        self.keys
            .iter()
            .chain(self.servers.iter().filter_map(|m| m.keys.as_ref()))
    }

    /// Every discovery policy of the deployment.
    fn all_discovery(&self) -> impl Iterator<Item = &Arc<DiscoveryPolicy>> {
        self.discovery
            .iter()
            .chain(self.servers.iter().filter_map(|m| m.discovery.as_ref()))
    }

    /// The cache scope and remote material of the policy that judges a request: the selected
    /// `dynamicAuthentication` server's (`Some(index)`), else the deployment's own (none for a
    /// dynamic deployment, whose servers hold it all).
    fn policy_material(&self, server: Option<usize>) -> PolicyMaterial<'_> {
        match server.map(|index| self.servers.get(index)) {
            None => (self.scope, self.keys.as_ref(), self.discovery.as_ref()),
            Some(Some(m)) => (m.scope, m.keys.as_ref(), m.discovery.as_ref()),
            Some(None) => (self.scope, None, None),
        }
    }
}

/// A policy's cache scope, remote key set and discovery policy ([`Served::policy_material`]).
type PolicyMaterial<'a> = (
    u64,
    Option<&'a Arc<RemoteKeys>>,
    Option<&'a Arc<DiscoveryPolicy>>,
);

/// The deployments being served: an immutable set, swapped whole on reload.
#[derive(Debug)]
struct ServedSet {
    served: Vec<Served>,
    /// `--usage-plans` and `--subscribers`, swapped with the deployments.
    subscriptions: Arc<claimgate_config::Subscriptions>,
    /// `--functions`, swapped with the deployments.
    functions: Arc<claimgate_config::FunctionMap>,
}

/// What the deployments refer to beside key material, read from their own files and swapped
/// with them: usage plans and subscribers, the functions map.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub subscriptions: claimgate_config::Subscriptions,
    pub functions: claimgate_config::FunctionMap,
}

/// A running gateway's shared state.
#[derive(Debug)]
pub struct Gateway {
    state: ArcSwap<ServedSet>,
    /// HTTPS on the main listener when set; swapped when certificates are reloaded.
    tls: arc_swap::ArcSwapOption<crate::mtls::TlsServer>,
    generation: std::sync::atomic::AtomicU64,
    cache: crate::cache::TokenCache,
    /// Introspection answers of every deployment, bounded in bytes.
    answers: AnswerCache,
    metrics: Arc<Metrics>,
    logs: Logs,
    client: BackendClient,
    provider: claimgate_keys::ProviderClient,
    /// Authorizer-function calls and their kept answers.
    authorizers: crate::authorizer::Authorizers,
    connections: crate::connection::Connections,
    /// Usage-plan counters: outlive configuration generations (keyed by ids).
    usage: crate::usage::UsageCounters,
    /// The response cache's server and the bytes held for storing.
    response_cache: crate::response_cache::ResponseCache,
    /// `--session-key`, swapped when its files change (`Options::session_keys` at start).
    session_keys: arc_swap::ArcSwapOption<crate::session::SessionKeys>,
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
        secrets: &Secrets,
        logs: Logs,
        options: Options,
    ) -> Result<Arc<Self>, String> {
        Self::start_with(deployments, Resources::default(), secrets, logs, options).await
    }

    /// [`Gateway::start`] with the resources the deployments refer to (`--usage-plans`,
    /// `--subscribers`, `--functions`).
    pub async fn start_with(
        deployments: Vec<Deployment>,
        resources: Resources,
        secrets: &Secrets,
        logs: Logs,
        mut options: Options,
    ) -> Result<Arc<Self>, String> {
        let client = BackendClient::new(&options.extra_roots)?;
        let provider = claimgate_keys::ProviderClient::with_roots(
            Duration::from_secs(5),
            &options.extra_roots,
        )
        .map_err(|e| e.to_string())?;
        let metrics = Arc::new(Metrics::new());
        let cache = crate::cache::TokenCache::new(
            options.token_cache_bytes,
            metrics.token_cache(true),
            metrics.token_cache(false),
        );
        let shared = match &options.shared_state {
            Some(shared_options) => {
                let shared = crate::shared::SharedState::new(
                    shared_options,
                    &options.extra_roots,
                    metrics.clone(),
                    logs.clone(),
                )?;
                // Connecting happens in the background: until Redis answers, requests use the
                // process's own limiters and caches.
                tokio::spawn(shared.clone().keep_connected());
                options.rate_limits =
                    Arc::new(crate::shared_limit::RedisLimitStore::new(shared.clone()));
                Some(shared)
            }
            None => None,
        };
        let response_cache = crate::response_cache::ResponseCache::new(
            options.response_cache.clone(),
            &options.extra_roots,
            metrics.clone(),
            logs.clone(),
        )?;
        let gateway = Self {
            response_cache,
            usage: crate::usage::UsageCounters::new(shared.clone()),
            state: ArcSwap::from_pointee(ServedSet {
                served: Vec::new(),
                subscriptions: Arc::default(),
                functions: Arc::default(),
            }),
            tls: arc_swap::ArcSwapOption::empty(),
            generation: std::sync::atomic::AtomicU64::new(0),
            cache,
            answers: AnswerCache::new(options.introspection_cache_bytes, shared.clone()),
            metrics,
            logs,
            client,
            authorizers: crate::authorizer::Authorizers::new(
                provider.clone(),
                options.function_timeout,
                options.function_cache_bytes,
            ),
            provider,
            connections: crate::connection::Connections::default(),
            session_keys: arc_swap::ArcSwapOption::new(options.session_keys.clone()),
            options,
        };
        let set = gateway
            .build(
                deployments,
                Arc::new(resources.subscriptions),
                Arc::new(resources.functions),
                secrets,
            )
            .await?;
        gateway.state.store(Arc::new(set));
        Ok(Arc::new(gateway))
    }

    /// Prepares a served set: remote key sets and discovery documents are fetched once before
    /// it is used. Fails only when a client secret cannot be resolved.
    async fn build(
        &self,
        deployments: Vec<Deployment>,
        subscriptions: Arc<claimgate_config::Subscriptions>,
        functions: Arc<claimgate_config::FunctionMap>,
        secrets: &Secrets,
    ) -> Result<ServedSet, String> {
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Key sets and discovery state of unchanged sources carry over a reload, so a reload
        // while the identity provider is unreachable never loses the last good keys.
        let previous = self.state.load_full();
        let mut served = Vec::with_capacity(deployments.len());
        for (index, deployment) in deployments.into_iter().enumerate() {
            let threshold = level(deployment.execution_log_level);
            let before = previous.served.iter().find(|s| {
                s.deployment.path_prefix == deployment.path_prefix
                    && s.deployment.label() == deployment.label()
                    && s.deployment.id == deployment.id
                    && s.threshold == threshold
                    && same_key_source(&s.deployment, &deployment)
            });
            let scope = generation << 16 | index as u64;
            let (keys, discovery) = match (&deployment.authentication, before) {
                (Authentication::Jwt(policy), Some(before))
                    if same_client_secret(policy, before, secrets) =>
                {
                    (before.keys.clone(), before.discovery.clone())
                }
                (Authentication::Jwt(policy), None) => {
                    self.remote_material(policy, &deployment, threshold, secrets)?
                }
                _ => (None, None),
            };
            let mut servers = Vec::new();
            if let Authentication::Dynamic(dynamic) = &deployment.authentication {
                for (i, server) in dynamic.servers.iter().enumerate() {
                    let (keys, discovery) = match server.policy.jwt() {
                        Some(policy) => {
                            self.remote_material(policy, &deployment, threshold, secrets)?
                        }
                        None => (None, None),
                    };
                    servers.push(ServerMaterial {
                        scope: scope | ((i as u64 + 1) << 48),
                        keys,
                        discovery,
                    });
                }
            }
            let edge = edge::Edge::new(&deployment, self.options.rate_limits.as_ref());
            served.push(Served {
                backend_uris: literal_backend_uris(&deployment),
                cache: crate::response_cache::DeploymentCache::new(&deployment, &self.metrics),
                authorizer_reads_body: deployment.authentication.authorizer_reads_body(),
                edge,
                scope,
                deployment,
                keys,
                discovery,
                servers,
                threshold,
            });
        }
        for s in &served {
            for keys in s.all_keys() {
                keys.refresh(None).await;
            }
            for discovery in s.all_discovery() {
                let _ = discovery.keys().await;
            }
        }
        Ok(ServedSet {
            served,
            subscriptions,
            functions,
        })
    }

    /// The remote key set or discovery policy one JWT policy needs (none for static keys).
    #[allow(clippy::type_complexity)]
    fn remote_material(
        &self,
        policy: &claimgate_config::JwtPolicy,
        deployment: &Deployment,
        threshold: Level,
        secrets: &Secrets,
    ) -> Result<(Option<Arc<RemoteKeys>>, Option<Arc<DiscoveryPolicy>>), String> {
        Ok(match &policy.keys {
            KeySource::RemoteJwks(remote) => (
                Some(Arc::new(RemoteKeys::new(RemoteKeysConfig {
                    client: self.provider.clone(),
                    uri: remote.uri.clone(),
                    ssl_verify_disabled: remote.ssl_verify_disabled,
                    max_cache_hours: remote.max_cache_hours,
                    cooldown: self.options.jwks_cooldown,
                    log_prefix: policy.flavor.log_prefix(),
                    threshold,
                    logs: self.logs.clone(),
                    metrics: self.metrics.clone(),
                    source: deployment.label().to_owned(),
                    deployment_id: deployment.id.clone(),
                }))),
                None,
            ),
            KeySource::Discovery(config) => {
                let secret = secrets
                    .resolve(
                        &config.client_secret.secret_id,
                        config.client_secret.version,
                    )
                    .map_err(|e| format!("{}: {e}", config.client_secret.path))?
                    .to_owned();
                (
                    None,
                    Some(Arc::new(DiscoveryPolicy::new(
                        config.clone(),
                        secret,
                        self.provider.clone(),
                        Reporter {
                            logs: self.logs.clone(),
                            metrics: self.metrics.clone(),
                            source: deployment.label().to_owned(),
                            deployment_id: deployment.id.clone(),
                            threshold,
                            cooldown: self.options.jwks_cooldown,
                        },
                        &self.options.introspection,
                        self.answers.clone(),
                    ))),
                )
            }
            KeySource::Static(_) => (None, None),
        })
    }

    /// Swaps in a new, already validated set of deployments. Requests in flight finish on the
    /// set they started with.
    pub async fn reload(&self, deployments: Vec<Deployment>, secrets: &Secrets) {
        let (subscriptions, functions) = {
            let state = self.state.load();
            (state.subscriptions.clone(), state.functions.clone())
        };
        self.reload_set(deployments, subscriptions, functions, secrets)
            .await;
    }

    /// [`Gateway::reload`] with new resources, swapped together with the deployments; usage
    /// counters carry over (they are keyed by ids).
    pub async fn reload_with(
        &self,
        deployments: Vec<Deployment>,
        resources: Resources,
        secrets: &Secrets,
    ) {
        self.reload_set(
            deployments,
            Arc::new(resources.subscriptions),
            Arc::new(resources.functions),
            secrets,
        )
        .await;
    }

    async fn reload_set(
        &self,
        deployments: Vec<Deployment>,
        subscriptions: Arc<claimgate_config::Subscriptions>,
        functions: Arc<claimgate_config::FunctionMap>,
        secrets: &Secrets,
    ) {
        let labels: Vec<String> = deployments.iter().map(|d| d.path_prefix.clone()).collect();
        let set = match self
            .build(deployments, subscriptions, functions, secrets)
            .await
        {
            Ok(set) => set,
            Err(error) => return self.reload_rejected(&[error]),
        };
        self.state.store(Arc::new(set));
        self.metrics.reload(true);
        self.logs.execution(
            GATEWAY_CONTEXT,
            Level::Info,
            ExecutionRecord::new(
                "configuration.reloaded",
                Level::Info,
                format!("Configuration reloaded: serving {}.", labels.join(", ")),
            ),
        );
    }

    /// Serves HTTPS with `tls` from now on (new connections), or plain HTTP with `None`.
    /// Connections whose client certificate was judged against client CAs that `tls` changes
    /// are closed gracefully: their verdict was made under the old CAs.
    pub fn set_tls(&self, tls: Option<crate::mtls::TlsServer>) {
        let cas = |tls: Option<&crate::mtls::TlsServer>| tls.and_then(|t| t.client_auth.clone());
        let before = self.tls.swap(tls.map(Arc::new));
        let changed = match (cas(before.as_deref()), cas(self.tls.load().as_deref())) {
            (None, None) => false,
            (Some(before), Some(now)) => !before.same_cas(&now),
            _ => true,
        };
        if changed {
            self.connections.client_cas_changed();
        }
    }

    /// Uses the response cache server of a reloaded `--gateway` file from now on (`None`: the
    /// gateway has no cache). An unchanged server keeps its connection.
    pub fn set_response_cache_server(
        &self,
        server: Option<claimgate_config::ResponseCacheServer>,
    ) -> Result<(), String> {
        self.response_cache.set_server(server)
    }

    /// Records a reload that was refused; the current set keeps serving.
    pub fn reload_rejected(&self, errors: &[String]) {
        self.metrics.reload(false);
        self.logs.execution(
            GATEWAY_CONTEXT,
            Level::Info,
            ExecutionRecord::new(
                "configuration.reloadRejected",
                Level::Error,
                format!(
                    "Configuration reload rejected; the previous configuration keeps serving: {}",
                    errors.join("; ")
                ),
            )
            .with("errors", json!(errors)),
        );
    }

    /// Keeps remote key sets fresh without waiting for traffic: every second, a set that never
    /// loaded or outlived `maxCacheDurationInHours` is refreshed (each refresh still respects
    /// the cooldown). Runs until the task is dropped.
    pub async fn maintain_keys(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let state = self.state.load_full();
            for keys in state.served.iter().flat_map(Served::all_keys) {
                if keys.needs_refresh() {
                    keys.refresh(keys.generation()).await;
                }
            }
            for discovery in state.served.iter().flat_map(Served::all_discovery) {
                if !discovery.is_loaded() {
                    let _ = discovery.keys().await;
                }
            }
        }
    }

    /// The remote key sets that failed to load, as `prefix: uri: cause`, once each has been
    /// tried; `None` while one has not been (its first fetch is still to come or running).
    pub fn key_set_failures(&self) -> Option<Vec<String>> {
        let state = self.state.load();
        let mut failures = Vec::new();
        for served in state.served.iter() {
            for keys in served.all_keys().filter(|k| !k.is_loaded()) {
                failures.push(format!(
                    "{}: {}: {}",
                    served.deployment.path_prefix,
                    keys.uri(),
                    keys.load_failure()?
                ));
            }
        }
        Some(failures)
    }

    /// Why the gateway is not ready (a remote key set never loaded), or `None` when it is.
    pub fn not_ready(&self) -> Option<String> {
        let state = self.state.load();
        let missing: Vec<String> = state
            .served
            .iter()
            .filter_map(|s| {
                if s.all_keys().any(|k| !k.is_loaded()) {
                    Some(format!("{}: key set not loaded", s.deployment.path_prefix))
                } else if s.all_discovery().any(|d| !d.is_loaded()) {
                    Some(format!(
                        "{}: discovery document not loaded",
                        s.deployment.path_prefix
                    ))
                } else {
                    None
                }
            })
            .collect();
        (!missing.is_empty()).then(|| missing.join("; "))
    }

    /// The Prometheus text exposition of the gateway's metrics.
    pub fn metrics_text(&self) -> String {
        self.metrics.encode()
    }

    /// JWKS fetch attempts so far, per deployment id (for tests and, later, metrics).
    pub fn key_fetches(&self) -> Vec<(String, u64)> {
        self.state
            .load()
            .served
            .iter()
            .filter_map(|s| {
                s.keys
                    .as_ref()
                    .map(|k| (s.deployment.id.clone(), k.fetch_count()))
            })
            .collect()
    }

    /// Starts draining (SIGTERM): `/readyz` answers 503, HTTP/1.1 answers carry
    /// `Connection: close`, HTTP/2 connections get GOAWAY and idle connections are closed, on
    /// every listener; accepting goes on until each [`Gateway::serve`]'s `shutdown` resolves.
    /// Logs `server.draining` the first time.
    pub fn begin_draining(&self) {
        if self.connections.begin_draining() {
            self.logs.execution(
                GATEWAY_CONTEXT,
                Level::Info,
                ExecutionRecord::new(
                    "server.draining",
                    Level::Info,
                    "Draining: /readyz answers 503, connections close after their answer; new connections are accepted until the drain delay ends, then in-flight requests get the shutdown grace.",
                ),
            );
        }
    }

    /// Whether the gateway is draining ([`Gateway::begin_draining`]).
    pub fn is_draining(&self) -> bool {
        self.connections.is_draining()
    }

    /// Serves connections from `listener` until `shutdown` resolves, then accepts what is
    /// already queued in the listen backlog (closing the listener over queued connections
    /// would reset them: requests a load balancer already sent), and lets in-flight requests
    /// finish for at most the shutdown grace. Connections are bounded in number, idle time and
    /// age (see [`crate::connection`]); they close gracefully once the gateway drains
    /// ([`Gateway::begin_draining`], implied by `shutdown`).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        use crate::connection::{drive, Activity, Limits, Tracked};
        // Each connection task holds a receiver until it is gone: the end waits for them.
        let (all_closed, open) = tokio::sync::watch::channel(());
        let slots = crate::connection::Slots::new(self.options.max_connections);
        let limits = Limits {
            idle: self.options.read_timeout,
            max_age: self.options.max_connection_age,
            grace: self.options.shutdown_grace,
        };
        let mut builder =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.options.read_timeout)
            .max_buf_size(8 * 1024);
        builder.http2().max_header_list_size(8 * 1024);
        tokio::pin!(shutdown);
        let mut listener = Some(listener);
        // After `shutdown`: the listener, out of the reactor, for non-blocking accepts of what
        // is queued, until none is left.
        let mut backlog: Option<std::net::TcpListener> = None;
        let mut stopped_at = Instant::now();
        loop {
            // A slot first: beyond --max-connections, new connections wait in the backlog.
            let slot = match (&listener, &backlog) {
                (Some(_), _) => tokio::select! {
                    slot = slots.take() => slot,
                    () = &mut shutdown => {
                        backlog = listener.take().map(TcpListener::into_std).transpose()?;
                        stopped_at = Instant::now();
                        continue;
                    }
                },
                // Queued connections wait for a slot while others finish, within the grace.
                _ => match tokio::time::timeout_at(
                    (stopped_at + self.options.shutdown_grace).into(),
                    slots.take(),
                )
                .await
                {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
            };
            let (stream, peer) = match (&listener, &backlog) {
                (Some(accepting), _) => tokio::select! {
                    accepted = accepting.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            crate::connection::back_off_after(&error).await;
                            continue;
                        }
                    },
                    () = &mut shutdown => {
                        backlog = listener.take().map(TcpListener::into_std).transpose()?;
                        stopped_at = Instant::now();
                        continue;
                    }
                },
                (None, Some(queued)) => match queued.accept() {
                    Ok((stream, peer)) => {
                        stream.set_nonblocking(true)?;
                        (tokio::net::TcpStream::from_std(stream)?, peer)
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                    // One connection that failed on its own: the next may be fine.
                    Err(error)
                        if matches!(
                            error.kind(),
                            std::io::ErrorKind::ConnectionAborted
                                | std::io::ErrorKind::ConnectionReset
                                | std::io::ErrorKind::Interrupted
                        ) =>
                    {
                        continue
                    }
                    Err(_) => break,
                },
                (None, None) => break,
            };
            let _ = stream.set_nodelay(true);
            let gateway = self.clone();
            let activity = Activity::new();
            // A connection's service, with the client certificate it presented (mTLS); each
            // response body keeps its request counted in flight until it is sent.
            let service = {
                let activity = activity.clone();
                move |client: Option<Arc<crate::mtls::PeerCertificate>>| {
                    let (gateway, activity) = (gateway.clone(), activity.clone());
                    hyper::service::service_fn(move |request: Request<Incoming>| {
                        let (gateway, client) = (gateway.clone(), client.clone());
                        let in_flight = activity.begin();
                        let http1 = request.version() < http::Version::HTTP_2;
                        // Boxed: hyper moves the service's future into its connection state,
                        // and this one is several KiB (every phase's state); moving a box
                        // copies a pointer (callgrind: 8.6k instructions of memcpy a request).
                        Box::pin(async move {
                            let mut response =
                                gateway.handle(request, peer, client.as_deref()).await;
                            // Draining: the client opens its next connection elsewhere.
                            if http1 && gateway.is_draining() {
                                response.headers_mut().insert(
                                    http::header::CONNECTION,
                                    HeaderValue::from_static("close"),
                                );
                            }
                            Ok::<_, std::convert::Infallible>(
                                response.map(|body| Tracked::new(body, in_flight)),
                            )
                        })
                    })
                }
            };
            let draining = self.connections.draining();
            let open = open.clone();
            match self.tls.load_full() {
                None => {
                    let connection = builder
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service(None))
                        .into_owned();
                    tokio::spawn(async move {
                        drive(connection, &activity, limits, draining, None).await;
                        drop((slot, open));
                    });
                }
                Some(tls_server) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls_server.config.clone());
                    // The handshake runs in the connection's task, bounded like a header read.
                    let builder = builder.clone();
                    let handshake_timeout = self.options.read_timeout;
                    let client_cas = tls_server
                        .client_auth
                        .is_some()
                        .then(|| self.connections.client_ca_changes());
                    tokio::spawn(async move {
                        let Ok(Ok(tls)) =
                            tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await
                        else {
                            return;
                        };
                        // Verified once per connection, judged per request by the deployment.
                        let client = tls_server.client_auth.as_ref().map(|auth| {
                            Arc::new(auth.inspect(tls.get_ref().1.peer_certificates()))
                        });
                        let connection = builder
                            .serve_connection(hyper_util::rt::TokioIo::new(tls), service(client));
                        drive(connection, &activity, limits, draining, client_cas).await;
                        drop((slot, open));
                    });
                }
            }
        }
        // Nothing is queued any more (or the grace ran out waiting for a slot).
        drop((listener, backlog));
        // Every connection closes gracefully (draining started at SIGTERM, or here).
        self.begin_draining();
        drop(open);
        let _ = tokio::time::timeout_at(
            (stopped_at + self.options.shutdown_grace).into(),
            all_closed.closed(),
        )
        .await;
        Ok(())
    }

    /// Serves the admin endpoints (`/livez`, `/readyz`, `/metrics`) on their own listener, in
    /// plain HTTP, until `shutdown` resolves. A connection gets the read timeout for each
    /// request's headers, idle between requests included.
    pub async fn serve_admin(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        self.serve_admin_with(listener, shutdown, None).await
    }

    /// [`Gateway::serve_admin`], plus the troubleshooting page and its API when `ui` is given.
    pub async fn serve_admin_with(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
        ui: Option<admin::AdminUi>,
    ) -> std::io::Result<()> {
        let ui = ui.map(Arc::new);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.options.read_timeout);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _)) => stream,
                        Err(error) => {
                            crate::connection::back_off_after(&error).await;
                            continue;
                        }
                    };
                    let gateway = self.clone();
                    let ui = ui.clone();
                    // The address this client reached (the pod's, under `0.0.0.0`): a Host
                    // naming it is the admin address.
                    let local = stream.local_addr().ok();
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let gateway = gateway.clone();
                        let ui = ui.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                gateway.admin_or_ui(request, ui.as_deref(), local).await,
                            )
                        }
                    });
                    let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                }
                () = &mut shutdown => return Ok(()),
            }
        }
    }

    fn admin(&self, request: &Request<Incoming>) -> Response<Body> {
        let text = |status: u16, content_type: &'static str, body: String| {
            let mut response = Response::new(respond::full(body));
            *response.status_mut() =
                http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(content_type),
            );
            response
        };
        if request.method() != http::Method::GET && request.method() != http::Method::HEAD {
            return respond::method_not_allowed(&["GET", "HEAD"]);
        }
        match request.uri().path() {
            "/livez" => text(200, "text/plain", "ok\n".into()),
            "/readyz" if self.is_draining() => text(
                503,
                "text/plain",
                "not ready: draining (shutting down)\n".into(),
            ),
            "/readyz" => match self.not_ready() {
                None => text(200, "text/plain", "ready\n".into()),
                Some(reason) => text(503, "text/plain", format!("not ready: {reason}\n")),
            },
            "/metrics" => text(
                200,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.metrics_text(),
            ),
            _ => respond::error(404),
        }
    }

    /// Answers one request; `client` is the certificate its TLS connection presented when the
    /// listener has client CAs.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
        client: Option<&crate::mtls::PeerCertificate>,
    ) -> Response<Body> {
        let started = Instant::now();
        let request_id_header = crate::ids::request_id(request.headers().get(&OPC_REQUEST_ID));
        // Always visible ASCII.
        let request_id = request_id_header.to_str().unwrap_or_default();
        let (mut parts, body) = request.into_parts();
        let state = self.state.load_full();
        // Phase `route`, first half: the target is settled and names a deployment (the route
        // itself is matched with authentication, in the verdict).
        if let Err(rejection) = crate::target::settle(&mut parts) {
            self.target_rejected(&state, &parts, rejection, request_id);
            return with_request_id(respond::error(400), &request_id_header);
        }
        let Some(served) = find(&state, parts.uri.path()) else {
            return with_request_id(respond::error(404), &request_id_header);
        };
        let deployment = &served.deployment;
        let context = Context {
            source: deployment.label(),
            deployment_id: &deployment.id,
            request_id: Some(request_id),
        };
        // Phases `rateLimit`, `cors` (preflights) and `mutualTls`.
        if let Some(response) = self
            .before_authentication(served, &parts, peer, client, context, started)
            .await
        {
            return with_request_id(response, &request_id_header);
        }
        let mut exchange = phases::Exchange {
            state: &state,
            served,
            parts,
            body: Some(phases::RequestBody::Streaming(body)),
            peer,
            request_id_header: &request_id_header,
            started,
            context,
            threshold: served.threshold,
            verdict: None,
            usage: None,
            client,
            backend_answered: false,
            csrf: None,
            cache_status: None,
            cache_pending: None,
        };
        let response = self.request_phases(&mut exchange).await;
        self.logs_phase(&mut exchange, response).await
    }

    /// The usage-plan policy (SPEC "Usage plans and subscribers"), after authentication and
    /// authorization, before the backend: which subscriber and entitlement the request counts
    /// under (403 when none), then its rate limit and quota (429). `Ok(None)` when the
    /// deployment has no usage plans; `Ok(Some(..))` when a quota unit was taken, to settle
    /// once the answer's status is known. Sets `request.usage_plan[id]` for the backend.
    async fn usage_plan_phase<'s>(
        &self,
        state: &'s ServedSet,
        served: &'s Served,
        verdict: &Verdict,
        parts: &mut http::request::Parts,
        context: Context<'_>,
        threshold: Level,
    ) -> Result<Option<UsageCounted<'s>>, Response<Body>> {
        use crate::metrics::UsageAction;
        use crate::usage::Counted;
        use claimgate_core::UsagePlanDecision;
        let deployment = &served.deployment;
        let Some(policy) = &deployment.usage_plans else {
            return Ok(None);
        };
        let no_params = Vec::new();
        let params = verdict.route.as_ref().map_or(&no_params, |r| &r.params);
        let request_context = RequestContext::new(parts, params, verdict.claims.as_deref());
        let matched = match claimgate_core::resolve_usage_plan(
            policy,
            &state.subscriptions,
            &deployment.id,
            |location| match (location.table, location.key.as_deref()) {
                // The usual place of a client token, read without a copy.
                (claimgate_config::ContextTable::Headers, Some(name)) => {
                    std::borrow::Cow::Borrowed(
                        parts
                            .headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default(),
                    )
                }
                _ => std::borrow::Cow::Owned(request_context.variable(location)),
            },
        ) {
            UsagePlanDecision::Entitled(matched) => matched,
            UsagePlanDecision::Refused(refusal) => {
                let mut record = ExecutionRecord::new(refusal.code, Level::Warn, refusal.reason);
                if let Some((id, name)) = refusal.subscriber {
                    record = record
                        .with("subscriberId", json!(id))
                        .with("subscriberName", json!(name));
                }
                self.logs.execution(context, threshold, record);
                return Err(respond::forbidden());
            }
        };
        let (plan, entitlement, subscriber) =
            (matched.plan, matched.entitlement, matched.subscriber);
        let key = crate::usage::CounterId {
            plan: &plan.id,
            entitlement: &entitlement.name,
            subscriber: &subscriber.id,
        };
        let limits = crate::usage::Limits::of(entitlement);
        let counted = self.usage.count(key, limits).await;
        let quota = entitlement.quota;
        let record = |code: &'static str,
                      level: Level,
                      message: String,
                      limit: Option<(u64, &'static str)>,
                      period: Option<i64>| {
            let (configured_limit, unit) = limit.unwrap_or((0, "SECOND"));
            let limiting_key = match period {
                Some(start) => format!("{}/{key}", crate::usage::timestamp(start)),
                // A rate limit alone: the second the request was counted in.
                None => format!("{}/{key}", crate::usage::timestamp(unix_now())),
            };
            ExecutionRecord::new(code, level, message)
                .with("configuredLimit", json!(configured_limit))
                .with("configuredUnit", json!(unit))
                .with("entitlementName", json!(entitlement.name))
                .with("limitingKey", json!(limiting_key))
                .with("limitingResourceId", json!(plan.id))
                .with("limitingResourceName", json!(plan.name))
                .with("subscriberId", json!(subscriber.id))
                .with("subscriberName", json!(subscriber.name))
        };
        let quota_limit = quota.map(|q| (q.value, q.unit.name()));
        let ratio = |used: u64| quota.map(|q| used as f64 / q.value.max(1) as f64);
        let metric = |action, used: Option<f64>| {
            self.metrics.usage_plan(
                &plan.id,
                &entitlement.name,
                &subscriber.id,
                action,
                quota.is_some(),
                used,
            )
        };
        let (retry_after, why, limit, period, used) = match counted {
            Counted::RateLimited { retry_after } => (
                retry_after,
                "rate limit is exceeded",
                entitlement.rate_limit.map(|r| (r, "SECOND")),
                None,
                None,
            ),
            Counted::QuotaExhausted {
                retry_after,
                period_start,
                used,
            } => (
                retry_after,
                "quota is spent for this period",
                quota_limit,
                Some(period_start),
                ratio(used),
            ),
            Counted::Admitted { reserved, breached } => {
                let period = reserved.map(|r| r.period_start);
                let limit = quota_limit.or(entitlement.rate_limit.map(|r| (r, "SECOND")));
                let (code, level, action, message) = if breached {
                    (
                        "usagePlans.requestBreachedButAllowed",
                        Level::Warn,
                        UsageAction::BreachedAllowed,
                        "The entitlement's quota is spent for this period; the request is allowed (operationOnBreach ALLOW).",
                    )
                } else {
                    (
                        "usagePlans.requestPermitted",
                        Level::Info,
                        UsageAction::Permitted,
                        "The request is within its usage plan.",
                    )
                };
                // Checked before the record is built: at the usual WARN threshold a permitted
                // request would otherwise build and drop a dozen strings (BENCHMARKS.md).
                if level >= threshold {
                    self.logs.execution(
                        context,
                        threshold,
                        record(code, level, message.to_owned(), limit, period),
                    );
                }
                metric(action, reserved.and_then(|r| ratio(r.used)));
                parts
                    .extensions
                    .insert(crate::context::UsagePlanId(plan.id.clone()));
                return Ok(reserved.map(|reserved| UsageCounted {
                    key,
                    reserved,
                    quota: quota.map_or(1, |q| q.value),
                }));
            }
        };
        self.logs.execution(
            context,
            threshold,
            record(
                "usagePlans.requestRejected",
                Level::Warn,
                format!("The entitlement's {why}; retry in {retry_after} s."),
                limit,
                period,
            ),
        );
        metric(UsageAction::Rejected, used);
        Err(respond::too_many_requests(retry_after))
    }

    /// Gives back the quota unit of a request answered 5xx (OCI: 5xx count toward the rate
    /// limit only): a second round trip to Redis, only then.
    async fn usage_plan_settle(&self, counted: UsageCounted<'_>, status: u16) {
        if status < 500 {
            return;
        }
        if let Some(used) = self.usage.refund(counted.key, counted.reserved).await {
            self.metrics.usage_plan_ratio(
                counted.key.plan,
                counted.key.entitlement,
                counted.key.subscriber,
                used as f64 / counted.quota.max(1) as f64,
            );
        }
    }

    /// Records a request refused before routing (its path or host), under the deployment its
    /// raw path names when there is one.
    fn target_rejected(
        &self,
        state: &ServedSet,
        parts: &http::request::Parts,
        rejection: crate::target::TargetRejection,
        request_id: &str,
    ) {
        let served = find(state, parts.uri.path());
        let (context, threshold) = match served {
            Some(served) => (
                Context {
                    source: served.deployment.label(),
                    deployment_id: &served.deployment.id,
                    request_id: Some(request_id),
                },
                served.threshold,
            ),
            None => (
                Context {
                    request_id: Some(request_id),
                    ..GATEWAY_CONTEXT
                },
                Level::Info,
            ),
        };
        self.logs.execution(context, threshold, rejection.record());
    }

    /// A `MODIFY_RESPONSE` validation failure policy's answer instead of the 401: its status
    /// (a code, or a context variable holding one; 401 when it does not name a final status,
    /// 200-599: a client's `?code=101` must not switch protocols), its message with context
    /// variables as `text/plain; charset=utf-8` with `nosniff` (the message may echo client
    /// input, so no browser may read it as HTML) unless a header transformation sets
    /// `Content-Type`, and its header transformations.
    fn modified_failure(
        &self,
        modify: &claimgate_config::ModifyResponse,
        route: Option<&claimgate_core::RouteInfo>,
        parts: &http::request::Parts,
    ) -> Response<Body> {
        let no_params = Vec::new();
        // Authentication failed: no claim is trusted, so request.auth is empty, except for
        // what an authorizer function that refused the request put in its `context` (OCI:
        // `responseCode` may be `request.auth[responseCode]`).
        let refusal = parts.extensions.get::<custom::FunctionRefusal>();
        let context = RequestContext::new(
            parts,
            route.map_or(&no_params, |r| &r.params),
            refusal.map(|r| &*r.0.claims),
        );
        let status = match &modify.response_code {
            None => 401,
            Some(claimgate_config::ResponseCode::Status(code)) => *code,
            Some(claimgate_config::ResponseCode::Variable(variable)) => context
                .variable(variable)
                .parse::<u16>()
                .ok()
                .filter(|code| (200..=599).contains(code))
                .unwrap_or(401),
        };
        let body = modify
            .response_message
            .as_ref()
            .map(|message| context.expand(message))
            .unwrap_or_default();
        let mut response = Response::new(respond::full(body));
        *response.status_mut() =
            http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::UNAUTHORIZED);
        if let Some(rules) = &modify.header_transformations {
            let _ = crate::transform::headers(rules, response.headers_mut(), &context);
        }
        let headers = response.headers_mut();
        headers
            .entry(http::header::CONTENT_TYPE)
            .or_insert(HeaderValue::from_static("text/plain; charset=utf-8"));
        headers
            .entry(http::header::X_CONTENT_TYPE_OPTIONS)
            .or_insert(HeaderValue::from_static("nosniff"));
        response
    }

    /// Metrics for one request: duration by route, the decision, each failed check.
    fn record(
        &self,
        verdict: &Verdict,
        deployment: &Deployment,
        parts: &http::request::Parts,
        status: u16,
        started: Instant,
    ) {
        let label = deployment.label();
        let route = verdict.route.as_ref().map_or("", |r| r.path.as_str());
        self.metrics.request(
            label,
            route,
            parts.method.as_str(),
            status,
            started.elapsed().as_secs_f64(),
        );
        if verdict.flavor.is_some() && verdict.route.is_some() {
            // The authentication decision: a request only its validations refused was allowed
            // (validation failures have their own metric).
            let decision = if verdict.keys_unavailable() {
                "error"
            } else if verdict.passed_access() {
                "allow"
            } else {
                "deny"
            };
            self.metrics.decision(label, decision);
            for check in verdict.failures() {
                if !matches!(check.failure(), Some(Failure::Validation { .. })) {
                    self.metrics.check_failure(label, check.id.to_string());
                }
            }
        }
    }

    /// Evaluates with the keys at hand; on an unknown kid, refreshes the remote set once
    /// (single-flight, rate-limited) and evaluates again.
    async fn judge(&self, served: &Served, view: &PartsView<'_>) -> Verdict {
        let now = wall_clock();
        let deployment = &served.deployment;
        // Routed, selected (dynamicAuthentication) and, under REMOTE_DISCOVERY, the token
        // classified once: the verdict reuses these choices. A token the cache holds verified
        // is not parsed again to be classified.
        let held = HeldTokens {
            served,
            cache: (self.options.token_cache_bytes > 0).then_some(&self.cache),
        };
        let prepared = prepare_knowing(deployment, view, &held);
        let server = prepared.selection.as_ref().and_then(|s| s.server);
        let (scope, keys, discovery) = served.policy_material(server);
        if let Some(discovery) = discovery {
            // Boxed: the largest future of a verdict, and only for introspection deployments
            // (see `Gateway::authentication`).
            return Box::pin(
                self.judge_discovery(deployment, scope, discovery, prepared, view, now),
            )
            .await;
        }
        let Some(keys) = keys else {
            // Static keys (or none): generation 0 of this key set.
            let scoped = self.cache.scoped(scope, 0);
            let cache_enabled = self.options.token_cache_bytes > 0;
            let cache = cache_enabled.then_some(&scoped as &dyn claimgate_core::VerificationCache);
            let material = KeyMaterial::Unavailable {
                reason: "no remote key set",
            };
            return evaluate_prepared(
                deployment,
                view,
                prepared,
                material,
                Introspection::NotDone,
                now,
                cache,
                EXPLAIN,
            );
        };
        let lookup = keys.lookup().await;
        self.judge_with_remote(deployment, scope, keys, lookup, prepared, view, now)
            .await
    }

    /// Evaluates with a remote key set; on an unknown kid, refreshes it once (single-flight,
    /// rate-limited) and evaluates again with the newer keys.
    #[allow(clippy::too_many_arguments)]
    async fn judge_with_remote(
        &self,
        deployment: &Deployment,
        scope: u64,
        keys: &RemoteKeys,
        lookup: Lookup,
        prepared: Prepared<'_>,
        view: &PartsView<'_>,
        now: UnixTime,
    ) -> Verdict {
        let evaluate = |prepared, material, now, cache| {
            evaluate_prepared(
                deployment,
                view,
                prepared,
                material,
                Introspection::NotDone,
                now,
                cache,
                EXPLAIN,
            )
        };
        let snapshot = match lookup {
            Lookup::Unavailable(reason) => {
                let material = KeyMaterial::Unavailable { reason: &reason };
                return evaluate(prepared, material, now, None);
            }
            Lookup::Keys(snapshot) => snapshot,
        };
        let scoped = self.cache.scoped(scope, snapshot.generation);
        let cache = (self.options.token_cache_bytes > 0)
            .then_some(&scoped as &dyn claimgate_core::VerificationCache);
        // Kept for the rare second evaluation (an unknown kid) only.
        let again = prepared.clone();
        let verdict = evaluate(prepared, KeyMaterial::Keys(&snapshot.keys), now, cache);
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
            Some(newer) => evaluate(again, KeyMaterial::Keys(&newer.keys), wall_clock(), None),
            None => verdict,
        }
    }

    /// REMOTE_DISCOVERY: opaque tokens are introspected, JWTs verified with the `jwks_uri` keys.
    async fn judge_discovery(
        &self,
        deployment: &Deployment,
        scope: u64,
        discovery: &DiscoveryPolicy,
        prepared: Prepared<'_>,
        view: &PartsView<'_>,
        now: UnixTime,
    ) -> Verdict {
        if let Some(token) = prepared.introspect {
            let answer = discovery.introspect(token).await;
            let introspection = match &answer {
                Ok(answer) => Introspection::Answer(&answer.claims),
                Err(IntrospectError::Discovery(reason)) => {
                    Introspection::DiscoveryUnavailable { reason }
                }
                Err(IntrospectError::Introspection(reason)) => {
                    Introspection::Unavailable { reason }
                }
            };
            let material = KeyMaterial::Unavailable {
                reason: "not needed for an opaque token",
            };
            return evaluate_prepared(
                deployment,
                view,
                prepared,
                material,
                introspection,
                now,
                None,
                EXPLAIN,
            );
        }
        let unavailable = |prepared, material| {
            evaluate_prepared(
                deployment,
                view,
                prepared,
                material,
                Introspection::NotDone,
                now,
                None,
                EXPLAIN,
            )
        };
        match discovery.keys().await {
            DiscoveredKeys::DiscoveryUnavailable(reason) => unavailable(
                prepared,
                KeyMaterial::DiscoveryUnavailable { reason: &reason },
            ),
            DiscoveredKeys::Keys(lookup) => match discovery.remote_keys() {
                Some(keys) => {
                    self.judge_with_remote(deployment, scope, &keys, lookup, prepared, view, now)
                        .await
                }
                None => unavailable(
                    prepared,
                    KeyMaterial::Unavailable {
                        reason: "no key set",
                    },
                ),
            },
        }
    }

    /// Authorizer-function calls made so far (answers served from the cache not counted).
    pub fn function_calls(&self) -> u64 {
        self.authorizers.calls()
    }

    /// Verified-token cache (hits, misses) so far.
    pub fn token_cache_counts(&self) -> (u64, u64) {
        self.cache.counts()
    }

    /// One execution record per failed check (with what was expected and found, never the
    /// token), then the success or authorization record.
    fn log_verdict(&self, verdict: &Verdict, context: Context<'_>, threshold: Level) {
        // Request validation is recorded by its own phase, after the usage plan's records.
        for event in verdict.access_events() {
            let level = Level::from_name(event.level);
            // Checked before the record is built: most events are below the deployment's level
            // (at WARN, every allowed request's), and their values would be cloned for nothing.
            if level < threshold {
                continue;
            }
            let mut record = ExecutionRecord::new(event.code, level, event.message);
            if let Some(check) = event.check.and_then(|i| verdict.checks.get(i)) {
                record = record.with("check", json!(check.id.to_string()));
                if let Some(expected) = &check.expected {
                    record = record.with("expected", Value::clone(expected));
                }
                if let Some(actual) = &check.actual {
                    let actual = if self.options.redact_claim_values {
                        redacted(actual)
                    } else {
                        Value::clone(actual)
                    };
                    record = record.with("actual", actual);
                }
                if let Some(fix) = check.fix() {
                    // A fix quotes the token's values; with redaction it is left out.
                    let fix = if self.options.redact_claim_values {
                        "(claim values are redacted in this log: run `claimgate check` with the token to see the fix)".to_owned()
                    } else {
                        fix
                    };
                    record = record.with("fix", json!(fix));
                }
                if check.unverified {
                    record = record.with("unverified", json!(true));
                }
            }
            self.logs.execution(context, threshold, record);
        }
    }

    /// The answer of the exchange's route backend (`Err`: the gateway's own error answer).
    async fn forward(
        &self,
        x: &phases::Exchange<'_>,
        body: Body,
    ) -> Result<Response<Body>, Response<Body>> {
        let (verdict, deployment, functions, parts) = (
            x.verdict(),
            &x.served.deployment,
            &x.state.functions,
            &x.parts,
        );
        let (peer, request_id, context, threshold) =
            (x.peer, x.request_id_header, x.context, x.threshold);
        let Some(route_info) = &verdict.route else {
            return Err(respond::error(404));
        };
        let Some(route) = deployment.routes.get(route_info.index) else {
            return Err(respond::error(404));
        };
        let request_context =
            RequestContext::new(parts, &route_info.params, verdict.claims.as_deref());
        let mut problems = Vec::new();
        // The client's query after the route's transformations: what an HTTP backend gets, and
        // what a function reads in `Fn-Http-Request-Url`.
        let routed_query = || match &route.query_parameter_transformations {
            Some(rules) => crate::transform::query(rules, parts.uri.query(), &request_context),
            None => parts.uri.query().map(str::to_owned),
        };
        let backend = match &route.backend {
            Backend::Dynamic(routing) => {
                let chosen = self.route_dynamically(
                    routing,
                    verdict,
                    parts,
                    &route_info.params,
                    context,
                    threshold,
                );
                match chosen {
                    Some(backend) => backend,
                    None => return Err(respond::error(claimgate_core::NO_RULE_STATUS)),
                }
            }
            backend => backend,
        };
        let response = match backend {
            Backend::Stock(stock) => respond::stock(stock, parts.method == http::Method::HEAD),
            Backend::Functions(function) => {
                let query = routed_query();
                let function_id = function.function_id.as_str();
                // `serve` refuses a deployment whose functions the map lacks, and a reload
                // that would drop one: this is a safety net.
                let Some(url) = functions.url(function_id) else {
                    self.logs.execution(
                        context,
                        threshold,
                        function_failed(
                            function_id,
                            format!("Function {function_id} has no URL in --functions."),
                            "NOT_MAPPED",
                        ),
                    );
                    return Err(respond::error(502));
                };
                // The request an HTTP backend at the function's URL would get, then wrapped.
                let inner = backend_uri(url, None, None).and_then(|uri| {
                    backend_request(uri, parts, body, peer, request_id, |headers| {
                        transform_headers(route, headers, &request_context, &mut problems);
                    })
                });
                for problem in problems.drain(..) {
                    self.logs.execution(context, threshold, problem);
                }
                let inner = match inner {
                    Ok(inner) => inner,
                    Err(reason) => {
                        self.logs.execution(
                            context,
                            threshold,
                            function_failed(function_id, reason, "URL_INVALID"),
                        );
                        return Err(respond::error(502));
                    }
                };
                let request_url = match &query {
                    Some(q) if !q.is_empty() => format!("{}?{q}", parts.uri.path()),
                    _ => parts.uri.path().to_owned(),
                };
                let invocation = crate::functions::invocation(
                    inner,
                    &parts.method,
                    &request_url,
                    parts.headers.get(http::header::HOST),
                );
                // Boxed: rare, and large (see `Gateway::authentication`).
                match Box::pin(self.invoke_function(invocation)).await {
                    Ok(response) => response,
                    Err(failure) => {
                        let status = failure.status();
                        let record = if status == 502 {
                            function_failed(
                                function_id,
                                format!(
                                    "Request to the function failed: {} ({}).",
                                    failure.cause(),
                                    failure.detail()
                                ),
                                failure.cause(),
                            )
                        } else {
                            body_invalid(&format!(
                                "The request body is invalid: {}.",
                                failure.detail()
                            ))
                        };
                        self.logs.execution(context, threshold, record);
                        return Err(respond::error(status));
                    }
                }
            }
            Backend::Dynamic(_) | Backend::OAuth2Login | Backend::OAuth2Logout(_) => {
                let kind = backend.kind();
                self.logs.execution(
                    context,
                    threshold,
                    ExecutionRecord::new(
                        "httpBackend.requestError",
                        Level::Error,
                        format!("{kind} is not served by claimgate."),
                    ),
                );
                return Err(respond::error(502));
            }
            Backend::Http(backend) => {
                let url = match request_context.expand_url(&backend.url) {
                    Ok(url) => url,
                    Err(why) => {
                        let rejection = crate::target::TargetRejection::Path(why);
                        self.logs.execution(context, threshold, rejection.record());
                        return Err(respond::error(400));
                    }
                };
                let query = routed_query();
                let parsed = x.served.backend_uris.get(route_info.index);
                let outbound = backend_uri(&url, parsed.and_then(Option::as_ref), query.as_deref())
                    .and_then(|uri| {
                        backend_request(uri, parts, body, peer, request_id, |headers| {
                            transform_headers(route, headers, &request_context, &mut problems);
                        })
                    });
                let outbound = match outbound {
                    Ok(r) => r,
                    Err(reason) => {
                        self.logs.execution(
                            context,
                            threshold,
                            ExecutionRecord::new("httpBackend.urlInvalid", Level::Error, reason),
                        );
                        return Err(respond::error(502));
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
                    Err(error @ crate::proxy::BackendError::ClientBody { .. }) => {
                        self.logs.execution(
                            context,
                            threshold,
                            body_invalid(&format!(
                                "The request body is invalid: {}.",
                                error.detail()
                            )),
                        );
                        return Err(respond::error(error.status()));
                    }
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
                        return Err(respond::error(error.status()));
                    }
                }
            }
        };
        for problem in problems {
            self.logs.execution(context, threshold, problem);
        }
        Ok(response)
    }

    /// `ORACLE_FUNCTIONS_BACKEND`: calls the function ([`crate::functions::invocation`]) and
    /// unwraps its answer, all within [`crate::functions::TIMEOUT`].
    async fn invoke_function(
        &self,
        invocation: Request<Body>,
    ) -> Result<Response<Body>, crate::functions::FunctionFailure> {
        let started = Instant::now();
        let response = self
            .client
            .send(invocation, false, crate::functions::TIMEOUT)
            .await
            .map_err(crate::functions::FunctionFailure::Call)?;
        let left = crate::functions::TIMEOUT.saturating_sub(started.elapsed());
        crate::functions::answer(response, left).await
    }

    /// `DYNAMIC_ROUTING_BACKEND`: the backend the selector's value chooses, recorded as
    /// `dynamicRouting.backendMatched`/`defaultBackendMatched` (INFO, naming the rule); `None`
    /// when no rule matches (answered 404), recorded as `dynamicRouting.backendRejected`
    /// (WARN).
    fn route_dynamically<'d>(
        &self,
        routing: &'d claimgate_config::DynamicRouting,
        verdict: &Verdict,
        parts: &http::request::Parts,
        params: &[(String, String)],
        context: Context<'_>,
        threshold: Level,
    ) -> Option<&'d Backend> {
        let input = claimgate_core::RoutingInput {
            // Selectors read headers, query, host: never whether the request has a body.
            request: &PartsView {
                parts,
                body: false,
                text: None,
            },
            params,
            auth: verdict.claims.as_deref(),
            usage_plan: parts
                .extensions
                .get::<crate::context::UsagePlanId>()
                .map(|p| p.0.as_str()),
            client_cert: None,
        };
        let mut choice =
            claimgate_core::choose_backend(routing, input.selector_value(&routing.selector));
        let rule = choice.rule(routing);
        let level = if rule.is_some() {
            Level::Info
        } else {
            Level::Warn
        };
        // Built only when it will be written: at WARN, every routed request's record is below
        // the threshold.
        if level >= threshold {
            // A claim chosen on is logged as a claim value is: hashed when values are redacted.
            if self.options.redact_claim_values
                && routing.selector.table == claimgate_config::ContextTable::Auth
            {
                choice.value = redacted(&json!(choice.value))
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
            }
            let event = choice.event(routing);
            let mut record = ExecutionRecord::new(event.code, level, event.message)
                .with("selector", json!(routing.selector.to_string()));
            if let Some(rule) = rule {
                record = record
                    .with("backendName", json!(rule.name))
                    .with("backendType", json!(rule.backend.kind()));
            }
            self.logs.execution(context, threshold, record);
        }
        rule.map(|r| &r.backend)
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
        let record = crate::logs::AccessRecord {
            method: parts.method.as_str(),
            uri: &uri,
            version: parts.version,
            status: response.status().as_u16(),
            body_bytes_sent: http_body::Body::size_hint(response.body())
                .exact()
                .unwrap_or(0),
            duration: started.elapsed(),
            remote_addr: peer.ip(),
            user_agent: parts
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        };
        self.logs.access(context, &record);
    }
}

/// A quota unit taken for a request being forwarded.
#[derive(Debug)]
struct UsageCounted<'s> {
    /// (plan id, entitlement, subscriber id).
    key: crate::usage::CounterId<'s>,
    reserved: crate::usage::Reserved,
    quota: u64,
}

/// The record of a function that gave no usable answer (ERROR: the deployment's function,
/// not the client, is at fault).
fn function_failed(function_id: &str, message: String, cause: &'static str) -> ExecutionRecord {
    ExecutionRecord::new("functionsBackend.requestError", Level::Error, message)
        .with("cause", json!(cause))
        .with("functionId", json!(function_id))
}

/// Whether the request declares a body above [`MAX_BODY_BYTES`] (answered 413 before it is
/// read; a chunked body is cut off at the limit as it streams).
fn declares_too_large_body(parts: &http::request::Parts) -> bool {
    parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
}

/// The record of a request refused for its body (malformed or over the limit): the client's
/// doing, so a warning, never a backend error.
fn body_invalid(message: &str) -> ExecutionRecord {
    ExecutionRecord::new("request.bodyInvalid", Level::Warn, message.to_owned())
}

/// A claim value as a short hash (`sha256:` and 12 hex digits): equal values stay recognisably
/// equal across records without the value being logged.
fn redacted(value: &serde_json::Value) -> serde_json::Value {
    let text = value.to_string();
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let hex: String = hash.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    json!(format!("sha256:{hex}"))
}

/// Whether a kept discovery policy still authenticates with the secret the secrets file now
/// holds (a rotated secret needs a new policy); trivially true without discovery.
fn same_client_secret(
    policy: &claimgate_config::JwtPolicy,
    before: &Served,
    secrets: &Secrets,
) -> bool {
    match (&policy.keys, &before.discovery) {
        (KeySource::Discovery(config), Some(kept)) => secrets
            .resolve(
                &config.client_secret.secret_id,
                config.client_secret.version,
            )
            .is_ok_and(|secret| kept.uses_secret(secret)),
        _ => true,
    }
}

/// Whether two deployments fetch keys from the same place in the same way.
fn same_key_source(a: &Deployment, b: &Deployment) -> bool {
    match (&a.authentication, &b.authentication) {
        (Authentication::Jwt(a), Authentication::Jwt(b)) => {
            a.flavor == b.flavor
                && match (&a.keys, &b.keys) {
                    (KeySource::RemoteJwks(a), KeySource::RemoteJwks(b)) => a == b,
                    (KeySource::Discovery(a), KeySource::Discovery(b)) => a == b,
                    _ => false,
                }
        }
        _ => false,
    }
}

/// The deployment's `MODIFY_RESPONSE` validation failure policy, if any.
fn failure_policy(deployment: &Deployment) -> Option<&claimgate_config::ModifyResponse> {
    match &deployment.authentication {
        Authentication::Jwt(policy) => policy.failure_response.as_ref(),
        Authentication::Custom(policy) => policy.failure_response.as_ref(),
        _ => None,
    }
}

fn find<'s>(state: &'s ServedSet, path: &str) -> Option<&'s Served> {
    state
        .served
        .iter()
        .filter(|s| route::strip_prefix(&s.deployment.path_prefix, path).is_some())
        .max_by_key(|s| s.deployment.path_prefix.len())
}

/// The request URI for the access log, with every credential parameter replaced: tokens are
/// never logged ([`claimgate_core::is_credential_parameter`] says which, for `check` too).
/// Borrowed from the request unless a credential is there to replace.
fn redacted_uri<'a>(
    parts: &'a http::request::Parts,
    deployment: &Deployment,
) -> std::borrow::Cow<'a, str> {
    crate::logs::redacted_uri(&parts.uri, |n| {
        claimgate_core::is_credential_parameter(deployment, n)
    })
}

/// The route's `headerTransformations` applied to the headers of the request a backend (or a
/// function) gets; what they could not do is added to `problems`, for the execution log.
fn transform_headers(
    route: &claimgate_config::Route,
    headers: &mut http::HeaderMap,
    context: &RequestContext<'_>,
    problems: &mut Vec<ExecutionRecord>,
) {
    if let Some(rules) = &route.header_transformations {
        problems.extend(crate::transform::headers(rules, headers, context));
    }
}

/// Each route's `HTTP_BACKEND` URL, parsed, when it is a literal that parses (the others are
/// expanded and parsed per request, and their errors reported then).
fn literal_backend_uris(deployment: &Deployment) -> Vec<Option<http::Uri>> {
    deployment
        .routes
        .iter()
        .map(|route| match &route.backend {
            Backend::Http(backend) if crate::context::is_literal_url(&backend.url) => {
                backend.url.parse().ok()
            }
            _ => None,
        })
        .collect()
}

/// `opc-request-id`, made at compile time: a `&str` name is parsed and checked at every use.
pub(crate) const OPC_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("opc-request-id");

fn with_request_id(mut response: Response<Body>, request_id: &HeaderValue) -> Response<Body> {
    response
        .headers_mut()
        .insert(OPC_REQUEST_ID, request_id.clone());
    response
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn wall_clock() -> UnixTime {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    UnixTime(seconds as i64)
}

/// The verdict's view of a hyper request.
#[derive(Debug)]
struct PartsView<'a> {
    parts: &'a http::request::Parts,
    /// Whether a body follows the head: hyper knows from `Content-Length` or chunked coding
    /// over HTTP/1.1, and from the HEADERS frame's END_STREAM over HTTP/2.
    body: bool,
    /// `request.body`, when it was read for an authorizer function.
    text: Option<&'a str>,
}

impl PartsView<'_> {
    /// The header's values that read as text, in order.
    fn text_values(&self, name: &str) -> impl Iterator<Item = &str> {
        self.parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
    }
}

impl RequestView for PartsView<'_> {
    fn method(&self) -> &str {
        self.parts.method.as_str()
    }
    fn path(&self) -> &str {
        self.parts.uri.path()
    }
    fn query(&self) -> Option<&str> {
        self.parts.uri.query()
    }
    fn has_body(&self) -> bool {
        self.body
    }
    fn body_text(&self) -> Option<&str> {
        self.text
    }
    fn header(&self, name: &str) -> HeaderValues<'_> {
        let mut values = self.parts.headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (None, _) => HeaderValues::Absent,
            (Some(v), None) => v.to_str().map_or(HeaderValues::Many(1), HeaderValues::One),
            (Some(_), Some(_)) => HeaderValues::Many(2 + values.count()),
        }
    }
    fn first_header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.text_values(name).collect()
    }
    fn first_header_value(&self, name: &str) -> Option<&str> {
        self.text_values(name).next()
    }
    fn client_cert(&self) -> Option<&str> {
        self.parts
            .extensions
            .get::<crate::mtls::ClientCertificate>()
            .map(|c| &*c.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first value that reads as text is what presence checks and single-value arguments
    /// see: the same as the first of every value, without collecting them.
    #[test]
    fn the_first_header_value_is_the_first_of_the_values() {
        let mut request = Request::builder().uri("/x");
        for (name, value) in [
            ("x-one", &b"a"[..]),
            ("x-two", b"first"),
            ("x-two", b"second"),
            ("x-opaque", b"\xff\xfe"),
            ("x-opaque", b"readable"),
            ("x-bad", b"\xff"),
        ] {
            request = request.header(name, HeaderValue::from_bytes(value).unwrap());
        }
        let (parts, ()) = request.body(()).unwrap().into_parts();
        let view = PartsView {
            parts: &parts,
            body: false,
            text: None,
        };
        for name in ["x-one", "X-Two", "x-opaque", "x-bad", "x-absent"] {
            assert_eq!(
                view.first_header_value(name),
                view.header_values(name).first().copied(),
                "{name}"
            );
        }
        assert_eq!(view.first_header_value("x-two"), Some("first"));
        assert_eq!(view.first_header_value("x-opaque"), Some("readable"));
        assert_eq!(view.first_header_value("x-bad"), None);
        assert_eq!(view.first_header_value("x-absent"), None);
    }
}
