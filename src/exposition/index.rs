//! The borrowed parse result: a text or OpenMetrics body kept whole, and a
//! compact index into it that the forward path reads directly; a protobuf
//! body's values in the same index (its strings copied into the side
//! buffer, see `protobuf::decode_index`).
//!
//! Contract: an [`IndexedBody`] holds exactly the families the owned
//! parser of its format (`text::parse`, `text::parse_openmetrics`,
//! `protobuf::decode_delimited`) would produce for the same body, in the
//! same order, with the same labels and values, except that each metric's
//! labels are sorted by name, stably (as validation sorts the owned
//! model's before anything reads them; sorting while the line's names are
//! at hand is cheaper than a pass over the index after);
//! [`IndexedBody::to_families`] builds those owned families (the cache
//! stores them). Per series it
//! holds one [`IndexedMetric`] (16 bytes) and one [`IndexedLabel`] (16 bytes)
//! per label, and nothing on the heap: names and values are `u32` ranges of
//! the body, unescaped values ranges of one side buffer, timestamps a side
//! table. Counters, gauges and untyped families hold a value per metric;
//! summaries and histograms a [`IndexedDistribution`] per metric (sum,
//! count, and its quantiles or buckets as a range of one table of points).
//! A body the index cannot hold is parsed into the owned model instead
//! (`text::parse_index` answers `None`): not UTF-8, gauge histograms,
//! families whose lines interleave, a metric's quantile or bucket lines
//! interleaving with another's, or a summary or histogram metric with more
//! than [`MAX_GROUPED_LABELS`] labels. OpenMetrics and protobuf add their
//! own cases (start timestamps, exemplars where the model keeps them: see
//! `text::openmetrics::indexed` and `protobuf::indexed`).

use std::ops::Range;

use crate::exposition::text::go_float_to_u64;
use crate::proto::client::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType, Quantile,
    Summary, Untyped,
};

/// Marks a label span as a range of [`TextIndex::unescaped`] rather than
/// of the body.
const UNESCAPED: u32 = 1 << 31;

/// The largest body an index addresses (span starts keep their top bit for
/// [`UNESCAPED`]).
pub(crate) const MAX_INDEXED_BODY: usize = (UNESCAPED - 1) as usize;

/// The most labels a summary or histogram metric may have to be indexed:
/// finding the metric a line belongs to compares label sets pairwise.
pub(crate) const MAX_GROUPED_LABELS: usize = 16;

/// What a sample line of a summary or histogram records: a quantile or
/// bucket, the sum, or the count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Plain,
    Sum,
    Count,
}

/// A label of one metric: its name and value as spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexedLabel {
    name: [u32; 2],
    /// Start (top bit: [`UNESCAPED`]) and end of the value.
    value: [u32; 2],
}

/// One metric (one series): its labels, a range of [`TextIndex::labels`],
/// and its value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct IndexedMetric {
    labels: [u32; 2],
    pub(crate) value: f64,
}

/// The values of one summary or histogram metric, as pushed: its
/// quantiles or buckets (a range of [`TextIndex::points`]), sum and count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct IndexedDistribution {
    points: [u32; 2],
    pub(crate) sum: Option<f64>,
    count: Option<f64>,
}

impl IndexedDistribution {
    /// The count as the model holds it (Go's `uint64(f)` of the value).
    pub(crate) fn count(&self) -> Option<u64> {
        self.count.map(go_float_to_u64)
    }
}

/// A quantile (bound, value) or bucket (upper bound, cumulative count as
/// pushed).
pub(crate) type Point = (f64, f64);

/// One family with metrics: their range of [`TextIndex::metrics`].
#[derive(Clone, Debug, PartialEq)]
pub struct IndexedFamily {
    pub name: String,
    pub help: Option<String>,
    pub kind: MetricType,
    /// An OpenMetrics family's unit.
    pub unit: Option<String>,
    metrics: Range<u32>,
    /// A summary's or histogram's first metric's index in
    /// [`TextIndex::distributions`] (its metrics' are contiguous).
    distributions: u32,
}

impl IndexedFamily {
    pub(crate) fn metrics_len(&self) -> usize {
        self.metrics.len()
    }

    /// Whether its metrics are summaries or histograms.
    pub(crate) fn is_distribution(&self) -> bool {
        matches!(self.kind, MetricType::Summary | MetricType::Histogram)
    }

    /// The last metric's index, when it has one.
    fn last_metric(&self) -> Option<usize> {
        (!self.metrics.is_empty()).then(|| self.metrics.end as usize - 1)
    }
}

/// The index of a text body (without the body).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TextIndex {
    pub(crate) families: Vec<IndexedFamily>,
    pub(crate) metrics: Vec<IndexedMetric>,
    pub(crate) labels: Vec<IndexedLabel>,
    /// Summary and histogram metrics' values, by family (see
    /// [`IndexedFamily`]).
    pub(crate) distributions: Vec<IndexedDistribution>,
    /// Quantiles and buckets, each metric's contiguous and in line order.
    pub(crate) points: Vec<Point>,
    /// `(metric index, timestamp)`, ascending by metric.
    pub(crate) timestamps: Vec<(u32, i64)>,
    /// Label values that contained escapes, unescaped; a protobuf body's
    /// label names and values.
    pub(crate) unescaped: String,
    /// Every label name is a legacy one (`[a-zA-Z_][a-zA-Z0-9_]*`) without
    /// the reserved `__` prefix: the text grammars admit no other names,
    /// and their parsers clear this on seeing a `__` one (see
    /// [`Self::note_label_name`]), so that validation and the forwarder
    /// need not read the names again; a protobuf body's can be anything.
    pub(crate) plain_label_names: bool,
}

/// Index building, for the text parser.
impl TextIndex {
    /// The index of a text or OpenMetrics body, with room for about
    /// `lines` metrics and `labels` labels.
    pub(crate) fn for_text(lines: usize, labels: usize) -> Self {
        Self {
            metrics: Vec::with_capacity(lines),
            labels: Vec::with_capacity(labels),
            plain_label_names: true,
            ..Self::default()
        }
    }

    /// Notes a label name of a text body (see [`Self::plain_label_names`]).
    #[inline]
    pub(crate) fn note_label_name(&mut self, name: &str) {
        if name.starts_with("__") {
            self.plain_label_names = false;
        }
    }

    /// Starts family `name`'s metrics at the next metric, or returns false
    /// when the family already has metrics that do not end there (its
    /// lines interleave with another family's: not indexable).
    pub(crate) fn continue_family(&mut self, slot: usize, name: &str, kind: MetricType) -> bool {
        let next = self.metrics.len() as u32;
        while self.families.len() <= slot {
            self.families.push(IndexedFamily {
                name: String::new(),
                help: None,
                kind: MetricType::Untyped,
                unit: None,
                metrics: 0..0,
                distributions: 0,
            });
        }
        let family = &mut self.families[slot];
        if family.metrics.is_empty() {
            family.name = name.to_owned();
            family.kind = kind;
            family.metrics = next..next;
            family.distributions = self.distributions.len() as u32;
            return true;
        }
        family.metrics.end == next
    }

    /// Appends a metric of family `slot` (see [`Self::continue_family`])
    /// with labels given as `(name span, value)` where the value is a span
    /// of `body` or, when it had escapes, its unescaped text; `sorted` when
    /// they come in name order, else they are sorted here, stably (as
    /// validation sorts the owned model's), so that every reader of the
    /// index finds them sorted.
    pub(crate) fn push_metric<'v>(
        &mut self,
        slot: usize,
        body: &str,
        labels: impl Iterator<Item = ([u32; 2], Result<[u32; 2], &'v str>)>,
        sorted: bool,
    ) -> usize {
        let start = self.labels.len() as u32;
        for (name, value) in labels {
            let value = match value {
                Ok(span) => span,
                Err(text) => self.push_text(text),
            };
            self.labels.push(IndexedLabel { name, value });
        }
        if !sorted {
            let unescaped = &self.unescaped;
            let name = |label: &IndexedLabel| span(body, unescaped, label.name);
            self.labels[start as usize..].sort_by(|a, b| name(a).cmp(name(b)));
        }
        let index = self.metrics.len();
        self.metrics.push(IndexedMetric {
            labels: [start, self.labels.len() as u32],
            value: 0.0,
        });
        let family = &mut self.families[slot];
        family.metrics.end += 1;
        if family.is_distribution() {
            let next = self.points.len() as u32;
            self.distributions.push(IndexedDistribution {
                points: [next, next],
                sum: None,
                count: None,
            });
        }
        index
    }

    /// Sets the unit of family `slot` (see [`Self::continue_family`]).
    pub(crate) fn set_unit(&mut self, slot: usize, unit: Option<String>) {
        if let Some(family) = self.families.get_mut(slot) {
            family.unit = unit;
        }
    }

    /// The last metric of family `slot`, when it has one.
    pub(crate) fn last_metric(&self, slot: usize) -> Option<usize> {
        self.families.get(slot)?.last_metric()
    }

    /// The labels of metric `index` as text, `body` being the indexed body.
    pub(crate) fn labels<'t>(
        &'t self,
        body: &'t str,
        index: usize,
    ) -> impl ExactSizeIterator<Item = LabelText<'t>> + Clone {
        let [start, end] = self.metrics[index].labels;
        self.labels[start as usize..end as usize]
            .iter()
            .map(move |label| {
                (
                    span(body, &self.unescaped, label.name),
                    span(body, &self.unescaped, label.value),
                )
            })
    }

    /// Records a sample line's value on metric `index` of family `slot`
    /// as Go's `readingValue` does (`selector`: the line's quantile or
    /// `le`, NaN when it has none). False when a quantile or bucket cannot
    /// follow the metric's earlier ones in [`Self::points`] because
    /// another metric's came in between.
    pub(crate) fn set_value(
        &mut self,
        slot: usize,
        index: usize,
        role: Role,
        selector: f64,
        value: f64,
    ) -> bool {
        let family = &self.families[slot];
        if !family.is_distribution() {
            self.metrics[index].value = value;
            return true;
        }
        let at = family.distributions as usize + (index - family.metrics.start as usize);
        let distribution = &mut self.distributions[at];
        match role {
            Role::Count => distribution.count = Some(value),
            Role::Sum => distribution.sum = Some(value),
            // A NaN quantile or bound (absent or written `NaN`) records
            // nothing.
            Role::Plain if selector.is_nan() => {}
            Role::Plain => {
                let next = self.points.len() as u32;
                let points = &mut distribution.points;
                if points[0] == points[1] {
                    *points = [next, next];
                }
                if points[1] != next {
                    return false;
                }
                points[1] += 1;
                self.points.push((selector, value));
            }
        }
        true
    }

    /// Sets metric `index`'s timestamp (a later line of a summary or
    /// histogram metric overrides an earlier one's); false when a later
    /// metric already has one, which would leave the table unsorted.
    pub(crate) fn set_timestamp(&mut self, index: usize, timestamp: i64) -> bool {
        let index = index as u32;
        match self.timestamps.last_mut() {
            Some((last, at)) if *last == index => *at = timestamp,
            Some((last, _)) if *last > index => return false,
            _ => self.timestamps.push((index, timestamp)),
        }
        true
    }

    /// Keeps `text` beside the body (a decoded protobuf string): its span,
    /// for [`Self::push_metric`].
    pub(crate) fn push_text(&mut self, text: &str) -> [u32; 2] {
        let from = self.unescaped.len() as u32;
        self.unescaped.push_str(text);
        [from | UNESCAPED, self.unescaped.len() as u32]
    }

    /// Drops the families without metrics and sets the help texts
    /// (`helps` by family slot).
    pub(crate) fn finish(&mut self, mut helps: impl FnMut(usize) -> Option<String>) {
        let mut slot = 0;
        self.families.retain_mut(|family| {
            family.help = helps(slot);
            slot += 1;
            !family.metrics.is_empty()
        });
    }
}

/// A text body and its index (or a protobuf body's index, with an empty
/// body): the forward path's parse result.
#[derive(Clone, Debug, PartialEq)]
pub struct IndexedBody {
    body: String,
    index: TextIndex,
}

/// One label as text.
pub(crate) type LabelText<'a> = (&'a str, &'a str);

impl IndexedBody {
    pub(crate) fn new(body: String, index: TextIndex) -> Self {
        Self { body, index }
    }

    pub fn families(&self) -> &[IndexedFamily] {
        &self.index.families
    }

    /// The number of metrics (series) of all families.
    pub fn metric_count(&self) -> usize {
        self.index.metrics.len()
    }

    pub(crate) fn has_timestamps(&self) -> bool {
        !self.index.timestamps.is_empty()
    }

    /// See [`TextIndex::plain_label_names`].
    pub(crate) fn has_plain_label_names(&self) -> bool {
        self.index.plain_label_names
    }

    /// The metrics of `family`, by index.
    pub(crate) fn metric_range(&self, family: &IndexedFamily) -> Range<usize> {
        family.metrics.start as usize..family.metrics.end as usize
    }

    pub(crate) fn metric(&self, index: usize) -> &IndexedMetric {
        &self.index.metrics[index]
    }

    /// The labels of metric `index`, in their stored order.
    pub(crate) fn labels(
        &self,
        index: usize,
    ) -> impl ExactSizeIterator<Item = LabelText<'_>> + Clone {
        self.index.labels(&self.body, index)
    }

    /// The values of summary or histogram metric `index` of `family`: its
    /// sum and count, and its quantiles or buckets.
    pub(crate) fn distribution(
        &self,
        family: &IndexedFamily,
        index: usize,
    ) -> Option<(&IndexedDistribution, &[Point])> {
        if !family.is_distribution() {
            return None;
        }
        let at = family.distributions as usize + (index - family.metrics.start as usize);
        let distribution = self.index.distributions.get(at)?;
        let [start, end] = distribution.points;
        let points = self.index.points.get(start as usize..end as usize)?;
        Some((distribution, points))
    }

    /// The series a scrape of the push would show (as
    /// `validate::check` counts them): one per counter, gauge or untyped
    /// metric, quantiles + 2 per summary, buckets with `+Inf` + 2 per
    /// histogram.
    pub(crate) fn series_count(&self) -> usize {
        self.index
            .families
            .iter()
            .map(|family| {
                if !family.is_distribution() {
                    return family.metrics_len();
                }
                self.metric_range(family)
                    .filter_map(|index| self.distribution(family, index))
                    .map(|(_, points)| {
                        let missing_inf = family.kind == MetricType::Histogram
                            && points
                                .last()
                                .is_none_or(|&(bound, _)| bound != f64::INFINITY);
                        points.len() + 2 + usize::from(missing_inf)
                    })
                    .sum()
            })
            .sum()
    }

    /// The pushed timestamp of metric `index`.
    pub(crate) fn timestamp(&self, index: usize) -> Option<i64> {
        if self.index.timestamps.is_empty() {
            return None;
        }
        let timestamps = &self.index.timestamps;
        timestamps
            .binary_search_by_key(&(index as u32), |&(metric, _)| metric)
            .ok()
            .map(|at| timestamps[at].1)
    }

    /// The owned families the text parser would have produced.
    pub fn to_families(&self) -> Vec<MetricFamily> {
        self.index
            .families
            .iter()
            .map(|family| MetricFamily {
                name: Some(family.name.clone()),
                help: family.help.clone(),
                r#type: Some(family.kind as i32),
                metric: self
                    .metric_range(family)
                    .map(|index| self.to_metric(family, index))
                    .collect(),
                unit: family.unit.clone(),
            })
            .collect()
    }

    pub(crate) fn to_metric(&self, family: &IndexedFamily, index: usize) -> Metric {
        let value = Some(self.index.metrics[index].value);
        let mut metric = Metric {
            label: self
                .labels(index)
                .map(|(name, value)| LabelPair::new(name, value))
                .collect(),
            timestamp_ms: self.timestamp(index),
            ..Metric::default()
        };
        if let Some((distribution, points)) = self.distribution(family, index) {
            let (sum, count) = (distribution.sum, distribution.count());
            if family.kind == MetricType::Summary {
                metric.summary = Some(Summary {
                    sample_count: count,
                    sample_sum: sum,
                    quantile: points
                        .iter()
                        .map(|&(quantile, value)| Quantile {
                            quantile: Some(quantile),
                            value: Some(value),
                        })
                        .collect(),
                    ..Summary::default()
                });
            } else {
                metric.histogram = Some(Histogram {
                    sample_count: count,
                    sample_sum: sum,
                    bucket: points
                        .iter()
                        .map(|&(bound, count)| Bucket {
                            upper_bound: Some(bound),
                            cumulative_count: Some(go_float_to_u64(count)),
                            ..Bucket::default()
                        })
                        .collect(),
                    ..Histogram::default()
                });
            }
            return metric;
        }
        match family.kind {
            MetricType::Counter => {
                metric.counter = Some(Counter {
                    value,
                    ..Counter::default()
                })
            }
            MetricType::Gauge => metric.gauge = Some(Gauge { value }),
            _ => metric.untyped = Some(Untyped { value }),
        }
        metric
    }
}

/// The text of a label span: of `body`, or of `unescaped` when marked so.
fn span<'t>(body: &'t str, unescaped: &'t str, [start, end]: [u32; 2]) -> &'t str {
    let (text, start) = if start & UNESCAPED != 0 {
        (unescaped, start & !UNESCAPED)
    } else {
        (body, start)
    };
    text.get(start as usize..end as usize).unwrap_or_default()
}

#[cfg(test)]
mod openmetrics_tests;
#[cfg(test)]
mod protobuf_tests;
#[cfg(test)]
mod tests;
