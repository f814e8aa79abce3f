use prost::Message;

use super::*;
use crate::forward::wire::{self, STALE_NAN_BITS};
use crate::proto::prompb::metric_metadata::MetricType;
use crate::proto::write_v2::{Request, TimeSeries, metadata::MetricType as V2Type};

fn labels(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in pairs {
        wire::put_label(&mut out, name.as_bytes(), value.as_bytes());
    }
    out
}

fn decode(raw: &[u8]) -> Request {
    Request::decode(raw).unwrap()
}

fn label_pairs<'a>(request: &'a Request, series: &TimeSeries) -> Vec<(&'a str, &'a str)> {
    series
        .labels_refs
        .chunks(2)
        .map(|p| {
            (
                request.symbols[p[0] as usize].as_str(),
                request.symbols[p[1] as usize].as_str(),
            )
        })
        .collect()
}

#[test]
fn symbols_start_empty_are_unique_and_refs_resolve() {
    let mut raw = Vec::new();
    let a = labels(&[("__name__", "a_total"), ("job", "j")]);
    let b = labels(&[("__name__", "b"), ("job", "j"), ("x", "a_total")]);
    wire::put_float_series(&mut raw, &a, 1.0, 10);
    wire::put_float_series(&mut raw, &b, 2.0, 11);
    let (encoded, counts) = encode(&raw, []);
    let request = decode(&encoded);
    assert_eq!(request.symbols[0], "");
    let mut unique = request.symbols.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), request.symbols.len());
    assert_eq!(
        label_pairs(&request, &request.timeseries[1]),
        [("__name__", "b"), ("job", "j"), ("x", "a_total")]
    );
    assert_eq!(request.timeseries[0].samples[0].value, 1.0);
    assert_eq!(request.timeseries[0].samples[0].timestamp, 10);
    assert_eq!(request.timeseries[0].samples[0].start_timestamp, 0);
    assert_eq!(
        counts,
        Counts {
            samples: 2,
            histograms: 0,
            exemplars: 0
        }
    );
    assert_eq!(count_v1(&raw), counts);
}

#[test]
fn metadata_is_attached_per_series_by_family() {
    let mut raw = Vec::new();
    for name in ["h_bucket", "h_sum", "h_count", "g", "g_sum", "other"] {
        wire::put_float_series(&mut raw, &labels(&[("__name__", name)]), 1.0, 5);
    }
    wire::put_metadata(
        &mut raw,
        MetricType::Histogram as i32,
        "h",
        "a histogram",
        "seconds",
    );
    wire::put_metadata(&mut raw, MetricType::Gauge as i32, "g", "a gauge", "");
    let (encoded, _) = encode(&raw, []);
    let request = decode(&encoded);
    let metadata: Vec<_> = request
        .timeseries
        .iter()
        .map(|s| {
            let m = s.metadata.unwrap_or_default();
            (
                m.r#type(),
                request.symbols[m.help_ref as usize].as_str(),
                request.symbols[m.unit_ref as usize].as_str(),
            )
        })
        .collect();
    let histogram = (V2Type::Histogram, "a histogram", "seconds");
    assert_eq!(
        metadata,
        [
            histogram,
            histogram,
            histogram,
            (V2Type::Gauge, "a gauge", ""),
            // A gauge has no `_sum` series: g_sum is a family of its own.
            (V2Type::Unspecified, "", ""),
            (V2Type::Unspecified, "", ""),
        ]
    );
}

#[test]
fn start_timestamps_exemplars_histograms_and_stale_markers_carry_over() {
    let mut raw = Vec::new();
    let counter = labels(&[("__name__", "c_total")]);
    wire::put_float_series(&mut raw, &counter, 3.0, 2_000);
    wire::put_float_series(&mut raw, &counter, f64::from_bits(STALE_NAN_BITS), 3_000);
    let histogram = crate::proto::prompb::Histogram {
        count: Some(crate::proto::prompb::histogram::Count::CountInt(4)),
        sum: 2.5,
        schema: -53,
        custom_values: vec![0.5, 1.0],
        positive_spans: vec![crate::proto::prompb::BucketSpan {
            offset: 0,
            length: 3,
        }],
        positive_deltas: vec![1, 1, -1],
        ..Default::default()
    };
    let mut fields = Vec::new();
    histogram.encode_raw(&mut fields);
    wire::put_histogram_series(&mut raw, &labels(&[("__name__", "h")]), &fields, 4_000);
    let with_exemplar = Extras {
        start_timestamp_ms: 1_000,
        exemplars: vec![
            Exemplar {
                labels: vec![("trace_id".into(), "abc".into())],
                value: 0.5,
                timestamp_ms: None,
            },
            Exemplar {
                labels: vec![],
                value: 0.7,
                timestamp_ms: Some(1_500),
            },
        ],
    };
    let start_only = Extras {
        start_timestamp_ms: 900,
        exemplars: vec![],
    };
    let (encoded, counts) = encode(&raw, [(0, &with_exemplar), (2, &start_only)]);
    let request = decode(&encoded);
    let first = &request.timeseries[0];
    assert_eq!(first.samples[0].start_timestamp, 1_000);
    assert_eq!(first.exemplars.len(), 2);
    assert_eq!(
        label_pairs(
            &request,
            &TimeSeries {
                labels_refs: first.exemplars[0].labels_refs.clone(),
                ..Default::default()
            }
        ),
        [("trace_id", "abc")]
    );
    assert_eq!(first.exemplars[0].timestamp, 2_000);
    assert_eq!(first.exemplars[1].timestamp, 1_500);
    let stale = &request.timeseries[1].samples[0];
    assert_eq!(stale.value.to_bits(), STALE_NAN_BITS);
    assert_eq!(stale.start_timestamp, 0);
    let sent = &request.timeseries[2];
    assert!(sent.samples.is_empty());
    let h = &sent.histograms[0];
    assert_eq!(h.schema, -53);
    assert_eq!(h.custom_values, [0.5, 1.0]);
    assert_eq!(h.positive_deltas, [1, 1, -1]);
    assert_eq!(h.timestamp, 4_000);
    assert_eq!(h.start_timestamp, 900);
    assert_eq!(
        counts,
        Counts {
            samples: 2,
            histograms: 1,
            exemplars: 2
        }
    );
}

#[test]
fn a_1_0_decoder_sees_an_empty_request() {
    let mut raw = Vec::new();
    wire::put_float_series(&mut raw, &labels(&[("__name__", "up")]), 1.0, 5);
    let (encoded, _) = encode(&raw, []);
    let as_v1 = crate::proto::prompb::WriteRequest::decode(encoded.as_slice()).unwrap();
    assert!(as_v1.timeseries.is_empty() && as_v1.metadata.is_empty());
}

#[test]
fn written_counts_cover_what_was_sent() {
    let sent = Counts {
        samples: 3,
        histograms: 1,
        exemplars: 0,
    };
    assert!(sent.covers(&sent));
    assert!(!Counts { samples: 2, ..sent }.covers(&sent));
    assert!(Counts::default().is_empty());
}
