//! State shared by replicas, in Redis (or any server speaking RESP): SPEC.md "Replicas and
//! shared state".
//!
//! One [`SharedState`] per process holds one multiplexed connection (the `redis` crate's
//! connection manager, which reconnects by itself) and decides, per operation, whether Redis is
//! worth asking. The rule is that no request fails because of Redis:
//!
//! - every operation is bounded by `--redis-timeout-ms`; a timeout or a broken connection marks
//!   Redis down, and callers fall back to what the process has of its own;
//! - while Redis is down no request asks it at all: a background probe sends `PING` once a
//!   second (with its own 2 s bound) and marks it up again when it answers, so a dead or hung
//!   Redis costs at most one timeout per second per replica, paid by the request that found it
//!   out (the SPEC's one-second circuit);
//! - an error answer about one key (`WRONGTYPE`, a script error) is an outage for that key: the
//!   caller falls back, the error is counted, the connection stays up;
//! - `sharedState.unavailable` (ERROR, at most once per 10 s) and `sharedState.restored` (INFO)
//!   say so in the execution log; `claimgate_shared_state_errors_total{operation}` counts.
//!
//! Values that would let a writer to Redis forge an answer (introspection answers, cached
//! responses) are sealed with AES-256-GCM under `--shared-state-key` when one is given, bound to
//! their key, so a value copied to another key does not open either.
//!
//! The response cache's server (the gateway resource's `responseCacheDetails`) is another
//! [`SharedState`] with the same circuit, its own connection and the gateway resource's
//! timeouts ([`SharedState::response_cache`]).

use crate::logs::{ExecutionRecord, Level, Logs, GATEWAY_CONTEXT};
use crate::metrics::Metrics;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use redis::aio::ConnectionManager;
use serde_json::json;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long connecting (and the background probe) to `--redis` may take: the per-operation
/// timeout applies to operations on the request path only.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a down Redis is probed.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// `sharedState.unavailable` is written at most this often per replica.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// The prefix of a sealed value: format version 1.
const SEALED: &[u8] = b"cg1";

/// What a Redis operation was for: the `operation` label of the error counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    RateLimit,
    UsagePlan,
    Introspection,
    ResponseCache,
}

impl Operation {
    pub fn label(self) -> &'static str {
        match self {
            Self::RateLimit => "rate_limit",
            Self::UsagePlan => "usage_plan",
            Self::Introspection => "introspection",
            Self::ResponseCache => "response_cache",
        }
    }

    /// The key segment after `--redis-key-prefix` (SPEC "Settled details, second round").
    pub fn key_segment(self) -> &'static str {
        match self {
            Self::RateLimit => "rl:",
            Self::UsagePlan => "up:",
            Self::Introspection => "ia:",
            Self::ResponseCache => "rc:",
        }
    }
}

/// How to reach the shared store, from `serve`'s flags.
#[derive(Clone)]
pub struct SharedStateOptions {
    /// `--redis` / `CLAIMGATE_REDIS_URL`, already checked by [`RedisUrl::parse`].
    pub url: RedisUrl,
    /// `--redis-timeout-ms`.
    pub timeout: Duration,
    /// `--redis-key-prefix`.
    pub key_prefix: String,
    /// `--shared-state-key`: seals values that could forge an answer.
    pub seal_key: Option<SealKey>,
}

impl fmt::Debug for SharedStateOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedStateOptions")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("key_prefix", &self.key_prefix)
            .field("seal_key", &self.seal_key)
            .finish()
    }
}

/// A Redis URL that parsed: `redis://` or `rediss://`. Shown without its password.
#[derive(Clone)]
pub struct RedisUrl {
    info: redis::ConnectionInfo,
    shown: String,
    has_password: bool,
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl RedisUrl {
    /// Checks `url`; the error never repeats the URL, which may hold a password.
    pub fn parse(url: &str) -> Result<Self, String> {
        const FORM: &str = "redis://[[user]:password@]host:port[/db] or rediss://...";
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        let tls = match scheme {
            Some(s) if s.eq_ignore_ascii_case("redis") => false,
            Some(s) if s.eq_ignore_ascii_case("rediss") => true,
            Some(_) => return Err(format!("the URL's scheme is not redis or rediss ({FORM})")),
            None => return Err(format!("not a URL ({FORM})")),
        };
        let parsed = url::Url::parse(url).map_err(|e| format!("not a valid URL: {e} ({FORM})"))?;
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("the URL names no host ({FORM})"))?;
        let info: redis::ConnectionInfo = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| format!("not a usable Redis URL: {} ({FORM})", e.category()))?;
        let has_password = parsed.password().is_some();
        let port = parsed.port().unwrap_or(6379);
        let db = parsed.path().trim_start_matches('/');
        let user = match parsed.username() {
            "" if has_password => ":[redacted]@".to_owned(),
            "" => String::new(),
            user if has_password => format!("{user}:[redacted]@"),
            user => format!("{user}@"),
        };
        let shown = format!(
            "{}://{user}{host}:{port}{}",
            if tls { "rediss" } else { "redis" },
            if db.is_empty() {
                String::new()
            } else {
                format!("/{db}")
            }
        );
        Ok(Self {
            info,
            shown,
            has_password,
        })
    }

    /// Whether the URL carries a password (worth a warning when it came on the command line).
    pub fn has_password(&self) -> bool {
        self.has_password
    }

    fn is_tls(&self) -> bool {
        matches!(self.info.addr(), redis::ConnectionAddr::TcpTls { .. })
    }
}

/// The 32-byte AES-256-GCM key of `--shared-state-key`.
#[derive(Clone)]
pub struct SealKey([u8; 32]);

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey([redacted])")
    }
}

impl SealKey {
    /// From the file's text: 32 bytes in standard base64 (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, String> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| "is not base64 (make one with: head -c 32 /dev/urandom | base64)")?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "holds {} bytes, not 32 (make one with: head -c 32 /dev/urandom | base64)",
                b.len()
            )
        })?;
        Ok(Self(key))
    }
}

/// AES-256-GCM over shared values, bound to their Redis key (also the OAUTH2 sessions'
/// sealing, bound to their purpose: `crate::session`).
pub(crate) struct Sealer {
    key: LessSafeKey,
    random: SystemRandom,
}

impl Sealer {
    pub(crate) fn new(key: &SealKey) -> Self {
        Self {
            key: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key.0).expect("a 32-byte key")),
            random: SystemRandom::new(),
        }
    }

    /// `cg1`, the nonce, then `plain` encrypted and its tag, in one buffer (the value is
    /// encrypted where it lies, not copied first).
    pub(crate) fn seal(&self, redis_key: &str, plain: &[u8]) -> Option<Vec<u8>> {
        self.seal_parts(redis_key, &[plain])
    }

    /// [`Self::seal`] of the value `parts` make one after the other.
    pub(crate) fn seal_parts(&self, redis_key: &str, parts: &[&[u8]]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).ok()?;
        let head = SEALED.len() + NONCE_LEN;
        let length: usize = parts.iter().map(|part| part.len()).sum();
        let mut out = Vec::with_capacity(head + length + AES_256_GCM.tag_len());
        out.extend_from_slice(SEALED);
        out.extend_from_slice(&nonce);
        parts.iter().for_each(|part| out.extend_from_slice(part));
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(redis_key.as_bytes()),
                &mut out[head..],
            )
            .ok()?;
        out.extend_from_slice(tag.as_ref());
        Some(out)
    }

    /// The plain value of `sealed`, or `None` when it does not open under this key and
    /// `redis_key`.
    pub(crate) fn open(&self, redis_key: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        self.open_owned(redis_key, sealed.to_vec())
    }

    /// [`Self::open`] in the buffer that holds the sealed value (no copy of it).
    pub(crate) fn open_owned(&self, redis_key: &str, mut sealed: Vec<u8>) -> Option<Vec<u8>> {
        let head = SEALED.len() + NONCE_LEN;
        if !sealed.starts_with(SEALED) || sealed.len() < head {
            return None;
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[SEALED.len()..head]).ok()?;
        let len = self
            .key
            .open_within(nonce, Aad::from(redis_key.as_bytes()), &mut sealed, head..)
            .ok()?
            .len();
        sealed.truncate(len);
        Some(sealed)
    }
}

/// One `EVALSHA` of a script, built in place: the keys are written from their parts straight
/// into the command (no key string per request), and a command whose keys and arguments never
/// change (a `TOTAL` rate limit) can be built once and sent again and again. `S` holds the
/// script: a reference, or an `Arc` for a call that outlives its builder.
#[derive(Debug)]
pub(crate) struct ScriptCall<S> {
    script: S,
    command: redis::Cmd,
}

impl<S: std::ops::Deref<Target = redis::Script>> ScriptCall<S> {
    /// A call of `script` with `keys` keys and `args` arguments still to add.
    pub(crate) fn new(script: S, keys: usize, args: usize) -> Self {
        // Room for the usual keys (a prefix, a segment and an id) and numbers.
        let mut command = redis::Cmd::with_capacity(3 + keys + args, 64 + keys * 96 + args * 12);
        command.arg("EVALSHA").arg(script.get_hash()).arg(keys);
        Self { script, command }
    }

    /// Adds the key `--redis-key-prefix`, `purpose`'s segment, `kind`, then `name`'s parts.
    pub(crate) fn key(
        mut self,
        store: &SharedState,
        purpose: Operation,
        kind: &str,
        name: &[&str],
    ) -> Self {
        self.command.arg(KeyParts {
            parts: [store.prefix.as_str(), purpose.key_segment(), kind],
            name,
        });
        self
    }

    pub(crate) fn arg(mut self, arg: impl redis::ToRedisArgs) -> Self {
        self.command.arg(arg);
        self
    }
}

/// A value in parts, written into a command as one argument without being joined first.
struct ValueParts<'a>(&'a [&'a [u8]]);

impl redis::ToRedisArgs for ValueParts<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        use std::io::Write as _;
        let mut arg = out.writer_for_next_arg();
        for part in self.0 {
            // Writing into the command's own buffer cannot fail.
            let _ = arg.write_all(part);
        }
    }
}

/// A Redis key in parts, written into a command as one argument without being joined first.
struct KeyParts<'a> {
    parts: [&'a str; 3],
    name: &'a [&'a str],
}

impl redis::ToRedisArgs for KeyParts<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        use std::io::Write as _;
        let mut arg = out.writer_for_next_arg();
        for part in self.parts.iter().chain(self.name) {
            // Writing into the command's own buffer cannot fail.
            let _ = arg.write_all(part.as_bytes());
        }
    }
}

/// Why an operation got no answer.
#[derive(Debug)]
enum Trouble {
    /// No answer in time, or no connection: Redis is down.
    Unreachable(String),
    /// Redis answered with an error about this operation: it stays up.
    Refused(String),
}

/// The process's connection to the shared store and what it knows of its health.
pub struct SharedState {
    connection: ConnectionManager,
    /// Bounds operations that read (every operation but [`SharedState::set`]).
    read_timeout: Duration,
    /// Bounds [`SharedState::set`].
    send_timeout: Duration,
    /// Bounds connecting and the background probe.
    connect_timeout: Duration,
    /// Where the bounds come from, for causes (`--redis-timeout-ms`).
    timeout_source: &'static str,
    /// Whether this store drives `claimgate_shared_state_up` (`--redis` does, the response
    /// cache does not).
    gauge: bool,
    prefix: String,
    sealer: Option<Sealer>,
    shown_url: String,
    /// Whether requests may ask Redis now.
    up: AtomicBool,
    /// Whether it has ever answered (`sharedState.connected` is written once).
    connected_once: AtomicBool,
    /// Milliseconds since `epoch` of the last `sharedState.unavailable`, plus one (0: never).
    last_logged: AtomicU64,
    epoch: Instant,
    metrics: Arc<Metrics>,
    logs: Logs,
}

impl fmt::Debug for SharedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedState")
            .field("url", &self.shown_url)
            .field("up", &self.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SharedState {
    /// The store at `options.url`, not yet connected: call [`SharedState::keep_connected`] on a
    /// runtime that lives as long as the process. Until Redis first answers, requests use the
    /// process's own state.
    pub fn new(
        options: &SharedStateOptions,
        extra_roots: &[Vec<u8>],
        metrics: Arc<Metrics>,
        logs: Logs,
    ) -> Result<Arc<Self>, String> {
        // rediss:// builds its rustls configuration with the process-wide provider.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let info = with_nodelay(options.url.info.clone());
        let client = if options.url.is_tls() {
            redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_bundle(extra_roots)?),
                },
            )
        } else {
            redis::Client::open(info)
        }
        .map_err(|e| format!("cannot use --redis: {}", e.category()))?;
        Self::with_client(
            client,
            Settings {
                read_timeout: options.timeout,
                send_timeout: options.timeout,
                connect_timeout: CONNECT_TIMEOUT,
                timeout_source: "--redis-timeout-ms",
                gauge: true,
                prefix: options.key_prefix.clone(),
                seal_key: options.seal_key.clone(),
                shown_url: options.url.to_string(),
            },
            metrics,
            logs,
        )
        .map_err(|e| format!("cannot use --redis: {e}"))
    }

    /// The response cache's server (the gateway resource's `responseCacheDetails`), not yet
    /// connected, with the resource's timeouts: connecting (and the probe) is bounded by
    /// `connectTimeoutInMs`, a `GET` by `readTimeoutInMs`, a `SET` by `sendTimeoutInMs`.
    /// `isSslVerifyDisabled` accepts any certificate (serve warns about it).
    pub fn response_cache(
        server: &claimgate_config::ResponseCacheServer,
        key_prefix: &str,
        seal_key: Option<&SealKey>,
        extra_roots: &[Vec<u8>],
        metrics: Arc<Metrics>,
        logs: Logs,
    ) -> Result<Arc<Self>, String> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let addr = if server.tls {
            redis::ConnectionAddr::TcpTls {
                host: server.host.clone(),
                port: server.port,
                insecure: !server.verify_tls,
                tls_params: None,
            }
        } else {
            redis::ConnectionAddr::Tcp(server.host.clone(), server.port)
        };
        let mut settings = redis::RedisConnectionInfo::default().set_password(&server.password);
        if let Some(username) = &server.username {
            settings = settings.set_username(username);
        }
        let info = redis::IntoConnectionInfo::into_connection_info(addr)
            .map_err(|e| format!("cannot use the response cache: {}", e.category()))?
            .set_redis_settings(settings);
        let info = with_nodelay(info);
        let client = if server.tls && server.verify_tls {
            redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_bundle(extra_roots)?),
                },
            )
        } else {
            redis::Client::open(info)
        }
        .map_err(|e| format!("cannot use the response cache: {}", e.category()))?;
        Self::with_client(
            client,
            Settings {
                read_timeout: server.read_timeout,
                send_timeout: server.send_timeout,
                connect_timeout: server.connect_timeout,
                timeout_source: "the gateway's responseCacheDetails",
                gauge: false,
                prefix: key_prefix.to_owned(),
                seal_key: seal_key.cloned(),
                shown_url: format!("{} (response cache)", server.shown()),
            },
            metrics,
            logs,
        )
        .map_err(|e| format!("cannot use the response cache: {e}"))
    }

    fn with_client(
        client: redis::Client,
        settings: Settings,
        metrics: Arc<Metrics>,
        logs: Logs,
    ) -> Result<Arc<Self>, String> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            // Every operation is bounded by its own timeout (`run_within`, the probe's): a
            // second timer per command in the connection would only cost its registration.
            .set_response_timeout(None)
            // One attempt per reconnection: the probe tries again every second.
            .set_number_of_retries(0);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| e.category().to_string())?;
        Ok(Arc::new(Self {
            connection,
            read_timeout: settings.read_timeout,
            send_timeout: settings.send_timeout,
            connect_timeout: settings.connect_timeout,
            timeout_source: settings.timeout_source,
            gauge: settings.gauge,
            prefix: settings.prefix,
            sealer: settings.seal_key.as_ref().map(Sealer::new),
            shown_url: settings.shown_url,
            up: AtomicBool::new(false),
            connected_once: AtomicBool::new(false),
            last_logged: AtomicU64::new(0),
            epoch: Instant::now(),
            metrics,
            logs,
        }))
    }

    /// Connects, and probes Redis once a second while it is down; runs until the last other
    /// holder of the store drops it (a reload that replaces the response cache's server ends
    /// the old one's probe). The connection's own tasks run on the runtime that polls this.
    pub async fn keep_connected(self: Arc<Self>) {
        let store = Arc::downgrade(&self);
        drop(self);
        let mut tick = tokio::time::interval(PROBE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(this) = store.upgrade() else {
                return;
            };
            if this.up.load(Ordering::Relaxed) {
                continue;
            }
            let mut connection = this.connection.clone();
            let ping = async move {
                redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
            };
            match tokio::time::timeout(this.connect_timeout, ping).await {
                Ok(Ok(_)) => this.mark_up(),
                Ok(Err(e)) => this.report_unavailable(&describe(&e)),
                Err(_) => this.report_unavailable(&format!(
                    "no answer to PING within {} ms",
                    this.connect_timeout.as_millis()
                )),
            }
        }
    }

    /// Whether requests ask Redis now (false while it is down or not yet connected).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// The Redis key of `purpose` for `rest`: `--redis-key-prefix`, the purpose's segment, then
    /// `rest`.
    pub fn key(&self, purpose: Operation, rest: &str) -> String {
        self.key_of(purpose, &[rest])
    }

    /// [`Self::key`] with `rest` in parts, joined in one allocation.
    pub fn key_of(&self, purpose: Operation, rest: &[&str]) -> String {
        let segment = purpose.key_segment();
        let length = rest.iter().map(|part| part.len()).sum::<usize>();
        let mut key = String::with_capacity(self.prefix.len() + segment.len() + length);
        key.push_str(&self.prefix);
        key.push_str(segment);
        rest.iter().for_each(|part| key.push_str(part));
        key
    }

    /// Runs one operation when Redis is up, bounded by `--redis-timeout-ms` (the cache's read
    /// timeout); `None` when it is down, or the operation failed (counted and logged): the
    /// caller falls back.
    pub async fn run<T, F, Fut>(&self, operation: Operation, call: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.run_within(operation, self.read_timeout, call)
            .await
            .ok()
    }

    /// Runs `call` (see [`Self::run`]); a Redis that lost its scripts (restarted, `SCRIPT
    /// FLUSH`) is given the script again and asked once more.
    pub(crate) async fn eval<T, S>(&self, operation: Operation, call: &ScriptCall<S>) -> Option<T>
    where
        T: redis::FromRedisValue,
        S: std::ops::Deref<Target = redis::Script>,
    {
        self.run(operation, |mut connection| async move {
            // `send_packed_command` directly: the `ConnectionLike` path boxes its future.
            let answer = match connection
                .send_packed_command(&call.command)
                .await
                .and_then(redis::Value::extract_error)
            {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    call.script.load_async(&mut connection).await?;
                    connection
                        .send_packed_command(&call.command)
                        .await?
                        .extract_error()?
                }
                answer => answer?,
            };
            Ok(redis::from_redis_value(answer)?)
        })
        .await
    }

    /// [`Self::run`] bounded by `timeout`; the error says why there is no answer (for the
    /// response cache's records).
    async fn run_within<T, F, Fut>(
        &self,
        operation: Operation,
        timeout: Duration,
        call: F,
    ) -> Result<T, String>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_up() {
            return Err(format!("{} is unavailable", self.shown_url));
        }
        let trouble = match tokio::time::timeout(timeout, call(self.connection.clone())).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) if is_answer_error(&e) => Trouble::Refused(describe(&e)),
            Ok(Err(e)) => Trouble::Unreachable(describe(&e)),
            Err(_) => Trouble::Unreachable(format!(
                "no answer within {} ms ({})",
                timeout.as_millis(),
                self.timeout_source
            )),
        };
        self.metrics.shared_state_error(operation.label());
        let cause = match &trouble {
            Trouble::Unreachable(cause) | Trouble::Refused(cause) => cause.clone(),
        };
        match trouble {
            Trouble::Unreachable(cause) => {
                self.up.store(false, Ordering::Relaxed);
                if self.gauge {
                    self.metrics.shared_state_up(false);
                }
                self.report_unavailable(&format!("{}: {cause}", operation.label()));
            }
            Trouble::Refused(cause) => {
                self.report_unavailable(&format!("{} (this key only): {cause}", operation.label()))
            }
        }
        Err(cause)
    }

    /// The value at `key`, opened when values are sealed; `None` when absent, unreadable or
    /// Redis is unavailable.
    pub async fn get(&self, operation: Operation, key: &str) -> Option<Vec<u8>> {
        match self.fetch(operation, key).await {
            Ok(Fetched::Value(value)) => Some(value),
            _ => None,
        }
    }

    /// What `GET key` found, told apart for the response cache's records.
    pub(crate) async fn fetch(&self, operation: Operation, key: &str) -> Result<Fetched, String> {
        let mut get = redis::Cmd::with_capacity(2, 3 + key.len());
        get.arg("GET").arg(key);
        // Boxed: the connection's send future is large, and inline it would grow the future
        // of every request whose phases may look here, Redis or not (see `send`).
        let value: Option<Vec<u8>> =
            Box::pin(self.run_within(operation, self.read_timeout, |c| send(c, &get))).await?;
        let Some(value) = value else {
            return Ok(Fetched::Absent);
        };
        Ok(match &self.sealer {
            Some(sealer) => match sealer.open_owned(key, value) {
                Some(value) => Fetched::Value(value),
                None => Fetched::Unsealed,
            },
            None => Fetched::Value(value),
        })
    }

    /// [`Self::fetch`] reading at most `limit` bytes of the value (before sealing): a larger
    /// one is [`Fetched::TooLarge`], never read in full. Whoever can write to the server could
    /// otherwise make every lookup read hundreds of megabytes (`GETRANGE`: an absent key reads
    /// as empty, which no stored value is).
    pub(crate) async fn fetch_at_most(
        &self,
        operation: Operation,
        key: &str,
        limit: usize,
    ) -> Result<Fetched, String> {
        let overhead = if self.sealer.is_some() {
            SEALED.len() + NONCE_LEN + 16
        } else {
            0
        };
        let bound = limit.saturating_add(overhead);
        let mut get = redis::Cmd::with_capacity(4, 8 + key.len() + 1 + 20);
        get.arg("GETRANGE").arg(key).arg(0).arg(bound);
        // Boxed, as in `fetch`.
        let value: Vec<u8> =
            Box::pin(self.run_within(operation, self.read_timeout, |c| send(c, &get))).await?;
        if value.is_empty() {
            return Ok(Fetched::Absent);
        }
        if value.len() > bound {
            return Ok(Fetched::TooLarge(bound));
        }
        Ok(match &self.sealer {
            Some(sealer) => match sealer.open_owned(key, value) {
                Some(value) => Fetched::Value(value),
                None => Fetched::Unsealed,
            },
            None => Fetched::Value(value),
        })
    }

    /// Stores `value` at `key` for `ttl` (at least a millisecond), sealed when a key is set.
    pub async fn set(&self, operation: Operation, key: &str, value: &[u8], ttl: Duration) {
        let _ = self.store(operation, key, value, ttl).await;
    }

    /// [`Self::set`], bounded by the send timeout, with why it failed.
    pub(crate) async fn store(
        &self,
        operation: Operation,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), String> {
        self.store_parts(operation, key, &[value], ttl).await
    }

    /// [`Self::store`] of the value `parts` make one after the other, written into the command
    /// without being joined first (sealed values are joined once, where they are encrypted).
    pub(crate) async fn store_parts(
        &self,
        operation: Operation,
        key: &str,
        parts: &[&[u8]],
        ttl: Duration,
    ) -> Result<(), String> {
        let sealed;
        let parts = match &self.sealer {
            Some(sealer) => match sealer.seal_parts(key, parts) {
                Some(v) => {
                    sealed = [v];
                    &[&sealed[0][..]][..]
                }
                None => return Err("the value could not be sealed".into()),
            },
            None => parts,
        };
        let length: usize = parts.iter().map(|part| part.len()).sum();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut set = redis::Cmd::with_capacity(5, 3 + key.len() + length + 2 + 20);
        set.arg("SET")
            .arg(key)
            .arg(ValueParts(parts))
            .arg("PX")
            .arg(millis);
        // Boxed, as in `fetch` (introspection answers are stored inline on the request path).
        Box::pin(self.run_within(operation, self.send_timeout, |c| send::<()>(c, &set))).await
    }

    fn mark_up(&self) {
        if self.up.swap(true, Ordering::Relaxed) {
            return;
        }
        if self.gauge {
            self.metrics.shared_state_up(true);
        }
        let first = !self.connected_once.swap(true, Ordering::Relaxed);
        let (code, message) = if first {
            (
                "sharedState.connected",
                "Connected to the shared state store.",
            )
        } else {
            (
                "sharedState.restored",
                "The shared state store answers again; shared limits and caches are used again.",
            )
        };
        self.logs.execution(
            GATEWAY_CONTEXT,
            Level::Info,
            ExecutionRecord::new(code, Level::Info, message).with("redis", json!(self.shown_url)),
        );
    }

    /// `sharedState.unavailable`, at most once per [`LOG_EVERY`].
    fn report_unavailable(&self, cause: &str) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_logged.load(Ordering::Relaxed);
        let every = LOG_EVERY.as_millis() as u64;
        if last != 0 && now.saturating_add(1).saturating_sub(last) < every {
            return;
        }
        if self
            .last_logged
            .compare_exchange(
                last,
                now.saturating_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return;
        }
        self.logs.execution(
            GATEWAY_CONTEXT,
            Level::Info,
            ExecutionRecord::new(
                "sharedState.unavailable",
                Level::Error,
                "The shared state store is unavailable; this replica uses its own limits and caches until it answers again.",
            )
            .with("redis", json!(self.shown_url))
            .with("cause", json!(cause)),
        );
    }
}

/// Sends `command` and reads its answer. `send_packed_command` directly: `query_async` goes
/// through `ConnectionLike`, which boxes its future. The future is large (the multiplexed
/// connection's send and its channels): a caller awaited inline on the request path boxes it
/// once itself, so that requests that never reach it do not move its bytes around (a
/// noauth request copied ~2,100 more instructions' worth of memcpy with it inline).
async fn send<T: redis::FromRedisValue>(
    mut connection: ConnectionManager,
    command: &redis::Cmd,
) -> redis::RedisResult<T> {
    let answer = connection.send_packed_command(command).await?;
    Ok(redis::from_redis_value(answer.extract_error()?)?)
}

/// What `GET` found.
#[derive(Debug)]
pub(crate) enum Fetched {
    Value(Vec<u8>),
    Absent,
    /// A value that does not open under `--shared-state-key`: forged, moved or stale.
    Unsealed,
    /// A value above the bytes asked for at most (the bound): nothing the gateway wrote.
    TooLarge(usize),
}

/// How one store is reached and bounded.
struct Settings {
    read_timeout: Duration,
    send_timeout: Duration,
    connect_timeout: Duration,
    timeout_source: &'static str,
    gauge: bool,
    prefix: String,
    seal_key: Option<SealKey>,
    shown_url: String,
}

/// `TCP_NODELAY` on the connection (the redis crate leaves Nagle's algorithm on): commands
/// are small and pipelined, and Nagle may hold one back behind an unacknowledged one. (On the
/// benchmark's busy 2-core VM it made no difference that stood out of the noise.)
fn with_nodelay(info: redis::ConnectionInfo) -> redis::ConnectionInfo {
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    info.set_tcp_settings(tcp)
}

/// Whether Redis itself answered with an error (about this command or key), as opposed to not
/// answering.
fn is_answer_error(error: &redis::RedisError) -> bool {
    !(error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error())
}

/// An error as a cause for the log: the kind and detail, never the URL (it may hold a password).
fn describe(error: &redis::RedisError) -> String {
    error.to_string()
}

/// The trust roots of `rediss://` as one PEM bundle: the system's, then `--ca`'s (the redis
/// crate takes one bundle and then uses nothing else).
fn root_bundle(extra_roots: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let mut pem = Vec::new();
    for cert in rustls_native_certs::load_native_certs().certs {
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        let encoded = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        for line in encoded.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    for extra in extra_roots {
        pem.extend_from_slice(extra);
        pem.push(b'\n');
    }
    if pem.is_empty() {
        return Err(
            "rediss:// needs trusted roots: the system has none and no --ca is given".into(),
        );
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_never_shown_with_their_password() {
        let url = RedisUrl::parse("redis://:s3cret@127.0.0.1:6380/2").unwrap();
        assert!(url.has_password());
        assert_eq!(url.to_string(), "redis://:[redacted]@127.0.0.1:6380/2");
        assert!(!format!("{url:?}").contains("s3cret"));
        let url = RedisUrl::parse("rediss://app:pw@cache.internal:6379").unwrap();
        assert_eq!(
            url.to_string(),
            "rediss://app:[redacted]@cache.internal:6379"
        );
        assert!(url.is_tls());
        let url = RedisUrl::parse("redis://127.0.0.1:7000").unwrap();
        assert!(!url.has_password());
        assert_eq!(url.to_string(), "redis://127.0.0.1:7000");
        for bad in [
            "http://:s3cret@127.0.0.1:6379",
            "127.0.0.1:6379",
            "redis://:s3cret@",
            "redis://:s3cret@[::1:6379",
            "",
        ] {
            let error = RedisUrl::parse(bad).unwrap_err();
            assert!(!error.contains("s3cret"), "{bad}: {error}");
        }
    }

    #[test]
    fn sealed_values_open_only_under_their_key_and_redis_key() {
        let key = SealKey::from_base64("AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=").unwrap();
        let sealer = Sealer::new(&key);
        let sealed = sealer
            .seal("claimgate:ia:ab", b"{\"active\":true}")
            .unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"active"));
        assert_eq!(
            sealer.open("claimgate:ia:ab", &sealed).unwrap(),
            b"{\"active\":true}"
        );
        // Moved to another key, tampered with, or written in clear by someone else: ignored.
        assert!(sealer.open("claimgate:ia:cd", &sealed).is_none());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(sealer.open("claimgate:ia:ab", &tampered).is_none());
        assert!(sealer
            .open("claimgate:ia:ab", b"{\"active\":true}")
            .is_none());
        let other = Sealer::new(&SealKey([7; 32]));
        assert!(other.open("claimgate:ia:ab", &sealed).is_none());
    }

    #[test]
    fn values_sealed_in_parts_open_as_the_joined_value_and_nothing_else_opens() {
        let sealer = Sealer::new(&SealKey([3; 32]));
        let sealed = sealer
            .seal_parts("claimgate:rc:k", &[b"head", b"", b"\0\0\0\x04", b"body"])
            .unwrap();
        assert_eq!(
            sealer.open_owned("claimgate:rc:k", sealed.clone()).unwrap(),
            b"head\0\0\0\x04body"
        );
        assert_eq!(
            sealer.open("claimgate:rc:k", &sealed).unwrap(),
            b"head\0\0\0\x04body"
        );
        // An empty value seals and opens; what is too short to hold a nonce or a tag does not.
        let empty = sealer.seal("claimgate:rc:k", b"").unwrap();
        assert_eq!(sealer.open("claimgate:rc:k", &empty).unwrap(), b"");
        for short in [
            &b""[..],
            b"cg1",
            &sealed[..SEALED.len() + NONCE_LEN],
            &sealed[..20],
        ] {
            assert!(sealer.open("claimgate:rc:k", short).is_none());
        }
        assert!(sealer
            .open_owned("claimgate:rc:other", sealed.clone())
            .is_none());
    }

    async fn store_for_tests(prefix: &str) -> Arc<SharedState> {
        let client = redis::Client::open("redis://127.0.0.1:1").unwrap();
        let sink = crate::logs::LogSink::open("/dev/null").await.unwrap();
        let logs = Logs {
            execution: sink.clone(),
            access: sink,
        };
        SharedState::with_client(
            client,
            Settings {
                read_timeout: Duration::from_millis(50),
                send_timeout: Duration::from_millis(50),
                connect_timeout: Duration::from_millis(50),
                timeout_source: "test",
                gauge: false,
                prefix: prefix.into(),
                seal_key: None,
                shown_url: "redis://127.0.0.1:1".into(),
            },
            Arc::new(Metrics::new()),
            logs,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn script_calls_pack_what_the_joined_keys_and_arguments_would() {
        let store = store_for_tests("cg:").await;
        let script = redis::Script::new("return 1");
        let call = ScriptCall::new(&script, 2, 2)
            .key(
                &store,
                Operation::UsagePlan,
                "rate:",
                &["plan", "/", "e", "/", "sub"],
            )
            .key(&store, Operation::RateLimit, "", &["/v1", ":", "TOTAL"])
            .arg(1000_u64)
            .arg("DAY");
        let mut expected = redis::cmd("EVALSHA");
        expected
            .arg(script.get_hash())
            .arg(2)
            .arg("cg:up:rate:plan/e/sub")
            .arg("cg:rl:/v1:TOTAL")
            .arg(1000)
            .arg("DAY");
        assert_eq!(
            call.command.get_packed_command(),
            expected.get_packed_command()
        );
        // A value in parts is one argument, the same as the joined value.
        let mut set = redis::cmd("SET");
        set.arg("k").arg(ValueParts(&[b"ab", b"", b"\r\n$3"]));
        let mut joined = redis::cmd("SET");
        joined.arg("k").arg(b"ab\r\n$3");
        assert_eq!(set.get_packed_command(), joined.get_packed_command());
    }

    #[test]
    fn seal_keys_must_be_32_bytes_of_base64() {
        assert!(SealKey::from_base64("  AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").is_ok());
        assert!(SealKey::from_base64("AAAA")
            .unwrap_err()
            .contains("holds 3 bytes"));
        assert!(SealKey::from_base64("not base64!").is_err());
    }
}
