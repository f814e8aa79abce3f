//! What a client connection may hold, and for how long: the header read,
//! idle keep-alive and body read timeouts, the connection limit, and the
//! accept back-off when the limit or the process's descriptors run out.
//!
//! Each connection has an [`Activity`]: the connection's I/O
//! ([`WatchedIo`]) notes when bytes arrive, the service notes when a
//! request starts and ends ([`RequestGuard`]), and [`Activity::expired`]
//! resolves when the connection has waited too long:
//! - no request started within `read_header_timeout` of the connection's
//!   start, or of the first byte of a later request;
//! - no byte of a next request within `idle_timeout` of the last answer.
//!
//! After a burst of connections has closed, the memory they held is given
//! back to the system ([`release_memory_after_bursts`]), so RSS returns to
//! where it was.
//!
//! While a request is being handled no timeout runs, except its body's:
//! [`TimedBody`] fails a body not received within `read_timeout` of the
//! request's start (a 400 naming the setting; the connection then closes,
//! as its body was not read to the end).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::config::{GoDuration, WebConfig};

/// The per-connection limits of `web.*`.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub read_header_timeout: Duration,
    pub idle_timeout: Duration,
    pub read_timeout: Duration,
    pub max_connections: usize,
}

impl ConnectionLimits {
    pub fn new(web: &WebConfig) -> Self {
        Self {
            read_header_timeout: web.read_header_timeout.0,
            idle_timeout: web.idle_timeout.0,
            read_timeout: web.read_timeout.0,
            max_connections: web.max_connections.max(1),
        }
    }
}

/// Where a connection is between requests.
struct Phase {
    /// Requests being handled.
    in_flight: usize,
    /// No request has started yet on the connection.
    fresh: bool,
    /// When the connection started, or the last answer was given.
    idle_since: Instant,
    /// The first byte received since `idle_since`, if any.
    first_byte_at: Option<Instant>,
}

/// What one connection is doing, as its timeouts need to know.
pub struct Activity {
    phase: Mutex<Phase>,
    /// Mirrors `phase.first_byte_at.is_some()`, so reads check it without
    /// the lock.
    bytes_pending: AtomicBool,
    changed: Notify,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            phase: Mutex::new(Phase {
                in_flight: 0,
                fresh: true,
                idle_since: Instant::now(),
                first_byte_at: None,
            }),
            bytes_pending: AtomicBool::new(false),
            changed: Notify::new(),
        })
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes bytes received from the client.
    fn received(&self) {
        if self.bytes_pending.swap(true, Ordering::Relaxed) {
            return;
        }
        let mut phase = self.phase();
        if phase.first_byte_at.is_none() {
            phase.first_byte_at = Some(Instant::now());
        }
        drop(phase);
        self.changed.notify_waiters();
    }

    /// Notes a request's start; the guard notes its end when dropped.
    pub fn request_started(self: &Arc<Self>) -> RequestGuard {
        let mut phase = self.phase();
        phase.in_flight += 1;
        phase.fresh = false;
        drop(phase);
        self.changed.notify_waiters();
        RequestGuard(self.clone())
    }

    /// Whether the connection holds anything a shutdown must not cut: a
    /// request being handled or bytes of one not yet parsed.
    pub fn busy(&self) -> bool {
        let phase = self.phase();
        phase.in_flight > 0 || phase.first_byte_at.is_some()
    }

    /// Resolves once the client has taken longer than the limits allow
    /// (see the module docs); never while a request is being handled.
    pub async fn expired(&self, limits: &ConnectionLimits) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the phase is read, so no change is missed.
            changed.as_mut().enable();
            let deadline = {
                let phase = self.phase();
                if phase.in_flight > 0 {
                    None
                } else if phase.fresh {
                    Some(phase.idle_since + limits.read_header_timeout)
                } else if let Some(first_byte) = phase.first_byte_at {
                    Some(first_byte + limits.read_header_timeout)
                } else {
                    Some(phase.idle_since + limits.idle_timeout)
                }
            };
            match deadline {
                None => changed.await,
                Some(deadline) => tokio::select! {
                    () = tokio::time::sleep_until(deadline) => return,
                    () = changed => {}
                },
            }
        }
    }
}

/// Held while a request is handled; its drop starts the idle wait.
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let mut phase = self.0.phase();
        phase.in_flight -= 1;
        if phase.in_flight == 0 {
            phase.idle_since = Instant::now();
            phase.first_byte_at = None;
            self.0.bytes_pending.store(false, Ordering::Relaxed);
        }
        drop(phase);
        self.0.changed.notify_waiters();
    }
}

/// A connection's I/O that reports received bytes to its [`Activity`].
pub struct WatchedIo<I> {
    io: I,
    activity: Arc<Activity>,
}

impl<I> WatchedIo<I> {
    pub fn new(io: I, activity: Arc<Activity>) -> Self {
        Self { io, activity }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for WatchedIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.received();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WatchedIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A request body that fails once `read_timeout` has passed since the
/// request started.
pub struct TimedBody<B> {
    body: B,
    started: Instant,
    /// Armed when the body first has to be waited for: a body never read
    /// (a push shed before its body) costs no timer.
    deadline: Option<Pin<Box<Sleep>>>,
    read_timeout: Duration,
}

impl<B> TimedBody<B> {
    pub fn new(body: B, read_timeout: Duration) -> Self {
        Self {
            body,
            started: Instant::now(),
            deadline: None,
            read_timeout,
        }
    }
}

/// Why a [`TimedBody`] ended early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError<E> {
    #[error("the body was not received within web.read_timeout = {0}")]
    TimedOut(GoDuration),
    #[error("{0}")]
    Read(E),
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError<B::Error>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(BodyError::Read)));
        }
        let deadline = self.started + self.read_timeout;
        let sleep = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::TimedOut(GoDuration(
                self.read_timeout,
            ))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// How many connections must have closed since the most held at once
/// before freed memory is handed back.
const RELEASE_AFTER_CLOSED: usize = 64;

/// Watches the open connections (`max_connections` minus the free
/// `permits`) once a second; when at least [`RELEASE_AFTER_CLOSED`] have
/// closed since the peak, hands freed heap memory back to the system.
/// glibc's allocator keeps the buffers of closed connections in its
/// per-thread heaps otherwise, so RSS would stay at the burst's height.
pub async fn release_memory_after_bursts(permits: Arc<Semaphore>, max_connections: usize) {
    let mut peak = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let open = max_connections.saturating_sub(permits.available_permits());
        peak = peak.max(open);
        if peak - open >= RELEASE_AFTER_CLOSED {
            peak = open;
            let _ = tokio::task::spawn_blocking(release_free_memory).await;
        }
    }
}

/// Returns the allocator's free pages to the system.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // the crate's one FFI call; see the crate doc
fn release_free_memory() {
    // SAFETY: malloc_trim only walks glibc's own heaps under their locks;
    // it takes no pointer and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (musl's) give freed pages back by themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

/// Lets a repeated condition (accept failing, the connection limit
/// reached) be logged at most once a second.
pub struct OncePerSecond {
    last: Option<Instant>,
}

impl OncePerSecond {
    pub fn new() -> Self {
        Self { last: None }
    }

    /// True when nothing was let through in the last second.
    pub fn allow(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < Duration::from_secs(1))
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            read_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(30),
            max_connections: 1,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_new_connection_expires_after_the_header_timeout() {
        let activity = Activity::new();
        let started = Instant::now();
        activity.expired(&limits()).await;
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_expires_after_the_idle_timeout() {
        let activity = Activity::new();
        drop(activity.request_started());
        let idle = Instant::now();
        activity.expired(&limits()).await;
        assert_eq!(idle.elapsed(), Duration::from_secs(60));
        // A byte of the next request switches to the header timeout.
        drop(activity.request_started());
        tokio::time::advance(Duration::from_secs(5)).await;
        activity.received();
        let first_byte = Instant::now();
        activity.expired(&limits()).await;
        assert_eq!(first_byte.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_expires_while_a_request_is_handled() {
        let activity = Activity::new();
        let guard = activity.request_started();
        let short = limits();
        let waited = tokio::time::timeout(Duration::from_secs(3600), activity.expired(&short));
        assert!(waited.await.is_err());
        drop(guard);
        let idle = Instant::now();
        activity.expired(&limits()).await;
        assert_eq!(idle.elapsed(), Duration::from_secs(60));
    }

    /// A body that sends one byte and then nothing.
    struct Stalled {
        sent: bool,
    }

    impl Body for Stalled {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.sent {
                return Poll::Pending;
            }
            self.sent = true;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_not_received_within_the_read_timeout_fails() {
        let body = TimedBody::new(Stalled { sent: false }, Duration::from_secs(30));
        let started = Instant::now();
        let error = body.collect().await.unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert_eq!(
            error.to_string(),
            "the body was not received within web.read_timeout = 30s"
        );
    }
}
