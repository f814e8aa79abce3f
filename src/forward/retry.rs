//! When to try a remote_write request again, and how long to wait.
//!
//! Contract: 2xx is done; 5xx, 429 and answers that never came (connection
//! refused or reset, timeout) are retried with exponential backoff and
//! jitter, since the receiver may take the same request later; every other
//! 4xx is final, since it would refuse the same request again.
//! A `Retry-After` header (delay-seconds or HTTP-date) replaces the computed
//! backoff for the next attempt.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;

/// What to do after one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Done,
    Retry,
    Refused,
}

/// Classifies an HTTP status; `None` (no answer) is retryable.
pub fn verdict(status: Option<StatusCode>) -> Verdict {
    match status {
        None => Verdict::Retry,
        Some(s) if s.is_success() => Verdict::Done,
        Some(s) if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => Verdict::Retry,
        // 1xx/3xx are not expected from a remote_write receiver; treat them
        // like the 4xx they stand in for (the request was not stored).
        Some(_) => Verdict::Refused,
    }
}

/// Exponential backoff with jitter between `min` and `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay before retry number `attempt` (0 = first retry): `min·2^attempt`
    /// capped at `max`, then drawn uniformly from its upper half so that
    /// shards retrying together spread out.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .min
            .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .min(self.max);
        let half = base / 2;
        half + half.mul_f64(random_fraction())
    }
}

/// A uniformly distributed number in [0, 1), from the std hasher's random
/// keys (no rand crate needed for jitter).
fn random_fraction() -> f64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Parses a `Retry-After` value: delay-seconds or an IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`) relative to `now`. A date in the past
/// means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn parse_http_date(value: &str) -> Option<SystemTime> {
    let mut parts = value.split_ascii_whitespace();
    let _weekday = parts.next()?.strip_suffix(',')?;
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (clock.next()??, clock.next()??, clock.next()??);
    if parts.next()? != "GMT" || parts.next().is_some() {
        return None;
    }
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + s;
    Some(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_is_done_5xx_429_and_no_answer_are_retried_other_4xx_are_final() {
        assert_eq!(verdict(Some(StatusCode::OK)), Verdict::Done);
        assert_eq!(verdict(Some(StatusCode::NO_CONTENT)), Verdict::Done);
        for code in [500, 502, 503, 504, 429] {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(verdict(Some(status)), Verdict::Retry, "{code}");
        }
        for code in [400, 401, 404, 413, 415] {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(verdict(Some(status)), Verdict::Refused, "{code}");
        }
        assert_eq!(verdict(None), Verdict::Retry);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let backoff = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for attempt in 0..40 {
            let base = Duration::from_millis(100 << attempt.min(4)).min(Duration::from_secs(1));
            let delay = backoff.delay(attempt);
            assert!(delay >= base / 2 && delay <= base, "{attempt}: {delay:?}");
        }
        let draws: std::collections::HashSet<_> = (0..20).map(|_| backoff.delay(3)).collect();
        assert!(draws.len() > 1, "no jitter");
    }

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // 1994-11-06 08:49:37
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("Sun, 06 Foo 1994 08:49:47 GMT", now),
            None
        );
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(UNIX_EPOCH)
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(951_825_600))
        );
    }
}
