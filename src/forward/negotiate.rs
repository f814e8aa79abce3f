//! Which remote_write protocol to speak to the endpoint, and what its
//! answers taught.
//!
//! Rule (`remote_write.protocol = auto`): send 2.0 first. An endpoint that
//! answers a 2.0 request with 415, or with a 2xx that carries none of the
//! `X-Prometheus-Remote-Write-*-Written` headers to a non-empty request (a
//! 1.0-only receiver decodes a 2.0 body as an empty 1.0 request and stores
//! nothing), gets the same data again as 1.0 at once and 1.0 from then on,
//! logged once at info. After [`REPROBE_AFTER`] the next request tries 2.0
//! again (and a restart forgets the choice), so an upgraded backend is
//! found. `1.0` and `2.0` fix the protocol: a fixed 2.0 never falls back.
//!
//! The choice is shared by every shard of the endpoint; a shard that sent
//! 2.0 while another learnt the answer falls back on its own answer.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Protocol as Setting;
use crate::telemetry;

/// How long an endpoint that refused 2.0 is spoken to in 1.0 before 2.0 is
/// tried again.
pub const REPROBE_AFTER: Duration = Duration::from_secs(30 * 60);

/// The protocol of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    V1,
    V2,
}

/// The per-endpoint protocol choice.
#[derive(Debug)]
pub struct Negotiation {
    setting: Setting,
    /// When the endpoint last refused 2.0 (auto only).
    fell_back_at: Mutex<Option<Instant>>,
}

impl Negotiation {
    pub fn new(setting: Setting) -> Self {
        Self {
            setting,
            fell_back_at: Mutex::new(None),
        }
    }

    /// The protocol for the next request, as of `now`.
    pub fn protocol(&self, now: Instant) -> Protocol {
        match self.setting {
            Setting::V1 => Protocol::V1,
            Setting::V2 => Protocol::V2,
            Setting::Auto => match *self.lock() {
                Some(at) if now.saturating_duration_since(at) < REPROBE_AFTER => Protocol::V1,
                _ => Protocol::V2,
            },
        }
    }

    /// Whether an endpoint refusing 2.0 gets the data again as 1.0.
    pub fn may_fall_back(&self) -> bool {
        self.setting == Setting::Auto
    }

    /// The endpoint refused a 2.0 request at `now` (`why` says how): 1.0
    /// until [`REPROBE_AFTER`]. Logged at info when the endpoint was on 2.0.
    pub fn refused_v2(&self, now: Instant, why: &str) {
        let previous = self.lock().replace(now);
        if previous.is_none_or(|at| now.saturating_duration_since(at) >= REPROBE_AFTER) {
            metrics::counter!(telemetry::REMOTE_WRITE_FALLBACKS).increment(1);
            tracing::info!(
                answer = why,
                reprobe_after = ?REPROBE_AFTER,
                "remote_write backend does not take Remote-Write 2.0; sending 1.0"
            );
        }
    }

    /// The endpoint stored a 2.0 request: it stays on 2.0.
    pub fn accepted_v2(&self) {
        if self.lock().take().is_some() {
            tracing::info!("remote_write backend takes Remote-Write 2.0 again; sending 2.0");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // The guarded value is a plain timestamp: a panic elsewhere cannot
        // leave it half-written.
        self.fell_back_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_starts_on_2_0_falls_back_and_reprobes_after_a_while() {
        let negotiation = Negotiation::new(Setting::Auto);
        let start = Instant::now();
        assert_eq!(negotiation.protocol(start), Protocol::V2);
        assert!(negotiation.may_fall_back());
        negotiation.refused_v2(start, "415");
        assert_eq!(negotiation.protocol(start), Protocol::V1);
        let later = start + REPROBE_AFTER - Duration::from_secs(1);
        assert_eq!(negotiation.protocol(later), Protocol::V1);
        let reprobe = start + REPROBE_AFTER;
        assert_eq!(negotiation.protocol(reprobe), Protocol::V2);
        negotiation.accepted_v2();
        assert_eq!(negotiation.protocol(start), Protocol::V2);
    }

    #[test]
    fn fixed_protocols_never_change() {
        let v1 = Negotiation::new(Setting::V1);
        let v2 = Negotiation::new(Setting::V2);
        let now = Instant::now();
        v2.refused_v2(now, "415");
        assert_eq!(v1.protocol(now), Protocol::V1);
        assert!(!v2.may_fall_back());
        assert_eq!(v2.protocol(now), Protocol::V2);
    }
}
