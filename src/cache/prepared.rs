//! A push as the store sees it, before the lock: one family per name,
//! each metric's labels merged with the grouping labels (as references into
//! the push and its [`GroupingLabels`], nothing copied) and each series'
//! signature. The store checks and stores these.

use std::collections::BTreeMap;

use super::signatures::{family_type, signature_of};
use crate::proto::client::{LabelPair, MetricFamily};
use crate::push::grouping::GroupingLabels;
use crate::push::path::go_quote;
use crate::push::validate::render;
use crate::telemetry::{PUSH_FAILURE_TIME, PUSH_TIME};

/// One pushed family as the store sees it: every metric's labels as they
/// are stored (merged with the grouping labels, `push::grouping`), and
/// each series' signature. Borrows the push; copies nothing.
pub(super) struct Prepared<'a> {
    pub(super) family: &'a MetricFamily,
    pub(super) kind: i32,
    /// The labels of every metric, one after the other.
    labels: Vec<&'a LabelPair>,
    /// End of each metric's labels in `labels`.
    bounds: Vec<usize>,
    pub(super) signatures: Vec<u64>,
}

impl<'a> Prepared<'a> {
    pub(super) fn labels_of(&self, i: usize) -> &[&'a LabelPair] {
        let start = i.checked_sub(1).map_or(0, |p| self.bounds[p]);
        &self.labels[start..self.bounds[i]]
    }

    pub(super) fn name(&self) -> &'a str {
        self.family.name()
    }

    /// The metric at `i` with its stored labels, as error messages start.
    pub(super) fn describe(&self, i: usize) -> String {
        format!(
            "collected metric {} {{ {}}}",
            go_quote(self.name().as_bytes()),
            render::compact_text_labelled(&self.family.metric[i], self.labels_of(i))
        )
    }
}

/// The store's view of a push's families: one family per name (a later one replaces an
/// earlier one, as in the Pushgateway), sorted by name, the reserved
/// `push_*` families dropped.
pub(super) fn prepare<'a>(
    families: &'a [MetricFamily],
    grouping: &'a GroupingLabels,
) -> Vec<Prepared<'a>> {
    let mut by_name: BTreeMap<&str, &MetricFamily> = BTreeMap::new();
    for family in families {
        by_name.insert(family.name(), family);
    }
    by_name
        .into_values()
        .filter(|f| f.name() != PUSH_TIME && f.name() != PUSH_FAILURE_TIME)
        .map(|family| {
            let name = family.name();
            let first_len = family.metric.first().map_or(0, |m| m.label.len());
            let mut labels = Vec::with_capacity(family.metric.len() * (first_len + 4));
            let mut bounds = Vec::with_capacity(family.metric.len());
            let mut signatures = Vec::with_capacity(family.metric.len());
            for metric in &family.metric {
                let start = labels.len();
                labels.extend(grouping.merge(&metric.label));
                bounds.push(labels.len());
                signatures.push(signature_of(name, labels[start..].iter().copied()));
            }
            Prepared {
                family,
                kind: family_type(family),
                labels,
                bounds,
                signatures,
            }
        })
        .collect()
}
