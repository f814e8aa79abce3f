//! Whether a push sent now can be delivered: the forwarder's part of
//! `/-/ready`.
//!
//! Every remote_write exchange reports its outcome here ([`Readiness::record`]):
//! an answer that ends a request (2xx, or a 4xx other than 429: the backend
//! is there and deciding) means the backend works; 5xx, 429 and no answer
//! mean it fails. Ready means: the backend has answered once, and it has
//! not been failing for longer than the retry deadline (a push sent now
//! would still be retried until it comes back within its own deadline).
//!
//! [`probe`] sends the backend empty `WriteRequest`s (marked with the
//! [`PROBE_HEADER`], so they can be told from writes): at most a second
//! apart while it has never answered or is failing, so readiness returns
//! within a few seconds of the backend's return even when no push arrives;
//! and, while it is healthy, once a second without any exchange, so a
//! backend that dies while no push arrives is noticed as quickly as one
//! that dies under load. Under traffic the pushes speak for the backend and
//! no probe is sent.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;

use super::retry::{self, Backoff, Verdict};
use super::send::{self, Endpoint};

/// How long a probe may wait for its answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest pause between two probes of a failing backend, and the
/// longest a healthy backend goes without an exchange before it is probed.
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The header (value `readiness`) that marks a probe: an empty write is
/// valid remote_write, but a receiver's operator, or a test reading the
/// wire, can tell it is no push.
pub const PROBE_HEADER: &str = "pushrelay-probe";

/// The backend's health as the exchanges saw it.
pub struct Readiness {
    retry_deadline: Duration,
    state: Mutex<Health>,
}

#[derive(Clone, Copy)]
struct Health {
    /// The backend answered at least once.
    reached: bool,
    /// Since when every exchange failed (none since the last success).
    failing_since: Option<Instant>,
    /// When the last exchange ended, whatever its outcome.
    last_exchange: Option<Instant>,
}

impl Readiness {
    pub fn new(retry_deadline: Duration) -> Self {
        Self {
            retry_deadline,
            state: Mutex::new(Health {
                reached: false,
                failing_since: None,
                last_exchange: None,
            }),
        }
    }

    fn health(&self) -> Health {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes the outcome of one exchange: its status, `None` for no answer.
    pub fn record(&self, status: Option<StatusCode>) {
        let mut health = self.state.lock().unwrap_or_else(|p| p.into_inner());
        health.reached |= status.is_some();
        health.last_exchange = Some(Instant::now());
        match retry::verdict(status) {
            Verdict::Retry => {
                health.failing_since.get_or_insert_with(Instant::now);
            }
            Verdict::Done | Verdict::Refused => health.failing_since = None,
        }
    }

    /// Reached, and not failing for longer than the retry deadline.
    pub fn is_ready(&self) -> bool {
        let health = self.health();
        health.reached
            && health
                .failing_since
                .is_none_or(|since| since.elapsed() <= self.retry_deadline)
    }

    /// Whether the backend needs probing: never reached, or failing.
    fn in_doubt(&self) -> bool {
        let health = self.health();
        !health.reached || health.failing_since.is_some()
    }

    /// How long until a healthy backend has gone [`MAX_PROBE_INTERVAL`]
    /// without an exchange (zero once it has).
    fn until_idle(&self) -> Duration {
        let since = self.health().last_exchange.map(|at| at.elapsed());
        MAX_PROBE_INTERVAL.saturating_sub(since.unwrap_or(MAX_PROBE_INTERVAL))
    }
}

/// Probes the backend whenever it is in doubt, backing off up to
/// [`MAX_PROBE_INTERVAL`], and whenever a healthy one has been idle for
/// that long (see the module docs). Runs until aborted.
pub async fn probe(endpoint: Arc<Endpoint>, backoff: Backoff) {
    let mut attempt = 0;
    loop {
        let readiness = endpoint.readiness();
        let pause = if readiness.in_doubt() {
            send_probe(&endpoint).await;
            attempt = (attempt + 1).min(16);
            backoff
                .delay(attempt)
                .clamp(Duration::from_millis(100), MAX_PROBE_INTERVAL)
        } else {
            attempt = 0;
            match readiness.until_idle() {
                Duration::ZERO => {
                    send_probe(&endpoint).await;
                    MAX_PROBE_INTERVAL
                }
                wait => wait,
            }
        };
        tokio::time::sleep(pause).await;
    }
}

/// One empty `WriteRequest`, its outcome recorded like any exchange's.
async fn send_probe(endpoint: &Endpoint) {
    let empty = Bytes::from_static(&[0]); // snappy block of zero bytes
    // As the static tenant when there is one: a multi-tenant backend may
    // refuse a request without a tenant (any answer will do).
    let tenant = endpoint.tenancy().static_tenant();
    let answer = endpoint.probe(empty, tenant, PROBE_TIMEOUT).await;
    if let send::Answer::NoAnswer(error) = answer {
        tracing::info!(%error, "remote_write backend not reachable");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_answered_until_failing_past_the_deadline() {
        let readiness = Readiness::new(Duration::from_millis(50));
        assert!(!readiness.is_ready());
        readiness.record(None);
        assert!(!readiness.is_ready(), "never answered");
        readiness.record(Some(StatusCode::NO_CONTENT));
        assert!(readiness.is_ready());
        readiness.record(Some(StatusCode::SERVICE_UNAVAILABLE));
        readiness.record(None);
        assert!(readiness.is_ready(), "failing, within the deadline");
        std::thread::sleep(Duration::from_millis(60));
        assert!(!readiness.is_ready(), "failing past the deadline");
        readiness.record(Some(StatusCode::BAD_REQUEST));
        assert!(readiness.is_ready(), "a 4xx is a working backend refusing");
    }
}
