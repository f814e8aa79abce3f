//! Forwarding cost of one 1,000-series push (tests/fixtures/bench_1000.txt,
//! the body of the Pushgateway baseline), stage by stage and end to end.
//!
//! - `convert`: `forward::convert::convert_families` of the parsed,
//!   validated push (the text body's index, `exposition::index`);
//!   `convert_owned`: the same push in the owned model, as protobuf and
//!   OpenMetrics pushes are;
//! - `parse_check_convert`: `Push::from_body` (parse and validate) and
//!   the conversion, the forward path's CPU before encoding;
//! - `encode`: the converted series written as `WriteRequest` bytes with the
//!   `forward::wire` writers, as the shard worker does (one timestamp for
//!   the push, metadata appended);
//! - `snappy`: `forward::send::compress` of that request;
//! - `convert_encode_snappy`: the three together, the CPU a push costs
//!   before it reaches the network;
//! - `forwarder_sync`: `Forwarder::forward` with `ack = sync` (pushes to
//!   100 groups in turn) against an in-process receiver that decompresses
//!   and answers 204, so it includes the queue, the shard worker, HTTP/1.1
//!   on loopback and the receiver;
//! - `*_relabel_5_rules`: the same with two external labels and five
//!   typical `write_relabel_configs` ([`RELABEL`]: two drops, a keep, a
//!   labeldrop, a replace; no series dropped, every series rewritten), the
//!   cost relabeling adds per sample.
//!
//! Group `protocol_1000_series`: the same converted request in each
//! remote_write protocol, encode + snappy (`v1`: the 1.0 bytes above;
//! `v2`: those bytes plus `forward::wire_v2::encode` into the 2.0 message);
//! the byte sizes of both, compressed and not, are printed once.
//!
//! Text parsing is measured in benches/parse.rs. CI runs this once per
//! benchmark with `cargo bench --bench forward -- --test`.

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use pushrelay::config::{PushConfig, RemoteWriteConfig};
use pushrelay::exposition::BodyFormat;
use pushrelay::forward::Forwarder;
use pushrelay::forward::convert::{self, Converted, SeriesValue};
use pushrelay::forward::relabel::Relabeler;
use pushrelay::forward::{send, wire, wire_v2};
use pushrelay::push::{GroupingKey, Push, PushOp};
use tokio::net::TcpListener;

const BODY_1000: &[u8] = include_bytes!("../tests/fixtures/bench_1000.txt");
const SERIES: u64 = 1000;
/// How many groups `forwarder_sync` rotates its pushes over.
const GROUPS: usize = 100;

/// Two external labels and five typical rules, none of which drops a
/// series of the fixture (a config file; scripts/bench.sh loads the same).
const RELABEL: &str = include_str!("relabel_5_rules.yaml");

/// The backend settings with [`RELABEL`].
fn relabeled(config: RemoteWriteConfig) -> RemoteWriteConfig {
    #[derive(serde::Deserialize)]
    struct File {
        remote_write: RemoteWriteConfig,
    }
    let relabel: File = serde_yaml::from_str(RELABEL).expect("the rules parse");
    RemoteWriteConfig {
        external_labels: relabel.remote_write.external_labels,
        write_relabel_configs: relabel.remote_write.write_relabel_configs,
        ..config
    }
}

/// The fixture as the push handler hands it to the sinks.
fn push_1000() -> Push {
    push_1000_of("fixed")
}

/// [`push_1000`] to the group whose `instance` is `instance`.
fn push_1000_of(instance: &str) -> Push {
    let key = GroupingKey::new([
        ("job".to_string(), "bench".to_string()),
        ("instance".to_string(), instance.to_string()),
    ]);
    Push::from_body(
        PushOp::Merge,
        key,
        BodyFormat::Text,
        BODY_1000,
        &PushConfig::default(),
    )
    .expect("the fixture is valid")
}

/// [`push_1000`] in the owned model (`MetricFamily` values), as protobuf
/// and OpenMetrics pushes are.
fn owned_push_1000() -> Push {
    let mut push = push_1000();
    push.families.to_mut();
    push
}

/// The request body the shard worker builds for one push (without the
/// push-time series, which are two more samples).
fn encode(converted: &Converted, timestamp_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(converted.labels.len() + converted.series.len() * 24);
    for (index, series) in converted.series.iter().enumerate() {
        let labels = converted.series_labels(series);
        let at = converted.timestamp(index).unwrap_or(timestamp_ms);
        match series.value() {
            SeriesValue::Float(v) => wire::put_float_series(&mut out, labels, v, at),
            SeriesValue::Histogram(h) => {
                wire::put_histogram_series(&mut out, labels, converted.histogram(h), at)
            }
        }
    }
    out.extend_from_slice(&converted.metadata);
    out
}

fn stages(c: &mut Criterion) {
    let push = push_1000();
    let converted = convert::convert_families(&push.families, &push.key);
    assert_eq!(converted.series.len() as u64, SERIES);
    let timestamp_ms = 1_700_000_000_000;
    let raw = encode(&converted, timestamp_ms);

    let mut group = c.benchmark_group("forward_1000_series");
    group.throughput(Throughput::Elements(SERIES));
    group.bench_function("convert", |b| {
        b.iter(|| convert::convert_families(black_box(&push.families), &push.key))
    });
    let owned = owned_push_1000();
    group.bench_function("convert_owned", |b| {
        b.iter(|| convert::convert_families(black_box(&owned.families), &owned.key))
    });
    let config = PushConfig::default();
    group.bench_function("parse_check_convert", |b| {
        b.iter(|| {
            let push = Push::from_body(
                PushOp::Merge,
                push.key.clone(),
                BodyFormat::Text,
                black_box(BODY_1000),
                &config,
            )
            .expect("valid");
            convert::convert_families(&push.families, &push.key)
        })
    });
    group.bench_function("encode", |b| {
        b.iter(|| encode(black_box(&converted), timestamp_ms))
    });
    group.bench_function("snappy", |b| {
        b.iter(|| send::compress(black_box(&raw)).expect("snappy compresses"))
    });
    group.bench_function("convert_encode_snappy", |b| {
        b.iter(|| {
            let converted = convert::convert_families(black_box(&push.families), &push.key);
            send::compress(&encode(&converted, timestamp_ms)).expect("snappy compresses")
        })
    });
    let relabel = Relabeler::new(&relabeled(RemoteWriteConfig::default()), |_| None)
        .expect("the rules compile");
    let mut sample = converted.clone();
    relabel.apply(&mut sample);
    assert_eq!(sample.series.len() as u64, SERIES, "the rules drop nothing");
    group.bench_function("relabel_5_rules", |b| {
        b.iter_batched(
            || converted.clone(),
            |mut converted| relabel.apply(black_box(&mut converted)),
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("convert_encode_snappy_relabel_5_rules", |b| {
        b.iter(|| {
            let mut converted = convert::convert_families(black_box(&push.families), &push.key);
            relabel.apply(&mut converted);
            send::compress(&encode(&converted, timestamp_ms)).expect("snappy compresses")
        })
    });
    group.finish();
}

/// One converted 1,000-series request in 1.0 and in 2.0: sizes and CPU.
fn protocols(c: &mut Criterion) {
    let push = push_1000();
    let converted = convert::convert_families(&push.families, &push.key);
    let timestamp_ms = 1_700_000_000_000;
    let extras = || converted.extras.iter().map(|(i, e)| (*i, e));
    let v1 = encode(&converted, timestamp_ms);
    let (v2, counts) = wire_v2::encode(&v1, extras());
    assert_eq!(counts.samples, SERIES);
    let size = |raw: &[u8]| send::compress(raw).expect("snappy compresses").len();
    eprintln!(
        "1,000-series request: 1.0 {} B ({} B snappy), 2.0 {} B ({} B snappy)",
        v1.len(),
        size(&v1),
        v2.len(),
        size(&v2)
    );
    let mut group = c.benchmark_group("protocol_1000_series");
    group.throughput(Throughput::Elements(SERIES));
    group.bench_function("v1_encode_snappy", |b| {
        b.iter(|| send::compress(&encode(black_box(&converted), timestamp_ms)).expect("snappy"))
    });
    group.bench_function("v2_encode_snappy", |b| {
        b.iter(|| {
            let v1 = encode(black_box(&converted), timestamp_ms);
            let (v2, _) = wire_v2::encode(&v1, extras());
            send::compress(&v2).expect("snappy")
        })
    });
    group.finish();
}

/// Answers every request 204 after decompressing its body, like a receiver
/// that stores nothing.
async fn null_answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let decoded = match request.into_body().collect().await {
        Ok(body) => snap::raw::Decoder::new()
            .decompress_vec(&body.to_bytes())
            .is_ok(),
        Err(_) => false,
    };
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = if decoded {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(response)
}

async fn start_null_receiver() -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service_fn(null_answer))
                    .await;
            });
        }
    });
    format!("http://{addr}/api/v1/write")
}

fn forwarder_end_to_end(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    // A group's pushes are stamped a millisecond apart at least, so one
    // group pushed over and over would measure that clock, not the
    // forwarding: the pushes rotate over groups, as a fleet's jobs do.
    let pushes: Vec<Push> = (0..GROUPS)
        .map(|i| push_1000_of(&format!("instance-{i}")))
        .collect();
    let mut group = c.benchmark_group("forward_1000_series");
    group.throughput(Throughput::Elements(SERIES));
    for (name, relabel) in [
        ("forwarder_sync", false),
        ("forwarder_sync_relabel_5_rules", true),
    ] {
        let forwarder = runtime.block_on(async {
            let url = start_null_receiver().await;
            let config = RemoteWriteConfig {
                url: Some(url),
                ..RemoteWriteConfig::default()
            };
            let config = if relabel { relabeled(config) } else { config };
            let forwarder = Forwarder::new(&config).expect("a forwarder");
            while !forwarder.is_ready() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            forwarder
        });
        let mut next = pushes.iter().cycle();
        group.bench_function(name, |b| {
            b.iter(|| {
                let push = next.next().expect("a cycle never ends");
                runtime
                    .block_on(forwarder.forward(black_box(push)))
                    .expect("the null receiver accepts")
            })
        });
        runtime.block_on(forwarder.drain());
    }
    group.finish();
}

criterion_group!(benches, stages, protocols, forwarder_end_to_end);
criterion_main!(benches);
