//! A delimited protobuf body decoded into the index reads as the owned
//! decode's families, and checks and converts the same; what the index
//! has no place for takes the owned model.

use proptest::prelude::*;

use super::tests::same_as_owned_in;
use crate::config::PushConfig;
use crate::exposition::protobuf::encode_delimited;
use crate::exposition::{BodyFormat, text};
use crate::proto::client::{
    Bucket, BucketSpan, Counter, Exemplar, Gauge, Histogram, LabelPair, Metric, MetricFamily,
    MetricType, Quantile, Summary, Untyped,
};

const GO_PUSH: &[u8] = include_bytes!("../../../tests/fixtures/go_push.bin");
const BENCH_1000: &str = include_str!("../../../tests/fixtures/bench_1000.txt");
const PYTHON_PUSH: &str = include_str!("../../../tests/fixtures/python_push.txt");

fn indexed(families: &[MetricFamily]) -> bool {
    same_as_owned_in(
        BodyFormat::ProtobufDelimited,
        &encode_delimited(families),
        &PushConfig::default(),
    )
}

fn family(kind: MetricType, metric: Metric) -> MetricFamily {
    MetricFamily {
        name: Some("m".into()),
        help: Some("help".into()),
        r#type: Some(kind as i32),
        metric: vec![metric],
        unit: None,
    }
}

fn counter(value: f64) -> Metric {
    Metric {
        label: vec![LabelPair::new("b", "2"), LabelPair::new("a", "1")],
        counter: Some(Counter {
            value: Some(value),
            ..Counter::default()
        }),
        ..Metric::default()
    }
}

#[test]
fn client_pushes_are_indexed() {
    let config = PushConfig::default();
    assert!(same_as_owned_in(
        BodyFormat::ProtobufDelimited,
        GO_PUSH,
        &config
    ));
    for text_body in [BENCH_1000, PYTHON_PUSH] {
        let families = text::parse(text_body.as_bytes()).expect("valid");
        assert!(indexed(&families));
    }
    let timestamps = PushConfig {
        honor_timestamps: true,
        ..PushConfig::default()
    };
    let mut stamped = counter(1.0);
    stamped.timestamp_ms = Some(-5);
    let body = encode_delimited(&[family(MetricType::Counter, stamped)]);
    assert!(same_as_owned_in(
        BodyFormat::ProtobufDelimited,
        &body,
        &timestamps
    ));
    // Refused by the check, as the owned families are.
    assert!(!same_as_owned_in(
        BodyFormat::ProtobufDelimited,
        &body,
        &config
    ));
}

#[test]
fn what_the_index_has_no_place_for_takes_the_owned_model() {
    let mut created = counter(1.0);
    created.counter.as_mut().expect("counter").created_timestamp =
        Some(prost_types::Timestamp::default());
    let mut exemplar = counter(1.0);
    exemplar.counter.as_mut().expect("counter").exemplar = Some(Exemplar::default());
    let mut wrong_value = counter(1.0);
    wrong_value.gauge = Some(Gauge { value: Some(1.0) });
    let no_value = Metric {
        counter: Some(Counter::default()),
        ..Metric::default()
    };
    let half_label = Metric {
        label: vec![LabelPair {
            name: Some("a".into()),
            value: None,
        }],
        untyped: Some(Untyped { value: Some(1.0) }),
        ..Metric::default()
    };
    let native = Metric {
        histogram: Some(Histogram {
            schema: Some(3),
            positive_span: vec![BucketSpan {
                offset: Some(0),
                length: Some(1),
            }],
            positive_delta: vec![1],
            ..Histogram::default()
        }),
        ..Metric::default()
    };
    let inexact_count = Metric {
        histogram: Some(Histogram {
            sample_count: Some((1 << 60) + 1),
            ..Histogram::default()
        }),
        ..Metric::default()
    };
    let nan_quantile = Metric {
        summary: Some(Summary {
            quantile: vec![Quantile {
                quantile: Some(f64::NAN),
                value: Some(1.0),
            }],
            ..Summary::default()
        }),
        ..Metric::default()
    };
    let cases = [
        vec![family(MetricType::Counter, created)],
        vec![family(MetricType::Counter, exemplar)],
        vec![family(MetricType::Counter, wrong_value)],
        vec![family(MetricType::Counter, no_value)],
        vec![family(MetricType::Untyped, half_label)],
        vec![family(MetricType::Histogram, native.clone())],
        vec![family(MetricType::GaugeHistogram, native)],
        vec![family(MetricType::Histogram, inexact_count)],
        vec![family(MetricType::Summary, nan_quantile)],
        // A name twice (the last wins), a family without metrics, one
        // without a type, one with a unit.
        vec![
            family(MetricType::Counter, counter(1.0)),
            family(MetricType::Counter, counter(2.0)),
        ],
        vec![MetricFamily {
            metric: Vec::new(),
            ..family(MetricType::Counter, counter(1.0))
        }],
        vec![MetricFamily {
            r#type: None,
            ..family(MetricType::Counter, counter(1.0))
        }],
        vec![MetricFamily {
            unit: Some("seconds".into()),
            ..family(MetricType::Counter, counter(1.0))
        }],
    ];
    for families in cases {
        assert!(!indexed(&families), "{families:?}");
    }
    // An unknown field, a field given twice, a body prost refuses.
    let mut unknown = encode_delimited(&[family(MetricType::Counter, counter(1.0))]);
    unknown[0] += 2;
    unknown.extend_from_slice(&[0x30, 0x01]);
    let mut twice = encode_delimited(&[family(MetricType::Counter, counter(1.0))]);
    let name = [0x0a, 0x01, b'n'];
    twice[0] += name.len() as u8;
    twice.extend_from_slice(&name);
    for body in [
        unknown,
        twice,
        b"\x02\x0f\x00".to_vec(),
        b"garbage".to_vec(),
    ] {
        assert!(!same_as_owned_in(
            BodyFormat::ProtobufDelimited,
            &body,
            &PushConfig::default()
        ));
    }
}

fn metric() -> impl Strategy<Value = Metric> {
    let labels = prop::collection::vec(
        (
            prop::sample::select(vec!["a", "b", "job", "__x", ""]),
            prop::sample::select(vec!["", "1", "v"]),
        ),
        0..3,
    );
    let value = prop::sample::select(vec![0.0, 1.5, -2.0, f64::INFINITY]);
    let points = prop::collection::vec((value.clone(), 0u64..5), 0..3);
    (
        labels,
        0..6usize,
        value,
        points,
        prop::option::of(0u64..10),
        prop::option::of(-3i64..3),
    )
        .prop_map(|(labels, which, value, points, count, timestamp)| {
            let mut metric = Metric {
                label: labels
                    .iter()
                    .map(|(name, value)| LabelPair::new(*name, *value))
                    .collect(),
                timestamp_ms: timestamp,
                ..Metric::default()
            };
            match which {
                0 => {
                    metric.counter = Some(Counter {
                        value: Some(value),
                        ..Counter::default()
                    })
                }
                1 => metric.gauge = Some(Gauge { value: Some(value) }),
                2 => metric.untyped = Some(Untyped { value: Some(value) }),
                3 => {
                    metric.summary = Some(Summary {
                        sample_count: count,
                        sample_sum: Some(value),
                        quantile: points
                            .iter()
                            .map(|&(bound, n)| Quantile {
                                quantile: Some(bound),
                                value: Some(n as f64),
                            })
                            .collect(),
                        ..Summary::default()
                    })
                }
                4 => {
                    metric.histogram = Some(Histogram {
                        sample_count: count,
                        sample_sum: count.map(|_| value),
                        bucket: points
                            .iter()
                            .map(|&(bound, n)| Bucket {
                                upper_bound: Some(bound),
                                cumulative_count: Some(n),
                                ..Bucket::default()
                            })
                            .collect(),
                        ..Histogram::default()
                    })
                }
                _ => {}
            }
            metric
        })
}

fn metric_family() -> impl Strategy<Value = MetricFamily> {
    (
        prop::sample::select(vec!["m", "m_count", "n", "0"]),
        prop::option::of(prop::sample::select(vec!["", "help"])),
        prop::option::of(0..6i32),
        prop::collection::vec(metric(), 0..3),
    )
        .prop_map(|(name, help, kind, metric)| MetricFamily {
            name: Some(name.into()),
            help: help.map(String::from),
            r#type: kind,
            metric,
            unit: None,
        })
}

proptest! {
    /// Random families (of every type, values matching their type or
    /// not): every answer is the owned decode's.
    #[test]
    fn random_families_answer_as_owned(
        families in prop::collection::vec(metric_family(), 0..4),
        honor_timestamps in any::<bool>(),
    ) {
        let config = PushConfig { honor_timestamps, ..PushConfig::default() };
        same_as_owned_in(BodyFormat::ProtobufDelimited, &encode_delimited(&families), &config);
    }

    /// The Go client's push with a byte changed: the same answers.
    #[test]
    fn a_changed_go_push_answers_as_owned(at in 0..GO_PUSH.len(), byte in any::<u8>()) {
        let mut body = GO_PUSH.to_vec();
        body[at] = byte;
        same_as_owned_in(BodyFormat::ProtobufDelimited, &body, &PushConfig::default());
    }
}
