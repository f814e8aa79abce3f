//! The store's groups: PUT, POST and DELETE on them, the grouping labels
//! merged into the stored series, snapshots, tenants, and the preparing of
//! a push (owned or indexed); and the helpers shared with
//! `consistency_tests` (the refusals).

use std::time::{Duration, SystemTime};

use super::*;
use crate::exposition::Families;
use crate::proto::client::{Gauge, MetricFamily};

pub(super) fn key(pairs: &[(&str, &str)]) -> GroupingKey {
    GroupingKey::new(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())))
}

pub(super) fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs.iter().map(|&(n, v)| LabelPair::new(n, v)).collect()
}

pub(super) fn gauge_family(name: &str, series: &[&[(&str, &str)]]) -> MetricFamily {
    MetricFamily {
        name: Some(name.into()),
        help: Some(format!("help of {name}")),
        r#type: Some(MetricType::Gauge as i32),
        metric: series
            .iter()
            .map(|l| Metric {
                label: labels(l),
                gauge: Some(Gauge { value: Some(1.0) }),
                ..Default::default()
            })
            .collect(),
        unit: None,
    }
}

pub(super) fn push(op: PushOp, k: &[(&str, &str)], families: Vec<MetricFamily>) -> Push {
    Push {
        op,
        key: key(k),
        families: families.into(),
        received_at: SystemTime::now(),
        tenant: None,
    }
}

pub(super) fn store() -> Store {
    Store::new(StoreOptions {
        disable_consistency_check: false,
        own_families: crate::cache::own_families(),
    })
}

/// Applies `push` as the handler does: the push check first, the store's
/// own step on top.
pub(super) fn checked_apply(s: &Store, mut push: Push) -> Result<(), Refused> {
    let config = crate::config::PushConfig::default();
    if let Err(rejection) =
        crate::push::validate::check_families(&mut push.families, &push.key, &config)
    {
        return Err(Refused(rejection.message));
    }
    s.apply(&push)
}

pub(super) fn group<'a>(groups: &'a [Arc<Group>], k: &[(&str, &str)]) -> &'a Group {
    let k = key(k);
    groups.iter().find(|g| g.key == k).expect("group exists")
}

pub(super) fn names(group: &Group) -> Vec<&str> {
    group.families.keys().map(String::as_str).collect()
}

#[test]
fn put_replaces_the_group_and_post_replaces_same_named_families() {
    let s = store();
    let j = &[("job", "j")];
    s.apply(&push(
        PushOp::Replace,
        j,
        vec![gauge_family("a", &[&[]]), gauge_family("b", &[&[]])],
    ))
    .unwrap();
    s.apply(&push(
        PushOp::Merge,
        j,
        vec![
            gauge_family("b", &[&[("x", "1")]]),
            gauge_family("c", &[&[]]),
        ],
    ))
    .unwrap();
    let snap = s.snapshot();
    let g = group(&snap, j);
    assert_eq!(names(g), ["a", "b", "c"]);
    assert_eq!(
        g.families["b"].family().metric.len(),
        1,
        "POST replaces the whole family"
    );
    assert_eq!(
        g.families["b"].family().metric[0].label,
        labels(&[("instance", ""), ("job", "j"), ("x", "1")])
    );
    s.apply(&push(PushOp::Replace, j, vec![gauge_family("c", &[&[]])]))
        .unwrap();
    assert_eq!(names(group(&s.snapshot(), j)), ["c"]);
}

#[test]
fn empty_put_keeps_only_the_stamps_and_empty_post_changes_nothing_but_push_time() {
    let s = store();
    let j = &[("job", "j")];
    s.apply(&push(PushOp::Replace, j, vec![gauge_family("a", &[&[]])]))
        .unwrap();
    let before = group(&s.snapshot(), j).push_time;
    std::thread::sleep(Duration::from_millis(2));
    s.apply(&push(PushOp::Merge, j, vec![])).unwrap();
    let snap = s.snapshot();
    assert_eq!(names(group(&snap, j)), ["a"]);
    assert!(group(&snap, j).push_time.seconds() > before.seconds());
    s.apply(&push(PushOp::Replace, j, vec![])).unwrap();
    let snap = s.snapshot();
    assert!(names(group(&snap, j)).is_empty());
    assert!(group(&snap, j).push_time.seconds() > 0.0);
    assert_eq!(group(&snap, j).failure_time.seconds(), 0.0);
}

#[test]
fn delete_removes_exactly_that_group() {
    let s = store();
    s.apply(&push(
        PushOp::Replace,
        &[("job", "x")],
        vec![gauge_family("a", &[&[]])],
    ))
    .unwrap();
    s.apply(&push(
        PushOp::Replace,
        &[("job", "x"), ("instance", "i")],
        vec![gauge_family("a", &[&[]])],
    ))
    .unwrap();
    s.apply(&push(PushOp::Delete, &[("job", "x")], vec![]))
        .unwrap();
    let snap = s.snapshot();
    assert_eq!(snap.len(), 1);
    assert_eq!(snap[0].key, key(&[("job", "x"), ("instance", "i")]));
    // The deleted group's series are free again.
    s.apply(&push(
        PushOp::Replace,
        &[("job", "x")],
        vec![gauge_family("a", &[&[]])],
    ))
    .unwrap();
}

#[test]
fn grouping_labels_override_body_labels_and_instance_is_added() {
    let s = store();
    let k = &[("job", "e4"), ("a", "1")];
    s.apply(&push(
        PushOp::Replace,
        k,
        vec![gauge_family("ov", &[&[("a", "2"), ("job", "zzz")]])],
    ))
    .unwrap();
    let snap = s.snapshot();
    assert_eq!(
        group(&snap, k).families["ov"].family().metric[0].label,
        labels(&[("a", "1"), ("instance", ""), ("job", "e4")])
    );
}

#[test]
fn reserved_push_families_in_a_body_are_dropped() {
    let s = store();
    let j = &[("job", "j")];
    s.apply(&push(
        PushOp::Replace,
        j,
        vec![gauge_family(PUSH_TIME, &[&[]]), gauge_family("a", &[&[]])],
    ))
    .unwrap();
    assert_eq!(names(group(&s.snapshot(), j)), ["a"]);
}

#[test]
fn a_later_family_of_the_same_name_in_one_push_wins() {
    let s = store();
    let j = &[("job", "j")];
    s.apply(&push(
        PushOp::Replace,
        j,
        vec![
            gauge_family("a", &[&[("v", "1")]]),
            gauge_family("a", &[&[("v", "2")]]),
        ],
    ))
    .unwrap();
    let snap = s.snapshot();
    assert_eq!(
        group(&snap, j).families["a"].family().metric[0].label[2].value(),
        "2"
    );
}

#[test]
fn a_snapshot_is_not_changed_by_later_writes() {
    let s = store();
    let j = &[("job", "j")];
    s.apply(&push(PushOp::Replace, j, vec![gauge_family("a", &[&[]])]))
        .unwrap();
    let snap = s.snapshot();
    s.apply(&push(PushOp::Replace, j, vec![gauge_family("b", &[&[]])]))
        .unwrap();
    assert_eq!(names(group(&snap, j)), ["a"]);
    assert_eq!(names(group(&s.snapshot(), j)), ["b"]);
}

proptest::proptest! {
    #[test]
    fn prepared_labels_are_the_grouping_merge(
        body in proptest::collection::vec(
            (proptest::sample::select(vec!["a", "b", "instance", "job", "z"]), "[xy]{0,2}"),
            0..6,
        ),
        key_pairs in proptest::collection::vec(
            (proptest::sample::select(vec!["job", "instance", "b", "c"]), "[xy]{1,2}"),
            1..3,
        ),
    ) {
        let key = GroupingKey::new(key_pairs.iter().map(|(n, v)| (n.to_string(), v.clone())));
        let body: Vec<(&str, &str)> = body.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let pushed = gauge_family("m", &[&body]);
        // A push's own labels are sorted, stably, by the push check.
        let mut family = pushed.clone();
        family.metric[0].label.sort_by(|a, b| a.name().cmp(b.name()));
        let push = push(PushOp::Replace, &[], vec![family]);
        let push = Push { key: key.clone(), ..push };
        let grouping = GroupingLabels::new(&push.key);
        let prepared = prepare(&push.families, &grouping, push.received_at).unwrap();
        let got = prepared[0].stored.metric(0).label;
        let want = crate::push::grouping::tests::sanitized(&pushed.metric[0].label, &key);
        proptest::prop_assert_eq!(got, want);
    }
}

#[test]
fn two_tenants_pushing_one_grouping_key_have_separate_groups() {
    let s = store();
    let j = &[("job", "j")];
    let as_tenant = |tenant: &str, op: PushOp, families: Vec<MetricFamily>| Push {
        tenant: Some(tenant.to_string()),
        ..push(op, j, families)
    };
    // The same series in both: not "collected before" across tenants.
    checked_apply(
        &s,
        as_tenant(
            "a",
            PushOp::Replace,
            vec![gauge_family("m", &[&[("instance", "i")]])],
        ),
    )
    .unwrap();
    checked_apply(
        &s,
        as_tenant(
            "b",
            PushOp::Replace,
            vec![gauge_family("m", &[&[("instance", "i")]])],
        ),
    )
    .unwrap();
    checked_apply(
        &s,
        as_tenant("b", PushOp::Merge, vec![gauge_family("n", &[&[]])]),
    )
    .unwrap();
    let a = s.group(Some("a"), &key(j)).expect("tenant a's group");
    let b = s.group(Some("b"), &key(j)).expect("tenant b's group");
    assert_eq!(names(&a), ["m"]);
    assert_eq!(names(&b), ["m", "n"]);
    assert!(s.group(None, &key(j)).is_none());
    // A refused push of one tenant marks only its own group.
    s.record_failure(Some("a"), &key(j), SystemTime::now());
    assert!(!s.group(Some("a"), &key(j)).unwrap().last_push_successful());
    assert!(s.group(Some("b"), &key(j)).unwrap().last_push_successful());
    // A DELETE of one tenant leaves the other's group.
    s.apply(&as_tenant("a", PushOp::Delete, Vec::new()))
        .unwrap();
    assert!(s.group(Some("a"), &key(j)).is_none());
    assert_eq!(names(&s.group(Some("b"), &key(j)).unwrap()), ["m", "n"]);
    // Within one tenant the check still holds: m{instance="i",job="j"}
    // is tenant b's already, not tenant c's.
    let m_of = |tenant: &str| Push {
        tenant: Some(tenant.to_string()),
        ..push(
            PushOp::Replace,
            &[("job", "j"), ("instance", "i")],
            vec![gauge_family("m", &[&[]])],
        )
    };
    assert!(checked_apply(&s, m_of("b")).is_err());
    checked_apply(&s, m_of("c")).unwrap();
}

#[test]
fn an_indexed_push_is_stored_as_its_owned_families_would_be() {
    let body = "# HELP c A counter.\n# TYPE c counter\nc{b=\"2\",a=\"1\"} 3\nc{a=\"x\\\"y\"} 4\n\
                # TYPE g gauge\ng 1.5 1700000000000\n\
                # TYPE s summary\ns{quantile=\"0.5\",job=\"pushed\"} 1\ns_sum{job=\"pushed\"} 2\ns_count{job=\"pushed\"} 3\n\
                # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n\
                u{z=\"\"} 7\npush_time_seconds 1\n";
    let index = crate::exposition::text::parse_index(body)
        .unwrap()
        .expect("indexed");
    let indexed = Families::Indexed(crate::exposition::index::IndexedBody::new(
        body.to_string(),
        index,
    ));
    let owned = Families::Owned(indexed.to_model().into_owned());
    let key = GroupingKey::new([
        ("job".to_string(), "j".to_string()),
        ("instance".to_string(), "i".to_string()),
    ]);
    let grouping = GroupingLabels::new(&key);
    let now = SystemTime::UNIX_EPOCH;
    let from_index = prepare(&indexed, &grouping, now).unwrap();
    let from_owned = prepare(&owned, &grouping, now).unwrap();
    let summary = |prepared: &[Prepared]| -> Vec<_> {
        prepared
            .iter()
            .map(|p| {
                (
                    p.stored.family(),
                    p.stored.signatures().to_vec(),
                    p.timestamped,
                )
            })
            .collect()
    };
    assert_eq!(summary(&from_index), summary(&from_owned));
    let names: Vec<_> = from_index.iter().map(Prepared::name).collect();
    assert_eq!(
        names,
        ["c", "g", "h", "s", "u"],
        "sorted, push_time_seconds left out"
    );
    let timestamped: Vec<_> = from_index.iter().map(|p| p.timestamped).collect();
    assert_eq!(timestamped, [false, true, false, false, false]);
    assert_eq!(
        from_index[0].stored.metric(1).label,
        [
            LabelPair::new("a", "x\"y"),
            LabelPair::new("instance", "i"),
            LabelPair::new("job", "j"),
        ]
    );
}
