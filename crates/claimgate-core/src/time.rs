//! Time as the verdict sees it: whole seconds since 1970, given by the caller, never read from a
//! clock here.

use std::fmt;

/// Seconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub i64);

impl UnixTime {
    /// RFC 3339 in UTC, e.g. `2026-11-28T16:27:04Z`.
    pub fn rfc3339(self) -> String {
        match time::OffsetDateTime::from_unix_timestamp(self.0) {
            Ok(t) => t
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| self.0.to_string()),
            Err(_) => format!("{} (out of range)", self.0),
        }
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

/// A duration for people: `3m12s`, `2h`, `5d3h`, `0s`.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.unsigned_abs();
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let parts = [(d, "d"), (h, "h"), (m, "m"), (sec, "s")];
    let out: String = parts
        .iter()
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n != 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if out.is_empty() {
        "0s".into()
    } else {
        out
    }
}

/// `at` relative to `now`: `3m12s ago`, `in 9h49m`, `now`.
pub fn relative(at: i64, now: UnixTime) -> String {
    let delta = at.saturating_sub(now.0);
    match delta {
        0 => "now".into(),
        d if d < 0 => format!("{} ago", human_duration(d)),
        d => format!("in {}", human_duration(d)),
    }
}

/// A skew in seconds as written in the policy (`0s`, `30s`, `1.5s`).
pub fn skew_text(skew: f64) -> String {
    if skew.fract() == 0.0 {
        format!("{}s", skew as i64)
    } else {
        format!("{skew}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(192), "3m12s");
        assert_eq!(human_duration(7200), "2h");
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(90_061), "1d1h");
        assert_eq!(relative(100, UnixTime(292)), "3m12s ago");
        assert_eq!(relative(400, UnixTime(100)), "in 5m");
    }

    #[test]
    fn formats_utc() {
        assert_eq!(UnixTime(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(UnixTime(1_764_000_000).to_string(), "2025-11-24T16:00:00Z");
    }
}
