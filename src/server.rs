//! The HTTP server: listener, routing table and graceful shutdown.
//!
//! Routes (P = the route prefix):
//! - `PUT|POST|DELETE P/metrics/job/...` and `P/pushgateway/metrics/job/...`:
//!   pushes ([`crate::push::handler`]);
//! - `GET P<telemetry path>`: pushrelay's own metrics;
//! - `GET P/-/healthy`, `GET P/-/ready`;
//! - in cache mode, every other cache route (`crate::cache::http`): the
//!   scrape (own metrics + store), JSON API, admin wipe, `/-/quit`, web page.
//!
//! Paths are percent-decoded once before routing, as the Pushgateway does,
//! so `%2F` in a grouping value is a path separator. As Go's `net/http`
//! router, a decoded path with `//`, `.` or `..` elements is redirected
//! (301, query kept) to its cleaned form, whatever the route; `PUT|POST|DELETE
//! .../metrics/job/` (empty job) is redirected (307) to `.../metrics/job`,
//! a 404 (`GET` there, and `.../metrics/job@base64/`, are 404 at once);
//! `OPTIONS` on a push route answers 200 with `Allow`.
//!
//! Clients are bounded ([`limits`]): a header read, idle keep-alive and body
//! read timeout per connection, and at most `web.max_connections` open at
//! once; at the limit, or when accept fails (out of descriptors), the held
//! connections keep being served while accepting backs off, logged at most
//! once a second.
//!
//! With a `--web.config.file` ([`crate::security::inbound`]) the listener
//! speaks TLS (HTTP/1.1 and h2 by ALPN; each connection's handshake runs
//! in its own task, bounded in time) and every request passes basic auth
//! before routing, the health endpoints too unless
//! `web.auth_exempt_health` is set.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

use crate::cache::http::CacheWeb;
use crate::config::Config;
use crate::http_response::{
    Body, empty, method_not_allowed, not_found, options, plain, redirect, text,
};
use crate::push::handler::{Ingest, PushFailure};
use crate::push::{PushOp, path};
use crate::security::inbound::WebSecurity;
use crate::sinks::Sinks;
use crate::telemetry::Telemetry;
use limits::{Activity, ConnectionLimits, OncePerSecond, TimedBody, WatchedIo};

mod limits;

/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connection that was sending a request when a shutdown began
/// may take to finish sending it.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(5);

/// How long a connection with nothing received yet is kept at shutdown:
/// long enough for bytes already on their way to be read.
const SILENT_CLOSE_GRACE: Duration = Duration::from_millis(50);

/// The longest pause between accept attempts after accept failed.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// At most this many connections waiting in the listen backlog are still
/// accepted at shutdown.
const BACKLOG_DRAIN_LIMIT: usize = 4096;

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a request handler needs; shared by all connections.
pub struct AppState {
    prefix: String,
    telemetry_path: String,
    sinks: Sinks,
    ingest: Ingest,
    telemetry: Telemetry,
    cache_web: Option<CacheWeb>,
    shutting_down: AtomicBool,
    web: Option<Arc<WebSecurity>>,
    auth_exempt_health: bool,
    limits: ConnectionLimits,
}

impl AppState {
    /// The sinks pushes go to (shutdown drains them).
    pub fn sinks(&self) -> &Sinks {
        &self.sinks
    }

    /// Builds the state for `config` with the given sinks.
    pub fn new(config: &Config, sinks: Sinks, telemetry: Telemetry) -> Self {
        let tenancy = sinks.forwarder.as_ref().map(|f| f.tenancy().clone());
        let cache_web = sinks
            .cache
            .clone()
            .map(|cache| CacheWeb::new(cache, config, telemetry.clone()));
        Self {
            cache_web,
            prefix: config.route_prefix(),
            telemetry_path: config.web.telemetry_path.clone(),
            sinks,
            ingest: Ingest::new(config.push.clone(), tenancy),
            telemetry,
            shutting_down: AtomicBool::new(false),
            web: None,
            auth_exempt_health: config.web.auth_exempt_health,
            limits: ConnectionLimits::new(&config.web),
        }
    }

    /// Adds the `--web.config.file` security: TLS on the listener, basic
    /// auth on requests.
    pub fn with_web_security(mut self, web: Arc<WebSecurity>) -> Self {
        self.web = Some(web);
        self
    }
}

/// Serves `listener` until `shutdown` resolves; then stops accepting, turns
/// readiness off and waits (bounded) for in-flight requests to finish.
///
/// Shutdown drops no push whose connection was established before it: the
/// listen backlog is accepted before the listener closes; a connection with
/// a request in progress finishes it; one that has sent part of a request
/// gets `FIRST_REQUEST_GRACE` to send the rest; connections that have
/// sent nothing (idle keep-alive ones, new ones) are closed at once. New
/// connections are refused.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) {
    // Every connection task holds a receiver: the drain ends when all are gone.
    let (stop, _) = watch::channel(());
    let builder = auto::Builder::new(TokioExecutor::new());
    let permits = Arc::new(Semaphore::new(state.limits.max_connections));
    let mut at_limit_log = OncePerSecond::new();
    let mut accept_error_log = OncePerSecond::new();
    let mut backoff = Duration::ZERO;
    let releaser = tokio::spawn(limits::release_memory_after_bursts(
        permits.clone(),
        state.limits.max_connections,
    ));
    tokio::pin!(shutdown);
    loop {
        // At the limit new connections wait in the backlog (the kernel
        // holds them, not pushrelay) until a held one ends.
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if at_limit_log.allow() {
                    tracing::warn!(
                        limit = state.limits.max_connections,
                        "connection limit reached; new connections wait to be accepted"
                    );
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    backoff = Duration::ZERO;
                    spawn_connection(stream, &state, &builder, stop.subscribe(), Some(permit));
                }
                Err(error) => {
                    // Typically EMFILE: the held connections keep being
                    // served while accepting backs off.
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                    if accept_error_log.allow() {
                        tracing::warn!(%error, retry_in = ?backoff, "accept failed");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        }
    }
    // Closing the listener resets what waits in its backlog: pushers whose
    // connection was established before the signal. Accept those first
    // (accept(2) until it would block, not tokio's cached readiness).
    match listener.into_std() {
        Ok(backlog) => {
            for _ in 0..BACKLOG_DRAIN_LIMIT {
                let Ok((stream, _)) = backlog.accept() else {
                    break;
                };
                let stream = stream
                    .set_nonblocking(true)
                    .and_then(|()| TcpStream::from_std(stream));
                // Beyond the connection limit: these are few (bounded) and
                // only need their pending request answered.
                match stream {
                    Ok(stream) => {
                        spawn_connection(stream, &state, &builder, stop.subscribe(), None)
                    }
                    Err(error) => tracing::debug!(%error, "a queued connection was lost"),
                }
            }
        }
        Err(error) => tracing::warn!(%error, "could not accept the queued connections"),
    }
    releaser.abort();
    state.shutting_down.store(true, Ordering::SeqCst);
    tracing::info!("shutting down: draining in-flight requests");
    let _ = stop.send(());
    if tokio::time::timeout(DRAIN_TIMEOUT, stop.closed())
        .await
        .is_err()
    {
        tracing::warn!("drain timeout reached; closing remaining connections");
    }
}

/// Serves one accepted connection on its own task (TLS first when
/// configured); `stop` announces the shutdown; `permit` is its place
/// within the connection limit, held until it ends.
fn spawn_connection(
    stream: TcpStream,
    state: &Arc<AppState>,
    builder: &auto::Builder<TokioExecutor>,
    stop: watch::Receiver<()>,
    permit: Option<OwnedSemaphorePermit>,
) {
    let _ = stream.set_nodelay(true);
    let acceptor = state.web.as_ref().and_then(|web| web.tls_acceptor());
    let builder = builder.clone();
    let state = state.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let result = match acceptor {
            None => serve_connection(&builder, stream, state, stop).await,
            Some(acceptor) => {
                let Some(tls) = handshake(acceptor, stream).await else {
                    return;
                };
                serve_connection(&builder, tls, state, stop).await
            }
        };
        if let Err(error) = result {
            tracing::debug!(error = %error, "connection ended with an error");
        }
    });
}

/// Serves HTTP on `io` until the connection ends or outstays its
/// timeouts; once `stop` changes, shuts it down gracefully as [`serve`]
/// describes.
async fn serve_connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    state: Arc<AppState>,
    mut stop: watch::Receiver<()>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = state.limits;
    let activity = Activity::new();
    // Holds a permit once any request has started on the connection.
    let request_started = Arc::new(Notify::new());
    let started = request_started.clone();
    let requests = activity.clone();
    let service = service_fn(move |request| {
        started.notify_one();
        let guard = requests.request_started();
        let state = state.clone();
        async move {
            let response = handle(&state, request).await;
            drop(guard);
            Ok::<_, Infallible>(response)
        }
    });
    let io = WatchedIo::new(io, activity.clone());
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => return result,
        _ = stop.changed() => {}
        // No request is being handled; dropped, as a graceful shutdown
        // would wait for the rest of a half-sent request head.
        () = activity.expired(&limits) => return Ok(()),
    }
    if !activity.busy() {
        tokio::select! {
            result = connection.as_mut() => return result,
            () = tokio::time::sleep(SILENT_CLOSE_GRACE) => {}
        }
        // Nothing received: a graceful shutdown closes it at once, and
        // lets an answer still being written finish.
        if !activity.busy() {
            connection.as_mut().graceful_shutdown();
            return connection.await;
        }
    }
    // A graceful shutdown closes a connection that has not parsed a request
    // yet, even when the request is already in its socket.
    tokio::select! {
        result = connection.as_mut() => return result,
        () = request_started.notified() => {}
        () = tokio::time::sleep(FIRST_REQUEST_GRACE) => {}
    }
    connection.as_mut().graceful_shutdown();
    connection.await
}

/// Runs the TLS handshake of one connection, bounded in time; a failed one
/// is logged (at debug: scanners and health probes cause many) and dropped.
async fn handshake(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let peer = stream.peer_addr().ok();
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(error)) => {
            tracing::debug!(?peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(?peer, "TLS handshake timed out");
            None
        }
    }
}

/// Authentication, then routing, then the web config's response headers.
async fn handle(state: &AppState, request: Request<Incoming>) -> Response<Body> {
    let Some(web) = &state.web else {
        return route(state, request).await;
    };
    let exempt = state.auth_exempt_health && is_health_path(state, request.uri().path());
    let mut response = if exempt || web.authorize(request.headers()).await {
        route(state, request).await
    } else {
        unauthorized()
    };
    let settings = web.settings();
    for (name, value) in &settings.response_headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

/// Whether `raw_path` is exactly `P/-/healthy` or `P/-/ready`; compared
/// before percent-decoding, so an encoded variant needs auth.
fn is_health_path(state: &AppState, raw_path: &str) -> bool {
    raw_path
        .strip_prefix(state.prefix.as_str())
        .is_some_and(|rest| rest == "/-/healthy" || rest == "/-/ready")
}

/// 401 as exporter-toolkit answers it.
fn unauthorized() -> Response<Body> {
    let mut response = plain(StatusCode::UNAUTHORIZED, "Unauthorized");
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
    response
}

async fn route(state: &AppState, request: Request<Incoming>) -> Response<Body> {
    let decoded = match path::decode_path(request.uri().path()) {
        Ok(decoded) => decoded,
        Err(rejection) => return plain(rejection.status, &rejection.message),
    };
    let method = request.method();
    if decoded.starts_with(b"/")
        && let Some(location) = path::clean_redirect(&decoded)
    {
        let query = request.uri().query();
        return redirect(StatusCode::MOVED_PERMANENTLY, &location, query, method);
    }
    let Some(rest) = decoded.strip_prefix(state.prefix.as_bytes()) else {
        return not_found();
    };
    let alias = rest
        .strip_prefix(b"/pushgateway".as_slice())
        .filter(|r| r.starts_with(b"/metrics/"));
    let rest = alias.unwrap_or(rest);
    if let Some(grouping_path) = rest.strip_prefix(b"/metrics/".as_slice()) {
        match grouping_path {
            // The Pushgateway's router answers an empty job this way: a
            // trailing-slash redirect for the write methods only (to a path
            // that is itself a 404), a 404 for an empty base64 job.
            b"job/" if [Method::PUT, Method::POST, Method::DELETE].contains(method) => {
                let alias = if alias.is_some() { "/pushgateway" } else { "" };
                let location = format!("{}{alias}/metrics/job", state.prefix);
                let query = request.uri().query();
                return redirect(StatusCode::TEMPORARY_REDIRECT, &location, query, method);
            }
            b"job/" | b"job@base64/" => return not_found(),
            _ if grouping_path.starts_with(b"job/")
                || grouping_path.starts_with(b"job@base64/") =>
            {
                return push(state, request, grouping_path.to_vec()).await;
            }
            _ => {}
        }
    }
    if let Some(web) = &state.cache_web
        && let Some(response) = web
            .route(method, rest, request.uri().query(), request.headers())
            .await
    {
        return response;
    }
    let saturated = state.sinks.cache.as_ref().is_some_and(|c| c.saturated());
    match rest {
        b"/-/healthy" | b"/-/ready" if method == Method::GET && saturated => {
            plain(StatusCode::INTERNAL_SERVER_ERROR, "write queue is full")
        }
        b"/-/healthy" if method == Method::GET => text(StatusCode::OK, "OK"),
        b"/-/ready" if method == Method::GET => {
            if !state.shutting_down.load(Ordering::SeqCst) && state.sinks.is_ready() {
                text(StatusCode::OK, "OK")
            } else {
                plain(StatusCode::SERVICE_UNAVAILABLE, "not ready")
            }
        }
        b"/-/healthy" | b"/-/ready" => method_not_allowed("GET, OPTIONS"),
        path if path == state.telemetry_path.as_bytes() => {
            if method == Method::GET {
                let mut response = Response::new(Body::from(state.telemetry.render()));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            } else {
                method_not_allowed("GET, OPTIONS")
            }
        }
        _ => not_found(),
    }
}

async fn push(
    state: &AppState,
    request: Request<Incoming>,
    grouping_path: Vec<u8>,
) -> Response<Body> {
    let op = match *request.method() {
        Method::PUT => PushOp::Replace,
        Method::POST => PushOp::Merge,
        Method::DELETE => PushOp::Delete,
        Method::OPTIONS => return options(PUSH_METHODS),
        _ => return method_not_allowed(PUSH_METHODS),
    };
    let (parts, body) = request.into_parts();
    let mut body = TimedBody::new(body, state.limits.read_timeout);
    let response = match state
        .ingest
        .handle(&state.sinks, op, &grouping_path, &parts.headers, &mut body)
        .await
    {
        Ok(status) => empty(status),
        Err(failure) => failure_response(failure),
    };
    if !body.is_end_stream() {
        skip_unread(body, &parts.headers).await;
    }
    response
}

/// The longest body left unread (refused before it was read: shed with a
/// 429, a missing tenant) that is read and thrown away so its connection
/// can serve the next request: reading it costs little next to opening a
/// new connection, and closing with unread bytes in the socket would reset
/// the connection, which can lose the answer on its way to the client.
const SKIP_UNREAD_MAX_BYTES: u64 = 256 * 1024;

/// Deals with a body the answer did not need: one of known length up to
/// [`SKIP_UNREAD_MAX_BYTES`] is read and dropped (bounded by the body's
/// read timeout), so the connection stays usable; any other (longer,
/// chunked, or failing) is dropped unread, and hyper then closes the
/// connection after the answer rather than keep it alive behind a body it
/// could not drain cheaply.
async fn skip_unread<B: http_body::Body + Unpin>(mut body: B, headers: &http::HeaderMap) {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_none_or(|length| length > SKIP_UNREAD_MAX_BYTES) {
        return;
    }
    while let Some(Ok(_)) = body.frame().await {}
}

fn failure_response(failure: PushFailure) -> Response<Body> {
    let mut response = plain(failure.status, &failure.message);
    if let Some(after) = failure.retry_after {
        let seconds = after.as_secs_f64().ceil().max(1.0) as u64;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The `Allow` header of the push routes.
const PUSH_METHODS: &str = "DELETE, OPTIONS, POST, PUT";
