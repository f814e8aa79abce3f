//! The way cached groups reach the backend again without a pusher: the
//! re-send ticker's periodic re-sends (`crate::resend`) and the endings of
//! expired or wiped groups (`crate::expiry`), queued to the same shards as
//! pushes so that a group's re-sends and pushes are stamped and sent in one
//! order.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::convert::Converted;
use super::relabel::Relabeler;
use super::shard::{FromCache, Message, Queued, ResendTicket};
use super::{GroupId, shard_index, too_large_to_forward};
use crate::push::PushOp;

/// Re-sends queued or in flight per shard beyond which the re-send ticker
/// skips groups: a backend outage then holds a few re-sends, never a
/// backlog (the skipped groups' newest state goes out on the next round).
const RESENDS_IN_FLIGHT_PER_SHARD: usize = 16;

/// The re-send ticker's way into the forwarder (`crate::resend`): the
/// shards' own queues, so a group's re-sends and pushes are stamped and
/// sent in one order.
#[derive(Clone)]
pub struct ResendQueue {
    shards: Vec<mpsc::Sender<Message>>,
    in_flight: Arc<AtomicUsize>,
    limit: usize,
    patience: Duration,
    /// Re-sent and ended series are relabeled as pushed ones are, so they
    /// name exactly the series the pushes wrote.
    relabel: Arc<Relabeler>,
}

impl ResendQueue {
    pub(super) fn new(
        shards: Vec<mpsc::Sender<Message>>,
        in_flight: Arc<AtomicUsize>,
        patience: Duration,
        relabel: Arc<Relabeler>,
    ) -> Self {
        Self {
            limit: RESENDS_IN_FLIGHT_PER_SHARD * shards.len(),
            shards,
            in_flight,
            patience,
            relabel,
        }
    }

    /// Queues a re-send of `group`'s cached state (`converted`, with its
    /// `push_time_seconds` and `push_failure_time_seconds` values and the
    /// time that state was pushed); `false` when it was skipped because
    /// earlier re-sends are still queued or the forwarder stopped.
    pub fn offer(
        &self,
        group: GroupId,
        mut converted: Converted,
        (push_time, failure_time): (f64, f64),
        state_of: SystemTime,
    ) -> bool {
        let Some(ticket) = ResendTicket::take(&self.in_flight, self.limit) else {
            return false;
        };
        self.relabel.apply(&mut converted);
        if converted.too_large {
            tracing::warn!(group = ?group.key.labels(), "{}", too_large_to_forward());
            return false;
        }
        let shard = &self.shards[shard_index(&group, self.shards.len())];
        let now = SystemTime::now();
        let message = Message::Push(Box::new(Queued {
            op: PushOp::Replace,
            group,
            received_at: now,
            converted,
            deadline: Instant::now() + self.patience,
            reply: None,
            hot_slot: None,
            from_cache: Some(FromCache {
                push_time,
                failure_time,
                state_of,
                ticket: Some(ticket),
            }),
        }));
        shard.try_send(message).is_ok()
    }

    /// Ends a group the cache removed (expiry, wipe): stale markers for its
    /// cached series (`converted`, whose push time was `state_of`) and
    /// everything the forwarder remembers of it, unless a newer push of the
    /// group was forwarded meanwhile. Waits for room in the queue.
    pub async fn end(&self, group: GroupId, mut converted: Converted, state_of: SystemTime) {
        self.relabel.apply(&mut converted);
        if converted.too_large {
            // What the forwarder remembers of the group still gets stale
            // markers; the cached series it never sent cannot.
            tracing::warn!(group = ?group.key.labels(), "{}", too_large_to_forward());
            converted = Converted::default();
        }
        let shard = &self.shards[shard_index(&group, self.shards.len())];
        let message = Message::Push(Box::new(Queued {
            op: PushOp::Delete,
            group,
            received_at: SystemTime::now(),
            converted,
            deadline: Instant::now() + self.patience,
            reply: None,
            hot_slot: None,
            from_cache: Some(FromCache {
                push_time: 0.0,
                failure_time: 0.0,
                state_of,
                ticket: None,
            }),
        }));
        let _ = shard.send(message).await;
    }
}
