//! What the store refuses and what a refusal leaves: duplicate series
//! across groups and within a push, suffix collisions, clashes with the
//! cache's own metrics, invalid label names; the failure time recorded and
//! the existing metrics kept; the check disabled; and the check's cost not
//! growing with the store.

use std::time::{Duration, Instant};

use super::tests::{checked_apply, gauge_family, group, key, labels, names, push, store};
use super::*;
use crate::proto::client::{Counter, Gauge, MetricFamily, Quantile, Summary};

fn counter_family(name: &str) -> MetricFamily {
    MetricFamily {
        name: Some(name.into()),
        help: None,
        r#type: Some(MetricType::Counter as i32),
        metric: vec![Metric {
            counter: Some(Counter {
                value: Some(2.0),
                ..Default::default()
            }),
            ..Default::default()
        }],
        unit: None,
    }
}

fn summary_family(name: &str) -> MetricFamily {
    MetricFamily {
        name: Some(name.into()),
        help: None,
        r#type: Some(MetricType::Summary as i32),
        metric: vec![Metric {
            summary: Some(Summary {
                sample_count: Some(1),
                sample_sum: Some(1.0),
                quantile: vec![Quantile {
                    quantile: Some(0.5),
                    value: Some(1.0),
                }],
                ..Default::default()
            }),
            ..Default::default()
        }],
        unit: None,
    }
}

#[test]
fn a_refused_push_records_a_failure_and_creates_a_failure_only_group() {
    let s = store();
    let mut timestamped = gauge_family("t", &[&[]]);
    timestamped.metric[0].timestamp_ms = Some(1000);
    let err = s
        .apply(&push(PushOp::Replace, &[("job", "j3")], vec![timestamped]))
        .unwrap_err();
    assert_eq!(
        err.0,
        "pushed metrics are invalid or inconsistent with existing metrics: pushed metrics must not have timestamps"
    );
    let snap = s.snapshot();
    let g = group(&snap, &[("job", "j3")]);
    assert_eq!(g.push_time.seconds(), 0.0);
    assert!(g.failure_time.seconds() > 0.0);
    assert!(!g.last_push_successful());
    assert!(g.families.is_empty());
}

#[test]
fn a_refused_push_leaves_existing_metrics_and_push_time_alone() {
    let s = store();
    let j = &[("job", "j")];
    s.apply(&push(PushOp::Replace, j, vec![gauge_family("a", &[&[]])]))
        .unwrap();
    let before = group(&s.snapshot(), j).clone();
    s.apply(&push(
        PushOp::Replace,
        &[("job", "k")],
        vec![counter_family("c")],
    ))
    .unwrap();
    let err = s
        .apply(&push(PushOp::Replace, j, vec![gauge_family("c", &[&[]])]))
        .unwrap_err();
    assert!(err.0.contains("is not a COUNTER"), "{}", err.0);
    let snap = s.snapshot();
    let after = group(&snap, j);
    assert_eq!(after.families, before.families);
    assert_eq!(after.push_time, before.push_time);
    assert!(!after.last_push_successful());
    // A later success keeps the failure time.
    s.apply(&push(PushOp::Replace, j, vec![])).unwrap();
    let snap = s.snapshot();
    assert!(group(&snap, j).failure_time.seconds() > 0.0);
    assert!(group(&snap, j).last_push_successful());
}

#[test]
fn duplicate_series_across_groups_and_within_a_push_are_refused() {
    let s = store();
    s.apply(&push(
        PushOp::Replace,
        &[("job", "a")],
        vec![gauge_family("m", &[&[("x", "1")]])],
    ))
    .unwrap();
    // Same series: the body's job label is overridden, so use instance.
    let same = gauge_family("m", &[&[("x", "1")]]);
    s.apply(&push(PushOp::Replace, &[("job", "b")], vec![same.clone()]))
        .unwrap();
    let in_push = gauge_family("m", &[&[("x", "2")], &[("x", "2")]]);
    let err = checked_apply(&s, push(PushOp::Replace, &[("job", "c")], vec![in_push])).unwrap_err();
    assert!(
        err.0
            .contains("was collected before with the same name and label values"),
        "{}",
        err.0
    );
    // Across groups: {job="k"} and {job="k",instance=""} expose the same series.
    s.apply(&push(
        PushOp::Replace,
        &[("job", "k")],
        vec![gauge_family("d", &[&[]])],
    ))
    .unwrap();
    let err = s
        .apply(&push(
            PushOp::Replace,
            &[("job", "k"), ("instance", "")],
            vec![gauge_family("d", &[&[]])],
        ))
        .unwrap_err();
    assert!(err.0.contains("was collected before"), "{}", err.0);
    // No self-poisoning: the failure-only group would duplicate {job="k"}'s
    // push_time_seconds, so it is not created and later pushes still work.
    let poisoned = key(&[("job", "k"), ("instance", "")]);
    assert!(s.snapshot().iter().all(|g| g.key != poisoned));
    s.apply(&push(
        PushOp::Replace,
        &[("job", "z")],
        vec![gauge_family("e", &[&[]])],
    ))
    .unwrap();
}

#[test]
fn replacing_ones_own_series_is_not_a_duplicate() {
    let s = store();
    let j = &[("job", "j")];
    for op in [
        PushOp::Replace,
        PushOp::Merge,
        PushOp::Replace,
        PushOp::Merge,
    ] {
        s.apply(&push(op, j, vec![gauge_family("m", &[&[("x", "1")]])]))
            .unwrap();
    }
}

#[test]
fn suffix_collisions_and_own_metric_clashes_are_refused() {
    let s = store();
    s.apply(&push(
        PushOp::Replace,
        &[("job", "s")],
        vec![summary_family("sm")],
    ))
    .unwrap();
    let err = s
        .apply(&push(
            PushOp::Replace,
            &[("job", "t")],
            vec![gauge_family("sm_count", &[&[]])],
        ))
        .unwrap_err();
    assert!(
        err.0
            .contains("collides with previously collected summary named \"sm\""),
        "{}",
        err.0
    );
    // Within one group a PUT may swap the summary for a plain _count family.
    s.apply(&push(
        PushOp::Replace,
        &[("job", "s")],
        vec![gauge_family("sm_count", &[&[]])],
    ))
    .unwrap();
    let err = s
        .apply(&push(
            PushOp::Replace,
            &[("job", "o")],
            vec![gauge_family("process_cpu_seconds_total", &[&[]])],
        ))
        .unwrap_err();
    assert!(
        err.0.contains("has type GAUGE but should have COUNTER"),
        "{}",
        err.0
    );
    let own_type = MetricFamily {
        name: Some("process_cpu_seconds_total".into()),
        ..counter_family("x")
    };
    s.apply(&push(PushOp::Replace, &[("job", "o")], vec![own_type]))
        .unwrap();
}

#[test]
fn bad_label_names_and_reserved_labels_are_refused() {
    let s = store();
    let err = checked_apply(
        &s,
        push(
            PushOp::Replace,
            &[("job", "r")],
            vec![gauge_family("r", &[&[("__x", "1")]])],
        ),
    )
    .unwrap_err();
    assert!(
        err.0.ends_with("has a label with an invalid name: __x"),
        "{}",
        err.0
    );
    let mut summary = summary_family("q");
    summary.metric[0].label = labels(&[("quantile", "0.5")]);
    let err = checked_apply(&s, push(PushOp::Replace, &[("job", "r")], vec![summary])).unwrap_err();
    assert!(
        err.0
            .contains("must not have an explicit \"quantile\" label"),
        "{}",
        err.0
    );
}

#[test]
fn with_the_check_disabled_everything_is_stored_and_timestamps_dropped() {
    let s = Store::new(StoreOptions {
        disable_consistency_check: true,
        own_families: Default::default(),
    });
    s.apply(&push(
        PushOp::Replace,
        &[("job", "a")],
        vec![counter_family("c")],
    ))
    .unwrap();
    s.apply(&push(
        PushOp::Replace,
        &[("job", "b")],
        vec![gauge_family("c", &[&[]])],
    ))
    .unwrap();
    let mut timestamped = gauge_family("t", &[&[]]);
    timestamped.metric[0].timestamp_ms = Some(1);
    s.apply(&push(PushOp::Replace, &[("job", "a")], vec![timestamped]))
        .unwrap();
    let snap = s.snapshot();
    assert_eq!(names(group(&snap, &[("job", "a")])), ["c"]);
    assert!(!group(&snap, &[("job", "a")]).last_push_successful());
    assert_eq!(names(group(&snap, &[("job", "b")])), ["c"]);
}

/// The brief's target: a 10-series POST with 100,000 series stored costs
/// well under a millisecond (checked loosely here: debug build, shared CPU).
#[test]
fn check_cost_does_not_grow_with_the_store() {
    let s = store();
    let series: Vec<Vec<(String, String)>> = (0..1000)
        .map(|i| vec![("series".to_string(), i.to_string())])
        .collect();
    let family = |name: &str| MetricFamily {
        name: Some(name.into()),
        help: None,
        r#type: Some(MetricType::Gauge as i32),
        metric: series
            .iter()
            .map(|l| Metric {
                label: l
                    .iter()
                    .map(|(n, v)| LabelPair {
                        name: Some(n.clone()),
                        value: Some(v.clone()),
                    })
                    .collect(),
                gauge: Some(Gauge { value: Some(1.0) }),
                ..Default::default()
            })
            .collect(),
        unit: None,
    };
    for g in 0..100 {
        let name = format!("g{g}");
        s.apply(&push(
            PushOp::Replace,
            &[("job", name.as_str())],
            vec![family("big")],
        ))
        .unwrap();
    }
    let small = gauge_family(
        "small",
        &[
            &[("a", "0")],
            &[("a", "1")],
            &[("a", "2")],
            &[("a", "3")],
            &[("a", "4")],
            &[("a", "5")],
            &[("a", "6")],
            &[("a", "7")],
            &[("a", "8")],
            &[("a", "9")],
        ],
    );
    let started = Instant::now();
    let rounds = 200;
    for _ in 0..rounds {
        s.apply(&push(
            PushOp::Merge,
            &[("job", "small")],
            vec![small.clone()],
        ))
        .unwrap();
    }
    let per_push = started.elapsed() / rounds;
    eprintln!("10-series POST with 100,000 series stored: {per_push:?} per push");
    assert!(
        per_push < Duration::from_millis(5),
        "{per_push:?} per 10-series POST with 100k stored"
    );
}

#[test]
fn every_own_metric_name_is_refused_with_another_type() {
    let s = store();
    for own in crate::telemetry::own_metrics() {
        let clashing = if own.kind == crate::telemetry::Kind::Counter {
            gauge_family(own.name, &[&[]])
        } else {
            MetricFamily {
                name: Some(own.name.into()),
                ..counter_family("x")
            }
        };
        let err = s
            .apply(&push(PushOp::Replace, &[("job", "o")], vec![clashing]))
            .expect_err(own.name);
        assert!(err.0.contains("but should have"), "{}: {}", own.name, err.0);
    }
}
