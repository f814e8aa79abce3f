//! Building a [`StoredFamily`] one metric at a time: each metric encoded
//! as its `MetricFamily.metric` field entry, with its stored labels in
//! place of its own, as prost would encode it.

use std::sync::OnceLock;
use std::time::SystemTime;

use prost::encoding::{self, WireType};

use super::{Labels, METRIC_TAG, StoredFamily, TooLarge};
use crate::cache::signatures::series_signature;
use crate::proto::client::{LabelPair, Metric, MetricFamily, MetricType};

/// A [`StoredFamily`] built one metric at a time, so that a push's metrics
/// need not all exist as owned values at once: a large push read from its
/// index is stored holding one `Metric` at a time.
pub struct StoredBuilder {
    name: Box<str>,
    help: Option<Box<str>>,
    kind: i32,
    encoded: Vec<u8>,
    ends: Vec<u32>,
    signatures: Vec<u64>,
    /// The metric being encoded.
    body: Vec<u8>,
    timestamped: bool,
}

impl StoredBuilder {
    /// A family named `name` of type `kind` (a `MetricType`), about to
    /// receive `metrics` metrics.
    pub fn new(name: &str, help: Option<&str>, kind: i32, metrics: usize) -> Self {
        Self {
            name: name.into(),
            help: help.map(Into::into),
            kind,
            encoded: Vec::new(),
            ends: Vec::with_capacity(metrics),
            signatures: Vec::with_capacity(metrics),
            body: Vec::new(),
            timestamped: false,
        }
    }

    /// A builder holding all of `family`'s metrics, each with the labels
    /// `labels(i)` gives the metric at position `i`.
    pub fn of_family<'a, L>(
        family: &MetricFamily,
        labels: impl Fn(usize) -> L,
    ) -> Result<Self, TooLarge>
    where
        L: IntoIterator<Item = &'a LabelPair>,
    {
        let kind = family.r#type.unwrap_or(MetricType::Counter as i32);
        let mut builder = Self::new(
            family.name(),
            family.help.as_deref(),
            kind,
            family.metric.len(),
        );
        for (i, metric) in family.metric.iter().enumerate() {
            builder.push(metric, labels(i))?;
        }
        Ok(builder)
    }

    /// Appends `metric` with the labels `labels` in place of its own, and
    /// its series signature.
    pub fn push<'a>(
        &mut self,
        metric: &Metric,
        labels: impl IntoIterator<Item = &'a LabelPair>,
    ) -> Result<(), TooLarge> {
        self.body.clear();
        for label in labels {
            encode_label(label, &mut self.body);
        }
        // The pairs read back are the labels' `pair_bytes`.
        let signature = series_signature(&self.name, Labels { rest: &self.body });
        encode_fields(metric, &mut self.body);
        self.timestamped |= metric.timestamp_ms.is_some();
        if self.encoded.is_empty() {
            // The first metric's size, times the count: the buffer is
            // neither grown by doubling nor shrunk by a copy, most of the
            // time.
            let each = self.body.len() + 6;
            self.encoded.reserve(each * self.ends.capacity().max(1));
        }
        encoding::encode_key(METRIC_TAG, WireType::LengthDelimited, &mut self.encoded);
        put_varint(self.body.len(), &mut self.encoded);
        self.encoded.extend_from_slice(&self.body);
        self.ends.push(offset(self.encoded.len(), &self.name)?);
        self.signatures.push(signature);
        Ok(())
    }

    /// Whether a metric pushed so far carries a timestamp.
    pub fn timestamped(&self) -> bool {
        self.timestamped
    }

    pub fn finish(self, stored_at: SystemTime) -> StoredFamily {
        StoredFamily {
            name: self.name,
            help: self.help,
            kind: self.kind,
            stored_at,
            encoded: self.encoded.into_boxed_slice(),
            ends: self.ends.into_boxed_slice(),
            signatures: self.signatures.into_boxed_slice(),
            view: OnceLock::new(),
        }
    }
}

/// Appends a varint; lengths under 128 (nearly all) as one byte.
#[inline]
fn put_varint(value: usize, buf: &mut Vec<u8>) {
    match u8::try_from(value) {
        Ok(byte) if byte < 0x80 => buf.push(byte),
        _ => encoding::encode_varint(value as u64, buf),
    }
}

/// Appends one `Metric.label` entry, as prost encodes it.
fn encode_label(label: &LabelPair, buf: &mut Vec<u8>) {
    let (name, value) = (label.name.as_deref(), label.value.as_deref());
    let field_len = |text: Option<&str>| {
        text.map_or(0, |t| {
            1 + encoding::encoded_len_varint(t.len() as u64) + t.len()
        })
    };
    let len = field_len(name) + field_len(value);
    buf.reserve(len + 11);
    buf.push(0x0a);
    put_varint(len, buf);
    for (tag, text) in [(0x0a, name), (0x12, value)] {
        if let Some(text) = text {
            buf.push(tag);
            put_varint(text.len(), buf);
            buf.extend_from_slice(text.as_bytes());
        }
    }
}

/// Appends the fields of `metric` after its labels, as prost orders them
/// (by field number).
fn encode_fields(metric: &Metric, buf: &mut Vec<u8>) {
    if let Some(gauge) = &metric.gauge {
        encoding::message::encode(2, gauge, buf);
    }
    if let Some(counter) = &metric.counter {
        encoding::message::encode(3, counter, buf);
    }
    if let Some(summary) = &metric.summary {
        encoding::message::encode(4, summary, buf);
    }
    if let Some(untyped) = &metric.untyped {
        encoding::message::encode(5, untyped, buf);
    }
    if let Some(timestamp) = &metric.timestamp_ms {
        encoding::int64::encode(6, timestamp, buf);
    }
    if let Some(histogram) = &metric.histogram {
        encoding::message::encode(7, histogram, buf);
    }
}

fn offset(len: usize, name: &str) -> Result<u32, TooLarge> {
    u32::try_from(len).map_err(|_| TooLarge(name.to_string()))
}
