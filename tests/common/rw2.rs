//! What the test receiver knows about Remote-Write 2.0: recognising a 2.0
//! request by its headers, checking it against every sender rule of the
//! reference page (remote-write-2.md, "Rules for the sender" and the
//! compliance suite's rows), and reading it as the equivalent 1.0
//! `WriteRequest` so the tests' 1.0 helpers see the same series.
//!
//! The message is decoded with the types generated from pushrelay's
//! `proto/io/prometheus/write/v2/types.proto`; the rules are written here
//! from the reference page, not from the encoder.

use http::HeaderMap;
use prost::Message;
use pushrelay::proto::prompb::{self, WriteRequest};
use pushrelay::proto::write_v2::{Request, TimeSeries};

/// The content type of a 2.0 request.
pub const V2_CONTENT_TYPE: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

/// Whether the request says it carries a 2.0 message.
pub fn is_v2(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("proto=io.prometheus.write.v2.Request"))
}

/// What a receiver reports written for a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub samples: u64,
    pub histograms: u64,
    pub exemplars: u64,
}

/// What the request carries, as the Written headers count it.
pub fn counts(request: &Request) -> Written {
    let mut written = Written::default();
    for series in &request.timeseries {
        written.samples += series.samples.len() as u64;
        written.histograms += series.histograms.len() as u64;
        written.exemplars += series.exemplars.len() as u64;
    }
    written
}

/// Every rule of the reference page the request (and its headers) breaks,
/// each named after its compliance-suite row.
pub fn violations(method: &http::Method, headers: &HeaderMap, request: &Request) -> Vec<String> {
    let mut problems = Vec::new();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if method != http::Method::POST {
        problems.push(format!("protocol/POST: method {method}"));
    }
    if header("content-type") != Some(V2_CONTENT_TYPE) {
        problems.push(format!(
            "protocol/content type: {:?}",
            header("content-type")
        ));
    }
    if header("content-encoding") != Some("snappy") {
        problems.push("protocol/snappy encoding: Content-Encoding is not snappy".into());
    }
    if header("x-prometheus-remote-write-version") != Some("2.0.0") {
        problems.push(format!(
            "protocol/version header: {:?}",
            header("x-prometheus-remote-write-version")
        ));
    }
    if header("user-agent").is_none_or(str::is_empty) {
        problems.push("protocol/User-Agent: missing".into());
    }
    let symbols = &request.symbols;
    if symbols.first().map(String::as_str) != Some("") {
        problems.push("symbols/empty string at index 0: it is not".into());
    }
    let valid = |r: u32| (r as usize) < symbols.len();
    for (i, series) in request.timeseries.iter().enumerate() {
        let refs = &series.labels_refs;
        if refs.len() % 2 != 0 {
            problems.push(format!(
                "symbols/even length: series {i} has {}",
                refs.len()
            ));
            continue;
        }
        if let Some(bad) = refs.iter().find(|&&r| !valid(r)) {
            problems.push(format!("symbols/valid indices: series {i} refers to {bad}"));
            continue;
        }
        let names: Vec<&str> = refs
            .chunks(2)
            .map(|p| symbols[p[0] as usize].as_str())
            .collect();
        if !names.is_sorted() {
            problems.push(format!("labels/sorted: series {i}: {names:?}"));
        }
        if names.windows(2).any(|w| w[0] == w[1]) {
            problems.push(format!("labels/no duplicates: series {i}: {names:?}"));
        }
        if names.iter().any(|n| n.is_empty()) {
            problems.push(format!("labels/non-empty names: series {i}"));
        }
        if !names.contains(&"__name__") {
            problems.push(format!("labels/__name__ present: series {i}: {names:?}"));
        }
        if !series.samples.is_empty() && !series.histograms.is_empty() {
            problems.push(format!("samples or histograms, never both: series {i}"));
        }
        if series.samples.is_empty() && series.histograms.is_empty() {
            problems.push(format!(
                "a series carries a sample or histogram: series {i}"
            ));
        }
        let mut timestamps: Vec<i64> = series.samples.iter().map(|s| s.timestamp).collect();
        timestamps.extend(series.histograms.iter().map(|h| h.timestamp));
        if !timestamps.is_sorted() {
            problems.push(format!("samples/order within a series: series {i}"));
        }
        if let Some(metadata) = &series.metadata
            && (!valid(metadata.help_ref) || !valid(metadata.unit_ref))
        {
            problems.push(format!("metadata/help refs valid: series {i}"));
        }
        for exemplar in &series.exemplars {
            if exemplar.labels_refs.len() % 2 != 0 {
                problems.push(format!("exemplars/even label refs: series {i}"));
            }
            if exemplar.labels_refs.iter().any(|&r| !valid(r)) {
                problems.push(format!("exemplars/valid label refs: series {i}"));
            }
            if exemplar.timestamp == 0 {
                problems.push(format!("exemplars/timestamp: series {i} has none"));
            }
        }
        for histogram in &series.histograms {
            let custom_schema = histogram.schema == -53;
            let has_bounds = !histogram.custom_values.is_empty();
            if custom_schema != has_bounds {
                problems.push(format!(
                    "histograms/custom values only with schema -53: series {i}"
                ));
            }
            if !histogram.custom_values.is_sorted() {
                problems.push(format!("histograms/custom values ascending: series {i}"));
            }
        }
    }
    problems
}

/// The labels of a 2.0 series as (name, value) pairs.
pub fn labels<'r>(request: &'r Request, series: &TimeSeries) -> Vec<(&'r str, &'r str)> {
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

/// The 1.0 `WriteRequest` carrying the same series (labels, samples,
/// histograms, exemplars), with one `MetricMetadata` per series that has
/// metadata, named after the series. Call only on a request without
/// violations.
pub fn as_v1(request: &Request) -> WriteRequest {
    let mut v1 = WriteRequest::default();
    for series in &request.timeseries {
        let labels: Vec<prompb::Label> = labels(request, series)
            .into_iter()
            .map(|(name, value)| prompb::Label {
                name: name.into(),
                value: value.into(),
            })
            .collect();
        let name = labels
            .iter()
            .find(|l| l.name == "__name__")
            .map(|l| l.value.clone())
            .unwrap_or_default();
        // 2.0 kept the 1.0 histogram's field numbers (and added 17, which
        // a 1.0 decoder skips).
        let histograms = series
            .histograms
            .iter()
            .map(|h| prompb::Histogram::decode(h.encode_to_vec().as_slice()).unwrap())
            .collect();
        let exemplars = series
            .exemplars
            .iter()
            .map(|e| prompb::Exemplar {
                labels: e
                    .labels_refs
                    .chunks(2)
                    .map(|p| prompb::Label {
                        name: request.symbols[p[0] as usize].clone(),
                        value: request.symbols[p[1] as usize].clone(),
                    })
                    .collect(),
                value: e.value,
                timestamp: e.timestamp,
            })
            .collect();
        v1.timeseries.push(prompb::TimeSeries {
            labels,
            samples: series
                .samples
                .iter()
                .map(|s| prompb::Sample {
                    value: s.value,
                    timestamp: s.timestamp,
                })
                .collect(),
            exemplars,
            histograms,
        });
        if let Some(metadata) = &series.metadata {
            v1.metadata.push(prompb::MetricMetadata {
                r#type: metadata.r#type,
                metric_family_name: name,
                help: request.symbols[metadata.help_ref as usize].clone(),
                unit: request.symbols[metadata.unit_ref as usize].clone(),
            });
        }
    }
    v1
}
