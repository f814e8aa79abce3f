//! The merge of a push's grouping labels into its metrics, as the
//! Pushgateway sanitises a push: every grouping label is set on every
//! metric, on the first body label of its name (a repeated body label keeps
//! its other values, and so stays repeated) or added; `instance=""` is
//! added when neither the key nor the metric has an `instance`; labels come
//! out sorted by name.
//!
//! The one implementation of that rule: the push check, the forwarder's
//! conversion, the cache's store and the labels of the `push_*` stamp
//! series all merge through [`GroupingLabels`]. It is a view, built once per
//! push: a merged label is a reference to a body label or to a grouping
//! label, so nothing is copied into the metrics.

use std::cmp::Ordering;

use super::GroupingKey;
use crate::label_order;
use crate::proto::client::{LabelPair, Metric};

/// A push's grouping labels as they merge into each of its metrics, sorted
/// by name, with `instance=""` when the key has no `instance`.
#[derive(Clone, Debug)]
pub struct GroupingLabels {
    labels: Vec<GroupingLabel>,
}

#[derive(Clone, Debug)]
struct GroupingLabel {
    pair: LabelPair,
    /// False for the added `instance=""`: a metric's own value wins.
    overrides: bool,
}

impl GroupingLabels {
    pub fn new(key: &GroupingKey) -> Self {
        let mut labels: Vec<GroupingLabel> = key
            .labels()
            .iter()
            .map(|(name, value)| GroupingLabel {
                pair: LabelPair::new(name.as_str(), value.as_str()),
                overrides: true,
            })
            .collect();
        if key.get("instance").is_none() {
            let at = labels.partition_point(|l| l.pair.name() < "instance");
            labels.insert(
                at,
                GroupingLabel {
                    pair: LabelPair::new("instance", ""),
                    overrides: false,
                },
            );
        }
        Self { labels }
    }

    /// The merged labels of a metric whose own `labels` are sorted by name
    /// (stably: the first of a repeated name is the pushed first), in name
    /// order.
    pub fn merge<'m>(&'m self, labels: &'m [LabelPair]) -> MergedLabels<'m> {
        debug_assert!(
            labels.is_sorted_by(|a, b| a.name() <= b.name()),
            "a metric's own labels are sorted before the merge"
        );
        MergedLabels {
            own: labels,
            grouping: &self.labels,
        }
    }

    /// [`Self::merge`] for labels given as `(name, value)` text (an
    /// indexed body's), sorted as there.
    pub fn merge_text<'m, I>(&'m self, labels: I) -> MergedText<'m, I::IntoIter>
    where
        I: IntoIterator<Item = (&'m str, &'m str)>,
    {
        MergedText {
            own: labels.into_iter().peekable(),
            grouping: &self.labels,
            grouping_count: self.labels.len(),
        }
    }

    /// [`Self::merge_text`] telling where each label comes from: the
    /// position in [`Self::pairs`] of the grouping label it is, `None` for
    /// the metric's own. A sink can then encode the grouping labels once
    /// per push.
    pub fn merge_text_marked<'m, I>(&'m self, labels: I) -> MarkedText<'m, I::IntoIter>
    where
        I: IntoIterator<Item = (&'m str, &'m str)>,
    {
        MarkedText(self.merge_text(labels))
    }

    /// The grouping labels (with `instance`), sorted by name.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.labels
            .iter()
            .map(|label| (label.pair.name(), label.pair.value()))
    }

    /// The names of the grouping labels (with `instance`).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.labels.iter().map(|label| label.pair.name())
    }

    /// The labels of a series with no labels of its own (the `push_*`
    /// stamps of the group).
    pub fn alone(&self) -> MergedLabels<'_> {
        self.merge(&[])
    }

    /// `metric` with the grouping labels merged in (for messages that show
    /// the merged metric).
    pub fn merged_metric(&self, metric: &Metric) -> Metric {
        Metric {
            label: self.merge(&metric.label).cloned().collect(),
            ..metric.clone()
        }
    }
}

/// Iterator over a metric's labels merged with a push's grouping labels
/// (see [`GroupingLabels::merge`]).
pub struct MergedLabels<'m> {
    own: &'m [LabelPair],
    grouping: &'m [GroupingLabel],
}

impl<'m> Iterator for MergedLabels<'m> {
    type Item = &'m LabelPair;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match (self.own.split_first(), self.grouping.split_first()) {
            (None, None) => None,
            (None, Some((g, rest))) => {
                self.grouping = rest;
                Some(&g.pair)
            }
            (Some((label, own_rest)), g) => {
                match g.map(|(g, rest)| {
                    (
                        label_order::compare(label.name().as_bytes(), g.pair.name().as_bytes()),
                        g,
                        rest,
                    )
                }) {
                    Some((Ordering::Greater, g, rest)) => {
                        self.grouping = rest;
                        Some(&g.pair)
                    }
                    Some((Ordering::Equal, g, rest)) => {
                        self.own = own_rest;
                        self.grouping = rest;
                        Some(if g.overrides { &g.pair } else { label })
                    }
                    _ => {
                        self.own = own_rest;
                        Some(label)
                    }
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Each grouping label replaces at most one own label.
        let least = self.own.len().max(self.grouping.len());
        (least, Some(self.own.len() + self.grouping.len()))
    }
}

/// Iterator over labels given as text merged with a push's grouping labels
/// (see [`GroupingLabels::merge_text`]); the same merge as [`MergedLabels`].
pub struct MergedText<'m, I: Iterator<Item = (&'m str, &'m str)>> {
    own: std::iter::Peekable<I>,
    grouping: &'m [GroupingLabel],
    /// How many grouping labels there are, for positions in
    /// [`MarkedText`].
    grouping_count: usize,
}

impl<'m, I: Iterator<Item = (&'m str, &'m str)>> MergedText<'m, I> {
    /// The next merged label, and whether it is a grouping label (then the
    /// first of `self.grouping` before the call).
    #[inline]
    fn next_with_origin(&mut self) -> Option<(&'m str, &'m str, bool)> {
        let Some((g, rest)) = self.grouping.split_first() else {
            return self.own.next().map(|(name, value)| (name, value, false));
        };
        let pair = || (g.pair.name(), g.pair.value(), true);
        let Some(&(name, value)) = self.own.peek() else {
            self.grouping = rest;
            return Some(pair());
        };
        match label_order::compare(name.as_bytes(), g.pair.name().as_bytes()) {
            Ordering::Greater => {
                self.grouping = rest;
                Some(pair())
            }
            Ordering::Equal => {
                self.own.next();
                self.grouping = rest;
                Some(if g.overrides {
                    pair()
                } else {
                    (name, value, false)
                })
            }
            Ordering::Less => self.own.next().map(|(name, value)| (name, value, false)),
        }
    }
}

impl<'m, I: Iterator<Item = (&'m str, &'m str)>> Iterator for MergedText<'m, I> {
    type Item = (&'m str, &'m str);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.next_with_origin()
            .map(|(name, value, _)| (name, value))
    }
}

/// [`MergedText`] with each label's origin (see
/// [`GroupingLabels::merge_text_marked`]).
pub struct MarkedText<'m, I: Iterator<Item = (&'m str, &'m str)>>(MergedText<'m, I>);

impl<'m, I: Iterator<Item = (&'m str, &'m str)>> Iterator for MarkedText<'m, I> {
    type Item = (&'m str, &'m str, Option<usize>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let at = self.0.grouping_count - self.0.grouping.len();
        let (name, value, grouping) = self.0.next_with_origin()?;
        Some((name, value, grouping.then_some(at)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The Pushgateway's `sanitizeLabels`, written as Go does it, for tests
    /// to hold the merge against: in the pushed order, each grouping label
    /// is set on the first label of its name or appended, `instance=""` is
    /// appended when no `instance` is left, then a stable sort by name.
    pub(crate) fn sanitized(pushed: &[LabelPair], key: &GroupingKey) -> Vec<LabelPair> {
        let mut labels = pushed.to_vec();
        for (name, value) in key.labels() {
            match labels.iter_mut().find(|l| l.name() == name) {
                Some(label) => label.value = Some(value.clone()),
                None => labels.push(LabelPair::new(name.as_str(), value.as_str())),
            }
        }
        if !labels.iter().any(|l| l.name() == "instance") {
            labels.push(LabelPair::new("instance", ""));
        }
        labels.sort_by(|a, b| a.name().cmp(b.name()));
        labels
    }

    proptest::proptest! {
        /// The merge of the stably sorted labels is the Pushgateway's.
        #[test]
        fn the_merge_is_the_pushgateways(
            pushed in proptest::collection::vec(
                (proptest::sample::select(vec!["a", "b", "instance", "job", "z"]), "[xy]{0,2}"),
                0..6,
            ),
            key_pairs in proptest::collection::vec(
                (proptest::sample::select(vec!["job", "instance", "b", "c"]), "[xy]{1,2}"),
                1..3,
            ),
        ) {
            let key = GroupingKey::new(key_pairs.into_iter().map(|(n, v)| (n.to_string(), v)));
            let pushed: Vec<LabelPair> =
                pushed.iter().map(|(n, v)| LabelPair::new(*n, v.as_str())).collect();
            let mut own = pushed.clone();
            own.sort_by(|a, b| a.name().cmp(b.name()));
            let merged: Vec<LabelPair> = GroupingLabels::new(&key).merge(&own).cloned().collect();
            proptest::prop_assert_eq!(merged, sanitized(&pushed, &key));
        }
    }

    fn key(pairs: &[(&str, &str)]) -> GroupingKey {
        GroupingKey::new(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())))
    }

    fn merged(key: &GroupingKey, own: &[(&str, &str)]) -> Vec<(String, String)> {
        let own: Vec<LabelPair> = own.iter().map(|&(n, v)| LabelPair::new(n, v)).collect();
        GroupingLabels::new(key)
            .merge(&own)
            .map(|l| (l.name().to_string(), l.value().to_string()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|&(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn grouping_labels_override_the_first_of_a_name_and_instance_is_added() {
        let k = key(&[("job", "j"), ("a", "g")]);
        assert_eq!(
            merged(&k, &[("a", "1"), ("a", "2"), ("b", "1"), ("job", "x")]),
            pairs(&[
                ("a", "g"),
                ("a", "2"),
                ("b", "1"),
                ("instance", ""),
                ("job", "j")
            ])
        );
        assert_eq!(
            merged(&k, &[("instance", "i")]),
            pairs(&[("a", "g"), ("instance", "i"), ("job", "j")])
        );
        let with_instance = key(&[("job", "j"), ("instance", "u")]);
        assert_eq!(
            merged(&with_instance, &[("instance", "i")]),
            pairs(&[("instance", "u"), ("job", "j")])
        );
        assert_eq!(
            GroupingLabels::new(&k)
                .alone()
                .map(|l| l.name())
                .collect::<Vec<_>>(),
            ["a", "instance", "job"]
        );
    }

    /// The marked merge gives the unmarked merge's labels, each grouping
    /// label marked with its position in `pairs`, own labels (also the
    /// `instance` a metric keeps over the added empty one) unmarked.
    #[test]
    fn marked_labels_say_which_grouping_label_they_are() {
        let grouping = GroupingLabels::new(&key(&[("job", "j"), ("zone", "z")]));
        let pairs: Vec<_> = grouping.pairs().collect();
        assert_eq!(pairs, [("instance", ""), ("job", "j"), ("zone", "z")]);
        for own in [
            vec![("a", "1"), ("job", "mine"), ("x", "2")],
            vec![("instance", "i"), ("zz", "3")],
            vec![],
        ] {
            let marked: Vec<_> = grouping.merge_text_marked(own.iter().copied()).collect();
            let plain: Vec<_> = grouping.merge_text(own.iter().copied()).collect();
            let unmarked: Vec<_> = marked.iter().map(|&(n, v, _)| (n, v)).collect();
            assert_eq!(unmarked, plain);
            for (name, value, at) in marked {
                match at {
                    Some(at) => assert_eq!(pairs[at], (name, value)),
                    None => assert!(own.contains(&(name, value)), "{name}={value}"),
                }
            }
        }
    }
}
