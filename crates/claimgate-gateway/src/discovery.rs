//! `REMOTE_DISCOVERY` for the gateway: the discovery document, the key set at its `jwks_uri`,
//! and RFC 7662 introspection of opaque tokens with a cache.
//!
//! Introspection answers are kept by SHA-256 of the token (never the token) for
//! `maxCacheDurationInHours` (or less, `--introspection-cache-max`), never past the token's
//! `exp`; inactive answers for at most 10 seconds. One introspection is in flight per token
//! however many requests carry it, and a provider outage leaves cached answers serving until
//! they expire. Failures are not cached.
//!
//! The provider cannot be turned against itself through the gateway: at most
//! `--introspection-concurrency` calls are in flight per policy (others wait up to a second,
//! then get 500), values that are not bearer tokens are refused before any call (core), and the
//! answers of every policy share one cache bounded in bytes (`--introspection-cache-mib`). The
//! client secret goes only to an endpoint on the discovery URL's host over a scheme as strong
//! (or one `--allow-endpoint` names).

use crate::keys::{Lookup, RemoteKeys, RemoteKeysConfig};
use crate::logs::{Context, ExecutionRecord, Level, Logs};
use crate::metrics::Metrics;
use crate::shared::{Operation, SharedState};
use arc_swap::ArcSwapOption;
use aws_lc_rs::digest::{digest, SHA256};
use claimgate_config::RemoteDiscovery;
use claimgate_core::Claims;
use claimgate_keys::{DiscoveryDocument, ProviderClient};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long an inactive answer is kept.
const INACTIVE_TTL: Duration = Duration::from_secs(10);
/// How long an introspection waits for a free slot before it is refused (500).
const SLOT_WAIT: Duration = Duration::from_secs(1);
/// What the cache spends on an entry besides the claims: key, node, expiry bookkeeping.
const ENTRY_OVERHEAD: u32 = 400;

/// The bounds of introspection, from `serve`'s flags.
#[derive(Debug, Clone)]
pub struct IntrospectionOptions {
    /// Keep answers at most this long (below `maxCacheDurationInHours`).
    pub cache_max: Option<Duration>,
    /// Calls in flight at most, per policy.
    pub concurrency: usize,
    /// `--allow-endpoint`: hosts besides the discovery URL's that may receive the secret.
    pub allowed_endpoints: Arc<[String]>,
}

impl Default for IntrospectionOptions {
    fn default() -> Self {
        Self {
            cache_max: None,
            concurrency: 16,
            allowed_endpoints: Arc::from(Vec::new()),
        }
    }
}

/// The introspection answers of every policy, bounded in bytes: a key is the policy's number
/// and the SHA-256 of the token. With `--redis`, a second level shared by the replicas.
#[derive(Debug, Clone)]
pub struct AnswerCache {
    answers: moka::future::Cache<(u64, [u8; 32]), Arc<Answer>>,
    next_policy: Arc<std::sync::atomic::AtomicU64>,
    shared: Option<Arc<SharedState>>,
}

impl AnswerCache {
    pub fn new(max_bytes: u64, shared: Option<Arc<SharedState>>) -> Self {
        Self {
            answers: moka::future::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, answer: &Arc<Answer>| {
                    u32::try_from(answer.claims.heap_size())
                        .unwrap_or(u32::MAX)
                        .saturating_add(ENTRY_OVERHEAD)
                })
                .expire_after(KeepFor)
                .build(),
            next_policy: Arc::default(),
            shared,
        }
    }

    /// Bytes held, as the bound counts them (after pending work is applied).
    pub async fn weighed_size(&self) -> u64 {
        self.answers.run_pending_tasks().await;
        self.answers.weighted_size()
    }
}

/// Why an opaque token could not be judged.
#[derive(Debug, Clone)]
pub enum IntrospectError {
    /// The discovery document, or the endpoint it names: `badDiscoveryEndpointResponse`.
    Discovery(String),
    /// The call itself: `badIntrospectionResponse`.
    Introspection(String),
}

impl IntrospectError {
    /// The reason, whichever kind.
    pub fn reason(&self) -> &str {
        match self {
            Self::Discovery(reason) | Self::Introspection(reason) => reason,
        }
    }
}

/// A kept introspection answer and how long it may be kept.
#[derive(Debug)]
pub struct Answer {
    /// Shared with the verdicts that judge it (an allowed request's claims are this answer).
    pub claims: Arc<Claims>,
    ttl: Duration,
}

struct KeepFor;

impl moka::Expiry<(u64, [u8; 32]), Arc<Answer>> for KeepFor {
    fn expire_after_create(
        &self,
        _: &(u64, [u8; 32]),
        value: &Arc<Answer>,
        _: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// What keys a JWT is verified with under discovery.
#[derive(Debug)]
pub enum DiscoveredKeys {
    Keys(Lookup),
    DiscoveryUnavailable(String),
}

/// Everything needed to report.
#[derive(Debug, Clone)]
pub struct Reporter {
    pub logs: Logs,
    pub metrics: Arc<Metrics>,
    pub source: String,
    pub deployment_id: String,
    pub threshold: Level,
    pub cooldown: Duration,
}

/// One deployment's discovery-based validation.
pub struct DiscoveryPolicy {
    config: RemoteDiscovery,
    secret: String,
    client: ProviderClient,
    reporter: Reporter,
    cache_max: Duration,
    document: ArcSwapOption<DiscoveryDocument>,
    document_state: tokio::sync::Mutex<Option<(Instant, String)>>,
    keys: ArcSwapOption<RemoteKeys>,
    /// This policy's number in the shared answer cache.
    number: u64,
    answers: AnswerCache,
    slots: tokio::sync::Semaphore,
    concurrency: usize,
    allowed_endpoints: Arc<[String]>,
}

impl std::fmt::Debug for DiscoveryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("DiscoveryPolicy")
            .field("uri", &self.config.uri)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

impl DiscoveryPolicy {
    pub fn new(
        config: RemoteDiscovery,
        secret: String,
        client: ProviderClient,
        reporter: Reporter,
        options: &IntrospectionOptions,
        answers: AnswerCache,
    ) -> Self {
        let configured = Duration::from_secs(u64::from(config.max_cache_hours) * 3600);
        let cache_max = options.cache_max.map_or(configured, |m| m.min(configured));
        let concurrency = options.concurrency.max(1);
        Self {
            config,
            secret,
            client,
            reporter,
            cache_max,
            document: ArcSwapOption::empty(),
            document_state: tokio::sync::Mutex::new(None),
            keys: ArcSwapOption::empty(),
            number: answers
                .next_policy
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            answers,
            slots: tokio::sync::Semaphore::new(concurrency),
            concurrency,
            allowed_endpoints: options.allowed_endpoints.clone(),
        }
    }

    fn context(&self) -> Context<'_> {
        Context {
            source: &self.reporter.source,
            deployment_id: &self.reporter.deployment_id,
            request_id: None,
        }
    }

    /// Whether this policy authenticates with `secret` (a rotated secret means a new policy).
    pub fn uses_secret(&self, secret: &str) -> bool {
        self.secret == secret
    }

    /// The client id of `clientDetails` (the OAUTH2 login's client too).
    pub fn client_id(&self) -> &str {
        &self.config.client_id
    }

    /// The client secret, for the OAUTH2 code exchange.
    pub(crate) fn client_secret(&self) -> &str {
        &self.secret
    }

    /// `isSslVerifyDisabled`.
    pub fn ssl_verify_disabled(&self) -> bool {
        self.config.ssl_verify_disabled
    }

    /// Whether the client secret may go to `endpoint` (on the discovery URL's host, or one
    /// `--allow-endpoint` names).
    pub fn secret_endpoint_allowed(&self, endpoint: &str) -> Result<(), String> {
        claimgate_keys::secret_endpoint_allowed(&self.config.uri, endpoint, &self.allowed_endpoints)
    }

    /// The discovery URL.
    pub fn uri(&self) -> &str {
        &self.config.uri
    }

    /// Whether the discovery document has been obtained.
    pub fn is_loaded(&self) -> bool {
        self.document.load().is_some()
    }

    /// The discovery document, fetching it (single-flight, at most once per cooldown) when it
    /// was never obtained.
    pub async fn document(&self) -> Result<Arc<DiscoveryDocument>, String> {
        if let Some(document) = self.document.load_full() {
            return Ok(document);
        }
        let mut state = self.document_state.lock().await;
        if let Some(document) = self.document.load_full() {
            return Ok(document);
        }
        if let Some((at, error)) = state.as_ref() {
            if at.elapsed() < self.reporter.cooldown {
                return Err(error.clone());
            }
        }
        self.reporter.logs.execution(
            self.context(),
            self.reporter.threshold,
            ExecutionRecord::new(
                "tokenAuthentication.loadingDiscoveryEndpointResponse",
                Level::Info,
                "Loading the discovery document.",
            )
            .with("uri", json!(self.config.uri)),
        );
        let result = self
            .client
            .discovery(&self.config.uri, self.config.ssl_verify_disabled)
            .await;
        self.reporter
            .metrics
            .key_fetch(&self.reporter.source, "discovery", result.is_ok());
        match result {
            Ok(document) => {
                let document = Arc::new(document);
                self.document.store(Some(document.clone()));
                *state = None;
                Ok(document)
            }
            Err(error) => {
                let reason = format!("fetching {} failed: {error}", self.config.uri);
                self.reporter.logs.execution(
                    self.context(),
                    self.reporter.threshold,
                    ExecutionRecord::new(
                        "tokenAuthentication.badDiscoveryEndpointResponse",
                        Level::Error,
                        format!("The discovery document is not usable: {reason}."),
                    )
                    .with("cause", json!(error.to_string())),
                );
                *state = Some((Instant::now(), reason.clone()));
                Err(reason)
            }
        }
    }

    /// The keys at the document's `jwks_uri`.
    pub async fn keys(&self) -> DiscoveredKeys {
        let document = match self.document().await {
            Ok(d) => d,
            Err(reason) => return DiscoveredKeys::DiscoveryUnavailable(reason),
        };
        let Some(jwks_uri) = document.jwks_uri.clone() else {
            return DiscoveredKeys::DiscoveryUnavailable(format!(
                "the discovery document at {} has no jwks_uri",
                self.config.uri
            ));
        };
        let keys = match self.keys.load_full() {
            Some(keys) => keys,
            None => {
                let keys = Arc::new(RemoteKeys::new(RemoteKeysConfig {
                    client: self.client.clone(),
                    uri: jwks_uri,
                    ssl_verify_disabled: self.config.ssl_verify_disabled,
                    max_cache_hours: self.config.max_cache_hours,
                    cooldown: self.reporter.cooldown,
                    log_prefix: "tokenAuthentication",
                    threshold: self.reporter.threshold,
                    logs: self.reporter.logs.clone(),
                    metrics: self.reporter.metrics.clone(),
                    source: self.reporter.source.clone(),
                    deployment_id: self.reporter.deployment_id.clone(),
                }));
                self.keys.store(Some(keys.clone()));
                keys
            }
        };
        DiscoveredKeys::Keys(keys.lookup().await)
    }

    /// The generation of the `jwks_uri` keys now held, if any (no fetch, no wait).
    pub fn keys_generation(&self) -> Option<u64> {
        self.keys.load().as_ref()?.generation()
    }

    /// The remote key set, once created (for unknown-kid refreshes).
    pub fn remote_keys(&self) -> Option<Arc<RemoteKeys>> {
        self.keys.load_full()
    }

    /// The introspection answer for `token`: kept, or asked for once however many requests
    /// carry it at the same time.
    pub async fn introspect(&self, token: &str) -> Result<Arc<Answer>, IntrospectError> {
        let mut key = [0u8; 32];
        key.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
        self.answers
            .answers
            .try_get_with((self.number, key), self.ask(token))
            .await
            .map_err(|e| e.as_ref().clone())
    }

    async fn ask(&self, token: &str) -> Result<Arc<Answer>, IntrospectError> {
        let document = self.document().await.map_err(IntrospectError::Discovery)?;
        let Some(endpoint) = document.introspection_endpoint.as_deref() else {
            return Err(IntrospectError::Discovery(format!(
                "the discovery document at {} has no introspection_endpoint",
                self.config.uri
            )));
        };
        claimgate_keys::secret_endpoint_allowed(
            &self.config.uri,
            endpoint,
            &self.allowed_endpoints,
        )
        .map_err(IntrospectError::Discovery)?;
        let shared = self.answers.shared.as_deref().map(|shared| {
            let key = shared.key(
                Operation::Introspection,
                &shared_answer_name(endpoint, &self.config.client_id, token),
            );
            (shared, key)
        });
        if let Some((shared, key)) = &shared {
            if let Some(stored) = shared.get(Operation::Introspection, key).await {
                if let Some(answer) = self.stored_answer(&stored) {
                    return Ok(answer);
                }
            }
        }
        let Ok(Ok(_slot)) = tokio::time::timeout(SLOT_WAIT, self.slots.acquire()).await else {
            return Err(IntrospectError::Introspection(format!(
                "{} introspections were already in flight (--introspection-concurrency) for a second",
                self.concurrency
            )));
        };
        let result = self
            .client
            .introspect(
                endpoint,
                token,
                &self.config.client_id,
                &self.secret,
                document.introspection_uses_post(),
                self.config.ssl_verify_disabled,
            )
            .await;
        self.reporter
            .metrics
            .key_fetch(&self.reporter.source, "introspection", result.is_ok());
        let claims = result.map_err(|e| {
            IntrospectError::Introspection(format!("introspection at {endpoint} failed: {e}"))
        })?;
        let ttl = if claims.get("active") == Some(&Value::Bool(true)) {
            keep_until(claims.get("exp"), self.cache_max)
        } else {
            INACTIVE_TTL.min(self.cache_max)
        };
        let judged = Claims::from_map(&claims).ok_or_else(|| {
            IntrospectError::Introspection(format!(
                "introspection at {endpoint} answered an oversized object"
            ))
        })?;
        if let Some((shared, key)) = &shared {
            if !ttl.is_zero() {
                // Awaited (bounded by --redis-timeout-ms) so that the next request, on any
                // replica, finds the answer.
                let stored = json!({"v": 1, "storedAt": unix_now(), "answer": claims});
                shared
                    .set(
                        Operation::Introspection,
                        key,
                        stored.to_string().as_bytes(),
                        ttl,
                    )
                    .await;
            }
        }
        Ok(Arc::new(Answer {
            claims: Arc::new(judged),
            ttl,
        }))
    }

    /// An answer another replica stored, judged by this policy's own lifetimes: it is no older
    /// than this policy's maximum age, and kept here only for what is left of it. `None` when
    /// it is unreadable or too old (then the provider is asked).
    fn stored_answer(&self, stored: &[u8]) -> Option<Arc<Answer>> {
        let stored: Value = serde_json::from_slice(stored).ok()?;
        if stored.get("v")?.as_u64()? != 1 {
            return None;
        }
        let age = (unix_now() - stored.get("storedAt")?.as_f64()?).max(0.0);
        let left = self
            .cache_max
            .checked_sub(Duration::try_from_secs_f64(age).ok()?)?;
        let answer = stored.get("answer")?.as_object()?;
        let ttl = if answer.get("active") == Some(&Value::Bool(true)) {
            keep_until(answer.get("exp"), left)
        } else {
            INACTIVE_TTL
                .saturating_sub(Duration::try_from_secs_f64(age).ok()?)
                .min(left)
        };
        if ttl.is_zero() {
            return None;
        }
        Some(Arc::new(Answer {
            claims: Arc::new(Claims::from_map(answer)?),
            ttl,
        }))
    }
}

/// The shared cache's name of an answer: hex SHA-256 over the endpoint, the client id and the
/// token (never the token itself; the endpoint and client keep two providers' answers apart).
fn shared_answer_name(endpoint: &str, client_id: &str, token: &str) -> String {
    let mut context = aws_lc_rs::digest::Context::new(&SHA256);
    for part in [endpoint, client_id, token] {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part.as_bytes());
    }
    let digest = context.finish();
    let mut name = String::with_capacity(64);
    for byte in digest.as_ref() {
        use std::fmt::Write as _;
        let _ = write!(name, "{byte:02x}");
    }
    name
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// How long an active answer is kept: until its `exp`, at most `max`. Whatever `exp` holds
/// (1e300, 2e19, negative, not a number) the result is a duration within `0..=max`: the
/// seconds are clamped before they become a `Duration`, whose conversion panics out of range.
fn keep_until(exp: Option<&Value>, max: Duration) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let left = exp
        .and_then(Value::as_f64)
        .map_or(0.0, |exp| (exp - now).clamp(0.0, max.as_secs_f64()));
    Duration::try_from_secs_f64(left).map_or(Duration::ZERO, |left| left.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_exp_keeps_an_answer_for_a_bounded_time_without_panicking() {
        let max = Duration::from_secs(3600);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        for (exp, expected) in [
            (json!(1e300), max),
            (json!(2e19), max),
            (json!(u64::MAX), max),
            (json!(-1e300), Duration::ZERO),
            (json!(-5), Duration::ZERO),
            (json!("soon"), Duration::ZERO),
            (json!(null), Duration::ZERO),
        ] {
            assert_eq!(keep_until(Some(&exp), max), expected, "{exp}");
        }
        let soon = keep_until(Some(&json!(now + 60.0)), max);
        assert!(soon > Duration::from_secs(55) && soon <= Duration::from_secs(60));
        assert_eq!(keep_until(None, max), Duration::ZERO);
    }

    #[tokio::test]
    async fn the_answer_cache_is_bounded_in_bytes_not_entries() {
        let limit = 64 * 1024;
        let cache = AnswerCache::new(limit, None);
        let answer = json!({"active": true, "padding": "x".repeat(4000)});
        let claims = Arc::new(Claims::from_map(answer.as_object().unwrap()).unwrap());
        for i in 0..100u8 {
            let answer = Arc::new(Answer {
                claims: claims.clone(),
                ttl: Duration::from_secs(60),
            });
            cache.answers.insert((0, [i; 32]), answer).await;
        }
        let held = cache.weighed_size().await;
        assert!(held > 0 && held <= limit, "{held}");
        assert!(cache.answers.entry_count() < 20);
    }
}
