//! The borrowed parse result: a text body kept whole, and a compact index
//! into it that the forward path reads directly.
//!
//! Contract: an [`IndexedBody`] holds exactly the families the owned text
//! parser (`text::parse`) would produce for the same body, in the same
//! order, with the same labels and values; [`IndexedBody::to_families`]
//! builds those owned families (the cache stores them). Per series it
//! holds one [`IndexedMetric`] (16 bytes) and one [`IndexedLabel`] (16 bytes)
//! per label, and nothing on the heap: names and values are `u32` ranges of
//! the body, unescaped values ranges of one side buffer, timestamps a side
//! table. Only counters, gauges and untyped families are indexed; a body
//! with anything else (or not UTF-8, or families whose lines interleave)
//! is parsed into the owned model instead (`text::parse_indexed`).

use std::ops::Range;

use crate::proto::client::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType, Untyped};

/// Marks a label value span as a range of [`TextIndex::unescaped`] rather
/// than of the body.
const UNESCAPED: u32 = 1 << 31;

/// The largest body an index addresses (span starts keep their top bit for
/// [`UNESCAPED`]).
pub(crate) const MAX_INDEXED_BODY: usize = (UNESCAPED - 1) as usize;

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

/// One family with metrics: their range of [`TextIndex::metrics`].
#[derive(Clone, Debug, PartialEq)]
pub struct IndexedFamily {
    pub name: String,
    pub help: Option<String>,
    pub kind: MetricType,
    metrics: Range<u32>,
}

impl IndexedFamily {
    pub(crate) fn metrics_len(&self) -> usize {
        self.metrics.len()
    }
}

/// The index of a text body (without the body).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TextIndex {
    pub(crate) families: Vec<IndexedFamily>,
    pub(crate) metrics: Vec<IndexedMetric>,
    pub(crate) labels: Vec<IndexedLabel>,
    /// `(metric index, timestamp)`, ascending by metric.
    pub(crate) timestamps: Vec<(u32, i64)>,
    /// Label values that contained escapes, unescaped.
    pub(crate) unescaped: String,
    /// Some metric's labels are not in name order (as pushed).
    pub(crate) unsorted_labels: bool,
}

/// Index building, for the text parser.
impl TextIndex {
    /// Room for about `lines` metrics and `labels` labels.
    pub(crate) fn with_capacity(lines: usize, labels: usize) -> Self {
        Self {
            metrics: Vec::with_capacity(lines),
            labels: Vec::with_capacity(labels),
            ..Self::default()
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
                metrics: 0..0,
            });
        }
        let family = &mut self.families[slot];
        if family.metrics.is_empty() {
            family.name = name.to_owned();
            family.kind = kind;
            family.metrics = next..next;
            return true;
        }
        family.metrics.end == next
    }

    /// Appends a metric of family `slot` (see [`Self::continue_family`])
    /// with labels given as `(name span, value)` where the value is a span
    /// of the body or, when it had escapes, its unescaped text; `sorted`
    /// when they come in name order.
    pub(crate) fn push_metric<'v>(
        &mut self,
        slot: usize,
        labels: impl Iterator<Item = ([u32; 2], Result<[u32; 2], &'v str>)>,
        sorted: bool,
    ) -> usize {
        self.unsorted_labels |= !sorted;
        let start = self.labels.len() as u32;
        for (name, value) in labels {
            let value = match value {
                Ok(span) => span,
                Err(text) => {
                    let from = self.unescaped.len() as u32;
                    self.unescaped.push_str(text);
                    [from | UNESCAPED, self.unescaped.len() as u32]
                }
            };
            self.labels.push(IndexedLabel { name, value });
        }
        let index = self.metrics.len();
        self.metrics.push(IndexedMetric {
            labels: [start, self.labels.len() as u32],
            value: 0.0,
        });
        self.families[slot].metrics.end += 1;
        index
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

/// A text body and its index: the forward path's parse result.
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

    /// The metrics of `family`, by index.
    pub(crate) fn metric_range(&self, family: &IndexedFamily) -> Range<usize> {
        family.metrics.start as usize..family.metrics.end as usize
    }

    pub(crate) fn metric(&self, index: usize) -> &IndexedMetric {
        &self.index.metrics[index]
    }

    fn span(&self, [start, end]: [u32; 2]) -> &str {
        let (text, start) = if start & UNESCAPED != 0 {
            (self.index.unescaped.as_str(), start & !UNESCAPED)
        } else {
            (self.body.as_str(), start)
        };
        text.get(start as usize..end as usize).unwrap_or_default()
    }

    /// The labels of metric `index`, in their stored order.
    pub(crate) fn labels(&self, index: usize) -> impl ExactSizeIterator<Item = LabelText<'_>> {
        let [start, end] = self.index.metrics[index].labels;
        self.index.labels[start as usize..end as usize]
            .iter()
            .map(|label| (self.span(label.name), self.span(label.value)))
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

    /// Sorts every metric's labels by name, stably (as validation sorts
    /// the owned model's).
    pub(crate) fn sort_labels(&mut self) {
        let Self { body, index } = self;
        if !index.unsorted_labels {
            return;
        }
        for metric in &index.metrics {
            let [start, end] = metric.labels;
            let labels = &mut index.labels[start as usize..end as usize];
            let name = |label: &IndexedLabel| {
                body.get(label.name[0] as usize..label.name[1] as usize)
                    .unwrap_or_default()
            };
            if !labels.is_sorted_by(|a, b| name(a) <= name(b)) {
                labels.sort_by(|a, b| name(a).cmp(name(b)));
            }
        }
        index.unsorted_labels = false;
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
                    .map(|index| self.to_metric(family.kind, index))
                    .collect(),
                unit: None,
            })
            .collect()
    }

    fn to_metric(&self, kind: MetricType, index: usize) -> Metric {
        let value = Some(self.index.metrics[index].value);
        let mut metric = Metric {
            label: self
                .labels(index)
                .map(|(name, value)| LabelPair::new(name, value))
                .collect(),
            timestamp_ms: self.timestamp(index),
            ..Metric::default()
        };
        match kind {
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

#[cfg(test)]
mod tests;
