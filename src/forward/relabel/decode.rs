//! Reading encoded `TimeSeries.labels` entries back, as
//! `wire::put_label_suffixed` writes them, without allocating: nearly
//! every label's lengths take one byte, so that case is read first.

/// The `(name, value)` pairs of encoded `TimeSeries.labels` entries, as
/// `wire::put_label_suffixed` writes them.
pub(super) fn decode_labels(encoded: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    decode_label_fields(encoded).map(|(name, value, _)| (name, value))
}

/// A decoded label: its name, value and whole `TimeSeries.labels` entry.
type LabelEntry<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// The `(name, value, entry)` of each encoded `TimeSeries.labels` entry.
pub(super) fn decode_label_fields(mut encoded: &[u8]) -> impl Iterator<Item = LabelEntry<'_>> {
    std::iter::from_fn(move || {
        let (label, rest) = split_short_label(encoded).or_else(|| {
            let (label, rest) = take_len_field(encoded)?;
            let (name, after_name) = take_len_field(label)?;
            let (value, _) = take_len_field(after_name)?;
            Some(((name, value, &encoded[..encoded.len() - rest.len()]), rest))
        })?;
        encoded = rest;
        Some(label)
    })
}

/// A label whose lengths all take one byte (nearly every label), and what
/// follows it; `None` for any other.
fn split_short_label(encoded: &[u8]) -> Option<(LabelEntry<'_>, &[u8])> {
    let [_, label_len, _, name_len, ..] = *encoded else {
        return None;
    };
    if label_len >= 0x80 || name_len >= 0x80 {
        return None;
    }
    let (field, rest) = encoded.split_at_checked(2 + usize::from(label_len))?;
    let name_end = 4 + usize::from(name_len);
    let value_len = *field.get(name_end + 1)?;
    if value_len >= 0x80 || name_end + 2 + usize::from(value_len) != field.len() {
        return None;
    }
    Some(((&field[4..name_end], &field[name_end + 2..], field), rest))
}

/// The payload of the LEN field (tag, varint length, bytes) at the start
/// of `bytes`, and what follows it.
fn take_len_field(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, varint) = read_varint(bytes.get(1..)?)?;
    let start = 1 + varint;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    Some((bytes.get(start..end)?, bytes.get(end..)?))
}

/// A varint and the bytes it took.
fn read_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((value, i + 1));
        }
    }
    None
}
