//! The records of the most recent requests, kept in memory for the admin API
//! (`/api/requests/<opc-request-id>`) and the troubleshooting page's recent refusals.
//!
//! The log sinks hand every line that names a request here as they queue it, so the records
//! are exactly the log files' (tokens are never in them: the logs redact them). Keeping costs
//! the request path one copy of the line into its request's record and a short lock; nothing is
//! parsed until someone asks. Bounded twice: the last [`MAX_REQUESTS`] requests, and
//! [`MAX_BYTES`] of lines.
//!
//! A request's record is one buffer (its id, then its lines, each ended by a newline: a JSON
//! line never holds a raw one), so keeping a request costs one allocation and forgetting one a
//! free; requests are found by a keyed hash of their id and the id itself is compared. The id
//! is the client's `opc-request-id`, so its hash is std's keyed SipHash (a per-process key: no
//! client can aim ids at one slot); the index's own table takes those already unpredictable
//! numbers as they are (the verified-token cache's `NamedKeys`).

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher as _;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// How many requests' records are kept (SPEC: the last 10 000).
pub const MAX_REQUESTS: usize = 10_000;

/// How many bytes of lines are kept at most: about 6 records of 500 bytes per request.
pub const MAX_BYTES: usize = 32 * 1024 * 1024;

/// A request's records above this many bytes are not kept beyond it (a flood of records about
/// one request cannot evict the others).
const MAX_BYTES_PER_REQUEST: usize = 256 * 1024;

/// One request's id and lines.
#[derive(Debug)]
struct Record {
    /// The id, then each line followed by `\n`.
    data: Vec<u8>,
    id_len: usize,
    /// The id's keyed hash: its slot in [`Inner::index`].
    hash: u64,
    /// Bytes of lines (separators not counted).
    held: usize,
}

impl Record {
    fn id(&self) -> &str {
        // Copied from a `&str` whole.
        std::str::from_utf8(&self.data[..self.id_len]).unwrap_or_default()
    }

    fn lines(&self) -> Vec<String> {
        let lines = &self.data[self.id_len..];
        lines
            .strip_suffix(b"\n")
            .unwrap_or(lines)
            .split(|b| *b == b'\n')
            .map(text)
            .collect()
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Oldest first.
    records: VecDeque<Record>,
    /// The sequence number of `records[0]` (each new record takes the next).
    first: u64,
    /// A request id's keyed hash → its record's sequence number. Two ids of one hash (not
    /// something a client can aim at) share a slot: the later one wins it, and the earlier is
    /// still found by a scan.
    index: HashMap<u64, u64, crate::cache::NamedKeys>,
    bytes: usize,
}

impl Inner {
    fn position(&self, hash: u64, id: &str) -> Option<usize> {
        let at = self.index.get(&hash).map(|seq| (seq - self.first) as usize);
        match at {
            Some(at) if self.records.get(at).is_some_and(|r| r.id() == id) => Some(at),
            // A collision: the id lost its slot, but may still be held.
            Some(_) => self.records.iter().rposition(|r| r.id() == id),
            None => None,
        }
    }

    fn forget_oldest(&mut self) {
        let Some(oldest) = self.records.pop_front() else {
            return;
        };
        if self.index.get(&oldest.hash) == Some(&self.first) {
            self.index.remove(&oldest.hash);
        }
        self.first += 1;
        self.bytes -= oldest.held;
    }
}

/// The recent requests' records; see the module docs.
#[derive(Debug)]
pub struct RecentRequests {
    inner: Mutex<Inner>,
    /// Hashes request ids (SipHash, keyed per process).
    ids: std::hash::RandomState,
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
            ids: std::hash::RandomState::new(),
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
        let hash = self.ids.hash_one(id);
        let mut inner = self.lock();
        let inner = &mut *inner;
        match inner.position(hash, id) {
            Some(at) => {
                let record = &mut inner.records[at];
                if record.held + size > MAX_BYTES_PER_REQUEST {
                    return;
                }
                record.data.extend_from_slice(line);
                record.data.push(b'\n');
                record.held += size;
            }
            None => {
                let mut data = Vec::with_capacity(id.len() + size + 1);
                data.extend_from_slice(id.as_bytes());
                data.extend_from_slice(line);
                data.push(b'\n');
                let seq = inner.first + inner.records.len() as u64;
                inner.records.push_back(Record {
                    data,
                    id_len: id.len(),
                    hash,
                    held: size,
                });
                inner.index.insert(hash, seq);
            }
        }
        inner.bytes += size;
        while inner.records.len() > self.max_requests || inner.bytes > self.max_bytes {
            inner.forget_oldest();
        }
    }

    /// The records of request `id`, as written (JSON lines), if it is among the recent ones.
    pub fn get(&self, id: &str) -> Option<Vec<String>> {
        let hash = self.ids.hash_one(id);
        let inner = self.lock();
        let at = inner.position(hash, id)?;
        Some(inner.records[at].lines())
    }

    /// The most recent requests first, each with its records, while `keep` wants more: the
    /// lines are copied out under the lock in small batches, so a long scan does not hold it.
    pub fn newest_first(&self, mut keep: impl FnMut(&str, &[String]) -> bool) {
        const BATCH: usize = 256;
        // Counted from the newest: records pushed meanwhile shift the older ones' positions.
        let mut next: Option<u64> = None;
        loop {
            let batch: Vec<(String, Vec<String>)> = {
                let inner = self.lock();
                let end = inner.first + inner.records.len() as u64;
                let newest = next.unwrap_or(end).min(end);
                let oldest = newest.saturating_sub(BATCH as u64).max(inner.first);
                next = Some(oldest);
                (oldest..newest)
                    .rev()
                    .map(|seq| &inner.records[(seq - inner.first) as usize])
                    .map(|r| (r.id().to_owned(), r.lines()))
                    .collect()
            };
            if batch.is_empty() {
                return;
            }
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
        (inner.records.len(), inner.bytes)
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

    #[test]
    fn an_id_whose_slot_another_took_is_still_found() {
        let recent = RecentRequests::default();
        recent.push("a", b"{\"n\":1}");
        recent.push("b", b"{\"n\":2}");
        // As if "a" and "b" had one hash: "a"'s slot names "b"'s record.
        let hash = recent.ids.hash_one("a");
        recent.lock().index.insert(hash, 1);
        assert_eq!(recent.get("a").unwrap(), vec!["{\"n\":1}"]);
        recent.push("a", b"{\"n\":3}");
        assert_eq!(recent.get("a").unwrap(), vec!["{\"n\":1}", "{\"n\":3}"]);
        assert_eq!(recent.get("b").unwrap(), vec!["{\"n\":2}"]);
        // Forgetting "a" leaves "b"'s slot alone.
        let small = RecentRequests::with_bounds(2, 1 << 20);
        small.push("a", b"1");
        small.push("b", b"2");
        let hash = small.ids.hash_one("a");
        small.lock().index.insert(hash, 1);
        small.push("c", b"3");
        assert!(small.get("a").is_none());
        assert_eq!(small.get("b").unwrap(), vec!["2"]);
    }

    #[test]
    fn newest_first_walks_every_record_once_across_batches() {
        let recent = RecentRequests::with_bounds(1000, 1 << 20);
        for i in 0..1200 {
            recent.push(&i.to_string(), format!("{{\"n\":{i}}}").as_bytes());
        }
        let mut seen = Vec::new();
        recent.newest_first(|id, lines| {
            assert_eq!(lines, [format!("{{\"n\":{id}}}")]);
            seen.push(id.parse::<usize>().unwrap());
            true
        });
        assert_eq!(seen, (200..1200).rev().collect::<Vec<_>>());
    }
}
