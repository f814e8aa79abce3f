//! Parser throughput: text 0.0.4 (`parse`: the forward path's parse, an
//! index into the body, `exposition::index`; `parse_owned`: the full parse
//! to `MetricFamily`, which the cache stores; `count_samples`: the
//! syntax-only scan), OpenMetrics, and delimited protobuf.
//!
//! Run with `cargo bench --bench parse`. Throughput is reported in bytes
//! (MB/s) and, in the `series` group, in samples per second.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use pushrelay::exposition::{protobuf, text};

const BENCH_1000: &[u8] = include_bytes!("../tests/fixtures/bench_1000.txt");

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

fn bench_text(c: &mut Criterion) {
    let generated = generated_10k();
    let inputs: [(&str, &[u8]); 2] = [
        ("bench_1000", BENCH_1000),
        ("generated_10k", generated.as_bytes()),
    ];
    let mut bytes = c.benchmark_group("text_bytes");
    for (name, body) in inputs {
        bytes.throughput(Throughput::Bytes(body.len() as u64));
        let body_text = std::str::from_utf8(body).expect("bench bodies are text");
        bytes.bench_function(format!("parse/{name}"), |b| {
            b.iter(|| text::parse_index(black_box(body_text)).map(|i| i.is_some()))
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
    group.finish();
}

criterion_group!(benches, bench_text, bench_openmetrics, bench_protobuf);
criterion_main!(benches);
