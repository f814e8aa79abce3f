//! The Remote-Write 2.0 encoder: one `io.prometheus.write.v2.Request` from
//! the same encoded series a 1.0 request is made of.
//!
//! Protocols are encoders of the same converted series: the shard builds
//! each push's series once, as 1.0 `WriteRequest` fragments (see `wire`),
//! plus the [`Extras`] only 2.0 can carry (start timestamps, exemplars). A
//! request is then encoded as 1.0 by concatenating fragments, or as 2.0 by
//! [`encode`], which reads the same fragments back and writes:
//! - a symbols table (`symbols[0] == ""`, every string once) and each
//!   series' labels as sorted (name, value) reference pairs (the 1.0
//!   labels are already sorted and unique);
//! - the 1.0 `Sample` and `Histogram` payloads as they are (2.0 keeps
//!   their field numbers), each with its `start_timestamp` when known;
//! - per series, the metadata of its family (type, help and unit refs),
//!   found by the series name, or by the name without `_bucket`, `_sum` or
//!   `_count` for histograms and summaries; a series whose family's
//!   metadata is in another request (a push split over several) goes
//!   without;
//! - exemplars (labels refs, value, timestamp: the sample's when the push
//!   gave none).
//!
//! [`encode`] also counts what a 2.0 receiver should report written.

use std::collections::HashMap;

use super::wire::{put_varint, varint_len};
use crate::hashing::Seeded;

/// What one series carries in 2.0 beyond its 1.0 encoding.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extras {
    /// The series' start ("created") time in ms; 0 = unknown.
    pub start_timestamp_ms: i64,
    pub exemplars: Vec<Exemplar>,
}

impl Extras {
    pub fn is_empty(&self) -> bool {
        self.start_timestamp_ms == 0 && self.exemplars.is_empty()
    }
}

/// One exemplar of a series.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    /// Sorted by name.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// `None`: the timestamp of the series' sample.
    pub timestamp_ms: Option<i64>,
}

/// What a request carries, as the `X-Prometheus-Remote-Write-*-Written`
/// headers count it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub samples: u64,
    pub histograms: u64,
    pub exemplars: u64,
}

impl Counts {
    pub fn is_empty(&self) -> bool {
        self.samples == 0 && self.histograms == 0 && self.exemplars == 0
    }

    /// Whether every kind was written at least as often as `sent`.
    pub fn covers(&self, sent: &Counts) -> bool {
        self.samples >= sent.samples
            && self.histograms >= sent.histograms
            && self.exemplars >= sent.exemplars
    }
}

/// Counts what a 1.0 body (concatenated fragments) carries; a 1.0 request
/// has no Written headers, but the fallback decision needs to know whether
/// a request was empty.
pub fn count_v1(raw_v1: &[u8]) -> Counts {
    let mut counts = Counts::default();
    for (field, series) in Fields::new(raw_v1) {
        if field != 1 {
            continue;
        }
        for (f, _) in Fields::new(series) {
            match f {
                2 => counts.samples += 1,
                4 => counts.histograms += 1,
                _ => {}
            }
        }
    }
    counts
}

/// The 2.0 request made of a 1.0 body (concatenated `WriteRequest`
/// fragments) and the extras of some of its series, given as (index of the
/// series in the body, extras) in ascending index order. Returns the
/// uncompressed request and what it carries.
pub fn encode<'e>(
    raw_v1: &[u8],
    extras: impl IntoIterator<Item = (usize, &'e Extras)>,
) -> (Vec<u8>, Counts) {
    let mut families: HashMap<&[u8], Metadata<'_>, Seeded> = HashMap::default();
    for (field, payload) in Fields::new(raw_v1) {
        if field == 3 {
            let metadata = Metadata::read(payload);
            families.insert(metadata.name, metadata);
        }
    }
    let mut symbols = Symbols::default();
    let mut extras = extras.into_iter().peekable();
    let mut series_out = Vec::with_capacity(raw_v1.len());
    let mut one = Vec::new();
    let mut counts = Counts::default();
    let mut refs: Vec<u32> = Vec::new();
    let mut index = 0;
    for (field, series) in Fields::new(raw_v1) {
        if field != 1 {
            continue;
        }
        let extra = match extras.peek() {
            Some((i, _)) if *i == index => extras.next().map(|(_, e)| e),
            _ => None,
        };
        index += 1;
        refs.clear();
        let mut name: &[u8] = b"";
        let mut sample_timestamp = 0;
        for (f, payload) in Fields::new(series) {
            if f == 1 {
                let (label, value) = read_label(payload);
                if label == b"__name__" {
                    name = value;
                }
                refs.push(symbols.of(label));
                refs.push(symbols.of(value));
            }
        }
        one.clear();
        put_packed(&mut one, 1, &refs);
        let start = extra.map_or(0, |e| e.start_timestamp_ms);
        for (f, payload) in Fields::new(series) {
            match f {
                2 => {
                    sample_timestamp = field_varint(payload, 2).unwrap_or(0) as i64;
                    put_message_with_start(&mut one, 2, payload, 3, start);
                    counts.samples += 1;
                }
                4 => {
                    sample_timestamp = field_varint(payload, 15).unwrap_or(0) as i64;
                    put_message_with_start(&mut one, 3, payload, 17, start);
                    counts.histograms += 1;
                }
                _ => {}
            }
        }
        for exemplar in extra.iter().flat_map(|e| &e.exemplars) {
            put_exemplar(&mut one, exemplar, sample_timestamp, &mut symbols);
            counts.exemplars += 1;
        }
        if let Some(metadata) = family_metadata(&families, name) {
            let help = symbols.of(metadata.help);
            let unit = symbols.of(metadata.unit);
            put_metadata(&mut one, metadata.r#type, help, unit);
        }
        put_len(&mut series_out, 5, &one);
    }
    let mut out = Vec::with_capacity(symbols.bytes + series_out.len());
    for symbol in &symbols.order {
        put_len(&mut out, 4, symbol);
    }
    out.extend_from_slice(&series_out);
    (out, counts)
}

/// The string table being built: each string once, `""` first.
struct Symbols<'a> {
    index: HashMap<&'a [u8], u32, Seeded>,
    order: Vec<&'a [u8]>,
    /// Bytes the table will take on the wire, roughly.
    bytes: usize,
}

impl Default for Symbols<'_> {
    fn default() -> Self {
        let mut index = HashMap::default();
        index.insert(&b""[..], 0);
        Self {
            index,
            order: vec![b""],
            bytes: 2,
        }
    }
}

impl<'a> Symbols<'a> {
    fn of(&mut self, symbol: &'a [u8]) -> u32 {
        let next = self.order.len() as u32;
        let index = *self.index.entry(symbol).or_insert(next);
        if index == next {
            self.order.push(symbol);
            self.bytes += symbol.len() + 2;
        }
        index
    }
}

/// One family's `MetricMetadata`, borrowed from a 1.0 body.
#[derive(Clone, Copy, Default)]
struct Metadata<'a> {
    r#type: u64,
    name: &'a [u8],
    help: &'a [u8],
    unit: &'a [u8],
}

impl<'a> Metadata<'a> {
    fn read(payload: &'a [u8]) -> Self {
        let mut metadata = Metadata::default();
        let mut reader = Reader(payload);
        while let Some((field, wire_type)) = reader.tag() {
            match (field, wire_type) {
                (1, 0) => metadata.r#type = reader.varint().unwrap_or(0),
                (2, 2) => metadata.name = reader.bytes().unwrap_or_default(),
                (4, 2) => metadata.help = reader.bytes().unwrap_or_default(),
                (5, 2) => metadata.unit = reader.bytes().unwrap_or_default(),
                _ => {
                    if reader.skip(wire_type).is_none() {
                        break;
                    }
                }
            }
        }
        metadata
    }
}

/// 1.0 `MetricType` numbers (the same in 2.0).
const HISTOGRAM: u64 = 3;
const GAUGE_HISTOGRAM: u64 = 4;
const SUMMARY: u64 = 5;

/// The metadata of the family a series named `name` belongs to.
fn family_metadata<'m, 'a>(
    families: &'m HashMap<&'a [u8], Metadata<'a>, Seeded>,
    name: &[u8],
) -> Option<&'m Metadata<'a>> {
    if let Some(metadata) = families.get(name) {
        return Some(metadata);
    }
    let suffixes: [(&[u8], &[u64]); 3] = [
        (b"_bucket", &[HISTOGRAM, GAUGE_HISTOGRAM]),
        (b"_sum", &[HISTOGRAM, GAUGE_HISTOGRAM, SUMMARY]),
        (b"_count", &[HISTOGRAM, GAUGE_HISTOGRAM, SUMMARY]),
    ];
    suffixes.iter().find_map(|(suffix, types)| {
        let family = name.strip_suffix(*suffix)?;
        families
            .get(family)
            .filter(|metadata| types.contains(&metadata.r#type))
    })
}

/// (name, value) of an encoded 1.0 `Label`.
fn read_label(payload: &[u8]) -> (&[u8], &[u8]) {
    let (mut name, mut value): (&[u8], &[u8]) = (b"", b"");
    for (field, bytes) in Fields::new(payload) {
        match field {
            1 => name = bytes,
            2 => value = bytes,
            _ => {}
        }
    }
    (name, value)
}

/// The first varint field numbered `wanted` of a message.
fn field_varint(payload: &[u8], wanted: u64) -> Option<u64> {
    let mut reader = Reader(payload);
    while let Some((field, wire_type)) = reader.tag() {
        if field == wanted && wire_type == 0 {
            return reader.varint();
        }
        reader.skip(wire_type)?;
    }
    None
}

/// Appends a LEN field `field` holding `payload`, plus the varint field
/// `start_field` = `start` when `start` is set (a message is the
/// concatenation of its fields, so the 1.0 payload is extended in place).
fn put_message_with_start(
    out: &mut Vec<u8>,
    field: u64,
    payload: &[u8],
    start_field: u64,
    start: i64,
) {
    let extra = if start != 0 {
        varint_len(start_field << 3) + varint_len(start as u64)
    } else {
        0
    };
    put_varint(out, field << 3 | 2);
    put_varint(out, (payload.len() + extra) as u64);
    out.extend_from_slice(payload);
    if start != 0 {
        put_varint(out, start_field << 3);
        put_varint(out, start as u64);
    }
}

fn put_len(out: &mut Vec<u8>, field: u64, payload: &[u8]) {
    put_varint(out, field << 3 | 2);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

fn put_packed(out: &mut Vec<u8>, field: u64, values: &[u32]) {
    if values.is_empty() {
        return;
    }
    let len: usize = values.iter().map(|&v| varint_len(v as u64)).sum();
    put_varint(out, field << 3 | 2);
    put_varint(out, len as u64);
    for &v in values {
        put_varint(out, v as u64);
    }
}

fn put_exemplar<'a>(
    out: &mut Vec<u8>,
    exemplar: &'a Exemplar,
    sample_timestamp: i64,
    symbols: &mut Symbols<'a>,
) {
    let refs: Vec<u32> = exemplar
        .labels
        .iter()
        .flat_map(|(name, value)| [name.as_bytes(), value.as_bytes()])
        .map(|symbol| symbols.of(symbol))
        .collect();
    let mut body = Vec::new();
    put_packed(&mut body, 1, &refs);
    body.push(0x11); // value: field 2, I64
    body.extend_from_slice(&exemplar.value.to_bits().to_le_bytes());
    body.push(0x18); // timestamp: field 3, VARINT
    put_varint(
        &mut body,
        exemplar.timestamp_ms.unwrap_or(sample_timestamp) as u64,
    );
    put_len(out, 4, &body);
}

fn put_metadata(out: &mut Vec<u8>, r#type: u64, help_ref: u32, unit_ref: u32) {
    let mut body = Vec::with_capacity(12);
    if r#type != 0 {
        body.push(0x08);
        put_varint(&mut body, r#type);
    }
    if help_ref != 0 {
        body.push(0x18);
        put_varint(&mut body, help_ref as u64);
    }
    if unit_ref != 0 {
        body.push(0x20);
        put_varint(&mut body, unit_ref as u64);
    }
    put_len(out, 5, &body);
}

/// A cursor over protobuf wire bytes this process encoded itself; malformed
/// input ends the walk (it cannot happen, and must not panic).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for (i, &byte) in self.0.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                self.0 = &self.0[i + 1..];
                return Some(value);
            }
        }
        None
    }

    fn tag(&mut self) -> Option<(u64, u8)> {
        if self.0.is_empty() {
            return None;
        }
        let tag = self.varint()?;
        Some((tag >> 3, (tag & 7) as u8))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.varint()?).ok()?;
        let bytes = self.0.get(..len)?;
        self.0 = &self.0[len..];
        Some(bytes)
    }

    fn skip(&mut self, wire_type: u8) -> Option<()> {
        let n = match wire_type {
            0 => return self.varint().map(|_| ()),
            1 => 8,
            2 => return self.bytes().map(|_| ()),
            5 => 4,
            _ => return None,
        };
        self.0 = self.0.get(n..)?;
        Some(())
    }
}

/// The LEN fields of a message, as (field number, payload); other wire
/// types are skipped.
struct Fields<'a>(Reader<'a>);

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self(Reader(bytes))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (u64, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (field, wire_type) = self.0.tag()?;
            if wire_type == 2 {
                return Some((field, self.0.bytes()?));
            }
            self.0.skip(wire_type)?;
        }
    }
}

#[cfg(test)]
mod tests;
