//! Per-group memory of what was last forwarded: the label sets (not
//! values) of each family's series, the group's last sample timestamp, and
//! its last failure time.
//!
//! It is what lets a stateless forwarder end series the way a Pushgateway
//! scrape would: a PUT that no longer carries a series, a POST that replaces
//! a family without it, an empty PUT and a DELETE all yield the remembered
//! series that ended, for stale markers.
//!
//! Contract: one memory per shard (a group always maps to the same shard,
//! so no locking). A group is a grouping key within a tenant ([`GroupId`]):
//! two tenants pushing the same grouping key have separate series, and a
//! push of one never ends the other's series. The number of remembered series is bounded; beyond the
//! bound (on series, and on groups) the groups pushed least recently are
//! forgotten whole (counted in
//! `telemetry::SERIES_MEMORY_EVICTIONS`), after which their series can no
//! longer be ended by stale markers and their timestamps restart from the
//! receive time.
//!
//! Label bytes are not copied in: the shard holds each push it sends as a
//! [`SharedPush`], whose label buffer the remembered sets point into (a
//! set gets a buffer of its own once its push's buffer is mostly unused
//! by the group), so a large push is held once while it is sent.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use super::convert::{Converted, Family, Series};
use super::queue::codec::{Malformed, Put, Take};
use crate::push::{GroupingKey, PushOp};
use crate::telemetry;

/// A group as the forwarder tells groups apart: its tenant and its grouping
/// key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupId {
    pub tenant: Option<String>,
    pub key: GroupingKey,
}

/// A converted push as its shard holds it: its label bytes moved into a
/// shared buffer, so that the memory of the group's series keeps them
/// without a copy (a large push is held once while it is sent, not twice).
#[derive(Debug, Default)]
pub struct SharedPush {
    /// The push without its label bytes (`labels` is empty: they are in
    /// `labels` below).
    rest: Converted,
    labels: Arc<Vec<u8>>,
}

impl SharedPush {
    pub fn new(mut converted: Converted) -> Self {
        let mut labels = std::mem::take(&mut converted.labels);
        // The conversion reserves by estimate: the memory may keep the
        // buffer long after the push.
        labels.shrink_to_fit();
        Self {
            rest: converted,
            labels: Arc::new(labels),
        }
    }

    pub fn series(&self) -> &[Series] {
        &self.rest.series
    }

    pub fn families(&self) -> &[Family] {
        &self.rest.families
    }

    /// See [`Converted::histogram`].
    pub fn histogram(&self, index: usize) -> &[u8] {
        self.rest.histogram(index)
    }

    /// See [`Converted::timestamp`].
    pub fn timestamp(&self, index: usize) -> Option<i64> {
        self.rest.timestamp(index)
    }

    /// See [`Converted::metadata`].
    pub fn metadata(&self) -> &[u8] {
        &self.rest.metadata
    }

    /// See [`Converted::extras`].
    pub fn extras(&self) -> &[(usize, super::wire_v2::Extras)] {
        &self.rest.extras
    }

    /// The label bytes of one series.
    pub fn series_labels(&self, series: &Series) -> &[u8] {
        &self.labels[series.labels()]
    }
}

/// The encoded label sets of one family's series: a run of label bytes in
/// a buffer, either the buffer of the push that brought them (shared with
/// it while it is sent) or one of the set's own.
#[derive(Clone, Debug, Default)]
pub struct SeriesSet {
    buffer: Arc<Vec<u8>>,
    /// Where the set's bytes are in `buffer`.
    range: Range<usize>,
    /// Where each series' labels end, from `range.start` (u32: a family's
    /// label bytes are bounded by the body limits, and a million series
    /// cost 4 MB of ends, not 8).
    ends: Vec<u32>,
}

impl SeriesSet {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn bytes(&self) -> &[u8] {
        &self.buffer[self.range.clone()]
    }

    /// Each series' encoded labels.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let bytes = self.bytes();
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter())
            .map(move |(s, &e)| &bytes[s as usize..e as usize])
    }

    /// A set of its own holding `series`, in order.
    fn owning<'a>(series: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for labels in series {
            bytes.extend_from_slice(labels);
            ends.push(bytes.len() as u32);
        }
        Self {
            range: 0..bytes.len(),
            buffer: Arc::new(bytes),
            ends,
        }
    }

    /// Whether this set holds exactly the series of `push`'s family
    /// `index`, in the same order (the common case of a job pushing the same
    /// series again: one memcmp instead of hashing every series).
    fn same_as_family(&self, push: &SharedPush, index: usize) -> bool {
        let family = &push.families()[index];
        let base = family.labels.start;
        self.bytes() == &push.labels[family.labels.clone()]
            && self.ends.len() == family.series.len()
            && push.series()[family.series.clone()]
                .iter()
                .zip(&self.ends)
                .all(|(s, &end)| s.labels().end - base == end as usize)
    }

    /// The set of `push`'s family `index`, sharing the push's buffer.
    fn of_family(push: &SharedPush, index: usize) -> Self {
        let family = &push.families()[index];
        let base = family.labels.start;
        let ends = push.series()[family.series.clone()]
            .iter()
            .map(|s| (s.labels().end - base) as u32)
            .collect();
        Self {
            buffer: push.labels.clone(),
            range: family.labels.clone(),
            ends,
        }
    }

    /// Moves the set to a buffer of its own.
    fn unshare(&mut self) {
        *self = Self::owning(self.iter());
    }
}

/// What is remembered of one group.
#[derive(Debug, Default)]
pub struct Group {
    families: HashMap<String, SeriesSet>,
    /// The last timestamp stamped on the group's samples (ms).
    last_timestamp_ms: i64,
    /// Unix seconds of the last failed push (0: none seen).
    pub last_failure: f64,
    /// Whether push_time_seconds was ever forwarded for the group.
    pub pushed: bool,
    /// The receive time of the last push forwarded for the group: a
    /// re-send of an older state is outdated.
    pub last_push_at: Option<SystemTime>,
    recency: u64,
}

impl Group {
    /// The timestamp for the group's next samples: the receive time, or
    /// 1 ms after the previous samples, whichever is later, so that one
    /// series never gets two samples at one timestamp or out of order.
    pub fn next_timestamp(&mut self, received_ms: i64) -> i64 {
        let ts = self.peek_timestamp(received_ms);
        self.last_timestamp_ms = ts;
        ts
    }

    /// The timestamp [`Group::next_timestamp`] would give, without taking it.
    pub fn peek_timestamp(&self, received_ms: i64) -> i64 {
        received_ms.max(self.last_timestamp_ms.saturating_add(1))
    }

    fn series_count(&self) -> usize {
        self.families.values().map(SeriesSet::len).sum()
    }

    /// The remembered series that `op` with `push` ends.
    pub fn ended_series<'a>(
        &'a self,
        op: PushOp,
        push: &'a SharedPush,
    ) -> Vec<(&'a str, &'a [u8])> {
        let mut ended = Vec::new();
        let pushed: HashMap<&str, usize> = push
            .families()
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.as_str(), i))
            .collect();
        for (name, remembered) in &self.families {
            match (op, pushed.get(name.as_str())) {
                (PushOp::Delete, _) | (PushOp::Replace, None) => {
                    ended.extend(remembered.iter().map(|s| (name.as_str(), s)))
                }
                (PushOp::Merge, None) => {}
                (_, Some(&index)) if remembered.same_as_family(push, index) => {}
                (_, Some(&index)) => {
                    let family = &push.families()[index];
                    let still: HashSet<&[u8]> = push.series()[family.series.clone()]
                        .iter()
                        .map(|s| push.series_labels(s))
                        .collect();
                    ended.extend(
                        remembered
                            .iter()
                            .filter(|s| !still.contains(s))
                            .map(|s| (name.as_str(), s)),
                    );
                }
            }
        }
        ended
    }

    /// Makes the group hold what `op` with `push` leaves, as if it
    /// succeeds (later pushes in the same batch must see it).
    fn record(&mut self, op: PushOp, push: &SharedPush) {
        match op {
            PushOp::Delete => self.families.clear(),
            PushOp::Replace => {
                let pushed: HashSet<&str> =
                    push.families().iter().map(|f| f.name.as_str()).collect();
                self.families
                    .retain(|name, _| pushed.contains(name.as_str()));
            }
            PushOp::Merge => {}
        }
        for (index, family) in push.families().iter().enumerate() {
            if let Some(existing) = self.families.get(&family.name)
                && existing.same_as_family(push, index)
            {
                continue;
            }
            let set = SeriesSet::of_family(push, index);
            if set.is_empty() {
                self.families.remove(&family.name);
            } else {
                self.families.insert(family.name.clone(), set);
            }
        }
        self.release_unused_buffers();
    }

    /// Gives their own buffer to the sets that share a push's buffer of
    /// which the group uses less than half (the push's other families were
    /// replaced since, or remembered already): the memory then holds at
    /// most twice the label bytes it remembers. A push's buffer is only
    /// shared within its own group.
    fn release_unused_buffers(&mut self) {
        let mut used: HashMap<*const Vec<u8>, usize> = HashMap::new();
        for set in self.families.values() {
            *used.entry(Arc::as_ptr(&set.buffer)).or_default() += set.range.len();
        }
        for set in self.families.values_mut() {
            if used[&Arc::as_ptr(&set.buffer)] * 2 < set.buffer.len() {
                set.unshare();
            }
        }
    }

    /// Remembers `ended` series again after the push that ended them failed:
    /// their stale markers may not have landed. (The failed push's own
    /// series stay remembered too: some may have reached the backend, and
    /// ending a series that does not exist is harmless.)
    fn restore(&mut self, ended: &[(String, Vec<u8>)]) {
        let mut by_family: HashMap<&str, Vec<&[u8]>> = HashMap::new();
        for (family, labels) in ended {
            by_family
                .entry(family.as_str())
                .or_default()
                .push(labels.as_slice());
        }
        for (family, labels) in by_family {
            let set = self.families.entry(family.to_string()).or_default();
            let mut known: HashSet<&[u8]> = set.iter().collect();
            let missing: Vec<&[u8]> = labels.into_iter().filter(|l| known.insert(*l)).collect();
            if !missing.is_empty() {
                *set = SeriesSet::owning(set.iter().chain(missing));
            }
        }
    }
}

/// The groups one shard has forwarded, bounded by series count.
#[derive(Debug)]
pub struct SeriesMemory {
    groups: HashMap<GroupId, Group>,
    by_recency: BTreeMap<u64, GroupId>,
    clock: u64,
    series: usize,
    max_series: usize,
}

impl SeriesMemory {
    pub fn new(max_series: usize) -> Self {
        Self {
            groups: HashMap::new(),
            by_recency: BTreeMap::new(),
            clock: 0,
            series: 0,
            max_series,
        }
    }

    /// The group's memory, created empty when unknown; marks it as the most
    /// recently used.
    pub fn group(&mut self, key: &GroupId) -> &mut Group {
        self.clock += 1;
        let group = self.groups.entry(key.clone()).or_default();
        // Recency 0 means "new": the clock starts at 1.
        if group.recency != 0 {
            self.by_recency.remove(&group.recency);
        }
        group.recency = self.clock;
        self.by_recency.insert(self.clock, key.clone());
        group
    }

    /// Records what a push leaves in its group (see [`Group::record`]),
    /// then forgets the least recently pushed groups while over the bound
    /// (never `key` itself).
    pub fn record(&mut self, key: &GroupId, op: PushOp, push: &SharedPush) {
        self.update(key, |group| group.record(op, push));
    }

    /// Remembers again the series a failed push had ended.
    pub fn restore(&mut self, key: &GroupId, ended: &[(String, Vec<u8>)]) {
        self.update(key, |group| group.restore(ended));
    }

    fn update(&mut self, key: &GroupId, change: impl FnOnce(&mut Group)) {
        let group = self.group(key);
        let before = group.series_count();
        change(group);
        let after = group.series_count();
        self.series = self.series + after - before;
        metrics::gauge!(telemetry::REMEMBERED_SERIES).increment(after as f64 - before as f64);
        self.evict(key);
    }

    fn evict(&mut self, keep: &GroupId) {
        // Groups count too: a group whose series all ended still holds its
        // timestamp and failure time.
        while self.series > self.max_series || self.groups.len() > self.max_series {
            let Some((&recency, oldest)) = self.by_recency.iter().next() else {
                return;
            };
            if oldest == keep {
                return;
            }
            let oldest = oldest.clone();
            self.by_recency.remove(&recency);
            if let Some(group) = self.groups.remove(&oldest) {
                let count = group.series_count();
                self.series -= count;
                metrics::gauge!(telemetry::REMEMBERED_SERIES).decrement(count as f64);
                metrics::counter!(telemetry::SERIES_MEMORY_EVICTIONS).increment(count as u64);
            }
        }
    }

    /// Appends every group to `out`, least recently pushed first, in the
    /// layout [`SeriesMemory::load`] reads (the disk queue's snapshot).
    pub fn save(&self, out: &mut Vec<u8>) {
        let mut put = Put(out);
        put.len(self.by_recency.len());
        for id in self.by_recency.values() {
            let group = &self.groups[id];
            put.group(id);
            put.i64(group.last_timestamp_ms);
            put.f64(group.last_failure);
            put.u8(u8::from(group.pushed));
            put.len(group.families.len());
            for (name, set) in &group.families {
                put.str(name);
                put.bytes(set.bytes());
                put.len(set.ends.len());
                for &end in &set.ends {
                    put.u32(end);
                }
            }
        }
    }

    /// The groups [`SeriesMemory::save`] wrote, in its order.
    pub fn load(bytes: &[u8]) -> Result<Vec<(GroupId, Group)>, Malformed> {
        let mut take = Take(bytes);
        let count = take.len()?;
        let mut groups = Vec::with_capacity(count);
        for _ in 0..count {
            let id = take.group()?;
            let mut group = Group {
                last_timestamp_ms: take.i64()?,
                last_failure: take.f64()?,
                pushed: take.u8()? != 0,
                ..Group::default()
            };
            for _ in 0..take.len()? {
                let name = take.str()?;
                let bytes = take.bytes()?.to_vec();
                let ends = (0..take.len()?)
                    .map(|_| take.u32())
                    .collect::<Result<Vec<u32>, Malformed>>()?;
                let past_bytes = ends.last().is_some_and(|&end| end as usize > bytes.len());
                if ends.windows(2).any(|w| w[0] > w[1]) || past_bytes {
                    return Err(Malformed("series ends out of order"));
                }
                let set = SeriesSet {
                    range: 0..bytes.len(),
                    buffer: Arc::new(bytes),
                    ends,
                };
                group.families.insert(name, set);
            }
            groups.push((id, group));
        }
        if !take.is_empty() {
            return Err(Malformed("bytes after the groups"));
        }
        Ok(groups)
    }

    /// Adds a group read back by [`SeriesMemory::load`] as the most
    /// recently pushed one (within the bound, as any push).
    pub fn insert(&mut self, id: &GroupId, loaded: Group) {
        self.update(id, |group| {
            let recency = group.recency;
            *group = loaded;
            group.recency = recency;
        });
    }

    /// Series remembered in all groups.
    #[cfg(test)]
    pub fn series(&self) -> usize {
        self.series
    }
}

#[cfg(test)]
mod tests;
