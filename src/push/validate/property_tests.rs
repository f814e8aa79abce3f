//! Arbitrary pushes: the check never panics, what it accepts comes out
//! merged (and a second check changes nothing), and `check` answers as the
//! check of the same families merged beforehand.

use proptest::prelude::*;

use super::tests::{counter, gauge, histogram, summary, untyped, validate};
use super::*;
use crate::push::grouping::tests::sanitized;

fn arb_label() -> impl Strategy<Value = (String, String)> {
    (
        prop_oneof![
            "[a-z]{1,3}",
            Just("job".to_string()),
            Just("instance".to_string()),
            Just("quantile".to_string()),
            "__[a-z]{0,2}",
            ".{0,3}",
        ],
        ".{0,4}",
    )
}

fn arb_metric() -> impl Strategy<Value = Metric> {
    (
        proptest::collection::vec(arb_label(), 0..4),
        0..5usize,
        proptest::option::of(any::<i64>()),
    )
        .prop_map(|(pairs, kind, timestamp)| {
            let pairs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let mut metric = match kind {
                0 => counter(&pairs, 1.0),
                1 => gauge(&pairs, 1.0),
                2 => summary(&pairs, 1),
                3 => untyped(&pairs, 1.0),
                _ => histogram(&pairs, &[1.0]),
            };
            metric.timestamp_ms = timestamp.filter(|t| t % 4 == 0);
            metric
        })
}

fn arb_family() -> impl Strategy<Value = MetricFamily> {
    (
        prop_oneof!["[a-c]{1,2}(_count|_sum|_bucket)?", ".{0,3}"],
        0..6i32,
        proptest::collection::vec(arb_metric(), 0..4),
    )
        .prop_map(|(name, kind, metric)| MetricFamily {
            name: Some(name),
            r#type: Some(kind),
            metric,
            ..Default::default()
        })
}

fn arb_key() -> impl Strategy<Value = GroupingKey> {
    (
        "[a-z]{1,4}",
        proptest::collection::vec(("[a-z]{1,3}|instance", "[a-z]{0,3}"), 0..3),
    )
        .prop_map(|(job, labels)| GroupingKey::new(labels.into_iter().chain([("job".into(), job)])))
}

proptest! {
    #[test]
    fn arbitrary_pushes_never_panic_and_accepted_ones_are_merged(
        mut families in proptest::collection::vec(arb_family(), 0..4),
        key in arb_key(),
        honor_timestamps in any::<bool>(),
    ) {
        let original = families.clone();
        let config = PushConfig { honor_timestamps, ..PushConfig::default() };
        if validate(&mut families, &key, &config).is_err() {
            return Ok(());
        }
        prop_assert_eq!(families.len(), original.len());
        for (family, before) in families.iter().zip(&original) {
            prop_assert_eq!(family.metric.len(), before.metric.len());
            for (metric, before) in family.metric.iter().zip(&before.metric) {
                let names: Vec<&str> = metric.label.iter().map(|l| l.name()).collect();
                prop_assert!(names.windows(2).all(|w| w[0] < w[1]), "{:?}", names);
                for (name, value) in key.labels() {
                    let merged = metric.label.iter().find(|l| l.name() == name);
                    prop_assert_eq!(merged.map(|l| l.value()), Some(value.as_str()));
                }
                prop_assert!(names.contains(&"instance"));
                for label in &before.label {
                    if key.get(label.name()).is_none() {
                        prop_assert!(metric.label.contains(label), "{:?} lost", label);
                    }
                }
            }
        }
        // Validating an accepted push again changes nothing.
        let once = families.clone();
        prop_assert!(validate(&mut families, &key, &config).is_ok());
        prop_assert_eq!(families, once);
    }
}

/// Labels from a tiny alphabet, so that merged series often coincide.
fn arb_clashing_family() -> impl Strategy<Value = MetricFamily> {
    let label = (
        prop_oneof![Just("job"), Just("instance"), Just("a"), Just("")],
        prop_oneof![Just(""), Just("1"), Just("j")],
    );
    (
        0..6i32,
        proptest::collection::vec((proptest::collection::vec(label, 0..4), 0..5usize), 0..5),
    )
        .prop_map(|(kind, metrics)| MetricFamily {
            name: Some("m".into()),
            r#type: Some(kind),
            metric: metrics
                .into_iter()
                .map(|(pairs, kind)| match kind {
                    0 => counter(&pairs, 1.0),
                    1 => gauge(&pairs, 1.0),
                    2 => summary(&pairs, 1),
                    3 => untyped(&pairs, 1.0),
                    _ => histogram(&pairs, &[1.0]),
                })
                .collect(),
            ..Default::default()
        })
}

proptest! {
    /// `check` refuses exactly what `validate` refuses, with the same
    /// message; on what it accepts, the merged view and the conversion of
    /// the unmerged families are those of the merged ones.
    #[test]
    fn check_answers_as_validate_and_the_merged_view_is_the_merge(
        families in prop_oneof![
            proptest::collection::vec(arb_family(), 0..4),
            proptest::collection::vec(arb_clashing_family(), 0..3),
        ],
        key in arb_key(),
        honor_timestamps in any::<bool>(),
        disable_consistency_check in any::<bool>(),
        max_labels_per_series in 1..6usize,
        max_label_name_length in 1..9usize,
        max_label_value_length in 1..5usize,
    ) {
        let config = PushConfig {
            honor_timestamps,
            disable_consistency_check,
            max_labels_per_series,
            max_label_name_length,
            max_label_value_length,
            ..PushConfig::default()
        };
        let mut checked = families.clone();
        let answer = check(&mut checked, &key, &config).map_err(|r| r.message);
        // The checks on families merged beforehand, where the merge is a
        // no-op, answer the same.
        let mut premerged = families.clone();
        for metric in premerged.iter_mut().flat_map(|f| &mut f.metric) {
            metric.label = sanitized(&metric.label, &key);
        }
        let want = check(&mut premerged, &GroupingKey::new([]), &config).map_err(|r| r.message);
        prop_assert_eq!(&answer, &want);
        let mut merged = families;
        prop_assert_eq!(&validate(&mut merged, &key, &config).map_err(|r| r.message), &want);
        if answer.is_err() {
            return Ok(());
        }
        let grouping = GroupingLabels::new(&key);
        let pairs = checked.iter().flat_map(|f| &f.metric).zip(merged.iter().flat_map(|f| &f.metric));
        for (own, merged) in pairs {
            let view: Vec<(&str, &str)> = grouping.merge(&own.label).map(|l| (l.name(), l.value())).collect();
            let want: Vec<(&str, &str)> = merged.label.iter().map(|l| (l.name(), l.value())).collect();
            prop_assert_eq!(view, want);
        }
        prop_assert_eq!(
            crate::forward::convert::convert(&checked, &key),
            crate::forward::convert::convert(&merged, &GroupingKey::new([]))
        );
    }
}
