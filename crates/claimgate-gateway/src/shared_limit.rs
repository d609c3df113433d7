//! `rateLimiting` shared by replicas: the same GCRA as the local limiter, one atomic Lua step
//! per request on Redis's own clock (`TIME`), so replicas' clocks do not matter and N replicas
//! admit what one would. When Redis is down, or answers an error about the key, the request is
//! judged by the process's own limiter instead (SPEC: N replicas then admit up to N times the
//! rate; counts made locally are not merged back).

use crate::limit::{Acquire, Admission, LimitKey, LocalStore, RateLimitStore, RateLimiter};
use crate::shared::{Operation, ScriptCall, SharedState};
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
        let mut limiter = RedisLimiter {
            shared: self.shared.clone(),
            fallback: self.local.limiter(path_prefix, policy),
            script: self.script.clone(),
            path_prefix: path_prefix.into(),
            interval,
            tolerance: interval.saturating_mul(rate),
            total: None,
        };
        limiter.total = Some(Arc::new(limiter.call("TOTAL")));
        Arc::new(limiter)
    }
}

#[derive(Debug)]
struct RedisLimiter {
    shared: Arc<SharedState>,
    fallback: Arc<dyn RateLimiter>,
    script: Arc<redis::Script>,
    /// The deployment's path prefix: the key is `<prefix>rl:<path prefix>:<limit key>`.
    path_prefix: Box<str>,
    interval: u64,
    tolerance: u64,
    /// The call of every request of a `TOTAL` policy, built once.
    total: Option<Arc<ScriptCall<Arc<redis::Script>>>>,
}

impl RedisLimiter {
    /// The `EVALSHA` for `key` (`TOTAL` or a client's address, as the log writes it).
    fn call(&self, key: &str) -> ScriptCall<Arc<redis::Script>> {
        ScriptCall::new(self.script.clone(), 1, 2)
            .key(
                &self.shared,
                Operation::RateLimit,
                "",
                &[&self.path_prefix, ":", key],
            )
            .arg(self.interval)
            .arg(self.tolerance)
    }
}

/// A client's address as its key names it, formatted on the stack (at most 43 bytes: an IPv6
/// `/64`).
struct Name {
    bytes: [u8; 64],
    len: usize,
}

impl Name {
    fn of(key: &LimitKey) -> Self {
        let mut name = Self {
            bytes: [0; 64],
            len: 0,
        };
        let _ = write!(name, "{key}");
        name
    }

    fn as_str(&self) -> &str {
        // Only whole `str`s are written.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for Name {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let room = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The call of one request: the shared `TOTAL` call, or one built for a client.
enum Call {
    Total(Arc<ScriptCall<Arc<redis::Script>>>),
    Client(ScriptCall<Arc<redis::Script>>),
}

impl RateLimiter for RedisLimiter {
    fn acquire(&self, key: LimitKey) -> Acquire {
        if !self.shared.is_up() {
            return self.fallback.acquire(key);
        }
        let call = match (&key, &self.total) {
            (LimitKey::Total, Some(total)) => Call::Total(total.clone()),
            _ => Call::Client(self.call(Name::of(&key).as_str())),
        };
        let shared = self.shared.clone();
        let fallback = self.fallback.clone();
        Acquire::Later(Box::pin(async move {
            let call = match &call {
                Call::Total(call) => &**call,
                Call::Client(call) => call,
            };
            let answer: Option<(u8, u64)> = shared.eval(Operation::RateLimit, call).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::ClientKey;

    #[test]
    fn names_hold_every_key_as_the_log_writes_it() {
        let longest = "ffff:ffff:ffff:ffff::".parse().unwrap();
        for ip in [
            "203.0.113.7".parse().unwrap(),
            "::ffff:198.51.100.255".parse().unwrap(),
            longest,
            "2001:db8::1".parse().unwrap(),
        ] {
            let key = LimitKey::Client(ClientKey::from_ip(ip));
            assert_eq!(Name::of(&key).as_str(), key.to_string());
        }
        assert_eq!(Name::of(&LimitKey::Total).as_str(), "TOTAL");
        assert_eq!(
            Name::of(&LimitKey::Client(ClientKey::from_ip(longest))).as_str(),
            "ffff:ffff:ffff:ffff::/64"
        );
    }
}
