//! Tests of the series memory: what each push ends, replaced and deleted
//! groups, restoring after a failed push, and the shared label buffers.

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
fn push(families: &[(&str, &[&str])]) -> SharedPush {
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
    SharedPush::new(convert(&families, &GroupingKey::new([])))
}

fn ended_count(memory: &mut SeriesMemory, op: PushOp, push: &SharedPush) -> usize {
    memory.group(&key("j")).ended_series(op, push).len()
}

#[test]
fn a_recorded_push_shares_its_label_bytes_until_most_are_replaced() {
    let mut memory = SeriesMemory::new(100);
    let values: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let first = push(&[("big", &values), ("small", &["1"])]);
    memory.record(&key("j"), PushOp::Replace, &first);
    let remembered =
        |memory: &mut SeriesMemory, family: &str| memory.group(&key("j")).families[family].clone();
    // No copy: both families point into the push's buffer.
    for family in ["big", "small"] {
        let set = remembered(&mut memory, family);
        assert!(Arc::ptr_eq(&set.buffer, &first.labels), "{family}");
    }
    // A POST replacing "big" leaves "small" alone, in a buffer of its
    // own rather than keeping the first push's 50 series alive.
    memory.record(&key("j"), PushOp::Merge, &push(&[("big", &["7"])]));
    let small = remembered(&mut memory, "small");
    assert!(!Arc::ptr_eq(&small.buffer, &first.labels));
    assert_eq!(small.buffer.len(), small.range.len());
    let lone = push(&[("small", &["1"])]);
    assert_eq!(
        small.iter().collect::<Vec<_>>(),
        [lone.series_labels(&lone.series()[0])]
    );
    assert_eq!(memory.series(), 2);
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
