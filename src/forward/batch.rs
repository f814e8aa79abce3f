//! Delivery of a batch of prepared pushes: packing into requests, sending
//! with retries, and isolating a push the backend refuses.
//!
//! Contract:
//! - each push arrives as one or more [`Chunk`]s (`WriteRequest`
//!   fragments, each within the request limits, whose encoded size is
//!   known); chunks are packed in order into requests of at most
//!   `max_samples` samples and `max_bytes` bytes, and requests are sent one
//!   after the other, so samples of one series keep their order;
//! - a chunk's run of the push's own series is encoded from the push's
//!   [`SharedPush`] only when its request is built, so a large push is held
//!   once (converted), not also as encoded requests: a delivery holds one
//!   request's bytes at a time;
//! - 5xx, 429 and missing answers are retried with backoff until the
//!   earliest deadline of the pushes in the request; when the next backoff
//!   would pass the deadline, the last attempt is made at the deadline
//!   (so an outage shorter than the deadline is survived), with the full
//!   request timeout; then those pushes fail as unavailable. A
//!   `Retry-After` reaching past the deadline ends the retries at once;
//! - a refused (4xx) request carrying several pushes is re-sent push by
//!   push, so only the push the backend refuses fails;
//! - the answer for each push is `Ok` only when every one of its chunks was
//!   accepted;
//! - every request of a delivery is sent as its one tenant: the caller
//!   hands over the pushes of one tenant at a time, so a request never
//!   mixes tenants;
//! - each request is encoded in the endpoint's protocol (see `negotiate`):
//!   the chunks' 1.0 bytes as they are, or 2.0 by `wire_v2` from the same
//!   bytes and the chunks' extras. A 2.0 request the endpoint refuses as a
//!   1.0-only receiver (415, or 2xx without Written headers) is sent again
//!   as 1.0 at once, under the same deadline; nothing of it was stored, so
//!   nothing is written twice;
//! - a 2.0 answer whose Written headers report less than was sent is data
//!   lost: counted, logged with the backend's numbers, and every push of
//!   the request fails as refused (not re-sent: the backend stored part of
//!   it, and a repeat would write that part twice).

use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::time::sleep;

use super::convert::SeriesValue;
use super::negotiate::Protocol;
use super::retry::{self, Backoff, Verdict};
use super::send::{self, Answer, Endpoint};
use super::series_memory::SharedPush;
use super::wire;
use super::wire_v2::{self, Counts, Extras};
use crate::push::SinkError;
use crate::telemetry;

/// A `WriteRequest` fragment: whole `timeseries`/`metadata` entries, in
/// order, some encoded already, some to be encoded from the push.
#[derive(Debug, Default)]
pub struct Chunk {
    pub pieces: Vec<Piece>,
    /// The bytes it encodes to.
    pub len: usize,
    /// Its series (each carries one sample or histogram).
    pub samples: usize,
    /// What only 2.0 carries, by index of the series in the chunk, ascending.
    pub extras: Vec<(usize, Extras)>,
}

/// A run of a chunk's entries.
#[derive(Debug)]
pub enum Piece {
    /// Entries encoded when the push was prepared (stale markers, the
    /// group's series, metadata).
    Encoded(Vec<u8>),
    /// Series of the push ([`SharedPush`]), by index, each stamped with its
    /// pushed timestamp or else `timestamp_ms`.
    Series {
        series: std::ops::Range<usize>,
        timestamp_ms: i64,
    },
}

impl Chunk {
    /// Appends the chunk's encoded entries to `out`, reading its series from
    /// `source` (the push it was prepared from).
    pub fn encode_into(&self, out: &mut Vec<u8>, source: &SharedPush) {
        for piece in &self.pieces {
            match piece {
                Piece::Encoded(bytes) => out.extend_from_slice(bytes),
                Piece::Series {
                    series,
                    timestamp_ms,
                } => {
                    for index in series.clone() {
                        let series = &source.series()[index];
                        let labels = source.series_labels(series);
                        let at = source.timestamp(index).unwrap_or(*timestamp_ms);
                        match series.value() {
                            SeriesValue::Float(v) => wire::put_float_series(out, labels, v, at),
                            SeriesValue::Histogram(h) => {
                                wire::put_histogram_series(out, labels, source.histogram(h), at)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The size limits of one request.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_samples: usize,
    pub max_bytes: usize,
}

/// One push of a batch, as the delivery sees it.
pub struct Parcel<'a> {
    pub chunks: &'a [Chunk],
    /// The push the chunks' series are read from.
    pub source: &'a SharedPush,
    pub deadline: Instant,
}

/// Sends a batch of one tenant's pushes; returns one outcome per parcel, in
/// order.
pub struct Delivery<'a> {
    pub endpoint: &'a Endpoint,
    /// The tenant every request is sent as (`None`: no tenant header).
    pub tenant: Option<&'a str>,
    pub backoff: Backoff,
    pub limits: Limits,
}

/// Bodies from this size on are compressed off the async worker threads.
const BLOCKING_COMPRESS_BYTES: usize = 256 * 1024;

/// Snappy-compresses a request body; large ones on the blocking pool so a
/// multi-megabyte request does not stall the runtime thread.
async fn compress(raw: Vec<u8>) -> Result<bytes::Bytes, String> {
    if raw.len() < BLOCKING_COMPRESS_BYTES {
        return send::compress(&raw);
    }
    tokio::task::spawn_blocking(move || send::compress(&raw))
        .await
        .map_err(|e| format!("compression task failed: {e}"))?
}

/// A request's content: (parcel, chunk) pairs.
type Parts = Vec<(usize, usize)>;

/// The answer a request ended with: a 2xx, or a 415 to a 2.0 request that
/// may fall back.
#[derive(Clone, Copy)]
struct Answered {
    status: StatusCode,
    written: Option<Counts>,
}

/// Why the pushes of a request were not (all) stored.
enum Failure {
    /// The backend stored none of it.
    Unstored(SinkError),
    /// A 2.0 backend stored part of it: it must not be sent again.
    PartlyWritten(SinkError),
}

impl Failure {
    fn into_error(self) -> SinkError {
        match self {
            Failure::Unstored(error) | Failure::PartlyWritten(error) => error,
        }
    }
}

impl Delivery<'_> {
    pub async fn deliver(&self, parcels: &[Parcel<'_>]) -> Vec<Result<(), SinkError>> {
        let mut outcomes: Vec<Result<(), SinkError>> = vec![Ok(()); parcels.len()];
        for request in self.pack(parcels) {
            // A push that failed in an earlier request already has its
            // answer; the rest of its chunks are not sent.
            let live: Parts = request
                .into_iter()
                .filter(|(p, _)| outcomes[*p].is_ok())
                .collect();
            let mut owners: Vec<usize> = live.iter().map(|(p, _)| *p).collect();
            owners.dedup();
            let Some(deadline) = owners.iter().map(|&p| parcels[p].deadline).min() else {
                continue;
            };
            match self.send(parcels, &live, deadline).await {
                Ok(()) => {}
                // A 4xx refuses the whole request, but the cause is usually
                // one push (a bad sample, an out-of-order series) that
                // shares the request with the others only by timing.
                // Re-sending each push's chunks on its own finds the one the
                // backend refuses and lets the others succeed. An
                // unavailable backend is not retried per push: it is the
                // same backend for all of them.
                Err(Failure::Unstored(SinkError::Rejected(_))) if owners.len() > 1 => {
                    for owner in owners {
                        let own: Parts =
                            live.iter().copied().filter(|(p, _)| *p == owner).collect();
                        outcomes[owner] = self
                            .send(parcels, &own, parcels[owner].deadline)
                            .await
                            .map_err(Failure::into_error);
                    }
                }
                Err(failure) => {
                    let failure = failure.into_error();
                    for owner in owners {
                        outcomes[owner] = Err(failure.clone());
                    }
                }
            }
        }
        outcomes
    }

    /// Groups chunks, in order, into requests within the limits (a chunk
    /// alone may exceed them only if it was built that way).
    fn pack(&self, parcels: &[Parcel<'_>]) -> Vec<Parts> {
        let mut requests = Vec::new();
        let mut current: Parts = Vec::new();
        let (mut samples, mut bytes) = (0, 0);
        for (p, parcel) in parcels.iter().enumerate() {
            for (c, chunk) in parcel.chunks.iter().enumerate() {
                let fits = samples + chunk.samples <= self.limits.max_samples
                    && bytes + chunk.len <= self.limits.max_bytes;
                if !fits && !current.is_empty() {
                    requests.push(std::mem::take(&mut current));
                    (samples, bytes) = (0, 0);
                }
                current.push((p, c));
                samples += chunk.samples;
                bytes += chunk.len;
            }
        }
        if !current.is_empty() {
            requests.push(current);
        }
        requests
    }

    /// Sends the given chunks as one request in the endpoint's protocol,
    /// retrying until `deadline`, falling back to 1.0 as the module docs say.
    async fn send(
        &self,
        parcels: &[Parcel<'_>],
        parts: &[(usize, usize)],
        deadline: Instant,
    ) -> Result<(), Failure> {
        let len = parts.iter().map(|&(p, c)| parcels[p].chunks[c].len).sum();
        let mut raw = Vec::with_capacity(len);
        for &(p, c) in parts {
            parcels[p].chunks[c].encode_into(&mut raw, parcels[p].source);
        }
        debug_assert_eq!(raw.len(), len, "a chunk's size was mis-counted");
        let negotiation = self.endpoint.negotiation();
        if negotiation.protocol(Instant::now()) == Protocol::V1 {
            return self
                .post_until(raw, Protocol::V1, deadline)
                .await
                .map(|_| ());
        }
        let (v2, sent) = wire_v2::encode(&raw, request_extras(parcels, parts));
        let answered = self.post_until(v2, Protocol::V2, deadline).await?;
        let refusal = match answered {
            Answered { status, .. } if status == StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                Some("415 Unsupported Media Type")
            }
            Answered { written: None, .. } if !sent.is_empty() => {
                Some("2xx without X-Prometheus-Remote-Write-*-Written headers")
            }
            _ => None,
        };
        match refusal {
            Some(why) if negotiation.may_fall_back() => {
                negotiation.refused_v2(Instant::now(), why);
                // Nothing of the 2.0 request was stored: the same data as
                // 1.0, at once.
                self.post_until(raw, Protocol::V1, deadline)
                    .await
                    .map(|_| ())
            }
            Some(why) => Err(Failure::Unstored(SinkError::Rejected(format!(
                "remote_write backend does not take Remote-Write 2.0 (answered {why}); \
                 set remote_write.protocol to auto or 1.0"
            )))),
            None => {
                negotiation.accepted_v2();
                let written = answered.written.unwrap_or_default();
                if written.covers(&sent) {
                    Ok(())
                } else {
                    Err(Failure::PartlyWritten(partly_written(&sent, &written)))
                }
            }
        }
    }

    /// Compresses `raw` and POSTs it as `protocol`, retrying until
    /// `deadline`; the answer is a 2xx, or a 415 to a 2.0 request that may
    /// fall back.
    async fn post_until(
        &self,
        raw: Vec<u8>,
        protocol: Protocol,
        deadline: Instant,
    ) -> Result<Answered, Failure> {
        let body = compress(raw)
            .await
            .map_err(|message| SinkError::Unavailable {
                message,
                retry_after: self.backoff.max,
            })
            .map_err(Failure::Unstored)?;
        let may_fall_back = protocol == Protocol::V2 && self.endpoint.negotiation().may_fall_back();
        let mut attempt = 0u32;
        let mut last = false;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            // The first attempt always gets the full request timeout: a push
            // that queued past its deadline is still tried once. So does the
            // last one, made at the deadline.
            let timeout = (attempt > 0 && !last).then_some(remaining);
            let answer = self
                .endpoint
                .post(body.clone(), protocol, self.tenant, timeout)
                .await;
            let (problem, retry_after) = match (&answer, retry::verdict(answer.status())) {
                (
                    Answer::Status {
                        status, written, ..
                    },
                    verdict,
                ) if verdict == Verdict::Done
                    || (may_fall_back && *status == StatusCode::UNSUPPORTED_MEDIA_TYPE) =>
                {
                    return Ok(Answered {
                        status: *status,
                        written: *written,
                    });
                }
                (Answer::Status { status, body, .. }, Verdict::Refused) => {
                    tracing::warn!(status = %status, body = %body, "remote_write backend refused a request");
                    return Err(Failure::Unstored(SinkError::Rejected(format!(
                        "remote_write backend refused the push: {status}: {body}"
                    ))));
                }
                (
                    Answer::Status {
                        status,
                        retry_after,
                        body,
                        ..
                    },
                    _,
                ) => {
                    tracing::warn!(status = %status, body = %body, attempt, "remote_write request failed; retrying");
                    (format!("{status}: {body}"), *retry_after)
                }
                (Answer::NoAnswer(error), _) => {
                    tracing::warn!(%error, attempt, "remote_write request got no answer; retrying");
                    (error.clone(), None)
                }
            };
            let mut delay = retry_after.unwrap_or_else(|| self.backoff.delay(attempt));
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            // Only a computed backoff is cut short: a `Retry-After` past the
            // deadline is the backend asking not to be tried before then.
            let cut_to_deadline = retry_after.is_none() && delay >= remaining;
            if cut_to_deadline && !last && !remaining.is_zero() {
                delay = remaining;
                last = true;
            } else if delay >= remaining {
                return Err(Failure::Unstored(SinkError::Unavailable {
                    message: format!(
                        "remote_write backend did not accept the push within the retry deadline \
                         ({attempt} attempts); last error: {problem}"
                    ),
                    retry_after: retry_after
                        .unwrap_or(self.backoff.max)
                        .max(Duration::from_secs(1)),
                }));
            }
            sleep(delay).await;
        }
    }
}

/// The extras of a request's series, indexed by position in the request.
fn request_extras<'p>(
    parcels: &'p [Parcel<'_>],
    parts: &[(usize, usize)],
) -> Vec<(usize, &'p Extras)> {
    let mut extras = Vec::new();
    let mut offset = 0;
    for &(p, c) in parts {
        let chunk = &parcels[p].chunks[c];
        extras.extend(chunk.extras.iter().map(|(i, e)| (offset + i, e)));
        offset += chunk.samples;
    }
    extras
}

/// The failure of a request a 2.0 backend stored only part of, counted and
/// logged with the backend's numbers.
fn partly_written(sent: &Counts, written: &Counts) -> SinkError {
    for (kind, sent, written) in [
        ("samples", sent.samples, written.samples),
        ("histograms", sent.histograms, written.histograms),
        ("exemplars", sent.exemplars, written.exemplars),
    ] {
        let lost = sent.saturating_sub(written);
        if lost > 0 {
            metrics::counter!(telemetry::REMOTE_WRITE_UNWRITTEN, "kind" => kind).increment(lost);
        }
    }
    tracing::warn!(
        samples_sent = sent.samples,
        samples_written = written.samples,
        histograms_sent = sent.histograms,
        histograms_written = written.histograms,
        exemplars_sent = sent.exemplars,
        exemplars_written = written.exemplars,
        "remote_write backend wrote less than it was sent"
    );
    SinkError::Rejected(format!(
        "remote_write backend stored only part of the push: wrote {} of {} samples, {} of {} \
         histograms, {} of {} exemplars",
        written.samples,
        sent.samples,
        written.histograms,
        sent.histograms,
        written.exemplars,
        sent.exemplars
    ))
}
