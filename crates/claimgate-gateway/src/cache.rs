//! The verified-token cache: a bounded map from a SHA-256 of the token (never the token) and the
//! key set it was verified with, to the verification. Only verified tokens are kept; entries
//! leave at the token's `exp` (plus the largest skew OCI allows), when the key set changes
//! (its generation is part of the key), or when space is needed. Concurrent requests with one
//! new token verify it once (moka's single-flight initialisation).

use aws_lc_rs::digest::{digest, SHA256};
use claimgate_core::{TokenVerification, VerificationCache};
use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Entries are kept at most this long even when `exp` is further away.
const MAX_TTL: Duration = Duration::from_secs(3600);
/// OCI's largest `maxClockSkewInSeconds`: an entry may be judged up to this long after `exp`.
const MAX_SKEW: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    scope: u64,
    generation: u64,
    digest: [u8; 32],
}

/// The cache shared by every request.
#[derive(Debug)]
pub struct TokenCache {
    entries: moka::sync::Cache<Key, Arc<TokenVerification>>,
    hits: Counter,
    misses: Counter,
}

struct ExpireAtExp;

impl moka::Expiry<Key, Arc<TokenVerification>> for ExpireAtExp {
    fn expire_after_create(
        &self,
        _key: &Key,
        value: &Arc<TokenVerification>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_secs_f64();
        let left = value.exp().map_or(0.0, |exp| exp - now).max(0.0);
        Some(Duration::from_secs_f64(left.min(MAX_TTL.as_secs_f64())) + MAX_SKEW)
    }
}

impl TokenCache {
    /// A cache holding about `max_bytes` of verifications, counting lookups in `hits` and
    /// `misses`.
    pub fn new(max_bytes: u64, hits: Counter, misses: Counter) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, value: &Arc<TokenVerification>| value.approximate_size())
                .expire_after(ExpireAtExp)
                .build(),
            hits,
            misses,
        }
    }

    /// (hits, misses) so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.hits.get(), self.misses.get())
    }

    /// The cache as seen by one evaluation: entries of one deployment (`scope`, which changes
    /// with every configuration reload) and one key-set generation.
    pub fn scoped(&self, scope: u64, generation: u64) -> Scoped<'_> {
        Scoped {
            cache: self,
            scope,
            generation,
        }
    }
}

/// [`TokenCache`] restricted to one key set.
#[derive(Debug)]
pub struct Scoped<'a> {
    cache: &'a TokenCache,
    scope: u64,
    generation: u64,
}

impl VerificationCache for Scoped<'_> {
    fn get_or_verify(
        &self,
        token: &str,
        verify: &mut dyn FnMut() -> Arc<TokenVerification>,
    ) -> Arc<TokenVerification> {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
        let key = Key {
            scope: self.scope,
            generation: self.generation,
            digest: bytes,
        };
        if let Some(hit) = self.cache.entries.get(&key) {
            self.cache.hits.inc();
            return hit;
        }
        self.cache.misses.inc();
        let mut unverified = None;
        let kept = self.cache.entries.optionally_get_with(key, || {
            let fresh = verify();
            if fresh.is_verified() {
                Some(fresh)
            } else {
                unverified = Some(fresh);
                None
            }
        });
        match (kept, unverified) {
            (Some(kept), _) => kept,
            (None, Some(fresh)) => fresh,
            // Another thread's initialisation failed while we waited: verify ourselves.
            (None, None) => verify(),
        }
    }
}
