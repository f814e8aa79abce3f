//! Forwarding in `remote_write.protocol = auto` (the default) to the two
//! real 1.0-only backends, Prometheus 2.42 and VictoriaMetrics 1.79, each
//! behind the recording proxy.
//!
//! For each backend: the first request after the readiness probe is
//! Remote-Write 2.0, which the backend answers 2xx without Written headers
//! (it read an empty request); the very next request is the same series as
//! 1.0, and every later request is 1.0 (the switch happens on the first
//! request and sticks). Every series a push makes is then found by query,
//! exactly as expected, each written once per push.

mod common;
#[path = "forward_prometheus/expected.rs"]
#[allow(dead_code)] // this binary uses only the text-body expectations
mod expected;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::victoria::VictoriaMetrics;
use common::{
    Prometheus, Pushrelay, RecordedWrite, RecordingProxy, Series, TEXT_CONTENT_TYPE, request, rw2,
    unix_now, wire_problems,
};
use expected::{Expected, Labels, TEXT_BODY, assert_exact_series, labels};
use http::{Method, StatusCode};
use prost::Message;
use pushrelay::proto::write_v2;

/// One of the real backends.
enum Backend {
    Prometheus(Prometheus),
    Victoria(VictoriaMetrics),
}

impl Backend {
    fn url(&self) -> String {
        match self {
            Backend::Prometheus(p) => p.url(),
            Backend::Victoria(v) => v.url(),
        }
    }

    /// The query's result once it has `count` series (Prometheus answers at
    /// once; VictoriaMetrics makes new series searchable a moment later).
    async fn query(&self, promql: &str, count: usize) -> Vec<Series> {
        match self {
            Backend::Prometheus(p) => p.query(promql).await,
            Backend::Victoria(v) => v.query_until(promql, count).await,
        }
    }
}

/// A series on the wire: labels and (timestamp, value) samples.
type WireSeries = (Vec<(String, String)>, Vec<(i64, u64)>);

fn wire_series(request: &pushrelay::proto::prompb::WriteRequest) -> Vec<WireSeries> {
    let mut series: Vec<WireSeries> = request
        .timeseries
        .iter()
        .map(|s| {
            (
                s.labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect(),
                s.samples
                    .iter()
                    .map(|s| (s.timestamp, s.value.to_bits()))
                    .collect(),
            )
        })
        .collect();
    series.sort();
    series
}

fn is_empty_probe(write: &RecordedWrite) -> bool {
    !rw2::is_v2(&write.headers)
        && write
            .decoded
            .as_ref()
            .is_ok_and(|r| r.timeseries.is_empty() && r.metadata.is_empty())
}

/// Pushes the text body twice to one group through pushrelay in auto mode
/// and checks the switch on the wire and the series in the backend.
async fn auto_mode_against(backend: Backend, name: &str) {
    let started_ms = (unix_now() * 1000.0) as i64 - 1;
    let proxy = RecordingProxy::start(&backend.url()).await;
    let relay = Pushrelay::forwarding_to(&proxy.write_url()).await;
    let path = "/metrics/job/auto/instance/i1";
    let before = unix_now();
    for _ in 0..2 {
        let reply = request(
            Method::PUT,
            &format!("{}{path}", relay.url()),
            &[("content-type", TEXT_CONTENT_TYPE)],
            Bytes::from_static(TEXT_BODY.as_bytes()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{name}: {}", reply.text());
    }
    let after = unix_now();

    let writes: Vec<RecordedWrite> = proxy
        .writes()
        .into_iter()
        .filter(|w| !is_empty_probe(w))
        .collect();
    let now_ms = (unix_now() * 1000.0) as i64 + 1;
    let problems = wire_problems(&proxy.writes(), started_ms, now_ms);
    assert!(problems.is_empty(), "{name}: {problems:#?}");
    let protocols: Vec<bool> = writes.iter().map(|w| rw2::is_v2(&w.headers)).collect();
    assert_eq!(
        protocols,
        [true, false, false],
        "{name}: 2.0 once, then the resend and the second push as 1.0"
    );
    let tried = &writes[0];
    assert!(
        tried.upstream_status.is_success(),
        "{name} answers 2.0 with {}",
        tried.upstream_status
    );
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&tried.body)
        .unwrap();
    let v2 = write_v2::Request::decode(raw.as_slice()).unwrap();
    assert!(!v2.timeseries.is_empty());
    assert_eq!(
        wire_series(&rw2::as_v1(&v2)),
        wire_series(writes[1].request()),
        "{name}: the 1.0 resend carries exactly the series of the 2.0 try"
    );

    let grouping: Labels = labels(&[("job", "auto"), ("instance", "i1")]);
    let mut expected = Expected::default();
    expected
        .text_body(&grouping)
        .push_times(&grouping, before, after);
    let mut stored = backend
        .query(r#"{job="auto"}"#, expected.series.len())
        .await;
    stored.sort_by(|a, b| a.labels.cmp(&b.labels));
    assert_exact_series(&format!("{name}: auto mode"), &stored, &expected.series);
    // Written once per push: two samples per series, none from the 2.0 try.
    // (Per name: the function drops `__name__`, and series of two names
    // may share their other labels.)
    let names: std::collections::BTreeSet<&str> = expected
        .series
        .iter()
        .map(|(labels, _)| labels["__name__"].as_str())
        .collect();
    // VictoriaMetrics makes a series' newest samples searchable a moment
    // after the series itself: counts may lag, never exceed, so they are
    // read again (at most 20 s) until they reach 2 or go past it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let per_series = loop {
        let mut per_series = BTreeMap::new();
        for &family in &names {
            let want = expected
                .series
                .iter()
                .filter(|(labels, _)| labels["__name__"] == family)
                .count();
            for s in backend
                .query(
                    &format!(r#"count_over_time({family}{{job="auto"}}[1h])"#),
                    want,
                )
                .await
            {
                per_series.insert(format!("{family}{:?}", s.labels), s.value);
            }
        }
        let settled = per_series.len() == expected.series.len()
            && per_series.values().all(|&count| count == 2.0);
        let overshot = per_series.values().any(|&count| count > 2.0);
        if settled || overshot || std::time::Instant::now() > deadline {
            break per_series;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(
        per_series.len(),
        expected.series.len(),
        "{name}: {per_series:#?}"
    );
    assert!(
        per_series.values().all(|&count| count == 2.0),
        "{name}: samples per series {per_series:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_mode_falls_back_on_the_first_request_to_prometheus_2_42() {
    auto_mode_against(Backend::Prometheus(Prometheus::start().await), "Prometheus").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_mode_falls_back_on_the_first_request_to_victoria_metrics_1_79() {
    let victoria = VictoriaMetrics::start().await;
    auto_mode_against(Backend::Victoria(victoria), "VictoriaMetrics").await;
}
