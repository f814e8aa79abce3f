//! Encoding the labels of one series: the metric's labels merged with the
//! grouping labels, `__name__` and the `le`/`quantile` a series adds, into
//! the request's one label buffer, sorted and without empty values. The
//! owned and the indexed conversions share it.

use std::ops::Range;

use crate::forward::wire;
use crate::label_order;

const NAME_LABEL: &[u8] = b"__name__";

/// A merged label for [`write_labels`]: name, value, and its encoded entry
/// when the caller has it already (a grouping label's, encoded once per
/// push).
type MergedEntry<'l> = (&'l [u8], &'l [u8], Option<&'l [u8]>);

/// Encodes the labels of one series into `labels`: the `merged` labels of
/// a metric (its own merged with the grouping labels, sorted; empty values
/// and names clashing with the added labels skipped), merged with the
/// `__name__` label already encoded as `name_entry` (see [`name_entry`];
/// the same for every series of a family, so encoded once) and the
/// optional `extra`.
pub(super) fn write_labels<'l>(
    labels: &mut Vec<u8>,
    merged: impl Iterator<Item = MergedEntry<'l>>,
    name_entry: &[u8],
    extra: Option<(&'static [u8], &[u8])>,
) -> Range<usize> {
    let start = labels.len();
    // "__name__" sorts before "le" and "quantile": the name goes first.
    let mut name_entry = Some(name_entry);
    let mut extra = extra;
    let mut previous: Option<&[u8]> = None;
    for (label_name, value, encoded) in merged {
        if value.is_empty()
            || previous.is_some_and(|previous| label_order::same(previous, label_name))
            || is_added_name(label_name, extra)
        {
            continue;
        }
        if let Some(entry) = name_entry
            && label_order::compare(NAME_LABEL, label_name).is_lt()
        {
            labels.extend_from_slice(entry);
            name_entry = None;
        }
        if name_entry.is_none()
            && let Some((name, value)) = extra
            && label_order::compare(name, label_name).is_lt()
        {
            wire::put_label(labels, name, value);
            extra = None;
        }
        match encoded {
            Some(entry) => labels.extend_from_slice(entry),
            None => wire::put_label(labels, label_name, value),
        }
        previous = Some(label_name);
    }
    if let Some(entry) = name_entry {
        labels.extend_from_slice(entry);
    }
    if let Some((name, value)) = extra
        && !value.is_empty()
    {
        wire::put_label(labels, name, value);
    }
    start..labels.len()
}

/// The encoded `__name__` label of the series named `name` + `suffix`
/// (nothing when both are empty, as no label has an empty value), into
/// `entry`.
pub(super) fn name_entry(entry: &mut Vec<u8>, name: &[u8], suffix: &[u8]) {
    entry.clear();
    if !name.is_empty() || !suffix.is_empty() {
        wire::put_label_suffixed(entry, NAME_LABEL, name, suffix);
    }
}

/// Whether a merged label is one `write_labels` adds itself (`__name__`,
/// or the `le` or `quantile` it adds), checked on the first byte before
/// any comparison: most names start otherwise.
#[inline]
fn is_added_name(label_name: &[u8], extra: Option<(&'static [u8], &[u8])>) -> bool {
    matches!(label_name.first(), Some(b'_' | b'l' | b'q'))
        && (label_name == NAME_LABEL || extra.is_some_and(|(name, _)| name == label_name))
}
