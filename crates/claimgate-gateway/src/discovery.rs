//! `REMOTE_DISCOVERY` for the gateway: the discovery document, the key set at its `jwks_uri`,
//! and RFC 7662 introspection of opaque tokens with a cache.
//!
//! Introspection answers are kept by SHA-256 of the token (never the token) for
//! `maxCacheDurationInHours` (or less, `--introspection-cache-max`), never past the token's
//! `exp`; inactive answers for at most 10 seconds. One introspection is in flight per token
//! however many requests carry it, and a provider outage leaves cached answers serving until
//! they expire. Failures are not cached.

use crate::keys::{Lookup, RemoteKeys, RemoteKeysConfig};
use crate::logs::{Context, ExecutionRecord, Level, Logs};
use crate::metrics::Metrics;
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
/// Introspection answers kept at most (about 1–2 KiB each).
const MAX_ANSWERS: u64 = 100_000;

/// A kept introspection answer and how long it may be kept.
#[derive(Debug)]
pub struct Answer {
    /// Shared with the verdicts that judge it (an allowed request's claims are this answer).
    pub claims: Arc<Claims>,
    ttl: Duration,
}

struct KeepFor;

impl moka::Expiry<[u8; 32], Arc<Answer>> for KeepFor {
    fn expire_after_create(
        &self,
        _: &[u8; 32],
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
    answers: moka::future::Cache<[u8; 32], Arc<Answer>>,
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
        cache_max: Option<Duration>,
    ) -> Self {
        let configured = Duration::from_secs(u64::from(config.max_cache_hours) * 3600);
        let cache_max = cache_max.map_or(configured, |m| m.min(configured));
        Self {
            config,
            secret,
            client,
            reporter,
            cache_max,
            document: ArcSwapOption::empty(),
            document_state: tokio::sync::Mutex::new(None),
            keys: ArcSwapOption::empty(),
            answers: moka::future::Cache::builder()
                .max_capacity(MAX_ANSWERS)
                .expire_after(KeepFor)
                .build(),
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

    /// The remote key set, once created (for unknown-kid refreshes).
    pub fn remote_keys(&self) -> Option<Arc<RemoteKeys>> {
        self.keys.load_full()
    }

    /// The introspection answer for `token`: kept, or asked for once however many requests
    /// carry it at the same time.
    pub async fn introspect(&self, token: &str) -> Result<Arc<Answer>, String> {
        let mut key = [0u8; 32];
        key.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
        self.answers
            .try_get_with(key, self.ask(token))
            .await
            .map_err(|e| e.as_ref().clone())
    }

    async fn ask(&self, token: &str) -> Result<Arc<Answer>, String> {
        let document = self.document().await?;
        let Some(endpoint) = document.introspection_endpoint.as_deref() else {
            return Err(format!(
                "the discovery document at {} has no introspection_endpoint",
                self.config.uri
            ));
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
        let claims = result.map_err(|e| format!("introspection at {endpoint} failed: {e}"))?;
        let ttl = if claims.get("active") == Some(&Value::Bool(true)) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let left = claims
                .get("exp")
                .and_then(Value::as_f64)
                .map_or(0.0, |exp| (exp - now).max(0.0));
            self.cache_max.min(Duration::from_secs_f64(left))
        } else {
            INACTIVE_TTL.min(self.cache_max)
        };
        let claims = Claims::from_map(&claims)
            .ok_or_else(|| format!("introspection at {endpoint} answered an oversized object"))?;
        Ok(Arc::new(Answer {
            claims: Arc::new(claims),
            ttl,
        }))
    }
}
