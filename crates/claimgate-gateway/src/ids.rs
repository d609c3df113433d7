//! Request ids (`opc-request-id`, as OCI uses them) and log-record ids: 32 upper-case hex digits.
//!
//! Every request and every log record needs one, so making one must be cheap: an id is a
//! random 64-bit prefix drawn once per process, followed by a per-process sequence number
//! passed through a 64-bit bijection. Ids are therefore unique within a process (the sequence
//! would have to wrap around 2^64) and across restarts unless two processes draw the same
//! prefix (probability 2^-64 per pair). The bijection only keeps ids from looking sequential, so
//! that a client cannot read the gateway's request count off its ids; ids are not secrets and
//! are not meant to be unguessable.

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// One id, kept on the stack until it is written somewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Id([u8; 32]);

impl Id {
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

struct Generator {
    prefix: u64,
    /// Where the sequence starts, so that the first ids of two processes differ even in their
    /// second half.
    start: u64,
    next: AtomicU64,
}

fn generator() -> &'static Generator {
    static GENERATOR: OnceLock<Generator> = OnceLock::new();
    GENERATOR.get_or_init(|| {
        let mut bytes = [0u8; 16];
        if SystemRandom::new().fill(&mut bytes).is_err() {
            // No entropy source: the clock and the process id still differ between restarts,
            // which is what uniqueness across restarts needs; losing the request to it would not
            // be better.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            bytes = (nanos ^ (u128::from(std::process::id()) << 64)).to_le_bytes();
        }
        let random = u128::from_le_bytes(bytes);
        Generator {
            prefix: (random >> 64) as u64,
            start: random as u64,
            next: AtomicU64::new(0),
        }
    })
}

/// The finalizer of MurmurHash3: a bijection on 64 bits (xor-shifts and odd multipliers are
/// invertible), so distinct sequence numbers give distinct halves.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn hex(value: u64, out: &mut [u8]) {
    for (i, digit) in out.iter_mut().take(16).enumerate() {
        *digit = HEX[((value >> (60 - 4 * i)) & 0xf) as usize];
    }
}

/// A new id: 32 upper-case hex digits.
pub(crate) fn new_id() -> Id {
    let generator = generator();
    let sequence = generator.next.fetch_add(1, Ordering::Relaxed);
    let mut id = [0u8; 32];
    hex(generator.prefix, &mut id[..16]);
    hex(mix(generator.start.wrapping_add(sequence)), &mut id[16..]);
    Id(id)
}

/// The client's own id if it is printable ASCII of at most 256 characters, else a new one; as
/// the header value it is sent in (to the backend and in the answer), so that both share one
/// copy, and the client's is not copied at all. Its text is always visible ASCII.
pub(crate) fn request_id(client: Option<&http::HeaderValue>) -> http::HeaderValue {
    match client {
        Some(value)
            if !value.is_empty()
                && value.len() <= 256
                && value.as_bytes().iter().all(|b| (0x21..=0x7e).contains(b)) =>
        {
            value.clone()
        }
        _ => {
            http::HeaderValue::from_bytes(&new_id().0).expect("hex digits are a valid header value")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn is_upper_hex_32(id: &str) -> bool {
        id.len() == 32
            && id
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
    }

    #[test]
    fn generated_ids_are_32_upper_hex() {
        for _ in 0..1000 {
            let id = new_id();
            assert!(is_upper_hex_32(id.as_str()), "{id:?}");
        }
    }

    #[test]
    fn hex_is_big_endian_upper_case() {
        let mut out = [0u8; 16];
        hex(0x0123_4567_89ab_cdef, &mut out);
        assert_eq!(&out, b"0123456789ABCDEF");
        hex(u64::MAX, &mut out);
        assert_eq!(&out, b"FFFFFFFFFFFFFFFF");
    }

    #[test]
    fn ids_are_unique_across_threads() {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..20_000)
                        .map(|_| new_id().as_str().to_owned())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seen = HashSet::new();
        for thread in threads {
            for id in thread.join().unwrap() {
                assert!(seen.insert(id.clone()), "duplicate id {id}");
            }
        }
        assert_eq!(seen.len(), 80_000);
    }

    #[test]
    fn ids_share_the_process_prefix_and_do_not_look_sequential() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.as_str()[..16], b.as_str()[..16]);
        // Consecutive sequence numbers differ in many digits once mixed.
        let differing = a.as_str()[16..]
            .bytes()
            .zip(b.as_str()[16..].bytes())
            .filter(|(x, y)| x != y)
            .count();
        assert!(differing > 4, "{a:?} {b:?}");
    }

    #[test]
    fn mix_is_injective_on_a_sample() {
        let sample: HashSet<u64> = (0..100_000u64).map(mix).collect();
        assert_eq!(sample.len(), 100_000);
    }

    #[test]
    fn client_ids_are_kept_only_when_sane() {
        let id = |client: Option<&[u8]>| {
            let client = client.map(|c| http::HeaderValue::from_bytes(c).unwrap());
            request_id(client.as_ref()).to_str().unwrap().to_owned()
        };
        assert_eq!(id(Some(b"abc/DEF-1")), "abc/DEF-1");
        assert!(is_upper_hex_32(&id(Some(b"has space"))));
        assert!(is_upper_hex_32(&id(Some("caf\u{e9}".as_bytes()))));
        assert!(is_upper_hex_32(&id(Some(&[b'a'; 257]))));
        assert_eq!(id(Some(&[b'a'; 256])), "a".repeat(256));
        assert!(is_upper_hex_32(&id(Some(b""))));
        assert!(is_upper_hex_32(&id(None)));
        assert_ne!(id(None), id(None));
    }
}
