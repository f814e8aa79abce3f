//! The re-send ticker (`remote_write.resend_interval`): a scrape without a
//! scraper.
//!
//! A Pushgateway keeps a pushed value alive in Prometheus because every
//! scrape samples it again; a remote_write-only backend has no scrape. So,
//! every interval, each cached group is written again through the
//! forwarder, stamped with the current time: exactly the series a scrape of
//! the cache gives (values, metadata, `push_time_seconds`,
//! `push_failure_time_seconds`).
//!
//! Rules:
//! - Spread, not a burst: each group has a fixed phase within the interval
//!   (from a hash of its tenant and key), so its re-sends come one interval
//!   apart whatever else is stored.
//! - Same shard, same clock: re-sends enter the forwarder's shard queues
//!   ([`ResendQueue`]), so a group's pushes and re-sends are stamped by one
//!   clock, strictly increasing and never ahead of it; a re-send of a state
//!   older than a push already forwarded is dropped there.
//! - Newest state only: what is re-sent is read from the cache at its
//!   phase; while earlier re-sends are still queued (a backend outage), a
//!   group is skipped for this round, never queued behind (counted as
//!   `busy`), so an outage builds no backlog.
//! - A group that leaves the cache (DELETE, a PUT dropping series, a wipe,
//!   expiry) is ended by the forwarder's stale markers like any push, and
//!   is no longer re-sent.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cache::Cache;
use crate::cache::store::Group;
use crate::forward::{GroupId, ResendQueue, convert};
use crate::proto::client::MetricFamily;
use crate::telemetry;

/// Starts re-sending every cached group each `interval`.
pub fn start(cache: Cache, queue: ResendQueue, interval: Duration) -> JoinHandle<()> {
    let ticker = Ticker {
        cache,
        queue,
        interval,
    };
    tokio::spawn(ticker.run())
}

struct Ticker {
    cache: Cache,
    queue: ResendQueue,
    interval: Duration,
}

impl Ticker {
    async fn run(self) {
        let mut round = Instant::now();
        loop {
            let mut due: Vec<(f64, GroupId)> = self
                .cache
                .store()
                .snapshot()
                .iter()
                .map(|group| {
                    let id = self.group_id(group);
                    (phase(&id), id)
                })
                .collect();
            due.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (phase, id) in due {
                tokio::time::sleep_until(round + self.interval.mul_f64(phase)).await;
                self.resend(id);
            }
            round += self.interval;
            tokio::time::sleep_until(round).await;
        }
    }

    /// The tenant and key the forwarder knows the group by.
    fn group_id(&self, group: &Group) -> GroupId {
        GroupId {
            tenant: group.tenant.clone(),
            key: group.key.clone(),
        }
    }

    /// Queues the group's newest cached state, if it is still cached.
    fn resend(&self, id: GroupId) {
        let Some(group) = self.cache.store().group(id.tenant.as_deref(), &id.key) else {
            return;
        };
        let families: Vec<MetricFamily> = group.families.values().map(|f| f.family()).collect();
        let converted = convert::convert(&families, &group.key);
        let stamps = (group.push_time.seconds(), group.failure_time.seconds());
        let state_of = group.push_time.value.unwrap_or(group.push_time.stored_at);
        if !self.queue.offer(id, converted, stamps, state_of) {
            metrics::counter!(telemetry::RESENDS, "outcome" => "busy").increment(1);
        }
    }
}

/// The group's fixed place within the interval, in `[0, 1)`.
fn phase(id: &GroupId) -> f64 {
    let mut hasher = DefaultHasher::new();
    id.hash(&mut hasher);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}
