//! Acceptance tests of forwarding against the real Prometheus: pushes made
//! with curl-like text bodies, the Go client (captured body and live
//! program) and the Python client go through pushrelay, then through a
//! recording proxy, into Prometheus 2.42.
//!
//! Each test asserts the exact series Prometheus holds afterwards (label
//! sets and values, and that nothing else arrived) and, on the wire, what
//! Prometheus does not keep: the remote_write headers, TYPE/HELP metadata
//! per family, and label hygiene.
//!
//! The `oracle_*` and `harness_*` tests pin the expectations and the
//! harness themselves: the same pushes into the real Pushgateway must give
//! the same series, and a hand-built remote_write request must reach
//! Prometheus through the recording proxy.

mod common;
#[path = "forward_prometheus/expected.rs"]
mod expected;

use bytes::Bytes;
use common::{
    Prometheus, Pushgateway, Pushrelay, RecordedWrite, RecordingProxy, Series, TEXT_CONTENT_TYPE,
    fixture, fixture_content_type, request, run_go_push, run_py_push, unix_now, wire_latest_values,
    wire_metadata, wire_problems, wire_stale_series,
};
use expected::{
    AddFamilies, BAD_TEXT_BODY, Expected, Labels, TEXT_BODY, Want, assert_exact_series, labels,
};
use http::{HeaderMap, Method, StatusCode};
use pushrelay::proto::prompb::metric_metadata::MetricType;
use pushrelay::proto::prompb::{Label, MetricMetadata, Sample, TimeSeries, WriteRequest};

// ---------------------------------------------------------------------------
// The forwarding stack
// ---------------------------------------------------------------------------

/// pushrelay → recording proxy → Prometheus, all on loopback. Fields drop in
/// order: pushrelay first, Prometheus last.
struct Stack {
    relay: Pushrelay,
    proxy: RecordingProxy,
    prometheus: Prometheus,
    started_ms: i64,
}

impl Stack {
    async fn start() -> Self {
        let started_ms = (unix_now() * 1000.0) as i64 - 1;
        let prometheus = Prometheus::start().await;
        let proxy = RecordingProxy::start(&prometheus.url()).await;
        let relay = Pushrelay::forwarding_to(&proxy.write_url()).await;
        Self {
            relay,
            proxy,
            prometheus,
            started_ms,
        }
    }

    /// `PUT|POST|DELETE` to pushrelay.
    async fn push(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> (StatusCode, String) {
        let url = format!("{}{path}", self.relay.url());
        let reply = request(
            method,
            &url,
            &[("content-type", content_type)],
            Bytes::copy_from_slice(body),
        )
        .await;
        (reply.status, reply.text())
    }

    /// Everything Prometheus holds must be `expected`, and the wire must
    /// show the same series with clean labels, the remote_write headers and
    /// each family's metadata.
    async fn assert_stored(&self, context: &str, expected: &Expected) {
        let stored = self.prometheus.all_series().await;
        assert_exact_series(
            &format!("{context} (in Prometheus)"),
            &stored,
            &expected.series,
        );

        let writes = self.proxy.writes();
        assert_wire(context, &writes, self.started_ms, expected);
        let on_wire: Vec<Series> = wire_latest_values(&writes)
            .into_iter()
            .map(|(labels, value)| Series { labels, value })
            .collect();
        assert_exact_series(
            &format!("{context} (on the wire)"),
            &on_wire,
            &expected.series,
        );
    }
}

/// The wire is clean (see [`wire_problems`]), every request was accepted by
/// Prometheus, and every family that arrived was announced with its
/// expected type and help.
fn assert_wire(context: &str, writes: &[RecordedWrite], started_ms: i64, expected: &Expected) {
    assert!(
        !writes.is_empty(),
        "{context}: no remote_write request reached the proxy"
    );
    let now_ms = (unix_now() * 1000.0) as i64 + 1;
    let problems = wire_problems(writes, started_ms, now_ms);
    assert!(
        problems.is_empty(),
        "{context}: remote_write problems:\n  {}",
        problems.join("\n  ")
    );
    for write in writes {
        assert!(
            write.upstream_status.is_success(),
            "{context}: Prometheus answered {} to a remote_write request",
            write.upstream_status
        );
    }
    let metadata = wire_metadata(writes).unwrap_or_else(|e| panic!("{context}: {e}"));
    for (family, (kind, help)) in &expected.families {
        let Some(entry) = metadata.get(family) else {
            panic!("{context}: no metadata for family {family}; sent: {metadata:?}");
        };
        assert_eq!(entry.r#type(), *kind, "{context}: TYPE of {family}");
        assert_eq!(&entry.help, help, "{context}: HELP of {family}");
    }
    let unexpected: Vec<&String> = metadata
        .keys()
        .filter(|f| !expected.families.contains_key(*f))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{context}: metadata for families that were not pushed: {unexpected:?}"
    );
}

fn grouping(job: &str, instance: Option<&str>) -> Labels {
    let mut grouping = labels(&[("job", job)]);
    if let Some(instance) = instance {
        grouping.insert("instance".into(), instance.into());
    }
    grouping
}

// ---------------------------------------------------------------------------
// Forwarding acceptance tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_push_through_both_path_prefixes_arrives_exactly() {
    let stack = Stack::start().await;
    let before = unix_now();
    let (status, body) = stack
        .push(
            Method::PUT,
            "/metrics/job/fwd_text/instance/i1",
            TEXT_CONTENT_TYPE,
            TEXT_BODY.as_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "PUT /metrics/job/...: {body}");
    assert_eq!(body, "", "a successful push answers an empty body");
    // No instance in the grouping key: a Pushgateway shows instance="",
    // which remote_write cannot carry.
    let (status, body) = stack
        .push(
            Method::PUT,
            "/pushgateway/metrics/job/fwd_text_pg",
            TEXT_CONTENT_TYPE,
            TEXT_BODY.as_bytes(),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "PUT /pushgateway/metrics/job/...: {body}"
    );
    let after = unix_now();

    let mut expected = Expected::default();
    let first = grouping("fwd_text", Some("i1"));
    let second = grouping("fwd_text_pg", None);
    expected
        .text_body(&first)
        .push_times(&first, before, after)
        .text_body(&second)
        .push_times(&second, before, after);
    stack.assert_stored("text pushes", &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_text_body_is_a_400_naming_line_and_problem_and_forwards_nothing() {
    let stack = Stack::start().await;
    let (status, body) = stack
        .push(
            Method::PUT,
            "/metrics/job/fwd_bad",
            TEXT_CONTENT_TYPE,
            BAD_TEXT_BODY.as_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("line 3"),
        "the message must name the line: {body:?}"
    );
    assert!(
        body.contains("abc"),
        "the message must name the bad value: {body:?}"
    );
    // Only the forwarder's empty start-up probe may have gone out.
    assert!(
        stack
            .proxy
            .writes()
            .iter()
            .all(|w| w.decoded.as_ref().is_ok_and(|r| r.timeseries.is_empty())),
        "a refused push must forward nothing"
    );
    assert_exact_series(
        "after a refused push",
        &stack.prometheus.all_series().await,
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_go_protobuf_body_arrives_exactly() {
    let stack = Stack::start().await;
    let content_type = fixture_content_type("go_push.headers");
    assert!(
        content_type.contains("encoding=delimited"),
        "{content_type}"
    );
    let before = unix_now();
    let (status, body) = stack
        .push(
            Method::PUT,
            "/metrics/job/fwd_go_fixture/instance/go1",
            &content_type,
            &fixture("go_push.bin"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = unix_now();

    let mut expected = Expected::default();
    let group = grouping("fwd_go_fixture", Some("go1"));
    expected.go_client(&group).push_times(&group, before, after);
    stack.assert_stored("captured Go body", &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_go_client_push_add_delete() {
    let stack = Stack::start().await;
    let group = grouping("fwd_go_live", Some("go1"));

    let before = unix_now();
    let run = run_go_push(&stack.relay.url(), "fwd_go_live", "go1", "push").await;
    assert!(run.success, "Go Push() failed: {run:?}");
    let after = unix_now();
    let mut expected = Expected::default();
    expected.go_client(&group).push_times(&group, before, after);
    stack.assert_stored("Go Push()", &expected).await;

    let before = unix_now();
    let run = run_go_push(&stack.relay.url(), "fwd_go_live", "go1", "add").await;
    assert!(run.success, "Go Add() failed: {run:?}");
    let after = unix_now();
    let mut expected = Expected::default();
    expected.go_client(&group).push_times(&group, before, after);
    stack.assert_stored("Go Add()", &expected).await;

    // The Go client accepts only 202 for Delete().
    let forwarded_before_delete: Vec<Labels> = wire_latest_values(&stack.proxy.writes())
        .into_keys()
        .collect();
    let run = run_go_push(&stack.relay.url(), "fwd_go_live", "go1", "delete").await;
    assert!(run.success, "Go Delete() failed (it needs a 202): {run:?}");
    assert_exact_series(
        "after Go Delete()",
        &stack.prometheus.all_series().await,
        &[],
    );
    assert_eq!(
        wire_stale_series(&stack.proxy.writes()),
        forwarded_before_delete,
        "Delete() must end every series of the group with a stale marker"
    );
    let problems = wire_problems(
        &stack.proxy.writes(),
        stack.started_ms,
        (unix_now() * 1000.0) as i64 + 1,
    );
    assert!(problems.is_empty(), "after Delete(): {problems:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_python_client_push_pushadd_gzip_delete() {
    let stack = Stack::start().await;
    let plain = grouping("fwd_py", Some("py1"));
    let gzipped = grouping("fwd_py_gzip", Some("py1"));

    let before = unix_now();
    let run = run_py_push(&stack.relay.url(), "fwd_py", "py1", "push,pushadd", false).await;
    assert!(
        run.success,
        "push_to_gateway / pushadd_to_gateway failed: {run:?}"
    );
    let run = run_py_push(&stack.relay.url(), "fwd_py_gzip", "py1", "push", true).await;
    assert!(run.success, "push_to_gateway with gzip failed: {run:?}");
    let after = unix_now();

    let mut expected = Expected::default();
    expected
        .py_client(&plain)
        .py_client_extra(&plain)
        .push_times(&plain, before, after)
        .py_client(&gzipped)
        .push_times(&gzipped, before, after);
    stack.assert_stored("Python pushes", &expected).await;

    let run = run_py_push(&stack.relay.url(), "fwd_py", "py1", "delete", false).await;
    assert!(run.success, "delete_from_gateway failed: {run:?}");
    let mut remaining = Expected::default();
    remaining
        .py_client(&gzipped)
        .push_times(&gzipped, before, after);
    assert_exact_series(
        "after delete_from_gateway",
        &stack.prometheus.all_series().await,
        &remaining.series,
    );
}

// ---------------------------------------------------------------------------
// The expectations and the harness, checked against the real peers
// ---------------------------------------------------------------------------

/// The same pushes into the real Pushgateway give exactly the series the
/// forwarding tests expect in Prometheus (empty label values dropped, as
/// Prometheus drops them when it scrapes), and the clients work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_pushgateway_gives_the_expected_series() {
    let gateway = Pushgateway::start().await;
    let put = |path: &str, content_type: &str, body: Vec<u8>| {
        let url = format!("{}{path}", gateway.url());
        let content_type = content_type.to_string();
        async move { request(Method::PUT, &url, &[("content-type", &content_type)], body).await }
    };

    let before = unix_now();
    let reply = put(
        "/metrics/job/oracle_text/instance/i1",
        TEXT_CONTENT_TYPE,
        TEXT_BODY.into(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let reply = put(
        "/metrics/job/oracle_text_pg",
        TEXT_CONTENT_TYPE,
        TEXT_BODY.into(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let reply = put(
        "/metrics/job/oracle_go_fixture/instance/go1",
        &fixture_content_type("go_push.headers"),
        fixture("go_push.bin"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let reply = put(
        "/metrics/job/oracle_bad",
        TEXT_CONTENT_TYPE,
        BAD_TEXT_BODY.into(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.text().contains("line 3") && reply.text().contains("abc"),
        "{}",
        reply.text()
    );

    let run = run_go_push(&gateway.url(), "oracle_go_live", "go1", "push,add").await;
    assert!(run.success, "Go client against the Pushgateway: {run:?}");
    let run = run_py_push(&gateway.url(), "oracle_py", "py1", "push,pushadd", false).await;
    assert!(
        run.success,
        "Python client against the Pushgateway: {run:?}"
    );
    let run = run_py_push(&gateway.url(), "oracle_py_gzip", "py1", "push", true).await;
    assert!(
        run.success,
        "Python gzip push against the Pushgateway: {run:?}"
    );
    let after = unix_now();

    let cases: [(&str, Option<&str>, AddFamilies); 5] = [
        ("oracle_text", Some("i1"), Expected::text_body),
        ("oracle_text_pg", None, Expected::text_body),
        ("oracle_go_fixture", Some("go1"), Expected::go_client),
        ("oracle_go_live", Some("go1"), Expected::go_client),
        ("oracle_py_gzip", Some("py1"), Expected::py_client),
    ];
    for (job, instance, families) in cases {
        let group = grouping(job, instance);
        let mut expected = Expected::default();
        families(&mut expected, &group).push_times(&group, before, after);
        assert_exact_series(job, &gateway.series_of_job(job).await, &expected.series);
    }
    let group = grouping("oracle_py", Some("py1"));
    let mut expected = Expected::default();
    expected
        .py_client(&group)
        .py_client_extra(&group)
        .push_times(&group, before, after);
    assert_exact_series(
        "oracle_py",
        &gateway.series_of_job("oracle_py").await,
        &expected.series,
    );
    assert_exact_series(
        "oracle_bad",
        &gateway.series_of_job("oracle_bad").await,
        &[],
    );

    // Delete through both clients: the Go client insists on a 202.
    let run = run_go_push(&gateway.url(), "oracle_go_live", "go1", "delete").await;
    assert!(run.success, "Go Delete() against the Pushgateway: {run:?}");
    let run = run_py_push(&gateway.url(), "oracle_py", "py1", "delete", false).await;
    assert!(
        run.success,
        "Python delete against the Pushgateway: {run:?}"
    );
    // The Pushgateway applies a DELETE asynchronously: a checked push is the
    // barrier after which it has been applied.
    let reply = put("/metrics/job/oracle_barrier", TEXT_CONTENT_TYPE, Vec::new()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_exact_series(
        "deleted Go group",
        &gateway.series_of_job("oracle_go_live").await,
        &[],
    );
    assert_exact_series(
        "deleted Python group",
        &gateway.series_of_job("oracle_py").await,
        &[],
    );
}

/// A hand-built remote_write request goes through the recording proxy into
/// Prometheus unchanged, and the proxy records it decoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_recording_proxy_passes_remote_write_to_prometheus() {
    let prometheus = Prometheus::start().await;
    let proxy = RecordingProxy::start(&prometheus.url()).await;
    let started_ms = (unix_now() * 1000.0) as i64;
    let label = |name: &str, value: &str| Label {
        name: name.into(),
        value: value.into(),
    };
    let sent = WriteRequest {
        timeseries: vec![
            TimeSeries {
                labels: vec![
                    label("__name__", "harness_value"),
                    label("instance", "h1"),
                    label("job", "harness"),
                ],
                samples: vec![Sample {
                    value: 1.5,
                    timestamp: started_ms,
                }],
                ..Default::default()
            },
            TimeSeries {
                labels: vec![
                    label("__name__", "harness_total"),
                    label("job", "harness"),
                    label("path", "/x"),
                ],
                samples: vec![Sample {
                    value: 7.0,
                    timestamp: started_ms,
                }],
                ..Default::default()
            },
        ],
        metadata: vec![MetricMetadata {
            r#type: MetricType::Counter as i32,
            metric_family_name: "harness_total".into(),
            help: "A counter.".into(),
            unit: String::new(),
        }],
    };
    let reply = request(
        Method::POST,
        &proxy.write_url(),
        &[
            ("content-encoding", "snappy"),
            ("content-type", "application/x-protobuf"),
            ("x-prometheus-remote-write-version", "0.1.0"),
            ("user-agent", "pushrelay/harness"),
        ],
        common::encode_write_request(&sent),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());

    let writes = proxy.writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].request(), &sent);
    assert_eq!(writes[0].path, "/api/v1/write");
    assert_eq!(writes[0].upstream_status, StatusCode::NO_CONTENT);
    let now_ms = (unix_now() * 1000.0) as i64 + 1;
    assert_eq!(
        wire_problems(&writes, started_ms, now_ms),
        Vec::<String>::new()
    );
    assert_eq!(
        wire_metadata(&writes).expect("consistent metadata")["harness_total"].r#type(),
        MetricType::Counter
    );
    assert_exact_series(
        "hand-built remote_write",
        &prometheus.all_series().await,
        &[
            (
                labels(&[
                    ("__name__", "harness_value"),
                    ("instance", "h1"),
                    ("job", "harness"),
                ]),
                Want::Is(1.5),
            ),
            (
                labels(&[
                    ("__name__", "harness_total"),
                    ("job", "harness"),
                    ("path", "/x"),
                ]),
                Want::Is(7.0),
            ),
        ],
    );

    // The wire check finds what a careless sender does.
    let mut careless = writes[0].clone();
    careless.headers = HeaderMap::new();
    let mut request = sent.clone();
    request.timeseries[0].labels.swap(1, 2);
    request.timeseries[1].labels.push(label("zone", ""));
    request.timeseries[1].labels.remove(0);
    request.timeseries[1].samples[0].timestamp = 1;
    careless.decoded = Ok(request);
    let problems = wire_problems(&[careless], started_ms, now_ms).join("\n");
    for needle in [
        "content-encoding",
        "content-type",
        "x-prometheus-remote-write-version",
        "user-agent",
        "not sorted",
        "empty label name or value",
        "no __name__",
        "timestamp 1 outside",
    ] {
        assert!(
            problems.contains(needle),
            "missing {needle:?} in:\n{problems}"
        );
    }
}

/// The expectations, sent by hand as a correct sender would send them,
/// satisfy every check of the forwarding tests; stale markers then end the
/// series in Prometheus, as the DELETE tests rely on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_expectations_round_trip_and_stale_markers_end_series() {
    let prometheus = Prometheus::start().await;
    let proxy = RecordingProxy::start(&prometheus.url()).await;
    let started_ms = (unix_now() * 1000.0) as i64 - 1;
    let pushed_at = unix_now();
    let group = grouping("harness_round_trip", Some("h1"));
    let mut expected = Expected::default();
    expected
        .text_body(&group)
        .push_times(&group, pushed_at, pushed_at);

    let send = |timestamp: i64, stale: bool| {
        let timeseries = expected
            .series
            .iter()
            .map(|(labels, want)| TimeSeries {
                labels: labels
                    .iter()
                    .map(|(name, value)| Label {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                samples: vec![Sample {
                    value: match (stale, want) {
                        (true, _) => f64::from_bits(common::STALE_NAN_BITS),
                        (false, Want::Is(v) | Want::Between(v, _)) => *v,
                    },
                    timestamp,
                }],
                ..Default::default()
            })
            .collect();
        let metadata = expected
            .families
            .iter()
            .map(|(name, (kind, help))| MetricMetadata {
                r#type: *kind as i32,
                metric_family_name: name.clone(),
                help: help.clone(),
                unit: String::new(),
            })
            .collect();
        let body = common::encode_write_request(&WriteRequest {
            timeseries,
            metadata,
        });
        let url = proxy.write_url();
        async move {
            request(
                Method::POST,
                &url,
                &[
                    ("content-encoding", "snappy"),
                    ("content-type", "application/x-protobuf"),
                    ("x-prometheus-remote-write-version", "0.1.0"),
                    ("user-agent", "pushrelay/harness"),
                ],
                body,
            )
            .await
        }
    };

    let now_ms = (pushed_at * 1000.0) as i64;
    let reply = send(now_ms, false).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    let writes = proxy.writes();
    assert_wire("hand-sent expectation", &writes, started_ms, &expected);
    assert_exact_series(
        "hand-sent expectation",
        &prometheus.all_series().await,
        &expected.series,
    );

    let reply = send(now_ms + 1, true).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    assert_exact_series("after stale markers", &prometheus.all_series().await, &[]);
    let mut all: Vec<Labels> = expected.series.iter().map(|(l, _)| l.clone()).collect();
    all.sort();
    assert_eq!(wire_stale_series(&proxy.writes()), all);
}
