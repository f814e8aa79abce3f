//! An OpenMetrics body read into the index (`exposition::index`): the
//! same families the owned parse gives, as spans of the kept body.
//!
//! Contract: [`IndexSink`] holds a body only when the index holds exactly
//! the families `openmetrics::parse` gives for it; otherwise the parse
//! stops with `NeedsOwnedModel` and the owned parse decides (and words any
//! error). The index has no place for `_created` samples (start
//! timestamps), exemplars on a counter or histogram bucket, gauge
//! histograms or NaN quantiles and bounds (the text format drops those,
//! OpenMetrics keeps them); it also gives up on a summary's or histogram's
//! quantiles or buckets interleaving with another metric's, a timestamp of
//! an earlier metric after a later one's, and a multi-line metric with
//! more than `MAX_GROUPED_LABELS` labels (finding its metric compares label
//! sets pairwise).

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;

use super::{NeedsOwnedModel, OmType, Part, Sample, Sink};
use crate::exposition::index::{MAX_GROUPED_LABELS, Role, TextIndex};
use crate::hashing::Seeded;

/// The index of an OpenMetrics body being built.
pub(super) struct IndexSink<'a> {
    text: &'a str,
    pub(super) index: TextIndex,
    /// Help texts by family number (set when the index is finished).
    pub(super) helps: Vec<Option<String>>,
    /// Multi-line metrics by family and a hash of their label set.
    groups: HashMap<(usize, u64), usize, Seeded>,
}

impl<'a> IndexSink<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        // About one metric per line of 40 bytes, with two labels.
        let lines = text.len() / 40;
        Self {
            text,
            index: TextIndex::for_text(lines, 2 * lines),
            helps: Vec::new(),
            groups: HashMap::default(),
        }
    }

    /// The metric of a multi-line family with these labels: the family's
    /// last metric (a metric's lines usually come in a row), else one seen
    /// before, else a new one.
    fn grouped_metric(
        &mut self,
        family: usize,
        labels: &[(&'a str, Cow<'a, str>)],
    ) -> Result<usize, NeedsOwnedModel> {
        if labels.len() > MAX_GROUPED_LABELS {
            return Err(NeedsOwnedModel);
        }
        if let Some(last) = self.index.last_metric(family)
            && self.has_label_set(last, labels)
        {
            return Ok(last);
        }
        // Order-independent, as the label set is.
        let hash = labels.iter().fold(0u64, |sum, (name, value)| {
            let one = self.groups.hasher().hash_one((*name, value.as_ref()));
            sum.wrapping_add(one)
        });
        match self.groups.get(&(family, hash)) {
            Some(&seen) if self.has_label_set(seen, labels) => Ok(seen),
            // Two label sets with one hash: rare enough to leave to the
            // owned model.
            Some(_) => Err(NeedsOwnedModel),
            None => {
                let index = self.new_metric(family, labels);
                self.groups.insert((family, hash), index);
                Ok(index)
            }
        }
    }

    /// Whether metric `index` has these labels, in any order (both are
    /// sets: a line's label names are unique).
    fn has_label_set(&self, index: usize, labels: &[(&str, Cow<'_, str>)]) -> bool {
        let stored = self.index.labels(self.text, index);
        stored.len() == labels.len()
            && labels.iter().all(|(name, value)| {
                stored.clone().any(|(stored_name, stored_value)| {
                    stored_name == *name && stored_value == value.as_ref()
                })
            })
    }

    /// A new metric of `family` with these labels, in line order.
    fn new_metric(&mut self, family: usize, labels: &[(&'a str, Cow<'a, str>)]) -> usize {
        for (name, _) in labels {
            self.index.note_label_name(name);
        }
        let sorted = labels.is_sorted_by(|(a, _), (b, _)| a <= b);
        let text = self.text;
        let labels = labels.iter().map(|(name, value)| {
            let value = match value {
                Cow::Borrowed(value) => Ok(span_of(text, value)),
                Cow::Owned(unescaped) => Err(unescaped.as_str()),
            };
            (span_of(text, name), value)
        });
        self.index.push_metric(family, text, labels, sorted)
    }
}

impl<'a> Sink<'a> for IndexSink<'a> {
    fn family(
        &mut self,
        name: String,
        kind: OmType,
        help: Option<String>,
        unit: Option<String>,
    ) -> Result<(), NeedsOwnedModel> {
        if kind == OmType::GaugeHistogram {
            return Err(NeedsOwnedModel);
        }
        let slot = self.helps.len();
        self.helps.push(help);
        // A new family: nothing else has metrics after it yet.
        self.index.continue_family(slot, &name, kind.model());
        self.index.set_unit(slot, unit);
        Ok(())
    }

    fn sample(&mut self, sample: Sample<'a, '_>) -> Result<(), NeedsOwnedModel> {
        let Sample {
            family,
            kind,
            part,
            labels,
            selector,
            value,
            timestamp_ms,
            exemplar,
        } = sample;
        let exemplar_kept = matches!(
            (kind, part),
            (OmType::Counter, Part::Value) | (OmType::Histogram, Part::Bucket)
        );
        if part == Part::Created
            || (exemplar.is_some() && exemplar_kept)
            || selector.is_some_and(f64::is_nan)
        {
            return Err(NeedsOwnedModel);
        }
        let index = if kind.multi_line() {
            self.grouped_metric(family, labels)?
        } else {
            self.new_metric(family, labels)
        };
        if let Some(timestamp) = timestamp_ms
            && !self.index.set_timestamp(index, timestamp)
        {
            return Err(NeedsOwnedModel);
        }
        let role = match part {
            Part::Sum => Role::Sum,
            Part::Count => Role::Count,
            _ => Role::Plain,
        };
        let selector = selector.unwrap_or(f64::NAN);
        if self.index.set_value(family, index, role, selector, value) {
            Ok(())
        } else {
            Err(NeedsOwnedModel)
        }
    }
}

/// The span of `part`, a slice of `body`, in it.
fn span_of(body: &str, part: &str) -> [u32; 2] {
    // The body is at most `MAX_INDEXED_BODY` bytes (checked before
    // parsing), so the offsets fit.
    let start = part.as_ptr() as usize - body.as_ptr() as usize;
    [start as u32, (start + part.len()) as u32]
}
