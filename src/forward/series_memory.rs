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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::SystemTime;

use super::convert::Converted;
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

/// The encoded label sets of one family's series.
#[derive(Clone, Debug, Default)]
pub struct SeriesSet {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl SeriesSet {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Each series' encoded labels.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter())
            .map(|(s, &e)| &self.bytes[s..e])
    }

    fn push(&mut self, labels: &[u8]) {
        self.bytes.extend_from_slice(labels);
        self.ends.push(self.bytes.len());
    }

    /// Whether this set holds exactly the series of `converted`'s family
    /// `index`, in the same order (the common case of a job pushing the same
    /// series again: one memcmp instead of hashing every series).
    fn same_as_family(&self, converted: &Converted, index: usize) -> bool {
        let family = &converted.families[index];
        let base = family.labels.start;
        self.bytes == converted.labels[family.labels.clone()]
            && self.ends.len() == family.series.len()
            && converted.series[family.series.clone()]
                .iter()
                .zip(&self.ends)
                .all(|(s, &end)| s.labels.end - base == end)
    }

    /// The set of `converted`'s family `index`.
    fn of_family(converted: &Converted, index: usize) -> Self {
        let family = &converted.families[index];
        let base = family.labels.start;
        let ends = converted.series[family.series.clone()]
            .iter()
            .map(|s| s.labels.end - base)
            .collect();
        Self {
            bytes: converted.labels[family.labels.clone()].to_vec(),
            ends,
        }
    }

    fn merge(&mut self, other: &SeriesSet) {
        let known: HashSet<&[u8]> = self.iter().collect();
        let missing: Vec<Vec<u8>> = other
            .iter()
            .filter(|s| !known.contains(s))
            .map(<[u8]>::to_vec)
            .collect();
        for labels in missing {
            self.push(&labels);
        }
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

    /// The remembered series that `op` with `converted` ends.
    pub fn ended_series<'a>(
        &'a self,
        op: PushOp,
        converted: &'a Converted,
    ) -> Vec<(&'a str, &'a [u8])> {
        let mut ended = Vec::new();
        let pushed: HashMap<&str, usize> = converted
            .families
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
                (_, Some(&index)) if remembered.same_as_family(converted, index) => {}
                (_, Some(&index)) => {
                    let family = &converted.families[index];
                    let still: HashSet<&[u8]> = converted.series[family.series.clone()]
                        .iter()
                        .map(|s| converted.series_labels(s))
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

    /// Makes the group hold what `op` with `converted` leaves, as if it
    /// succeeds (later pushes in the same batch must see it).
    fn record(&mut self, op: PushOp, converted: &Converted) {
        match op {
            PushOp::Delete => self.families.clear(),
            PushOp::Replace => {
                let pushed: HashSet<&str> =
                    converted.families.iter().map(|f| f.name.as_str()).collect();
                self.families
                    .retain(|name, _| pushed.contains(name.as_str()));
            }
            PushOp::Merge => {}
        }
        for (index, family) in converted.families.iter().enumerate() {
            if let Some(existing) = self.families.get(&family.name)
                && existing.same_as_family(converted, index)
            {
                continue;
            }
            let set = SeriesSet::of_family(converted, index);
            if set.is_empty() {
                self.families.remove(&family.name);
            } else {
                self.families.insert(family.name.clone(), set);
            }
        }
    }

    /// Remembers `ended` series again after the push that ended them failed:
    /// their stale markers may not have landed. (The failed push's own
    /// series stay remembered too: some may have reached the backend, and
    /// ending a series that does not exist is harmless.)
    fn restore(&mut self, ended: &[(String, Vec<u8>)]) {
        for (family, labels) in ended {
            let mut one = SeriesSet::default();
            one.push(labels);
            self.families.entry(family.clone()).or_default().merge(&one);
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
    pub fn record(&mut self, key: &GroupId, op: PushOp, converted: &Converted) {
        self.update(key, |group| group.record(op, converted));
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
                put.bytes(&set.bytes);
                put.len(set.ends.len());
                for &end in &set.ends {
                    put.len(end);
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
                    .map(|_| take.u32().map(|end| end as usize))
                    .collect::<Result<Vec<usize>, Malformed>>()?;
                if ends.windows(2).any(|w| w[0] > w[1]) || ends.last() > Some(&bytes.len()) {
                    return Err(Malformed("series ends out of order"));
                }
                group.families.insert(name, SeriesSet { bytes, ends });
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
mod tests {
    use super::*;
    use crate::forward::convert::convert;
    use crate::proto::client::{Gauge, LabelPair, Metric, MetricFamily, MetricType};

    fn key(job: &str) -> GroupId {
        GroupId {
            tenant: None,
            key: GroupingKey::new([("job".to_string(), job.to_string())]),
        }
    }

    /// Families `name{i=...}` with the given label values.
    fn push(families: &[(&str, &[&str])]) -> Converted {
        let families: Vec<MetricFamily> = families
            .iter()
            .map(|(name, values)| MetricFamily {
                name: Some(name.to_string()),
                r#type: Some(MetricType::Gauge as i32),
                metric: values
                    .iter()
                    .map(|v| Metric {
                        label: vec![LabelPair {
                            name: Some("i".into()),
                            value: Some(v.to_string()),
                        }],
                        gauge: Some(Gauge { value: Some(1.0) }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        convert(&families, &GroupingKey::new([]))
    }

    fn ended_count(memory: &mut SeriesMemory, op: PushOp, converted: &Converted) -> usize {
        memory.group(&key("j")).ended_series(op, converted).len()
    }

    #[test]
    fn put_post_and_delete_end_the_series_they_drop() {
        let mut memory = SeriesMemory::new(100);
        let first = push(&[("a", &["1", "2"]), ("b", &["1"])]);
        assert_eq!(ended_count(&mut memory, PushOp::Replace, &first), 0);
        memory.record(&key("j"), PushOp::Replace, &first);
        assert_eq!(memory.series(), 3);
        // The same push again ends nothing and remembers the same.
        assert_eq!(ended_count(&mut memory, PushOp::Replace, &first), 0);
        memory.record(&key("j"), PushOp::Replace, &first);
        assert_eq!(memory.series(), 3);

        // PUT without a{i=2} and without b: two series end.
        let put = push(&[("a", &["1"])]);
        assert_eq!(ended_count(&mut memory, PushOp::Replace, &put), 2);
        // POST of a without a{i=2}: only a's dropped series ends, b stays.
        assert_eq!(ended_count(&mut memory, PushOp::Merge, &put), 1);
        memory.record(&key("j"), PushOp::Merge, &put);
        assert_eq!(memory.series(), 2);
        // Empty PUT and DELETE end everything left.
        let empty = push(&[]);
        assert_eq!(ended_count(&mut memory, PushOp::Replace, &empty), 2);
        assert_eq!(ended_count(&mut memory, PushOp::Delete, &empty), 2);
        memory.record(&key("j"), PushOp::Delete, &empty);
        assert_eq!(memory.series(), 0);
    }

    #[test]
    fn a_failed_push_leaves_old_and_new_series_remembered() {
        let mut memory = SeriesMemory::new(100);
        memory.record(&key("j"), PushOp::Replace, &push(&[("a", &["1"])]));
        let second = push(&[("a", &["2"])]);
        let ended: Vec<(String, Vec<u8>)> = memory
            .group(&key("j"))
            .ended_series(PushOp::Replace, &second)
            .into_iter()
            .map(|(f, l)| (f.to_string(), l.to_vec()))
            .collect();
        assert_eq!(ended.len(), 1);
        memory.record(&key("j"), PushOp::Replace, &second);
        assert_eq!(memory.series(), 1);
        memory.restore(&key("j"), &ended);
        assert_eq!(memory.series(), 2);
        assert_eq!(ended_count(&mut memory, PushOp::Delete, &push(&[])), 2);
    }

    #[test]
    fn one_grouping_key_in_two_tenants_is_two_groups() {
        let mut memory = SeriesMemory::new(100);
        let in_tenant = |tenant: &str| GroupId {
            tenant: Some(tenant.to_string()),
            ..key("j")
        };
        memory.record(&in_tenant("a"), PushOp::Replace, &push(&[("m", &["1"])]));
        let other = push(&[("m", &["2"])]);
        // Tenant b's first push ends nothing of tenant a's group.
        let ended = memory
            .group(&in_tenant("b"))
            .ended_series(PushOp::Replace, &other)
            .len();
        assert_eq!(ended, 0);
        memory.record(&in_tenant("b"), PushOp::Replace, &other);
        assert_eq!(memory.series(), 2);
        let ended = memory
            .group(&in_tenant("a"))
            .ended_series(PushOp::Delete, &push(&[]))
            .len();
        assert_eq!(ended, 1);
    }

    #[test]
    fn a_saved_memory_loads_back_whole_and_in_recency_order() {
        let mut memory = SeriesMemory::new(100);
        memory.record(&key("a"), PushOp::Replace, &push(&[("m", &["1", "2"])]));
        memory.record(&key("b"), PushOp::Replace, &push(&[("n", &["1"])]));
        memory.group(&key("b")).next_timestamp(5000);
        memory.group(&key("a")).last_failure = 12.5;
        let mut saved = Vec::new();
        memory.save(&mut saved);
        let mut loaded = SeriesMemory::new(100);
        for (id, group) in SeriesMemory::load(&saved).expect("loads") {
            loaded.insert(&id, group);
        }
        assert_eq!(loaded.series(), 3);
        // "a" was used last, so it comes back as the most recent.
        let order: Vec<&GroupId> = loaded.by_recency.values().collect();
        assert_eq!(order, [&key("b"), &key("a")]);
        assert_eq!(loaded.group(&key("a")).last_failure, 12.5);
        assert_eq!(loaded.group(&key("b")).next_timestamp(0), 5001);
        let empty = push(&[]);
        let ended = loaded.group(&key("a")).ended_series(PushOp::Delete, &empty);
        assert_eq!(ended.len(), 2);
        for cut in 0..saved.len() {
            assert!(SeriesMemory::load(&saved[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn timestamps_strictly_increase_per_group() {
        let mut memory = SeriesMemory::new(100);
        let group = memory.group(&key("j"));
        assert_eq!(group.next_timestamp(1000), 1000);
        assert_eq!(group.next_timestamp(1000), 1001);
        assert_eq!(group.next_timestamp(999), 1002);
        assert_eq!(group.next_timestamp(5000), 5000);
    }

    #[test]
    fn groups_without_series_are_bounded_too() {
        let mut memory = SeriesMemory::new(2);
        for job in ["a", "b", "c", "d"] {
            memory.record(&key(job), PushOp::Delete, &push(&[]));
        }
        assert_eq!(memory.groups.len(), 2);
        assert!(memory.groups.contains_key(&key("d")));
    }

    #[test]
    fn least_recent_groups_are_evicted_beyond_the_bound() {
        let mut memory = SeriesMemory::new(3);
        memory.record(&key("old"), PushOp::Replace, &push(&[("a", &["1", "2"])]));
        memory.record(&key("new"), PushOp::Replace, &push(&[("a", &["1"])]));
        assert_eq!(memory.series(), 3);
        memory.group(&key("old"));
        memory.record(&key("newest"), PushOp::Replace, &push(&[("a", &["1"])]));
        // "new" was the least recently used.
        assert_eq!(memory.series(), 3);
        assert!(memory.groups.contains_key(&key("old")));
        assert!(!memory.groups.contains_key(&key("new")));
    }
}
