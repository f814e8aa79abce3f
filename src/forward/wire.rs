//! Hand-rolled protobuf encoding of remote_write 1.0 `WriteRequest` parts.
//!
//! The forwarder never builds `prompb` structs for float series: it writes
//! the wire bytes directly from the borrowed push, so the hot path does no
//! per-label allocation. The trick that makes batching cheap is that a
//! protobuf message is the concatenation of its fields: a `WriteRequest` is
//! just its `timeseries` (field 1) and `metadata` (field 3) entries back to
//! back, so requests are built by concatenating per-push fragments.
//!
//! Contract: every function appends to `out` and writes a valid encoding of
//! the field it names; lengths are computed up front, never patched.

/// `TimeSeries.labels` / `WriteRequest.timeseries` / `Label.name`: field 1, LEN.
const TAG_FIELD1_LEN: u8 = 0x0a;
/// `TimeSeries.samples` / `Label.value` / `MetricMetadata.metric_family_name`: field 2, LEN.
const TAG_FIELD2_LEN: u8 = 0x12;
/// `WriteRequest.metadata`: field 3, LEN.
const TAG_FIELD3_LEN: u8 = 0x1a;
/// `TimeSeries.histograms` / `MetricMetadata.help`: field 4, LEN.
const TAG_FIELD4_LEN: u8 = 0x22;
/// `MetricMetadata.unit`: field 5, LEN.
const TAG_FIELD5_LEN: u8 = 0x2a;
/// `Sample.value`: field 1, I64.
const TAG_SAMPLE_VALUE: u8 = 0x09;
/// `Sample.timestamp`: field 2, VARINT.
const TAG_SAMPLE_TIMESTAMP: u8 = 0x10;
/// `MetricMetadata.type`: field 1, VARINT.
const TAG_METADATA_TYPE: u8 = 0x08;
/// `Histogram.timestamp`: field 15, VARINT.
const TAG_HISTOGRAM_TIMESTAMP: u8 = 0x78;

/// The stale-marker NaN: the one bit pattern Prometheus reads as "series
/// ended" (`model/value/value.go`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Bytes a varint encoding of `v` takes.
pub fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 still takes one byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends `v` as a protobuf varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes of a LEN field whose payload has `len` bytes (tag included).
fn len_field_size(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

fn put_len_field(out: &mut Vec<u8>, tag: u8, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.push(tag);
    put_varint(out, len as u64);
    for part in parts {
        out.extend_from_slice(part);
    }
}

/// Appends one `TimeSeries.labels` entry.
#[inline]
pub fn put_label(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    put_label_suffixed(out, name, value, b"");
}

/// Appends one `TimeSeries.labels` entry whose value is `value` followed by
/// `suffix` (so `foo` + `_bucket` needs no allocation).
#[inline]
pub fn put_label_suffixed(out: &mut Vec<u8>, name: &[u8], value: &[u8], suffix: &[u8]) {
    let value_len = value.len() + suffix.len();
    // Short labels (nearly all of them) have one-byte lengths: the headers
    // are written whole, after a single reservation, and no varint length
    // is computed (two tags, two one-byte lengths).
    let short_label_len = name.len() + value_len + 4;
    if short_label_len < 0x80 {
        let label_len = short_label_len;
        out.reserve(2 + label_len);
        out.extend_from_slice(&[
            TAG_FIELD1_LEN,
            label_len as u8,
            TAG_FIELD1_LEN,
            name.len() as u8,
        ]);
        out.extend_from_slice(name);
        out.extend_from_slice(&[TAG_FIELD2_LEN, value_len as u8]);
    } else {
        let label_len = len_field_size(name.len()) + len_field_size(value_len);
        out.push(TAG_FIELD1_LEN);
        put_varint(out, label_len as u64);
        put_len_field(out, TAG_FIELD1_LEN, &[name]);
        out.push(TAG_FIELD2_LEN);
        put_varint(out, value_len as u64);
    }
    out.extend_from_slice(value);
    if !suffix.is_empty() {
        out.extend_from_slice(suffix);
    }
}

/// Size of an encoded `Sample { value, timestamp }` message.
fn sample_len(timestamp_ms: i64) -> usize {
    1 + 8 + 1 + varint_len(timestamp_ms as u64)
}

/// Appends one `WriteRequest.timeseries` entry: the pre-encoded `labels`
/// entries and a single float sample.
pub fn put_float_series(out: &mut Vec<u8>, labels: &[u8], value: f64, timestamp_ms: i64) {
    let sample = sample_len(timestamp_ms);
    let series = labels.len() + len_field_size(sample);
    // The sample is built whole on the stack and appended at once: one
    // capacity check instead of one per byte pushed.
    let mut tail = [0u8; 2 + SAMPLE_MAX_LEN];
    tail[0] = TAG_FIELD2_LEN;
    tail[1] = sample as u8;
    tail[2] = TAG_SAMPLE_VALUE;
    tail[3..11].copy_from_slice(&value.to_bits().to_le_bytes());
    tail[11] = TAG_SAMPLE_TIMESTAMP;
    let tail_len = 12 + write_varint(&mut tail[12..], timestamp_ms as u64);
    out.reserve(1 + MAX_VARINT_LEN + series);
    out.push(TAG_FIELD1_LEN);
    put_varint(out, series as u64);
    out.extend_from_slice(labels);
    out.extend_from_slice(&tail[..tail_len]);
}

/// The longest varint (a `u64`).
const MAX_VARINT_LEN: usize = 10;

/// The longest encoded `Sample { value, timestamp }` (see [`sample_len`]):
/// short enough that its length takes one byte.
const SAMPLE_MAX_LEN: usize = 1 + 8 + 1 + MAX_VARINT_LEN;

/// Writes `v` as a varint at the start of `out` (at least
/// [`MAX_VARINT_LEN`] long); returns its length.
fn write_varint(out: &mut [u8], mut v: u64) -> usize {
    let mut at = 0;
    while v >= 0x80 {
        out[at] = (v as u8) | 0x80;
        v >>= 7;
        at += 1;
    }
    out[at] = v as u8;
    at + 1
}

/// Appends one `WriteRequest.timeseries` entry: the pre-encoded `labels`
/// entries and one native histogram, given as its encoded fields without a
/// timestamp (the timestamp field is appended here).
pub fn put_histogram_series(out: &mut Vec<u8>, labels: &[u8], histogram: &[u8], timestamp_ms: i64) {
    let histogram_len = histogram.len() + 1 + varint_len(timestamp_ms as u64);
    let series = labels.len() + len_field_size(histogram_len);
    out.push(TAG_FIELD1_LEN);
    put_varint(out, series as u64);
    out.extend_from_slice(labels);
    out.push(TAG_FIELD4_LEN);
    put_varint(out, histogram_len as u64);
    out.extend_from_slice(histogram);
    out.push(TAG_HISTOGRAM_TIMESTAMP);
    put_varint(out, timestamp_ms as u64);
}

/// Bytes [`put_float_series`] appends.
pub fn float_series_size(labels_len: usize, timestamp_ms: i64) -> usize {
    len_field_size(labels_len + len_field_size(sample_len(timestamp_ms)))
}

/// Bytes [`put_histogram_series`] appends.
pub fn histogram_series_size(labels_len: usize, histogram_len: usize, timestamp_ms: i64) -> usize {
    let histogram = histogram_len + 1 + varint_len(timestamp_ms as u64);
    len_field_size(labels_len + len_field_size(histogram))
}

/// Appends one `WriteRequest.metadata` entry.
pub fn put_metadata(out: &mut Vec<u8>, metric_type: i32, name: &str, help: &str, unit: &str) {
    let mut len = 1 + varint_len(metric_type as u64) + len_field_size(name.len());
    if !help.is_empty() {
        len += len_field_size(help.len());
    }
    if !unit.is_empty() {
        len += len_field_size(unit.len());
    }
    out.push(TAG_FIELD3_LEN);
    put_varint(out, len as u64);
    out.push(TAG_METADATA_TYPE);
    put_varint(out, metric_type as u64);
    put_len_field(out, TAG_FIELD2_LEN, &[name.as_bytes()]);
    if !help.is_empty() {
        put_len_field(out, TAG_FIELD4_LEN, &[help.as_bytes()]);
    }
    if !unit.is_empty() {
        put_len_field(out, TAG_FIELD5_LEN, &[unit.as_bytes()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::prompb::{WriteRequest, metric_metadata::MetricType};
    use prost::Message;

    #[test]
    fn varint_len_matches_encoding() {
        for v in [0, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
        }
    }

    #[test]
    fn fragments_decode_as_a_write_request() {
        let mut labels = Vec::new();
        put_label_suffixed(&mut labels, b"__name__", b"up", b"_total");
        put_label(&mut labels, b"job", b"j");
        let long = "v".repeat(200);
        put_label(&mut labels, b"long", long.as_bytes());
        let mut body = Vec::new();
        put_float_series(&mut body, &labels, 1.5, 1_700_000_000_123);
        put_metadata(
            &mut body,
            MetricType::Counter as i32,
            "up_total",
            "help",
            "",
        );
        put_float_series(&mut body, &labels, f64::from_bits(STALE_NAN_BITS), -1);
        for ts in [0, 1_700_000_000_123, -1] {
            let mut one = Vec::new();
            put_float_series(&mut one, &labels, 2.0, ts);
            assert_eq!(one.len(), float_series_size(labels.len(), ts), "{ts}");
            for histogram_len in [0, 3, 200] {
                let histogram = vec![0; histogram_len];
                let mut one = Vec::new();
                put_histogram_series(&mut one, &labels, &histogram, ts);
                let size = histogram_series_size(labels.len(), histogram_len, ts);
                assert_eq!(one.len(), size, "{ts} {histogram_len}");
            }
        }
        let request = WriteRequest::decode(body.as_slice()).unwrap();
        assert_eq!(request.timeseries.len(), 2);
        let series = &request.timeseries[0];
        assert_eq!(series.labels[0].name, "__name__");
        assert_eq!(series.labels[0].value, "up_total");
        assert_eq!(series.labels[1].value, "j");
        assert_eq!(series.labels[2].value, long);
        assert_eq!(series.samples[0].value, 1.5);
        assert_eq!(series.samples[0].timestamp, 1_700_000_000_123);
        let stale = &request.timeseries[1].samples[0];
        assert_eq!(stale.value.to_bits(), STALE_NAN_BITS);
        assert_eq!(stale.timestamp, -1);
        assert_eq!(request.metadata[0].metric_family_name, "up_total");
        assert_eq!(request.metadata[0].help, "help");
        assert_eq!(request.metadata[0].r#type, MetricType::Counter as i32);
    }
}
