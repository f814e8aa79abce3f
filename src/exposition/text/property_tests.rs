//! Text 0.0.4 parser properties: no input makes it panic, and families
//! rendered as Go's `expfmt.MetricFamilyToText` renders them parse back to
//! the same families.

use super::parse;
use crate::exposition::gofloat;
use crate::proto::client::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType, Quantile,
    Summary, Untyped,
};
use proptest::prelude::*;
use std::fmt::Write as _;

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\n', "\\n")
}

fn label_text(labels: &[LabelPair], extra: Option<(&str, f64)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|l| format!("{}=\"{}\"", l.name(), escape_label(l.value())))
        .collect();
    if let Some((name, value)) = extra {
        parts.push(format!("{name}=\"{}\"", gofloat::format(value)));
    }
    format!("{{{}}}", parts.join(","))
}

/// Renders families the way Go's `expfmt.MetricFamilyToText` does.
fn render(families: &[MetricFamily]) -> String {
    let mut out = String::new();
    for family in families {
        let name = family.name();
        if let Some(help) = &family.help {
            let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
        }
        let kind = family.r#type().as_str_name().to_ascii_lowercase();
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for metric in &family.metric {
            let labels = &metric.label;
            let plain = |out: &mut String, v: f64| {
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    label_text(labels, None),
                    gofloat::format(v)
                );
            };
            if let Some(c) = &metric.counter {
                plain(&mut out, c.value());
            } else if let Some(g) = &metric.gauge {
                plain(&mut out, g.value());
            } else if let Some(u) = &metric.untyped {
                plain(&mut out, u.value());
            } else if let Some(s) = &metric.summary {
                for q in &s.quantile {
                    let _ = writeln!(
                        out,
                        "{name}{} {}",
                        label_text(labels, Some(("quantile", q.quantile()))),
                        gofloat::format(q.value())
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_sum{} {}",
                    label_text(labels, None),
                    gofloat::format(s.sample_sum())
                );
                let _ = writeln!(
                    out,
                    "{name}_count{} {}",
                    label_text(labels, None),
                    s.sample_count()
                );
            } else if let Some(h) = &metric.histogram {
                for b in &h.bucket {
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {}",
                        label_text(labels, Some(("le", b.upper_bound()))),
                        b.cumulative_count()
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_sum{} {}",
                    label_text(labels, None),
                    gofloat::format(h.sample_sum())
                );
                let _ = writeln!(
                    out,
                    "{name}_count{} {}",
                    label_text(labels, None),
                    h.sample_count()
                );
            }
        }
    }
    out
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("NaN never compares equal", |v| !v.is_nan()),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        (-1000i32..1000).prop_map(f64::from),
    ]
}

fn label_set() -> impl Strategy<Value = Vec<LabelPair>> {
    prop::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,6}", ".{0,8}", 0..4).prop_map(|m| {
        m.into_iter()
            .filter(|(name, _)| !matches!(name.as_str(), "__name__" | "le" | "quantile"))
            .map(|(name, value)| LabelPair {
                name: Some(name),
                value: Some(value),
            })
            .collect()
    })
}

fn metric(kind: MetricType) -> impl Strategy<Value = Metric> {
    (
        label_set(),
        value(),
        prop::collection::vec((0.0f64..1.0, value()), 0..4),
        // Counts travel as text floats (as in Go): exact up to 2^53.
        0u64..(1 << 53),
    )
        .prop_map(move |(label, v, pairs, count)| {
            let mut metric = Metric {
                label,
                ..Metric::default()
            };
            match kind {
                MetricType::Counter => {
                    metric.counter = Some(Counter {
                        value: Some(v),
                        ..Counter::default()
                    })
                }
                MetricType::Gauge => metric.gauge = Some(Gauge { value: Some(v) }),
                MetricType::Summary => {
                    metric.summary = Some(Summary {
                        sample_count: Some(count),
                        sample_sum: Some(v),
                        quantile: pairs
                            .iter()
                            .map(|&(q, qv)| Quantile {
                                quantile: Some(q),
                                value: Some(qv),
                            })
                            .collect(),
                        ..Summary::default()
                    })
                }
                MetricType::Histogram => {
                    metric.histogram = Some(Histogram {
                        sample_count: Some(count),
                        sample_sum: Some(v),
                        bucket: pairs
                            .iter()
                            .map(|&(ub, c)| Bucket {
                                upper_bound: Some(ub),
                                cumulative_count: Some(c.abs().min(9e15) as u64),
                                ..Bucket::default()
                            })
                            .collect(),
                        ..Histogram::default()
                    })
                }
                _ => metric.untyped = Some(Untyped { value: Some(v) }),
            }
            metric
        })
}

fn family(index: usize) -> impl Strategy<Value = MetricFamily> {
    let kind = prop_oneof![
        Just(MetricType::Counter),
        Just(MetricType::Gauge),
        Just(MetricType::Untyped),
        Just(MetricType::Summary),
        Just(MetricType::Histogram),
    ];
    (
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,8}",
        prop::option::of(".{0,12}"),
        kind,
    )
        .prop_flat_map(move |(base, help, kind)| {
            prop::collection::vec(metric(kind), 1..4).prop_map(move |metrics| {
                // Summary/histogram metrics are identified by their label set.
                let mut seen = std::collections::HashSet::new();
                let metric: Vec<Metric> = metrics
                    .into_iter()
                    .filter(|m| seen.insert(format!("{:?}", m.label)))
                    .collect();
                MetricFamily {
                    // The index suffix keeps names distinct and never
                    // ending in _sum/_count/_bucket.
                    name: Some(format!("{base}_{index}")),
                    // Leading blanks of a HELP text are not representable.
                    help: help
                        .clone()
                        .filter(|h| !h.is_empty() && !h.starts_with([' ', '\t'])),
                    r#type: Some(kind as i32),
                    metric,
                    unit: None,
                }
            })
        })
}

fn families() -> impl Strategy<Value = Vec<MetricFamily>> {
    (0usize..5).prop_flat_map(|n| (0..n).map(family).collect::<Vec<_>>())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse(&body);
    }

    #[test]
    fn text_like_bytes_never_panic(body in "[a-z_{}=\",# \\\\\n\t0-9.eE+-]{0,120}") {
        let _ = parse(body.as_bytes());
    }

    #[test]
    fn rendered_families_parse_back(families in families()) {
        let text = render(&families);
        let parsed = parse(text.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(parsed, families, "{}", text);
    }
}
