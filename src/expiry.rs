//! Expiry of cached groups (`cache.group_ttl`, `cache.group_ttl_rules`): a
//! group nobody pushed for its TTL ([`crate::cache::ttl`]) is removed as a
//! DELETE would remove it.
//!
//! - A sweeper checks every group a few times per shortest TTL. A group
//!   changed by a write since the sweeper read it is not removed.
//! - Removal is logged at info with the group, counted in
//!   `pushrelay_cache_groups_expired_total`, and, when forwarding, ends
//!   the group's series with stale markers (through the forwarder's shard,
//!   unless a newer push of the group was forwarded first).
//! - A wipe (`PUT /api/v1/admin/wipe`) ends the removed groups' series the
//!   same way ([`end_wiped_groups`]).

use std::time::SystemTime;

use tokio::task::JoinHandle;

use crate::cache::Cache;
use crate::cache::store::Group;
use crate::cache::ttl::{TtlPolicy, last_change};
use crate::forward::{GroupId, ResendQueue, convert};
use crate::proto::client::MetricFamily;
use crate::telemetry;

/// Where the stale markers of removed groups (expired or wiped) go, when
/// forwarding.
#[derive(Clone)]
pub struct Ending {
    pub queue: ResendQueue,
}

impl Ending {
    /// Ends `group`'s series in the backend.
    pub async fn end(&self, group: &Group) {
        let id = GroupId {
            tenant: group.tenant.clone(),
            key: group.key.clone(),
        };
        let families: Vec<MetricFamily> = group.families.values().map(|f| f.family()).collect();
        let converted = convert::convert(&families, &group.key);
        self.queue.end(id, converted, last_change(group)).await;
    }
}

/// Makes a wipe of `cache` end every removed group's series through
/// `ending`.
pub fn end_wiped_groups(cache: &Cache, ending: Ending) {
    cache.on_wipe(move |groups| {
        let ending = ending.clone();
        tokio::spawn(async move {
            for group in groups {
                ending.end(&group).await;
            }
        });
    });
}

/// Starts the sweeper.
pub fn start(cache: Cache, policy: TtlPolicy, ending: Option<Ending>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(policy.sweep_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            sweep(&cache, &policy, ending.as_ref()).await;
        }
    })
}

/// Removes every group whose TTL has passed.
async fn sweep(cache: &Cache, policy: &TtlPolicy, ending: Option<&Ending>) {
    let now = SystemTime::now();
    for group in cache.store().snapshot() {
        let Some(expires_at) = policy.expires_at(&group) else {
            continue;
        };
        if expires_at > now || !cache.remove_unchanged(&group) {
            continue;
        }
        let labels: Vec<String> = group
            .key
            .labels()
            .iter()
            .map(|(name, value)| format!("{name}={value:?}"))
            .collect();
        tracing::info!(group = %labels.join(","), "group expired: not pushed within its TTL");
        metrics::counter!(telemetry::GROUPS_EXPIRED).increment(1);
        if let Some(ending) = ending {
            ending.end(&group).await;
        }
    }
}
