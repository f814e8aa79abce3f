//! The Remote-Write 2.0 rows of the sender checklist: one test per check
//! of the compliance suite's 2.0 sender list (reference
//! `remote-write-2.md`, "The compliance suite's sender checks for 2.0"),
//! each named after its group and check, against the in-process receiver
//! speaking 2.0 (`common::receiver`, rules in `common::rw2`). The 1.0
//! rows are in `forward_checklist.rs`.
//!
//! The receiver refuses (400) any 2.0 request that breaks a rule of the
//! reference page, so every test that forwards successfully has also
//! passed all of them; each test then asserts its own row on the decoded
//! 2.0 message.

mod common;

use std::time::Duration;

use common::bounded;
use common::receiver::{Fault, Received, Receiver, V2Answer};
use common::rw2;
use prost::Message;
use pushrelay::config::{Protocol, PushConfig, RemoteWriteConfig};
use pushrelay::exposition::BodyFormat;
use pushrelay::forward::Forwarder;
use pushrelay::proto::client::{
    Bucket, BucketSpan, Counter, Exemplar, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use pushrelay::proto::write_v2::{Request, TimeSeries, metadata::MetricType as V2Type};
use pushrelay::push::{GroupingKey, Push, PushOp, SinkError};

const STALE_NAN_BITS: u64 = common::STALE_NAN_BITS;

fn key(pairs: &[(&str, &str)]) -> GroupingKey {
    GroupingKey::new(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())))
}

fn text_push(pairs: &[(&str, &str)], body: &str) -> Push {
    Push::from_body(
        PushOp::Replace,
        key(pairs),
        BodyFormat::Text,
        body.as_bytes(),
        &PushConfig::default(),
    )
    .expect("a valid push")
}

fn protobuf_push(pairs: &[(&str, &str)], families: &[MetricFamily]) -> Push {
    let mut body = Vec::new();
    for family in families {
        family.encode_length_delimited(&mut body).unwrap();
    }
    Push::from_body(
        PushOp::Replace,
        key(pairs),
        BodyFormat::ProtobufDelimited,
        &body,
        &PushConfig::default(),
    )
    .expect("a valid push")
}

/// A receiver speaking 2.0 as `answer` says, and a forwarder in `protocol`.
async fn pair(answer: V2Answer, protocol: Protocol) -> (Receiver, Forwarder) {
    let receiver = Receiver::start().await;
    receiver.speak_v2(answer);
    let config = RemoteWriteConfig {
        protocol,
        ..receiver.forward_config()
    };
    let forwarder = Forwarder::new(&config).unwrap();
    (receiver, forwarder)
}

/// Forwards `push` in auto mode to a 2.0 receiver; the one request, read
/// as 2.0, without rule violations.
async fn forward_v2(push: &Push) -> (Received, Request) {
    let (receiver, forwarder) = pair(V2Answer::Written, Protocol::Auto).await;
    bounded(forwarder.forward(push)).await.unwrap();
    assert_eq!(receiver.violations(), Vec::<String>::new());
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let received = received.into_iter().next().unwrap();
    let v2 = received.v2.clone().expect("a 2.0 request");
    (received, v2)
}

fn series_named<'r>(request: &'r Request, name: &str) -> Vec<&'r TimeSeries> {
    request
        .timeseries
        .iter()
        .filter(|s| rw2::labels(request, s).contains(&("__name__", name)))
        .collect()
}

fn header<'a>(received: &'a Received, name: &str) -> Vec<&'a str> {
    received
        .headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

fn simple() -> Push {
    text_push(&[("job", "j")], "# TYPE m gauge\nm{a=\"1\"} 1\n")
}

fn every_type() -> Push {
    text_push(
        &[("job", "types"), ("instance", "i1")],
        "# HELP c_total a counter\n# TYPE c_total counter\nc_total{a=\"1\"} 1\n\
         # TYPE g gauge\ng 2\n\
         # TYPE u untyped\nu{b=\"x\"} 3\n\
         # TYPE s summary\ns{quantile=\"0.5\"} 4\ns_sum 5\ns_count 6\n\
         # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n",
    )
}

fn exemplar(trace: &str, value: f64, seconds: Option<i64>) -> Exemplar {
    Exemplar {
        label: vec![LabelPair::new("trace_id", trace)],
        value: Some(value),
        timestamp: seconds.map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
    }
}

/// A counter with a start time and an exemplar, and a native histogram
/// with custom buckets, a start time and an exemplar.
fn rich_push() -> Push {
    let created = Some(prost_types::Timestamp {
        seconds: 1_700_000_000,
        nanos: 0,
    });
    let counter = MetricFamily {
        name: Some("requests_total".into()),
        help: Some("Requests.".into()),
        r#type: Some(MetricType::Counter as i32),
        unit: None,
        metric: vec![Metric {
            counter: Some(Counter {
                value: Some(7.0),
                exemplar: Some(exemplar("abc", 1.0, Some(1_700_000_100))),
                created_timestamp: created,
            }),
            ..Default::default()
        }],
    };
    let bucket = |bound: f64, count: u64| Bucket {
        cumulative_count: Some(count),
        upper_bound: Some(bound),
        ..Default::default()
    };
    let histogram = MetricFamily {
        name: Some("latency_seconds".into()),
        help: Some("Latency.".into()),
        r#type: Some(MetricType::Histogram as i32),
        unit: None,
        metric: vec![Metric {
            histogram: Some(Histogram {
                sample_count: Some(3),
                sample_sum: Some(1.2),
                schema: Some(-53),
                bucket: vec![bucket(0.1, 1), bucket(1.0, 3)],
                positive_span: vec![BucketSpan {
                    offset: Some(0),
                    length: Some(2),
                }],
                positive_delta: vec![1, 1],
                created_timestamp: created,
                exemplars: vec![exemplar("def", 0.05, None)],
                ..Default::default()
            }),
            ..Default::default()
        }],
    };
    protobuf_push(&[("job", "rich")], &[counter, histogram])
}

// ---- Protocol ----

#[tokio::test]
async fn protocol_content_type_protobuf() {
    let (received, _) = forward_v2(&simple()).await;
    assert_eq!(header(&received, "content-type"), [rw2::V2_CONTENT_TYPE]);
}

#[tokio::test]
async fn protocol_snappy_encoding() {
    let (received, _) = forward_v2(&simple()).await;
    assert_eq!(header(&received, "content-encoding"), ["snappy"]);
}

#[tokio::test]
async fn protocol_version_header_present_and_2_0_0() {
    let (received, _) = forward_v2(&simple()).await;
    assert_eq!(
        header(&received, "x-prometheus-remote-write-version"),
        ["2.0.0"]
    );
}

#[tokio::test]
async fn protocol_user_agent() {
    let (received, _) = forward_v2(&simple()).await;
    let agent = header(&received, "user-agent");
    assert!(agent[0].starts_with("pushrelay/"), "{agent:?}");
}

#[tokio::test]
async fn protocol_snappy_block_format() {
    let (received, v2) = forward_v2(&simple()).await;
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&received.body)
        .expect("a snappy block");
    assert_eq!(Request::decode(raw.as_slice()).unwrap(), v2);
    assert!(!received.body.starts_with(b"\xff\x06\x00\x00sNaPpY"));
}

#[tokio::test]
async fn protocol_post() {
    let (received, _) = forward_v2(&simple()).await;
    assert_eq!(received.method, http::Method::POST);
}

#[tokio::test]
async fn protocol_proto_parameter() {
    let (received, _) = forward_v2(&simple()).await;
    let content_type = header(&received, "content-type")[0];
    assert!(content_type.ends_with(";proto=io.prometheus.write.v2.Request"));
}

// ---- Symbols ----

#[tokio::test]
async fn symbols_empty_string_at_index_0() {
    let (_, v2) = forward_v2(&every_type()).await;
    assert_eq!(v2.symbols[0], "");
    let mut unique = v2.symbols.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), v2.symbols.len(), "each symbol once");
}

#[tokio::test]
async fn symbols_valid_indices() {
    let (_, v2) = forward_v2(&every_type()).await;
    for series in &v2.timeseries {
        assert!(
            series
                .labels_refs
                .iter()
                .all(|&r| (r as usize) < v2.symbols.len())
        );
    }
}

#[tokio::test]
async fn symbols_even_length() {
    let (_, v2) = forward_v2(&every_type()).await;
    assert!(v2.timeseries.iter().all(|s| s.labels_refs.len() % 2 == 0));
}

// ---- Labels ----

#[tokio::test]
async fn labels_sorted() {
    let push = text_push(
        &[("job", "j"), ("zone", "z")],
        "m{b=\"2\",a=\"1\",Z=\"0\"} 1\n",
    );
    let (_, v2) = forward_v2(&push).await;
    let names: Vec<&str> = rw2::labels(&v2, &v2.timeseries[0])
        .iter()
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(names, ["Z", "__name__", "a", "b", "job", "zone"]);
}

#[tokio::test]
async fn labels_name_present() {
    let (_, v2) = forward_v2(&every_type()).await;
    for series in &v2.timeseries {
        assert!(
            rw2::labels(&v2, series)
                .iter()
                .any(|(n, v)| *n == "__name__" && !v.is_empty())
        );
    }
}

#[tokio::test]
async fn labels_no_duplicates() {
    // The body's job label is overridden by the grouping key's.
    let push = text_push(&[("job", "j")], "m{job=\"body\",a=\"1\"} 1\n");
    let (_, v2) = forward_v2(&push).await;
    let labels = rw2::labels(&v2, &v2.timeseries[0]);
    assert_eq!(labels, [("__name__", "m"), ("a", "1"), ("job", "j")]);
}

#[tokio::test]
async fn labels_non_empty_names() {
    // An empty value drops the label (2.0 forbids it too).
    let push = text_push(&[("job", "j"), ("instance", "")], "m{a=\"\"} 1\n");
    let (_, v2) = forward_v2(&push).await;
    let labels = rw2::labels(&v2, &v2.timeseries[0]);
    assert!(
        labels.iter().all(|(n, v)| !n.is_empty() && !v.is_empty()),
        "{labels:?}"
    );
    assert_eq!(labels.len(), 2);
}

#[tokio::test]
async fn labels_utf8() {
    let push = text_push(&[("job", "j")], "m{city=\"Zürich ☃\"} 1\n");
    let (_, v2) = forward_v2(&push).await;
    // The message decoded (prost checks UTF-8) and kept the text.
    assert!(rw2::labels(&v2, &v2.timeseries[0]).contains(&("city", "Zürich ☃")));
}

// ---- Samples ----

#[tokio::test]
async fn samples_special_floats() {
    let push = text_push(&[("job", "j")], "a +Inf\nb -Inf\nc NaN\n");
    let (_, v2) = forward_v2(&push).await;
    let value = |name| series_named(&v2, name)[0].samples[0].value;
    assert_eq!(value("a"), f64::INFINITY);
    assert_eq!(value("b"), f64::NEG_INFINITY);
    assert!(value("c").is_nan());
    assert_ne!(
        value("c").to_bits(),
        STALE_NAN_BITS,
        "a pushed NaN is not a stale marker"
    );
    // A series the next push drops ends with the stale marker.
    let (receiver, forwarder) = pair(V2Answer::Written, Protocol::Auto).await;
    bounded(forwarder.forward(&text_push(&[("job", "j")], "gone 1\nkept 1\n")))
        .await
        .unwrap();
    bounded(forwarder.forward(&text_push(&[("job", "j")], "kept 2\n")))
        .await
        .unwrap();
    let last = receiver.received().pop().unwrap().v2.unwrap();
    let gone = series_named(&last, "gone");
    assert_eq!(gone[0].samples[0].value.to_bits(), STALE_NAN_BITS);
}

#[tokio::test]
async fn samples_millisecond_timestamps() {
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (_, v2) = forward_v2(&simple()).await;
    let ts = v2.timeseries[0].samples[0].timestamp;
    assert!((before..before + 10_000).contains(&ts), "{ts} vs {before}");
}

#[tokio::test]
async fn samples_order_within_a_series() {
    let (receiver, forwarder) = pair(V2Answer::Written, Protocol::Auto).await;
    for value in 0..5 {
        let push = text_push(&[("job", "j")], &format!("m {value}\n"));
        bounded(forwarder.forward(&push)).await.unwrap();
    }
    let timestamps: Vec<i64> = receiver
        .received()
        .iter()
        .flat_map(|r| {
            let v2 = r.v2.clone().unwrap();
            series_named(&v2, "m")
                .iter()
                .flat_map(|s| s.samples.iter().map(|s| s.timestamp))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(timestamps.len(), 5);
    assert!(timestamps.windows(2).all(|w| w[0] < w[1]), "{timestamps:?}");
}

// ---- Start timestamps ----

#[tokio::test]
async fn start_timestamps_sent_when_known() {
    let (_, v2) = forward_v2(&rich_push()).await;
    let counter = series_named(&v2, "requests_total")[0];
    assert_eq!(counter.samples[0].start_timestamp, 1_700_000_000_000);
    let histogram = series_named(&v2, "latency_seconds")[0];
    assert_eq!(histogram.histograms[0].start_timestamp, 1_700_000_000_000);
    // OpenMetrics `_created` lines are start timestamps too.
    let om = Push::from_body(
        PushOp::Replace,
        key(&[("job", "om")]),
        BodyFormat::OpenMetrics,
        b"# TYPE c counter\nc_total 3\nc_created 1700000000.5\n# EOF\n",
        &PushConfig::default(),
    )
    .unwrap();
    let (_, v2) = forward_v2(&om).await;
    assert_eq!(
        series_named(&v2, "c_total")[0].samples[0].start_timestamp,
        1_700_000_000_500
    );
    // A gauge has none.
    let (_, v2) = forward_v2(&simple()).await;
    assert_eq!(v2.timeseries[0].samples[0].start_timestamp, 0);
}

// ---- Metadata ----

#[tokio::test]
async fn metadata_type() {
    let (_, v2) = forward_v2(&every_type()).await;
    let type_of = |name| series_named(&v2, name)[0].metadata.unwrap().r#type();
    assert_eq!(type_of("c_total"), V2Type::Counter);
    assert_eq!(type_of("g"), V2Type::Gauge);
    assert_eq!(type_of("u"), V2Type::Unspecified);
    assert_eq!(type_of("s"), V2Type::Summary);
    assert_eq!(type_of("s_sum"), V2Type::Summary);
    assert_eq!(type_of("h_bucket"), V2Type::Histogram);
    assert_eq!(type_of("h_count"), V2Type::Histogram);
}

#[tokio::test]
async fn metadata_help() {
    let (_, v2) = forward_v2(&every_type()).await;
    let metadata = series_named(&v2, "c_total")[0].metadata.unwrap();
    assert_eq!(v2.symbols[metadata.help_ref as usize], "a counter");
}

#[tokio::test]
async fn metadata_unit() {
    let om = Push::from_body(
        PushOp::Replace,
        key(&[("job", "om")]),
        BodyFormat::OpenMetrics,
        b"# TYPE d_seconds gauge\n# UNIT d_seconds seconds\nd_seconds 1\n# EOF\n",
        &PushConfig::default(),
    )
    .unwrap();
    let (_, v2) = forward_v2(&om).await;
    let metadata = series_named(&v2, "d_seconds")[0].metadata.unwrap();
    assert_eq!(v2.symbols[metadata.unit_ref as usize], "seconds");
}

#[tokio::test]
async fn metadata_help_refs_valid() {
    let (_, v2) = forward_v2(&every_type()).await;
    for series in &v2.timeseries {
        let metadata = series.metadata.unwrap_or_default();
        assert!((metadata.help_ref as usize) < v2.symbols.len());
        assert!((metadata.unit_ref as usize) < v2.symbols.len());
    }
}

// ---- Exemplars ----

#[tokio::test]
async fn exemplars_value() {
    let (_, v2) = forward_v2(&rich_push()).await;
    let exemplars = &series_named(&v2, "requests_total")[0].exemplars;
    assert_eq!(exemplars.len(), 1);
    assert_eq!(exemplars[0].value, 1.0);
}

#[tokio::test]
async fn exemplars_timestamp() {
    let (_, v2) = forward_v2(&rich_push()).await;
    let counter = series_named(&v2, "requests_total")[0];
    assert_eq!(counter.exemplars[0].timestamp, 1_700_000_100_000);
    // An exemplar pushed without a timestamp takes its sample's.
    let histogram = series_named(&v2, "latency_seconds")[0];
    assert_eq!(
        histogram.exemplars[0].timestamp,
        histogram.histograms[0].timestamp
    );
}

#[tokio::test]
async fn exemplars_even_label_refs() {
    let (_, v2) = forward_v2(&rich_push()).await;
    let exemplar = &series_named(&v2, "latency_seconds")[0].exemplars[0];
    assert_eq!(exemplar.labels_refs.len(), 2);
    let (name, value) = (exemplar.labels_refs[0], exemplar.labels_refs[1]);
    assert_eq!(v2.symbols[name as usize], "trace_id");
    assert_eq!(v2.symbols[value as usize], "def");
}

#[tokio::test]
async fn exemplars_from_openmetrics() {
    let om = Push::from_body(
        PushOp::Replace,
        key(&[("job", "om")]),
        BodyFormat::OpenMetrics,
        b"# TYPE c counter\nc_total 3 # {trace_id=\"abc\"} 1 1700000000.5\n\
          # TYPE h histogram\nh_bucket{le=\"1\"} 1 # {trace_id=\"def\"} 0.5\n\
          h_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n# EOF\n",
        &PushConfig::default(),
    )
    .unwrap();
    let (_, v2) = forward_v2(&om).await;
    let counter = &series_named(&v2, "c_total")[0].exemplars[0];
    assert_eq!((counter.value, counter.timestamp), (1.0, 1_700_000_000_500));
    let bucket = series_named(&v2, "h_bucket")
        .into_iter()
        .find(|s| !s.exemplars.is_empty())
        .expect("the bucket's exemplar");
    assert!(rw2::labels(&v2, bucket).contains(&("le", "1")));
    assert_eq!(bucket.exemplars[0].timestamp, bucket.samples[0].timestamp);
}

// ---- Histograms ----

#[tokio::test]
async fn histograms_native_and_custom_buckets() {
    let (_, v2) = forward_v2(&rich_push()).await;
    let series = series_named(&v2, "latency_seconds");
    assert_eq!(series.len(), 1, "the native histogram is one series");
    assert!(series[0].samples.is_empty());
    let h = &series[0].histograms[0];
    assert_eq!(h.schema, -53);
    assert_eq!(h.custom_values, [0.1, 1.0]);
    assert_eq!(h.positive_deltas, [1, 1]);
    assert_eq!(h.sum, 1.2);
    // Its classic buckets travel as classic series too, as in 1.0.
    assert_eq!(series_named(&v2, "latency_seconds_bucket").len(), 3);
}

// ---- Retries and backoff ----

#[tokio::test]
async fn retries_no_retry_on_400_401_404() {
    for code in [400, 401, 404] {
        let (receiver, forwarder) = pair(V2Answer::Written, Protocol::Auto).await;
        receiver.respond(move |_| Fault::Status(code, "no", None));
        let err = bounded(forwarder.forward(&simple())).await.unwrap_err();
        assert!(matches!(err, SinkError::Rejected(_)), "{code}: {err:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let with_m = receiver
            .received()
            .iter()
            .filter(|r| {
                r.v2.as_ref()
                    .is_some_and(|v2| !series_named(v2, "m").is_empty())
            })
            .count();
        assert_eq!(with_m, 1, "{code} must not be retried");
    }
}

#[tokio::test]
async fn retries_retry_on_500_503_and_429() {
    let (receiver, forwarder) = pair(V2Answer::Written, Protocol::Auto).await;
    receiver.script([
        Fault::Status(500, "boom", None),
        Fault::Status(503, "later", None),
        Fault::Status(429, "slow down", None),
        Fault::Accept,
    ]);
    bounded(forwarder.forward(&simple())).await.unwrap();
    let received = receiver.received();
    assert_eq!(received.len(), 4);
    // The same 2.0 request each time.
    assert!(
        received
            .iter()
            .all(|r| r.body == received[0].body && r.v2.is_some())
    );
}

#[tokio::test]
async fn backoff_grows_between_retries() {
    let (receiver, forwarder) = pair(V2Answer::Written, Protocol::Auto).await;
    receiver.script([
        Fault::Status(500, "a", None),
        Fault::Status(500, "b", None),
        Fault::Status(500, "c", None),
        Fault::Accept,
    ]);
    bounded(forwarder.forward(&simple())).await.unwrap();
    let received = receiver.received();
    let gaps: Vec<Duration> = received.windows(2).map(|w| w[1].at - w[0].at).collect();
    // min_backoff 50 ms: attempt n waits at least 25·2ⁿ ms.
    for (gap, floor) in gaps.iter().zip([25, 50, 100]) {
        assert!(*gap >= Duration::from_millis(floor), "{gaps:?}");
    }
}

// ---- Written headers ----

#[tokio::test]
async fn partial_writes_are_reported_to_the_pusher() {
    let (receiver, forwarder) = pair(V2Answer::UnderReport, Protocol::Auto).await;
    let err = bounded(forwarder.forward(&simple())).await.unwrap_err();
    let SinkError::Rejected(message) = err else {
        panic!("expected Rejected, got {err:?}");
    };
    assert!(message.contains("samples"), "{message}");
    // Not re-sent: the backend stored part of it; not taken as 1.0-only.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = receiver.received();
    assert!(received.iter().all(|r| r.v2.is_some()), "{received:?}");
    assert_eq!(
        received
            .iter()
            .filter(|r| !series_named(r.v2.as_ref().unwrap(), "m").is_empty())
            .count(),
        1
    );
}

#[tokio::test]
async fn missing_written_headers_mean_a_1_0_receiver() {
    // The default test receiver is 1.0-only: it reads the 2.0 body as an
    // empty WriteRequest and answers 204 without Written headers.
    let (receiver, forwarder) = pair(V2Answer::Unknown, Protocol::Auto).await;
    bounded(forwarder.forward(&simple())).await.unwrap();
    let received = receiver.received();
    assert_eq!(received.len(), 1, "the 1.0 resend, stored once");
    assert!(received[0].v2.is_none());
    assert_eq!(
        received[0].request.timeseries.len(),
        3,
        "m and the push-time pair"
    );
    // The readiness probe and the 2.0 request, both read as empty.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while receiver.probes() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(receiver.probes(), 2);
}

// ---- Fallback ----

#[tokio::test]
async fn fallback_on_415() {
    let (receiver, forwarder) = pair(V2Answer::Unsupported, Protocol::Auto).await;
    bounded(forwarder.forward(&simple())).await.unwrap();
    bounded(forwarder.forward(&simple())).await.unwrap();
    let received = receiver.received();
    // The first push's resend and the second push, both 1.0; the 415 is
    // answered before the body is recorded.
    assert_eq!(received.len(), 2);
    assert!(received.iter().all(|r| r.v2.is_none() && r.accepted));
    // A fixed 2.0 never falls back: the push is refused.
    let (receiver, forwarder) = pair(V2Answer::Unsupported, Protocol::V2).await;
    let err = bounded(forwarder.forward(&simple())).await.unwrap_err();
    assert!(
        matches!(err, SinkError::Rejected(ref m) if m.contains("415")),
        "{err:?}"
    );
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn fallback_headers_change_with_the_protocol() {
    let (receiver, forwarder) = pair(V2Answer::Unknown, Protocol::Auto).await;
    bounded(forwarder.forward(&simple())).await.unwrap();
    let received = &receiver.received()[0];
    assert_eq!(header(received, "content-type"), ["application/x-protobuf"]);
    assert_eq!(
        header(received, "x-prometheus-remote-write-version"),
        ["0.1.0"]
    );
}

#[tokio::test]
async fn no_fallback_on_2xx_with_written_headers() {
    let (receiver, forwarder) = pair(V2Answer::Written, Protocol::Auto).await;
    for _ in 0..3 {
        bounded(forwarder.forward(&simple())).await.unwrap();
    }
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.v2.is_some()));
}

// ---- 1.0 compatibility ----

#[tokio::test]
async fn compat_1_0_has_no_symbols_table_or_2_0_fields() {
    let (receiver, forwarder) = pair(V2Answer::Written, Protocol::V1).await;
    bounded(forwarder.forward(&rich_push())).await.unwrap();
    let received = &receiver.received()[0];
    assert!(received.v2.is_none());
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&received.body)
        .unwrap();
    // A 2.0 decoder finds neither symbols nor 2.0 series in a 1.0 body.
    let as_v2 = Request::decode(raw.as_slice()).unwrap();
    assert!(as_v2.symbols.is_empty() && as_v2.timeseries.is_empty());
    // No exemplars and no start timestamps: 1.0 carries the series only.
    let request = &received.request;
    assert!(request.timeseries.iter().all(|s| s.exemplars.is_empty()));
    let native = request
        .timeseries
        .iter()
        .find(|s| !s.histograms.is_empty())
        .unwrap();
    assert_eq!(native.histograms[0].custom_values, [0.1, 1.0]);
}
