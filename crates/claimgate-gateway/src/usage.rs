//! Usage-plan counting (SPEC "Usage plans and subscribers"; OCI's §A.2): the entitlement's
//! rate limit as a GCRA bucket judged first (a request it refuses takes no quota), then the
//! quota, one unit reserved before the request is forwarded and given back when the answer is
//! 5xx (OCI counts 4xx toward quotas, 5xx toward rate limits only), so at most `quota.value`
//! non-5xx requests pass per UTC calendar period however many arrive at once.
//!
//! Counters are keyed by (plan id, entitlement, subscriber id), OCI's `limitingKey` without its
//! period: shared by a subscriber's clients and the entitlement's deployments, and kept across
//! reloads (they live in the gateway, not in a configuration generation). With `--redis` they
//! live in Redis (one Lua step per request on Redis's clock, the refund a second round trip
//! only on 5xx); while Redis is down, in the process, as rate limiting falls back.

use crate::shared::{Operation, ScriptCall, SharedState};
use claimgate_config::{Entitlement, OnBreach, QuotaUnit};
use indexmap::{Equivalent, IndexMap};
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

const SECONDS_PER_DAY: i64 = 86_400;
/// Counters kept in the process before finished ones are looked for and dropped.
const LOCAL_CAPACITY: usize = 100_000;
/// The process's counters are split into this many independently locked shards (by the hash of
/// the counter's name), so the serving threads rarely wait for each other.
const SHARDS: usize = 32;

/// The UTC calendar period holding `now` (Unix seconds): its start and its end (exclusive).
/// Weeks are ISO weeks (from Monday 00:00), months start on the 1st at 00:00.
pub fn period(unit: QuotaUnit, now: i64) -> (i64, i64) {
    let fixed = |length: i64| {
        let start = now - now.rem_euclid(length);
        (start, start + length)
    };
    match unit {
        QuotaUnit::Minute => fixed(60),
        QuotaUnit::Hour => fixed(3600),
        QuotaUnit::Day => fixed(SECONDS_PER_DAY),
        QuotaUnit::Week => {
            let days = now.div_euclid(SECONDS_PER_DAY);
            // 1970-01-01 was a Thursday: Monday is 3 days before.
            let monday = days - (days + 3).rem_euclid(7);
            (monday * SECONDS_PER_DAY, (monday + 7) * SECONDS_PER_DAY)
        }
        QuotaUnit::Month => {
            let days = now.div_euclid(SECONDS_PER_DAY);
            let (year, month, day) = civil_from_days(days);
            let first = days - (day - 1);
            let length = month_length(year, month);
            (first * SECONDS_PER_DAY, (first + length) * SECONDS_PER_DAY)
        }
    }
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn month_length(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A period start as `limitingKey` writes it: RFC 3339, UTC, seconds.
pub fn timestamp(seconds: i64) -> String {
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let rest = seconds.rem_euclid(SECONDS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// What one request's counting decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// The rate limit refused it (no quota taken).
    RateLimited { retry_after: u64 },
    /// The quota is spent and breaches are rejected: seconds to the next period.
    QuotaExhausted {
        retry_after: u64,
        period_start: i64,
        used: u64,
    },
    /// Forwarded; `reserved` when a quota unit was taken (to give back on 5xx), `breached`
    /// when the quota was already spent (`ALLOW`).
    Admitted {
        reserved: Option<Reserved>,
        breached: bool,
    },
}

/// A quota unit taken for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    pub period_start: i64,
    /// Units used in the period, this one included.
    pub used: u64,
    /// Whether Redis holds it (else the process).
    shared: bool,
}

/// The limits one entitlement sets, in the form counting needs.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Microseconds per request and the burst tolerance, for the rate limit.
    rate: Option<(u64, u64)>,
    quota: Option<(u64, QuotaUnit, OnBreach)>,
}

impl Limits {
    pub fn of(entitlement: &Entitlement) -> Self {
        Self {
            rate: entitlement.rate_limit.map(|rate| {
                let rate = rate.max(1);
                let interval = (1_000_000 / rate).max(1);
                (interval, interval.saturating_mul(rate))
            }),
            quota: entitlement.quota.map(|q| (q.value, q.unit, q.on_breach)),
        }
    }
}

/// The name of one counter: (plan id, entitlement, subscriber id), OCI's `limitingKey` without
/// its period. Borrowed from the loaded plans and subscribers: naming a counter allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterId<'a> {
    pub plan: &'a str,
    pub entitlement: &'a str,
    pub subscriber: &'a str,
}

impl fmt::Display for CounterId<'_> {
    /// `<plan id>/<entitlement>/<subscriber id>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.plan, self.entitlement, self.subscriber)
    }
}

#[derive(Debug, Default)]
struct LocalCounter {
    /// GCRA theoretical arrival time, microseconds since the epoch.
    tat: u64,
    period_start: i64,
    period_end: i64,
    used: u64,
}

/// A counter's name as the process keeps it (made once, on the counter's first request), with
/// its hash, computed once per request for both the shard and the table.
#[derive(Debug, PartialEq, Eq)]
struct OwnedId {
    hash: u64,
    plan: Box<str>,
    entitlement: Box<str>,
    subscriber: Box<str>,
}

impl Hash for OwnedId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// A [`CounterId`] with its hash, looked up without building an [`OwnedId`].
struct Probe<'a> {
    hash: u64,
    id: CounterId<'a>,
}

impl Hash for Probe<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Equivalent<OwnedId> for Probe<'_> {
    fn equivalent(&self, key: &OwnedId) -> bool {
        self.hash == key.hash
            && *key.subscriber == *self.id.subscriber
            && *key.entitlement == *self.id.entitlement
            && *key.plan == *self.id.plan
    }
}

/// The tables hash their keys' precomputed hash once more: its bits are used as they are.
#[derive(Debug, Clone, Copy, Default)]
struct Prehashed;

#[derive(Default)]
struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; anything else still hashes consistently.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl BuildHasher for Prehashed {
    type Hasher = PrehashedHasher;
    fn build_hasher(&self) -> PrehashedHasher {
        PrehashedHasher::default()
    }
}

/// One shard of the process's counters.
#[derive(Debug, Default)]
struct Shard {
    counters: IndexMap<OwnedId, LocalCounter, Prehashed>,
    /// The size at which finished counters are next looked for: the shard's share of
    /// [`LOCAL_CAPACITY`], then twice what a sweep left, so a shard whose counters cannot end
    /// yet (`DAY` to `MONTH` quotas) is swept once per doubling, not on every new counter.
    sweep_at: usize,
}

/// The counters of every (plan, entitlement, subscriber).
#[derive(Debug)]
pub struct UsageCounters {
    hasher: RandomState,
    local: Box<[Mutex<Shard>]>,
    shared: Option<Arc<SharedState>>,
    count: redis::Script,
    refund: redis::Script,
}

/// Rate limit, then quota, in one atomic step on Redis's clock. KEYS: the bucket, the quota
/// hash (`p` period start, `n` used). ARGV: interval and tolerance in microseconds (0: no rate
/// limit), the quota (-1: none), its unit, 1 when breaches are allowed. Answers
/// `{status, wait, period start, used}`: status 0 rate-limited (wait in microseconds), 2 quota
/// exhausted (wait in seconds), 1 admitted, 3 admitted over the quota.
const COUNT: &str = r"
local t = redis.call('TIME')
local secs = tonumber(t[1])
local now = secs * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
if interval > 0 then
  local tolerance = tonumber(ARGV[2])
  local tat = tonumber(redis.call('GET', KEYS[1])) or now
  if tat < now then tat = now end
  local nxt = tat + interval
  if nxt - now > tolerance then
    return {0, nxt - tolerance - now, 0, 0}
  end
  redis.call('SET', KEYS[1], string.format('%d', nxt), 'PX', math.ceil((nxt - now) / 1000) + 1)
end
local limit = tonumber(ARGV[3])
if limit < 0 then return {1, 0, 0, 0} end
local unit = ARGV[4]
local start, finish
local days = math.floor(secs / 86400)
if unit == 'MINUTE' then start = secs - secs % 60; finish = start + 60
elseif unit == 'HOUR' then start = secs - secs % 3600; finish = start + 3600
elseif unit == 'DAY' then start = days * 86400; finish = start + 86400
elseif unit == 'WEEK' then
  start = (days - (days + 3) % 7) * 86400; finish = start + 7 * 86400
else
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp + 3
  if mp >= 10 then m = mp - 9 end
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  local len = ({31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31})[m]
  if m == 2 and y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0) then len = 29 end
  start = (days - (d - 1)) * 86400
  finish = start + len * 86400
end
local n = 0
if tonumber(redis.call('HGET', KEYS[2], 'p')) == start then
  n = tonumber(redis.call('HGET', KEYS[2], 'n')) or 0
end
local over = n >= limit
if over and ARGV[5] ~= '1' then
  return {2, finish - secs, start, n}
end
redis.call('HSET', KEYS[2], 'p', start, 'n', n + 1)
redis.call('EXPIREAT', KEYS[2], finish + 60)
if over then return {3, 0, start, n + 1} end
return {1, 0, start, n + 1}
";

/// Gives one unit back to the period it was taken from (never to a later one).
const REFUND: &str = r"
if tonumber(redis.call('HGET', KEYS[1], 'p')) == tonumber(ARGV[1]) then
  local n = tonumber(redis.call('HGET', KEYS[1], 'n')) or 0
  if n > 0 then redis.call('HSET', KEYS[1], 'n', n - 1) end
  return n - 1
end
return -1
";

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn seconds_ceil(micros: u64) -> u64 {
    micros.div_ceil(1_000_000).max(1)
}

impl UsageCounters {
    pub fn new(shared: Option<Arc<SharedState>>) -> Self {
        Self {
            hasher: RandomState::new(),
            local: (0..SHARDS).map(|_| Mutex::default()).collect(),
            shared,
            count: redis::Script::new(COUNT),
            refund: redis::Script::new(REFUND),
        }
    }

    /// Counts one request under `id`.
    pub async fn count(&self, id: CounterId<'_>, limits: Limits) -> Counted {
        if let Some(shared) = self.shared.as_ref().filter(|s| s.is_up()) {
            let (interval, tolerance) = limits.rate.unwrap_or((0, 0));
            let (limit, unit, allow) = match limits.quota {
                Some((value, unit, breach)) => (
                    i64::try_from(value).unwrap_or(i64::MAX),
                    unit.name(),
                    breach == OnBreach::Allow,
                ),
                None => (-1, "MINUTE", false),
            };
            // The two keys are written straight into the command: no key string per request.
            let name = [id.plan, "/", id.entitlement, "/", id.subscriber];
            let call = ScriptCall::new(&self.count, 2, 5)
                .key(shared, Operation::UsagePlan, "rate:", &name)
                .key(shared, Operation::UsagePlan, "quota:", &name)
                .arg(interval)
                .arg(tolerance)
                .arg(limit)
                .arg(unit)
                .arg(u8::from(allow));
            // Boxed: inline, the connection's large send future would grow the future of
            // every request, counted in Redis or not (`shared::send`).
            let answer: Option<(u8, u64, i64, u64)> =
                Box::pin(shared.eval(Operation::UsagePlan, &call)).await;
            if let Some((status, wait, period_start, used)) = answer {
                let reserved = (limits.quota.is_some()).then_some(Reserved {
                    period_start,
                    used,
                    shared: true,
                });
                return match status {
                    0 => Counted::RateLimited {
                        retry_after: seconds_ceil(wait),
                    },
                    2 => Counted::QuotaExhausted {
                        retry_after: wait.max(1),
                        period_start,
                        used,
                    },
                    3 => Counted::Admitted {
                        reserved,
                        breached: true,
                    },
                    _ => Counted::Admitted {
                        reserved,
                        breached: false,
                    },
                };
            }
        }
        self.count_locally(id, limits, now_micros())
    }

    /// The shard holding `id`'s counter, and `id` with its hash.
    fn shard<'i>(&self, id: CounterId<'i>) -> (&Mutex<Shard>, Probe<'i>) {
        let hash = self
            .hasher
            .hash_one((id.plan, id.entitlement, id.subscriber));
        // The table uses the hash's low bits; the shard takes high ones.
        let shard = &self.local[(hash >> 58) as usize % SHARDS];
        (shard, Probe { hash, id })
    }

    fn count_locally(&self, id: CounterId<'_>, limits: Limits, now: u64) -> Counted {
        let (shard, probe) = self.shard(id);
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let index = match shard.counters.get_index_of(&probe) {
            Some(index) => index,
            None => {
                let capacity = LOCAL_CAPACITY / SHARDS;
                if shard.counters.len() >= shard.sweep_at.max(capacity) {
                    let seconds = (now / 1_000_000) as i64;
                    shard
                        .counters
                        .retain(|_, c| c.tat > now || c.period_end > seconds);
                    shard.sweep_at = (shard.counters.len() * 2).max(capacity);
                }
                let owned = OwnedId {
                    hash: probe.hash,
                    plan: id.plan.into(),
                    entitlement: id.entitlement.into(),
                    subscriber: id.subscriber.into(),
                };
                shard.counters.insert_full(owned, LocalCounter::default()).0
            }
        };
        let counter = &mut shard.counters[index];
        if let Some((interval, tolerance)) = limits.rate {
            let next = counter.tat.max(now).saturating_add(interval);
            if next - now > tolerance {
                return Counted::RateLimited {
                    retry_after: seconds_ceil(next - tolerance - now),
                };
            }
            counter.tat = next;
        }
        let Some((limit, unit, breach)) = limits.quota else {
            return Counted::Admitted {
                reserved: None,
                breached: false,
            };
        };
        let seconds = (now / 1_000_000) as i64;
        let (start, end) = period(unit, seconds);
        if counter.period_start != start {
            *counter = LocalCounter {
                tat: counter.tat,
                period_start: start,
                period_end: end,
                used: 0,
            };
        }
        let over = counter.used >= limit;
        if over && breach == OnBreach::Reject {
            return Counted::QuotaExhausted {
                retry_after: u64::try_from(end - seconds).unwrap_or(1).max(1),
                period_start: start,
                used: counter.used,
            };
        }
        counter.used += 1;
        Counted::Admitted {
            reserved: Some(Reserved {
                period_start: start,
                used: counter.used,
                shared: false,
            }),
            breached: over,
        }
    }

    /// Gives back the unit a request answered 5xx took; the units now used when known.
    pub async fn refund(&self, id: CounterId<'_>, reserved: Reserved) -> Option<u64> {
        if reserved.shared {
            let shared = self.shared.as_ref()?;
            let name = [id.plan, "/", id.entitlement, "/", id.subscriber];
            let call = ScriptCall::new(&self.refund, 1, 1)
                .key(shared, Operation::UsagePlan, "quota:", &name)
                .arg(reserved.period_start);
            let left: Option<i64> = Box::pin(shared.eval(Operation::UsagePlan, &call)).await;
            return left.and_then(|n| u64::try_from(n).ok());
        }
        let (shard, probe) = self.shard(id);
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let counter = shard.counters.get_mut(&probe)?;
        if counter.period_start == reserved.period_start {
            counter.used = counter.used.saturating_sub(1);
            return Some(counter.used);
        }
        None
    }
}

/// Limits built directly, for the tests.
#[cfg(test)]
fn local_limits(rate: Option<u64>, quota: Option<(u64, QuotaUnit, OnBreach)>) -> Limits {
    Limits {
        rate: rate.map(|rate| {
            let interval = 1_000_000 / rate;
            (interval, interval * rate)
        }),
        quota,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counter named after `plan` alone.
    fn id(plan: &str) -> CounterId<'_> {
        CounterId {
            plan,
            entitlement: "e",
            subscriber: "s",
        }
    }

    /// Unix seconds of a UTC date and time.
    fn at(year: i64, month: i64, day: i64, hour: i64, minute: i64, second: i64) -> i64 {
        // days_from_civil (Hinnant).
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (month + 9) % 12;
        let doy = (153 * mp + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second
    }

    #[test]
    fn minutes_hours_and_days_are_utc_calendar_periods() {
        let t = at(2026, 12, 2, 7, 58, 31);
        assert_eq!(
            period(QuotaUnit::Minute, t),
            (at(2026, 12, 2, 7, 58, 0), at(2026, 12, 2, 7, 59, 0))
        );
        assert_eq!(
            period(QuotaUnit::Hour, t),
            (at(2026, 12, 2, 7, 0, 0), at(2026, 12, 2, 8, 0, 0))
        );
        assert_eq!(
            period(QuotaUnit::Day, t),
            (at(2026, 12, 2, 0, 0, 0), at(2026, 12, 3, 0, 0, 0))
        );
        // The last second of a period is in it; the next starts a new one.
        let end = at(2026, 12, 2, 23, 59, 59);
        assert_eq!(period(QuotaUnit::Day, end).0, at(2026, 12, 2, 0, 0, 0));
        assert_eq!(period(QuotaUnit::Day, end + 1).0, at(2026, 12, 3, 0, 0, 0));
    }

    #[test]
    fn weeks_start_on_monday_at_midnight() {
        // 2026-11-30 is a Monday; 2026-12-06 a Sunday.
        let monday = at(2026, 11, 30, 0, 0, 0);
        let week = (monday, at(2026, 12, 7, 0, 0, 0));
        assert_eq!(period(QuotaUnit::Week, monday), week);
        assert_eq!(period(QuotaUnit::Week, at(2026, 12, 6, 23, 59, 59)), week);
        assert_eq!(period(QuotaUnit::Week, at(2026, 12, 2, 12, 0, 0)), week);
        assert_eq!(
            period(QuotaUnit::Week, monday - 1).0,
            at(2026, 11, 23, 0, 0, 0)
        );
        // Across the new year: 2027-01-01 is a Friday, its week started on 2026-12-28.
        assert_eq!(
            period(QuotaUnit::Week, at(2027, 1, 1, 9, 0, 0)),
            (at(2026, 12, 28, 0, 0, 0), at(2027, 1, 4, 0, 0, 0))
        );
        // The epoch's week (1970-01-01 was a Thursday).
        assert_eq!(period(QuotaUnit::Week, 0).0, at(1969, 12, 29, 0, 0, 0));
    }

    #[test]
    fn months_have_their_lengths_and_leap_februaries() {
        let month = |y, m, d| period(QuotaUnit::Month, at(y, m, d, 12, 0, 0));
        assert_eq!(
            month(2026, 12, 31),
            (at(2026, 12, 1, 0, 0, 0), at(2027, 1, 1, 0, 0, 0))
        );
        assert_eq!(
            month(2027, 1, 1),
            (at(2027, 1, 1, 0, 0, 0), at(2027, 2, 1, 0, 0, 0))
        );
        assert_eq!(
            month(2026, 4, 30),
            (at(2026, 4, 1, 0, 0, 0), at(2026, 5, 1, 0, 0, 0))
        );
        assert_eq!(
            month(2026, 2, 28),
            (at(2026, 2, 1, 0, 0, 0), at(2026, 3, 1, 0, 0, 0))
        );
        assert_eq!(
            month(2028, 2, 29),
            (at(2028, 2, 1, 0, 0, 0), at(2028, 3, 1, 0, 0, 0))
        );
        assert_eq!(
            month(2100, 2, 15).1 - month(2100, 2, 15).0,
            28 * SECONDS_PER_DAY
        );
        assert_eq!(
            month(2000, 2, 15).1 - month(2000, 2, 15).0,
            29 * SECONDS_PER_DAY
        );
        // The last second of December is December's; the next is January's.
        let last = at(2026, 12, 31, 23, 59, 59);
        assert_eq!(period(QuotaUnit::Month, last).0, at(2026, 12, 1, 0, 0, 0));
        assert_eq!(
            period(QuotaUnit::Month, last + 1).0,
            at(2027, 1, 1, 0, 0, 0)
        );
        assert_eq!(timestamp(last + 1), "2027-01-01T00:00:00Z");
    }

    #[test]
    fn the_rate_limit_is_judged_first_and_takes_no_quota() {
        let counters = UsageCounters::new(None);
        let limits = local_limits(Some(1), Some((5, QuotaUnit::Day, OnBreach::Reject)));
        let now = at(2026, 12, 2, 8, 0, 0) as u64 * 1_000_000;
        assert!(matches!(
            counters.count_locally(id("k"), limits, now),
            Counted::Admitted {
                reserved: Some(Reserved { used: 1, .. }),
                breached: false
            }
        ));
        assert!(matches!(
            counters.count_locally(id("k"), limits, now),
            Counted::RateLimited { retry_after: 1 }
        ));
        // A second later: the quota counted only the admitted request.
        assert!(matches!(
            counters.count_locally(id("k"), limits, now + 1_000_000),
            Counted::Admitted {
                reserved: Some(Reserved { used: 2, .. }),
                ..
            }
        ));
    }

    #[test]
    fn a_spent_quota_rejects_until_the_next_period_or_allows_as_breached() {
        let counters = UsageCounters::new(None);
        let reject = local_limits(None, Some((2, QuotaUnit::Minute, OnBreach::Reject)));
        let now = at(2026, 12, 2, 8, 0, 45) as u64 * 1_000_000;
        for _ in 0..2 {
            assert!(matches!(
                counters.count_locally(id("r"), reject, now),
                Counted::Admitted { .. }
            ));
        }
        assert_eq!(
            counters.count_locally(id("r"), reject, now),
            Counted::QuotaExhausted {
                retry_after: 15,
                period_start: at(2026, 12, 2, 8, 0, 0),
                used: 2
            }
        );
        assert!(matches!(
            counters.count_locally(id("r"), reject, now + 15_000_000),
            Counted::Admitted {
                breached: false,
                ..
            }
        ));
        let allow = local_limits(None, Some((1, QuotaUnit::Minute, OnBreach::Allow)));
        assert!(matches!(
            counters.count_locally(id("a"), allow, now),
            Counted::Admitted {
                breached: false,
                ..
            }
        ));
        assert!(matches!(
            counters.count_locally(id("a"), allow, now),
            Counted::Admitted { breached: true, .. }
        ));
    }

    #[test]
    fn counters_are_told_apart_by_every_part_of_their_name() {
        let counters = UsageCounters::new(None);
        let limits = local_limits(None, Some((1, QuotaUnit::Day, OnBreach::Reject)));
        let now = at(2026, 12, 2, 8, 0, 0) as u64 * 1_000_000;
        // Names that would read alike joined with '/' are still different counters.
        let names = [
            CounterId {
                plan: "p/e",
                entitlement: "s",
                subscriber: "x",
            },
            CounterId {
                plan: "p",
                entitlement: "e/s",
                subscriber: "x",
            },
            CounterId {
                plan: "p",
                entitlement: "e",
                subscriber: "s/x",
            },
        ];
        for name in names {
            assert!(
                matches!(
                    counters.count_locally(name, limits, now),
                    Counted::Admitted { .. }
                ),
                "{name}"
            );
        }
        for name in names {
            assert!(matches!(
                counters.count_locally(name, limits, now),
                Counted::QuotaExhausted { used: 1, .. }
            ));
        }
        // A refund finds its own counter only.
        let reserved = Reserved {
            period_start: at(2026, 12, 2, 0, 0, 0),
            used: 1,
            shared: false,
        };
        assert_eq!(
            futures_block_on(counters.refund(names[1], reserved)),
            Some(0)
        );
        assert!(matches!(
            counters.count_locally(names[1], limits, now),
            Counted::Admitted { .. }
        ));
        assert!(matches!(
            counters.count_locally(names[0], limits, now),
            Counted::QuotaExhausted { .. }
        ));
        assert_eq!(
            futures_block_on(counters.refund(id("never counted"), reserved)),
            None
        );
    }

    #[test]
    fn finished_counters_are_dropped_and_running_ones_kept_past_the_capacity() {
        let counters = UsageCounters::new(None);
        let minute = local_limits(None, Some((1, QuotaUnit::Minute, OnBreach::Reject)));
        let day = local_limits(None, Some((1, QuotaUnit::Day, OnBreach::Reject)));
        let now = at(2026, 12, 2, 8, 0, 0) as u64 * 1_000_000;
        let names: Vec<String> = (0..LOCAL_CAPACITY + LOCAL_CAPACITY / 2)
            .map(|i| format!("plan-{i}"))
            .collect();
        let held = |counters: &UsageCounters| -> usize {
            counters
                .local
                .iter()
                .map(|s| s.lock().unwrap().counters.len())
                .sum()
        };
        // Day quotas cannot finish within the day: every counter is kept, over the capacity.
        for name in &names {
            counters.count_locally(id(name), day, now);
        }
        assert_eq!(held(&counters), names.len());
        for name in names.iter().take(100) {
            assert!(matches!(
                counters.count_locally(id(name), day, now),
                Counted::QuotaExhausted { .. }
            ));
        }
        // Minute quotas a day later have finished: new counters make room.
        let counters = UsageCounters::new(None);
        for name in &names {
            counters.count_locally(id(name), minute, now);
        }
        let later = now + 86_400 * 1_000_000;
        for i in 0..LOCAL_CAPACITY {
            counters.count_locally(id(&format!("later-{i}")), minute, later);
        }
        assert!(held(&counters) < names.len(), "{}", held(&counters));
    }

    #[test]
    fn concurrent_requests_against_a_quota_take_exactly_the_quota() {
        let counters = Arc::new(UsageCounters::new(None));
        let limits = local_limits(None, Some((600, QuotaUnit::Day, OnBreach::Reject)));
        let now = at(2026, 12, 2, 8, 0, 0) as u64 * 1_000_000;
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let counters = counters.clone();
                std::thread::spawn(move || {
                    (0..200)
                        .filter(|_| {
                            matches!(
                                counters.count_locally(id("shared"), limits, now),
                                Counted::Admitted { .. }
                            )
                        })
                        .count()
                })
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(admitted, 600);
    }

    /// Runs a future that never waits (the local refund) to its end.
    fn futures_block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }
}
