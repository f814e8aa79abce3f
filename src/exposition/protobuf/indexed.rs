//! A delimited protobuf body decoded straight into the index
//! (`exposition::index`) instead of prost's `MetricFamily` values.
//!
//! Contract: [`decode_index`] gives an index only when
//! [`super::decode_delimited`] decodes the body and the index holds exactly
//! the families it gives (`IndexedBody::to_families` builds them back);
//! otherwise `None`, and the owned decode decides (and words any error).
//! The index holds what client libraries push: families with a name, a
//! known type other than gauge histogram, no unit, at least one metric, and
//! a name no other family of the body has; metrics with labels (name and
//! value set), the one value message of their family's type (a counter's,
//! gauge's or untyped's value set; a summary's quantiles, a histogram's
//! classic buckets with both fields and counts a float holds exactly), and
//! maybe a timestamp. Each field at most once and no field the index has
//! no place for: exemplars, created timestamps, native or float histograms
//! and unknown fields all go to the owned model. Strings (names, help,
//! labels) are copied into the index's side buffer, so the body is not
//! kept.

use std::collections::HashSet;

use super::read_prefix;
use crate::exposition::index::{MAX_INDEXED_BODY, Role, TextIndex};
use crate::exposition::text::go_float_to_u64;
use crate::proto::client::MetricType;

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;

/// Decodes a delimited protobuf body into an index, or `None` when the
/// owned model must decode it (see the module docs).
pub(crate) fn decode_index(body: &[u8]) -> Option<TextIndex> {
    if body.len() > MAX_INDEXED_BODY {
        return None;
    }
    let mut decoder = Decoder {
        index: TextIndex::default(),
        labels: Vec::new(),
    };
    decoder.index.unescaped.reserve(body.len());
    let mut names: HashSet<&str> = HashSet::new();
    let mut helps: Vec<Option<String>> = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let Some((length, prefix_len)) = read_prefix(&body[pos..]).ok()? else {
            break;
        };
        pos += prefix_len;
        let end = pos.checked_add(usize::try_from(length).ok()?)?;
        let message = body.get(pos..end)?;
        pos = end;
        let header = family_header(message)?;
        if !names.insert(header.name) {
            // A later family of the same name replaces an earlier one.
            return None;
        }
        let slot = helps.len();
        helps.push(header.help.map(str::to_owned));
        decoder.family(slot, &header, message)?;
    }
    decoder
        .index
        .finish(|slot| helps.get_mut(slot).and_then(Option::take));
    Some(decoder.index)
}

/// A family's name, help and type.
struct Header<'a> {
    name: &'a str,
    help: Option<&'a str>,
    kind: MetricType,
}

/// Reads the fields of a `MetricFamily` message other than its metrics.
fn family_header(message: &[u8]) -> Option<Header<'_>> {
    let (mut name, mut help, mut kind) = (None, None, None);
    let mut fields = Fields::new(message);
    while let Some(field) = fields.read()? {
        match field {
            (1, Value::Bytes(bytes)) if name.is_none() => name = Some(text(bytes)?),
            (2, Value::Bytes(bytes)) if help.is_none() => help = Some(text(bytes)?),
            (3, Value::Varint(number)) if kind.is_none() => {
                kind = Some(match number {
                    0 => MetricType::Counter,
                    1 => MetricType::Gauge,
                    2 => MetricType::Summary,
                    3 => MetricType::Untyped,
                    4 => MetricType::Histogram,
                    _ => return None,
                });
            }
            (4, Value::Bytes(_)) => {}
            _ => return None,
        }
    }
    Some(Header {
        name: name?,
        help,
        kind: kind?,
    })
}

/// The index being built and a buffer for one metric's label spans.
struct Decoder {
    index: TextIndex,
    labels: Vec<([u32; 2], [u32; 2])>,
}

impl Decoder {
    /// Adds the metrics of family message `message` as family `slot`.
    fn family(&mut self, slot: usize, header: &Header<'_>, message: &[u8]) -> Option<()> {
        if !self.index.continue_family(slot, header.name, header.kind) {
            return None;
        }
        let mut fields = Fields::new(message);
        while let Some(field) = fields.read()? {
            if let (4, Value::Bytes(metric)) = field {
                self.metric(slot, header.kind, metric)?;
            }
        }
        // A family without metrics is kept by the owned model only.
        self.index.last_metric(slot).map(|_| ())
    }

    /// Adds one `Metric` message of family `slot` of type `kind`.
    fn metric(&mut self, slot: usize, kind: MetricType, message: &[u8]) -> Option<()> {
        let value_field = match kind {
            MetricType::Gauge => 2,
            MetricType::Counter => 3,
            MetricType::Summary => 4,
            MetricType::Untyped => 5,
            _ => 7,
        };
        let (mut value, mut timestamp) = (None, None);
        let mut sorted = true;
        let mut previous = "";
        self.labels.clear();
        let mut fields = Fields::new(message);
        while let Some(field) = fields.read()? {
            match field {
                (1, Value::Bytes(pair)) => {
                    let (name, label_value) = label_pair(pair)?;
                    sorted &= previous <= name;
                    previous = name;
                    let name = self.index.push_text(name);
                    let label_value = self.index.push_text(label_value);
                    self.labels.push((name, label_value));
                }
                (field, Value::Bytes(bytes)) if field == value_field && value.is_none() => {
                    value = Some(bytes);
                }
                (6, Value::Varint(ms)) if timestamp.is_none() => timestamp = Some(ms as i64),
                _ => return None,
            }
        }
        // Names and values are all in the index's side buffer.
        let index = self.index.push_metric(
            slot,
            "",
            self.labels.iter().map(|&(name, value)| (name, Ok(value))),
            sorted,
        );
        if let Some(timestamp) = timestamp
            && !self.index.set_timestamp(index, timestamp)
        {
            return None;
        }
        match kind {
            MetricType::Summary => self.distribution(slot, index, value?, quantile),
            MetricType::Histogram => self.distribution(slot, index, value?, bucket),
            _ => {
                let value = single_double(value?)?;
                self.index
                    .set_value(slot, index, Role::Plain, f64::NAN, value)
                    .then_some(())
            }
        }
    }

    /// A `Summary` (count, sum, quantiles) or classic `Histogram` (count,
    /// sum, buckets) message: the two share fields 1 and 2, and field 3
    /// is one point, which `point` reads as (bound, value).
    fn distribution(
        &mut self,
        slot: usize,
        index: usize,
        message: &[u8],
        point: fn(&[u8]) -> Option<(f64, f64)>,
    ) -> Option<()> {
        let (mut count, mut sum) = (false, false);
        let mut fields = Fields::new(message);
        while let Some(field) = fields.read()? {
            let recorded = match field {
                (1, Value::Varint(n)) if !count => {
                    count = true;
                    self.set(slot, index, Role::Count, f64::NAN, exact_count(n)?)
                }
                (2, Value::Fixed64(bits)) if !sum => {
                    sum = true;
                    self.set(slot, index, Role::Sum, f64::NAN, f64::from_bits(bits))
                }
                (3, Value::Bytes(message)) => {
                    let (bound, value) = point(message)?;
                    self.set(slot, index, Role::Plain, bound, value)
                }
                _ => false,
            };
            if !recorded {
                return None;
            }
        }
        Some(())
    }

    /// Records a value (see `TextIndex::set_value`). A NaN bound, which
    /// the text format drops and protobuf keeps, is not indexed.
    fn set(&mut self, slot: usize, index: usize, role: Role, bound: f64, value: f64) -> bool {
        (role != Role::Plain || !bound.is_nan())
            && self.index.set_value(slot, index, role, bound, value)
    }
}

/// A `Quantile` message as (quantile, value).
fn quantile(message: &[u8]) -> Option<(f64, f64)> {
    pair_of_doubles(message, 1, 2)
}

/// A `Bucket` message as (upper bound, cumulative count).
fn bucket(message: &[u8]) -> Option<(f64, f64)> {
    let (bound, cumulative) = bucket_fields(message)?;
    Some((bound, exact_count(cumulative)?))
}

/// A count as the index holds it: a float that converts back to it.
fn exact_count(count: u64) -> Option<f64> {
    let float = count as f64;
    (go_float_to_u64(float) == count).then_some(float)
}

/// A `LabelPair` message with both fields.
fn label_pair(message: &[u8]) -> Option<(&str, &str)> {
    let (mut name, mut value) = (None, None);
    let mut fields = Fields::new(message);
    while let Some(field) = fields.read()? {
        match field {
            (1, Value::Bytes(bytes)) if name.is_none() => name = Some(text(bytes)?),
            (2, Value::Bytes(bytes)) if value.is_none() => value = Some(text(bytes)?),
            _ => return None,
        }
    }
    Some((name?, value?))
}

/// A `Gauge`, `Counter` or `Untyped` message holding only its value.
fn single_double(message: &[u8]) -> Option<f64> {
    let mut value = None;
    let mut fields = Fields::new(message);
    while let Some(field) = fields.read()? {
        match field {
            (1, Value::Fixed64(bits)) if value.is_none() => value = Some(f64::from_bits(bits)),
            _ => return None,
        }
    }
    value
}

/// A message holding exactly two doubles, fields `first` and `second`.
fn pair_of_doubles(message: &[u8], first: u32, second: u32) -> Option<(f64, f64)> {
    let (mut a, mut b) = (None, None);
    let mut fields = Fields::new(message);
    while let Some(field) = fields.read()? {
        match field {
            (n, Value::Fixed64(bits)) if n == first && a.is_none() => {
                a = Some(f64::from_bits(bits))
            }
            (n, Value::Fixed64(bits)) if n == second && b.is_none() => {
                b = Some(f64::from_bits(bits));
            }
            _ => return None,
        }
    }
    Some((a?, b?))
}

/// A classic `Bucket`: its upper bound and integer cumulative count.
fn bucket_fields(message: &[u8]) -> Option<(f64, u64)> {
    let (mut bound, mut count) = (None, None);
    let mut fields = Fields::new(message);
    while let Some(field) = fields.read()? {
        match field {
            (1, Value::Varint(n)) if count.is_none() => count = Some(n),
            (2, Value::Fixed64(bits)) if bound.is_none() => bound = Some(f64::from_bits(bits)),
            _ => return None,
        }
    }
    Some((bound?, count?))
}

/// A protobuf string: UTF-8, as prost requires.
fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

/// One field's value.
#[derive(Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
}

/// The fields of one message, in order.
struct Fields<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// The next field: `Some(None)` at the end, `None` when the bytes are
    /// not a field this decoder reads (the owned decode then decides).
    fn read(&mut self) -> Option<Option<(u32, Value<'a>)>> {
        if self.pos == self.bytes.len() {
            return Some(None);
        }
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).ok().filter(|&n| n != 0)?;
        let value = match (key & 7) as u8 {
            VARINT => Value::Varint(self.varint()?),
            FIXED64 => {
                let bytes = self.bytes.get(self.pos..self.pos + 8)?;
                self.pos += 8;
                Value::Fixed64(u64::from_le_bytes(bytes.try_into().ok()?))
            }
            LENGTH_DELIMITED => {
                let length = usize::try_from(self.varint()?).ok()?;
                let end = self.pos.checked_add(length)?;
                let bytes = self.bytes.get(self.pos..end)?;
                self.pos = end;
                Value::Bytes(bytes)
            }
            _ => return None,
        };
        Some(Some((number, value)))
    }

    /// A varint of at most 10 bytes whose value fits 64 bits.
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in 0..10 {
            let byte = *self.bytes.get(self.pos)?;
            self.pos += 1;
            if shift == 9 && byte > 1 {
                return None;
            }
            value |= u64::from(byte & 0x7f) << (7 * shift);
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
}
