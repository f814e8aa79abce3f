//! remote_write forwarding: every push becomes remote_write traffic (2.0,
//! or 1.0 for a backend that does not take 2.0) to the configured backend.
//!
//! Pipeline: [`convert`] turns the push's families into encoded series (on
//! the pusher's task), `relabel` adds the external labels and applies
//! `write_relabel_configs` to them (also to `push_time_seconds` & co), the push is queued to one of `concurrency` `shard`
//! workers chosen by its tenant and grouping key, the worker batches what is queued,
//! stamps timestamps, adds stale markers from its `series_memory` and
//! `push_time_seconds`, and `batch` sends the requests through [`send`]
//! with the `retry` policy in the protocol `negotiate` chose. [`wire`]
//! holds the 1.0 protobuf encoding, [`wire_v2`] the 2.0 encoder of the same
//! series.
//!
//! Contract of [`Forwarder::forward`]:
//! - `ack = "sync"` (default): `Ok` only when the backend accepted every
//!   sample of the push; a backend 4xx is [`SinkError::Rejected`] with the
//!   backend's text; a backend that stays unreachable or failing (5xx, 429,
//!   no answer) until `retry_deadline` is [`SinkError::Unavailable`].
//! - `ack = "async"`: `Ok` once queued; a full queue is
//!   [`SinkError::Overloaded`], decided by [`Forwarder::admit`] from the
//!   tenant and grouping key alone, before the body is read, after waiting
//!   at most [`ADMISSION_PATIENCE`] for room: an admitted push holds its
//!   place in the queue. Once converted, a push that finds
//!   [`HOT_QUEUE_DEPTH`] pushes waiting for its shard waits at most
//!   [`HOT_QUEUE_PATIENCE`] for the shard to take one, then is queued
//!   anyway. Failures are then only logged and counted.
//! - `ack = "durable"`: `Ok` once written and fsynced to the [`queue`] on
//!   disk, from which the shards deliver it (also after a restart); a full
//!   queue is [`SinkError::Overloaded`]. See [`queue`] for its promises.
//! - A push carrying a name remote_write 1.0 forbids on the wire (possible
//!   only when `push.disable_consistency_check` skips validation) is
//!   [`SinkError::Rejected`] without a request.
//! - One group's samples are always sent in order, with strictly increasing
//!   timestamps never ahead of the wall clock: the receive time in ms; a
//!   PUT or DELETE replaces the pushes to its group received within the
//!   same millisecond (they share its answer), and any other push that
//!   would need the next millisecond waits for it. Pushed timestamps (only
//!   present when `push.honor_timestamps` is on) are sent as given.
//!
//! `push_time_seconds` / `push_failure_time_seconds` (switch:
//! `remote_write.push_time_metrics`): the Pushgateway exposes both gauges
//! for every group, labelled with the grouping labels, with the push time
//! in seconds or 0 for "never". A forwarder has no scrape to show them
//! continuously, so it sends what a scrape right after the push would have
//! seen: every successful PUT/POST sends `push_time_seconds` = the push's
//! receive time and `push_failure_time_seconds` = the group's last failure
//! time (0 when none is remembered), both at the push's timestamp. When the
//! backend refuses a push (4xx), `push_failure_time_seconds` = now is sent
//! on its own right after (a failure because the backend is unreachable is
//! only remembered: sending it would fail too; the next successful push
//! carries it). A DELETE ends both series with stale markers, as the
//! Pushgateway drops them with the group. Empty label values (the
//! Pushgateway's `instance=""`) are dropped as remote_write requires.
//!
//! Transport and tenancy (see [`send`]): `https://` backends are verified
//! with `remote_write.tls`; every request carries the configured
//! credentials and extra headers, then the tenant header of its pushes'
//! tenant ([`Push::tenant`], resolved by the handler with
//! [`Forwarder::tenancy`]), then the four remote_write headers, which
//! nothing configured can override. A request never mixes tenants, and a
//! group is a grouping key *within a tenant*: two tenants pushing the same
//! grouping key never end each other's series. The label named by
//! `remote_write.tenant.from_label` stays on the forwarded series: it is a
//! grouping label like any other (the Pushgateway keeps it on every series
//! of the group), so dropping it could merge groups that differ only by
//! tenant into one series set within a backend that ignores the tenant
//! header, and a scrape through the cache shows it too.
//!
//! Re-sends (`crate::resend`) and the ends of groups the cache removed
//! (`crate::expiry`) enter the same shard queues through a
//! [`ResendQueue`], so they are stamped by the same clock as the group's
//! pushes; one whose cached state is older than a push already forwarded
//! for the group is dropped.
//!
//! Readiness (`readiness`): [`Forwarder::is_ready`] is true once the
//! backend answered any request (an empty `WriteRequest` probe is sent at
//! start, as the static tenant if one is configured; Prometheus answers it
//! 204) until it has been failing for longer than `retry_deadline`; while
//! failing, or healthy but idle for a second, it is probed, so readiness
//! follows the backend without a push.

pub(crate) mod batch;
pub mod convert;
pub(crate) mod negotiate;
pub mod queue;
pub(crate) mod readiness;
pub mod relabel;
mod resend_queue;
pub(crate) mod retry;
pub mod send;
pub(crate) mod series_memory;
pub(crate) mod shard;
pub mod wire;
pub mod wire_v2;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::{AckMode, RemoteWriteConfig};
use crate::exposition::Families;
use crate::push::path::is_legacy_label_name;
use crate::push::tenant::TenantPolicy;
use crate::push::validate::is_metric_name;
use crate::push::{GroupingKey, Push, PushOp, SinkError};
use crate::telemetry;
use batch::Limits;
use convert::{Converted, Series};
use relabel::Relabeler;
pub use resend_queue::ResendQueue;
use retry::Backoff;
use send::Endpoint;
pub use series_memory::GroupId;
use shard::{Message, Queued, Settings, Worker};

/// The most records of the disk queue a shard holds ahead of delivery.
/// The disk is the queue: a deep shard queue only makes each checkpoint
/// (which waits behind everything queued) late, and the disk's room comes
/// back at checkpoints. Measured (10 s at 32 connections, 1,000-series
/// pushes): 1.0M samples/s acknowledged with 1,024, 1.9M with 32.
pub const DURABLE_SHARD_QUEUE: usize = 32;

/// How long an async pusher is told to wait when the queue is full.
const OVERLOAD_RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long an async push waits for room in a full queue before it is
/// shed: about one request to the backend, so that under overload a place
/// freed by a sent batch goes to a waiting pusher (the queue stays full
/// and the backend busy) rather than to whichever pusher asks again first,
/// and a pusher that retries at once is slowed to the pace of delivery
/// instead of costing a 429 after another.
pub const ADMISSION_PATIENCE: Duration = Duration::from_millis(50);

/// How many pushes an async shard queue takes at once before a pusher
/// waits (at most [`HOT_QUEUE_PATIENCE`]) for its worker to take one: a
/// worker that keeps up finds what it encodes still in the CPU's caches.
/// Measured with 32 connections POSTing 1,000-series bodies: a queue
/// allowed to run 1,024 pushes deep spends 361-394 ns of CPU per delivered
/// sample, one held to 4 spends 338-350, as sync does.
pub const HOT_QUEUE_DEPTH: usize = 4;

/// How long an async pusher waits for the queue to be [`HOT_QUEUE_DEPTH`]
/// shallow before it is queued deeper anyway: the queue's capacity still
/// absorbs a backend that stalls, at this much extra latency per push.
/// Measured as above: 5 ms kept no queue short (pushers outpace the
/// workers that share their two cores), 50 ms kept it at its hot depth
/// with no push refused.
pub const HOT_QUEUE_PATIENCE: Duration = Duration::from_millis(50);

/// The forwarding sink.
pub struct Forwarder {
    endpoint: Arc<Endpoint>,
    shards: Vec<mpsc::Sender<Message>>,
    relabel: Arc<Relabeler>,
    resends_in_flight: Arc<AtomicUsize>,
    ack: AckMode,
    retry_deadline: Duration,
    probe: JoinHandle<()>,
    /// The disk queue pushes go through with `ack = "durable"`.
    disk_queue: Option<queue::DiskQueue>,
    /// Per shard, [`HOT_QUEUE_DEPTH`] slots an async push holds while it
    /// waits in the queue.
    hot_slots: Vec<Arc<Semaphore>>,
}

impl Forwarder {
    /// Builds the sink for the configured backend and starts its shard
    /// workers and readiness probe; must be called inside a tokio runtime.
    pub fn new(config: &RemoteWriteConfig) -> Result<Self, String> {
        let endpoint = Arc::new(Endpoint::new(config)?);
        let relabel = Arc::new(
            Relabeler::new(config, |name| std::env::var(name).ok()).map_err(|e| e.to_string())?,
        );
        let backoff = Backoff {
            min: config.min_backoff.0,
            max: config.max_backoff.0,
        };
        let concurrency = config.concurrency.max(1);
        let per_shard_series = (config.max_remembered_series / concurrency).max(1);
        let durable = config.ack == AckMode::Durable;
        let mut recovered = match durable {
            true => Some(queue::Recovered::open(
                &config.queue,
                concurrency,
                per_shard_series,
                |group| shard_index(group, concurrency),
            )?),
            false => None,
        };
        let shards: Vec<mpsc::Sender<Message>> = (0..concurrency)
            .map(|index| {
                let capacity = match durable {
                    true => config.queue_capacity.clamp(1, DURABLE_SHARD_QUEUE),
                    false => config.queue_capacity.max(1),
                };
                let (sender, receiver) = mpsc::channel(capacity);
                let settings = Settings {
                    limits: Limits {
                        max_samples: config.max_samples_per_request.max(1),
                        max_bytes: config.max_bytes_per_request.max(1),
                    },
                    backoff,
                    push_time_metrics: config.push_time_metrics,
                    max_remembered_series: config.max_remembered_series,
                    disk_queue: durable,
                    relabel: relabel.clone(),
                };
                let mut worker = Worker::new(endpoint.clone(), settings, concurrency);
                if let Some(recovered) = &mut recovered {
                    worker = worker.with_memory(recovered.take_memory(index));
                }
                tokio::spawn(worker.run(receiver));
                sender
            })
            .collect();
        let disk_queue = recovered
            .map(|r| r.start(shards.clone(), move |group| shard_index(group, concurrency)));
        let probe = tokio::spawn(readiness::probe(endpoint.clone(), backoff));
        Ok(Self {
            endpoint,
            shards,
            relabel,
            resends_in_flight: Arc::default(),
            ack: config.ack,
            retry_deadline: config.retry_deadline.0,
            probe,
            disk_queue,
            hot_slots: (0..concurrency)
                .map(|_| Arc::new(Semaphore::new(HOT_QUEUE_DEPTH)))
                .collect(),
        })
    }

    /// Forwards one push; see the module docs for when it returns `Ok`.
    /// The same as [`Forwarder::admit`], [`Forwarder::convert`] then
    /// [`Forwarder::send`].
    pub async fn forward(&self, push: &Push) -> Result<(), SinkError> {
        let admission = self.admit(push.tenant.as_deref(), &push.key).await?;
        let outgoing = self.convert(push)?;
        self.send(outgoing, admission).await
    }

    /// Decides whether a push of `tenant` to `key` can be taken, from those
    /// alone, so that a refusal costs no body reading or parsing. With
    /// `ack = "async"` it reserves a place in the group's shard queue,
    /// waiting at most [`ADMISSION_PATIENCE`] for one (in arrival order),
    /// or is [`SinkError::Overloaded`]: a push admitted is never refused
    /// for room afterwards. With `ack = "durable"` it waits as long for the
    /// disk queue to be less than nearly full (see
    /// [`queue::DiskQueue::admit`]). With `ack = "sync"` it admits every
    /// push (sync waits for room until the retry deadline).
    pub async fn admit(
        &self,
        tenant: Option<&str>,
        key: &GroupingKey,
    ) -> Result<Admission<'_>, SinkError> {
        if let Some(disk_queue) = &self.disk_queue {
            disk_queue.admit(ADMISSION_PATIENCE).await?;
            return Ok(Admission::default());
        }
        if self.ack != AckMode::Async {
            return Ok(Admission::default());
        }
        let shard = &self.shards[shard_of(tenant, key, self.shards.len())];
        let place = match shard.try_reserve() {
            Ok(place) => Ok(place),
            Err(mpsc::error::TrySendError::Full(())) => {
                match tokio::time::timeout(ADMISSION_PATIENCE, shard.reserve()).await {
                    Ok(reserved) => reserved.map_err(|_| stopped()),
                    Err(_) => Err(SinkError::Overloaded {
                        message: "the remote_write forwarding queue is full".into(),
                        retry_after: OVERLOAD_RETRY_AFTER,
                    }),
                }
            }
            Err(mpsc::error::TrySendError::Closed(())) => Err(stopped()),
        }?;
        Ok(Admission(Some(place)))
    }

    /// The first half of forwarding: `push` converted (and relabeled) into
    /// what the shards send. Nothing after it reads the push, so a caller
    /// that owns it can free its body before [`Forwarder::send`] waits for
    /// delivery.
    pub fn convert(&self, push: &Push) -> Result<Outgoing, SinkError> {
        let deadline = Instant::now() + self.retry_deadline;
        if let Some(problem) = unsendable_name(&push.families) {
            return Err(SinkError::Rejected(problem));
        }
        let mut converted = convert::convert_families(&push.families, &push.key);
        // Before the shard: its series memory keeps the relabeled identity,
        // so stale markers end what was written.
        self.relabel.apply(&mut converted);
        if converted.too_large {
            return Err(SinkError::Rejected(too_large_to_forward()));
        }
        Ok(Outgoing {
            op: push.op,
            group: GroupId {
                tenant: push.tenant.clone(),
                key: push.key.clone(),
            },
            received_at: push.received_at,
            converted,
            deadline,
        })
    }

    /// A hot slot of shard `index` for an async push about to be queued:
    /// one free, or the first freed within [`HOT_QUEUE_PATIENCE`], or
    /// none (the push is then queued deeper).
    async fn hot_slot(&self, index: usize) -> Option<OwnedSemaphorePermit> {
        let slots = &self.hot_slots[index];
        if let Ok(slot) = slots.clone().try_acquire_owned() {
            return Some(slot);
        }
        let slot = tokio::time::timeout(HOT_QUEUE_PATIENCE, slots.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok);
        let outcome = if slot.is_some() { "slot" } else { "timeout" };
        metrics::counter!(telemetry::HOT_QUEUE_WAITS, "outcome" => outcome).increment(1);
        slot
    }

    /// The second half of forwarding: hands a converted push, admitted as
    /// `admission`, to its shard (or the disk queue); see the module docs
    /// for when it returns `Ok`.
    pub async fn send(
        &self,
        outgoing: Outgoing,
        admission: Admission<'_>,
    ) -> Result<(), SinkError> {
        let Outgoing {
            op,
            group,
            received_at,
            converted,
            deadline,
        } = outgoing;
        if let Some(disk_queue) = &self.disk_queue {
            return disk_queue.append(op, &group, received_at, &converted).await;
        }
        let (reply, answer) = match self.ack {
            AckMode::Sync => {
                let (reply, answer) = oneshot::channel();
                (Some(reply), Some(answer))
            }
            AckMode::Async | AckMode::Durable => (None, None),
        };
        let index = shard_index(&group, self.shards.len());
        let shard = &self.shards[index];
        let place = admission.0;
        // Taken once the push is ready to queue, not at admission: a
        // client slow to send its body must not hold a slot meanwhile.
        let hot_slot = match place {
            Some(_) => self.hot_slot(index).await,
            None => None,
        };
        let message = Message::Push(Box::new(Queued {
            op,
            group,
            received_at,
            converted,
            deadline,
            reply,
            from_cache: None,
            hot_slot,
        }));
        if let Some(place) = place {
            place.send(message);
            return Ok(());
        }
        let queued = tokio::time::timeout_at(deadline.into(), shard.send(message)).await;
        match queued {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(stopped()),
            Err(_) => {
                return Err(SinkError::Unavailable {
                    message: format!(
                        "the remote_write forwarding queue stayed full for {:?}",
                        self.retry_deadline
                    ),
                    retry_after: OVERLOAD_RETRY_AFTER,
                });
            }
        }
        let Some(answer) = answer else {
            return Ok(());
        };
        let _waiting = QueuedGauge::enter();
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// The way re-sends of cached groups reach the shards, each re-send
    /// given at most `interval` (and the retry deadline) to land.
    pub fn resend_queue(&self, interval: Duration) -> ResendQueue {
        ResendQueue::new(
            self.shards.clone(),
            self.resends_in_flight.clone(),
            interval.min(self.retry_deadline),
            self.relabel.clone(),
        )
    }

    /// The tenant policy (`remote_write.tenant`), shared with ingest: the
    /// push handler resolves each push's [`Push::tenant`] with it before
    /// handing the push over.
    pub fn tenancy(&self) -> &Arc<TenantPolicy> {
        self.endpoint.tenancy()
    }

    /// Whether a push sent now can be delivered (see `readiness`).
    pub fn is_ready(&self) -> bool {
        self.endpoint.readiness().is_ready()
    }

    /// Waits until every push queued before the call has been sent (or has
    /// failed), at most twice the retry deadline. With the disk queue,
    /// pushes are safe on disk already: it only saves a checkpoint, waiting
    /// at most the retry deadline.
    pub async fn drain(&self) {
        if let Some(disk_queue) = &self.disk_queue {
            disk_queue.checkpoint(self.retry_deadline).await;
            return;
        }
        let flush = async {
            let mut waiting = Vec::with_capacity(self.shards.len());
            for shard in &self.shards {
                let (done, flushed) = oneshot::channel();
                if shard.send(Message::Flush(done)).await.is_ok() {
                    waiting.push(flushed);
                }
            }
            for flushed in waiting {
                let _ = flushed.await;
            }
        };
        if tokio::time::timeout(self.retry_deadline * 2, flush)
            .await
            .is_err()
        {
            tracing::warn!("remote_write queues not drained within twice the retry deadline");
        }
    }
}

/// The shard that owns `group`: all its pushes and re-sends go through it,
/// in order (stable across restarts, so the disk queue's saved memories
/// find their shards again).
fn shard_index(group: &GroupId, shards: usize) -> usize {
    shard_of(group.tenant.as_deref(), &group.key, shards)
}

/// [`shard_index`] of the group of `tenant` and `key`, before a [`GroupId`]
/// is built: the same hash, as [`GroupId`]'s derived `Hash` feeds its
/// fields in this order.
fn shard_of(tenant: Option<&str>, key: &GroupingKey, shards: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    tenant.hash(&mut hasher);
    key.hash(&mut hasher);
    (hasher.finish() % shards as u64) as usize
}

/// A push converted for forwarding ([`Forwarder::convert`]), without the
/// parsed body it came from.
pub struct Outgoing {
    op: PushOp,
    group: GroupId,
    received_at: SystemTime,
    converted: Converted,
    /// Until when delivery is retried: the retry deadline from the start of
    /// the conversion.
    deadline: Instant,
}

/// A push's admission ([`Forwarder::admit`]): with `ack = "async"` its
/// reserved place in its shard's queue, given back if the push goes no
/// further (a body that fails to parse, say).
#[derive(Default)]
pub struct Admission<'a>(Option<mpsc::Permit<'a, Message>>);

/// The answer to a push while the forwarder stops.
fn stopped() -> SinkError {
    SinkError::Unavailable {
        message: "the remote_write forwarder is shutting down".into(),
        retry_after: OVERLOAD_RETRY_AFTER,
    }
}

/// Why a push whose label bytes a converted push cannot address is
/// refused.
fn too_large_to_forward() -> String {
    format!(
        "the push's series labels (grouping labels included) exceed the {} bytes a push may forward",
        Series::MAX_LABEL_BYTES
    )
}

/// The first name in `families` that remote_write 1.0 forbids on the
/// wire: a metric name outside `[a-zA-Z_:][a-zA-Z0-9_:]*`, or the name of
/// a label with a value (empty-valued labels are dropped) that is outside
/// `[a-zA-Z_][a-zA-Z0-9_]*` (so also empty) or reserved (`__` prefix;
/// a body `__name__` is replaced by the family name). Validation refuses
/// these already, except when `push.disable_consistency_check` skips it.
fn unsendable_name(families: &Families) -> Option<String> {
    match families {
        Families::Owned(families) => families
            .iter()
            .filter(|family| !family.metric.is_empty())
            .find_map(|family| {
                let labels = family.metric.iter().flat_map(|m| m.label.iter());
                unsendable_in(family.name(), labels.map(|l| (l.name(), l.value())), false)
            }),
        Families::Indexed(body) => body.families().iter().find_map(|family| {
            let labels = body.metric_range(family).flat_map(|i| body.labels(i));
            unsendable_in(&family.name, labels, body.has_plain_label_names())
        }),
    }
}

/// [`unsendable_name`] for one family with metrics: its name and the
/// `(name, value)` labels of all its metrics; `plain_names` when every
/// label name is known to be legacy and unreserved already (a text
/// body's, as its parser noted), so that only the family name is left.
fn unsendable_in<'a>(
    family: &str,
    labels: impl Iterator<Item = (&'a str, &'a str)>,
    plain_names: bool,
) -> Option<String> {
    if !is_metric_name(family) {
        return Some(format!(
            "metric name {family:?} cannot be forwarded: remote_write 1.0 requires \
             [a-zA-Z_:][a-zA-Z0-9_:]*"
        ));
    }
    if plain_names {
        return None;
    }
    for (name, value) in labels {
        if value.is_empty() || name == "__name__" {
            continue;
        }
        if !is_legacy_label_name(name) || name.starts_with("__") {
            return Some(format!(
                "label name {name:?} of metric {family:?} cannot be forwarded: remote_write 1.0 \
                 requires [a-zA-Z_][a-zA-Z0-9_]* without a `__` prefix"
            ));
        }
    }
    None
}

/// Counts a push in `FORWARD_QUEUE_LENGTH` while it waits for its answer,
/// also when the pusher goes away before the answer.
struct QueuedGauge(metrics::Gauge);

impl QueuedGauge {
    fn enter() -> Self {
        let gauge = metrics::gauge!(telemetry::FORWARD_QUEUE_LENGTH);
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for QueuedGauge {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.probe.abort();
    }
}

#[cfg(test)]
mod tests;
