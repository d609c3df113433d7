//! `rateLimiting`: a token bucket per key whose capacity and refill rate are
//! `rateInRequestsPerSecond` (SPEC.md "Operations"), and who the client is.
//!
//! The limiter sits behind two traits so that a shared store can back it when claimgate runs as
//! several replicas: a [`RateLimitStore`] hands each deployment its [`RateLimiter`] when a
//! configuration is built, and the limiter answers one request at a time, either at once
//! ([`Acquire::Now`]) or after a round trip ([`Acquire::Later`]). [`LocalStore`] is the
//! in-process store every gateway uses unless told otherwise.
//!
//! The local buckets use GCRA (the generic cell rate algorithm), which is a token bucket stored
//! as one number per key: the "theoretical arrival time" (TAT) at which the bucket would be full
//! again. `TOTAL` is one atomic word updated by compare-and-swap; `CLIENT_IP` is a map split
//! into 64 independently locked shards, each bounded: a bucket whose TAT has passed is full,
//! exactly like a bucket never created, so dropping it loses nothing.

use claimgate_config::{RateKey, RateLimiting};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::BuildHasher as _;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// What a rate limit is counted by, for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// `TOTAL`: every request of the deployment.
    Total,
    /// `CLIENT_IP`: the client's IPv4 address, or its IPv6 /64.
    Client(ClientKey),
}

impl LimitKey {
    /// The key of `policy` for a request from `client`.
    pub fn new(policy: RateKey, client: IpAddr) -> Self {
        match policy {
            RateKey::Total => Self::Total,
            RateKey::ClientIp => Self::Client(ClientKey::from_ip(client)),
        }
    }
}

impl fmt::Display for LimitKey {
    /// The execution log's `limitingKey`: `TOTAL`, an IPv4 address or an IPv6 `/64`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Total => f.write_str("TOTAL"),
            Self::Client(key) => key.fmt(f),
        }
    }
}

/// A client address as a rate-limit key: an IPv4 address (also when it arrives IPv4-mapped), or
/// the /64 network of an IPv6 address. Stored in 128 bits: IPv4 as `::ffff:a.b.c.d`, IPv6 with
/// its low 64 bits cleared, so the two never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(u128);

impl ClientKey {
    pub fn from_ip(ip: IpAddr) -> Self {
        match canonical(ip) {
            IpAddr::V4(v4) => Self(u128::from(v4.to_ipv6_mapped())),
            IpAddr::V6(v6) => Self(u128::from(v6) & !u128::from(u64::MAX)),
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v6 = Ipv6Addr::from(self.0);
        match v6.to_ipv4_mapped() {
            Some(v4) => v4.fmt(f),
            None => write!(f, "{v6}/64"),
        }
    }
}

/// IPv4-mapped IPv6 addresses (from dual-stack sockets) as the IPv4 addresses they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Refused; a request would be allowed again after this long.
    Denied {
        retry_after: Duration,
    },
}

impl Admission {
    /// `Retry-After` in whole seconds, rounded up, at least 1.
    pub fn retry_after_seconds(retry_after: Duration) -> u64 {
        let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        seconds.max(1)
    }
}

/// An answer that is ready, or one a shared store will give after a round trip.
pub enum Acquire {
    Now(Admission),
    Later(Pin<Box<dyn Future<Output = Admission> + Send>>),
}

impl fmt::Debug for Acquire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Now(admission) => f.debug_tuple("Now").field(admission).finish(),
            Self::Later(_) => f.write_str("Later(..)"),
        }
    }
}

impl Acquire {
    pub async fn admission(self) -> Admission {
        match self {
            Self::Now(admission) => admission,
            Self::Later(future) => future.await,
        }
    }
}

/// The buckets of one deployment's `rateLimiting`.
pub trait RateLimiter: Send + Sync + fmt::Debug {
    /// Takes one token from the bucket of `key`, if it has one.
    fn acquire(&self, key: LimitKey) -> Acquire;
}

/// Where limiters come from: called for each deployment when a configuration is built (at start
/// and on every reload). A store should return the limiter it already has for the same
/// deployment and policy, so that buckets survive a reload.
pub trait RateLimitStore: Send + Sync + fmt::Debug {
    /// The limiter for `policy` of the deployment served at `path_prefix`.
    fn limiter(&self, path_prefix: &str, policy: RateLimiting) -> Arc<dyn RateLimiter>;
}

/// The in-process store: one [`LocalLimiter`] per deployment and policy, kept across reloads
/// while a served configuration still uses it.
#[derive(Debug)]
pub struct LocalStore {
    max_keys: usize,
    limiters: Mutex<HashMap<(String, RateLimiting), Weak<LocalLimiter>>>,
}

/// Client buckets one local limiter keeps at most (under 20 MiB at worst).
pub const DEFAULT_MAX_KEYS: usize = 1 << 18;

impl Default for LocalStore {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_KEYS)
    }
}

impl LocalStore {
    /// A store whose limiters keep at most `max_keys` client buckets each.
    pub fn new(max_keys: usize) -> Self {
        Self {
            max_keys,
            limiters: Mutex::new(HashMap::new()),
        }
    }
}

impl RateLimitStore for LocalStore {
    fn limiter(&self, path_prefix: &str, policy: RateLimiting) -> Arc<dyn RateLimiter> {
        let mut limiters = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
        limiters.retain(|_, weak| weak.strong_count() > 0);
        let key = (path_prefix.to_owned(), policy);
        if let Some(existing) = limiters.get(&key).and_then(Weak::upgrade) {
            return existing;
        }
        let limiter = Arc::new(LocalLimiter::new(policy, self.max_keys));
        limiters.insert(key, Arc::downgrade(&limiter));
        limiter
    }
}

/// Token buckets in this process.
#[derive(Debug)]
pub struct LocalLimiter {
    gcra: Gcra,
    epoch: Instant,
    buckets: Buckets,
}

#[derive(Debug)]
enum Buckets {
    Total(AtomicU64),
    Clients(Box<Shards>),
}

impl LocalLimiter {
    pub fn new(policy: RateLimiting, max_keys: usize) -> Self {
        Self {
            gcra: Gcra::new(policy.requests_per_second),
            epoch: Instant::now(),
            buckets: match policy.key {
                RateKey::Total => Buckets::Total(AtomicU64::new(0)),
                RateKey::ClientIp => Buckets::Clients(Box::new(Shards::new(max_keys))),
            },
        }
    }

    /// Takes a token at `now` (nanoseconds since the limiter was made).
    pub fn acquire_at(&self, key: LimitKey, now: u64) -> Admission {
        let outcome = match (&self.buckets, key) {
            (Buckets::Total(tat), _) => {
                let mut current = tat.load(Ordering::Relaxed);
                loop {
                    match self.gcra.take(current, now) {
                        Ok(next) => match tat.compare_exchange_weak(
                            current,
                            next,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        ) {
                            Ok(_) => break Ok(()),
                            Err(actual) => current = actual,
                        },
                        Err(wait) => break Err(wait),
                    }
                }
            }
            (Buckets::Clients(shards), LimitKey::Client(client)) => {
                shards.take(client, now, &self.gcra)
            }
            // A client bucket set asked about TOTAL: nothing to count it against.
            (Buckets::Clients(_), LimitKey::Total) => Ok(()),
        };
        match outcome {
            Ok(()) => Admission::Allowed,
            Err(wait) => Admission::Denied {
                retry_after: Duration::from_nanos(wait),
            },
        }
    }

    /// Client buckets held now.
    pub fn len(&self) -> usize {
        match &self.buckets {
            Buckets::Total(_) => 1,
            Buckets::Clients(shards) => shards.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl RateLimiter for LocalLimiter {
    fn acquire(&self, key: LimitKey) -> Acquire {
        Acquire::Now(self.acquire_at(key, self.now()))
    }
}

/// A token bucket of capacity `rate` refilled at `rate` per second, as GCRA: each request moves
/// the TAT one emission interval `t` later, and is allowed while the TAT stays within `tau`
/// (capacity × interval) of now.
#[derive(Debug, Clone, Copy)]
struct Gcra {
    /// Nanoseconds per token.
    t: u64,
    /// Burst tolerance: the capacity's worth of intervals.
    tau: u64,
}

impl Gcra {
    fn new(rate: u64) -> Self {
        let rate = rate.max(1);
        let t = (NANOS_PER_SECOND / rate).max(1);
        Self {
            t,
            tau: t.saturating_mul(rate),
        }
    }

    /// The bucket's new TAT if a token is available at `now`, else how long until one is.
    fn take(&self, tat: u64, now: u64) -> Result<u64, u64> {
        let next = tat.max(now).saturating_add(self.t);
        if next - now <= self.tau {
            Ok(next)
        } else {
            Err(next - self.tau - now)
        }
    }
}

const SHARDS: usize = 64;
/// How often a shard drops its full buckets even when it has room.
const SWEEP_EVERY: u64 = 10 * NANOS_PER_SECOND;

/// Client buckets: TAT by client key, in independently locked shards.
#[derive(Debug)]
struct Shards {
    hasher: std::collections::hash_map::RandomState,
    per_shard: usize,
    shards: Vec<Mutex<Shard>>,
}

#[derive(Debug, Default)]
struct Shard {
    tats: HashMap<ClientKey, u64>,
    last_sweep: u64,
}

impl Shards {
    fn new(max_keys: usize) -> Self {
        Self {
            hasher: std::collections::hash_map::RandomState::new(),
            per_shard: (max_keys / SHARDS).max(4),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn take(&self, key: ClientKey, now: u64, gcra: &Gcra) -> Result<(), u64> {
        // A keyed hash, so clients cannot choose to crowd one shard.
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        let mut shard = self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if now.saturating_sub(shard.last_sweep) >= SWEEP_EVERY {
            shard.sweep(now);
        }
        if let Some(tat) = shard.tats.get_mut(&key) {
            let next = gcra.take(*tat, now)?;
            *tat = next;
            return Ok(());
        }
        let next = gcra.take(0, now)?;
        if shard.tats.len() >= self.per_shard {
            shard.make_room(now, self.per_shard);
        }
        shard.tats.insert(key, next);
        Ok(())
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).tats.len())
            .sum()
    }
}

impl Shard {
    /// Drops full buckets (their TAT has passed): the same as never having seen those clients.
    /// Gives memory back after a burst of many clients.
    fn sweep(&mut self, now: u64) {
        self.tats.retain(|_, tat| *tat > now);
        if self.tats.capacity() > 64 && self.tats.capacity() > 4 * self.tats.len() {
            self.tats.shrink_to_fit();
        }
        self.last_sweep = now;
    }

    /// Makes room for one more bucket: full buckets go first; if more than three quarters of the
    /// shard is still busy (many clients within the last second), the quarter closest to full
    /// goes too. Each pass frees at least a quarter of the shard, so the cost per new client
    /// stays constant however many clients arrive.
    fn make_room(&mut self, now: u64, limit: usize) {
        self.sweep(now);
        if self.tats.len() < limit - limit / 4 {
            return;
        }
        let mut tats: Vec<u64> = self.tats.values().copied().collect();
        let cut = tats.len() / 4;
        let (_, threshold, _) = tats.select_nth_unstable(cut);
        let threshold = *threshold;
        self.tats.retain(|_, tat| *tat > threshold);
    }
}

/// `--trusted-proxy` networks: requests from these peers may name the client in
/// `X-Forwarded-For`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(networks: Vec<Cidr>) -> Self {
        Self(networks)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// Whether `peer` is a trusted proxy (its `X-Forwarded-*` headers count).
    pub fn trusts_peer(&self, peer: IpAddr) -> bool {
        !self.0.is_empty() && self.trusts(canonical(peer))
    }

    /// The client of a request from `peer`: the peer itself unless it is a trusted proxy; then
    /// the right-most address of `X-Forwarded-For` that is not a trusted proxy (walking from the
    /// right, each trusted hop vouches for the entry before it). An entry that is not an address
    /// stops the walk at the last trusted hop, which is then taken as the client.
    pub fn client(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if self.0.is_empty() || !self.trusts(client) {
            return client;
        }
        for value in headers.get_all("x-forwarded-for").iter().rev() {
            let Ok(text) = value.to_str() else {
                return client;
            };
            for entry in text.rsplit(',') {
                let Some(ip) = forwarded_address(entry.trim()) else {
                    return client;
                };
                if !self.trusts(ip) {
                    return ip;
                }
                client = ip;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:80`, `[::1]:80`) or
/// in brackets.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse::<Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })?;
    Some(canonical(ip))
}

/// An IP network (`10.0.0.0/8`, `2001:db8::/32`; a bare address is a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network = address
            .parse::<IpAddr>()
            .map_err(|_| format!("'{text}' is not an IP network (address/prefix-length)"))?;
        let network = canonical(network);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{text}': the prefix length must be 0 to {max}"))?,
        };
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const SECOND: u64 = NANOS_PER_SECOND;

    fn policy(rate: u64, key: RateKey) -> RateLimiting {
        RateLimiting {
            requests_per_second: rate,
            key,
        }
    }

    fn ip(text: &str) -> LimitKey {
        LimitKey::Client(ClientKey::from_ip(text.parse().unwrap()))
    }

    fn allowed(limiter: &LocalLimiter, key: LimitKey, now: u64, n: usize) -> usize {
        (0..n)
            .filter(|_| limiter.acquire_at(key, now) == Admission::Allowed)
            .count()
    }

    #[test]
    fn a_full_bucket_allows_its_capacity_at_once_then_refills_at_the_rate() {
        let limiter = LocalLimiter::new(policy(5, RateKey::Total), 16);
        assert_eq!(allowed(&limiter, LimitKey::Total, SECOND, 20), 5);
        // One token back every 200 ms.
        assert_eq!(
            allowed(&limiter, LimitKey::Total, SECOND + SECOND / 5, 20),
            1
        );
        assert_eq!(
            allowed(&limiter, LimitKey::Total, SECOND + SECOND / 2, 20),
            1
        );
        // After a full second of rest the bucket is full again, never fuller.
        assert_eq!(allowed(&limiter, LimitKey::Total, 10 * SECOND, 20), 5);
    }

    #[test]
    fn a_steady_client_at_the_rate_is_never_refused() {
        let limiter = LocalLimiter::new(policy(10, RateKey::ClientIp), 1024);
        let key = ip("192.0.2.1");
        for i in 0..1000 {
            assert_eq!(
                limiter.acquire_at(key, SECOND + i * SECOND / 10),
                Admission::Allowed,
                "request {i}"
            );
        }
    }

    #[test]
    fn a_refusal_says_when_the_next_token_comes() {
        let limiter = LocalLimiter::new(policy(2, RateKey::Total), 16);
        assert_eq!(allowed(&limiter, LimitKey::Total, 0, 2), 2);
        let Admission::Denied { retry_after } = limiter.acquire_at(LimitKey::Total, 0) else {
            panic!("the third request in the same instant is refused")
        };
        assert_eq!(retry_after, Duration::from_millis(500));
        assert_eq!(Admission::retry_after_seconds(retry_after), 1);
        assert_eq!(
            Admission::retry_after_seconds(Duration::from_millis(1500)),
            2
        );
        assert_eq!(Admission::retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(
            limiter.acquire_at(LimitKey::Total, SECOND / 2),
            Admission::Allowed
        );
    }

    #[test]
    fn clients_have_their_own_buckets_and_ipv6_is_grouped_by_64() {
        let limiter = LocalLimiter::new(policy(1, RateKey::ClientIp), 1024);
        assert_eq!(allowed(&limiter, ip("192.0.2.1"), 0, 3), 1);
        assert_eq!(allowed(&limiter, ip("192.0.2.2"), 0, 3), 1);
        // The IPv4-mapped form of an address is the same client.
        assert_eq!(allowed(&limiter, ip("::ffff:192.0.2.1"), 0, 3), 0);
        assert_eq!(allowed(&limiter, ip("2001:db8:1:2::1"), 0, 3), 1);
        assert_eq!(allowed(&limiter, ip("2001:db8:1:2:ffff::9"), 0, 3), 0);
        assert_eq!(allowed(&limiter, ip("2001:db8:1:3::1"), 0, 3), 1);
        assert_eq!(ip("2001:db8:1:2:ffff::9").to_string(), "2001:db8:1:2::/64");
        assert_eq!(ip("::ffff:192.0.2.1").to_string(), "192.0.2.1");
        assert_eq!(LimitKey::Total.to_string(), "TOTAL");
        // ::/64 (where ::1 lives) is not confused with IPv4 addresses.
        assert_ne!(ip("::1"), ip("0.0.0.1"));
    }

    #[test]
    fn memory_is_bounded_and_full_buckets_are_forgotten() {
        let limiter = LocalLimiter::new(policy(1, RateKey::ClientIp), 64 * 8);
        // 100 000 distinct clients within one instant: the limiter never holds more than its
        // bound.
        for i in 0..100_000u32 {
            let key = LimitKey::Client(ClientKey::from_ip(IpAddr::V4(Ipv4Addr::from(i))));
            let _ = limiter.acquire_at(key, 0);
            assert!(limiter.len() <= 64 * 8, "{} buckets", limiter.len());
        }
        // Once their buckets are full again, the next sweep lets them go.
        let later = 20 * SECOND;
        let _ = limiter.acquire_at(ip("198.51.100.1"), later);
        for i in 0..SHARDS as u32 * 8 {
            let key = LimitKey::Client(ClientKey::from_ip(IpAddr::V4(Ipv4Addr::from(i))));
            let _ = limiter.acquire_at(key, later);
        }
        assert!(limiter.len() <= SHARDS * 8);
    }

    #[test]
    fn an_evicted_idle_bucket_behaves_as_it_would_have() {
        // With room for only a few buckets per shard, a client that rested a full second is
        // forgotten and then gets exactly what its full bucket would have given.
        let limiter = LocalLimiter::new(policy(3, RateKey::ClientIp), SHARDS * 4);
        let key = ip("203.0.113.7");
        assert_eq!(allowed(&limiter, key, 0, 10), 3);
        for i in 0..10_000u32 {
            let other = LimitKey::Client(ClientKey::from_ip(IpAddr::V4(Ipv4Addr::from(i))));
            let _ = limiter.acquire_at(other, 2 * SECOND);
        }
        assert_eq!(allowed(&limiter, key, 2 * SECOND, 10), 3);
    }

    #[test]
    fn concurrent_requests_never_exceed_the_capacity() {
        let limiter = Arc::new(LocalLimiter::new(policy(1000, RateKey::Total), 16));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let limiter = limiter.clone();
                std::thread::spawn(move || allowed(&limiter, LimitKey::Total, SECOND, 1000))
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(total, 1000);
    }

    #[test]
    fn very_high_rates_do_not_overflow() {
        let limiter = LocalLimiter::new(policy(u64::MAX / 2, RateKey::Total), 16);
        assert_eq!(allowed(&limiter, LimitKey::Total, u64::MAX - 10, 100), 100);
    }

    #[test]
    fn the_local_store_keeps_buckets_across_reloads_of_the_same_policy() {
        let store = LocalStore::new(1024);
        let first = store.limiter("/v1", policy(1, RateKey::Total));
        let _ = first.acquire(LimitKey::Total);
        let again = store.limiter("/v1", policy(1, RateKey::Total));
        assert!(Arc::ptr_eq(&first, &again));
        let changed = store.limiter("/v1", policy(2, RateKey::Total));
        assert!(!Arc::ptr_eq(&first, &changed));
        let other = store.limiter("/v2", policy(1, RateKey::Total));
        assert!(!Arc::ptr_eq(&first, &other));
        drop((first, again));
        let fresh = store.limiter("/v1", policy(1, RateKey::Total));
        assert!(matches!(
            fresh.acquire(LimitKey::Total),
            Acquire::Now(Admission::Allowed)
        ));
    }

    /// A stand-in for a shared store: every answer takes a round trip.
    #[derive(Debug)]
    struct RemoteStore(LocalStore);

    #[derive(Debug)]
    struct RemoteLimiter(Arc<dyn RateLimiter>);

    impl RateLimiter for RemoteLimiter {
        fn acquire(&self, key: LimitKey) -> Acquire {
            let inner = self.0.acquire(key);
            Acquire::Later(Box::pin(async move {
                tokio::task::yield_now().await;
                inner.admission().await
            }))
        }
    }

    impl RateLimitStore for RemoteStore {
        fn limiter(&self, path_prefix: &str, policy: RateLimiting) -> Arc<dyn RateLimiter> {
            Arc::new(RemoteLimiter(self.0.limiter(path_prefix, policy)))
        }
    }

    #[tokio::test]
    async fn a_store_that_answers_later_is_awaited() {
        let store: Arc<dyn RateLimitStore> = Arc::new(RemoteStore(LocalStore::new(16)));
        let limiter = store.limiter("/v1", policy(2, RateKey::Total));
        let mut answers = Vec::new();
        for _ in 0..3 {
            let acquire = limiter.acquire(LimitKey::Total);
            assert!(matches!(acquire, Acquire::Later(_)), "{acquire:?}");
            answers.push(acquire.admission().await);
        }
        assert_eq!(answers[..2], [Admission::Allowed, Admission::Allowed]);
        assert!(matches!(answers[2], Admission::Denied { .. }));
    }

    fn headers(xff: &[&str]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for value in xff {
            map.append("x-forwarded-for", value.parse().unwrap());
        }
        map
    }

    #[test]
    fn x_forwarded_for_counts_only_from_trusted_proxies() {
        let peer: IpAddr = "10.0.0.5".parse().unwrap();
        let none = TrustedProxies::default();
        assert_eq!(none.client(peer, &headers(&["198.51.100.9"])), peer);

        let trusted = TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ]);
        let addr = |s: &str| s.parse::<IpAddr>().unwrap();
        // The right-most untrusted entry is the client; what the client wrote before it is
        // ignored.
        assert_eq!(
            trusted.client(peer, &headers(&["1.1.1.1, 198.51.100.9, 10.1.1.1"])),
            addr("198.51.100.9")
        );
        assert_eq!(
            trusted.client(
                peer,
                &headers(&["1.1.1.1", "198.51.100.9:4711", "10.1.1.1"])
            ),
            addr("198.51.100.9")
        );
        assert_eq!(
            trusted.client(peer, &headers(&["[2001:db9::1]:443"])),
            addr("2001:db9::1")
        );
        // An untrusted peer's header is ignored.
        assert_eq!(
            trusted.client(addr("192.0.2.1"), &headers(&["198.51.100.9"])),
            addr("192.0.2.1")
        );
        // No header, or garbage: the last trusted hop is the client.
        assert_eq!(trusted.client(peer, &headers(&[])), peer);
        assert_eq!(
            trusted.client(peer, &headers(&["198.51.100.9, unknown, 10.2.2.2"])),
            addr("10.2.2.2")
        );
        // Every hop trusted: the left-most.
        assert_eq!(
            trusted.client(peer, &headers(&["10.3.3.3, 10.2.2.2"])),
            addr("10.3.3.3")
        );
        // An IPv4-mapped peer is the IPv4 address.
        assert_eq!(
            trusted.client(addr("::ffff:10.0.0.5"), &headers(&["198.51.100.9"])),
            addr("198.51.100.9")
        );
    }

    #[test]
    fn networks_parse_and_match() {
        let net: Cidr = "192.168.0.0/16".parse().unwrap();
        assert!(net.contains("192.168.4.5".parse().unwrap()));
        assert!(net.contains("::ffff:192.168.4.5".parse().unwrap()));
        assert!(!net.contains("192.169.0.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        let host: Cidr = "::1".parse().unwrap();
        assert_eq!(host.to_string(), "::1/128");
        assert!(host.contains("::1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/", "::/129", "10.0.0.0/-1"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
