//! The Pushgateway store: groups of metric families keyed by grouping key,
//! with the Pushgateway's PUT/POST/DELETE semantics and failure bookkeeping.
//!
//! # Concurrency
//!
//! One `RwLock` guards the whole state. Groups and families are behind
//! `Arc`s and copied on write (`Arc::make_mut`), so:
//! - a writer holds the lock only for the check and the swap of the changed
//!   families: O(pushed series), never O(stored series);
//! - a reader ([`Store::snapshot`]) holds it only to clone one `Arc` per
//!   group, then formats outside the lock; it sees every group exactly as one
//!   completed write left it (a consistent snapshot), and never blocks writers
//!   for longer than that copy;
//! - writes are applied in the order they take the lock; a write that got its
//!   answer is visible to every later read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use super::consistency::Index;
use super::merge_order::MergeCache;
use super::prepared::{Prepared, prepare};
use super::signatures::{same_labels, signature_of, type_name};
pub use super::stored::{Group, Stamp, StoredFamily};
use super::stored::{TooLarge, stamp_labels};
use crate::proto::client::{LabelPair, Metric, MetricType};
use crate::push::grouping::GroupingLabels;
use crate::push::path::go_quote;
use crate::push::validate::{INCONSISTENT_PREFIX, join_errors, render, suffix_collision};
use crate::push::{GroupingKey, Push, PushOp};
use crate::telemetry::{PUSH_FAILURE_TIME, PUSH_TIME};

/// A push refused by the store; the message is the pusher's 400 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// A push in its stored form, ready for [`Store::commit`].
pub struct PreparedPush {
    op: PushOp,
    tenant: Option<String>,
    key: GroupingKey,
    received_at: SystemTime,
    families: Result<Vec<Prepared>, TooLarge>,
}

/// How the store checks pushes.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    /// `--push.disable-consistency-check`: store inconsistent pushes anyway
    /// (timestamped pushes are still dropped, with a failure recorded).
    pub disable_consistency_check: bool,
    /// Families pushrelay exposes itself (name → type): pushes must not
    /// clash with them.
    pub own_families: HashMap<String, i32>,
}

#[derive(Default)]
struct State {
    groups: HashMap<u64, Arc<Group>>,
    /// Group IDs by grouping key, then tenant (usually one).
    by_key: HashMap<GroupingKey, Vec<(Option<String>, u64)>>,
    index: Index,
    next_id: u64,
}

/// The store. See the module docs for its concurrency guarantees.
pub struct Store {
    state: RwLock<State>,
    options: StoreOptions,
    generation: AtomicU64,
    merge_cache: MergeCache,
}

impl Store {
    /// An empty store.
    pub fn new(options: StoreOptions) -> Self {
        Self {
            state: RwLock::default(),
            options,
            generation: AtomicU64::new(0),
            merge_cache: MergeCache::default(),
        }
    }

    /// The options the store was built with.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// The scrape's merge orders of this store's families, kept between
    /// scrapes ([`super::scrape::render_cached`]).
    pub fn merge_cache(&self) -> &MergeCache {
        &self.merge_cache
    }

    /// Counts completed writes; changes whenever the stored data may have.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Applies one push (PUT, POST or DELETE) atomically. A refused push
    /// leaves the group's metrics untouched and records a failure time.
    pub fn apply(&self, push: &Push) -> Result<(), Refused> {
        self.commit(Self::prepare(push))
    }

    /// The first half of [`Store::apply`], outside the lock: `push` in its
    /// stored form. Nothing of `push` is borrowed, so a caller that owns
    /// it can free its body before the second half.
    pub fn prepare(push: &Push) -> PreparedPush {
        let families = match push.op {
            PushOp::Delete => Ok(Vec::new()),
            _ => prepare(
                &push.families,
                &GroupingLabels::new(&push.key),
                push.received_at,
            ),
        };
        PreparedPush {
            op: push.op,
            tenant: push.tenant.clone(),
            key: push.key.clone(),
            received_at: push.received_at,
            families,
        }
    }

    /// The second half of [`Store::apply`]: checks and stores a prepared
    /// push under the lock.
    pub fn commit(&self, push: PreparedPush) -> Result<(), Refused> {
        let PreparedPush {
            op,
            tenant,
            key,
            received_at: now,
            families,
        } = push;
        let tenant = tenant.as_deref();
        if op == PushOp::Delete {
            self.delete(tenant, &key);
            return Ok(());
        }
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let outcome = match &families {
            Ok(families) => self.verdict(&state, op, tenant, &key, families),
            Err(too_large) => Verdict::Refuse(too_large.to_string()),
        };
        let result = match (outcome, families) {
            (Verdict::Store, Ok(families)) => {
                state.store(op, tenant, &key, families, now);
                Ok(())
            }
            (Verdict::Store, Err(_)) => Ok(()),
            (Verdict::Drop, _) => {
                state.record_failure(tenant, &key, now);
                Ok(())
            }
            (Verdict::Refuse(message), _) => {
                state.record_failure(tenant, &key, now);
                Err(Refused(message))
            }
        };
        drop(state);
        self.generation.fetch_add(1, Ordering::SeqCst);
        result
    }

    /// Checks a push without storing it; a refusal records a failure time,
    /// as a refused [`Store::apply`] does.
    pub fn check(&self, push: &Push) -> Result<(), Refused> {
        if push.op == PushOp::Delete {
            return Ok(());
        }
        let grouping = GroupingLabels::new(&push.key);
        let tenant = push.tenant.as_deref();
        let verdict = match prepare(&push.families, &grouping, push.received_at) {
            Ok(families) => {
                let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
                self.verdict(&state, push.op, tenant, &push.key, &families)
            }
            Err(too_large) => Verdict::Refuse(too_large.to_string()),
        };
        match verdict {
            Verdict::Store | Verdict::Drop => Ok(()),
            Verdict::Refuse(message) => {
                self.state
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .record_failure(tenant, &push.key, push.received_at);
                self.generation.fetch_add(1, Ordering::SeqCst);
                Err(Refused(message))
            }
        }
    }

    /// Records a push to `key` of `tenant` refused before it reached the
    /// store (its metrics were invalid or inconsistent in themselves).
    pub fn record_failure(&self, tenant: Option<&str>, key: &GroupingKey, now: SystemTime) {
        self.state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .record_failure(tenant, key, now);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Removes `tenant`'s group with exactly this key (no-op when absent).
    pub fn delete(&self, tenant: Option<&str>, key: &GroupingKey) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.remove(tenant, key);
        drop(state);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Removes `group` if no write changed it since it was read (expiry:
    /// a group pushed again meanwhile stays); whether it was removed.
    pub fn remove_unchanged(&self, group: &Arc<Group>) -> bool {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let current = state
            .id_of(group.tenant.as_deref(), &group.key)
            .and_then(|id| state.groups.get(&id));
        if !current.is_some_and(|current| Arc::ptr_eq(current, group)) {
            return false;
        }
        state.remove(group.tenant.as_deref(), &group.key);
        drop(state);
        self.generation.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Removes every group; returns them.
    pub fn wipe(&self) -> Vec<Arc<Group>> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let removed = std::mem::take(&mut *state);
        drop(state);
        self.generation.fetch_add(1, Ordering::SeqCst);
        removed.groups.into_values().collect()
    }

    /// `tenant`'s group with exactly this key, as the last completed write
    /// left it.
    pub fn group(&self, tenant: Option<&str>, key: &GroupingKey) -> Option<Arc<Group>> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let id = state.id_of(tenant, key)?;
        state.groups.get(&id).cloned()
    }

    /// Every group as one completed write left it, in no particular order.
    pub fn snapshot(&self) -> Vec<Arc<Group>> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.groups.values().cloned().collect()
    }

    /// Replaces the whole content (persistence restore). Not checked, as the
    /// Pushgateway does not check what it loads.
    pub fn restore(&self, groups: Vec<Group>) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        *state = State::default();
        for group in groups {
            let id = state.insert_group(
                group.tenant.as_deref(),
                &group.key,
                group.push_time.stored_at,
            );
            let State { groups, index, .. } = &mut *state;
            for stored in group.families.values() {
                index.insert_family(id, stored.name(), stored.kind(), signatures(stored));
            }
            groups.insert(id, Arc::new(group));
        }
        drop(state);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn verdict(
        &self,
        state: &State,
        op: PushOp,
        tenant: Option<&str>,
        key: &GroupingKey,
        families: &[Prepared],
    ) -> Verdict {
        let timestamped = families.iter().any(|f| f.timestamped);
        if self.options.disable_consistency_check {
            return if timestamped {
                Verdict::Drop
            } else {
                Verdict::Store
            };
        }
        if timestamped {
            return Verdict::Refuse(format!(
                "{INCONSISTENT_PREFIX}pushed metrics must not have timestamps"
            ));
        }
        let errors = state.check(op, tenant, key, families, &self.options.own_families);
        if errors.is_empty() {
            Verdict::Store
        } else {
            Verdict::Refuse(format!("{INCONSISTENT_PREFIX}{}", join_errors(&errors)))
        }
    }
}

enum Verdict {
    Store,
    /// Accepted but not stored (timestamps with the check disabled).
    Drop,
    Refuse(String),
}

/// The signatures of a stored family's series.
fn signatures(stored: &StoredFamily) -> impl Iterator<Item = u64> + '_ {
    stored.signatures().iter().copied()
}

impl State {
    /// The ID of `tenant`'s group with `key`.
    fn id_of(&self, tenant: Option<&str>, key: &GroupingKey) -> Option<u64> {
        self.by_key
            .get(key)?
            .iter()
            .find(|(t, _)| t.as_deref() == tenant)
            .map(|(_, id)| *id)
    }

    fn insert_group(&mut self, tenant: Option<&str>, key: &GroupingKey, now: SystemTime) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let labels = stamp_labels(key);
        for name in [PUSH_TIME, PUSH_FAILURE_TIME] {
            self.index.insert_series(id, signature_of(name, &labels));
        }
        let tenant = tenant.map(str::to_string);
        self.by_key
            .entry(key.clone())
            .or_default()
            .push((tenant.clone(), id));
        let group = Group::new(tenant, key.clone(), now);
        self.groups.insert(id, Arc::new(group));
        id
    }

    fn remove(&mut self, tenant: Option<&str>, key: &GroupingKey) {
        let Some(tenants) = self.by_key.get_mut(key) else {
            return;
        };
        let Some(position) = tenants.iter().position(|(t, _)| t.as_deref() == tenant) else {
            return;
        };
        let (_, id) = tenants.swap_remove(position);
        if tenants.is_empty() {
            self.by_key.remove(key);
        }
        let Some(group) = self.groups.remove(&id) else {
            return;
        };
        for stored in group.families.values() {
            self.index
                .remove_family(id, stored.name(), signatures(stored));
        }
        let labels = group.push_labels();
        for name in [PUSH_TIME, PUSH_FAILURE_TIME] {
            self.index.remove_series(id, signature_of(name, &labels));
        }
    }

    fn store(
        &mut self,
        op: PushOp,
        tenant: Option<&str>,
        key: &GroupingKey,
        families: Vec<Prepared>,
        now: SystemTime,
    ) {
        let id = match self.id_of(tenant, key) {
            Some(id) => id,
            None => self.insert_group(tenant, key, now),
        };
        let State { groups, index, .. } = self;
        let Some(slot) = groups.get_mut(&id) else {
            return;
        };
        let group = Arc::make_mut(slot);
        if op == PushOp::Replace {
            for old in std::mem::take(&mut group.families).into_values() {
                index.remove_family(id, old.name(), signatures(&old));
            }
        }
        for Prepared { stored, .. } in families {
            // The old family leaves the index first: its series are
            // usually the new one's, and the owner lists stay single.
            if let Some(old) = group.families.get(stored.name()) {
                index.remove_family(id, old.name(), signatures(old));
            }
            index.insert_family(id, stored.name(), stored.kind(), signatures(&stored));
            group
                .families
                .insert(stored.name().to_string(), Arc::new(stored));
        }
        group.push_time = Stamp {
            value: Some(now),
            stored_at: now,
        };
    }

    /// Records a refused push. A new group is created holding only its
    /// stamps, unless those stamps would duplicate another group's (the
    /// Pushgateway creates it anyway and poisons itself; see
    /// docs/cache-divergences.md).
    fn record_failure(&mut self, tenant: Option<&str>, key: &GroupingKey, now: SystemTime) {
        let id = match self.id_of(tenant, key) {
            Some(id) => id,
            None => {
                if self.stamp_clash(tenant, key).is_some() {
                    return;
                }
                self.insert_group(tenant, key, now)
            }
        };
        if let Some(slot) = self.groups.get_mut(&id) {
            Arc::make_mut(slot).failure_time = Stamp {
                value: Some(now),
                stored_at: now,
            };
        }
    }

    /// The first `push_*` series of a new group of `tenant` with `key` that
    /// another group of the tenant already exposes.
    fn stamp_clash(
        &self,
        tenant: Option<&str>,
        key: &GroupingKey,
    ) -> Option<(&'static str, Vec<LabelPair>)> {
        let labels = stamp_labels(key);
        for name in [PUSH_TIME, PUSH_FAILURE_TIME] {
            let signature = signature_of(name, &labels);
            let clash = self.index.owners(signature).any(|owner| {
                self.groups.get(&owner).is_some_and(|g| {
                    g.tenant.as_deref() == tenant && same_labels(&g.push_labels(), &labels)
                })
            });
            if clash {
                return Some((name, labels));
            }
        }
        None
    }

    /// The cache's step on top of the push check (`validate::check`, which
    /// every [`Push`] has passed): the push against the other groups and
    /// pushrelay's own families, through the index: type clashes, suffix
    /// collisions, series another group already exposes, and the stamps
    /// of a new group. O(pushed series).
    fn check(
        &self,
        op: PushOp,
        tenant: Option<&str>,
        key: &GroupingKey,
        families: &[Prepared],
        own: &HashMap<String, i32>,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        let own_id = self.id_of(tenant, key);
        let group = own_id.and_then(|id| self.groups.get(&id));
        let pushed: HashMap<&str, i32> = families
            .iter()
            .filter(|f| !f.stored.is_empty())
            .map(|f| (f.name(), f.kind()))
            .collect();
        // Whether this group's stored family `name` goes away with this push.
        let replaced = |name: &str| {
            group.is_some_and(|g| {
                g.families.get(name).is_some_and(|f| !f.is_empty())
                    && (op == PushOp::Replace || pushed.contains_key(name))
            })
        };
        let stored_elsewhere = |name: &str| {
            if let Some(kind) = own.get(name) {
                return Some(*kind);
            }
            if name == PUSH_TIME || name == PUSH_FAILURE_TIME {
                return Some(MetricType::Gauge as i32);
            }
            let (kind, holders) = self.index.family(name)?;
            (holders > u32::from(replaced(name))).then_some(kind)
        };
        for family in families {
            if family.stored.is_empty() {
                continue;
            }
            let name = family.name();
            let kind = family.kind();
            match (own.get(name), stored_elsewhere(name)) {
                (Some(own_kind), _) if *own_kind != kind => errors.push(format!(
                    "gathered metric family {name} has type {} but should have {}",
                    type_name(kind),
                    type_name(*own_kind)
                )),
                (_, Some(existing)) if existing != kind => {
                    for i in 0..family.stored.len() {
                        errors.push(format!(
                            "{} is not a {}",
                            family.describe(i),
                            type_name(existing)
                        ));
                    }
                }
                _ => {}
            }
            // Collisions within the push were the push check's: only
            // those with a family stored elsewhere are left.
            let collected =
                |n: &str| stored_elsewhere(n).and_then(|k| MetricType::try_from(k).ok());
            if let Ok(kind) = MetricType::try_from(kind)
                && let Some(collision) = suffix_collision(name, kind, collected)
            {
                errors.push(collision);
            }
            for (i, &signature) in family.stored.signatures().iter().enumerate() {
                let labels = family.stored.labels(i);
                let elsewhere = self.index.owners(signature).any(|owner| {
                    Some(owner) != own_id
                        && self.groups.get(&owner).is_some_and(|g| {
                            g.tenant.as_deref() == tenant
                                && g.families
                                    .get(name)
                                    .is_some_and(|f| f.holds(labels.clone()))
                        })
                });
                if elsewhere {
                    errors.push(format!(
                        "{} was collected before with the same name and label values",
                        family.describe(i)
                    ));
                }
            }
        }
        if own_id.is_none()
            && let Some((name, labels)) = self.stamp_clash(tenant, key)
        {
            let metric = Metric {
                label: labels,
                gauge: Some(Default::default()),
                ..Default::default()
            };
            errors.push(format!(
                "collected metric {} {{ {}}} was collected before with the same name and label values",
                go_quote(name.as_bytes()),
                render::compact_text(&metric)
            ));
        }
        errors
    }
}

#[cfg(test)]
mod consistency_tests;
#[cfg(test)]
mod tests;
