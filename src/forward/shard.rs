//! A shard worker: the single owner of the groups hashed to it.
//!
//! Pushes reach a shard over a bounded queue, in arrival order. The worker
//! takes everything queued (up to the request limits) as one batch, so
//! pushes arriving while a request is in flight share the next one. It
//! drops the pushes a later PUT or DELETE of their group received in the
//! same millisecond replaces ([`collapse`]); then for each push, in order,
//! it stamps the group's timestamp (strictly increasing per group, never
//! ahead of the wall clock: it waits for the next millisecond when
//! needed), adds stale markers for the series the push ends
//! and the group's `push_time_seconds`, delivers the batch (see `batch`),
//! and answers every pusher.
//!
//! Tenants: a batch may hold pushes of several tenants; each tenant's
//! pushes are delivered on their own (tenants one after the other, in order
//! of first arrival), so every request carries exactly one tenant's series
//! and its header.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use super::batch::{Chunk, Delivery, Limits, Parcel};
use super::convert::{self, Converted};
use super::queue;
use super::relabel::Relabeler;
use super::retry::Backoff;
use super::send::Endpoint;
use super::series_memory::{GroupId, SeriesMemory, SharedPush};
use super::wire;
use crate::proto::prompb::metric_metadata::MetricType as RwType;
use crate::push::{PushOp, SinkError};
use crate::telemetry::{
    self, PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP, PUSH_TIME, PUSH_TIME_HELP,
};

mod chunks;

use chunks::ChunkBuilder;

/// The answer channel of a push acknowledged synchronously.
pub type Reply = oneshot::Sender<Result<(), SinkError>>;

/// What travels over a shard's queue.
pub enum Message {
    Push(Box<Queued>),
    /// Answered once everything queued before it has been answered.
    Flush(oneshot::Sender<()>),
    /// Like `Flush`, answered with the series memory as it is then (the
    /// disk queue saves it; see `queue::snapshot`).
    Snapshot(oneshot::Sender<Vec<u8>>),
}

/// A push waiting for its shard.
pub struct Queued {
    pub op: PushOp,
    /// The push's tenant and grouping key.
    pub group: GroupId,
    pub received_at: SystemTime,
    pub converted: Converted,
    pub deadline: Instant,
    /// `None` when the push was already acknowledged (async mode).
    pub reply: Option<Reply>,
    /// Set when the cache sent this, not a pusher: a re-send (PUT) or the
    /// end of an expired or wiped group (DELETE).
    pub from_cache: Option<FromCache>,
    /// An async push's slot among its shard's hot ones
    /// (`forward::HOT_QUEUE_DEPTH`), given back as the worker takes it.
    pub hot_slot: Option<OwnedSemaphorePermit>,
}

/// What the cache's re-sends and removals carry besides the group's series
/// (`crate::resend`, `crate::expiry`).
pub struct FromCache {
    /// The cached group's `push_time_seconds` and
    /// `push_failure_time_seconds` values.
    pub push_time: f64,
    pub failure_time: f64,
    /// When the cached state was pushed: if a newer push of the group was
    /// forwarded since, this is dropped, so a re-send never overtakes a
    /// newer push (or revives a deleted group) and an expiry never ends a
    /// group pushed again.
    pub state_of: SystemTime,
    /// Held by a re-send while it is queued or in flight.
    pub ticket: Option<ResendTicket>,
}

/// One re-send queued or in flight; the count bounds them, so an outage
/// never builds a backlog of re-sends.
pub struct ResendTicket(Arc<AtomicUsize>);

impl ResendTicket {
    /// A ticket from `in_flight` unless `limit` re-sends already hold one.
    pub fn take(in_flight: &Arc<AtomicUsize>, limit: usize) -> Option<Self> {
        in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(in_flight.clone()))
    }
}

impl Drop for ResendTicket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Queued {
    /// (samples, bytes) it will add to a request, roughly.
    fn size(&self) -> (usize, usize) {
        let c = &self.converted;
        (
            c.series.len(),
            c.labels.len() + c.histograms.len() + c.metadata.len() + 24 * c.series.len(),
        )
    }
}

/// The settings a worker runs with.
pub struct Settings {
    pub limits: Limits,
    pub backoff: Backoff,
    pub push_time_metrics: bool,
    pub max_remembered_series: usize,
    /// Pushes come from the disk queue: a refused one is counted as
    /// dropped there.
    pub disk_queue: bool,
    /// Relabels the per-group series (`push_time_seconds` & co) as the
    /// pushes' own series are.
    pub relabel: Arc<Relabeler>,
}

/// A push ready to send.
struct Prepared {
    /// The push, its series moved to `push`.
    job: Queued,
    /// Its series, shared with the series memory.
    push: SharedPush,
    /// Its requests' fragments, whose series are read from `push`.
    chunks: Vec<Chunk>,
    /// Series the push ended, remembered again if it fails.
    ended: Vec<(String, Vec<u8>)>,
    samples: usize,
    /// Whether the group had push_time_seconds before a DELETE.
    was_pushed: bool,
    /// The pushes this one replaced in [`collapse`]: answered as it is.
    followers: Vec<Reply>,
}

pub struct Worker {
    endpoint: Arc<Endpoint>,
    settings: Settings,
    memory: SeriesMemory,
}

impl Worker {
    pub fn new(endpoint: Arc<Endpoint>, settings: Settings, shards: usize) -> Self {
        let memory = SeriesMemory::new((settings.max_remembered_series / shards.max(1)).max(1));
        Self {
            endpoint,
            settings,
            memory,
        }
    }

    /// The worker with a series memory read back from the disk queue.
    pub fn with_memory(mut self, memory: SeriesMemory) -> Self {
        self.memory = memory;
        self
    }

    /// Serves the queue until every sender is gone.
    pub async fn run(mut self, mut queue: mpsc::Receiver<Message>) {
        let mut carried: Option<Message> = None;
        loop {
            let first = match carried.take() {
                Some(message) => message,
                None => match queue.recv().await {
                    Some(message) => message,
                    None => return,
                },
            };
            let mut batch = Vec::new();
            let mut flush = None;
            let mut snapshot = None;
            let (mut samples, mut bytes) = (0, 0);
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    Message::Flush(done) => {
                        flush = Some(done);
                        break;
                    }
                    Message::Snapshot(answer) => {
                        snapshot = Some(answer);
                        break;
                    }
                    Message::Push(mut job) => {
                        job.hot_slot = None;
                        let (s, b) = job.size();
                        let limits = self.settings.limits;
                        if !batch.is_empty()
                            && (samples + s > limits.max_samples || bytes + b > limits.max_bytes)
                        {
                            // This push would take the batch past one
                            // request. It is already off the queue, so it
                            // is carried over as the first of the next
                            // batch: queue order (and so per-group sample
                            // order) holds, and a batch outgrows one
                            // request only when a single push does.
                            carried = Some(Message::Push(job));
                            break;
                        }
                        samples += s;
                        bytes += b;
                        batch.push(*job);
                    }
                }
                next = queue.try_recv().ok();
            }
            if !batch.is_empty() {
                self.process(batch).await;
            }
            if let Some(done) = flush {
                let _ = done.send(());
            }
            if let Some(answer) = snapshot {
                let mut saved = Vec::new();
                self.memory.save(&mut saved);
                let _ = answer.send(saved);
            }
        }
    }

    async fn process(&mut self, batch: Vec<Queued>) {
        let mut prepared: Vec<Prepared> = Vec::with_capacity(batch.len());
        for (job, followers) in collapse(batch) {
            if self.outdated(&job) {
                if job.op != PushOp::Delete {
                    metrics::counter!(telemetry::RESENDS, "outcome" => "outdated").increment(1);
                }
                continue;
            }
            self.wait_for_clock(&job).await;
            let mut ready = self.prepare(job);
            ready.followers = followers;
            prepared.push(ready);
        }
        let mut tenants: Vec<Option<String>> = Vec::new();
        for p in &prepared {
            if !tenants.contains(&p.job.group.tenant) {
                tenants.push(p.job.group.tenant.clone());
            }
        }
        let mut outcomes: Vec<Result<(), SinkError>> = vec![Ok(()); prepared.len()];
        for tenant in &tenants {
            let members: Vec<usize> = (0..prepared.len())
                .filter(|&i| prepared[i].job.group.tenant == *tenant)
                .collect();
            let parcels: Vec<Parcel> = members
                .iter()
                .map(|&i| Parcel {
                    chunks: &prepared[i].chunks,
                    source: &prepared[i].push,
                    deadline: prepared[i].job.deadline,
                })
                .collect();
            let delivered = self.delivery(tenant.as_deref()).deliver(&parcels).await;
            for (i, outcome) in members.into_iter().zip(delivered) {
                outcomes[i] = outcome;
            }
        }
        let mut failure_reports = FailureReports::new(self.settings.limits);
        for (prepared, outcome) in prepared.into_iter().zip(outcomes) {
            self.finish(prepared, outcome, &mut failure_reports);
        }
        for (tenant, builder) in failure_reports.by_tenant {
            let chunks = builder.finish();
            if chunks.is_empty() {
                continue;
            }
            // Best effort, one try: the pushes are already answered.
            let report = [Parcel {
                chunks: &chunks,
                source: &SharedPush::default(),
                deadline: Instant::now(),
            }];
            let _ = self.delivery(tenant.as_deref()).deliver(&report).await;
        }
    }

    /// Waits until the wall clock reaches the timestamp `job` will get, so
    /// that no sample is stamped ahead of the clock (a group pushed again
    /// within the millisecond of its previous samples waits for the next
    /// one; [`collapse`] keeps that rare).
    async fn wait_for_clock(&mut self, job: &Queued) {
        let wanted = self
            .memory
            .group(&job.group)
            .peek_timestamp(unix_ms(job.received_at));
        loop {
            let ahead = wanted - unix_ms(SystemTime::now());
            if ahead <= 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(ahead as u64)).await;
        }
    }

    /// Whether `job` re-sends a state older than the last push forwarded
    /// for its group.
    fn outdated(&mut self, job: &Queued) -> bool {
        let Some(cached) = &job.from_cache else {
            return false;
        };
        self.memory
            .group(&job.group)
            .last_push_at
            .is_some_and(|pushed| pushed > cached.state_of)
    }

    fn delivery<'a>(&'a self, tenant: Option<&'a str>) -> Delivery<'a> {
        Delivery {
            endpoint: &self.endpoint,
            tenant,
            backoff: self.settings.backoff,
            limits: self.settings.limits,
        }
    }

    fn prepare(&mut self, mut job: Queued) -> Prepared {
        let mut builder = ChunkBuilder::new(self.settings.limits);
        let push = SharedPush::new(std::mem::take(&mut job.converted));
        if job.op == PushOp::Delete && !push.series().is_empty() {
            // The cache ending a group sends its state along: the memory
            // may not know its series (forgotten, or lost in a restart).
            self.memory.record(&job.group, PushOp::Merge, &push);
            self.memory.group(&job.group).pushed = self.settings.push_time_metrics;
        }
        let group = self.memory.group(&job.group);
        let ts = group.next_timestamp(unix_ms(job.received_at));
        let stale = f64::from_bits(wire::STALE_NAN_BITS);
        let ended: Vec<(String, Vec<u8>)> = group
            .ended_series(job.op, &push)
            .into_iter()
            .map(|(family, labels)| {
                builder.float(labels, stale, ts);
                (family.to_string(), labels.to_vec())
            })
            .collect();
        // A DELETE's series (the cache's state of an ended group) only
        // name what ends.
        let values = if job.op == PushOp::Delete {
            &[][..]
        } else {
            push.series()
        };
        let mut extras = push.extras().iter().peekable();
        for index in 0..values.len() {
            builder.series(&push, index, ts);
            if let Some((_, extra)) = extras.next_if(|(i, _)| *i == index) {
                builder.extras(extra);
            }
        }
        let was_pushed = group.pushed;
        if self.settings.push_time_metrics {
            let relabel = &self.settings.relabel;
            let push_time = group_series(relabel, PUSH_TIME, &job.group);
            let failure_time = group_series(relabel, PUSH_FAILURE_TIME, &job.group);
            if job.op == PushOp::Delete {
                if group.pushed {
                    for labels in push_time.iter().chain(&failure_time) {
                        builder.float(labels, stale, ts);
                    }
                }
                group.pushed = false;
            } else {
                let (pushed, failed) = match &job.from_cache {
                    Some(cached) => (cached.push_time, cached.failure_time),
                    None => (telemetry::unix_seconds(job.received_at), group.last_failure),
                };
                if let Some(labels) = &push_time {
                    builder.float(labels, pushed, ts);
                }
                if let Some(labels) = &failure_time {
                    builder.float(labels, failed, ts);
                }
                builder.metadata(RwType::Gauge, PUSH_TIME, PUSH_TIME_HELP);
                builder.metadata(RwType::Gauge, PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP);
                group.pushed = true;
            }
        }
        builder.raw_metadata(push.metadata());
        if job.from_cache.is_none() {
            group.last_push_at = Some(job.received_at);
        }
        self.memory.record(&job.group, job.op, &push);
        Prepared {
            samples: push.series().len(),
            chunks: builder.finish(),
            ended,
            was_pushed,
            job,
            push,
            followers: Vec::new(),
        }
    }

    fn finish(
        &mut self,
        prepared: Prepared,
        outcome: Result<(), SinkError>,
        failure_reports: &mut FailureReports,
    ) {
        let Prepared {
            job,
            ended,
            samples,
            was_pushed,
            followers,
            ..
        } = prepared;
        if job.from_cache.is_some() && job.op != PushOp::Delete {
            let outcome = if outcome.is_ok() { "sent" } else { "failed" };
            metrics::counter!(telemetry::RESENDS, "outcome" => outcome).increment(1);
        }
        match &outcome {
            Ok(()) => {
                metrics::counter!(telemetry::SAMPLES_FORWARDED).increment(samples as u64);
                metrics::counter!(telemetry::STALE_MARKERS).increment(ended.len() as u64);
            }
            Err(_) if job.from_cache.is_some() => {
                // Not a failed push: the next re-send tries again (an
                // expiry is not retried: the group's series go stale when
                // the backend's lookback passes).
                self.memory.restore(&job.group, &ended);
            }
            Err(failure) => {
                if self.settings.disk_queue {
                    queue::count_refused(failure);
                }
                self.memory.restore(&job.group, &ended);
                let group = self.memory.group(&job.group);
                let now = SystemTime::now();
                group.last_failure = telemetry::unix_seconds(now);
                if job.op == PushOp::Delete {
                    group.pushed = was_pushed;
                } else if self.settings.push_time_metrics
                    && !self.settings.disk_queue
                    && matches!(failure, SinkError::Rejected(_))
                {
                    // (Not for the disk queue: its records are replayed
                    // after a restart, and a report stamped "now" would
                    // move the group's timestamps away from those the
                    // first attempt stamped, turning a replayed push the
                    // backend already holds into a second sample.)
                    // The backend is up but refused the push: tell it when,
                    // as the Pushgateway shows a failed push.
                    let ts = group.next_timestamp(unix_ms(now));
                    let labels =
                        group_series(&self.settings.relabel, PUSH_FAILURE_TIME, &job.group);
                    if let Some(labels) = labels {
                        failure_reports.of(&job.group.tenant).float(
                            &labels,
                            group.last_failure,
                            ts,
                        );
                    }
                }
            }
        }
        for follower in followers {
            let _ = follower.send(outcome.clone());
        }
        if let Some(reply) = job.reply {
            let _ = reply.send(outcome);
        }
    }
}

/// The batch with every push that a later PUT or DELETE of the same group,
/// received within the same millisecond, replaces whole: a scrape in that
/// millisecond would only have seen the newest state, and stamping each
/// push 1 ms after the previous one would run ahead of the clock. Each kept
/// push comes with the replies of the pushes it replaced, answered with
/// its outcome. Pushes carrying their own timestamps are never collapsed.
fn collapse(batch: Vec<Queued>) -> Vec<(Queued, Vec<Reply>)> {
    let timestamped = |job: &Queued| !job.converted.timestamps.is_empty();
    // Per group, the index and millisecond of the latest whole replacement
    // seen so far, scanning from the end.
    let mut replacing: HashMap<&GroupId, (usize, i64)> = HashMap::new();
    let mut superseded_by: Vec<Option<usize>> = vec![None; batch.len()];
    for (index, job) in batch.iter().enumerate().rev() {
        let ms = unix_ms(job.received_at);
        if timestamped(job) {
            continue;
        }
        match replacing.get(&job.group) {
            Some(&(by, at)) if at == ms => superseded_by[index] = Some(by),
            _ if job.op != PushOp::Merge && job.from_cache.is_none() => {
                replacing.insert(&job.group, (index, ms));
            }
            _ => {}
        }
    }
    if superseded_by.iter().all(Option::is_none) {
        return batch.into_iter().map(|job| (job, Vec::new())).collect();
    }
    let mut kept: Vec<Option<Queued>> = Vec::with_capacity(batch.len());
    let mut followers: Vec<Vec<Reply>> = (0..batch.len()).map(|_| Vec::new()).collect();
    for (job, superseded_by) in batch.into_iter().zip(superseded_by) {
        match superseded_by {
            Some(by) => {
                followers[by].extend(job.reply);
                kept.push(None);
            }
            None => kept.push(Some(job)),
        }
    }
    kept.into_iter()
        .zip(followers)
        .filter_map(|(job, followers)| Some((job?, followers)))
        .collect()
}

/// The `push_failure_time_seconds` samples to send after a batch, one
/// builder per tenant.
struct FailureReports {
    limits: Limits,
    by_tenant: Vec<(Option<String>, ChunkBuilder)>,
}

impl FailureReports {
    fn new(limits: Limits) -> Self {
        Self {
            limits,
            by_tenant: Vec::new(),
        }
    }

    fn of(&mut self, tenant: &Option<String>) -> &mut ChunkBuilder {
        let index = match self.by_tenant.iter().position(|(t, _)| t == tenant) {
            Some(index) => index,
            None => {
                let builder = ChunkBuilder::new(self.limits);
                self.by_tenant.push((tenant.clone(), builder));
                self.by_tenant.len() - 1
            }
        };
        &mut self.by_tenant[index].1
    }
}

/// The encoded labels of the group's series `name` after relabeling, or
/// `None` when a rule drops it.
fn group_series(relabel: &Relabeler, name: &str, group: &GroupId) -> Option<Vec<u8>> {
    relabel.relabel_encoded(convert::group_series_labels(name, &group.key))
}

fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
