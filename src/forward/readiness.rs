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
//! While the backend has never answered or is failing, [`probe`] sends it
//! empty `WriteRequest`s at most a second apart, so readiness returns
//! within a few seconds of the backend's return even when no push arrives.
//! A healthy backend is not probed: the pushes speak for it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;

use super::negotiate::Protocol;
use super::retry::{self, Backoff, Verdict};
use super::send::{self, Endpoint};

/// How long a probe may wait for its answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest pause between two probes of a failing backend.
const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(1);

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
}

impl Readiness {
    pub fn new(retry_deadline: Duration) -> Self {
        Self {
            retry_deadline,
            state: Mutex::new(Health {
                reached: false,
                failing_since: None,
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
}

/// Sends an empty `WriteRequest` whenever the backend is in doubt (see the
/// module docs), backing off up to [`MAX_PROBE_INTERVAL`]; checks the
/// doubt as often when the backend is healthy. Runs until aborted.
pub async fn probe(endpoint: Arc<Endpoint>, backoff: Backoff) {
    let empty = Bytes::from_static(&[0]); // snappy block of zero bytes
    let mut attempt = 0;
    loop {
        if endpoint.readiness().in_doubt() {
            // As the static tenant when there is one: a multi-tenant backend
            // may refuse a request without a tenant (any answer will do).
            let tenant = endpoint.tenancy().static_tenant();
            let answer = endpoint
                .post(empty.clone(), Protocol::V1, tenant, Some(PROBE_TIMEOUT))
                .await;
            if let send::Answer::NoAnswer(error) = answer {
                tracing::info!(%error, "remote_write backend not reachable");
            }
            attempt = (attempt + 1).min(16);
        } else {
            attempt = 0;
        }
        let pause = backoff
            .delay(attempt)
            .clamp(Duration::from_millis(100), MAX_PROBE_INTERVAL);
        tokio::time::sleep(pause).await;
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
