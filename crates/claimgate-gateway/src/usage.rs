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

use crate::shared::{Operation, SharedState};
use claimgate_config::{Entitlement, OnBreach, QuotaUnit};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

const SECONDS_PER_DAY: i64 = 86_400;
/// Counters kept in the process at most before finished ones are dropped.
const LOCAL_CAPACITY: usize = 100_000;

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

#[derive(Debug, Default)]
struct LocalCounter {
    /// GCRA theoretical arrival time, microseconds since the epoch.
    tat: u64,
    period_start: i64,
    period_end: i64,
    used: u64,
}

/// The counters of every (plan, entitlement, subscriber).
#[derive(Debug)]
pub struct UsageCounters {
    local: Mutex<HashMap<String, LocalCounter>>,
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
            local: Mutex::new(HashMap::new()),
            shared,
            count: redis::Script::new(COUNT),
            refund: redis::Script::new(REFUND),
        }
    }

    /// Counts one request under `key` (`<plan id>/<entitlement>/<subscriber id>`).
    pub async fn count(&self, key: &str, limits: Limits) -> Counted {
        if let Some(shared) = self.shared.as_ref().filter(|s| s.is_up()) {
            let rate_key = shared.key_of(Operation::UsagePlan, &["rate:", key]);
            let quota_key = shared.key_of(Operation::UsagePlan, &["quota:", key]);
            let (interval, tolerance) = limits.rate.unwrap_or((0, 0));
            let (limit, unit, allow) = match limits.quota {
                Some((value, unit, breach)) => (
                    i64::try_from(value).unwrap_or(i64::MAX),
                    unit.name(),
                    breach == OnBreach::Allow,
                ),
                None => (-1, "MINUTE", false),
            };
            let script = &self.count;
            let answer: Option<(u8, u64, i64, u64)> = shared
                .run(Operation::UsagePlan, |mut connection| async move {
                    script
                        .key(&rate_key)
                        .key(&quota_key)
                        .arg(interval)
                        .arg(tolerance)
                        .arg(limit)
                        .arg(unit)
                        .arg(u8::from(allow))
                        .invoke_async(&mut connection)
                        .await
                })
                .await;
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
        self.count_locally(key, limits, now_micros())
    }

    fn count_locally(&self, key: &str, limits: Limits, now: u64) -> Counted {
        let mut counters = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        if counters.len() >= LOCAL_CAPACITY && !counters.contains_key(key) {
            let seconds = (now / 1_000_000) as i64;
            counters.retain(|_, c| c.tat > now || c.period_end > seconds);
        }
        let counter = match counters.get_mut(key) {
            Some(counter) => counter,
            None => counters.entry(key.to_owned()).or_default(),
        };
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
    pub async fn refund(&self, key: &str, reserved: Reserved) -> Option<u64> {
        if reserved.shared {
            let shared = self.shared.as_ref()?;
            let quota_key = shared.key(Operation::UsagePlan, &format!("quota:{key}"));
            let script = &self.refund;
            let left: Option<i64> = shared
                .run(Operation::UsagePlan, |mut connection| async move {
                    script
                        .key(&quota_key)
                        .arg(reserved.period_start)
                        .invoke_async(&mut connection)
                        .await
                })
                .await;
            return left.and_then(|n| u64::try_from(n).ok());
        }
        let mut counters = self.local.lock().unwrap_or_else(PoisonError::into_inner);
        let counter = counters.get_mut(key)?;
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
            counters.count_locally("k", limits, now),
            Counted::Admitted {
                reserved: Some(Reserved { used: 1, .. }),
                breached: false
            }
        ));
        assert!(matches!(
            counters.count_locally("k", limits, now),
            Counted::RateLimited { retry_after: 1 }
        ));
        // A second later: the quota counted only the admitted request.
        assert!(matches!(
            counters.count_locally("k", limits, now + 1_000_000),
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
                counters.count_locally("r", reject, now),
                Counted::Admitted { .. }
            ));
        }
        assert_eq!(
            counters.count_locally("r", reject, now),
            Counted::QuotaExhausted {
                retry_after: 15,
                period_start: at(2026, 12, 2, 8, 0, 0),
                used: 2
            }
        );
        assert!(matches!(
            counters.count_locally("r", reject, now + 15_000_000),
            Counted::Admitted {
                breached: false,
                ..
            }
        ));
        let allow = local_limits(None, Some((1, QuotaUnit::Minute, OnBreach::Allow)));
        assert!(matches!(
            counters.count_locally("a", allow, now),
            Counted::Admitted {
                breached: false,
                ..
            }
        ));
        assert!(matches!(
            counters.count_locally("a", allow, now),
            Counted::Admitted { breached: true, .. }
        ));
    }
}
