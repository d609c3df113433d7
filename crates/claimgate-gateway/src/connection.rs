//! Connection lifetimes: what bounds a client connection besides its requests.
//!
//! A connection costs a descriptor and memory whether or not it sends anything, so none may
//! stay open on its own say-so:
//! - one with no request in flight (it sent nothing yet, only the HTTP/2 preface, or it is an
//!   idle keep-alive or HTTP/2 connection) is closed after the read timeout (hyper's header
//!   timeout only runs once HTTP/1.1 was recognised, and HTTP/2 has none);
//! - every connection is closed gracefully at its maximum age (HTTP/1.1 after the answer in
//!   flight, HTTP/2 with GOAWAY), when the gateway drains, and — for TLS connections judged
//!   against client CAs — when a reload changes those CAs;
//! - at most `--max-connections` are open: a slot is taken before `accept`, so beyond it new
//!   connections wait in the kernel's backlog. Each serving thread has its share (its own
//!   listener): a slot shared across threads could be held by a thread whose listener has
//!   nothing queued while a connection waits in another's;
//! - when `accept` fails for lack of descriptors the loop sleeps instead of spinning.

use crate::respond::Body;
use hyper_util::server::graceful::GracefulConnection;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long an accept loop sleeps after `accept` failed for a reason that retrying at once
/// would not cure (no descriptors, no memory): long enough not to spin, short enough that
/// serving resumes soon after descriptors free up.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a connection closed for being idle may take to say goodbye (an HTTP/2 GOAWAY)
/// before it is dropped: nothing is in flight on it.
const IDLE_CLOSE: Duration = Duration::from_secs(1);

/// One listener's connection slots.
#[derive(Debug)]
pub(crate) struct Slots(Arc<tokio::sync::Semaphore>);

impl Slots {
    pub(crate) fn new(max: usize) -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(
            max.clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
        )))
    }

    /// A slot for one more connection, waiting while all are taken.
    pub(crate) async fn take(&self) -> tokio::sync::OwnedSemaphorePermit {
        match self.0.clone().acquire_owned().await {
            Ok(permit) => permit,
            // The semaphore is never closed.
            Err(_) => std::future::pending().await,
        }
    }
}

/// Shared by every listener of a gateway: the client-CA generation, and whether the gateway
/// is draining (a flag read on every HTTP/1.1 answer, and a signal every connection awaits).
#[derive(Debug, Default)]
pub(crate) struct Connections {
    client_cas: watch::Sender<u64>,
    draining: watch::Sender<bool>,
    draining_now: AtomicBool,
}

impl Connections {
    /// Starts draining every connection of every listener; true the first time only.
    pub(crate) fn begin_draining(&self) -> bool {
        self.draining_now.store(true, Ordering::Release);
        self.draining
            .send_if_modified(|draining| !std::mem::replace(draining, true))
    }

    /// Whether the gateway is draining: answers then close their HTTP/1.1 connection.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining_now.load(Ordering::Relaxed)
    }

    /// Turns true when the gateway starts draining (at once if it already has).
    pub(crate) fn draining(&self) -> watch::Receiver<bool> {
        self.draining.subscribe()
    }

    /// Closes (gracefully) every connection that was judged against the client CAs.
    pub(crate) fn client_cas_changed(&self) {
        self.client_cas.send_modify(|generation| *generation += 1);
    }

    /// Resolves when the client CAs change after this call.
    pub(crate) fn client_ca_changes(&self) -> watch::Receiver<u64> {
        self.client_cas.subscribe()
    }
}

/// Whether a failed `accept` calls for a pause before the next: everything but a connection
/// that failed on its own (reset or aborted before it was accepted, or an interrupted call).
pub(crate) async fn back_off_after(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset, Interrupted, WouldBlock};
    if !matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) {
        tokio::time::sleep(ACCEPT_BACKOFF).await;
    }
}

/// Requests in flight on one connection, and since when it has had none.
#[derive(Debug)]
pub(crate) struct Activity {
    born: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `born` when the last request in flight ended.
    idle_since: AtomicU64,
    /// Whether a request has begun on the connection; `first` is notified when one does.
    begun: AtomicBool,
    first: tokio::sync::Notify,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            born: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            begun: AtomicBool::new(false),
            first: tokio::sync::Notify::new(),
        })
    }

    /// Counts a request in flight until the returned guard (kept with its response body) is
    /// dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if !self.begun.load(Ordering::Relaxed) && !self.begun.swap(true, Ordering::AcqRel) {
            // Stored as a permit when nobody waits yet.
            self.first.notify_one();
        }
        InFlight(self.clone())
    }

    /// Resolves once a request has begun on the connection (at once if one has).
    async fn first_request(&self) {
        if !self.begun.load(Ordering::Acquire) {
            self.first.notified().await;
        }
    }

    /// When the connection, idle now, will have been idle for `limit`; `None` while busy.
    fn idle_until(&self, limit: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since.load(Ordering::Acquire));
        Some(self.born + since + limit)
    }
}

/// One request in flight (see [`Activity::begin`]).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        let elapsed = u64::try_from(activity.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.idle_since.store(elapsed, Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted in flight until it is sent or dropped.
#[derive(Debug)]
pub(crate) struct Tracked {
    body: Body,
    _request: InFlight,
}

impl Tracked {
    pub(crate) fn new(body: Body, request: InFlight) -> Self {
        Self {
            body,
            _request: request,
        }
    }
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body)
            .poll_frame(cx)
            .map(|frame| frame.map(|frame| frame.map_err(BodyError)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A response body's failure. A named type, not the boxed error itself: hyper's connection
/// bounds on a boxed trait object's lifetime cannot be proven inside a generic task.
#[derive(Debug)]
pub(crate) struct BodyError(Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// What ends a connection besides its client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Closed when no request has been in flight for this long.
    pub(crate) idle: Duration,
    /// Closed gracefully at this age.
    pub(crate) max_age: Duration,
    /// How long a gracefully closing connection may take to finish what is in flight.
    pub(crate) grace: Duration,
}

/// Drives `connection` to its end, closing it gracefully when idle, aged, draining or (with
/// `client_cas`) when the client CAs change; a graceful close that takes longer than allowed
/// is cut short.
///
/// Draining closes a connection gracefully (an idle HTTP/1.1 one at once, a busy one after its
/// answer, HTTP/2 with GOAWAY) only once a request has begun on it: before that, hyper would
/// drop it unread while it still detects the protocol, and a client whose request is already
/// on the way (one a load balancer sent just before the replica left) would see the
/// connection closed without an answer. Until then the read timeout bounds it, and its first
/// HTTP/1.1 answer carries `Connection: close`.
pub(crate) async fn drive<C: GracefulConnection>(
    connection: C,
    activity: &Activity,
    limits: Limits,
    mut draining: watch::Receiver<bool>,
    mut client_cas: Option<watch::Receiver<u64>>,
) {
    tokio::pin!(connection);
    let aged = tokio::time::sleep(limits.max_age);
    tokio::pin!(aged);
    let idle = tokio::time::sleep(limits.idle);
    tokio::pin!(idle);
    let ca_change = async {
        match &mut client_cas {
            Some(changes) => {
                if changes.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(ca_change);
    let drain = async {
        let _ = draining.wait_for(|draining| *draining).await;
        activity.first_request().await;
    };
    tokio::pin!(drain);
    let allowed = loop {
        tokio::select! {
            // In order, the connection first: it is what wakes the task on almost every poll
            // (and an unbiased select draws a random number each time).
            biased;
            _ = connection.as_mut() => return,
            () = &mut idle => match activity.idle_until(limits.idle) {
                Some(until) if until <= Instant::now() => break IDLE_CLOSE,
                // Idle for less long than that: look again when it would be long enough.
                Some(until) => idle.as_mut().reset(until),
                // Busy: look again one idle period later (the request may end meanwhile).
                None => idle.as_mut().reset(Instant::now() + limits.idle),
            },
            () = &mut aged => break limits.grace,
            () = &mut drain => break limits.grace,
            () = &mut ca_change => break limits.grace,
        }
    };
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(allowed, connection).await;
}
