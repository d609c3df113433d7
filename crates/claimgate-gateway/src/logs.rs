//! Execution and access logs as JSON lines, shaped as OCI Logging writes them (CloudEvents 1.0
//! envelope, OCI's `data` fields). Records are handed to a writer task through a bounded queue,
//! so the request path never waits on a file; if the queue is full a record is dropped and
//! counted rather than stalling traffic.

use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;

const EXECUTION_TYPE: &str = "com.oraclecloud.apigateway.apideployment.execution";
const ACCESS_TYPE: &str = "com.oraclecloud.apigateway.apideployment.access";
const QUEUE: usize = 16 * 1024;

/// Where one log goes: `-` for stdout, else a file appended to.
#[derive(Debug, Clone)]
pub struct LogSink {
    sender: mpsc::Sender<String>,
    dropped: Arc<AtomicU64>,
    reopen: Arc<tokio::sync::Notify>,
}

async fn open_target(
    target: &str,
) -> std::io::Result<Box<dyn tokio::io::AsyncWrite + Send + Unpin>> {
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

impl LogSink {
    /// Opens the target and starts its writer task. Must run inside a tokio runtime.
    pub async fn open(target: &str) -> std::io::Result<Self> {
        let (sender, mut receiver) = mpsc::channel::<String>(QUEUE);
        let reopen = Arc::new(tokio::sync::Notify::new());
        let mut out = open_target(target).await?;
        let target = target.to_owned();
        let reopen_signal = reopen.clone();
        tokio::spawn(async move {
            loop {
                let line = tokio::select! {
                    line = receiver.recv() => line,
                    () = reopen_signal.notified() => {
                        // Log rotation: the old file was renamed; continue in a new one. If it
                        // cannot be opened, keep writing to the old handle rather than lose records.
                        let _ = out.flush().await;
                        if let Ok(fresh) = open_target(&target).await {
                            out = fresh;
                        }
                        continue;
                    }
                };
                let Some(line) = line else { break };
                let mut batch = line;
                batch.push('\n');
                while let Ok(more) = receiver.try_recv() {
                    batch.push_str(&more);
                    batch.push('\n');
                }
                if out.write_all(batch.as_bytes()).await.is_err() || out.flush().await.is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            sender,
            dropped: Arc::new(AtomicU64::new(0)),
            reopen,
        })
    }

    /// Reopens the file (after rotation, on SIGUSR1); records queued meanwhile are kept.
    pub fn reopen(&self) {
        self.reopen.notify_one();
    }

    fn write(&self, record: &Value) {
        if self.sender.try_send(record.to_string()).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The two logs of a gateway.
#[derive(Debug, Clone)]
pub struct Logs {
    pub execution: LogSink,
    pub access: LogSink,
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
    pub code: String,
    pub level: Level,
    pub message: String,
    /// Extra `data` members: `check`, `expected`, `actual`, `fix`, `cause`, ...
    pub details: Map<String, Value>,
}

impl ExecutionRecord {
    pub fn new(code: impl Into<String>, level: Level, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            level,
            message: message.into(),
            details: Map::new(),
        }
    }

    #[must_use]
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.details.insert(key.to_owned(), value);
        self
    }
}

/// Who a record is about.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The deployment's label (`displayName`, else `pathPrefix`), the envelope's `source`.
    pub source: &'a str,
    pub deployment_id: &'a str,
    pub request_id: Option<&'a str>,
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn envelope(kind: &str, source: &str, data: Map<String, Value>) -> Value {
    json!({
        "specversion": "1.0",
        "id": crate::ids::new_id(),
        "type": kind,
        "source": source,
        "time": now_rfc3339(),
        "datacontenttype": "application/json",
        "data": data,
    })
}

impl Logs {
    /// Writes an execution record if `threshold` lets it through.
    pub fn execution(&self, context: Context<'_>, threshold: Level, record: ExecutionRecord) {
        if record.level < threshold {
            return;
        }
        let mut data = Map::new();
        data.insert("code".into(), json!(record.code));
        data.insert("level".into(), json!(record.level.name()));
        data.insert("message".into(), json!(record.message));
        if let Some(id) = context.request_id {
            data.insert("opcRequestId".into(), json!(id));
        }
        data.insert("deploymentId".into(), json!(context.deployment_id));
        data.extend(record.details);
        self.execution
            .write(&envelope(EXECUTION_TYPE, context.source, data));
    }

    /// Writes an access record.
    pub fn access(&self, context: Context<'_>, data: Map<String, Value>) {
        let mut data = data;
        if let Some(id) = context.request_id {
            data.insert("opcRequestId".into(), json!(id));
        }
        data.insert("deploymentId".into(), json!(context.deployment_id));
        self.access
            .write(&envelope(ACCESS_TYPE, context.source, data));
    }
}
