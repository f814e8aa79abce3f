//! Unit tests of the conversion: each metric type, label handling, `le`
//! and `quantile` rendering.

use super::*;
use crate::proto::client::{
    Bucket, BucketSpan, Counter, Gauge, LabelPair, Metric, Quantile, Summary, Untyped,
};
use crate::proto::prompb::WriteRequest;

fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs.iter().map(|&(n, v)| LabelPair::new(n, v)).collect()
}

fn family(name: &str, r#type: MetricType, metric: Vec<Metric>) -> MetricFamily {
    MetricFamily {
        name: Some(name.into()),
        help: Some(format!("help of {name}")),
        r#type: Some(r#type as i32),
        metric,
        unit: None,
    }
}

/// Encodes `converted` with timestamp 1000 and decodes it back.
fn decode(converted: &Converted) -> WriteRequest {
    let mut body = Vec::new();
    for (index, s) in converted.series.iter().enumerate() {
        let labels = converted.series_labels(s);
        let ts = converted.timestamp(index).unwrap_or(1000);
        match s.value() {
            SeriesValue::Float(v) => wire::put_float_series(&mut body, labels, v, ts),
            SeriesValue::Histogram(h) => {
                wire::put_histogram_series(&mut body, labels, converted.histogram(h), ts)
            }
        }
    }
    body.extend_from_slice(&converted.metadata);
    WriteRequest::decode(body.as_slice()).unwrap()
}

/// Each series as `name{a="b",...} value`.
fn render(request: &WriteRequest) -> Vec<String> {
    request
        .timeseries
        .iter()
        .map(|s| {
            let labels: Vec<String> = s
                .labels
                .iter()
                .map(|l| format!("{}={:?}", l.name, l.value))
                .collect();
            let value = s.samples.first().map_or(f64::NAN, |s| s.value);
            format!("{{{}}} {value}", labels.join(","))
        })
        .collect()
}

#[test]
fn counter_gauge_untyped_become_one_series_each() {
    let families = vec![
        family(
            "c_total",
            MetricType::Counter,
            vec![Metric {
                label: labels(&[("a", "1"), ("job", "j")]),
                counter: Some(Counter {
                    value: Some(3.0),
                    ..Default::default()
                }),
                ..Default::default()
            }],
        ),
        family(
            "g",
            MetricType::Gauge,
            vec![Metric {
                label: labels(&[("job", "j")]),
                gauge: Some(Gauge { value: Some(-1.5) }),
                ..Default::default()
            }],
        ),
        family(
            "u",
            MetricType::Untyped,
            vec![Metric {
                label: labels(&[("job", "j")]),
                untyped: Some(Untyped { value: Some(7.0) }),
                ..Default::default()
            }],
        ),
    ];
    let converted = convert(&families, &GroupingKey::new([]));
    let request = decode(&converted);
    assert_eq!(
        render(&request),
        [
            r#"{__name__="c_total",a="1",job="j"} 3"#,
            r#"{__name__="g",job="j"} -1.5"#,
            r#"{__name__="u",job="j"} 7"#,
        ]
    );
    assert!(
        request
            .timeseries
            .iter()
            .all(|s| s.samples[0].timestamp == 1000)
    );
    let metadata: Vec<_> = request
        .metadata
        .iter()
        .map(|m| (m.metric_family_name.as_str(), m.r#type, m.help.as_str()))
        .collect();
    assert_eq!(
        metadata,
        [
            ("c_total", RwType::Counter as i32, "help of c_total"),
            ("g", RwType::Gauge as i32, "help of g"),
            ("u", RwType::Unknown as i32, "help of u"),
        ]
    );
    assert_eq!(converted.families[1].name, "g");
    assert_eq!(converted.families[1].series, 1..2);
}

#[test]
fn empty_label_values_are_dropped_and_name_is_sorted_in() {
    // Upper-case names sort before "__name__", lower-case after it.
    let families = vec![family(
        "m",
        MetricType::Gauge,
        vec![Metric {
            label: labels(&[("A", "x"), ("Z", ""), ("b", ""), ("job", "j")]),
            gauge: Some(Gauge { value: Some(1.0) }),
            ..Default::default()
        }],
    )];
    let request = decode(&convert(&families, &GroupingKey::new([])));
    assert_eq!(render(&request), [r#"{A="x",__name__="m",job="j"} 1"#]);
}

#[test]
fn group_series_carry_sorted_non_empty_grouping_labels() {
    let key = GroupingKey::new([
        ("job".to_string(), "j".to_string()),
        ("instance".to_string(), String::new()),
        ("A".to_string(), "up".to_string()),
    ]);
    let labels = group_series_labels("push_time_seconds", &key);
    let mut body = Vec::new();
    wire::put_float_series(&mut body, &labels, 1.0, 1);
    let request = WriteRequest::decode(body.as_slice()).unwrap();
    assert_eq!(
        render(&request),
        [r#"{A="up",__name__="push_time_seconds",job="j"} 1"#]
    );
}

#[test]
fn summary_becomes_quantiles_sum_and_count() {
    let families = vec![family(
        "s",
        MetricType::Summary,
        vec![Metric {
            label: labels(&[("job", "j"), ("x", "")]),
            summary: Some(Summary {
                sample_count: Some(10),
                sample_sum: Some(2.5),
                quantile: vec![
                    Quantile {
                        quantile: Some(0.5),
                        value: Some(0.2),
                    },
                    Quantile {
                        quantile: Some(0.99),
                        value: Some(0.9),
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        }],
    )];
    let request = decode(&convert(&families, &GroupingKey::new([])));
    assert_eq!(
        render(&request),
        [
            format!(
                r#"{{__name__="s",job="j",quantile={:?}}} 0.2"#,
                gofloat::format(0.5)
            ),
            format!(
                r#"{{__name__="s",job="j",quantile={:?}}} 0.9"#,
                gofloat::format(0.99)
            ),
            r#"{__name__="s_sum",job="j"} 2.5"#.to_string(),
            r#"{__name__="s_count",job="j"} 10"#.to_string(),
        ]
    );
    assert_eq!(request.metadata[0].r#type, RwType::Summary as i32);
}

fn bucket(bound: f64, count: u64) -> Bucket {
    Bucket {
        cumulative_count: Some(count),
        upper_bound: Some(bound),
        ..Default::default()
    }
}

#[test]
fn classic_histogram_gets_buckets_sum_count_and_a_missing_inf_bucket() {
    let families = vec![family(
        "h",
        MetricType::Histogram,
        vec![Metric {
            label: labels(&[("job", "j"), ("zone", "z")]),
            histogram: Some(client::Histogram {
                sample_count: Some(5),
                sample_sum: Some(12.0),
                bucket: vec![bucket(1.0, 2), bucket(1e6, 4)],
                ..Default::default()
            }),
            ..Default::default()
        }],
    )];
    let request = decode(&convert(&families, &GroupingKey::new([])));
    let le = |v: f64| gofloat::format(v);
    assert_eq!(
        render(&request),
        [
            format!(
                r#"{{__name__="h_bucket",job="j",le={:?},zone="z"}} 2"#,
                le(1.0)
            ),
            format!(
                r#"{{__name__="h_bucket",job="j",le={:?},zone="z"}} 4"#,
                le(1e6)
            ),
            format!(
                r#"{{__name__="h_bucket",job="j",le={:?},zone="z"}} 5"#,
                le(f64::INFINITY)
            ),
            r#"{__name__="h_sum",job="j",zone="z"} 12"#.to_string(),
            r#"{__name__="h_count",job="j",zone="z"} 5"#.to_string(),
        ]
    );
    // `le` is rendered the way a scrape renders it, not Rust's way.
    assert_eq!(request.timeseries[0].labels[2].value, "1");
}

#[test]
fn histogram_with_inf_bucket_gets_no_second_one() {
    let families = vec![family(
        "h",
        MetricType::Histogram,
        vec![Metric {
            label: labels(&[("job", "j")]),
            histogram: Some(client::Histogram {
                sample_count: Some(3),
                sample_sum: Some(1.0),
                bucket: vec![bucket(0.5, 1), bucket(f64::INFINITY, 3)],
                ..Default::default()
            }),
            ..Default::default()
        }],
    )];
    let request = decode(&convert(&families, &GroupingKey::new([])));
    assert_eq!(request.timeseries.len(), 4);
}

#[test]
fn native_histogram_becomes_a_histogram_sample() {
    let families = vec![family(
        "n",
        MetricType::Histogram,
        vec![Metric {
            label: labels(&[("job", "j")]),
            histogram: Some(client::Histogram {
                sample_count: Some(4),
                sample_sum: Some(6.5),
                schema: Some(3),
                zero_threshold: Some(1e-128),
                zero_count: Some(1),
                positive_span: vec![BucketSpan {
                    offset: Some(-2),
                    length: Some(2),
                }],
                positive_delta: vec![1, 1],
                ..Default::default()
            }),
            ..Default::default()
        }],
    )];
    let request = decode(&convert(&families, &GroupingKey::new([])));
    assert_eq!(request.timeseries.len(), 1);
    let series = &request.timeseries[0];
    assert!(series.samples.is_empty());
    assert_eq!(series.labels[0].value, "n");
    let h = &series.histograms[0];
    assert_eq!(h.count, Some(prompb::histogram::Count::CountInt(4)));
    assert_eq!(
        h.zero_count,
        Some(prompb::histogram::ZeroCount::ZeroCountInt(1))
    );
    assert_eq!(h.schema, 3);
    assert_eq!(h.sum, 6.5);
    assert_eq!(
        h.positive_spans,
        [prompb::BucketSpan {
            offset: -2,
            length: 2
        }]
    );
    assert_eq!(h.positive_deltas, [1, 1]);
    assert_eq!(h.timestamp, 1000);
    assert_eq!(request.metadata[0].r#type, RwType::Histogram as i32);
}

#[test]
fn pushed_timestamps_are_kept_and_clashing_labels_replaced() {
    let families = vec![family(
        "h",
        MetricType::Histogram,
        vec![Metric {
            // A body label named like a generated one must not repeat.
            label: labels(&[("__name__", "x"), ("job", "j"), ("le", "7")]),
            histogram: Some(client::Histogram {
                sample_count: Some(1),
                sample_sum: Some(1.0),
                bucket: vec![bucket(f64::INFINITY, 1)],
                ..Default::default()
            }),
            timestamp_ms: Some(42),
            ..Default::default()
        }],
    )];
    let request = decode(&convert(&families, &GroupingKey::new([])));
    for series in &request.timeseries {
        assert_eq!(series.samples[0].timestamp, 42);
        let names: Vec<_> = series.labels.iter().map(|l| l.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
    }
    assert_eq!(request.timeseries[0].labels.len(), 3);
    assert_eq!(request.timeseries[1].labels.len(), 3, "sum keeps le=7");
}

fn created(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

fn client_exemplar(trace: &str, value: f64) -> client::Exemplar {
    client::Exemplar {
        label: labels(&[("trace_id", trace)]),
        value: Some(value),
        timestamp: Some(prost_types::Timestamp {
            seconds: 5,
            nanos: 250_000_000,
        }),
    }
}

#[test]
fn start_timestamps_and_exemplars_ride_beside_the_unchanged_1_0_series() {
    let counter = Metric {
        counter: Some(Counter {
            value: Some(3.0),
            exemplar: Some(client_exemplar("c", 1.0)),
            created_timestamp: created(100),
        }),
        ..Default::default()
    };
    let histogram = Metric {
        histogram: Some(client::Histogram {
            sample_count: Some(2),
            sample_sum: Some(1.5),
            bucket: vec![
                Bucket {
                    exemplar: Some(client_exemplar("b", 0.4)),
                    ..bucket(0.5, 1)
                },
                bucket(1.0, 2),
            ],
            created_timestamp: created(200),
            ..Default::default()
        }),
        ..Default::default()
    };
    let gauge = Metric {
        gauge: Some(Gauge { value: Some(1.0) }),
        ..Default::default()
    };
    let families = vec![
        family("c_total", MetricType::Counter, vec![counter.clone()]),
        family("h", MetricType::Histogram, vec![histogram.clone()]),
        family("g", MetricType::Gauge, vec![gauge]),
    ];
    let converted = convert(&families, &GroupingKey::new([]));
    let bare = |mut m: Metric| {
        if let Some(c) = m.counter.as_mut() {
            c.exemplar = None;
            c.created_timestamp = None;
        }
        if let Some(h) = m.histogram.as_mut() {
            h.created_timestamp = None;
            h.bucket.iter_mut().for_each(|b| b.exemplar = None);
        }
        m
    };
    let without = vec![
        family("c_total", MetricType::Counter, vec![bare(counter)]),
        family("h", MetricType::Histogram, vec![bare(histogram)]),
        families[2].clone(),
    ];
    let plain = convert(&without, &GroupingKey::new([]));
    assert!(plain.extras.is_empty());
    // The 1.0 encoding is byte-identical with or without the extras.
    assert_eq!(converted.labels, plain.labels);
    assert_eq!(converted.series, plain.series);
    assert_eq!(converted.metadata, plain.metadata);
    // c_total; h_bucket{0.5}, h_bucket{1}, h_bucket{+Inf}, h_sum, h_count; g.
    let starts: Vec<(usize, i64)> = converted
        .extras
        .iter()
        .map(|(i, e)| (*i, e.start_timestamp_ms))
        .collect();
    assert_eq!(
        starts,
        [
            (0, 100_000),
            (1, 200_000),
            (2, 200_000),
            (3, 200_000),
            (4, 200_000),
            (5, 200_000)
        ]
    );
    let exemplars = &converted.extras[0].1.exemplars;
    assert_eq!(exemplars[0].labels, [("trace_id".into(), "c".into())]);
    assert_eq!(exemplars[0].timestamp_ms, Some(5_250));
    assert_eq!(converted.extras[1].1.exemplars[0].value, 0.4);
    assert!(converted.extras[2].1.exemplars.is_empty());
}

#[test]
fn custom_bucket_histograms_take_their_bounds_from_the_classic_buckets() {
    let families = vec![family(
        "n",
        MetricType::Histogram,
        vec![Metric {
            histogram: Some(client::Histogram {
                sample_count: Some(3),
                schema: Some(-53),
                bucket: vec![bucket(0.5, 1), bucket(2.0, 3), bucket(f64::INFINITY, 3)],
                positive_span: vec![BucketSpan {
                    offset: Some(0),
                    length: Some(2),
                }],
                positive_delta: vec![1, 1],
                ..Default::default()
            }),
            ..Default::default()
        }],
    )];
    let request = decode(&convert(&families, &GroupingKey::new([])));
    let h = &request.timeseries[0].histograms[0];
    assert_eq!(h.schema, -53);
    assert_eq!(h.custom_values, [0.5, 2.0]);
}

#[test]
fn a_series_holds_its_labels_and_value_in_16_bytes() {
    // A million-series push holds a million of them at its peak.
    assert_eq!(std::mem::size_of::<Series>(), 16);
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    for value in [
        SeriesValue::Float(-0.0),
        SeriesValue::Float(f64::INFINITY),
        SeriesValue::Histogram(0),
        SeriesValue::Histogram(7),
    ] {
        let series = Series::new(3..Series::MAX_LABEL_BYTES, value).unwrap();
        assert_eq!(series.labels(), 3..Series::MAX_LABEL_BYTES);
        assert_eq!(series.value(), value);
    }
    // A stale marker keeps its exact NaN payload.
    let SeriesValue::Float(back) = Series::new(0..1, SeriesValue::Float(stale))
        .unwrap()
        .value()
    else {
        panic!("a float series came back as a histogram");
    };
    assert_eq!(back.to_bits(), stale.to_bits());
}

#[test]
fn a_series_past_the_label_limit_marks_the_push_too_large() {
    let limit = Series::MAX_LABEL_BYTES;
    assert!(Series::new(limit..limit + 1, SeriesValue::Float(1.0)).is_none());
    let reversed = Range { start: 5, end: 4 };
    assert!(Series::new(reversed, SeriesValue::Float(1.0)).is_none());
    let mut converted = Converted::default();
    converted.push_series(0..10, SeriesValue::Float(1.0), None);
    assert!(!converted.too_large);
    converted.push_series(limit - 1..limit + 9, SeriesValue::Float(2.0), Some(5));
    assert!(converted.too_large);
    assert_eq!(converted.series.len(), 1);
    assert!(converted.timestamps.is_empty());
}
