//! Conversion of an indexed text body (`exposition::index`): the same
//! series, labels and metadata as [`super::convert`] gives for the owned
//! families of that body, read straight from the index, with no allocation
//! per series.

use super::{Converted, Family, Series, SeriesValue, rw_type, sendable, write_labels};
use crate::exposition::index::IndexedBody;
use crate::push::GroupingKey;
use crate::push::grouping::GroupingLabels;

/// Bytes an encoded label adds to its name and value (tags and lengths).
const LABEL_OVERHEAD: usize = 6;

/// Converts a validated indexed body (each metric's labels sorted by name)
/// of a push to `key` into series, merging the grouping labels in.
pub fn convert_indexed(body: &IndexedBody, key: &GroupingKey) -> Converted {
    let grouping = GroupingLabels::new(key);
    let mut out = Converted::default();
    reserve(&mut out, body, key);
    for family in body.families() {
        let series_start = out.series.len();
        let labels_start = out.labels.len();
        let name = family.name.as_bytes();
        for index in body.metric_range(family) {
            let merged = grouping
                .merge_text(body.labels(index))
                .map(|(name, value)| (name.as_bytes(), value.as_bytes()));
            let labels = write_labels(&mut out.labels, merged, name, b"", None);
            out.series.push(Series {
                labels,
                value: SeriesValue::Float(sendable(body.metric(index).value)),
                timestamp_ms: body.timestamp(index),
            });
        }
        crate::forward::wire::put_metadata(
            &mut out.metadata,
            rw_type(family.kind) as i32,
            &family.name,
            family.help.as_deref().unwrap_or_default(),
            "",
        );
        out.families.push(Family {
            name: family.name.clone(),
            series: series_start..out.series.len(),
            labels: labels_start..out.labels.len(),
        });
    }
    out
}

/// Reserves what the series will need, from each family's first metric:
/// growing by doubling would copy the buffers and, at the peak, hold them
/// about twice.
fn reserve(out: &mut Converted, body: &IndexedBody, key: &GroupingKey) {
    let grouping_bytes: usize = key
        .labels()
        .iter()
        .map(|(name, value)| name.len() + value.len() + LABEL_OVERHEAD)
        .sum();
    let name_label = "__name__".len() + LABEL_OVERHEAD;
    let mut bytes = 0;
    for family in body.families() {
        let Some(first) = body.metric_range(family).next() else {
            continue;
        };
        let own: usize = body
            .labels(first)
            .map(|(name, value)| name.len() + value.len() + LABEL_OVERHEAD)
            .sum();
        let one = own + grouping_bytes + name_label + family.name.len();
        bytes += family.metrics_len() * one;
    }
    out.series.reserve_exact(body.metric_count());
    out.labels.reserve(bytes);
    out.families.reserve_exact(body.families().len());
}
