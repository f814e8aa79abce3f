//! The stored form of one pushed family: compact, and ready to be scraped.
//!
//! A [`StoredFamily`] keeps its metrics as one buffer of protobuf bytes:
//! each metric is the `MetricFamily.metric` field entry (tag, length,
//! `Metric`) exactly as prost encodes the metric with its stored labels
//! (grouping labels set, sorted by name). That one buffer serves every
//! reader:
//! - the protobuf scrape copies the entries as they are;
//! - the consistency check and the scrape's merge read label pairs straight
//!   from the bytes ([`Labels`]), without decoding or allocating;
//! - the JSON API, persistence and the unchecked scrape decode it on demand
//!   ([`StoredFamily::family`]).
//!
//! The text exposition of the family (metrics sorted as client_golang sorts
//! them) is rendered once, by the first scrape that needs it, and kept in
//! the family ([`StoredFamily::view`]); a stored family never changes (a
//! write replaces it), so the rendering never goes stale.
//!
//! A [`Group`] is what one grouping key holds: its stored families and its
//! two stamps (last success, last failure).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use prost::Message;
use prost::encoding;

use crate::proto::client::{LabelPair, Metric, MetricFamily};
use crate::push::GroupingKey;
use crate::push::grouping::GroupingLabels;
use crate::telemetry::unix_seconds;

mod builder;

pub use builder::StoredBuilder;

/// The `MetricFamily.metric` field number.
const METRIC_TAG: u32 = 4;

/// A family too large for the stored form (its encoding passes 4 GiB).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metric family {0:?} is too large to store (over 4 GiB encoded)")]
pub struct TooLarge(pub String);

/// One family stored in a group, and the time of the write that stored it.
pub struct StoredFamily {
    name: Box<str>,
    help: Option<Box<str>>,
    kind: i32,
    pub stored_at: SystemTime,
    /// The metrics' field entries, in push order.
    encoded: Box<[u8]>,
    /// End of each metric's entry in `encoded`.
    ends: Box<[u32]>,
    /// Each metric's series signature, in push order (the consistency
    /// index forgets them when the family goes).
    signatures: Box<[u64]>,
    view: OnceLock<SortedView>,
}

/// A family's metrics in scrape order, and their text exposition.
pub struct SortedView {
    /// Scrape position → push position.
    pub order: Box<[u32]>,
    /// The text lines of every metric, in scrape order.
    pub text: Box<str>,
    /// End of each scrape position's lines in `text`.
    pub text_ends: Box<[u32]>,
}

impl SortedView {
    /// The text lines of the metric at scrape position `position`.
    pub fn text_of(&self, position: usize) -> &str {
        let start = position
            .checked_sub(1)
            .map_or(0, |p| self.text_ends[p] as usize);
        &self.text[start..self.text_ends[position] as usize]
    }
}

impl std::fmt::Debug for StoredFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredFamily")
            .field("family", &self.family())
            .field("stored_at", &self.stored_at)
            .finish()
    }
}

impl PartialEq for StoredFamily {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.help == other.help
            && self.kind == other.kind
            && self.stored_at == other.stored_at
            && self.encoded == other.encoded
            && self.ends == other.ends
            && self.signatures == other.signatures
    }
}

impl StoredFamily {
    /// Stores `family`'s metrics with the labels `labels(i)` gives the
    /// metric at position `i` (in place of the metric's own labels), and
    /// their series signatures
    /// (`crate::cache::signatures::series_signature`).
    pub fn with_labels<'a, L>(
        family: &MetricFamily,
        stored_at: SystemTime,
        labels: impl Fn(usize) -> L,
    ) -> Result<Self, TooLarge>
    where
        L: IntoIterator<Item = &'a LabelPair>,
    {
        Ok(StoredBuilder::of_family(family, labels)?.finish(stored_at))
    }

    /// Stores `family` as it is (persistence restore).
    pub fn new(family: &MetricFamily, stored_at: SystemTime) -> Result<Self, TooLarge> {
        Self::with_labels(family, stored_at, |i| &family.metric[i].label)
    }

    /// The series signatures of the metrics, in push order.
    pub fn signatures(&self) -> &[u64] {
        &self.signatures
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn help(&self) -> Option<&str> {
        self.help.as_deref()
    }

    /// The family type; an absent type is COUNTER (the proto default).
    pub fn kind(&self) -> i32 {
        self.kind
    }

    /// Number of metrics.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The field entry (tag, length, `Metric`) of the metric at push
    /// position `i`.
    pub fn entry(&self, i: usize) -> &[u8] {
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p] as usize);
        &self.encoded[start..self.ends[i] as usize]
    }

    /// The encoded `Metric` at push position `i`.
    pub fn metric_bytes(&self, i: usize) -> &[u8] {
        let mut entry = self.entry(i);
        // Skip the tag and the length this module wrote.
        match (varint(&mut entry), varint(&mut entry)) {
            (Some(_), Some(_)) => entry,
            _ => &[],
        }
    }

    /// The labels of the metric at push position `i`.
    pub fn labels(&self, i: usize) -> Labels<'_> {
        Labels {
            rest: self.metric_bytes(i),
        }
    }

    /// The metric at push position `i`, decoded.
    pub fn metric(&self, i: usize) -> Metric {
        Metric::decode(self.metric_bytes(i)).unwrap_or_default()
    }

    /// Whether a metric of this family has exactly the label pairs
    /// `labels`, in that order.
    pub fn holds<'b>(&self, labels: impl Iterator<Item = (&'b [u8], &'b [u8])> + Clone) -> bool {
        (0..self.len()).any(|i| {
            let (mut stored, mut wanted) = (self.labels(i), labels.clone());
            loop {
                match (stored.next(), wanted.next()) {
                    (None, None) => return true,
                    (Some(a), Some(b)) if a == b => {}
                    _ => return false,
                }
            }
        })
    }

    /// The whole family, decoded.
    pub fn family(&self) -> MetricFamily {
        MetricFamily {
            name: Some(self.name.to_string()),
            help: self.help.as_deref().map(str::to_string),
            r#type: Some(self.kind),
            metric: (0..self.len()).map(|i| self.metric(i)).collect(),
            unit: None,
        }
    }

    /// The metrics in scrape order with their text, built on first use.
    pub fn view(&self) -> &SortedView {
        self.view.get_or_init(|| self.build_view())
    }

    fn build_view(&self) -> SortedView {
        // Each metric's label values, read once.
        let mut values: Vec<&[u8]> = Vec::new();
        let mut bounds = Vec::with_capacity(self.len());
        for i in 0..self.len() {
            values.extend(self.labels(i).map(|(_, v)| v));
            bounds.push(values.len());
        }
        let key = |i: u32| {
            let i = i as usize;
            let start = i.checked_sub(1).map_or(0, |p| bounds[p]);
            values[start..bounds[i]].iter().copied()
        };
        let mut order: Vec<u32> = (0..self.len() as u32).collect();
        order.sort_by(|a, b| compare_values(key(*a), key(*b)));
        let mut text = String::with_capacity(self.encoded.len());
        let mut text_ends = Vec::with_capacity(order.len());
        for &i in &order {
            super::text::write_metric(&mut text, &self.name, self.kind, &self.metric(i as usize));
            // The text of a family is shorter than its encoding plus the
            // quantile/bucket labels, far below 4 GiB when the encoding is.
            text_ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
        }
        SortedView {
            order: order.into_boxed_slice(),
            text: text.into_boxed_str(),
            text_ends: text_ends.into_boxed_slice(),
        }
    }
}

/// client_golang's metric order over label values: fewer labels first, then
/// the values position by position.
pub fn compare_values<'a, 'b>(
    mut a: impl Iterator<Item = &'a [u8]>,
    mut b: impl Iterator<Item = &'b [u8]>,
) -> Ordering {
    // One pass: the first differing value decides unless the counts differ.
    let mut first_difference = Ordering::Equal;
    loop {
        match (a.next(), b.next()) {
            (Some(x), Some(y)) => {
                if first_difference.is_eq() {
                    first_difference = x.cmp(y);
                }
            }
            (None, None) => return first_difference,
            (Some(_), None) => return Ordering::Greater,
            (None, Some(_)) => return Ordering::Less,
        }
    }
}

/// The label pairs of one encoded `Metric`, as (name, value) bytes, read
/// without decoding. Labels come first in an encoded metric (field 1, and
/// prost writes fields in order), so the walk stops at the first other field.
#[derive(Clone)]
pub struct Labels<'a> {
    rest: &'a [u8],
}

/// One varint; the one-byte case (every tag and short length) inline.
#[inline]
fn varint(buf: &mut &[u8]) -> Option<u64> {
    match buf.split_first() {
        Some((&byte, rest)) if byte < 0x80 => {
            *buf = rest;
            Some(u64::from(byte))
        }
        _ => encoding::decode_varint(buf).ok(),
    }
}

#[inline]
fn length_delimited<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(varint(buf)?).ok()?;
    if len > buf.len() {
        return None;
    }
    let (field, rest) = buf.split_at(len);
    *buf = rest;
    Some(field)
}

impl<'a> Iterator for Labels<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = self.rest;
        let pair = match varint(&mut buf) {
            // Field 1, length-delimited.
            Some(0x0a) => length_delimited(&mut buf),
            _ => None,
        };
        let Some(mut pair) = pair else {
            self.rest = &[];
            return None;
        };
        self.rest = buf;
        let (mut name, mut value): (&[u8], &[u8]) = (&[], &[]);
        while !pair.is_empty() {
            let field = match varint(&mut pair) {
                Some(key @ (0x0a | 0x12)) => (key, length_delimited(&mut pair)),
                _ => (0, None),
            };
            match field {
                (0x0a, Some(bytes)) => name = bytes,
                (0x12, Some(bytes)) => value = bytes,
                _ => break,
            }
        }
        Some((name, value))
    }
}

/// A value with the time of the write that stored it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stamp {
    /// `None` means "never" (exposed as 0).
    pub value: Option<SystemTime>,
    pub stored_at: SystemTime,
}

impl Stamp {
    /// The value as the Pushgateway exposes it: Unix seconds, or 0.
    pub fn seconds(&self) -> f64 {
        self.value.map_or(0.0, unix_seconds)
    }
}

/// The metrics stored under one grouping key.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    /// The tenant the group was pushed as (`Push::tenant`): two tenants
    /// pushing one grouping key have two groups.
    pub tenant: Option<String>,
    pub key: GroupingKey,
    /// Pushed families by name (never `push_time_seconds` or
    /// `push_failure_time_seconds`: those are the two stamps).
    pub families: BTreeMap<String, Arc<StoredFamily>>,
    pub push_time: Stamp,
    pub failure_time: Stamp,
}

impl Group {
    pub(super) fn new(tenant: Option<String>, key: GroupingKey, now: SystemTime) -> Self {
        let never = Stamp {
            value: None,
            stored_at: now,
        };
        Self {
            tenant,
            key,
            families: BTreeMap::new(),
            push_time: never,
            failure_time: never,
        }
    }

    /// The labels of this group's `push_*` series: the grouping labels, plus
    /// `instance=""` when the key has no instance, sorted by name.
    pub fn push_labels(&self) -> Vec<LabelPair> {
        stamp_labels(&self.key)
    }

    /// False when the last push failed (failure time after success time).
    pub fn last_push_successful(&self) -> bool {
        self.failure_time.seconds() <= self.push_time.seconds()
    }
}

/// The labels of the `push_*` series of a group with `key`.
pub(super) fn stamp_labels(key: &GroupingKey) -> Vec<LabelPair> {
    GroupingLabels::new(key).alone().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::signatures::{pair_bytes, signature_of};
    use crate::proto::client::{
        Bucket, Counter, Gauge, Histogram, MetricType, Quantile, Summary, Untyped,
    };

    fn metrics() -> Vec<Metric> {
        vec![
            Metric {
                label: vec![LabelPair::new("b", "2"), LabelPair::new("a", "x\"y")],
                gauge: Some(Gauge { value: Some(1.5) }),
                ..Default::default()
            },
            Metric {
                label: vec![LabelPair {
                    name: Some("a".into()),
                    value: None,
                }],
                counter: Some(Counter {
                    value: Some(3.0),
                    ..Default::default()
                }),
                timestamp_ms: Some(-7),
                ..Default::default()
            },
            Metric {
                summary: Some(Summary {
                    sample_count: Some(2),
                    sample_sum: Some(1.0),
                    quantile: vec![Quantile {
                        quantile: Some(0.5),
                        value: Some(0.25),
                    }],
                    ..Default::default()
                }),
                untyped: Some(Untyped { value: Some(2.0) }),
                histogram: Some(Histogram {
                    sample_count: Some(1),
                    bucket: vec![Bucket {
                        upper_bound: Some(1.0),
                        cumulative_count: Some(1),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]
    }

    #[test]
    fn the_stored_bytes_are_prosts_encoding_and_decode_back() {
        let family = MetricFamily {
            name: Some("m".into()),
            help: Some("H.".into()),
            r#type: Some(MetricType::Gauge as i32),
            metric: metrics(),
            unit: None,
        };
        let stored = StoredFamily::new(&family, SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(stored.len(), 3);
        let mut expected = Vec::new();
        for metric in &family.metric {
            encoding::message::encode(METRIC_TAG, metric, &mut expected);
        }
        assert_eq!(&*stored.encoded, &expected[..]);
        assert_eq!(stored.family(), family);
        assert_eq!(
            stored.signatures()[0],
            signature_of("m", &family.metric[0].label)
        );
        let labels: Vec<_> = stored.labels(0).collect();
        assert_eq!(
            labels,
            vec![(&b"b"[..], &b"2"[..]), (&b"a"[..], &b"x\"y"[..])]
        );
        assert_eq!(
            stored.labels(1).collect::<Vec<_>>(),
            vec![(&b"a"[..], &b""[..])]
        );
        assert_eq!(stored.labels(2).count(), 0);
        let holds = |labels: &[LabelPair]| stored.holds(labels.iter().map(pair_bytes));
        assert!(holds(&[
            LabelPair::new("b", "2"),
            LabelPair::new("a", "x\"y")
        ]));
        assert!(holds(&[LabelPair::new("a", "")]));
        assert!(!holds(&[LabelPair::new("a", "x\"y")]));
        assert!(!holds(&[LabelPair::new("b", "2")]));
    }

    #[test]
    fn replaced_labels_are_stored_in_place_of_the_metrics_own() {
        let family = MetricFamily {
            name: Some("m".into()),
            r#type: Some(MetricType::Gauge as i32),
            metric: vec![metrics().remove(0)],
            ..Default::default()
        };
        let job = LabelPair::new("job", "j");
        let stored =
            StoredFamily::with_labels(&family, SystemTime::UNIX_EPOCH, |_| [&job]).unwrap();
        assert_eq!(stored.signatures(), &[signature_of("m", [&job])]);
        assert_eq!(stored.metric(0).label, vec![job.clone()]);
        assert_eq!(stored.kind(), MetricType::Gauge as i32);
        assert_eq!(stored.help(), None);
    }

    #[test]
    fn the_view_sorts_by_label_count_then_values() {
        let gauge = |labels: &[(&str, &str)]| Metric {
            label: labels.iter().map(|&(n, v)| LabelPair::new(n, v)).collect(),
            gauge: Some(Gauge { value: Some(1.0) }),
            ..Default::default()
        };
        let family = MetricFamily {
            name: Some("m".into()),
            r#type: Some(MetricType::Gauge as i32),
            metric: vec![
                gauge(&[("a", "2"), ("b", "1")]),
                gauge(&[("a", "3")]),
                gauge(&[("a", "1"), ("b", "9")]),
                gauge(&[("z", "1"), ("b", "1")]),
            ],
            ..Default::default()
        };
        let stored = StoredFamily::new(&family, SystemTime::UNIX_EPOCH).unwrap();
        let view = stored.view();
        assert_eq!(&*view.order, &[1, 3, 2, 0]);
        assert_eq!(view.text_of(0), "m{a=\"3\"} 1\n");
        assert_eq!(view.text_of(3), "m{a=\"2\",b=\"1\"} 1\n");
        assert_eq!(view.text.lines().count(), 4);
    }
}
