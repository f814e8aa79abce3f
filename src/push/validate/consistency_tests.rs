//! The consistency check's refusals, each with the message the Pushgateway
//! 1.5.1 (its Go registry) gives for the same push: duplicate series,
//! invalid label and metric names, type mismatches, suffix collisions,
//! many errors at once; for built families and for parsed text bodies.

use super::tests::{counter, family, gauge, histogram, key, run, summary, untyped};
use super::*;

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
