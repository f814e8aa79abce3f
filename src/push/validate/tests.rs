use proptest::prelude::*;

use super::*;
use crate::proto::client::{Bucket, Counter, Gauge, Histogram, Quantile, Summary, Untyped};
use crate::push::body::limit_counter::LimitCounter;
use crate::push::grouping::tests::sanitized;

fn key(pairs: &[(&str, &str)]) -> GroupingKey {
    GroupingKey::new(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())))
}

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs.iter().map(|(n, v)| LabelPair::new(*n, *v)).collect()
}

fn untyped(pairs: &[(&str, &str)], value: f64) -> Metric {
    Metric {
        label: labels(pairs),
        untyped: Some(Untyped { value: Some(value) }),
        ..Default::default()
    }
}

fn gauge(pairs: &[(&str, &str)], value: f64) -> Metric {
    Metric {
        label: labels(pairs),
        gauge: Some(Gauge { value: Some(value) }),
        ..Default::default()
    }
}

fn counter(pairs: &[(&str, &str)], value: f64) -> Metric {
    Metric {
        label: labels(pairs),
        counter: Some(Counter {
            value: Some(value),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn summary(pairs: &[(&str, &str)], quantiles: usize) -> Metric {
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

fn histogram(pairs: &[(&str, &str)], bounds: &[f64]) -> Metric {
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

fn family(name: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    MetricFamily {
        name: Some(name.to_string()),
        r#type: Some(kind as i32),
        metric: metrics,
        ..Default::default()
    }
}

/// [`check`] followed by the merge of the grouping labels into every
/// metric, for tests that look at merged families.
fn validate(
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

fn run(families: &mut [MetricFamily], key: &GroupingKey) -> Result<(), String> {
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
fn duplicate_series_get_the_registry_message() {
    // Pushgateway 1.5.1 answers for the same bodies pushed to /metrics/job/vt2,
    // vt3, vt7, vt8.
    let mut families = vec![family(
        "vd_m",
        MetricType::Untyped,
        vec![untyped(&[("a", "1")], 1.0), untyped(&[("a", "1")], 2.0)],
    )];
    assert_eq!(
        run(&mut families, &key(&[("job", "vt2")])),
        Err(r#"pushed metrics are invalid or inconsistent with existing metrics: collected metric "vd_m" { label:<name:"a" value:"1" > label:<name:"instance" value:"" > label:<name:"job" value:"vt2" > untyped:<value:2 > } was collected before with the same name and label values"#.to_string())
    );

    let mut families = vec![
        family(
            "vd2_m",
            MetricType::Untyped,
            vec![untyped(&[("a", "1")], 1.0), untyped(&[("a", "1")], 2.0)],
        ),
        family(
            "vd2_n",
            MetricType::Untyped,
            vec![untyped(&[], 1.0), untyped(&[], 3.0)],
        ),
    ];
    assert_eq!(
        run(&mut families, &key(&[("job", "vt3")])),
        Err("pushed metrics are invalid or inconsistent with existing metrics: 2 error(s) occurred:\n\
             * collected metric \"vd2_m\" { label:<name:\"a\" value:\"1\" > label:<name:\"instance\" value:\"\" > label:<name:\"job\" value:\"vt3\" > untyped:<value:2 > } was collected before with the same name and label values\n\
             * collected metric \"vd2_n\" { label:<name:\"instance\" value:\"\" > label:<name:\"job\" value:\"vt3\" > untyped:<value:3 > } was collected before with the same name and label values".to_string())
    );

    // Series that differ only in labels the grouping key overrides.
    let mut families = vec![family(
        "vj_m",
        MetricType::Untyped,
        vec![untyped(&[("job", "a")], 1.0), untyped(&[("job", "b")], 2.0)],
    )];
    assert_eq!(
        run(&mut families, &key(&[("job", "vt7")])),
        Err(r#"pushed metrics are invalid or inconsistent with existing metrics: collected metric "vj_m" { label:<name:"instance" value:"" > label:<name:"job" value:"vt7" > untyped:<value:2 > } was collected before with the same name and label values"#.to_string())
    );

    // No instance and an empty instance are the same series.
    let mut families = vec![family(
        "vi_m",
        MetricType::Untyped,
        vec![untyped(&[], 1.0), untyped(&[("instance", "")], 2.0)],
    )];
    assert_eq!(
        run(&mut families, &key(&[("job", "vt8")])),
        Err(r#"pushed metrics are invalid or inconsistent with existing metrics: collected metric "vi_m" { label:<name:"instance" value:"" > label:<name:"job" value:"vt8" > untyped:<value:2 > } was collected before with the same name and label values"#.to_string())
    );

    // ... but another empty label makes a different series (vt9: accepted).
    let mut families = vec![family(
        "ve_m",
        MetricType::Untyped,
        vec![untyped(&[("x", "")], 1.0), untyped(&[], 2.0)],
    )];
    run(&mut families, &key(&[("job", "vt9")])).unwrap();

    // The same labels under two family names are two series.
    let mut families = vec![
        family("a", MetricType::Gauge, vec![gauge(&[("x", "1")], 1.0)]),
        family("b", MetricType::Gauge, vec![gauge(&[("x", "1")], 1.0)]),
    ];
    run(&mut families, &key(&[("job", "j")])).unwrap();
}

#[test]
fn invalid_body_label_names_get_the_registry_message() {
    let mut families = vec![family(
        "vl_m",
        MetricType::Untyped,
        vec![untyped(&[("__x", "1")], 1.0)],
    )];
    assert_eq!(
        run(&mut families, &key(&[("job", "vt4")])),
        Err(r#"pushed metrics are invalid or inconsistent with existing metrics: collected metric "vl_m" { label:<name:"__x" value:"1" > label:<name:"instance" value:"" > label:<name:"job" value:"vt4" > untyped:<value:1 > } has a label with an invalid name: __x"#.to_string())
    );

    let mut families = vec![family(
        "vl2_m",
        MetricType::Untyped,
        vec![
            untyped(&[("__x", "1"), ("__y", "2")], 1.0),
            untyped(&[("__z", "1")], 1.0),
        ],
    )];
    assert_eq!(
        run(&mut families, &key(&[("job", "vt4b")])),
        Err("pushed metrics are invalid or inconsistent with existing metrics: 2 error(s) occurred:\n\
             * collected metric \"vl2_m\" { label:<name:\"__x\" value:\"1\" > label:<name:\"__y\" value:\"2\" > label:<name:\"instance\" value:\"\" > label:<name:\"job\" value:\"vt4b\" > untyped:<value:1 > } has a label with an invalid name: __x\n\
             * collected metric \"vl2_m\" { label:<name:\"__z\" value:\"1\" > label:<name:\"instance\" value:\"\" > label:<name:\"job\" value:\"vt4b\" > untyped:<value:1 > } has a label with an invalid name: __z".to_string())
    );

    for bad in ["a-b", "1a", "é", "__name__"] {
        let mut families = vec![family(
            "m",
            MetricType::Gauge,
            vec![gauge(&[(bad, "1")], 1.0)],
        )];
        let message = run(&mut families, &key(&[("job", "j")])).unwrap_err();
        assert!(
            message.ends_with(&format!("has a label with an invalid name: {bad}")),
            "{message}"
        );
    }
}

#[test]
fn protobuf_only_inconsistencies_get_the_registry_messages() {
    // Pushgateway 1.5.1 answers for protobuf bodies pushed to
    // /metrics/job/<job>/g/G.
    let grouping = |job: &'static str| key(&[("job", job), ("g", "G")]);
    let prefix = "pushed metrics are invalid or inconsistent with existing metrics: ";
    let cases: Vec<(MetricFamily, &str, String)> = vec![
        (
            family("pb_tm", MetricType::Gauge, vec![counter(&[], 1.0)]),
            "pb_tm",
            r#"collected metric "pb_tm" { label:<name:"g" value:"G" > label:<name:"instance" value:"" > label:<name:"job" value:"pb_tm" > counter:<value:1 > } is not a GAUGE"#.into(),
        ),
        (
            MetricFamily {
                name: Some("pb_nt".into()),
                metric: vec![gauge(&[], 1.0)],
                ..Default::default()
            },
            "pb_notype",
            r#"collected metric "pb_nt" { label:<name:"g" value:"G" > label:<name:"instance" value:"" > label:<name:"job" value:"pb_notype" > gauge:<value:1 > } is not a COUNTER"#.into(),
        ),
        (
            family("pb_q", MetricType::Summary, vec![summary(&[("quantile", "x")], 0)]),
            "pb_q",
            r#"collected metric "pb_q" { label:<name:"g" value:"G" > label:<name:"instance" value:"" > label:<name:"job" value:"pb_q" > label:<name:"quantile" value:"x" > summary:<sample_count:1 sample_sum:1 > } must not have an explicit "quantile" label"#.into(),
        ),
        (
            family("pb_dup", MetricType::Gauge, vec![gauge(&[("a", "1"), ("a", "2")], 1.0)]),
            "pb_dup",
            r#"collected metric "pb_dup" { label:<name:"a" value:"1" > label:<name:"a" value:"2" > label:<name:"g" value:"G" > label:<name:"instance" value:"" > label:<name:"job" value:"pb_dup" > gauge:<value:1 > } has two or more labels with the same name: a"#.into(),
        ),
        (
            family("pb_dupg", MetricType::Gauge, vec![gauge(&[("g", "1"), ("g", "2")], 1.0)]),
            "pb_dupg",
            r#"collected metric "pb_dupg" { label:<name:"g" value:"G" > label:<name:"g" value:"2" > label:<name:"instance" value:"" > label:<name:"job" value:"pb_dupg" > gauge:<value:1 > } has two or more labels with the same name: g"#.into(),
        ),
        (
            family("pb_el", MetricType::Gauge, vec![gauge(&[("", "1"), ("b-c", "2")], 1.0)]),
            "pb_emptylabel",
            r#"collected metric "pb_el" { label:<name:"" value:"1" > label:<name:"b-c" value:"2" > label:<name:"g" value:"G" > label:<name:"instance" value:"" > label:<name:"job" value:"pb_emptylabel" > gauge:<value:1 > } has two or more labels with the same name: "#.into(),
        ),
        (
            family(
                "pb_mu",
                MetricType::Gauge,
                vec![counter(&[("__x", "1")], 1.0), gauge(&[("__x", "1")], 1.0)],
            ),
            "pb_multi",
            "2 error(s) occurred:\n\
             * collected metric \"pb_mu\" { label:<name:\"__x\" value:\"1\" > label:<name:\"g\" value:\"G\" > label:<name:\"instance\" value:\"\" > label:<name:\"job\" value:\"pb_multi\" > counter:<value:1 > } is not a GAUGE\n\
             * collected metric \"pb_mu\" { label:<name:\"__x\" value:\"1\" > label:<name:\"g\" value:\"G\" > label:<name:\"instance\" value:\"\" > label:<name:\"job\" value:\"pb_multi\" > gauge:<value:1 > } has a label with an invalid name: __x".into(),
        ),
        (
            family("pb_h2", MetricType::Histogram, vec![histogram(&[], &[1.0]), histogram(&[], &[1.0])]),
            "pb_hist2",
            r#"collected metric "pb_h2" { label:<name:"g" value:"G" > label:<name:"instance" value:"" > label:<name:"job" value:"pb_hist2" > histogram:<sample_count:1 sample_sum:1 bucket:<cumulative_count:1 upper_bound:1 > > } was collected before with the same name and label values"#.into(),
        ),
    ];
    for (fam, job, want) in cases {
        let mut families = vec![fam];
        assert_eq!(
            run(&mut families, &grouping(job)),
            Err(format!("{prefix}{want}")),
            "{job}"
        );
    }
    // A histogram with an explicit `le` label passes, as on the Pushgateway.
    let mut families = vec![family(
        "pb_hle",
        MetricType::Histogram,
        vec![histogram(&[("le", "x")], &[1.0])],
    )];
    run(&mut families, &grouping("pb_hle")).unwrap();
}

/// Both directions of the one collision rule, as the cache uses it against
/// families collected in any order; a gauge histogram has no siblings.
#[test]
fn suffix_collisions_both_ways() {
    let only = |name: &'static str, kind| move |n: &str| (n == name).then_some(kind);
    let collision = suffix_collision(
        "sm_count",
        MetricType::Gauge,
        only("sm", MetricType::Summary),
    );
    assert!(
        collision
            .is_some_and(|e| e.contains("collides with previously collected summary named \"sm\""))
    );
    let collision = suffix_collision(
        "sm_bucket",
        MetricType::Gauge,
        only("sm", MetricType::Summary),
    );
    assert_eq!(collision, None, "a summary has no _bucket series");
    let collision = suffix_collision(
        "h",
        MetricType::Histogram,
        only("h_bucket", MetricType::Gauge),
    );
    assert_eq!(
        collision.as_deref(),
        Some(
            r#"collected histogram named "h" collides with previously collected metric named "h_bucket""#
        )
    );
    let collision = suffix_collision("s", MetricType::Summary, only("s_sum", MetricType::Gauge));
    assert_eq!(
        collision.as_deref(),
        Some(
            r#"collected histogram or summary named "s" collides with previously collected metric named "s_sum""#
        )
    );
    for (name, collected) in [("gh", "gh_count"), ("gh_count", "gh"), ("gh_bucket", "gh")] {
        let kind = |n: &str| {
            if n.ends_with("_count") || n.ends_with("_bucket") {
                MetricType::Gauge
            } else {
                MetricType::GaugeHistogram
            }
        };
        let collision = suffix_collision(name, kind(name), only(collected, kind(collected)));
        assert_eq!(collision, None, "{name} next to {collected}");
    }
}

#[test]
fn suffix_collisions_get_the_registry_message() {
    let prefix = "pushed metrics are invalid or inconsistent with existing metrics: ";
    let grouping = key(&[("job", "c")]);
    let summary_and_count = || {
        vec![
            family(
                "vs_x_count",
                MetricType::Untyped,
                vec![untyped(&[("a", "1")], 1.0)],
            ),
            family("vs_x", MetricType::Summary, vec![summary(&[], 1)]),
        ]
    };
    assert_eq!(
        run(&mut summary_and_count(), &grouping),
        Err(format!(
            r#"{prefix}collected metric named "vs_x_count" collides with previously collected summary named "vs_x""#
        ))
    );
    let mut families = vec![
        family("vh_x", MetricType::Histogram, vec![histogram(&[], &[1.0])]),
        family("vh_x_bucket", MetricType::Untyped, vec![untyped(&[], 1.0)]),
    ];
    assert_eq!(
        run(&mut families, &grouping),
        Err(format!(
            r#"{prefix}collected metric named "vh_x_bucket" collides with previously collected histogram named "vh_x""#
        ))
    );
    // A summary next to `_bucket` is fine (observed: 200).
    let mut families = vec![
        family("vs6_x", MetricType::Summary, vec![summary(&[], 0)]),
        family("vs6_x_bucket", MetricType::Untyped, vec![untyped(&[], 1.0)]),
    ];
    run(&mut families, &grouping).unwrap();
    // An empty summary family still collides (observed with protobuf).
    let mut families = vec![
        family("pb_e", MetricType::Summary, vec![]),
        family("pb_e_count", MetricType::Untyped, vec![untyped(&[], 1.0)]),
    ];
    assert_eq!(
        run(&mut families, &grouping),
        Err(format!(
            r#"{prefix}collected metric named "pb_e_count" collides with previously collected summary named "pb_e""#
        ))
    );
    // A colliding family's own metrics are not checked further.
    let mut families = vec![
        family("h", MetricType::Histogram, vec![]),
        family(
            "h_sum",
            MetricType::Gauge,
            vec![gauge(&[], 1.0), gauge(&[], 1.0)],
        ),
    ];
    let message = run(&mut families, &grouping).unwrap_err();
    assert!(!message.contains("error(s)"), "{message}");
}

#[test]
fn invalid_metric_names_and_types_are_refused() {
    let prefix = "pushed metrics are invalid or inconsistent with existing metrics: ";
    for name in ["pb-bad", "", "1m", "m.x"] {
        let mut families = vec![family(name, MetricType::Gauge, vec![gauge(&[], 1.0)])];
        assert_eq!(
            run(&mut families, &key(&[("job", "j")])),
            Err(format!(
                "{prefix}invalid metric name {}",
                go_quote(name.as_bytes())
            ))
        );
    }
    for name in ["m", "_m", ":m", "a:b_c9"] {
        let mut families = vec![family(name, MetricType::Gauge, vec![gauge(&[], 1.0)])];
        run(&mut families, &key(&[("job", "j")])).unwrap();
    }
    // Without metrics there is nothing to check the name on, as in Go (a
    // zero-length protobuf message is such a family, without a name).
    for name in ["", "1m"] {
        let mut families = vec![
            family(name, MetricType::Gauge, vec![]),
            family("ok", MetricType::Gauge, vec![gauge(&[], 1.0)]),
        ];
        run(&mut families, &key(&[("job", "j")])).unwrap();
    }
    let mut families = vec![MetricFamily {
        name: Some("m".into()),
        r#type: Some(42),
        metric: vec![gauge(&[], 1.0)],
        ..Default::default()
    }];
    assert_eq!(
        run(&mut families, &key(&[("job", "j")])),
        Err(format!("{prefix}metric family m has the unknown type 42"))
    );
    let mut families = vec![family(
        "gh",
        MetricType::GaugeHistogram,
        vec![gauge(&[], 1.0)],
    )];
    assert!(
        run(&mut families, &key(&[("job", "j")]))
            .unwrap_err()
            .ends_with("is not a GAUGE_HISTOGRAM")
    );
}

#[test]
fn a_family_name_given_twice_is_checked_as_go_gathers_it() {
    let prefix = "pushed metrics are invalid or inconsistent with existing metrics: ";
    let mut families = vec![
        family("tw", MetricType::Gauge, vec![gauge(&[], 1.0)]),
        family("tw", MetricType::Untyped, vec![untyped(&[], 2.0)]),
    ];
    assert_eq!(
        run(&mut families, &key(&[("job", "j")])),
        Err(format!(
            "{prefix}gathered metric family tw has type UNTYPED but should have GAUGE"
        ))
    );
    let mut families = vec![
        family("tw", MetricType::Gauge, vec![gauge(&[], 1.0)]),
        family("tw", MetricType::Gauge, vec![gauge(&[], 2.0)]),
    ];
    assert!(
        run(&mut families, &key(&[("job", "j")]))
            .unwrap_err()
            .ends_with("was collected before with the same name and label values")
    );
}

#[test]
fn many_errors_are_summarised() {
    let metrics = (0..60)
        .map(|i| untyped(&[("__x", &i.to_string())], 1.0))
        .collect();
    let mut families = vec![family("m", MetricType::Untyped, metrics)];
    let message = run(&mut families, &key(&[("job", "j")])).unwrap_err();
    assert!(message.contains(": 60 error(s) occurred:\n* "), "{message}");
    assert_eq!(message.matches("\n* collected metric").count(), 50);
    assert!(message.ends_with("\n* ... 10 more not shown"), "{message}");
}

fn limited(config: PushConfig, families: &mut [MetricFamily]) -> (Result<(), String>, u64) {
    let (result, counts) = LimitCounter::count(|| {
        validate(families, &key(&[("job", "j")]), &config).map_err(|r| r.message)
    });
    let counted = counts.values().sum();
    (result, counted)
}

#[test]
fn the_series_limit_counts_exposed_series() {
    let config = |max_series| PushConfig {
        max_series,
        ..PushConfig::default()
    };
    // 1 gauge + summary (2 quantiles + sum + count) + histogram (2 buckets,
    // +Inf added, + sum + count) = 1 + 4 + 5.
    let push = || {
        vec![
            family("g", MetricType::Gauge, vec![gauge(&[], 1.0)]),
            family("s", MetricType::Summary, vec![summary(&[("q", "1")], 2)]),
            family(
                "h",
                MetricType::Histogram,
                vec![histogram(&[], &[0.5, 1.0])],
            ),
        ]
    };
    assert_eq!(limited(config(10), &mut push()), (Ok(()), 0));
    let (result, counted) = limited(config(9), &mut push());
    assert_eq!(
        result,
        Err("push has more than push.max_series = 9 series; the limit is crossed at h{}".into())
    );
    assert_eq!(counted, 1);
    let explicit_inf = || {
        vec![family(
            "h",
            MetricType::Histogram,
            vec![histogram(&[], &[1.0, f64::INFINITY])],
        )]
    };
    assert_eq!(limited(config(4), &mut explicit_inf()).0, Ok(()));
    assert!(limited(config(3), &mut explicit_inf()).0.is_err());
}

#[test]
fn label_limits_name_the_limit_and_the_series() {
    let mut many = vec![family(
        "m",
        MetricType::Gauge,
        vec![gauge(&[("a", "1"), ("b", "2"), ("c", "")], 1.0)],
    )];
    let config = PushConfig {
        max_labels_per_series: 2,
        ..PushConfig::default()
    };
    // a, b and job count; the empty c and instance do not.
    assert_eq!(
        limited(config.clone(), &mut many.clone()),
        (
            Err(
                "series m{a=\"1\",b=\"2\",c=\"\",instance=\"\",job=\"j\"} has 3 labels, more \
                 than push.max_labels_per_series = 2"
                    .into()
            ),
            1
        )
    );
    let config = PushConfig {
        max_labels_per_series: 3,
        ..PushConfig::default()
    };
    assert_eq!(limited(config, &mut many).0, Ok(()));

    let long_name = "n".repeat(20);
    let mut families = vec![family(
        "m",
        MetricType::Gauge,
        vec![gauge(&[(long_name.as_str(), "v")], 1.0)],
    )];
    let config = PushConfig {
        max_label_name_length: 19,
        ..PushConfig::default()
    };
    assert_eq!(
        limited(config, &mut families),
        (
            Err(format!(
                "label name \"{long_name}\" (20 bytes) of series m{{instance=\"\",job=\"j\",\
                 {long_name}=\"v\"}} is longer than push.max_label_name_length = 19 bytes"
            )),
            1
        )
    );

    let long_value = "v".repeat(100);
    let mut families = vec![family(
        "m",
        MetricType::Gauge,
        vec![gauge(&[("a", long_value.as_str())], 1.0)],
    )];
    let config = PushConfig {
        max_label_value_length: 99,
        ..PushConfig::default()
    };
    let cut = format!("{}…", "v".repeat(64));
    assert_eq!(
        limited(config, &mut families),
        (
            Err(format!(
                "value of label a (100 bytes) of series m{{a=\"{cut}\",instance=\"\",job=\"j\"}} \
                 is longer than push.max_label_value_length = 99 bytes"
            )),
            1
        )
    );
}

#[test]
fn grouping_values_count_against_the_label_limits() {
    let mut families = vec![family("m", MetricType::Gauge, vec![gauge(&[], 1.0)])];
    let config = PushConfig {
        max_label_value_length: 3,
        ..PushConfig::default()
    };
    let err = validate(&mut families, &key(&[("job", "long")]), &config).unwrap_err();
    assert!(
        err.message.starts_with("value of label job (4 bytes)"),
        "{}",
        err.message
    );
}

fn arb_label() -> impl Strategy<Value = (String, String)> {
    (
        prop_oneof![
            "[a-z]{1,3}",
            Just("job".to_string()),
            Just("instance".to_string()),
            Just("quantile".to_string()),
            "__[a-z]{0,2}",
            ".{0,3}",
        ],
        ".{0,4}",
    )
}

fn arb_metric() -> impl Strategy<Value = Metric> {
    (
        proptest::collection::vec(arb_label(), 0..4),
        0..5usize,
        proptest::option::of(any::<i64>()),
    )
        .prop_map(|(pairs, kind, timestamp)| {
            let pairs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let mut metric = match kind {
                0 => counter(&pairs, 1.0),
                1 => gauge(&pairs, 1.0),
                2 => summary(&pairs, 1),
                3 => untyped(&pairs, 1.0),
                _ => histogram(&pairs, &[1.0]),
            };
            metric.timestamp_ms = timestamp.filter(|t| t % 4 == 0);
            metric
        })
}

fn arb_family() -> impl Strategy<Value = MetricFamily> {
    (
        prop_oneof!["[a-c]{1,2}(_count|_sum|_bucket)?", ".{0,3}"],
        0..6i32,
        proptest::collection::vec(arb_metric(), 0..4),
    )
        .prop_map(|(name, kind, metric)| MetricFamily {
            name: Some(name),
            r#type: Some(kind),
            metric,
            ..Default::default()
        })
}

fn arb_key() -> impl Strategy<Value = GroupingKey> {
    (
        "[a-z]{1,4}",
        proptest::collection::vec(("[a-z]{1,3}|instance", "[a-z]{0,3}"), 0..3),
    )
        .prop_map(|(job, labels)| GroupingKey::new(labels.into_iter().chain([("job".into(), job)])))
}

proptest! {
    #[test]
    fn arbitrary_pushes_never_panic_and_accepted_ones_are_merged(
        mut families in proptest::collection::vec(arb_family(), 0..4),
        key in arb_key(),
        honor_timestamps in any::<bool>(),
    ) {
        let original = families.clone();
        let config = PushConfig { honor_timestamps, ..PushConfig::default() };
        if validate(&mut families, &key, &config).is_err() {
            return Ok(());
        }
        prop_assert_eq!(families.len(), original.len());
        for (family, before) in families.iter().zip(&original) {
            prop_assert_eq!(family.metric.len(), before.metric.len());
            for (metric, before) in family.metric.iter().zip(&before.metric) {
                let names: Vec<&str> = metric.label.iter().map(|l| l.name()).collect();
                prop_assert!(names.windows(2).all(|w| w[0] < w[1]), "{:?}", names);
                for (name, value) in key.labels() {
                    let merged = metric.label.iter().find(|l| l.name() == name);
                    prop_assert_eq!(merged.map(|l| l.value()), Some(value.as_str()));
                }
                prop_assert!(names.contains(&"instance"));
                for label in &before.label {
                    if key.get(label.name()).is_none() {
                        prop_assert!(metric.label.contains(label), "{:?} lost", label);
                    }
                }
            }
        }
        // Validating an accepted push again changes nothing.
        let once = families.clone();
        prop_assert!(validate(&mut families, &key, &config).is_ok());
        prop_assert_eq!(families, once);
    }
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

/// Text bodies through the real parser, with the answers of the
/// Pushgateway 1.5.1 for the same bodies.
#[test]
fn text_bodies_get_the_pushgateway_answers() {
    let prefix = "pushed metrics are invalid or inconsistent with existing metrics: ";
    let cases: &[(&str, &str, Option<String>)] = &[
        ("vt9", "ve_m{x=\"\"} 1\nve_m 2\n", None),
        (
            "vt2",
            "vd_m{a=\"1\"} 1\nvd_m{a=\"1\"} 2\n",
            Some(format!(
                r#"{prefix}collected metric "vd_m" {{ label:<name:"a" value:"1" > label:<name:"instance" value:"" > label:<name:"job" value:"vt2" > untyped:<value:2 > }} was collected before with the same name and label values"#
            )),
        ),
        (
            "vt4",
            "vl_m{__x=\"1\"} 1\n",
            Some(format!(
                r#"{prefix}collected metric "vl_m" {{ label:<name:"__x" value:"1" > label:<name:"instance" value:"" > label:<name:"job" value:"vt4" > untyped:<value:1 > }} has a label with an invalid name: __x"#
            )),
        ),
        (
            "c3",
            "vh2_x_bucket 1\n# TYPE vh2_x histogram\nvh2_x_sum 1\nvh2_x_count 1\n",
            Some(format!(
                r#"{prefix}collected metric named "vh2_x_bucket" collides with previously collected histogram named "vh2_x""#
            )),
        ),
        (
            "c21",
            "vs5_x_count{a=\"1\"} 1\nvs5_x_count{a=\"2\"} 1\n# TYPE vs5_x summary\nvs5_x_sum 1\nvs5_x_count 1\nvs5_x_sum{a=\"b\"} 1\nvs5_x_count{a=\"b\"} 1\n",
            Some(format!(
                r#"{prefix}collected metric named "vs5_x_count" collides with previously collected summary named "vs5_x""#
            )),
        ),
        (
            "c4",
            "vs6_x_bucket 1\n# TYPE vs6_x summary\nvs6_x_sum 1\nvs6_x_count 1\n",
            None,
        ),
        (
            "c51",
            "vs7_x_count 1\nvs7_x_sum 1\n# TYPE vs7_x summary\nvs7_x_sum{a=\"1\"} 1\nvs7_x_count{a=\"1\"} 1\n",
            None,
        ),
    ];
    for (job, body, want) in cases {
        let mut families = crate::exposition::text::parse(body.as_bytes()).unwrap();
        let got = run(&mut families, &key(&[("job", job)])).err();
        assert_eq!(&got, want, "{job}");
    }
}

/// Labels from a tiny alphabet, so that merged series often coincide.
fn arb_clashing_family() -> impl Strategy<Value = MetricFamily> {
    let label = (
        prop_oneof![Just("job"), Just("instance"), Just("a"), Just("")],
        prop_oneof![Just(""), Just("1"), Just("j")],
    );
    (
        0..6i32,
        proptest::collection::vec((proptest::collection::vec(label, 0..4), 0..5usize), 0..5),
    )
        .prop_map(|(kind, metrics)| MetricFamily {
            name: Some("m".into()),
            r#type: Some(kind),
            metric: metrics
                .into_iter()
                .map(|(pairs, kind)| match kind {
                    0 => counter(&pairs, 1.0),
                    1 => gauge(&pairs, 1.0),
                    2 => summary(&pairs, 1),
                    3 => untyped(&pairs, 1.0),
                    _ => histogram(&pairs, &[1.0]),
                })
                .collect(),
            ..Default::default()
        })
}

proptest! {
    /// `check` refuses exactly what `validate` refuses, with the same
    /// message; on what it accepts, the merged view and the conversion of
    /// the unmerged families are those of the merged ones.
    #[test]
    fn check_answers_as_validate_and_the_merged_view_is_the_merge(
        families in prop_oneof![
            proptest::collection::vec(arb_family(), 0..4),
            proptest::collection::vec(arb_clashing_family(), 0..3),
        ],
        key in arb_key(),
        honor_timestamps in any::<bool>(),
        disable_consistency_check in any::<bool>(),
        max_labels_per_series in 1..6usize,
        max_label_name_length in 1..9usize,
        max_label_value_length in 1..5usize,
    ) {
        let config = PushConfig {
            honor_timestamps,
            disable_consistency_check,
            max_labels_per_series,
            max_label_name_length,
            max_label_value_length,
            ..PushConfig::default()
        };
        let mut checked = families.clone();
        let answer = check(&mut checked, &key, &config).map_err(|r| r.message);
        // The checks on families merged beforehand, where the merge is a
        // no-op, answer the same.
        let mut premerged = families.clone();
        for metric in premerged.iter_mut().flat_map(|f| &mut f.metric) {
            metric.label = sanitized(&metric.label, &key);
        }
        let want = check(&mut premerged, &GroupingKey::new([]), &config).map_err(|r| r.message);
        prop_assert_eq!(&answer, &want);
        let mut merged = families;
        prop_assert_eq!(&validate(&mut merged, &key, &config).map_err(|r| r.message), &want);
        if answer.is_err() {
            return Ok(());
        }
        let grouping = GroupingLabels::new(&key);
        let pairs = checked.iter().flat_map(|f| &f.metric).zip(merged.iter().flat_map(|f| &f.metric));
        for (own, merged) in pairs {
            let view: Vec<(&str, &str)> = grouping.merge(&own.label).map(|l| (l.name(), l.value())).collect();
            let want: Vec<(&str, &str)> = merged.label.iter().map(|l| (l.name(), l.value())).collect();
            prop_assert_eq!(view, want);
        }
        prop_assert_eq!(
            crate::forward::convert::convert(&checked, &key),
            crate::forward::convert::convert(&merged, &GroupingKey::new([]))
        );
    }
}

#[test]
fn the_metric_rule_checks_value_field_and_label_names() {
    let gauge = Metric {
        gauge: Some(Default::default()),
        ..Default::default()
    };
    let fault = |kind: MetricType, labels: &[(&'static str, &'static str)]| {
        metric_fault(kind, &gauge, labels.iter().copied(), |_, _| {})
    };
    assert_eq!(
        fault(MetricType::Counter, &[]).as_deref(),
        Some("is not a COUNTER")
    );
    for ok in ["a", "_a", "a1", "job", "A_b"] {
        assert_eq!(fault(MetricType::Gauge, &[(ok, "1")]), None, "{ok}");
    }
    for bad in ["", "1a", "a-b", "__x", "a.b", "é"] {
        assert!(fault(MetricType::Gauge, &[(bad, "1")]).is_some(), "{bad}");
    }
    assert_eq!(
        fault(MetricType::Gauge, &[("a", "1"), ("a", "2")]).as_deref(),
        Some("has two or more labels with the same name: a")
    );
}

#[test]
fn metric_names_are_bounded_and_the_400_says_so() {
    let long_name = "m".repeat(100_000);
    let mut families = vec![family(&long_name, MetricType::Gauge, vec![gauge(&[], 1.0)])];
    let (result, counted) = limited(PushConfig::default(), &mut families);
    let message = result.unwrap_err();
    assert!(
        message.contains("(100000 bytes) is longer than push.max_metric_name_length = 1024 bytes"),
        "{message}"
    );
    assert!(message.len() < 512, "{} bytes", message.len());
    assert_eq!(counted, 1);
    let config = PushConfig {
        max_metric_name_length: 100_000,
        ..PushConfig::default()
    };
    assert_eq!(limited(config, &mut families).0, Ok(()));
}

/// A series with 50,000 labels (each name distinct, all valid).
fn wide_metric() -> Metric {
    let names: Vec<String> = (0..50_000).map(|i| format!("l{i:05}")).collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    gauge(&pairs, 1.0)
}

#[test]
fn error_messages_quote_a_short_excerpt_of_a_wide_series() {
    let mut families = vec![family("m", MetricType::Gauge, vec![wide_metric()])];
    let message = limited(PushConfig::default(), &mut families).0.unwrap_err();
    assert!(
        message.len() < 2048,
        "{} bytes: {message:.300}",
        message.len()
    );
    assert!(message.contains("has 50001 labels"), "{message}");
    assert!(message.contains("(49986 more labels)"), "{message}");

    // The consistency check quotes the series too (here: a repeated label).
    let mut metric = wide_metric();
    metric.label.push(LabelPair::new("l00000", "again"));
    let mut families = vec![family("m", MetricType::Gauge, vec![metric])];
    let config = PushConfig {
        max_labels_per_series: 100_000,
        ..PushConfig::default()
    };
    let message = limited(config, &mut families).0.unwrap_err();
    assert!(message.contains("two or more labels"), "{message:.300}");
    assert!(
        message.len() < 2048,
        "{} bytes: {message:.300}",
        message.len()
    );
    assert!(message.contains("(49987 more labels)"), "{message}");
}
