//! The records of the most recent requests, kept in memory for the admin API
//! (`/api/requests/<opc-request-id>`) and the troubleshooting page's recent refusals.
//!
//! The log sinks hand every line that names a request here as they queue it, so the records
//! are exactly the log files' (tokens are never in them: the logs redact them). Keeping costs
//! the request path one copy of the line and a short lock per record; nothing is parsed until
//! someone asks. Bounded twice: the last [`MAX_REQUESTS`] requests, and [`MAX_BYTES`] of lines.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How many requests' records are kept (SPEC: the last 10 000).
pub const MAX_REQUESTS: usize = 10_000;

/// How many bytes of lines are kept at most: about 6 records of 500 bytes per request.
pub const MAX_BYTES: usize = 32 * 1024 * 1024;

/// A request's records above this many bytes are not kept beyond it (a flood of records about
/// one request cannot evict the others).
const MAX_BYTES_PER_REQUEST: usize = 256 * 1024;

#[derive(Debug, Default)]
struct Inner {
    /// Request ids, oldest first (one allocation per id, shared with `lines`).
    order: VecDeque<Arc<str>>,
    /// Each request's lines (JSON, no newline), in the order they were written; kept as the
    /// bytes the log sinks wrote (UTF-8: they serialize from `str`), read as text only when
    /// asked for.
    lines: HashMap<Arc<str>, Vec<Box<[u8]>>>,
    bytes: usize,
}

/// The recent requests' records; see the module docs.
#[derive(Debug)]
pub struct RecentRequests {
    inner: Mutex<Inner>,
    max_requests: usize,
    max_bytes: usize,
}

impl Default for RecentRequests {
    fn default() -> Self {
        Self::with_bounds(MAX_REQUESTS, MAX_BYTES)
    }
}

impl RecentRequests {
    /// A store bounded by `max_requests` requests and `max_bytes` bytes of lines.
    pub fn with_bounds(max_requests: usize, max_bytes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_requests: max_requests.max(1),
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain data: a panic elsewhere cannot leave it inconsistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps one serialized record (`line`, with or without its newline) of request `id`.
    pub fn push(&self, id: &str, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let size = line.len();
        // A request's first line is held to its share too, not only the ones after it.
        if size > self.max_bytes || size > MAX_BYTES_PER_REQUEST {
            return;
        }
        let mut inner = self.lock();
        let inner = &mut *inner;
        match inner.lines.get_mut(id) {
            Some(lines) => {
                let held: usize = lines.iter().map(|l| l.len()).sum();
                if held + size > MAX_BYTES_PER_REQUEST {
                    return;
                }
                lines.push(line.into());
            }
            None => {
                let id: Arc<str> = id.into();
                inner.order.push_back(id.clone());
                inner.lines.insert(id, vec![line.into()]);
            }
        }
        inner.bytes += size;
        while inner.order.len() > self.max_requests || inner.bytes > self.max_bytes {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(lines) = inner.lines.remove(&oldest) {
                inner.bytes -= lines.iter().map(|l| l.len()).sum::<usize>();
            }
        }
    }

    /// The records of request `id`, as written (JSON lines), if it is among the recent ones.
    pub fn get(&self, id: &str) -> Option<Vec<String>> {
        let inner = self.lock();
        inner
            .lines
            .get(id)
            .map(|lines| lines.iter().map(|l| text(l)).collect())
    }

    /// The most recent requests first, each with its records, while `keep` wants more: the
    /// lines are copied out under the lock in small batches, so a long scan does not hold it.
    pub fn newest_first(&self, mut keep: impl FnMut(&str, &[String]) -> bool) {
        const BATCH: usize = 256;
        let mut skip = 0;
        loop {
            let batch: Vec<(String, Vec<String>)> = {
                let inner = self.lock();
                inner
                    .order
                    .iter()
                    .rev()
                    .skip(skip)
                    .take(BATCH)
                    .filter_map(|id| {
                        let lines = inner.lines.get(id)?;
                        Some((id.to_string(), lines.iter().map(|l| text(l)).collect()))
                    })
                    .collect()
            };
            if batch.is_empty() {
                return;
            }
            skip += BATCH;
            for (id, lines) in &batch {
                if !keep(id, lines) {
                    return;
                }
            }
        }
    }

    /// How many requests and bytes are held.
    pub fn held(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.order.len(), inner.bytes)
    }
}

/// A kept line as text (the sinks only write UTF-8; anything else would be shown replaced).
fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_each_requests_lines_in_order() {
        let recent = RecentRequests::default();
        recent.push("a", b"{\"n\":1}\n");
        recent.push("b", b"{\"n\":2}\n");
        recent.push("a", b"{\"n\":3}\n");
        assert_eq!(recent.get("a").unwrap(), vec!["{\"n\":1}", "{\"n\":3}"]);
        assert_eq!(recent.get("b").unwrap(), vec!["{\"n\":2}"]);
        assert!(recent.get("c").is_none());
    }

    #[test]
    fn forgets_the_oldest_requests_beyond_the_count() {
        let recent = RecentRequests::with_bounds(3, 1 << 20);
        for id in ["1", "2", "3", "4"] {
            recent.push(id, b"x");
        }
        assert!(recent.get("1").is_none());
        assert!(recent.get("4").is_some());
        assert_eq!(recent.held(), (3, 3));
    }

    #[test]
    fn forgets_the_oldest_requests_beyond_the_bytes() {
        let recent = RecentRequests::with_bounds(100, 10);
        recent.push("1", b"aaaa");
        recent.push("2", b"bbbb");
        recent.push("3", b"cccc");
        assert!(recent.get("1").is_none());
        assert_eq!(recent.held(), (2, 8));
        // A line larger than the whole bound is not kept at all.
        recent.push("4", &[b'x'; 11]);
        assert!(recent.get("4").is_none());
        assert_eq!(recent.held(), (2, 8));
    }

    #[test]
    fn one_request_cannot_hold_more_than_its_share() {
        let recent = RecentRequests::default();
        let line = vec![b'x'; 100 * 1024];
        for _ in 0..5 {
            recent.push("flood", &line);
        }
        assert_eq!(recent.get("flood").unwrap().len(), 2);
        // A first line over the share is not kept either.
        recent.push("huge", &vec![b'x'; MAX_BYTES_PER_REQUEST + 1]);
        assert!(recent.get("huge").is_none());
        recent.push("huge", b"{}");
        assert_eq!(recent.get("huge").unwrap(), vec!["{}"]);
    }

    #[test]
    fn newest_first_stops_when_asked() {
        let recent = RecentRequests::default();
        for i in 0..600 {
            recent.push(&i.to_string(), b"x");
        }
        let mut seen = Vec::new();
        recent.newest_first(|id, _| {
            seen.push(id.to_owned());
            seen.len() < 300
        });
        assert_eq!(seen.len(), 300);
        assert_eq!(seen[0], "599");
        assert_eq!(seen[299], "300");
    }
}
