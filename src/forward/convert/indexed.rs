//! Conversion of an indexed text body (`exposition::index`): the same
//! series, labels and metadata as [`super::convert`] gives for the owned
//! families of that body, read straight from the index, with no allocation
//! per series.

use super::{Converted, Family, SeriesValue, name_entry, rw_type, sendable, write_labels};
use crate::exposition::gofloat;
use crate::exposition::index::{IndexedBody, IndexedFamily};
use crate::exposition::text::go_float_to_u64;
use crate::forward::wire;
use crate::proto::client::MetricType;
use crate::push::GroupingKey;
use crate::push::grouping::GroupingLabels;

/// Bytes an encoded label adds to its name and value (tags and lengths).
const LABEL_OVERHEAD: usize = 6;

/// About the bytes of a `le` or `quantile` label.
const SELECTOR_LABEL: usize = 16;

/// Converts a validated indexed body (each metric's labels sorted by name)
/// of a push to `key` into series, merging the grouping labels in.
pub fn convert_indexed(body: &IndexedBody, key: &GroupingKey) -> Converted {
    let grouping = GroupingLabels::new(key);
    let mut writer = Writer {
        out: Converted::default(),
        body,
        grouping: &grouping,
        number: String::new(),
        name_entry: Vec::new(),
        name_entry_of: None,
        grouping_entries: grouping
            .pairs()
            .map(|(name, value)| {
                let mut entry = Vec::new();
                wire::put_label(&mut entry, name.as_bytes(), value.as_bytes());
                entry
            })
            .collect(),
    };
    reserve(&mut writer.out, body, key);
    for family in body.families() {
        let series_start = writer.out.series.len();
        let labels_start = writer.out.labels.len();
        for index in body.metric_range(family) {
            writer.metric(family, index);
        }
        let out = &mut writer.out;
        wire::put_metadata(
            &mut out.metadata,
            rw_type(family.kind) as i32,
            &family.name,
            family.help.as_deref().unwrap_or_default(),
            family.unit.as_deref().unwrap_or_default(),
        );
        out.families.push(Family {
            name: family.name.clone(),
            series: series_start..out.series.len(),
            labels: labels_start..out.labels.len(),
        });
    }
    writer.out
}

/// A conversion in progress.
struct Writer<'a> {
    out: Converted,
    body: &'a IndexedBody,
    grouping: &'a GroupingLabels,
    /// A `le` or `quantile` value being formatted.
    number: String,
    /// The `__name__` label of the last series written (see
    /// [`name_entry`]): a family's plain series all share it.
    name_entry: Vec<u8>,
    /// The grouping labels' encoded entries, by position (see
    /// [`GroupingLabels::pairs`]): the same in every series, so encoded
    /// once per push.
    grouping_entries: Vec<Vec<u8>>,
    /// The family (by its name's address) and suffix (by its length: `""`,
    /// `_sum`, `_count` and `_bucket` differ in length) `name_entry` is of.
    name_entry_of: Option<(*const u8, usize)>,
}

impl Writer<'_> {
    /// The series of metric `index` of `family` (as `convert` maps a
    /// counter, gauge, untyped, summary or classic histogram metric).
    fn metric(&mut self, family: &IndexedFamily, index: usize) {
        let body = self.body;
        let Some((distribution, points)) = body.distribution(family, index) else {
            self.series(family, index, b"", None, body.metric(index).value);
            return;
        };
        let count = distribution.count().unwrap_or_default() as f64;
        let summary = family.kind == MetricType::Summary;
        let mut has_inf = false;
        for &(bound, value) in points {
            let (selector, value): (&'static [u8], f64) = if summary {
                (b"quantile", value)
            } else {
                has_inf |= bound == f64::INFINITY;
                (b"le", go_float_to_u64(value) as f64)
            };
            let suffix: &'static [u8] = if summary { b"" } else { b"_bucket" };
            self.selected_series(family, index, suffix, selector, bound, value);
        }
        if !summary && !has_inf {
            self.selected_series(family, index, b"_bucket", b"le", f64::INFINITY, count);
        }
        let sum = distribution.sum.unwrap_or_default();
        self.series(family, index, b"_sum", None, sum);
        self.series(family, index, b"_count", None, count);
    }

    /// A series with a `le` or `quantile` label of value `bound`.
    fn selected_series(
        &mut self,
        family: &IndexedFamily,
        index: usize,
        suffix: &'static [u8],
        selector: &'static [u8],
        bound: f64,
        value: f64,
    ) {
        let mut number = std::mem::take(&mut self.number);
        number.clear();
        gofloat::write(&mut number, bound);
        self.series(
            family,
            index,
            suffix,
            Some((selector, number.as_bytes())),
            value,
        );
        self.number = number;
    }

    /// A series of metric `index` named after `family` and `suffix`.
    fn series(
        &mut self,
        family: &IndexedFamily,
        index: usize,
        suffix: &'static [u8],
        extra: Option<(&'static [u8], &[u8])>,
        value: f64,
    ) {
        let grouping_entries = &self.grouping_entries;
        let merged = self
            .grouping
            .merge_text_marked(self.body.labels(index))
            .map(|(name, value, grouping)| {
                let entry = grouping.map(|at| grouping_entries[at].as_slice());
                (name.as_bytes(), value.as_bytes(), entry)
            });
        let of = (family.name.as_ptr(), suffix.len());
        if self.name_entry_of != Some(of) {
            name_entry(&mut self.name_entry, family.name.as_bytes(), suffix);
            self.name_entry_of = Some(of);
        }
        let labels = write_labels(&mut self.out.labels, merged, &self.name_entry, extra);
        let timestamp = self.body.timestamp(index);
        self.out
            .push_series(labels, SeriesValue::Float(sendable(value)), timestamp);
    }
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
    let (mut series, mut bytes) = (0, 0);
    for family in body.families() {
        let Some(first) = body.metric_range(family).next() else {
            continue;
        };
        let own: usize = body
            .labels(first)
            .map(|(name, value)| name.len() + value.len() + LABEL_OVERHEAD)
            .sum();
        let mut one = own + grouping_bytes + name_label + family.name.len();
        // Quantiles or buckets, `+Inf`, `_sum`, `_count`.
        let per_metric = match body.distribution(family, first) {
            Some((_, points)) => {
                one += SELECTOR_LABEL;
                points.len() + 3
            }
            None => 1,
        };
        series += family.metrics_len() * per_metric;
        bytes += family.metrics_len() * per_metric * one;
    }
    out.series.reserve_exact(series);
    out.labels.reserve(bytes);
    out.families.reserve_exact(body.families().len());
}
