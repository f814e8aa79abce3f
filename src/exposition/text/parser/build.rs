//! What a sample line builds: the family a name resolves to (as Go's
//! `setOrCreateCurrentMF` finds it), and the metric the line adds or
//! fills, in the owned model or in the index (`exposition::index`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;

use memchr::memchr;

use super::{Fault, Parser, Resolved, Role, Step};
use crate::exposition::index::MAX_GROUPED_LABELS;
use crate::exposition::text::scan::go_float_to_u64;
use crate::label_order;
use crate::proto::client::{
    Bucket, Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType, Quantile, Summary, Untyped,
};

impl<'a> Parser<'a> {
    /// Before a family's first metric, reserves room for the sample lines of
    /// its name that follow in a row (the line at `start` included): a
    /// metric is several hundred bytes, so growing by doubling would copy
    /// each one about twice. Only for one-line metrics (not summaries and
    /// histograms).
    pub(super) fn reserve_run(&mut self, family: usize, start: usize, name_end: usize) {
        let metrics = &mut self.families[family].metric;
        if metrics.capacity() != 0 {
            return;
        }
        let body = self.body;
        let name = &body[start..name_end];
        let mut lines = 0;
        let mut line = start;
        while let Some(rest) = body.get(line..) {
            if !rest.starts_with(name) || !matches!(rest.get(name.len()), Some(b'{' | b' ' | b'\t'))
            {
                break;
            }
            lines += 1;
            match memchr(b'\n', &rest[name.len()..]) {
                Some(offset) => line += name.len() + offset + 1,
                None => break,
            }
        }
        metrics.reserve_exact(lines);
    }

    /// Appends a metric carrying the current line's labels.
    pub(super) fn new_metric(&mut self, family: usize) -> usize {
        let label = self
            .labels
            .drain(..)
            .map(|(name, value)| LabelPair {
                name: Some(name.to_owned()),
                value: Some(value.into_owned()),
            })
            .collect();
        let metrics = &mut self.families[family].metric;
        metrics.push(Metric {
            label,
            ..Metric::default()
        });
        metrics.len() - 1
    }

    /// Appends an index metric carrying the current line's labels.
    pub(super) fn new_indexed_metric(&mut self, family: usize, kind: MetricType) -> Step<usize> {
        let name = self.families[family].name();
        if !self.index.continue_family(family, name, kind) {
            return Err(Fault::NeedsOwnedModel);
        }
        sort_by_name(&mut self.labels);
        let base = self.body.as_ptr() as usize;
        // Names and borrowed values are slices of the body: their offsets
        // in it are their spans.
        let span = |text: &str| {
            let start = (text.as_ptr() as usize - base) as u32;
            [start, start + text.len() as u32]
        };
        let labels = self.labels.iter().map(|(name, value)| {
            let value = match value {
                Cow::Borrowed(text) => Ok(span(text)),
                Cow::Owned(text) => Err(text.as_str()),
            };
            (span(name), value)
        });
        let index = self.index.push_metric(family, "", labels, true);
        self.labels.clear();
        Ok(index)
    }

    /// The index metric of a summary or histogram with the current line's
    /// label set: the family's last metric (lines of one metric come in a
    /// row), else one seen before, else a new one.
    pub(super) fn grouped_indexed_metric(
        &mut self,
        family: usize,
        kind: MetricType,
    ) -> Step<usize> {
        if self.labels.len() > MAX_GROUPED_LABELS {
            return Err(Fault::NeedsOwnedModel);
        }
        if let Some(last) = self.index.last_metric(family)
            && self.has_label_set(last)
        {
            return Ok(last);
        }
        // Order-independent, as the label set is.
        let hash = self.labels.iter().fold(0u64, |sum, (name, value)| {
            let one = self.by_name.hasher().hash_one((*name, value.as_ref()));
            sum.wrapping_add(one)
        });
        match self.indexed_groups.get(&(family, hash)) {
            Some(&seen) if self.has_label_set(seen) => Ok(seen),
            // Two label sets with one hash: rare enough to leave to the
            // owned model.
            Some(_) => Err(Fault::NeedsOwnedModel),
            None => {
                let index = self.new_indexed_metric(family, kind)?;
                self.indexed_groups.insert((family, hash), index);
                Ok(index)
            }
        }
    }

    /// Whether index metric `index` has the current line's labels, in any
    /// order (both are sets: a line's label names are unique).
    fn has_label_set(&self, index: usize) -> bool {
        let body = self.text.unwrap_or_default();
        let stored = self.index.labels(body, index);
        stored.len() == self.labels.len()
            && self.labels.iter().all(|(name, value)| {
                stored.clone().any(|(stored_name, stored_value)| {
                    stored_name == *name && stored_value == value.as_ref()
                })
            })
    }

    /// The summary/histogram metric with the current line's label set,
    /// created on first sight.
    pub(super) fn grouped_metric(&mut self, family: usize) -> usize {
        let labels = &self.labels;
        self.label_order.clear();
        self.label_order.extend(0..labels.len());
        self.label_order.sort_unstable_by_key(|&i| labels[i].0);
        self.group_key.clear();
        for &i in &self.label_order {
            // 0xFF never occurs in UTF-8, so the key is unambiguous.
            self.group_key.extend_from_slice(labels[i].0.as_bytes());
            self.group_key.push(0xFF);
            self.group_key.extend_from_slice(labels[i].1.as_bytes());
            self.group_key.push(0xFF);
        }
        if let Some(&index) = self.groups[family].get(self.group_key.as_slice()) {
            return index;
        }
        let index = self.new_metric(family);
        self.groups[family].insert(self.group_key.as_slice().into(), index);
        index
    }

    /// Finds the family a name belongs to as Go's `setOrCreateCurrentMF`
    /// does: the exact family, else the summary/histogram it is the
    /// `_sum`/`_count`/`_bucket` of, else a new family. A name's answer
    /// never changes once given (types only go from unset to set, and a
    /// suffix name never gets its own family while its base is a
    /// summary/histogram), so it is cached.
    pub(super) fn resolve(&mut self, start: usize, end: usize) -> Step<Resolved> {
        let name = &self.body[start..end];
        if let Some((last, resolved)) = self.last_resolved
            && last == name
        {
            return Ok(resolved);
        }
        let resolved = match self.resolved.get(name) {
            Some(&resolved) => resolved,
            None => {
                let resolved = self.resolve_new(name, start, end)?;
                self.resolved.insert(name, resolved);
                resolved
            }
        };
        self.last_resolved = Some((name, resolved));
        Ok(resolved)
    }

    pub(super) fn resolve_new(
        &mut self,
        name: &'a [u8],
        start: usize,
        end: usize,
    ) -> Step<Resolved> {
        if let Some(&family) = self.by_name.get(name) {
            return Ok(Resolved {
                family,
                role: Role::Plain,
            });
        }
        let suffixes: [(&[u8], Role, bool); 3] = [
            (b"_count", Role::Count, true),
            (b"_sum", Role::Sum, true),
            (b"_bucket", Role::Plain, false),
        ];
        for want in [MetricType::Summary, MetricType::Histogram] {
            for (suffix, role, in_summary) in suffixes {
                if want == MetricType::Summary && !in_summary {
                    continue;
                }
                let Some(base) = name.strip_suffix(suffix).filter(|b| !b.is_empty()) else {
                    continue;
                };
                if let Some(&family) = self.by_name.get(base)
                    && self.kinds[family] == Some(want)
                {
                    return Ok(Resolved { family, role });
                }
            }
        }
        let family_name = self
            .str_at(start, end)
            .ok_or_else(|| Fault::Msg("invalid metric name".into()))?;
        let family = self.families.len();
        self.families.push(MetricFamily {
            name: Some(family_name.to_owned()),
            ..MetricFamily::default()
        });
        self.kinds.push(None);
        self.groups.push(HashMap::default());
        self.by_name.insert(name, family);
        Ok(Resolved {
            family,
            role: Role::Plain,
        })
    }
}

/// Stores one sample's value the way Go's `readingValue` does.
pub(super) fn set_value(
    metric: &mut Metric,
    kind: MetricType,
    role: Role,
    selector: f64,
    value: f64,
) {
    match kind {
        MetricType::Counter => {
            metric.counter = Some(Counter {
                value: Some(value),
                ..Counter::default()
            });
        }
        MetricType::Gauge => metric.gauge = Some(Gauge { value: Some(value) }),
        MetricType::Untyped => metric.untyped = Some(Untyped { value: Some(value) }),
        MetricType::Summary => {
            let summary = metric.summary.get_or_insert_with(Summary::default);
            match role {
                Role::Count => summary.sample_count = Some(go_float_to_u64(value)),
                Role::Sum => summary.sample_sum = Some(value),
                // A NaN quantile (absent or written `NaN`) records nothing.
                Role::Plain if !selector.is_nan() => summary.quantile.push(Quantile {
                    quantile: Some(selector),
                    value: Some(value),
                }),
                Role::Plain => {}
            }
        }
        MetricType::Histogram => {
            let histogram = metric.histogram.get_or_insert_with(Default::default);
            match role {
                Role::Count => histogram.sample_count = Some(go_float_to_u64(value)),
                Role::Sum => histogram.sample_sum = Some(value),
                Role::Plain if !selector.is_nan() => histogram.bucket.push(Bucket {
                    upper_bound: Some(selector),
                    cumulative_count: Some(go_float_to_u64(value)),
                    ..Bucket::default()
                }),
                Role::Plain => {}
            }
        }
        // The Pushgateway's parser has no value slot for a gauge histogram in
        // the text format: the metric is kept without a value.
        MetricType::GaugeHistogram => {}
    }
}

/// Sorts a line's labels by name: an insertion sort, as a line has few
/// labels and mostly comes sorted (callgrind on `bench_1000`, two labels a
/// line: `sort_by` added 143 instructions per line, this 52). Stable,
/// though a line's names are unique anyway.
fn sort_by_name(labels: &mut [(&str, Cow<'_, str>)]) {
    for next in 1..labels.len() {
        let mut at = next;
        while at > 0
            && label_order::compare(labels[at - 1].0.as_bytes(), labels[at].0.as_bytes()).is_gt()
        {
            labels.swap(at - 1, at);
            at -= 1;
        }
    }
}
