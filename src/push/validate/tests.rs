//! The push check: the merge of the grouping labels into every series, the
//! timestamp rule and the switch that disables the consistency check; and
//! the helpers the other test files share (the registry's messages:
//! `consistency_tests`; the push limits: `limits_tests`; arbitrary pushes:
//! `property_tests`).

use super::*;
use crate::proto::client::{Bucket, Counter, Gauge, Histogram, Quantile, Summary, Untyped};
use crate::push::grouping::tests::sanitized;

pub(super) fn key(pairs: &[(&str, &str)]) -> GroupingKey {
    GroupingKey::new(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())))
}

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs.iter().map(|(n, v)| LabelPair::new(*n, *v)).collect()
}

pub(super) fn untyped(pairs: &[(&str, &str)], value: f64) -> Metric {
    Metric {
        label: labels(pairs),
        untyped: Some(Untyped { value: Some(value) }),
        ..Default::default()
    }
}

pub(super) fn gauge(pairs: &[(&str, &str)], value: f64) -> Metric {
    Metric {
        label: labels(pairs),
        gauge: Some(Gauge { value: Some(value) }),
        ..Default::default()
    }
}

pub(super) fn counter(pairs: &[(&str, &str)], value: f64) -> Metric {
    Metric {
        label: labels(pairs),
        counter: Some(Counter {
            value: Some(value),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn summary(pairs: &[(&str, &str)], quantiles: usize) -> Metric {
    Metric {
        label: labels(pairs),
        summary: Some(Summary {
            sample_count: Some(1),
            sample_sum: Some(1.0),
            quantile: (0..quantiles)
                .map(|i| Quantile {
                    quantile: Some(i as f64 / 10.0),
                    value: Some(1.0),
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn histogram(pairs: &[(&str, &str)], bounds: &[f64]) -> Metric {
    Metric {
        label: labels(pairs),
        histogram: Some(Histogram {
            sample_count: Some(1),
            sample_sum: Some(1.0),
            bucket: bounds
                .iter()
                .map(|&b| Bucket {
                    upper_bound: Some(b),
                    cumulative_count: Some(1),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn family(name: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    MetricFamily {
        name: Some(name.to_string()),
        r#type: Some(kind as i32),
        metric: metrics,
        ..Default::default()
    }
}

/// [`check`] followed by the merge of the grouping labels into every
/// metric, for tests that look at merged families.
pub(super) fn validate(
    families: &mut [MetricFamily],
    key: &GroupingKey,
    config: &PushConfig,
) -> Result<(), Rejection> {
    check(families, key, config)?;
    for metric in families.iter_mut().flat_map(|f| &mut f.metric) {
        metric.label = sanitized(&metric.label, key);
    }
    Ok(())
}

pub(super) fn run(families: &mut [MetricFamily], key: &GroupingKey) -> Result<(), String> {
    validate(families, key, &PushConfig::default()).map_err(|r| {
        assert_eq!(r.status, http::StatusCode::BAD_REQUEST);
        r.message
    })
}

fn rendered_labels(metric: &Metric) -> Vec<String> {
    metric
        .label
        .iter()
        .map(|l| format!("{}={}", l.name(), l.value()))
        .collect()
}

#[test]
fn pushed_timestamps_are_refused_unless_honoured() {
    let mut metric = untyped(&[], 1.0);
    metric.timestamp_ms = Some(1000);
    let mut families = vec![family("vt_m", MetricType::Untyped, vec![metric])];
    assert_eq!(
        run(&mut families.clone(), &key(&[("job", "vt1")])),
        Err(
            "pushed metrics are invalid or inconsistent with existing metrics: pushed metrics \
             must not have timestamps"
                .to_string()
        )
    );
    let honour = PushConfig {
        honor_timestamps: true,
        ..PushConfig::default()
    };
    validate(&mut families, &key(&[("job", "vt1")]), &honour).unwrap();
    assert_eq!(families[0].metric[0].timestamp_ms, Some(1000));
}

#[test]
fn grouping_labels_override_body_labels_and_instance_is_added() {
    // Observed on the Pushgateway 1.5.1: the first body label of a grouping
    // name takes the grouping value, `instance=""` is added when missing.
    type Pairs<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(Pairs, Pairs, &[&str])] = &[
        (
            &[("a", "2"), ("job", "zzz"), ("instance", "i")],
            &[("job", "e4"), ("a", "1")],
            &["a=1", "instance=i", "job=e4"],
        ),
        (
            &[("a", "2"), ("job", "zzz")],
            &[("job", "e5"), ("instance", "ii")],
            &["a=2", "instance=ii", "job=e5"],
        ),
        (
            &[("instance", "body"), ("z", "")],
            &[("job", "j"), ("instance", "url")],
            &["instance=url", "job=j", "z="],
        ),
        (
            &[("lab", "x")],
            &[("job", "j"), ("lab", "")],
            &["instance=", "job=j", "lab="],
        ),
        (
            &[("zz", "1"), ("b", "2"), ("aa", "3")],
            &[("job", "j"), ("k", "4")],
            &["aa=3", "b=2", "instance=", "job=j", "k=4", "zz=1"],
        ),
        (&[], &[("job", "j")], &["instance=", "job=j"]),
        (
            &[("a", "1")],
            &[("job", "j"), ("b", "2")],
            &["a=1", "b=2", "instance=", "job=j"],
        ),
    ];
    for (body, grouping, want) in cases {
        let mut families = vec![family("ov", MetricType::Untyped, vec![untyped(body, 1.0)])];
        run(&mut families, &key(grouping)).unwrap();
        assert_eq!(rendered_labels(&families[0].metric[0]), *want, "{body:?}");
    }
}

#[test]
fn a_family_without_metrics_is_kept() {
    let mut families = vec![
        family("empty", MetricType::Counter, vec![]),
        family("m", MetricType::Gauge, vec![gauge(&[], 1.0)]),
    ];
    run(&mut families, &key(&[("job", "j")])).unwrap();
    assert_eq!(families.len(), 2);
    assert!(families[0].metric.is_empty());
}

#[test]
fn the_consistency_check_can_be_disabled_but_not_the_timestamp_check() {
    let config = PushConfig {
        disable_consistency_check: true,
        ..PushConfig::default()
    };
    let mut families = vec![family(
        "m",
        MetricType::Gauge,
        vec![
            gauge(&[("__x", "1")], 1.0),
            counter(&[], 1.0),
            counter(&[], 1.0),
        ],
    )];
    validate(&mut families, &key(&[("job", "j")]), &config).unwrap();
    assert_eq!(
        rendered_labels(&families[0].metric[0]),
        ["__x=1", "instance=", "job=j"]
    );
    families[0].metric[0].timestamp_ms = Some(1);
    assert!(
        validate(&mut families, &key(&[("job", "j")]), &config)
            .unwrap_err()
            .message
            .ends_with("pushed metrics must not have timestamps")
    );
}
