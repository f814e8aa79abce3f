//! Peak memory of one large push (issue 18, goal 4): pushrelay started as
//! a process, one 1,000,000-series text push (`m{i="123456"} 1` lines,
//! about 17 MB), and the rise of its peak resident size (`VmHWM` in
//! `/proc/PID/status`) from before the push to after it.
//!
//! Forward mode writes to a null remote_write receiver in this process
//! (decodes each request, counts its samples, keeps nothing): Prometheus
//! would take longer than the push itself, and a smaller push to real
//! Prometheus is checked in `forward_prometheus`. Cache mode stores the
//! group, so its bound is looser. Both figures are printed (`--nocapture`)
//! for BENCHMARKS.md.

mod common;

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use std::time::Duration;

use common::{Pushrelay, request};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use pushrelay::proto::prompb::WriteRequest;
use tokio::net::TcpListener;

const SERIES: usize = 1_000_000;

/// The peak rise the forward path may show over a push of `body_bytes`
/// (decompressed), in bytes: [`FORWARD_FACTOR`] × the body plus
/// [`FORWARD_CONSTANT`].
fn forward_bound(body_bytes: usize) -> usize {
    FORWARD_FACTOR * body_bytes + FORWARD_CONSTANT
}

/// What this bound guards (measured: 7.9× on the debug build; 8.9× while
/// a `Series` took 32 bytes, 10.9× before the body was collected into one
/// buffer as it arrived and a `Series` shrank from 56 to 32 bytes, 16.6×
/// before the body was freed early, the requests encoded as sent and the
/// label bytes shared; 58.8× with the owned model before that). The peak is
/// at the end of the conversion, which needs the body and its index (about
/// 3× the body) and builds the converted push (about 3.5×: a 43-byte label
/// encoding and a 16-byte `Series` per 17-byte line); the rest is freed
/// memory the allocator keeps. After it nothing grows: the body and index
/// are freed before delivery, each request is encoded from the converted
/// series just before it is sent (one at a time), and the shard's memory of
/// the group's series (for stale markers) points into the converted label
/// bytes instead of copying them. Issue 18 asks for 4×, which the index
/// and the converted form together exceed: it needs a conversion straight
/// into encoded requests and a series memory that does not keep every
/// label set whole. Not met yet.
const FORWARD_FACTOR: usize = 9;
const FORWARD_CONSTANT: usize = 16 << 20;

fn body() -> String {
    let mut body = String::with_capacity(SERIES * 17);
    for i in 0..SERIES {
        let _ = writeln!(body, "m{{i=\"{i:06}\"}} 1");
    }
    body
}

/// `VmHWM` (peak resident set) of process `pid`, in bytes.
fn peak_resident(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM line");
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM in kB");
    kib * 1024
}

/// A remote_write receiver that answers 204 and only counts samples.
async fn null_receiver() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!(
        "http://{}/api/v1/write",
        listener.local_addr().expect("addr")
    );
    let samples = Arc::new(AtomicUsize::new(0));
    let counted = samples.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let counted = counted.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let counted = counted.clone();
                    async move {
                        let body = request.into_body().collect().await;
                        let decoded = body.ok().and_then(|b| {
                            let raw = snap::raw::Decoder::new()
                                .decompress_vec(&b.to_bytes())
                                .ok()?;
                            WriteRequest::decode(raw.as_slice()).ok()
                        });
                        let status = match decoded {
                            Some(request) => {
                                counted.fetch_add(request.timeseries.len(), Ordering::SeqCst);
                                StatusCode::NO_CONTENT
                            }
                            None => StatusCode::BAD_REQUEST,
                        };
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = status;
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, samples)
}

/// Pushes the body to `relay`; returns the rise of its peak resident size.
async fn peak_rise_of_push(relay: &Pushrelay, body: &str) -> usize {
    let pid = relay.peer.pid();
    let before = peak_resident(pid);
    let reply = request(
        Method::POST,
        &format!("{}/metrics/job/memory", relay.peer.url()),
        &[],
        body.to_string(),
    )
    .await;
    assert!(
        reply.status.is_success(),
        "{} {}",
        reply.status,
        reply.text()
    );
    peak_resident(pid).saturating_sub(before)
}

/// A push of a million series takes seconds in a debug build on a loaded
/// machine: longer than `common::bounded` allows.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(180), f)
        .await
        .expect("the push took too long")
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_million_series_push_peaks_within_the_bound_when_forwarded() {
    let body = body();
    let (url, samples) = null_receiver().await;
    let relay = Pushrelay::start(&[format!("--remote-write.url={url}")]).await;
    let rise = bounded(peak_rise_of_push(&relay, &body)).await;
    // Every series and the two push-time series arrived.
    assert_eq!(samples.load(Ordering::SeqCst), SERIES + 2);
    eprintln!(
        "forward: {SERIES} series, body {:.1} MiB, VmHWM rise {:.1} MiB ({:.1}× the body)",
        mib(body.len()),
        mib(rise),
        rise as f64 / body.len() as f64
    );
    assert!(
        rise <= forward_bound(body.len()),
        "peak rose by {:.1} MiB, over {:.1} MiB",
        mib(rise),
        mib(forward_bound(body.len()))
    );
}

/// The peak rise cache mode may show over a push of `body_bytes`:
/// 9.7–10.2× measured on the debug build (56× before an indexed push was
/// stored straight from its index, one metric at a time, instead of
/// through owned `Metric` values of about 600 bytes each; 12× before the
/// consistency index reserved its table once). At the peak the store
/// holds the body and its index (3×), the group in its stored form
/// (protobuf bytes, an end and a signature per series: about 3.5×) and
/// the consistency index's entry per series (a table of 2^21 16-byte
/// slots for a million).
fn cache_bound(body_bytes: usize) -> usize {
    12 * body_bytes + FORWARD_CONSTANT
}

#[tokio::test(flavor = "multi_thread")]
async fn one_million_series_push_peaks_within_the_bound_in_cache_mode() {
    let body = body();
    let relay = Pushrelay::start(&[] as &[&str]).await;
    let rise = bounded(peak_rise_of_push(&relay, &body)).await;
    eprintln!(
        "cache: {SERIES} series, body {:.1} MiB, VmHWM rise {:.1} MiB ({:.1}× the body)",
        mib(body.len()),
        mib(rise),
        rise as f64 / body.len() as f64
    );
    // The group was stored whole: a scrape shows its last series.
    let scrape = request(
        Method::GET,
        &format!("{}/metrics", relay.peer.url()),
        &[],
        String::new(),
    )
    .await;
    assert!(scrape.text().contains(&format!(
        "m{{i=\"{:06}\",instance=\"\",job=\"memory\"}} 1",
        SERIES - 1
    )));
    assert!(
        rise <= cache_bound(body.len()),
        "peak rose by {:.1} MiB, over {:.1} MiB",
        mib(rise),
        mib(cache_bound(body.len()))
    );
}
