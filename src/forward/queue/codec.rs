//! The byte layout of what the disk queue stores: a queued push as one
//! record payload, and the small primitives (little-endian integers,
//! length-prefixed bytes) the series-memory snapshot is written with too.
//!
//! A record holds what the shard needs to deliver the push exactly as it
//! would have without the queue: its sequence number, operation, tenant,
//! grouping key, receive time (the shard stamps the timestamps from it, so
//! a replay stamps the same ones) and the converted series. Decoding checks
//! every length against the input: a damaged payload is an error, never a
//! panic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::forward::convert::{Converted, Family, Series, SeriesValue};
use crate::forward::series_memory::GroupId;
use crate::forward::wire_v2::{Exemplar, Extras};
use crate::push::{GroupingKey, PushOp};

/// A payload that does not decode.
#[derive(Debug, PartialEq)]
pub struct Malformed(pub &'static str);

/// Appends primitives to a buffer.
pub struct Put<'a>(pub &'a mut Vec<u8>);

impl Put<'_> {
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    /// A length that fits u32 (everything stored comes from a bounded body).
    pub fn len(&mut self, v: usize) {
        self.u32(u32::try_from(v).unwrap_or(u32::MAX));
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.len(v.len());
        self.0.extend_from_slice(v);
    }
    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    pub fn opt_str(&mut self, v: Option<&str>) {
        match v {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }
    pub fn group(&mut self, group: &GroupId) {
        self.opt_str(group.tenant.as_deref());
        let labels = group.key.labels();
        self.len(labels.len());
        for (name, value) in labels {
            self.str(name);
            self.str(value);
        }
    }
}

/// Reads primitives from a buffer, failing on short input.
pub struct Take<'a>(pub &'a [u8]);

impl<'a> Take<'a> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn raw(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    pub fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.raw(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32, Malformed> {
        let raw = self.raw(4)?;
        Ok(u32::from_le_bytes(raw.try_into().expect("4 bytes")))
    }
    pub fn u64(&mut self) -> Result<u64, Malformed> {
        let raw = self.raw(8)?;
        Ok(u64::from_le_bytes(raw.try_into().expect("8 bytes")))
    }
    pub fn i64(&mut self) -> Result<i64, Malformed> {
        Ok(self.u64()? as i64)
    }
    pub fn f64(&mut self) -> Result<f64, Malformed> {
        Ok(f64::from_bits(self.u64()?))
    }
    pub fn len(&mut self) -> Result<usize, Malformed> {
        let n = self.u32()? as usize;
        // A count can never exceed the bytes left: refuse it before
        // allocating for it.
        if n > self.0.len() {
            return Err(Malformed("length beyond the payload"));
        }
        Ok(n)
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.len()?;
        self.raw(n)
    }
    pub fn str(&mut self) -> Result<String, Malformed> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| Malformed("string not UTF-8"))
    }
    pub fn opt_str(&mut self) -> Result<Option<String>, Malformed> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.str()?)),
            _ => Err(Malformed("bad option tag")),
        }
    }
    pub fn group(&mut self) -> Result<GroupId, Malformed> {
        let tenant = self.opt_str()?;
        let count = self.len()?;
        let mut labels = Vec::with_capacity(count);
        for _ in 0..count {
            labels.push((self.str()?, self.str()?));
        }
        Ok(GroupId {
            tenant,
            key: GroupingKey::new(labels),
        })
    }
    fn range(&mut self, limit: usize) -> Result<std::ops::Range<usize>, Malformed> {
        let (start, end) = (self.u32()? as usize, self.u32()? as usize);
        if start > end || end > limit {
            return Err(Malformed("range outside its buffer"));
        }
        Ok(start..end)
    }
}

/// A push as the disk queue holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Position in the queue; strictly increasing, never reused.
    pub seq: u64,
    pub op: PushOp,
    pub group: GroupId,
    pub received_at: SystemTime,
    pub converted: Converted,
}

fn op_code(op: PushOp) -> u8 {
    match op {
        PushOp::Replace => 0,
        PushOp::Merge => 1,
        PushOp::Delete => 2,
    }
}

/// Encodes an entry's payload (without its sequence number, which the
/// writer puts in front when it assigns it).
pub fn encode_push(
    op: PushOp,
    group: &GroupId,
    received_at: SystemTime,
    converted: &Converted,
) -> Vec<u8> {
    let c = converted;
    let mut out = Vec::with_capacity(
        64 + c.labels.len() + c.histograms.len() + c.metadata.len() + 32 * c.series.len(),
    );
    let mut put = Put(&mut out);
    put.u8(op_code(op));
    put.group(group);
    let since = received_at.duration_since(UNIX_EPOCH).unwrap_or_default();
    put.u64(since.as_secs());
    put.u32(since.subsec_nanos());
    put.bytes(&c.labels);
    put.bytes(&c.histograms);
    put.bytes(&c.metadata);
    put.len(c.series.len());
    for (index, series) in c.series.iter().enumerate() {
        let labels = series.labels();
        put.u32(labels.start as u32);
        put.u32(labels.end as u32);
        match series.value() {
            SeriesValue::Float(v) => {
                put.u8(0);
                put.f64(v);
            }
            SeriesValue::Histogram(h) => {
                let span = c.histogram_spans.get(h).cloned().unwrap_or_default();
                put.u8(1);
                put.u32(span.start as u32);
                put.u32(span.end as u32);
            }
        }
        match c.timestamp(index) {
            None => put.u8(0),
            Some(ts) => {
                put.u8(1);
                put.i64(ts);
            }
        }
    }
    put.len(c.families.len());
    for family in &c.families {
        put.str(&family.name);
        put.u32(family.series.start as u32);
        put.u32(family.series.end as u32);
        put.u32(family.labels.start as u32);
        put.u32(family.labels.end as u32);
    }
    // What only a 2.0 request carries (start timestamps, exemplars): a
    // replay must send the same request the first attempt would have.
    put.len(c.extras.len());
    for (index, extras) in &c.extras {
        put.u32(*index as u32);
        put.i64(extras.start_timestamp_ms);
        put.len(extras.exemplars.len());
        for exemplar in &extras.exemplars {
            put.len(exemplar.labels.len());
            for (name, value) in &exemplar.labels {
                put.str(name);
                put.str(value);
            }
            put.f64(exemplar.value);
            match exemplar.timestamp_ms {
                None => put.u8(0),
                Some(ts) => {
                    put.u8(1);
                    put.i64(ts);
                }
            }
        }
    }
    out
}

/// Decodes a record payload: the sequence number, then what
/// [`encode_push`] wrote.
pub fn decode_entry(payload: &[u8]) -> Result<Entry, Malformed> {
    let mut take = Take(payload);
    let seq = take.u64()?;
    let op = match take.u8()? {
        0 => PushOp::Replace,
        1 => PushOp::Merge,
        2 => PushOp::Delete,
        _ => return Err(Malformed("unknown operation")),
    };
    let group = take.group()?;
    let secs = take.u64()?;
    let nanos = take.u32()?;
    let received_at = UNIX_EPOCH
        .checked_add(Duration::new(secs, nanos.min(999_999_999)))
        .ok_or(Malformed("receive time out of range"))?;
    let labels = take.bytes()?.to_vec();
    let histograms = take.bytes()?.to_vec();
    let metadata = take.bytes()?.to_vec();
    let count = take.len()?;
    let mut series = Vec::with_capacity(count);
    let mut histogram_spans = Vec::new();
    let mut timestamps = Vec::new();
    for index in 0..count {
        let label_range = take.range(labels.len())?;
        let value = match take.u8()? {
            0 => SeriesValue::Float(take.f64()?),
            1 => {
                histogram_spans.push(take.range(histograms.len())?);
                SeriesValue::Histogram(histogram_spans.len() - 1)
            }
            _ => return Err(Malformed("unknown value kind")),
        };
        match take.u8()? {
            0 => {}
            1 => timestamps.push((index, take.i64()?)),
            _ => return Err(Malformed("bad timestamp tag")),
        }
        series.push(
            Series::new(label_range, value).ok_or(Malformed("series labels past the limit"))?,
        );
    }
    let count = take.len()?;
    let mut families = Vec::with_capacity(count);
    for _ in 0..count {
        let name = take.str()?;
        let series_range = take.range(series.len())?;
        let label_range = take.range(labels.len())?;
        families.push(Family {
            name,
            series: series_range,
            labels: label_range,
        });
    }
    let count = take.len()?;
    let mut extras = Vec::with_capacity(count);
    for _ in 0..count {
        let index = take.u32()? as usize;
        if index >= series.len() {
            return Err(Malformed("extras of a series out of range"));
        }
        let start_timestamp_ms = take.i64()?;
        let exemplar_count = take.len()?;
        let mut exemplars = Vec::with_capacity(exemplar_count);
        for _ in 0..exemplar_count {
            let label_count = take.len()?;
            let mut labels = Vec::with_capacity(label_count);
            for _ in 0..label_count {
                labels.push((take.str()?, take.str()?));
            }
            let value = take.f64()?;
            let timestamp_ms = match take.u8()? {
                0 => None,
                1 => Some(take.i64()?),
                _ => return Err(Malformed("bad exemplar timestamp tag")),
            };
            exemplars.push(Exemplar {
                labels,
                value,
                timestamp_ms,
            });
        }
        extras.push((
            index,
            Extras {
                start_timestamp_ms,
                exemplars,
            },
        ));
    }
    if !take.is_empty() {
        return Err(Malformed("bytes after the entry"));
    }
    Ok(Entry {
        seq,
        op,
        group,
        received_at,
        converted: Converted {
            labels,
            histograms,
            histogram_spans,
            series,
            timestamps,
            families,
            metadata,
            extras,
            too_large: false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::convert::convert;
    use crate::proto::client::{Gauge, LabelPair, Metric, MetricFamily, MetricType};

    fn sample_entry() -> Entry {
        let families = vec![MetricFamily {
            name: Some("jobs_done".into()),
            r#type: Some(MetricType::Gauge as i32),
            help: Some("Done.".into()),
            metric: vec![Metric {
                label: vec![LabelPair {
                    name: Some("kind".into()),
                    value: Some("batch".into()),
                }],
                gauge: Some(Gauge { value: Some(42.5) }),
                timestamp_ms: Some(1_700_000_000_000),
                ..Default::default()
            }],
            ..Default::default()
        }];
        let key = GroupingKey::new([("job".to_string(), "nightly".to_string())]);
        Entry {
            seq: 7,
            op: PushOp::Merge,
            group: GroupId {
                tenant: Some("team-a".into()),
                key: key.clone(),
            },
            received_at: UNIX_EPOCH + Duration::new(1_700_000_001, 123_456_789),
            converted: convert(&families, &key),
        }
    }

    fn encoded(entry: &Entry) -> Vec<u8> {
        let mut payload = entry.seq.to_le_bytes().to_vec();
        payload.extend(encode_push(
            entry.op,
            &entry.group,
            entry.received_at,
            &entry.converted,
        ));
        payload
    }

    #[test]
    fn an_entry_decodes_to_what_was_encoded() {
        let entry = sample_entry();
        assert_eq!(decode_entry(&encoded(&entry)), Ok(entry));
    }

    #[test]
    fn start_timestamps_and_exemplars_survive_the_queue() {
        let mut entry = sample_entry();
        entry.converted.extras = vec![(
            0,
            Extras {
                start_timestamp_ms: 1_699_999_000_000,
                exemplars: vec![
                    Exemplar {
                        labels: vec![("trace_id".into(), "abc".into())],
                        value: 1.5,
                        timestamp_ms: Some(1_700_000_000_500),
                    },
                    Exemplar {
                        labels: Vec::new(),
                        value: -2.0,
                        timestamp_ms: None,
                    },
                ],
            },
        )];
        assert_eq!(decode_entry(&encoded(&entry)), Ok(entry.clone()));
        let mut outside = entry;
        outside.converted.extras[0].0 = 5;
        assert!(decode_entry(&encoded(&outside)).is_err());
    }

    #[test]
    fn every_truncation_of_a_payload_is_an_error_not_a_panic() {
        let payload = encoded(&sample_entry());
        for cut in 0..payload.len() {
            assert!(decode_entry(&payload[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_range_outside_its_buffer_is_refused() {
        let entry = sample_entry();
        let mut broken = entry.clone();
        let value = broken.converted.series[0].value();
        broken.converted.series[0] = Series::new(0..10_000, value).unwrap();
        assert!(decode_entry(&encoded(&broken)).is_err());
    }
}
