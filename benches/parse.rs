//! Parser throughput: text 0.0.4 (`parse`: the index into the body,
//! `exposition::index`; `parse_body`: the forward path's parse of a body,
//! indexed or, when the index cannot hold it, owned; `parse_owned`: the
//! full parse to `MetricFamily`, which the cache stores; `count_samples`:
//! the syntax-only scan), OpenMetrics, and delimited protobuf (the bodies
//! above re-encoded, and the Go client's push `go_push`), OpenMetrics and
//! protobuf owned and through `parse_body` (into the index).
//!
//! Group `push_parse_check_convert`: `Push::from_body` (parse and check)
//! and `convert::convert_families`, the forward path's CPU per push before
//! encoding, for a body of each format.
//!
//! Run with `cargo bench --bench parse`. Throughput is reported in bytes
//! (MB/s) and, in the `series` group, in samples per second.

use std::fmt::Write as _;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use pushrelay::config::PushConfig;
use pushrelay::exposition::{BodyFormat, parse_body, protobuf, text};
use pushrelay::forward::convert;
use pushrelay::push::{GroupingKey, Push, PushOp};

const BENCH_1000: &[u8] = include_bytes!("../tests/fixtures/bench_1000.txt");
/// The Go client's push (`push.New(...)`): a histogram, a counter, a
/// summary and a gauge as delimited protobuf.
const GO_PUSH: &[u8] = include_bytes!("../tests/fixtures/go_push.bin");

/// 10,000 series in 100 counter families of 100 series, two labels each,
/// shaped like what batch jobs push.
fn generated_10k() -> String {
    let mut body = String::new();
    for family in 0..100 {
        let _ = writeln!(
            body,
            "# HELP job_metric_{family}_total Synthetic counter {family}."
        );
        let _ = writeln!(body, "# TYPE job_metric_{family}_total counter");
        for series in 0..100 {
            let _ = writeln!(
                body,
                "job_metric_{family}_total{{path=\"/api/v1/item/{series:04}\",code=\"{}\"}} {}",
                200 + series % 5,
                (family * 7919 + series * 104729) % 1_000_003
            );
        }
    }
    body
}

/// 1,000 histograms (20 families of 50, two labels each) of 10 buckets,
/// as client libraries write them: 14,000 lines.
fn histograms_1000() -> String {
    const BOUNDS: [&str; 11] = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf",
    ];
    let mut body = String::new();
    for family in 0..20 {
        let name = format!("job_request_{family}_seconds");
        let _ = writeln!(body, "# HELP {name} Synthetic histogram {family}.");
        let _ = writeln!(body, "# TYPE {name} histogram");
        for series in 0..50 {
            let labels = format!(
                "path=\"/api/v1/item/{series:02}\",code=\"{}\"",
                200 + series % 5
            );
            let mut count = 0;
            for (i, bound) in BOUNDS.iter().enumerate() {
                count += (family + series + i) % 7;
                let _ = writeln!(body, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(body, "{name}_sum{{{labels}}} {}.{}", count * 3, series);
            let _ = writeln!(body, "{name}_count{{{labels}}} {count}");
        }
    }
    body
}

fn bench_text(c: &mut Criterion) {
    let generated = generated_10k();
    let histograms = histograms_1000();
    let inputs: [(&str, &[u8]); 3] = [
        ("bench_1000", BENCH_1000),
        ("generated_10k", generated.as_bytes()),
        ("histograms_1000", histograms.as_bytes()),
    ];
    let mut bytes = c.benchmark_group("text_bytes");
    for (name, body) in inputs {
        bytes.throughput(Throughput::Bytes(body.len() as u64));
        let body_text = std::str::from_utf8(body).expect("bench bodies are text");
        bytes.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| text::parse_index(black_box(body_text)).map(|i| i.is_some()))
        });
        bytes.bench_function(format!("parse_body/{name}"), |b| {
            b.iter(|| {
                let body = Bytes::copy_from_slice(black_box(body));
                parse_body(BodyFormat::Text, body).map(|f| f.metric_count())
            })
        });
        bytes.bench_function(format!("parse_owned/{name}"), |b| {
            b.iter(|| text::parse(black_box(body)).map(|f| f.len()))
        });
        bytes.bench_function(format!("count_samples/{name}"), |b| {
            b.iter(|| text::count_samples(black_box(body)))
        });
    }
    bytes.finish();

    let mut series = c.benchmark_group("text_series");
    for (name, body) in inputs {
        let samples = text::count_samples(body).expect("bench bodies are valid");
        series.throughput(Throughput::Elements(samples as u64));
        let body_text = std::str::from_utf8(body).expect("bench bodies are text");
        series.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| text::parse_index(black_box(body_text)).map(|i| i.is_some()))
        });
        series.bench_function(format!("parse_owned/{name}"), |b| {
            b.iter(|| text::parse(black_box(body)).map(|f| f.len()))
        });
    }
    series.finish();
}

fn bench_openmetrics(c: &mut Criterion) {
    // The same series as OpenMetrics: the family is named without `_total`.
    let mut body = generated_10k()
        .replace("_total counter", " counter")
        .replace("_total Synthetic", " Synthetic");
    body.push_str("# EOF\n");
    let mut group = c.benchmark_group("openmetrics_bytes");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("parse/generated_10k", |b| {
        b.iter(|| text::parse_openmetrics(black_box(body.as_bytes())).map(|f| f.len()))
    });
    group.bench_function("parse_index/generated_10k", |b| {
        b.iter(|| text::parse_openmetrics_index(black_box(&body)).map(|i| i.is_some()))
    });
    group.bench_function("parse_body/generated_10k", |b| {
        b.iter(|| {
            let body = Bytes::copy_from_slice(black_box(body.as_bytes()));
            parse_body(BodyFormat::OpenMetrics, body).map(|f| f.metric_count())
        })
    });
    group.finish();
}

fn bench_protobuf(c: &mut Criterion) {
    let families = text::parse(generated_10k().as_bytes()).expect("valid");
    let mut body = Vec::new();
    for family in &families {
        family
            .encode_length_delimited(&mut body)
            .expect("Vec grows as needed");
    }
    let mut group = c.benchmark_group("protobuf_bytes");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("decode_delimited/generated_10k", |b| {
        b.iter(|| protobuf::decode_delimited(black_box(&body)).map(|f| f.len()))
    });
    group.bench_function("parse_body/generated_10k", |b| {
        b.iter(|| {
            let body = Bytes::copy_from_slice(black_box(&body));
            parse_body(BodyFormat::ProtobufDelimited, body).map(|f| f.metric_count())
        })
    });
    group.throughput(Throughput::Bytes(GO_PUSH.len() as u64));
    group.bench_function("decode_delimited/go_push", |b| {
        b.iter(|| protobuf::decode_delimited(black_box(GO_PUSH)).map(|f| f.len()))
    });
    group.bench_function("parse_body/go_push", |b| {
        b.iter(|| {
            let body = Bytes::copy_from_slice(black_box(GO_PUSH));
            parse_body(BodyFormat::ProtobufDelimited, body).map(|f| f.metric_count())
        })
    });
    group.finish();
}

/// Delimited protobuf of the families of a text body.
fn protobuf_of(text_body: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for family in text::parse(text_body).expect("valid") {
        family
            .encode_length_delimited(&mut body)
            .expect("Vec grows as needed");
    }
    body
}

fn bench_push(c: &mut Criterion) {
    let histograms = histograms_1000();
    // The same series as OpenMetrics: a counter family is named without
    // `_total`.
    let mut openmetrics = std::str::from_utf8(BENCH_1000)
        .expect("text")
        .replace("_total counter", " counter")
        .replace("_total Synthetic", " Synthetic");
    openmetrics.push_str("# EOF\n");
    let inputs: [(&str, BodyFormat, Vec<u8>); 5] = [
        ("text/bench_1000", BodyFormat::Text, BENCH_1000.to_vec()),
        (
            "text/histograms_1000",
            BodyFormat::Text,
            histograms.clone().into_bytes(),
        ),
        (
            "openmetrics/bench_1000",
            BodyFormat::OpenMetrics,
            openmetrics.into_bytes(),
        ),
        (
            "protobuf/bench_1000",
            BodyFormat::ProtobufDelimited,
            protobuf_of(BENCH_1000),
        ),
        (
            "protobuf/go_push",
            BodyFormat::ProtobufDelimited,
            GO_PUSH.to_vec(),
        ),
    ];
    let key = GroupingKey::new([("job".to_string(), "bench".to_string())]);
    let config = PushConfig::default();
    let mut group = c.benchmark_group("push_parse_check_convert");
    for (name, format, body) in &inputs {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(*name, |b| {
            b.iter(|| parse_check_convert(*format, black_box(body), &key, &config))
        });
    }
    group.finish();
}

/// What the forward path does with a push's body before encoding it.
#[inline(never)]
fn parse_check_convert(
    format: BodyFormat,
    body: &[u8],
    key: &GroupingKey,
    config: &PushConfig,
) -> convert::Converted {
    let push = Push::from_body(PushOp::Merge, key.clone(), format, body, config).expect("valid");
    convert::convert_families(&push.families, &push.key)
}

criterion_group!(
    benches,
    bench_text,
    bench_openmetrics,
    bench_protobuf,
    bench_push
);
criterion_main!(benches);
