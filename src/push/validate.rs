//! Validation of parsed families and the merge of grouping labels.

use super::{GroupingKey, Rejection};
use crate::config::PushConfig;
use crate::proto::client::{LabelPair, MetricFamily};

/// Validates `families` for a push to `key` and merges the grouping labels
/// into every metric (grouping labels win), leaving labels sorted by name.
pub fn validate(
    families: &mut [MetricFamily],
    key: &GroupingKey,
    _config: &PushConfig,
) -> Result<(), Rejection> {
    for family in families.iter_mut() {
        for metric in family.metric.iter_mut() {
            if metric.timestamp_ms.is_some() {
                return Err(Rejection::bad_request(
                    "pushed metrics are invalid or inconsistent with existing metrics: pushed metrics must not have timestamps",
                ));
            }
            metric.label.retain(|l| key.get(l.name()).is_none());
            for (name, value) in key.labels() {
                metric.label.push(LabelPair {
                    name: Some(name.clone()),
                    value: Some(value.clone()),
                });
            }
            metric.label.sort_by(|a, b| a.name().cmp(b.name()));
        }
    }
    Ok(())
}
