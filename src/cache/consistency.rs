//! The push-time consistency check, as the Pushgateway runs it, without
//! re-gathering the store.
//!
//! The Pushgateway applies a push to a copy of its store and gathers
//! everything (O(stored series) per push). Here the same errors are found
//! through an [`Index`] kept next to the store: family name → type and the
//! number of groups holding it, series signature → owning groups. A check
//! costs O(pushed series); the index is updated in O(changed series).
//!
//! Errors found (messages worded as client_golang's gatherer words them):
//! a metric whose value does not match its family type, a type clash with
//! another group or with pushrelay's own metrics, invalid or reserved label
//! names, a series already present in another group or twice in one push,
//! and `_count`/`_sum`/`_bucket` collisions with a summary or histogram.
//! [`full_check`] gathers everything instead; the scrape uses it when the
//! check is disabled, so that inconsistent data fails the scrape as in the
//! Pushgateway.

use std::collections::{HashMap, HashSet};

use super::signatures::{same_labels, signature_of, type_name};
use crate::hashing::ByHash;
use crate::proto::client::{Metric, MetricType};
use crate::push::path::go_quote;
use crate::push::validate::{self, render};

/// The store's consistency index. It never holds metric data itself: the
/// store confirms a signature hit by comparing labels in the owning group.
/// Owners are a multiset: a hash collision (or a series stored twice, when
/// the check is off) puts several groups under one signature.
#[derive(Debug, Default)]
pub struct Index {
    /// Non-empty families: name → (type, number of groups holding one).
    types: HashMap<String, (i32, u32)>,
    /// Signature → its first owner.
    series: ByHash<u64>,
    /// Signature → its further owners, for signatures held more than once.
    more: ByHash<Vec<u64>>,
}

impl Index {
    /// Records a family `name` of type `kind` stored in `group`, whose
    /// series have the signatures `signatures` (none: an empty family).
    pub fn insert_family(
        &mut self,
        group: u64,
        name: &str,
        kind: i32,
        signatures: impl IntoIterator<Item = u64>,
    ) {
        let signatures = signatures.into_iter();
        // Grown once, not by doubling: at a large push's peak the table
        // would otherwise be held twice while it is rehashed.
        self.series.reserve(signatures.size_hint().0);
        let mut any = false;
        for signature in signatures {
            self.insert_series(group, signature);
            any = true;
        }
        if any {
            match self.types.get_mut(name) {
                Some(entry) => entry.1 += 1,
                None => {
                    self.types.insert(name.to_string(), (kind, 1));
                }
            }
        }
    }

    /// Forgets a family that `group` no longer stores.
    pub fn remove_family(
        &mut self,
        group: u64,
        name: &str,
        signatures: impl IntoIterator<Item = u64>,
    ) {
        let mut any = false;
        for signature in signatures {
            self.remove_series(group, signature);
            any = true;
        }
        if any && let Some(entry) = self.types.get_mut(name) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                self.types.remove(name);
            }
        }
    }

    /// Records one series signature owned by `group`.
    pub fn insert_series(&mut self, group: u64, signature: u64) {
        match self.series.entry(signature) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(group);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.more.entry(signature).or_default().push(group);
            }
        }
    }

    /// Forgets one series signature owned by `group`.
    pub fn remove_series(&mut self, group: u64, signature: u64) {
        if let Some(more) = self.more.get_mut(&signature) {
            if let Some(i) = more.iter().position(|g| *g == group) {
                more.swap_remove(i);
            } else if self.series.get(&signature) == Some(&group)
                && let Some(next) = more.pop()
            {
                self.series.insert(signature, next);
            }
            if more.is_empty() {
                self.more.remove(&signature);
            }
        } else if self.series.get(&signature) == Some(&group) {
            self.series.remove(&signature);
        }
    }

    /// The type of a stored family and how many groups hold it.
    pub fn family(&self, name: &str) -> Option<(i32, u32)> {
        self.types.get(name).copied()
    }

    /// The groups owning `signature`.
    pub fn owners(&self, signature: u64) -> impl Iterator<Item = u64> + '_ {
        let first = self.series.get(&signature).copied();
        let more = self.more.get(&signature).into_iter().flatten().copied();
        first.into_iter().chain(more)
    }
}

/// Gathers `families` (already merged views of every group, plus
/// pushrelay's own families in `own`) and returns every error a scrape of
/// them would hit. O(all series); used only when the push-time check is off.
pub fn full_check<'a>(
    families: impl IntoIterator<Item = (&'a str, i32, &'a Metric)>,
    own: &HashMap<String, i32>,
) -> Vec<String> {
    let mut errors = Vec::new();
    let mut types: HashMap<&str, i32> = HashMap::new();
    let mut seen: ByHash<Vec<&Metric>> = ByHash::default();
    for (name, kind, metric) in families {
        let merged_kind = *types.entry(name).or_insert(kind);
        let expected = own.get(name).copied().unwrap_or(merged_kind);
        let described = || {
            format!(
                "collected metric {} {{ {}}}",
                go_quote(name.as_bytes()),
                render::compact_text(metric)
            )
        };
        let labels = metric.label.iter().map(|l| (l.name(), l.value()));
        let fault = match MetricType::try_from(expected) {
            Ok(expected) => validate::metric_fault(expected, metric, labels, |_, _| {}),
            Err(_) => Some(format!("is not a {}", type_name(expected))),
        };
        if let Some(fault) = fault {
            errors.push(format!("{} {fault}", described()));
        }
        let signature = signature_of(name, &metric.label);
        let same = seen.entry(signature).or_default();
        if same.iter().any(|m| same_labels(&m.label, &metric.label)) {
            errors.push(format!(
                "{} was collected before with the same name and label values",
                described()
            ));
        }
        same.push(metric);
    }
    let mut names: HashSet<&str> = types.keys().copied().collect();
    names.extend(own.keys().map(String::as_str));
    let lookup = |n: &str| types.get(n).copied().or_else(|| own.get(n).copied());
    let mut sorted: Vec<&str> = names.into_iter().collect();
    sorted.sort_unstable();
    let mut checked: HashSet<&str> = HashSet::new();
    for name in sorted {
        checked.insert(name);
        if let Some(kind) = lookup(name) {
            // Only report each pair once: against names checked before.
            let collected = |n: &str| {
                checked
                    .contains(n)
                    .then(|| lookup(n))
                    .flatten()
                    .and_then(|k| MetricType::try_from(k).ok())
            };
            if let Some(kind) = MetricType::try_from(kind).ok()
                && let Some(collision) = validate::suffix_collision(name, kind, collected)
            {
                errors.push(collision);
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::client::{Gauge, LabelPair, MetricFamily};

    fn gauge(labels: &[(&str, &str)]) -> Metric {
        Metric {
            label: labels.iter().map(|&(n, v)| LabelPair::new(n, v)).collect(),
            gauge: Some(Gauge { value: Some(1.0) }),
            ..Default::default()
        }
    }

    #[test]
    fn the_unchecked_scrape_uses_the_one_metric_rule() {
        let own = HashMap::new();
        let histogram = Metric {
            label: vec![LabelPair::new("le", "1")],
            histogram: Some(Default::default()),
            ..Default::default()
        };
        let summary = Metric {
            label: vec![LabelPair::new("quantile", "1")],
            summary: Some(Default::default()),
            ..Default::default()
        };
        let bad = gauge(&[("__x", "1")]);
        let errors = full_check(
            [
                ("h", MetricType::Histogram as i32, &histogram),
                ("s", MetricType::Summary as i32, &summary),
                ("g", MetricType::Gauge as i32, &bad),
            ],
            &own,
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("must not have an explicit \"quantile\" label"));
        assert!(errors[1].ends_with("has a label with an invalid name: __x"));
    }

    #[test]
    fn index_counts_owners_as_a_multiset() {
        let mut index = Index::default();
        let family = MetricFamily {
            name: Some("m".into()),
            r#type: Some(MetricType::Gauge as i32),
            metric: vec![gauge(&[("job", "a")])],
            ..Default::default()
        };
        let signature = signature_of("m", &family.metric[0].label);
        let gauge = MetricType::Gauge as i32;
        index.insert_family(1, "m", gauge, [signature]);
        index.insert_family(2, "m", gauge, [signature]);
        index.insert_family(3, "m", gauge, [signature]);
        index.insert_family(4, "empty", gauge, []);
        assert_eq!(index.family("empty"), None);
        let owners = |index: &Index| index.owners(signature).collect::<Vec<_>>();
        assert_eq!(owners(&index), vec![1, 2, 3]);
        assert_eq!(index.family("m"), Some((gauge, 3)));
        index.remove_family(1, "m", [signature]);
        assert_eq!(owners(&index), vec![3, 2]);
        index.remove_family(2, "m", [signature]);
        assert_eq!(owners(&index), vec![3]);
        index.remove_family(3, "m", [signature]);
        assert!(owners(&index).is_empty());
        assert_eq!(index.family("m"), None);
        assert!(index.series.is_empty() && index.more.is_empty());
    }

    #[test]
    fn full_check_finds_duplicates_and_type_clashes() {
        let a = gauge(&[("job", "a")]);
        let counter = Metric {
            label: vec![LabelPair::new("job", "b")],
            counter: Some(Default::default()),
            ..Default::default()
        };
        let own = HashMap::new();
        let errors = full_check(
            [
                ("m", MetricType::Gauge as i32, &a),
                ("m", MetricType::Gauge as i32, &a),
                ("m", MetricType::Counter as i32, &counter),
            ],
            &own,
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("was collected before"));
        assert!(errors[1].contains("is not a GAUGE"));
        assert!(validate::join_errors(&errors).starts_with("2 error(s) occurred:\n* "));
    }
}
