//! Execution and access logs as JSON lines, shaped as OCI Logging writes them (CloudEvents 1.0
//! envelope, OCI's `data` fields).
//!
//! Every request writes at least its access record, so a record must cost little on the
//! request path: it is serialized straight from borrowed fields into a per-thread buffer that is
//! reused, then appended to its sink's pending bytes under a short lock. A writer task writes
//! the pending bytes in batches; it is woken only when they go from empty to non-empty and then
//! waits [`BATCH_DELAY`] so that what arrives meanwhile goes out in the same write, so a busy
//! gateway pays no channel message or task wake-up per record. The request path never waits on
//! the file: if the writer falls behind and the pending bytes reach their bound, records are
//! dropped and counted rather than stalling traffic.

use serde::ser::{SerializeMap as _, Serializer};
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::sync::Notify;

const EXECUTION_TYPE: &str = "com.oraclecloud.apigateway.apideployment.execution";
const ACCESS_TYPE: &str = "com.oraclecloud.apigateway.apideployment.access";

/// How many bytes may wait for the writer before records are dropped: about 16k access
/// records, seconds of traffic at full load if the disk stalls.
const PENDING_LIMIT: usize = 8 * 1024 * 1024;

/// How long the writer lets records gather after the first one arrives: long enough to batch a
/// busy gateway's records into few writes, short enough that a record is in the file almost at
/// once (tests and `tail -f` poll the file).
const BATCH_DELAY: Duration = Duration::from_millis(5);

/// A serialized line larger than this does not keep its per-thread buffer alive.
const LINE_KEEP: usize = 64 * 1024;

type Output = Box<dyn AsyncWrite + Send + Unpin>;

/// The open file or stdout, shared by the writer task and [`LogSink::flush`].
struct Target {
    name: String,
    out: Output,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target").field("name", &self.name).finish()
    }
}

async fn open_target(target: &str) -> std::io::Result<Output> {
    Ok(if target == "-" {
        Box::new(tokio::io::stdout())
    } else {
        Box::new(
            tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(target)
                .await?,
        )
    })
}

/// Records waiting for the writer.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Set when the writer has stopped (the output failed): records are dropped from then on.
    closed: bool,
}

/// What the request path and the writer share.
#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    limit: usize,
    /// Wakes the writer: notified when the pending bytes stop being empty (a permit is kept
    /// when the writer is busy, so no wake-up is lost).
    wake: Notify,
    reopen: Notify,
    dropped: AtomicU64,
    /// Where the lines that name a request are also kept, for the admin API (set once).
    recent: std::sync::OnceLock<Arc<crate::recent::RecentRequests>>,
}

impl Shared {
    fn new(limit: usize) -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            limit,
            wake: Notify::new(),
            reopen: Notify::new(),
            dropped: AtomicU64::new(0),
            recent: std::sync::OnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // The lock guards plain bytes; a panic elsewhere cannot leave them inconsistent.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues one line (with its newline), or drops and counts it when the pending bytes are
    /// full or the writer has stopped. Wakes the writer when the line is the first pending.
    fn push(&self, line: &[u8]) {
        let mut pending = self.lock();
        if pending.closed || pending.bytes.len() + line.len() > self.limit {
            drop(pending);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let first = pending.bytes.is_empty();
        pending.bytes.extend_from_slice(line);
        drop(pending);
        if first {
            self.wake.notify_one();
        }
    }

    /// Takes every pending byte, leaving `spare`'s (cleared) allocation in its place so that
    /// neither side allocates in the steady state.
    fn take(&self, spare: &mut Vec<u8>) {
        spare.clear();
        std::mem::swap(&mut self.lock().bytes, spare);
    }

    fn close(&self) {
        let mut pending = self.lock();
        pending.closed = true;
        pending.bytes = Vec::new();
    }
}

/// Where one log goes: `-` for stdout, else a file appended to.
#[derive(Debug, Clone)]
pub struct LogSink {
    shared: Arc<Shared>,
    target: Arc<tokio::sync::Mutex<Target>>,
}

impl LogSink {
    /// Opens the target and starts its writer task. Must run inside a tokio runtime.
    pub async fn open(target: &str) -> std::io::Result<Self> {
        let out = open_target(target).await?;
        let sink = Self {
            shared: Arc::new(Shared::new(PENDING_LIMIT)),
            target: Arc::new(tokio::sync::Mutex::new(Target {
                name: target.to_owned(),
                out,
            })),
        };
        tokio::spawn(sink.clone().write_until_failure());
        Ok(sink)
    }

    async fn write_until_failure(self) {
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                () = self.shared.wake.notified() => tokio::time::sleep(BATCH_DELAY).await,
                () = self.shared.reopen.notified() => {
                    // Log rotation: the old file was renamed; continue in a new one. If it
                    // cannot be opened, keep writing to the old handle rather than lose records.
                    let mut target = self.target.lock().await;
                    let _ = target.out.flush().await;
                    if let Ok(fresh) = open_target(&target.name).await {
                        target.out = fresh;
                    }
                    // Records pending now still have their wake-up permit.
                    continue;
                }
            }
            if self.write_pending(&mut batch).await.is_err() {
                self.shared.close();
                return;
            }
        }
    }

    /// Writes what is pending now.
    async fn write_pending(&self, batch: &mut Vec<u8>) -> std::io::Result<()> {
        let mut target = self.target.lock().await;
        // Taken under the target's lock, so batches reach the file in the order they were taken.
        self.shared.take(batch);
        if batch.is_empty() {
            return Ok(());
        }
        target.out.write_all(batch).await?;
        target.out.flush().await
    }

    /// Writes every record queued so far and waits until it is written (at shutdown).
    pub async fn flush(&self) {
        let mut batch = Vec::new();
        if self.write_pending(&mut batch).await.is_err() {
            self.shared.close();
        }
    }

    /// Reopens the file (after rotation, on SIGUSR1); records queued meanwhile are kept.
    pub fn reopen(&self) {
        self.shared.reopen.notify_one();
    }

    /// Also keeps every line that names a request in `recent` (the admin API's
    /// `/api/requests/<id>`); a sink keeps to the first store it is given.
    pub fn keep_recent(&self, recent: Arc<crate::recent::RecentRequests>) {
        let _ = self.shared.recent.set(recent);
    }

    /// Wraps `data` in its envelope and queues the line (and keeps it among the recent
    /// requests' when it names one).
    fn record(
        &self,
        kind: &'static str,
        source: &str,
        request_id: Option<&str>,
        data: impl Serialize,
    ) {
        let id = crate::ids::new_id();
        let time = Timestamp::now();
        self.write(
            &Envelope {
                specversion: "1.0",
                id: id.as_str(),
                kind,
                source,
                time: time.as_str(),
                datacontenttype: "application/json",
                data,
            },
            request_id,
        );
    }

    /// Serializes one line into this thread's line buffer and queues it.
    fn write(&self, record: &impl Serialize, request_id: Option<&str>) {
        self.write_with(|line| serde_json::to_writer(line, record), request_id);
    }

    /// Queues the line `fill` writes into this thread's line buffer.
    fn write_with(
        &self,
        fill: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>,
        request_id: Option<&str>,
    ) {
        thread_local! {
            static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        LINE.with_borrow_mut(|line| {
            line.clear();
            match fill(&mut *line) {
                Ok(()) => {
                    line.push(b'\n');
                    self.shared.push(line);
                    if let (Some(id), Some(recent)) = (request_id, self.shared.recent.get()) {
                        recent.push(id, line);
                    }
                }
                Err(_) => {
                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            if line.capacity() > LINE_KEEP {
                *line = Vec::new();
            }
        });
    }

    /// Records dropped because the writer fell behind (or its output failed).
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

/// The two logs of a gateway.
#[derive(Debug, Clone)]
pub struct Logs {
    pub execution: LogSink,
    pub access: LogSink,
}

impl Logs {
    /// Writes every record queued so far to both logs and waits until it is written: at
    /// shutdown, so that the last requests' records are not lost with the writer tasks.
    pub async fn flush(&self) {
        self.execution.flush().await;
        self.access.flush().await;
    }
}

/// Severity, ordered so that a configured level lets through itself and everything above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
        }
    }

    pub fn from_name(name: &str) -> Self {
        match name {
            "ERROR" => Self::Error,
            "WARN" => Self::Warn,
            _ => Self::Info,
        }
    }
}

/// One execution-log record before it is wrapped.
#[derive(Debug, Clone)]
pub struct ExecutionRecord {
    /// Mostly literals; `Cow` spares them a copy.
    pub code: Cow<'static, str>,
    pub level: Level,
    pub message: Cow<'static, str>,
    /// Extra `data` members, in order: `check`, `expected`, `actual`, `fix`, `cause`, ...
    pub details: Vec<(&'static str, Value)>,
}

impl ExecutionRecord {
    pub fn new(
        code: impl Into<Cow<'static, str>>,
        level: Level,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            code: code.into(),
            level,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// Adds a `data` member; `key` must differ from the other members' names.
    #[must_use]
    pub fn with(mut self, key: &'static str, value: Value) -> Self {
        debug_assert!(
            !RESERVED.contains(&key) && self.details.iter().all(|(k, _)| *k != key),
            "duplicate execution-log member {key}"
        );
        self.details.push((key, value));
        self
    }
}

/// The `data` members every execution record has.
const RESERVED: [&str; 5] = ["code", "level", "message", "opcRequestId", "deploymentId"];

/// Records about the gateway itself (reloads, the shared state store), not a deployment.
pub const GATEWAY_CONTEXT: Context<'static> = Context {
    source: "claimgate",
    deployment_id: "-",
    request_id: None,
};

/// Who a record is about.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The deployment's label (`displayName`, else `pathPrefix`), the envelope's `source`.
    pub source: &'a str,
    pub deployment_id: &'a str,
    pub request_id: Option<&'a str>,
}

/// One answered request, as the access log reports it.
#[derive(Debug, Clone, Copy)]
pub struct AccessRecord<'a> {
    pub method: &'a str,
    /// The URI with tokens redacted.
    pub uri: &'a str,
    pub version: http::Version,
    pub status: u16,
    pub body_bytes_sent: u64,
    /// Logged in seconds, rounded to the millisecond.
    pub duration: Duration,
    pub remote_addr: IpAddr,
    pub user_agent: &'a str,
}

/// `serverProtocol` as OCI writes it (`HTTP/1.1`), which is also `http::Version`'s `Debug`.
fn protocol(version: http::Version) -> Cow<'static, str> {
    Cow::Borrowed(match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_11 => "HTTP/1.1",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        other => return Cow::Owned(format!("{other:?}")),
    })
}

/// `uri`'s `path?query` for the access log, with the value of every query parameter that
/// `is_token` names replaced by `[redacted]`: tokens are never logged. Borrowed from the request
/// when there is nothing to replace, which is nearly always.
pub(crate) fn redacted_uri(uri: &http::Uri, is_token: impl Fn(&str) -> bool) -> Cow<'_, str> {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return Cow::Borrowed(path);
    };
    let names_token = |pair: &str| pair.split_once('=').is_some_and(|(name, _)| is_token(name));
    if !query.split('&').any(names_token) {
        return match uri.path_and_query().map(http::uri::PathAndQuery::as_str) {
            // As received; only an empty path (written `/` by `path()`) reads otherwise.
            Some(whole)
                if whole.len() == path.len() + 1 + query.len() && whole.starts_with(path) =>
            {
                Cow::Borrowed(whole)
            }
            _ => Cow::Owned(format!("{path}?{query}")),
        };
    }
    let mut redacted = String::with_capacity(path.len() + query.len() + 16);
    redacted.push_str(path);
    let mut separator = '?';
    for pair in query.split('&') {
        redacted.push(separator);
        separator = '&';
        match pair.split_once('=') {
            Some((name, _)) if is_token(name) => {
                redacted.push_str(name);
                redacted.push_str("=[redacted]");
            }
            _ => redacted.push_str(pair),
        }
    }
    Cow::Owned(redacted)
}

/// The CloudEvents envelope; members in the order OCI Logging writes them.
#[derive(Serialize)]
struct Envelope<'a, D> {
    specversion: &'static str,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    source: &'a str,
    time: &'a str,
    datacontenttype: &'static str,
    data: D,
}

/// An execution record's `data`.
struct ExecutionData<'a> {
    record: &'a ExecutionRecord,
    context: Context<'a>,
}

impl Serialize for ExecutionData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (record, context) = (self.record, self.context);
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("code", &record.code)?;
        map.serialize_entry("level", record.level.name())?;
        map.serialize_entry("message", &record.message)?;
        if let Some(id) = context.request_id {
            map.serialize_entry("opcRequestId", id)?;
        }
        map.serialize_entry("deploymentId", context.deployment_id)?;
        for (key, value) in &record.details {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// An access record's `data` (the reference [`access_line`] is tested against).
#[cfg(test)]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccessData<'a> {
    http_method: &'a str,
    request_uri: &'a str,
    server_protocol: &'a str,
    status: u16,
    body_bytes_sent: u64,
    request_duration: f64,
    remote_addr: Displayed<IpAddr>,
    http_user_agent: &'a str,
    /// `METHOD uri PROTOCOL`.
    message: Displayed<AccessMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    opc_request_id: Option<&'a str>,
    deployment_id: &'a str,
}

/// A value serialized as the JSON string of its `Display`, escaped as it is formatted, without
/// an intermediate `String`.
struct Displayed<T>(T);

impl<T: fmt::Display> Serialize for Displayed<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

struct AccessMessage<'a> {
    method: &'a str,
    uri: &'a str,
    protocol: &'a str,
}

impl fmt::Display for AccessMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.method, self.uri, self.protocol)
    }
}

impl Logs {
    /// Writes an execution record if `threshold` lets it through.
    pub fn execution(&self, context: Context<'_>, threshold: Level, record: ExecutionRecord) {
        if record.level < threshold {
            return;
        }
        let data = ExecutionData {
            record: &record,
            context,
        };
        self.execution
            .record(EXECUTION_TYPE, context.source, context.request_id, data);
    }

    /// Writes an access record: the line is written by hand ([`access_line`]), since every
    /// request has one (serde_json escapes string by string, byte by byte: 4.4k of the 40k
    /// instructions of a stock answer); the same bytes serde would write.
    pub fn access(&self, context: Context<'_>, record: &AccessRecord<'_>) {
        let id = crate::ids::new_id();
        let time = Timestamp::now();
        self.access.write_with(
            |line| {
                access_line(line, id.as_str(), time.as_str(), context, record);
                Ok(())
            },
            context.request_id,
        );
    }

    /// [`Logs::access`] through serde: what the hand-written line must equal.
    #[cfg(test)]
    fn access_by_serde(
        &self,
        context: Context<'_>,
        record: &AccessRecord<'_>,
        id: &str,
        time: &str,
    ) -> Vec<u8> {
        let protocol = protocol(record.version);
        let data = AccessData {
            http_method: record.method,
            request_uri: record.uri,
            server_protocol: &protocol,
            status: record.status,
            body_bytes_sent: record.body_bytes_sent,
            request_duration: (record.duration.as_secs_f64() * 1000.0).round() / 1000.0,
            remote_addr: Displayed(record.remote_addr),
            http_user_agent: record.user_agent,
            message: Displayed(AccessMessage {
                method: record.method,
                uri: record.uri,
                protocol: &protocol,
            }),
            opc_request_id: context.request_id,
            deployment_id: context.deployment_id,
        };
        serde_json::to_vec(&Envelope {
            specversion: "1.0",
            id,
            kind: ACCESS_TYPE,
            source: context.source,
            time,
            datacontenttype: "application/json",
            data,
        })
        .unwrap()
    }
}

/// Appends `text` as serde_json writes a string: only `"`, `\` and control characters are
/// escaped, so text without them (nearly all) is copied whole.
fn push_json_str(line: &mut Vec<u8>, text: &str) {
    // No early exit: the check runs over whole vectors of bytes.
    let escapes = text.bytes().fold(false, |found, b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if escapes {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *line, text);
    } else {
        line.push(b'"');
        line.extend_from_slice(text.as_bytes());
        line.push(b'"');
    }
}

/// Appends a number as serde_json writes it.
fn push_json(line: &mut Vec<u8>, value: &impl Serialize) {
    let _ = serde_json::to_writer(&mut *line, value);
}

/// One access line (without its newline), member for member what serde writes for the
/// [`Envelope`] of an `AccessData` (a test holds them equal).
fn access_line(
    line: &mut Vec<u8>,
    id: &str,
    time: &str,
    context: Context<'_>,
    record: &AccessRecord<'_>,
) {
    let protocol = protocol(record.version);
    line.extend_from_slice(b"{\"specversion\":\"1.0\",\"id\":");
    push_json_str(line, id);
    line.extend_from_slice(b",\"type\":\"");
    line.extend_from_slice(ACCESS_TYPE.as_bytes());
    line.extend_from_slice(b"\",\"source\":");
    push_json_str(line, context.source);
    line.extend_from_slice(b",\"time\":");
    push_json_str(line, time);
    line.extend_from_slice(b",\"datacontenttype\":\"application/json\",\"data\":{\"httpMethod\":");
    push_json_str(line, record.method);
    line.extend_from_slice(b",\"requestUri\":");
    push_json_str(line, record.uri);
    line.extend_from_slice(b",\"serverProtocol\":");
    push_json_str(line, &protocol);
    line.extend_from_slice(b",\"status\":");
    push_json(line, &record.status);
    line.extend_from_slice(b",\"bodyBytesSent\":");
    push_json(line, &record.body_bytes_sent);
    line.extend_from_slice(b",\"requestDuration\":");
    push_json(
        line,
        &((record.duration.as_secs_f64() * 1000.0).round() / 1000.0),
    );
    // An address's text needs no escaping.
    line.extend_from_slice(b",\"remoteAddr\":\"");
    line.extend_from_slice(crate::proxy::peer_address(record.remote_addr).as_bytes());
    line.push(b'"');
    line.extend_from_slice(b",\"httpUserAgent\":");
    push_json_str(line, record.user_agent);
    line.extend_from_slice(b",\"message\":");
    let message = AccessMessage {
        method: record.method,
        uri: record.uri,
        protocol: &protocol,
    };
    if [message.method, message.uri, message.protocol]
        .iter()
        .any(|part| part.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'))
    {
        let _ = serde_json::to_writer(&mut *line, &Displayed(message));
    } else {
        line.push(b'"');
        line.extend_from_slice(message.method.as_bytes());
        line.push(b' ');
        line.extend_from_slice(message.uri.as_bytes());
        line.push(b' ');
        line.extend_from_slice(message.protocol.as_bytes());
        line.push(b'"');
    }
    if let Some(request_id) = context.request_id {
        line.extend_from_slice(b",\"opcRequestId\":");
        push_json_str(line, request_id);
    }
    line.extend_from_slice(b",\"deploymentId\":");
    push_json_str(line, context.deployment_id);
    line.extend_from_slice(b"}}");
}

/// A UTC time in RFC 3339 exactly as the `time` crate's `Rfc3339` format writes it (the format
/// the logs have always had): nanoseconds with trailing zeros dropped, no fraction when it is
/// zero, `Z`; empty outside the years 0–9999, where that format fails. Formatted by hand
/// because it is needed for every record: a few divisions, no allocation.
#[derive(Clone, Copy)]
struct Timestamp {
    bytes: [u8; 30],
    len: usize,
}

impl Timestamp {
    fn now() -> Self {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            // Seconds and nanoseconds as the clock gives them: no 128-bit division on the
            // request path.
            Ok(since) => Self::from_unix(since.as_secs() as i64, since.subsec_nanos()),
            Err(before) => Self::from_unix_nanos(-(before.duration().as_nanos() as i128)),
        }
    }

    fn from_unix_nanos(nanos: i128) -> Self {
        match i64::try_from(nanos.div_euclid(1_000_000_000)) {
            Ok(seconds) => Self::from_unix(seconds, nanos.rem_euclid(1_000_000_000) as u32),
            Err(_) => Self {
                bytes: [0; 30],
                len: 0,
            },
        }
    }

    /// `seconds` after the epoch plus `subsecond` nanoseconds (below 1e9).
    fn from_unix(seconds: i64, subsecond: u32) -> Self {
        let mut stamp = Self {
            bytes: [0; 30],
            len: 0,
        };
        let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
        if !(0..10_000).contains(&year) {
            return stamp;
        }
        let of_day = seconds.rem_euclid(86_400) as u32;
        let b = &mut stamp.bytes;
        digits(&mut b[0..4], year as u32);
        b[4] = b'-';
        digits(&mut b[5..7], month);
        b[7] = b'-';
        digits(&mut b[8..10], day);
        b[10] = b'T';
        digits(&mut b[11..13], of_day / 3600);
        b[13] = b':';
        digits(&mut b[14..16], of_day / 60 % 60);
        b[16] = b':';
        digits(&mut b[17..19], of_day % 60);
        let mut len = 19;
        if subsecond != 0 {
            b[19] = b'.';
            digits(&mut b[20..29], subsecond);
            len = 29;
            while b[len - 1] == b'0' {
                len -= 1;
            }
        }
        b[len] = b'Z';
        stamp.len = len + 1;
        stamp
    }

    fn as_str(&self) -> &str {
        // Only ASCII is ever written.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

/// `value`'s last `out.len()` decimal digits, zero-padded.
fn digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Year, month, day of a day counted from 1970-01-01 (proleptic Gregorian), after Howard
/// Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What the logs used to carry: the `time` crate's `Rfc3339`, empty where it fails (as for
    /// instants it cannot represent).
    fn reference(nanos: i128) -> String {
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    }

    #[test]
    fn timestamps_match_the_time_crate() {
        let second = 1_000_000_000i128;
        let mut cases = vec![
            0,
            1,
            10,
            999_999_999,
            100_000_000,
            120_000_000,
            second * 1_795_881_645 + 554_760_582,
            second * 1_795_881_645,
            second * 951_782_400,         // 2000-02-29
            second * 4_107_542_399,       // 2100-02-28T23:59:59
            second * 4_107_542_400,       // 2100-03-01 (2100 is not a leap year)
            second * 253_402_300_799 + 1, // 9999-12-31T23:59:59.000000001
            second * 253_402_300_800,     // 10000-01-01: the format fails
            -1,                           // 1969-12-31T23:59:59.999999999
            -second * 62_167_219_200,     // 0000-01-01
            -second * 62_167_219_200 - 1, // year -1: the format fails
        ];
        // A spread of instants over the years 0..=9999, with fractions of every length.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let seconds = (x >> 20) as i128 % 315_537_897_600 - 62_167_219_200;
            let fraction = [1, 10, 1_000, 1_000_000, 100_000_000][(x % 5) as usize];
            let nanos = (x >> 3) as i128 % 1_000_000_000 / fraction * fraction;
            cases.push(seconds * second + nanos);
        }
        for nanos in cases {
            assert_eq!(
                Timestamp::from_unix_nanos(nanos).as_str(),
                reference(nanos),
                "{nanos}"
            );
        }
    }

    #[test]
    fn now_is_rfc3339_utc() {
        let now = Timestamp::now();
        let parsed = time::OffsetDateTime::parse(
            now.as_str(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let drift = (time::OffsetDateTime::now_utc() - parsed).abs();
        assert!(drift < time::Duration::seconds(5), "{}", now.as_str());
        assert!(now.as_str().ends_with('Z'));
    }

    fn sink(limit: usize) -> LogSink {
        LogSink {
            shared: Arc::new(Shared::new(limit)),
            target: Arc::new(tokio::sync::Mutex::new(Target {
                name: "-".into(),
                out: Box::new(tokio::io::sink()),
            })),
        }
    }

    /// The lines queued in a sink that has no writer task.
    fn queued(sink: &LogSink) -> Vec<Value> {
        let mut bytes = Vec::new();
        sink.shared.take(&mut bytes);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'));
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    fn logs() -> Logs {
        Logs {
            execution: sink(PENDING_LIMIT),
            access: sink(PENDING_LIMIT),
        }
    }

    fn member_names(value: &Value) -> Vec<&str> {
        value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect()
    }

    fn assert_envelope(line: &Value, kind: &str, source: &str) {
        assert_eq!(
            member_names(line),
            [
                "specversion",
                "id",
                "type",
                "source",
                "time",
                "datacontenttype",
                "data"
            ]
        );
        assert_eq!(line["specversion"], "1.0");
        assert_eq!(line["type"], kind);
        assert_eq!(line["source"], source);
        assert_eq!(line["datacontenttype"], "application/json");
        let id = line["id"].as_str().unwrap();
        assert!(
            id.len() == 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
        );
        let time = line["time"].as_str().unwrap();
        time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).unwrap();
    }

    #[test]
    fn hand_written_access_lines_are_what_serde_writes() {
        let logs = logs();
        let durations = [0, 1, 499, 500, 1_234_567, 3_600_000_000, u64::MAX / 4096];
        let texts = [
            "",
            "plain",
            "q\"uote",
            "back\\slash",
            "ctl\u{1}\u{1f}",
            "tab\t nl\n",
            "del\u{7f} é ☃ \u{10ffff}",
            "/v1/x?a=1&b=%22",
        ];
        let versions = [
            http::Version::HTTP_10,
            http::Version::HTTP_11,
            http::Version::HTTP_2,
        ];
        let addresses: [IpAddr; 3] = [
            "127.0.0.1".parse().unwrap(),
            "::1".parse().unwrap(),
            "::ffff:10.0.0.1".parse().unwrap(),
        ];
        let mut cases = 0;
        for (i, text) in texts.iter().enumerate() {
            for (j, micros) in durations.iter().enumerate() {
                let other = texts[(i + j) % texts.len()];
                let context = Context {
                    source: other,
                    deployment_id: text,
                    request_id: (j % 2 == 0).then_some(other),
                };
                let record = AccessRecord {
                    method: if j % 3 == 0 { "GET" } else { text },
                    uri: text,
                    version: versions[j % versions.len()],
                    status: [200, 404, 599][j % 3],
                    body_bytes_sent: *micros,
                    duration: Duration::from_micros(*micros),
                    remote_addr: addresses[i % addresses.len()],
                    user_agent: other,
                };
                let mut line = Vec::new();
                access_line(&mut line, "ID", "2026-01-01T00:00:00.5Z", context, &record);
                let reference =
                    logs.access_by_serde(context, &record, "ID", "2026-01-01T00:00:00.5Z");
                assert_eq!(
                    String::from_utf8(line).unwrap(),
                    String::from_utf8(reference).unwrap()
                );
                cases += 1;
            }
        }
        assert_eq!(cases, 56);
    }

    #[test]
    fn access_lines_carry_oci_members() {
        let logs = logs();
        let context = Context {
            source: "orders \"api\"",
            deployment_id: "orders",
            request_id: Some("REQ-1"),
        };
        logs.access(
            context,
            &AccessRecord {
                method: "GET",
                uri: "/v1/orders?q=a\"b&access_token=[redacted]",
                version: http::Version::HTTP_11,
                status: 200,
                body_bytes_sent: 17,
                duration: Duration::from_micros(1_234_567),
                remote_addr: "::ffff:10.0.0.1".parse().unwrap(),
                user_agent: "curl/8 \u{1}",
            },
        );
        let lines = queued(&logs.access);
        assert_eq!(lines.len(), 1);
        assert!(queued(&logs.execution).is_empty());
        let line = &lines[0];
        assert_envelope(line, ACCESS_TYPE, "orders \"api\"");
        assert_eq!(
            line["data"],
            json!({
                "httpMethod": "GET",
                "requestUri": "/v1/orders?q=a\"b&access_token=[redacted]",
                "serverProtocol": "HTTP/1.1",
                "status": 200,
                "bodyBytesSent": 17,
                "requestDuration": 1.235,
                "remoteAddr": "::ffff:10.0.0.1",
                "httpUserAgent": "curl/8 \u{1}",
                "message": "GET /v1/orders?q=a\"b&access_token=[redacted] HTTP/1.1",
                "opcRequestId": "REQ-1",
                "deploymentId": "orders",
            })
        );
        assert_eq!(
            member_names(&line["data"]),
            [
                "httpMethod",
                "requestUri",
                "serverProtocol",
                "status",
                "bodyBytesSent",
                "requestDuration",
                "remoteAddr",
                "httpUserAgent",
                "message",
                "opcRequestId",
                "deploymentId"
            ]
        );
    }

    #[test]
    fn access_lines_without_request_id_and_with_zero_duration() {
        let logs = logs();
        let context = Context {
            source: "/v1",
            deployment_id: "d",
            request_id: None,
        };
        logs.access(
            context,
            &AccessRecord {
                method: "POST",
                uri: "/",
                version: http::Version::HTTP_2,
                status: 404,
                body_bytes_sent: 0,
                duration: Duration::ZERO,
                remote_addr: "127.0.0.1".parse().unwrap(),
                user_agent: "",
            },
        );
        let line = &queued(&logs.access)[0];
        let data = line["data"].as_object().unwrap();
        assert!(!data.contains_key("opcRequestId"));
        assert_eq!(data["serverProtocol"], "HTTP/2.0");
        assert_eq!(data["message"], "POST / HTTP/2.0");
        // Serialized as the float it always was.
        assert!(serde_json::to_string(line)
            .unwrap()
            .contains("\"requestDuration\":0.0"));
    }

    #[test]
    fn uris_are_redacted_only_where_a_token_is() {
        let token = |name: &str| name == "access_token" || name == "jwt";
        let redact = |uri: &str| {
            let uri: http::Uri = uri.parse().unwrap();
            let redacted = redacted_uri(&uri, token);
            (redacted.to_string(), matches!(redacted, Cow::Borrowed(_)))
        };
        assert_eq!(redact("/v1/a"), ("/v1/a".into(), true));
        assert_eq!(redact("/v1/a?b=1&c"), ("/v1/a?b=1&c".into(), true));
        assert_eq!(redact("/v1/a?"), ("/v1/a?".into(), true));
        assert_eq!(
            redact("/v1/a?b=1&access_token=eyJ.x.y&c&jwt=&access_token"),
            (
                "/v1/a?b=1&access_token=[redacted]&c&jwt=[redacted]&access_token".into(),
                false
            )
        );
        assert_eq!(
            redact("/a?access_token=1=2"),
            ("/a?access_token=[redacted]".into(), false)
        );
        // A name is matched whole and with its case.
        assert_eq!(
            redact("/a?Access_token=x&jwtx=y"),
            ("/a?Access_token=x&jwtx=y".into(), true)
        );
        // An absolute-form target is logged by its path and query, as before.
        assert_eq!(
            redact("http://example.com/a?jwt=t"),
            ("/a?jwt=[redacted]".into(), false)
        );
        assert_eq!(redact("http://example.com/a?x=1"), ("/a?x=1".into(), true));
        assert_eq!(redact("http://example.com?x=1").0, "/?x=1");
    }

    #[test]
    fn protocols_are_named_as_http_debug_names_them() {
        for version in [
            http::Version::HTTP_09,
            http::Version::HTTP_10,
            http::Version::HTTP_11,
            http::Version::HTTP_2,
            http::Version::HTTP_3,
        ] {
            assert_eq!(protocol(version), format!("{version:?}"));
        }
    }

    #[test]
    fn execution_lines_carry_oci_members_and_details_in_order() {
        let logs = logs();
        let context = Context {
            source: "orders",
            deployment_id: "orders-id",
            request_id: Some("ABC"),
        };
        let record = ExecutionRecord::new(
            "jwtAuthentication.authenticationFailed",
            Level::Warn,
            String::from("JWT token not issued for the configured audience."),
        )
        .with("check", json!("aud"))
        .with("expected", json!(["api://orders"]))
        .with("actual", json!("api://billing"))
        .with("fix", json!("use \"the\" right one"));
        logs.execution(context, Level::Info, record);
        let lines = queued(&logs.execution);
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_envelope(line, EXECUTION_TYPE, "orders");
        assert_eq!(
            member_names(&line["data"]),
            [
                "code",
                "level",
                "message",
                "opcRequestId",
                "deploymentId",
                "check",
                "expected",
                "actual",
                "fix"
            ]
        );
        assert_eq!(
            line["data"],
            json!({
                "code": "jwtAuthentication.authenticationFailed",
                "level": "WARN",
                "message": "JWT token not issued for the configured audience.",
                "opcRequestId": "ABC",
                "deploymentId": "orders-id",
                "check": "aud",
                "expected": ["api://orders"],
                "actual": "api://billing",
                "fix": "use \"the\" right one",
            })
        );
    }

    #[test]
    fn execution_records_below_the_threshold_are_not_written() {
        let logs = logs();
        let context = Context {
            source: "claimgate",
            deployment_id: "-",
            request_id: None,
        };
        logs.execution(
            context,
            Level::Warn,
            ExecutionRecord::new("a.b", Level::Info, "x"),
        );
        assert!(queued(&logs.execution).is_empty());
        logs.execution(
            context,
            Level::Warn,
            ExecutionRecord::new("a.c", Level::Error, "y"),
        );
        let lines = queued(&logs.execution);
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines[0]["data"],
            json!({"code": "a.c", "level": "ERROR", "message": "y", "deploymentId": "-"})
        );
    }

    #[test]
    fn envelope_ids_differ_between_records() {
        let logs = logs();
        let context = Context {
            source: "s",
            deployment_id: "d",
            request_id: None,
        };
        for _ in 0..3 {
            logs.execution(
                context,
                Level::Info,
                ExecutionRecord::new("c", Level::Info, "m"),
            );
        }
        let lines = queued(&logs.execution);
        assert_eq!(lines.len(), 3);
        assert_ne!(lines[0]["id"], lines[1]["id"]);
        assert_ne!(lines[1]["id"], lines[2]["id"]);
    }

    #[test]
    fn a_full_buffer_drops_and_counts_records() {
        let context = Context {
            source: "s",
            deployment_id: "d",
            request_id: None,
        };
        let record = || ExecutionRecord::new("c", Level::Info, "m");
        let one = {
            let logs = logs();
            logs.execution(context, Level::Info, record());
            let mut bytes = Vec::new();
            logs.execution.shared.take(&mut bytes);
            bytes.len()
        };
        // Room for three records, not four.
        let logs = Logs {
            execution: sink(one * 3 + one / 2),
            access: sink(PENDING_LIMIT),
        };
        for _ in 0..5 {
            logs.execution(context, Level::Info, record());
        }
        assert_eq!(logs.execution.dropped(), 2);
        assert_eq!(queued(&logs.execution).len(), 3);
        // Once written out, there is room again.
        logs.execution(context, Level::Info, record());
        assert_eq!(queued(&logs.execution).len(), 1);
        assert_eq!(logs.execution.dropped(), 2);
    }

    #[test]
    fn a_closed_sink_drops_and_counts_records() {
        let sink = sink(PENDING_LIMIT);
        sink.shared.push(b"x\n");
        sink.shared.close();
        sink.shared.push(b"y\n");
        assert_eq!(sink.dropped(), 1);
        assert!(queued(&sink).is_empty());
    }

    fn temp_file(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "claimgate-logs-{}-{}",
            std::process::id(),
            crate::ids::new_id().as_str()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    /// Both logs in one new file.
    async fn file_logs(name: &str) -> (std::path::PathBuf, LogSink, Logs) {
        let path = temp_file(name);
        let sink = LogSink::open(path.to_str().unwrap()).await.unwrap();
        let logs = Logs {
            execution: sink.clone(),
            access: sink.clone(),
        };
        (path, sink, logs)
    }

    async fn wait_for_lines(path: &std::path::Path, count: usize) -> Vec<String> {
        for _ in 0..200 {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.lines().count() >= count {
                return text.lines().map(str::to_owned).collect();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{} did not get {count} lines", path.display());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_reach_the_file_promptly_and_survive_reopen() {
        let (path, sink, logs) = file_logs("access.log").await;
        let context = Context {
            source: "s",
            deployment_id: "d",
            request_id: Some("R1"),
        };
        let started = std::time::Instant::now();
        logs.execution(
            context,
            Level::Info,
            ExecutionRecord::new("first", Level::Info, "m"),
        );
        let lines = wait_for_lines(&path, 1).await;
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!(lines[0].contains("\"code\":\"first\""));

        // Rotation: rename, reopen, and the next records go to a new file.
        let rotated = path.with_extension("log.1");
        std::fs::rename(&path, &rotated).unwrap();
        sink.reopen();
        for _ in 0..100 {
            if path.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for i in 0..1000 {
            logs.execution(
                context,
                Level::Info,
                ExecutionRecord::new(format!("after{i}"), Level::Info, "m"),
            );
        }
        let lines = wait_for_lines(&path, 1000).await;
        assert_eq!(lines.len(), 1000);
        for (i, line) in lines.iter().enumerate() {
            let value: Value = serde_json::from_str(line).unwrap();
            assert_eq!(value["data"]["code"], format!("after{i}"));
        }
        assert_eq!(
            std::fs::read_to_string(&rotated).unwrap().lines().count(),
            1
        );
        assert_eq!(sink.dropped(), 0);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flush_writes_everything_queued() {
        let (path, sink, logs) = file_logs("execution.log").await;
        let context = Context {
            source: "s",
            deployment_id: "d",
            request_id: None,
        };
        for _ in 0..10 {
            logs.execution(
                context,
                Level::Info,
                ExecutionRecord::new("c", Level::Info, "m"),
            );
        }
        // Without waiting for the writer's batch delay.
        sink.flush().await;
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 10);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
