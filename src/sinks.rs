//! Fan-out of one [`Push`] to the enabled sinks: the forwarder, the cache,
//! or both.
//!
//! With both, a push succeeds only when it is forwarded and stored: the cache
//! checks the push first (a push it would refuse is never forwarded), then the
//! forwarder sends it, then the cache applies it.
//!
//! Tenants are resolved by ingest with the forwarder's policy (without a
//! forwarder pushes have none); the cache keys groups by tenant and
//! grouping key, so two tenants pushing one grouping key never share a
//! group.

use std::time::SystemTime;

use http::StatusCode;

use crate::cache::Cache;
use crate::forward::{self, Forwarder};
use crate::push::{GroupingKey, Push, PushOp, PushSink, SinkError};

/// The sinks a push goes to. At least one is present.
pub struct Sinks {
    pub forwarder: Option<Forwarder>,
    pub cache: Option<Cache>,
}

impl PushSink for Sinks {
    /// The forwarder's admission (its queue place with `ack = "async"`).
    type Admission<'a> = Option<forward::Admission<'a>>;

    /// Asks the forwarder (the one sink that sheds load) for room.
    async fn admit(
        &self,
        _op: PushOp,
        tenant: Option<&str>,
        key: &GroupingKey,
    ) -> Result<Self::Admission<'_>, SinkError> {
        match &self.forwarder {
            Some(forwarder) => forwarder.admit(tenant, key).await.map(Some),
            None => Ok(None),
        }
    }

    /// Hands `push` to every enabled sink; the first refusal wins. Without
    /// the cache, the push (its body and the body's index) is dropped once
    /// converted, before the wait for delivery: a large push is then held
    /// once, converted.
    async fn apply<'a>(
        &'a self,
        push: Push,
        admission: Self::Admission<'a>,
    ) -> Result<(), SinkError> {
        let Some(forwarder) = &self.forwarder else {
            return self.store(push);
        };
        if let Some(cache) = &self.cache {
            cache.check(&push)?;
        }
        let admission = match admission {
            Some(admission) => admission,
            None => forwarder.admit(push.tenant.as_deref(), &push.key).await?,
        };
        let outgoing = forwarder.convert(&push)?;
        if self.cache.is_none() {
            drop(push);
            return forwarder.send(outgoing, admission).await;
        }
        forwarder.send(outgoing, admission).await?;
        self.store(push)
    }

    /// Notes a push to `key` whose metrics were refused as invalid or
    /// inconsistent: the cache records the group's failure time, as the
    /// Pushgateway does.
    fn record_failure(&self, tenant: Option<&str>, key: &GroupingKey, at: SystemTime) {
        if let Some(cache) = &self.cache {
            cache.store().record_failure(tenant, key, at);
        }
    }

    /// The status of an accepted push or delete: 202 for a delete, and for
    /// every push when the cache runs without its consistency check (as the
    /// Pushgateway answers then); 200 otherwise.
    fn accepted_status(&self, op: PushOp) -> StatusCode {
        let unchecked = self
            .cache
            .as_ref()
            .is_some_and(|c| c.store().options().disable_consistency_check);
        if op == PushOp::Delete || unchecked {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        }
    }
}

impl Sinks {
    /// Stores `push` in the cache, when there is one.
    fn store(&self, push: Push) -> Result<(), SinkError> {
        match &self.cache {
            Some(cache) => cache.apply(push),
            None => Ok(()),
        }
    }

    /// Sends everything the forwarder still has queued (shutdown).
    pub async fn drain(&self) {
        if let Some(forwarder) = &self.forwarder {
            forwarder.drain().await;
        }
    }

    /// Ready when a push sent now can be delivered (forward mode: see
    /// `forward::readiness`) or always (cache only).
    pub fn is_ready(&self) -> bool {
        self.forwarder.as_ref().is_none_or(Forwarder::is_ready)
    }
}
