//! Cache mode: pushrelay as a complete Pushgateway.
//!
//! | module | owns |
//! |---|---|
//! | [`store`] | groups, PUT/POST/DELETE semantics, failure bookkeeping, locking |
//! | `stored` | a family's compact stored form and its cached text rendering |
//! | `prepared` | a push as the store sees it: each family in its stored form (labels merged with the grouping labels, signatures), built straight from the index |
//! | `signatures` | series signatures and family type names (a leaf) |
//! | `consistency` | the push-time consistency check and its index |
//! | `merge_order` | the scrape's merge orders kept between scrapes |
//! | [`scrape`] | `GET /metrics`: merge, sort, the protobuf writer, gzip |
//! | `text` | the text exposition writers (family header, metric lines) |
//! | `api` | the JSON API (`/api/v1/status`, `/api/v1/metrics`) |
//! | [`persistence`] | the persistence file: format, atomic writes, schedule |
//! | `ttl` | each group's TTL and expiry time (the sweeper is `crate::expiry`) |
//! | `ui` | the web page at `/` |
//! | `http` | the cache's routes (scrape, API, admin, lifecycle, UI) |
//!
//! [`Cache`] is the sink the push handler talks to (through
//! `crate::sinks`): a cheap handle, cloned wherever the store is needed.

pub(crate) mod api;
pub(crate) mod consistency;
pub(crate) mod http;
mod merge_order;
pub mod persistence;
mod prepared;
pub mod scrape;
pub(crate) mod signatures;
pub mod store;
pub(crate) mod stored;
mod text;
pub mod ttl;
pub(crate) mod ui;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use crate::proto::client::MetricType;
use crate::push::{Push, SinkError};
use crate::telemetry;
use store::{Store, StoreOptions};

/// Most writes that may wait for the store at once; more are answered 503
/// instead of queueing without bound (the Pushgateway blocks instead).
pub const MAX_PENDING_WRITES: usize = 1000;

/// The cache sink: the store plus the signals around it.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    pending_writes: AtomicUsize,
    changed: Notify,
    quit: Notify,
    started_at: SystemTime,
    on_wipe: OnceLock<WipeHook>,
}

/// What is done with the groups a wipe removed.
type WipeHook = Box<dyn Fn(Vec<Arc<store::Group>>) + Send + Sync>;

impl Cache {
    /// An empty cache.
    pub fn new(options: StoreOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: Store::new(options),
                pending_writes: AtomicUsize::new(0),
                changed: Notify::new(),
                quit: Notify::new(),
                started_at: SystemTime::now(),
                on_wipe: OnceLock::new(),
            }),
        }
    }

    /// The store behind the cache.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// When this cache was created (the process start, for the status API).
    pub fn started_at(&self) -> SystemTime {
        self.inner.started_at
    }

    /// Checks `push` against the store without storing it (used before
    /// forwarding, so that a push the cache would refuse is never sent).
    pub fn check(&self, push: &Push) -> Result<(), SinkError> {
        let result = self.inner.store.check(push);
        if result.is_err() {
            self.inner.changed.notify_one();
        }
        result.map_err(|refused| SinkError::Rejected(refused.0))
    }

    /// Applies `push`; a refusal is a 400 for the pusher. The push's body
    /// is freed once the push is in its stored form, before the store's
    /// lock is taken: a large push is not held twice over.
    pub fn apply(&self, push: Push) -> Result<(), SinkError> {
        let pending = self.inner.pending_writes.fetch_add(1, Ordering::SeqCst);
        let result = if pending >= MAX_PENDING_WRITES {
            Err(SinkError::Unavailable {
                message: "write queue is full".into(),
                retry_after: Duration::from_secs(1),
            })
        } else {
            let prepared = Store::prepare(&push);
            drop(push);
            let result = self.inner.store.commit(prepared);
            self.inner.changed.notify_one();
            result.map_err(|refused| SinkError::Rejected(refused.0))
        };
        self.inner.pending_writes.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Removes `group` unless a write changed it since it was read (see
    /// [`Store::remove_unchanged`]); whether it was removed.
    pub fn remove_unchanged(&self, group: &Arc<store::Group>) -> bool {
        let removed = self.inner.store.remove_unchanged(group);
        if removed {
            self.inner.changed.notify_one();
        }
        removed
    }

    /// Removes every group (`PUT /api/v1/admin/wipe`) and hands them to
    /// the wipe hook, if one is set.
    pub fn wipe(&self) {
        let removed = self.inner.store.wipe();
        self.inner.changed.notify_one();
        if let Some(hook) = self.inner.on_wipe.get() {
            hook(removed);
        }
    }

    /// Sets what is done with the groups a wipe removes (when forwarding:
    /// end their series in the backend). Only the first hook set counts.
    pub fn on_wipe(&self, hook: impl Fn(Vec<Arc<store::Group>>) + Send + Sync + 'static) {
        let _ = self.inner.on_wipe.set(Box::new(hook));
    }

    /// Whether the write path is saturated (health turns 500 then, as in
    /// the Pushgateway with a full queue).
    pub fn saturated(&self) -> bool {
        self.inner.pending_writes.load(Ordering::SeqCst) >= MAX_PENDING_WRITES
    }

    /// Resolves after a write that may have changed the store (one wake-up
    /// for any number of writes since the last wait).
    pub async fn changed(&self) {
        self.inner.changed.notified().await;
    }

    /// Asks the process to shut down (`/-/quit`).
    pub fn request_quit(&self) {
        self.inner.quit.notify_one();
    }

    /// Resolves once `/-/quit` was called.
    pub async fn quit_requested(&self) {
        self.inner.quit.notified().await;
    }
}

/// pushrelay's own families (name → type), which pushes must not clash
/// with: every metric `crate::telemetry` defines.
pub fn own_families() -> HashMap<String, i32> {
    telemetry::own_metrics()
        .map(|metric| {
            let kind = match metric.kind {
                telemetry::Kind::Counter => MetricType::Counter,
                telemetry::Kind::Gauge => MetricType::Gauge,
                telemetry::Kind::Histogram => MetricType::Histogram,
            };
            (metric.name.to_string(), kind as i32)
        })
        .collect()
}
