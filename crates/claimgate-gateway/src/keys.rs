//! Remote key sets (`REMOTE_JWKS`) for the gateway: fetched at start, kept for
//! `maxCacheDurationInHours`, refetched when a token names an unknown `kid`.
//!
//! Reads are lock-free (an immutable snapshot behind `ArcSwap`). Fetches are single-flight and
//! rate-limited: one attempt at a time per key set, and at most one per cooldown however many
//! requests carry unknown kids, whether the last attempt failed or not. A failed refresh keeps
//! the last good set serving for up to 24 hours after it was fetched.

use crate::logs::{Context, ExecutionRecord, Level, Logs};
use crate::metrics::Metrics;
use arc_swap::ArcSwapOption;
use claimgate_jose::KeySet;
use claimgate_keys::{FetchError, ProviderClient};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Minimum time between two fetch attempts of one key set.
pub const REFETCH_COOLDOWN: Duration = Duration::from_secs(30);
/// How long the last good key set keeps serving when refreshes fail.
pub const MAX_STALENESS: Duration = Duration::from_secs(24 * 3600);

/// A key set as fetched.
#[derive(Debug)]
pub struct KeySnapshot {
    pub keys: KeySet,
    pub fetched_at: Instant,
    pub generation: u64,
}

/// What a request gets: keys, or why there are none.
#[derive(Debug, Clone)]
pub enum Lookup {
    Keys(Arc<KeySnapshot>),
    Unavailable(String),
}

#[derive(Debug, Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    last_error: Option<String>,
}

/// What a [`RemoteKeys`] fetches and where it reports.
#[derive(Debug)]
pub struct RemoteKeysConfig {
    pub uri: String,
    /// The pooled client for identity-provider calls (system roots plus `--ca`).
    pub client: ProviderClient,
    pub ssl_verify_disabled: bool,
    /// `maxCacheDurationInHours`.
    pub max_cache_hours: u32,
    pub cooldown: Duration,
    /// `jwtAuthentication` or `tokenAuthentication`.
    pub log_prefix: &'static str,
    pub threshold: Level,
    pub logs: Logs,
    pub metrics: Arc<Metrics>,
    /// The deployment's label and id, for records and metrics.
    pub source: String,
    pub deployment_id: String,
}

/// One deployment's remote key set.
#[derive(Debug)]
pub struct RemoteKeys {
    config: RemoteKeysConfig,
    max_age: Duration,
    snapshot: ArcSwapOption<KeySnapshot>,
    state: tokio::sync::Mutex<FetchState>,
    fetches: AtomicU64,
}

impl RemoteKeys {
    pub fn new(config: RemoteKeysConfig) -> Self {
        Self {
            max_age: Duration::from_secs(u64::from(config.max_cache_hours) * 3600),
            config,
            snapshot: ArcSwapOption::empty(),
            state: tokio::sync::Mutex::new(FetchState::default()),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many fetches were attempted.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Whether a key set has ever been obtained.
    pub fn is_loaded(&self) -> bool {
        self.snapshot.load().is_some()
    }

    /// The key set's URI.
    pub fn uri(&self) -> &str {
        &self.config.uri
    }

    /// Why the key set is not loaded: `Some(cause)` once a fetch failed and none succeeded;
    /// `None` when it is loaded, before the first attempt, and while a fetch runs.
    pub fn load_failure(&self) -> Option<String> {
        if self.is_loaded() {
            return None;
        }
        self.state.try_lock().ok()?.last_error.clone()
    }

    /// Whether the set never loaded or is older than `maxCacheDurationInHours`.
    pub fn needs_refresh(&self) -> bool {
        self.snapshot
            .load()
            .as_ref()
            .is_none_or(|s| s.fetched_at.elapsed() >= self.max_age)
    }

    /// The generation of the current snapshot, if any.
    pub fn generation(&self) -> Option<u64> {
        self.snapshot.load().as_ref().map(|s| s.generation)
    }

    /// The key set held now, however old, without fetching (the admin API judges with what the
    /// gateway has).
    pub fn current(&self) -> Option<Arc<KeySnapshot>> {
        self.snapshot.load_full()
    }

    /// The keys to judge a request with, refreshing first when they are missing or too old.
    pub async fn lookup(&self) -> Lookup {
        if let Some(snapshot) = self.snapshot.load_full() {
            if snapshot.fetched_at.elapsed() < self.max_age {
                return Lookup::Keys(snapshot);
            }
        }
        self.refresh(self.generation()).await;
        match self.snapshot.load_full() {
            Some(s) if s.fetched_at.elapsed() < MAX_STALENESS => Lookup::Keys(s),
            Some(_) => Lookup::Unavailable(format!(
                "the last key set from {} is older than 24 hours and refreshing it failed: {}",
                self.config.uri,
                self.last_error().await
            )),
            None => Lookup::Unavailable(format!(
                "fetching {} failed: {}",
                self.config.uri,
                self.last_error().await
            )),
        }
    }

    async fn last_error(&self) -> String {
        self.state
            .lock()
            .await
            .last_error
            .clone()
            .unwrap_or_else(|| "no attempt yet".into())
    }

    /// Called when a token names a kid the snapshot of generation `seen` lacks; returns a newer
    /// snapshot if one was fetched (by this call or a concurrent one).
    pub async fn refresh_for_unknown_kid(&self, seen: Option<u64>) -> Option<Arc<KeySnapshot>> {
        self.refresh(seen).await;
        let current = self.snapshot.load_full()?;
        (Some(current.generation) != seen).then_some(current)
    }

    /// Fetches unless another caller already replaced generation `seen`, or the cooldown since
    /// the last attempt has not passed.
    pub async fn refresh(&self, seen: Option<u64>) {
        let mut state = self.state.lock().await;
        if self.generation() != seen {
            return;
        }
        if state
            .last_attempt
            .is_some_and(|at| at.elapsed() < self.config.cooldown)
        {
            return;
        }
        state.last_attempt = Some(Instant::now());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let context = Context {
            source: &self.config.source,
            deployment_id: &self.config.deployment_id,
            request_id: None,
        };
        self.config.logs.execution(
            context,
            self.config.threshold,
            ExecutionRecord::new(
                format!("{}.loadingJsonWebKeySet", self.config.log_prefix),
                Level::Info,
                "Loading the JSON Web Key Set.",
            )
            .with("uri", json!(self.config.uri)),
        );
        let result = self
            .config
            .client
            .jwks(&self.config.uri, self.config.ssl_verify_disabled)
            .await;
        // The cooldown runs from the end of the attempt too: with a cooldown shorter than the
        // fetch's time limit, callers queued behind a hanging fetch would each start another.
        state.last_attempt = Some(Instant::now());
        self.config
            .metrics
            .key_fetch(&self.config.source, "jwks", result.is_ok());
        match result {
            Ok(parsed) => {
                for skipped in &parsed.skipped {
                    self.config.logs.execution(
                        context,
                        self.config.threshold,
                        ExecutionRecord::new(
                            format!("{}.badJsonWebKeySet", self.config.log_prefix),
                            Level::Error,
                            format!(
                                "JSON Web Key Set is not valid: key #{} (kid {}) skipped: {}.",
                                skipped.index,
                                skipped.kid.as_deref().unwrap_or("none"),
                                skipped.reason
                            ),
                        )
                        .with("uri", json!(self.config.uri)),
                    );
                }
                let generation = self.generation().map_or(1, |g| g + 1);
                self.snapshot.store(Some(Arc::new(KeySnapshot {
                    keys: parsed.keys,
                    fetched_at: Instant::now(),
                    generation,
                })));
                state.last_error = None;
            }
            Err(error) => {
                self.config.logs.execution(
                    context,
                    self.config.threshold,
                    ExecutionRecord::new(
                        format!("{}.badJsonWebKeySet", self.config.log_prefix),
                        Level::Error,
                        // A set that arrived but is unusable is "not valid"; one that never
                        // arrived says why (a refused connection is no verdict on the set).
                        match error {
                            FetchError::Parse(_)
                            | FetchError::ContentType(_)
                            | FetchError::TooLarge(_) => {
                                format!("JSON Web Key Set is not valid: {error}.")
                            }
                            _ => format!(
                                "The JSON Web Key Set could not be loaded from {}: {error}.",
                                self.config.uri
                            ),
                        },
                    )
                    .with("uri", json!(self.config.uri))
                    .with("cause", json!(error.to_string())),
                );
                state.last_error = Some(error.to_string());
            }
        }
    }
}
