//! Conversion of a push's metric families into remote_write 1.0 series.
//!
//! Mapping (what a Prometheus scrape of the Pushgateway would have stored):
//! - counter, gauge, untyped → one series named after the family;
//! - summary → one series per quantile (`quantile` label), `_sum`, `_count`;
//! - classic histogram → `_bucket` per bucket (`le` label, plus a `+Inf`
//!   bucket holding the sample count when the push lacks one), `_sum`,
//!   `_count`;
//! - native histogram (protobuf `schema`/spans/zero bucket present) → one
//!   remote_write histogram sample on the family name; its classic buckets,
//!   if the push also carries some, are forwarded as classic series too.
//!
//! Every series gets `__name__`; label names come out sorted and unique,
//! labels with an empty value are dropped (remote_write forbids them), and
//! `le`/`quantile` values are rendered with Go float formatting so they match
//! what a scrape would have produced. One `MetricMetadata` (type, help, unit)
//! is produced per family.
//!
//! The result is not yet a request: timestamps are stamped later, in order,
//! by the shard that sends the push (see `batch`). Labels are encoded here,
//! once, into one buffer, on the pusher's task, so the shard only copies
//! bytes.

use std::ops::Range;

use prost::Message;

use super::wire;
use crate::exposition::gofloat;
use crate::proto::client::{self, MetricFamily, MetricType};
use crate::proto::prompb::{self, metric_metadata::MetricType as RwType};
use crate::push::GroupingKey;

/// The value of one converted series.
#[derive(Clone, Debug, PartialEq)]
pub enum SeriesValue {
    Float(f64),
    /// Encoded `prompb::Histogram` fields (no timestamp), as a range of
    /// [`Converted::histograms`].
    Histogram(Range<usize>),
}

/// One series of a converted push.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Its encoded `TimeSeries.labels` entries, a range of [`Converted::labels`].
    pub labels: Range<usize>,
    pub value: SeriesValue,
    /// The pushed timestamp, when the push carries one (honoured timestamps).
    pub timestamp_ms: Option<i64>,
}

/// One family of a converted push.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub name: String,
    /// Its series, a range of [`Converted::series`].
    pub series: Range<usize>,
    /// Its label bytes, a range of [`Converted::labels`] (series of one
    /// family are contiguous).
    pub labels: Range<usize>,
}

/// A push converted to remote_write series, waiting for timestamps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Converted {
    pub labels: Vec<u8>,
    pub histograms: Vec<u8>,
    pub series: Vec<Series>,
    pub families: Vec<Family>,
    /// Encoded `WriteRequest.metadata` entries, one per family.
    pub metadata: Vec<u8>,
}

impl Converted {
    /// Reserves about what `families` will need, so the buffers do not grow
    /// by doubling on large pushes.
    fn reserve(&mut self, families: &[MetricFamily]) {
        let (mut series, mut bytes) = (0, 0);
        for family in families {
            let Some(first) = family.metric.first() else {
                continue;
            };
            let per_series = match family.r#type() {
                MetricType::Summary => first.summary.as_ref().map_or(0, |s| s.quantile.len()) + 2,
                MetricType::Histogram | MetricType::GaugeHistogram => {
                    first.histogram.as_ref().map_or(0, |h| h.bucket.len()) + 4
                }
                _ => 1,
            };
            let label_bytes: usize = first
                .label
                .iter()
                .map(|l| l.name().len() + l.value().len() + 6)
                .sum();
            let one = label_bytes + family.name().len() + 32;
            series += family.metric.len() * per_series;
            bytes += family.metric.len() * per_series * one;
        }
        self.series.reserve(series);
        self.labels.reserve(bytes);
        self.families.reserve(families.len());
    }

    /// The label bytes of one series.
    pub fn series_labels(&self, series: &Series) -> &[u8] {
        &self.labels[series.labels.clone()]
    }
}

const NAME_LABEL: &[u8] = b"__name__";

/// A label added to every series of a family: `__name__`, `le`, `quantile`.
struct ExtraLabel<'a> {
    name: &'static [u8],
    value: [&'a [u8]; 2],
}

/// Converts validated families (labels sorted by name) into series.
pub fn convert(families: &[MetricFamily]) -> Converted {
    let mut out = Converted::default();
    out.reserve(families);
    let mut number = String::new();
    for family in families {
        let series_start = out.series.len();
        let labels_start = out.labels.len();
        let name = family.name().as_bytes();
        let r#type = family.r#type();
        for metric in &family.metric {
            let ts = metric.timestamp_ms;
            match r#type {
                MetricType::Counter => {
                    let v = metric.counter.as_ref().map_or(0.0, |c| c.value());
                    out.push_float(metric, name, b"", None, v, ts);
                }
                MetricType::Gauge => {
                    let v = metric.gauge.as_ref().map_or(0.0, |g| g.value());
                    out.push_float(metric, name, b"", None, v, ts);
                }
                MetricType::Untyped => {
                    let v = metric.untyped.as_ref().map_or(0.0, |u| u.value());
                    out.push_float(metric, name, b"", None, v, ts);
                }
                MetricType::Summary => {
                    let default = client::Summary::default();
                    let summary = metric.summary.as_ref().unwrap_or(&default);
                    for q in &summary.quantile {
                        number.clear();
                        number.push_str(&gofloat::format(q.quantile()));
                        let extra = (b"quantile" as &[u8], number.as_bytes());
                        out.push_float(metric, name, b"", Some(extra), q.value(), ts);
                    }
                    out.push_float(metric, name, b"_sum", None, summary.sample_sum(), ts);
                    let count = summary.sample_count() as f64;
                    out.push_float(metric, name, b"_count", None, count, ts);
                }
                MetricType::Histogram | MetricType::GaugeHistogram => {
                    let default = client::Histogram::default();
                    let h = metric.histogram.as_ref().unwrap_or(&default);
                    let gauge = r#type == MetricType::GaugeHistogram;
                    out.push_histogram(metric, name, h, gauge, &mut number);
                }
            }
        }
        put_family_metadata(&mut out.metadata, family);
        out.families.push(Family {
            name: family.name().to_string(),
            series: series_start..out.series.len(),
            labels: labels_start..out.labels.len(),
        });
    }
    out
}

fn put_family_metadata(out: &mut Vec<u8>, family: &MetricFamily) {
    let rw_type = match family.r#type() {
        MetricType::Counter => RwType::Counter,
        MetricType::Gauge => RwType::Gauge,
        MetricType::Summary => RwType::Summary,
        MetricType::Untyped => RwType::Unknown,
        MetricType::Histogram => RwType::Histogram,
        MetricType::GaugeHistogram => RwType::Gaugehistogram,
    };
    wire::put_metadata(
        out,
        rw_type as i32,
        family.name(),
        family.help(),
        family.unit(),
    );
}

/// The encoded labels of a per-group series such as `push_time_seconds`:
/// `__name__` and the grouping labels that have a value, sorted.
pub fn group_series_labels(name: &str, key: &GroupingKey) -> Vec<u8> {
    let mut out = Vec::new();
    let mut name_written = false;
    for (label, value) in key.labels() {
        if value.is_empty() || label.as_bytes() == NAME_LABEL {
            continue;
        }
        if !name_written && label.as_bytes() > NAME_LABEL {
            wire::put_label(&mut out, &[NAME_LABEL], &[name.as_bytes()]);
            name_written = true;
        }
        wire::put_label(&mut out, &[label.as_bytes()], &[value.as_bytes()]);
    }
    if !name_written {
        wire::put_label(&mut out, &[NAME_LABEL], &[name.as_bytes()]);
    }
    out
}

/// Whether a protobuf histogram carries native (sparse) buckets.
fn is_native(h: &client::Histogram) -> bool {
    h.schema.is_some()
        || !h.positive_span.is_empty()
        || !h.negative_span.is_empty()
        || h.zero_threshold() > 0.0
        || h.zero_count() > 0
        || h.zero_count_float() > 0.0
}

impl Converted {
    /// Encodes the labels of one series of `metric`: the metric's own
    /// labels (sorted, empty values and names clashing with the added
    /// labels skipped) merged with `__name__` and the optional `extra`.
    fn push_labels(
        &mut self,
        metric: &client::Metric,
        name: &[u8],
        suffix: &[u8],
        extra: Option<(&'static [u8], &[u8])>,
    ) -> Range<usize> {
        let start = self.labels.len();
        let mut extras: [Option<ExtraLabel>; 2] = [
            Some(ExtraLabel {
                name: NAME_LABEL,
                value: [name, suffix],
            }),
            extra.map(|(n, v)| ExtraLabel {
                name: n,
                value: [v, b""],
            }),
        ];
        // "__name__" sorts before "le" and "quantile", so `extras` is sorted.
        let mut previous: Option<&[u8]> = None;
        for label in &metric.label {
            let label_name = label.name().as_bytes();
            let value = label.value().as_bytes();
            if value.is_empty()
                || previous == Some(label_name)
                || extras.iter().flatten().any(|e| e.name == label_name)
                || label_name == NAME_LABEL
            {
                continue;
            }
            for slot in extras.iter_mut() {
                if slot.as_ref().is_some_and(|e| e.name < label_name) {
                    if let Some(e) = slot.take() {
                        wire::put_label(&mut self.labels, &[e.name], &e.value);
                    }
                }
            }
            wire::put_label(&mut self.labels, &[label_name], &[value]);
            previous = Some(label_name);
        }
        for e in extras.into_iter().flatten() {
            if e.value.iter().any(|p| !p.is_empty()) {
                wire::put_label(&mut self.labels, &[e.name], &e.value);
            }
        }
        start..self.labels.len()
    }

    fn push_float(
        &mut self,
        metric: &client::Metric,
        name: &[u8],
        suffix: &[u8],
        extra: Option<(&'static [u8], &[u8])>,
        value: f64,
        timestamp_ms: Option<i64>,
    ) {
        let labels = self.push_labels(metric, name, suffix, extra);
        self.series.push(Series {
            labels,
            value: SeriesValue::Float(value),
            timestamp_ms,
        });
    }

    fn push_histogram(
        &mut self,
        metric: &client::Metric,
        name: &[u8],
        h: &client::Histogram,
        gauge: bool,
        number: &mut String,
    ) {
        let ts = metric.timestamp_ms;
        let native = is_native(h);
        if native {
            let start = self.histograms.len();
            native_histogram(h, gauge).encode_raw(&mut self.histograms);
            let labels = self.push_labels(metric, name, b"", None);
            self.series.push(Series {
                labels,
                value: SeriesValue::Histogram(start..self.histograms.len()),
                timestamp_ms: ts,
            });
            if h.bucket.is_empty() {
                return;
            }
        }
        let count = match h.sample_count_float {
            Some(c) => c,
            None => h.sample_count() as f64,
        };
        let mut has_inf = false;
        for bucket in &h.bucket {
            let bound = bucket.upper_bound();
            has_inf |= bound == f64::INFINITY;
            let cumulative = match bucket.cumulative_count_float {
                Some(c) => c,
                None => bucket.cumulative_count() as f64,
            };
            number.clear();
            number.push_str(&gofloat::format(bound));
            let extra = (b"le" as &[u8], number.as_bytes());
            self.push_float(metric, name, b"_bucket", Some(extra), cumulative, ts);
        }
        if !has_inf {
            number.clear();
            number.push_str(&gofloat::format(f64::INFINITY));
            let extra = (b"le" as &[u8], number.as_bytes());
            self.push_float(metric, name, b"_bucket", Some(extra), count, ts);
        }
        self.push_float(metric, name, b"_sum", None, h.sample_sum(), ts);
        self.push_float(metric, name, b"_count", None, count, ts);
    }
}

/// The remote_write form of a protobuf native histogram (without timestamp).
fn native_histogram(h: &client::Histogram, gauge: bool) -> prompb::Histogram {
    use prompb::histogram::{Count, ResetHint, ZeroCount};
    let spans = |spans: &[client::BucketSpan]| {
        spans
            .iter()
            .map(|s| prompb::BucketSpan {
                offset: s.offset(),
                length: s.length(),
            })
            .collect()
    };
    let float = h.sample_count_float.is_some()
        || !h.positive_count.is_empty()
        || !h.negative_count.is_empty();
    let (count, zero_count) = if float {
        (
            Count::CountFloat(h.sample_count_float.unwrap_or(h.sample_count() as f64)),
            ZeroCount::ZeroCountFloat(h.zero_count_float.unwrap_or(h.zero_count() as f64)),
        )
    } else {
        (
            Count::CountInt(h.sample_count()),
            ZeroCount::ZeroCountInt(h.zero_count()),
        )
    };
    prompb::Histogram {
        count: Some(count),
        sum: h.sample_sum(),
        schema: h.schema(),
        zero_threshold: h.zero_threshold(),
        zero_count: Some(zero_count),
        negative_spans: spans(&h.negative_span),
        negative_deltas: h.negative_delta.clone(),
        negative_counts: h.negative_count.clone(),
        positive_spans: spans(&h.positive_span),
        positive_deltas: h.positive_delta.clone(),
        positive_counts: h.positive_count.clone(),
        reset_hint: if gauge {
            ResetHint::Gauge as i32
        } else {
            ResetHint::Unknown as i32
        },
        timestamp: 0,
        custom_values: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::client::{
        Bucket, BucketSpan, Counter, Gauge, LabelPair, Metric, Quantile, Summary, Untyped,
    };
    use crate::proto::prompb::WriteRequest;

    fn labels(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
        pairs
            .iter()
            .map(|(n, v)| LabelPair {
                name: Some(n.to_string()),
                value: Some(v.to_string()),
            })
            .collect()
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
        for s in &converted.series {
            let labels = converted.series_labels(s);
            let ts = s.timestamp_ms.unwrap_or(1000);
            match &s.value {
                SeriesValue::Float(v) => wire::put_float_series(&mut body, labels, *v, ts),
                SeriesValue::Histogram(r) => wire::put_histogram_series(
                    &mut body,
                    labels,
                    &converted.histograms[r.clone()],
                    ts,
                ),
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
        let converted = convert(&families);
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
        let request = decode(&convert(&families));
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
        let request = decode(&convert(&families));
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
        let request = decode(&convert(&families));
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
        let request = decode(&convert(&families));
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
        let request = decode(&convert(&families));
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
        let request = decode(&convert(&families));
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
}
