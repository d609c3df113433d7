//! The verified-token cache: a bounded map from a keyed hash of the token (never the token) and
//! the key set it was verified with, to the verification. Only verified tokens are kept;
//! entries leave at the token's `exp` (plus the largest skew OCI allows), when the key set
//! changes (its generation is part of the key), or when space is needed. Concurrent requests
//! with one new token verify it once (moka's single-flight initialisation).
//!
//! Why the hash is safe to decide by: a hit skips the signature check, so two tokens must never
//! share an entry. Tokens are named by SipHash-2-4 with a 128-bit output under a 128-bit key
//! drawn from the system's random source when the cache is made, and never shown. SipHash is a
//! pseudo-random function: without the key, an attacker cannot compute a token's name, so a
//! forged token lands on a given cached entry with probability 2^-128 per try, whatever their
//! computing power. It costs about two thirds of a SHA-256 of the token (BENCHMARKS.md), and it
//! runs on every request. The name does not reveal the token either: 128 bits cannot hold a
//! signed token.

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use claimgate_core::{TokenVerification, VerificationCache};
use prometheus_client::metrics::counter::Counter;
use siphasher::sip128::{Hasher128 as _, SipHasher24};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What moka spends on an entry besides the verification: its key, node, and the bookkeeping of
/// its eviction and expiry policies. Measured rather than derived from moka's internals: 20,000
/// verified tokens (nine claims, 439 bytes) grew RSS by 802 bytes each while
/// `TokenVerification::approximate_size` said 431 (`cargo bench -p claimgate-core --bench
/// verdict -- hit_20k`, BENCHMARKS.md), so the bound counts what the memory really holds.
const ENTRY_OVERHEAD: u32 = 370;

/// Entries are kept at most this long even when `exp` is further away.
const MAX_TTL: Duration = Duration::from_secs(3600);
/// OCI's largest `maxClockSkewInSeconds`: an entry may be judged up to this long after `exp`.
const MAX_SKEW: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    scope: u64,
    generation: u64,
    token: u128,
}

/// The secret key that names a cache's entries (here tokens; authorizer answers in
/// `authorizer.rs`, with a key of their own): random per cache, never logged or exported. In
/// both a hit skips work that decides access, so two inputs must never share an entry.
pub(crate) struct SecretNamer {
    k0: u64,
    k1: u64,
}

impl std::fmt::Debug for SecretNamer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretNamer(..)")
    }
}

impl SecretNamer {
    pub(crate) fn random() -> Self {
        let mut key = [0u8; 16];
        // Without randomness the cache would be keyed by a known key: refuse to start instead.
        SystemRandom::new()
            .fill(&mut key)
            .expect("the system random source is available");
        let (k0, k1) = key.split_at(8);
        Self {
            k0: u64::from_le_bytes(k0.try_into().expect("8 bytes")),
            k1: u64::from_le_bytes(k1.try_into().expect("8 bytes")),
        }
    }

    fn name(&self, token: &str) -> u128 {
        let mut hasher = self.hasher();
        hasher.write(token.as_bytes());
        hasher.finish128().as_u128()
    }

    /// A SipHash-2-4 (128-bit output) under this key, for a name made of several parts.
    pub(crate) fn hasher(&self) -> SipHasher24 {
        SipHasher24::new_with_keys(self.k0, self.k1)
    }
}

/// The map's own hasher: a key's token name is already a keyed pseudo-random value, so hashing
/// it again (moka's default is SipHash-1-3) would only cost time. Scope and generation are
/// mixed in so that one token under two key sets lands in different buckets. The recent
/// requests' index (`recent.rs`) uses it too: its keys are keyed SipHash values.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NamedKeys;

#[derive(Debug, Default)]
pub(crate) struct FoldHasher(u64);

impl BuildHasher for NamedKeys {
    type Hasher = FoldHasher;
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher::default()
    }
}

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0 ^ value)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }
    fn write_u128(&mut self, value: u128) {
        // The name is uniform: xor-ing it in keeps every bit of the result uniform.
        self.0 ^= (value as u64) ^ ((value >> 64) as u64);
    }
}

/// The cache shared by every request.
#[derive(Debug)]
pub struct TokenCache {
    entries: moka::sync::Cache<Key, Arc<TokenVerification>, NamedKeys>,
    namer: SecretNamer,
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
        // Clamped before the conversion, which panics out of range (an `exp` of 1e300).
        let left = value
            .exp()
            .map_or(0.0, |exp| exp - now)
            .clamp(0.0, MAX_TTL.as_secs_f64());
        Some(Duration::try_from_secs_f64(left).unwrap_or(Duration::ZERO) + MAX_SKEW)
    }
}

impl TokenCache {
    /// A cache holding about `max_bytes` of verifications, counting lookups in `hits` and
    /// `misses`.
    pub fn new(max_bytes: u64, hits: Counter, misses: Counter) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, value: &Arc<TokenVerification>| {
                    value.approximate_size().saturating_add(ENTRY_OVERHEAD)
                })
                .expire_after(ExpireAtExp)
                .build_with_hasher(NamedKeys),
            namer: SecretNamer::random(),
            hits,
            misses,
        }
    }

    /// Entries held (moka counts lazily: see [`Self::run_pending_tasks`]).
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// The entries' total weight in bytes, as the bound counts it.
    pub fn weighed_size(&self) -> u64 {
        self.entries.weighted_size()
    }

    /// Applies pending insertions, evictions and expiries now, so the counts above are current.
    pub fn run_pending_tasks(&self) {
        self.entries.run_pending_tasks();
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

impl Scoped<'_> {
    fn key(&self, token: &str) -> Key {
        Key {
            scope: self.scope,
            generation: self.generation,
            token: self.cache.namer.name(token),
        }
    }

    /// Whether a verified result for `token` is held (its recency and frequency untouched).
    pub fn holds(&self, token: &str) -> bool {
        self.cache.entries.contains_key(&self.key(token))
    }
}

impl VerificationCache for Scoped<'_> {
    fn get_or_verify(
        &self,
        token: &str,
        verify: &mut dyn FnMut() -> Arc<TokenVerification>,
    ) -> Arc<TokenVerification> {
        let key = self.key(token);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The 128-bit SipHash-2-4 reference vectors (github.com/veorq/SipHash, vectors.h,
    /// `vectors_sip128`): key 00..0f, messages of 0 and 1 bytes (00). A wrong key schedule
    /// (siphasher 0.3.7 once used only half of the key) would fail here.
    #[test]
    fn token_names_are_reference_siphash_2_4_128() {
        let key: Vec<u8> = (0u8..16).collect();
        let namer = SecretNamer {
            k0: u64::from_le_bytes(key[..8].try_into().unwrap()),
            k1: u64::from_le_bytes(key[8..].try_into().unwrap()),
        };
        let bytes = |message: &[u8]| {
            let mut hasher = SipHasher24::new_with_keys(namer.k0, namer.k1);
            hasher.write(message);
            hasher.finish128().as_bytes()
        };
        assert_eq!(
            bytes(b""),
            [
                0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55,
                0x02, 0x93
            ]
        );
        assert_eq!(
            bytes(&[0]),
            [
                0xda, 0x87, 0xc1, 0xd8, 0x6b, 0x99, 0xaf, 0x44, 0x34, 0x76, 0x59, 0x11, 0x9b, 0x22,
                0xfc, 0x45
            ]
        );
        assert_eq!(namer.name(""), u128::from_le_bytes(bytes(b"")));
    }

    #[test]
    fn names_depend_on_the_secret_key_and_on_every_byte() {
        let (one, other) = (SecretNamer::random(), SecretNamer::random());
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
        assert_eq!(one.name(token), one.name(token));
        assert_ne!(one.name(token), other.name(token));
        assert_ne!(
            one.name(token),
            one.name("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lo")
        );
        assert!(!format!("{one:?}").contains(&one.k0.to_string()));
    }

    #[test]
    fn one_token_under_two_key_sets_hashes_apart() {
        let hash = |generation| {
            let mut hasher = NamedKeys.build_hasher();
            std::hash::Hash::hash(
                &Key {
                    scope: 1,
                    generation,
                    token: 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
                },
                &mut hasher,
            );
            hasher.finish()
        };
        assert_ne!(hash(1), hash(2));
    }
}
