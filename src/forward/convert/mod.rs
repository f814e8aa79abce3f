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
//! What only Remote-Write 2.0 carries rides beside the series, in
//! [`Converted::extras`], and leaves the 1.0 encoding untouched: the start
//! ("created") timestamp of counters, summaries and histograms (protobuf
//! `created_timestamp`, OpenMetrics `_created`) on every series of the
//! metric, and exemplars: a counter's on its series, a classic bucket's on
//! its `_bucket` series, a native histogram's on the histogram. A native
//! histogram with custom buckets (schema -53) takes its bounds from the
//! classic buckets' finite upper bounds, as Prometheus' own conversion of
//! classic buckets does.
//!
//! The result is not yet a request: timestamps are stamped later, in order,
//! by the shard that sends the push (see `batch`). Labels are encoded here,
//! once, into one buffer, on the pusher's task, so the shard only copies
//! bytes.

use std::ops::Range;

use prost::Message;

use super::wire;
use super::wire_v2::{Exemplar, Extras};
use crate::exposition::{Families, gofloat};
use crate::proto::client::{self, MetricFamily, MetricType};
use crate::proto::prompb::{self, metric_metadata::MetricType as RwType};
use crate::push::GroupingKey;
use crate::push::grouping::GroupingLabels;

/// The value of one converted series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SeriesValue {
    Float(f64),
    /// A histogram: its index in [`Converted::histogram_spans`].
    Histogram(usize),
}

/// Marks, in a [`Series`]' label start, a histogram series.
const HISTOGRAM_SERIES: u32 = 1 << 31;

/// One series of a converted push: 16 bytes, as a large push holds one per
/// sample (a million-series push, 17 bytes a line, holds about its body in
/// them). What only some series carry lives beside them in [`Converted`]:
/// a pushed timestamp, a histogram's encoding, what 2.0 adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Series {
    /// Start and end of its encoded `TimeSeries.labels` entries in
    /// [`Converted::labels`]; the start's top bit marks a histogram.
    labels: [u32; 2],
    /// The float value's bits, or the histogram's index.
    value: u64,
}

impl Series {
    /// The most label bytes a converted push may hold: a series addresses
    /// them with 31 bits.
    pub const MAX_LABEL_BYTES: usize = (HISTOGRAM_SERIES - 1) as usize;

    /// A series whose labels are `labels`, or `None` when they reach past
    /// [`Self::MAX_LABEL_BYTES`] (or the range is reversed).
    pub fn new(labels: Range<usize>, value: SeriesValue) -> Option<Self> {
        if labels.end > Self::MAX_LABEL_BYTES || labels.start > labels.end {
            return None;
        }
        let (marker, value) = match value {
            SeriesValue::Float(v) => (0, v.to_bits()),
            SeriesValue::Histogram(index) => (HISTOGRAM_SERIES, index as u64),
        };
        Some(Self {
            labels: [labels.start as u32 | marker, labels.end as u32],
            value,
        })
    }

    /// Where its encoded labels are in [`Converted::labels`].
    pub fn labels(&self) -> Range<usize> {
        (self.labels[0] & !HISTOGRAM_SERIES) as usize..self.labels[1] as usize
    }

    pub fn value(&self) -> SeriesValue {
        if self.labels[0] & HISTOGRAM_SERIES == 0 {
            SeriesValue::Float(f64::from_bits(self.value))
        } else {
            SeriesValue::Histogram(self.value as usize)
        }
    }
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
    /// Encoded `prompb::Histogram` fields (no timestamp) of the histogram
    /// series, back to back.
    pub histograms: Vec<u8>,
    /// Each histogram series' range of `histograms`, in series order.
    pub histogram_spans: Vec<Range<usize>>,
    pub series: Vec<Series>,
    /// Pushed timestamps (honoured timestamps), by index in `series`,
    /// ascending; empty when the push carries none.
    pub timestamps: Vec<(usize, i64)>,
    pub families: Vec<Family>,
    /// Encoded `WriteRequest.metadata` entries, one per family.
    pub metadata: Vec<u8>,
    /// What 2.0 carries beyond the series, by index in `series`, ascending.
    pub extras: Vec<(usize, Extras)>,
    /// Its label bytes grew past [`Series::MAX_LABEL_BYTES`]: the series
    /// past that point are missing, and the push cannot be forwarded.
    pub too_large: bool,
}

impl Converted {
    /// Reserves about what `families` will need, so the buffers do not grow
    /// by doubling on large pushes.
    fn reserve(&mut self, families: &[MetricFamily], key: &GroupingKey) {
        let grouping_bytes: usize = key
            .labels()
            .iter()
            .map(|(name, value)| name.len() + value.len() + 6)
            .sum();
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
            let one = label_bytes + grouping_bytes + family.name().len() + 32;
            series += family.metric.len() * per_series;
            bytes += family.metric.len() * per_series * one;
        }
        self.series.reserve(series);
        self.labels.reserve(bytes);
        self.families.reserve(families.len());
    }

    /// The label bytes of one series.
    pub fn series_labels(&self, series: &Series) -> &[u8] {
        &self.labels[series.labels()]
    }

    /// The encoded fields of histogram `index` (see [`SeriesValue::Histogram`]).
    pub fn histogram(&self, index: usize) -> &[u8] {
        self.histogram_spans
            .get(index)
            .and_then(|span| self.histograms.get(span.clone()))
            .unwrap_or_default()
    }

    /// The pushed timestamp of series `index`, if it carries one.
    pub fn timestamp(&self, index: usize) -> Option<i64> {
        if self.timestamps.is_empty() {
            return None;
        }
        self.timestamps
            .binary_search_by_key(&index, |&(series, _)| series)
            .ok()
            .map(|at| self.timestamps[at].1)
    }

    /// Appends a series, with its pushed timestamp if it has one.
    fn push_series(&mut self, labels: Range<usize>, value: SeriesValue, timestamp_ms: Option<i64>) {
        let Some(series) = Series::new(labels, value) else {
            self.too_large = true;
            return;
        };
        if let Some(timestamp) = timestamp_ms {
            self.timestamps.push((self.series.len(), timestamp));
        }
        self.series.push(series);
    }
}

/// Converts a validated push's families (see [`convert`]); an indexed text
/// body is read directly ([`convert_indexed`]).
pub fn convert_families(families: &Families, key: &GroupingKey) -> Converted {
    match families {
        Families::Owned(families) => convert(families, key),
        Families::Indexed(indexed) => convert_indexed(indexed, key),
    }
}

/// Converts validated families (each metric's labels sorted by name) of a
/// push to `key` into series, merging the grouping labels into every series
/// as `push::grouping` defines (already merged families convert the same).
pub fn convert(families: &[MetricFamily], key: &GroupingKey) -> Converted {
    let mut converted = Converted::default();
    converted.reserve(families, key);
    let grouping = GroupingLabels::new(key);
    let mut out = Builder {
        out: converted,
        grouping: &grouping,
        name_entry: Vec::new(),
    };
    let mut number = String::new();
    for family in families {
        let series_start = out.out.series.len();
        let labels_start = out.out.labels.len();
        let name = family.name().as_bytes();
        let r#type = family.r#type();
        for metric in &family.metric {
            let ts = metric.timestamp_ms;
            let first_series = out.out.series.len();
            match r#type {
                MetricType::Counter => {
                    let v = metric.counter.as_ref().map_or(0.0, |c| c.value());
                    out.push_float(metric, name, b"", None, v, ts);
                    let exemplar = metric.counter.as_ref().and_then(|c| c.exemplar.as_ref());
                    out.add_exemplars(first_series, exemplar);
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
            out.set_start(first_series, start_timestamp_ms(metric));
        }
        let converted = &mut out.out;
        put_family_metadata(&mut converted.metadata, family);
        converted.families.push(Family {
            name: family.name().to_string(),
            series: series_start..converted.series.len(),
            labels: labels_start..converted.labels.len(),
        });
    }
    out.out
}

/// A conversion in progress: the output and the push's grouping labels.
struct Builder<'g> {
    out: Converted,
    grouping: &'g GroupingLabels,
    /// The `__name__` label being written (see [`name_entry`]).
    name_entry: Vec<u8>,
}

/// The start ("created") time of a counter, summary or histogram in ms; 0
/// when the push does not carry one.
fn start_timestamp_ms(metric: &client::Metric) -> i64 {
    let created = match (&metric.counter, &metric.summary, &metric.histogram) {
        (Some(c), _, _) => c.created_timestamp.as_ref(),
        (_, Some(s), _) => s.created_timestamp.as_ref(),
        (_, _, Some(h)) => h.created_timestamp.as_ref(),
        _ => None,
    };
    created.map_or(0, timestamp_ms)
}

fn timestamp_ms(t: &prost_types::Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(t.nanos) / 1_000_000)
}

/// The 2.0 form of a pushed exemplar (labels sorted by name).
fn exemplar(e: &client::Exemplar) -> Exemplar {
    let mut labels: Vec<(String, String)> = e
        .label
        .iter()
        .map(|l| (l.name().to_string(), l.value().to_string()))
        .collect();
    labels.sort();
    Exemplar {
        labels,
        value: e.value(),
        timestamp_ms: e.timestamp.as_ref().map(timestamp_ms),
    }
}

fn put_family_metadata(out: &mut Vec<u8>, family: &MetricFamily) {
    wire::put_metadata(
        out,
        rw_type(family.r#type()) as i32,
        family.name(),
        family.help(),
        family.unit(),
    );
}

/// The remote_write metadata type of a family type.
fn rw_type(kind: MetricType) -> RwType {
    match kind {
        MetricType::Counter => RwType::Counter,
        MetricType::Gauge => RwType::Gauge,
        MetricType::Summary => RwType::Summary,
        MetricType::Untyped => RwType::Unknown,
        MetricType::Histogram => RwType::Histogram,
        MetricType::GaugeHistogram => RwType::Gaugehistogram,
    }
}

/// The encoded labels of a per-group series such as `push_time_seconds`:
/// a series with no labels of its own, converted as any other (`__name__`
/// and the grouping labels that have a value, sorted).
pub fn group_series_labels(name: &str, key: &GroupingKey) -> Vec<u8> {
    let grouping = GroupingLabels::new(key);
    let mut out = Builder {
        out: Converted::default(),
        grouping: &grouping,
        name_entry: Vec::new(),
    };
    out.push_labels(&client::Metric::default(), name.as_bytes(), b"", None);
    out.out.labels
}

/// A value as it can go on the wire: the stale-marker bit pattern means
/// "series ended" and nothing else to a remote_write receiver; a protobuf
/// push can carry it as a value, which a scrape of the Pushgateway reads as
/// plain NaN.
fn sendable(value: f64) -> f64 {
    if value.to_bits() == wire::STALE_NAN_BITS {
        f64::NAN
    } else {
        value
    }
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

impl Builder<'_> {
    /// The extras of series `index`, added when missing.
    fn extras_of(&mut self, index: usize) -> &mut Extras {
        let extras = &mut self.out.extras;
        let at = extras.partition_point(|(i, _)| *i < index);
        if extras.get(at).is_none_or(|(i, _)| *i != index) {
            extras.insert(at, (index, Extras::default()));
        }
        &mut extras[at].1
    }

    /// Gives series `index` the pushed exemplars.
    fn add_exemplars<'e>(
        &mut self,
        index: usize,
        exemplars: impl IntoIterator<Item = &'e client::Exemplar>,
    ) {
        let mut exemplars = exemplars.into_iter().peekable();
        if exemplars.peek().is_some() {
            self.extras_of(index)
                .exemplars
                .extend(exemplars.map(exemplar));
        }
    }

    /// Gives every series from `first` on the start timestamp, when known.
    fn set_start(&mut self, first: usize, start_ms: i64) {
        if start_ms == 0 {
            return;
        }
        for index in first..self.out.series.len() {
            self.extras_of(index).start_timestamp_ms = start_ms;
        }
    }

    /// Encodes the labels of one series of `metric` (see [`write_labels`]).
    fn push_labels(
        &mut self,
        metric: &client::Metric,
        name: &[u8],
        suffix: &[u8],
        extra: Option<(&'static [u8], &[u8])>,
    ) -> Range<usize> {
        let merged = self
            .grouping
            .merge(&metric.label)
            .map(|label| (label.name().as_bytes(), label.value().as_bytes(), None));
        name_entry(&mut self.name_entry, name, suffix);
        write_labels(&mut self.out.labels, merged, &self.name_entry, extra)
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
        self.out
            .push_series(labels, SeriesValue::Float(sendable(value)), timestamp_ms);
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
            let start = self.out.histograms.len();
            native_histogram(h, gauge).encode_raw(&mut self.out.histograms);
            let end = self.out.histograms.len();
            let labels = self.push_labels(metric, name, b"", None);
            let histogram = SeriesValue::Histogram(self.out.histogram_spans.len());
            self.out.histogram_spans.push(start..end);
            self.out.push_series(labels, histogram, ts);
            self.add_exemplars(self.out.series.len() - 1, &h.exemplars);
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
            self.add_exemplars(self.out.series.len() - 1, &bucket.exemplar);
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

/// The schema of a native histogram whose bucket bounds are given
/// (`custom_values`) rather than exponential.
const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

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
        custom_values: if h.schema() == CUSTOM_BUCKETS_SCHEMA {
            h.bucket
                .iter()
                .map(|b| b.upper_bound())
                .filter(|bound| bound.is_finite())
                .collect()
        } else {
            Vec::new()
        },
    }
}

mod indexed;
mod labels;
#[cfg(test)]
mod tests;

pub use indexed::convert_indexed;
use labels::{name_entry, write_labels};
