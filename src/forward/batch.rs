//! Delivery of a batch of prepared pushes: packing into requests, sending
//! with retries, and isolating a push the backend refuses.
//!
//! Contract:
//! - each push arrives as one or more [`Chunk`]s (encoded `WriteRequest`
//!   fragments, each within the request limits); chunks are packed in order
//!   into requests of at most `max_samples` samples and `max_bytes` bytes,
//!   and requests are sent one after the other, so samples of one series
//!   keep their order;
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
//!   mixes tenants.

use std::time::{Duration, Instant};

use tokio::time::sleep;

use super::retry::{self, Backoff, Verdict};
use super::send::{self, Answer, Endpoint};
use crate::push::SinkError;

/// An encoded `WriteRequest` fragment: whole `timeseries`/`metadata` entries.
#[derive(Debug, Default)]
pub struct Chunk {
    pub bytes: Vec<u8>,
    pub samples: usize,
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
                Err(SinkError::Rejected(_)) if owners.len() > 1 => {
                    for owner in owners {
                        let own: Parts =
                            live.iter().copied().filter(|(p, _)| *p == owner).collect();
                        outcomes[owner] = self.send(parcels, &own, parcels[owner].deadline).await;
                    }
                }
                Err(failure) => {
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
                    && bytes + chunk.bytes.len() <= self.limits.max_bytes;
                if !fits && !current.is_empty() {
                    requests.push(std::mem::take(&mut current));
                    (samples, bytes) = (0, 0);
                }
                current.push((p, c));
                samples += chunk.samples;
                bytes += chunk.bytes.len();
            }
        }
        if !current.is_empty() {
            requests.push(current);
        }
        requests
    }

    /// Sends the given chunks as one request, retrying until `deadline`.
    async fn send(
        &self,
        parcels: &[Parcel<'_>],
        parts: &[(usize, usize)],
        deadline: Instant,
    ) -> Result<(), SinkError> {
        let mut raw = Vec::with_capacity(
            parts
                .iter()
                .map(|&(p, c)| parcels[p].chunks[c].bytes.len())
                .sum(),
        );
        for &(p, c) in parts {
            raw.extend_from_slice(&parcels[p].chunks[c].bytes);
        }
        let body = compress(raw)
            .await
            .map_err(|message| SinkError::Unavailable {
                message,
                retry_after: self.backoff.max,
            })?;
        let mut attempt = 0u32;
        let mut last = false;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            // The first attempt always gets the full request timeout: a push
            // that queued past its deadline is still tried once. So does the
            // last one, made at the deadline.
            let timeout = (attempt > 0 && !last).then_some(remaining);
            let answer = self.endpoint.post(body.clone(), self.tenant, timeout).await;
            let (problem, retry_after) = match (&answer, retry::verdict(answer.status())) {
                (_, Verdict::Done) => return Ok(()),
                (Answer::Status { status, body, .. }, Verdict::Refused) => {
                    tracing::warn!(status = %status, body = %body, "remote_write backend refused a request");
                    return Err(SinkError::Rejected(format!(
                        "remote_write backend refused the push: {status}: {body}"
                    )));
                }
                (
                    Answer::Status {
                        status,
                        retry_after,
                        body,
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
                return Err(SinkError::Unavailable {
                    message: format!(
                        "remote_write backend did not accept the push within the retry deadline \
                         ({attempt} attempts); last error: {problem}"
                    ),
                    retry_after: retry_after
                        .unwrap_or(self.backoff.max)
                        .max(Duration::from_secs(1)),
                });
            }
            sleep(delay).await;
        }
    }
}
