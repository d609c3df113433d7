//! `rateLimiting` shared by replicas: the same GCRA as the local limiter, one atomic Lua step
//! per request on Redis's own clock (`TIME`), so replicas' clocks do not matter and N replicas
//! admit what one would. When Redis is down, or answers an error about the key, the request is
//! judged by the process's own limiter instead (SPEC: N replicas then admit up to N times the
//! rate; counts made locally are not merged back).

use crate::limit::{Acquire, Admission, LimitKey, LocalStore, RateLimitStore, RateLimiter};
use crate::shared::{Operation, SharedState};
use claimgate_config::RateLimiting;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// GCRA in microseconds, as `limit::Gcra` does in nanoseconds: the TAT moves one emission
/// interval per request, allowed while it stays within the burst tolerance of now. Answers
/// `{1, 0}` (allowed) or `{0, microseconds until allowed}`. The key expires when the bucket
/// would be full again, which is the same as never having existed.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local next = tat + interval
if next - now > tolerance then
  return {0, next - tolerance - now}
end
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.ceil((next - now) / 1000) + 1)
return {1, 0}
";

/// Limiters whose buckets live in Redis, each with a local limiter to fall back on.
#[derive(Debug)]
pub(crate) struct RedisLimitStore {
    shared: Arc<SharedState>,
    local: LocalStore,
    script: Arc<redis::Script>,
}

impl RedisLimitStore {
    pub(crate) fn new(shared: Arc<SharedState>) -> Self {
        Self {
            shared,
            local: LocalStore::default(),
            script: Arc::new(redis::Script::new(GCRA)),
        }
    }
}

impl RateLimitStore for RedisLimitStore {
    fn limiter(&self, path_prefix: &str, policy: RateLimiting) -> Arc<dyn RateLimiter> {
        let rate = policy.requests_per_second.max(1);
        let interval = (1_000_000 / rate).max(1);
        Arc::new(RedisLimiter {
            shared: self.shared.clone(),
            fallback: self.local.limiter(path_prefix, policy),
            script: self.script.clone(),
            key_start: self
                .shared
                .key_of(Operation::RateLimit, &[path_prefix, ":"]),
            total_key: self
                .shared
                .key_of(Operation::RateLimit, &[path_prefix, ":TOTAL"])
                .into(),
            interval,
            tolerance: interval.saturating_mul(rate),
        })
    }
}

#[derive(Debug)]
struct RedisLimiter {
    shared: Arc<SharedState>,
    fallback: Arc<dyn RateLimiter>,
    script: Arc<redis::Script>,
    /// `<prefix>rl:<path prefix>:`; the limit key (`TOTAL`, an address) follows.
    key_start: String,
    /// `key_start` then `TOTAL`, built once: every request of a `TOTAL` policy uses it.
    total_key: Arc<str>,
    interval: u64,
    tolerance: u64,
}

impl RateLimiter for RedisLimiter {
    fn acquire(&self, key: LimitKey) -> Acquire {
        if !self.shared.is_up() {
            return self.fallback.acquire(key);
        }
        let redis_key: Arc<str> = match key {
            LimitKey::Total => self.total_key.clone(),
            LimitKey::Client(ref client) => {
                let mut redis_key = self.key_start.clone();
                let _ = write!(redis_key, "{client}");
                redis_key.into()
            }
        };
        let shared = self.shared.clone();
        let script = self.script.clone();
        let fallback = self.fallback.clone();
        let (interval, tolerance) = (self.interval, self.tolerance);
        Acquire::Later(Box::pin(async move {
            let answer: Option<(u8, u64)> = shared
                .run(Operation::RateLimit, |mut connection| async move {
                    script
                        .key(&*redis_key)
                        .arg(interval)
                        .arg(tolerance)
                        .invoke_async(&mut connection)
                        .await
                })
                .await;
            match answer {
                Some((1, _)) => Admission::Allowed,
                Some((_, wait)) => Admission::Denied {
                    retry_after: Duration::from_micros(wait),
                },
                None => fallback.acquire(key).admission().await,
            }
        }))
    }
}
