//! Varint-length-delimited `io.prometheus.client.MetricFamily` bodies (the
//! Go client's default push format).
//!
//! Contract, matching the Pushgateway 1.5.1 (`pbutil.ReadDelimited` in a
//! loop) where clients can tell:
//! - each message is preceded by its length as a varint of at most 5 bytes;
//!   a longer one is `invalid varint32 encountered`;
//! - the body ending inside a length prefix ends the stream (accepted, as
//!   the Pushgateway does); ending inside a message is `unexpected EOF`;
//! - a second family with the same name replaces the first (it keeps the
//!   first one's position in the output);
//! - a zero-length message is a family without a name or metrics.
//!
//! Known divergence: Go's protobuf library skips fields with a mismatched
//! wire type and does not check proto2 strings for UTF-8; prost rejects
//! both, so such bodies get a 400 naming the field instead of being stored.

mod indexed;

use std::collections::HashMap;

use prost::Message;

pub(crate) use indexed::decode_index;

use super::ParseError;
use crate::proto::client::MetricFamily;

/// The most bytes a length prefix may take (Go's `binary.MaxVarintLen32`).
const MAX_PREFIX_LEN: usize = 5;

/// Encodes `families` as a delimited protobuf body, as the Go client pushes
/// them: the inverse of [`decode_delimited`] for tests, benches and fuzz
/// targets that build protobuf bodies.
pub fn encode_delimited(families: &[MetricFamily]) -> Vec<u8> {
    let mut out = Vec::with_capacity(families.iter().map(|f| f.encoded_len() + 5).sum());
    for family in families {
        family
            .encode_length_delimited(&mut out)
            .expect("a Vec grows as needed");
    }
    out
}

/// Decodes a delimited protobuf body.
pub fn decode_delimited(body: &[u8]) -> Result<Vec<MetricFamily>, ParseError> {
    let mut families: Vec<MetricFamily> = Vec::new();
    let mut index_by_name: HashMap<String, usize> = HashMap::new();
    let mut pos = 0;
    let mut ordinal = 0usize;
    while pos < body.len() {
        let Some((length, prefix_len)) = read_prefix(&body[pos..])? else {
            // The body ended inside a length prefix: the Pushgateway reads
            // that as the end of the stream.
            break;
        };
        pos += prefix_len;
        ordinal += 1;
        let end = usize::try_from(length)
            .ok()
            .and_then(|length| pos.checked_add(length))
            .filter(|&end| end <= body.len())
            .ok_or_else(|| ParseError("unexpected EOF".to_string()))?;
        let family = MetricFamily::decode(&body[pos..end]).map_err(|err| {
            ParseError(format!("invalid protobuf MetricFamily #{ordinal}: {err}"))
        })?;
        pos = end;
        match index_by_name.get(family.name()) {
            Some(&index) => families[index] = family,
            None => {
                index_by_name.insert(family.name().to_string(), families.len());
                families.push(family);
            }
        }
    }
    Ok(families)
}

/// Reads a varint length prefix: `Ok(None)` when the input ends inside it.
fn read_prefix(bytes: &[u8]) -> Result<Option<(u64, usize)>, ParseError> {
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().take(MAX_PREFIX_LEN).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if bytes.len() < MAX_PREFIX_LEN {
        Ok(None)
    } else {
        Err(ParseError("invalid varint32 encountered".to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::client::{Metric, MetricType};

    const GO_PUSH: &[u8] = include_bytes!("../../tests/fixtures/go_push.bin");

    fn family(name: &str, help: &str) -> MetricFamily {
        MetricFamily {
            name: Some(name.into()),
            help: Some(help.into()),
            r#type: Some(MetricType::Gauge as i32),
            metric: vec![Metric::default()],
            unit: None,
        }
    }

    #[test]
    fn decodes_the_go_client_push_fixture() {
        let families = decode_delimited(GO_PUSH).expect("fixture decodes");
        let summary: Vec<(&str, &str, MetricType, usize)> = families
            .iter()
            .map(|f| (f.name(), f.help(), f.r#type(), f.metric.len()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "go_push_latency_seconds",
                    "A histogram.",
                    MetricType::Histogram,
                    1
                ),
                (
                    "go_push_requests_total",
                    "A counter.",
                    MetricType::Counter,
                    2
                ),
                ("go_push_size_bytes", "A summary.", MetricType::Summary, 1),
                (
                    "go_push_temperature_celsius",
                    "A gauge.",
                    MetricType::Gauge,
                    1
                ),
            ]
        );
        let histogram = families[0].metric[0].histogram.as_ref().expect("histogram");
        assert_eq!(histogram.sample_count, Some(4));
        assert_eq!(histogram.sample_sum, Some(2.95));
        let buckets: Vec<(f64, u64)> = histogram
            .bucket
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        assert_eq!(buckets, [(0.1, 1), (0.5, 2), (1.0, 3)]);
        let counters: Vec<(&str, &str, f64)> = families[1]
            .metric
            .iter()
            .map(|m| {
                (
                    m.label[0].name(),
                    m.label[0].value(),
                    m.counter.as_ref().map(|c| c.value()).unwrap_or(-1.0),
                )
            })
            .collect();
        assert_eq!(counters, [("path", "/a", 3.0), ("path", "/b", 5.0)]);
        let summary = families[2].metric[0].summary.as_ref().expect("summary");
        assert_eq!(summary.sample_count, Some(3));
        assert_eq!(summary.sample_sum, Some(600.0));
        let quantiles: Vec<(f64, f64)> = summary
            .quantile
            .iter()
            .map(|q| (q.quantile(), q.value()))
            .collect();
        assert_eq!(quantiles, [(0.5, 200.0), (0.99, 300.0)]);
    }

    #[test]
    fn the_last_family_with_a_name_wins() {
        let body = encode_delimited(&[
            family("a", "first"),
            family("b", "b"),
            family("a", "second"),
        ]);
        let families = decode_delimited(&body).expect("decodes");
        let got: Vec<(&str, &str)> = families.iter().map(|f| (f.name(), f.help())).collect();
        assert_eq!(got, [("a", "second"), ("b", "b")]);
    }

    #[test]
    fn empty_bodies_and_empty_messages() {
        assert_eq!(decode_delimited(b""), Ok(vec![]));
        let families = decode_delimited(b"\x00").expect("empty message");
        assert_eq!(families, [MetricFamily::default()]);
        // Ending inside a length prefix ends the stream (as the Pushgateway).
        assert_eq!(decode_delimited(b"\x80"), Ok(vec![]));
    }

    #[test]
    fn garbage_is_named_as_the_pushgateway_names_it() {
        // Messages observed from the Pushgateway 1.5.1 for the same bodies.
        assert_eq!(
            decode_delimited(b"garbage").unwrap_err().0,
            "unexpected EOF"
        );
        assert_eq!(
            decode_delimited(b"\x05abc").unwrap_err().0,
            "unexpected EOF"
        );
        assert_eq!(
            decode_delimited(&GO_PUSH[..GO_PUSH.len() - 3])
                .unwrap_err()
                .0,
            "unexpected EOF"
        );
        assert_eq!(
            decode_delimited(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")
                .unwrap_err()
                .0,
            "invalid varint32 encountered"
        );
        let bad_wire_type = decode_delimited(b"\x02\x0f\x00").unwrap_err().0;
        assert!(
            bad_wire_type.starts_with("invalid protobuf MetricFamily #1: "),
            "{bad_wire_type}"
        );
        let not_utf8 = decode_delimited(b"\x04\x0a\x02\xc3\x28").unwrap_err().0;
        assert!(not_utf8.contains("UTF-8"), "{not_utf8}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decode_delimited(&body);
        }

        #[test]
        fn mutated_fixture_never_panics(at in 0..GO_PUSH.len(), byte in proptest::prelude::any::<u8>()) {
            let mut body = GO_PUSH.to_vec();
            body[at] = byte;
            let _ = decode_delimited(&body);
        }
    }
}
