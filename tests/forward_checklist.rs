//! What a remote_write 1.0 sender must do, as a checklist of numbered rows
//! (1–29): one test per applicable row, each named after the row's
//! requirement and documented with the rule itself, against the in-process
//! recording receiver.
//!
//! The rows that only the 2.0 spec states about the v2 message are tested
//! with the 2.0 rows in `forward_checklist_rw2.rs`: 19 (v2 `labels_refs`,
//! samples vs histograms in one `TimeSeries`: `symbols_*`, `labels_*`),
//! 26 (415 fallback between content types: `fallback_*`), 28 and 29 (the
//! v2 `X-Prometheus-Remote-Write-*-Written` response headers:
//! `partial_writes_*`, `missing_written_headers_*`). Rows 25 and 27
//! are 2.0 text too but describe what a 1.0 sender may do as well
//! (`Retry-After`, re-sending a whole request), so they are tested. Rows
//! 30–38 are 2.0-only too; 39 and 40 ("out of scope but recommended")
//! are outside this list: outages are exercised in `forward_outage.rs`,
//! auth and TLS in `forward_security.rs`.
//!
//! Pushes are built as the push handler builds them, with `Push::from_body`:
//! the body is parsed and validated against its grouping key (labels
//! sorted; the forwarder merges the grouping labels). A push the text
//! format cannot express goes through the same function as a protobuf body.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::receiver::{Fault, Received, Receiver};
use common::{STALE_NAN_BITS, bounded};
use prost::Message;
use pushrelay::config::{ExtraHeaders, PushConfig, Secret};
use pushrelay::exposition::{BodyFormat, Families};
use pushrelay::forward::Forwarder;
use pushrelay::proto::client::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use pushrelay::proto::prompb::{TimeSeries, WriteRequest};
use pushrelay::push::grouping::GroupingLabels;
use pushrelay::push::{GroupingKey, Push, PushOp, Rejection, SinkError};
use pushrelay::security::outbound::extra_header_map;

/// The stream identifier chunk every snappy framed stream starts with.
const SNAPPY_FRAMED_MAGIC: &[u8] = b"\xff\x06\x00\x00sNaPpY";

fn key(pairs: &[(&str, &str)]) -> GroupingKey {
    GroupingKey::new(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())))
}

/// Parses and validates a text body for `key` as the push handler does.
fn try_text_push(
    op: PushOp,
    pairs: &[(&str, &str)],
    body: &str,
    push_config: &PushConfig,
) -> Result<Push, Rejection> {
    Push::from_body(
        op,
        key(pairs),
        BodyFormat::Text,
        body.as_bytes(),
        push_config,
    )
}

/// `raw`'s families sent as a protobuf body (which, unlike text, can carry
/// any name and repeat a label) and built into a push as the handler does.
fn protobuf_push(raw: Push, push_config: &PushConfig) -> Result<Push, Rejection> {
    let mut body = Vec::new();
    for family in raw.families.to_model().iter() {
        family
            .encode_length_delimited(&mut body)
            .expect("a Vec grows as needed");
    }
    Push::from_body(
        raw.op,
        raw.key,
        BodyFormat::ProtobufDelimited,
        &body,
        push_config,
    )
}

/// A push without the consistency check, as `push.disable_consistency_check`
/// lets it through.
fn unchecked_protobuf_push(raw: Push) -> Push {
    let unchecked = PushConfig {
        disable_consistency_check: true,
        ..PushConfig::default()
    };
    protobuf_push(raw, &unchecked).expect("accepted without the consistency check")
}

fn text_push(op: PushOp, pairs: &[(&str, &str)], body: &str) -> Push {
    try_text_push(op, pairs, body, &PushConfig::default()).expect("a valid push")
}

fn delete(pairs: &[(&str, &str)]) -> Push {
    Push {
        op: PushOp::Delete,
        key: key(pairs),
        families: Vec::new().into(),
        received_at: SystemTime::now(),
        tenant: None,
    }
}

/// A gauge push built without validation: `labels` are sent as given.
fn raw_gauge_push(job: &str, name: &str, labels: &[(&str, &str)], value: f64) -> Push {
    let label = labels
        .iter()
        .map(|(n, v)| LabelPair {
            name: Some(n.to_string()),
            value: Some(v.to_string()),
        })
        .collect();
    Push {
        op: PushOp::Replace,
        key: key(&[("job", job)]),
        families: vec![MetricFamily {
            name: Some(name.to_string()),
            help: Some("help".into()),
            r#type: Some(MetricType::Gauge as i32),
            metric: vec![Metric {
                label,
                gauge: Some(Gauge { value: Some(value) }),
                ..Default::default()
            }],
            unit: None,
        }]
        .into(),
        received_at: SystemTime::now(),
        tenant: None,
    }
}

/// Pushes `raw` with the consistency check off, as
/// `push.disable_consistency_check` does, then checks the forwarder refuses
/// it, naming `culprit`, without sending anything.
async fn assert_unchecked_push_refused_unsent(raw: Push, culprit: &str) {
    assert_refused_unsent(unchecked_protobuf_push(raw), culprit).await;
}

/// Checks the forwarder refuses `push`, naming `culprit`, without sending
/// anything.
async fn assert_refused_unsent(push: Push, culprit: &str) {
    let receiver = Receiver::start().await;
    let forwarder = Forwarder::new(&receiver.forward_config()).unwrap();
    match bounded(forwarder.forward(&push)).await {
        Err(SinkError::Rejected(message)) => {
            assert!(message.contains(&format!("{culprit:?}")), "{message}")
        }
        other => panic!("{culprit}: expected Rejected, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(receiver.received().is_empty(), "{culprit} was sent");
}

fn name_of(series: &TimeSeries) -> &str {
    series
        .labels
        .iter()
        .find(|l| l.name == "__name__")
        .map_or("", |l| l.value.as_str())
}

/// A series' labels as (name, value) pairs, in wire order.
fn labels_of(series: &TimeSeries) -> Vec<(&str, &str)> {
    series
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect()
}

fn series_named<'a>(request: &'a WriteRequest, name: &str) -> Vec<&'a TimeSeries> {
    request
        .timeseries
        .iter()
        .filter(|s| name_of(s) == name)
        .collect()
}

fn has_series(request: &WriteRequest, name: &str) -> bool {
    !series_named(request, name).is_empty()
}

/// Every series the receiver got, in arrival order.
fn all_series(received: &[Received]) -> Vec<TimeSeries> {
    received
        .iter()
        .flat_map(|r| r.request.timeseries.clone())
        .collect()
}

fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Forwards one push to a fresh receiver and returns the single request.
async fn forward_one(push: &Push) -> Received {
    let receiver = Receiver::start().await;
    let forwarder = Forwarder::new(&receiver.forward_config()).unwrap();
    bounded(forwarder.forward(push)).await.unwrap();
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:?}");
    received.into_iter().next().unwrap()
}

/// A push of several families of every type, for rows about all series.
fn every_type_push() -> Push {
    text_push(
        PushOp::Replace,
        &[("job", "types"), ("instance", "i1")],
        "# TYPE c counter\nc{a=\"1\"} 1\n\
         # TYPE g gauge\ng 2\n\
         # TYPE u untyped\nu{b=\"x\"} 3\n\
         # TYPE s summary\ns{quantile=\"0.5\"} 4\ns_sum 5\ns_count 6\n\
         # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n\
         # TYPE colon:name gauge\ncolon:name{Z=\"z\"} 7\n",
    )
}

/// Row 1: each write is an HTTP POST to the URL the user configured (the
/// receiver chooses the path).
#[tokio::test]
async fn row_01_each_write_is_an_http_post_to_the_configured_url() {
    let receiver = Receiver::start().await;
    let mut config = receiver.forward_config();
    let custom = receiver
        .url
        .replace("/api/v1/write", "/custom/receive?tenant=a");
    config.url = Some(custom);
    let forwarder = Forwarder::new(&config).unwrap();
    for value in ["1", "2"] {
        let push = text_push(PushOp::Replace, &[("job", "j")], &format!("m {value}\n"));
        bounded(forwarder.forward(&push)).await.unwrap();
    }
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    for r in &received {
        assert_eq!(r.method, http::Method::POST);
        assert_eq!(r.path, "/custom/receive?tenant=a");
    }
}

/// Row 2: the body is a protobuf message compressed with the snappy
/// *block* format, never the framed (stream) format.
#[tokio::test]
async fn row_02_body_is_snappy_block_not_framed() {
    // Repetitive enough that compression actually kicks in.
    let body: String = (0..50)
        .map(|i| format!("m{{i=\"{i}\",zone=\"europe-west\"}} {i}\n"))
        .collect();
    let received = forward_one(&text_push(PushOp::Replace, &[("job", "j")], &body)).await;
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&received.body)
        .expect("a snappy block");
    let decoded = <WriteRequest as prost::Message>::decode(raw.as_slice()).unwrap();
    assert_eq!(decoded, received.request);
    assert_eq!(series_named(&decoded, "m").len(), 50);
    assert!(received.body.len() < raw.len(), "compressed");
    assert!(!received.body.starts_with(SNAPPY_FRAMED_MAGIC));
    let mut framed = snap::read::FrameDecoder::new(&received.body[..]);
    let mut out = Vec::new();
    assert!(
        std::io::Read::read_to_end(&mut framed, &mut out).is_err(),
        "the body must not be a framed stream"
    );
}

/// Row 3: `Content-Encoding: snappy`.
#[tokio::test]
async fn row_03_content_encoding_snappy() {
    let received = forward_one(&text_push(PushOp::Replace, &[("job", "j")], "m 1\n")).await;
    let values: Vec<_> = received
        .headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .collect();
    assert_eq!(values, ["snappy"]);
}

/// Row 4: `Content-Type: application/x-protobuf` (the bare form, as toward
/// a 1.x receiver).
#[tokio::test]
async fn row_04_content_type() {
    let received = forward_one(&text_push(PushOp::Replace, &[("job", "j")], "m 1\n")).await;
    let values: Vec<_> = received
        .headers
        .get_all(http::header::CONTENT_TYPE)
        .iter()
        .collect();
    assert_eq!(values, ["application/x-protobuf"]);
}

/// Row 5: `X-Prometheus-Remote-Write-Version: 0.1.0` (a 1.0 sender).
#[tokio::test]
async fn row_05_version_header_0_1_0() {
    let received = forward_one(&text_push(PushOp::Replace, &[("job", "j")], "m 1\n")).await;
    let values: Vec<_> = received
        .headers
        .get_all("x-prometheus-remote-write-version")
        .iter()
        .collect();
    assert_eq!(values, ["0.1.0"]);
}

/// Row 6: `User-Agent: <name>/<version>`, in RFC 9110 product syntax.
#[tokio::test]
async fn row_06_user_agent_name_slash_version() {
    let received = forward_one(&text_push(PushOp::Replace, &[("job", "j")], "m 1\n")).await;
    let user_agent = received.headers[http::header::USER_AGENT].to_str().unwrap();
    assert_eq!(user_agent, concat!("pushrelay/", env!("CARGO_PKG_VERSION")));
    // product = token ["/" product-version], product-version = token.
    let is_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    let (name, version) = user_agent.split_once('/').unwrap();
    assert!(is_token(name) && is_token(version), "{user_agent}");
}

/// Row 7: configured headers may not override or add the four reserved
/// ones; pushrelay refuses such a configuration at start, naming the
/// header, and other configured headers travel alongside the reserved ones.
#[tokio::test]
async fn row_07_configured_headers_cannot_override_reserved_ones() {
    let receiver = Receiver::start().await;
    for reserved in [
        "Content-Encoding",
        "content-type",
        "X-Prometheus-Remote-Write-Version",
        "USER-AGENT",
    ] {
        let headers = ExtraHeaders(vec![(reserved.to_string(), Secret::new("evil"))]);
        let err = extra_header_map(&headers).unwrap_err();
        assert!(err.problem.contains(reserved), "{err}");
        let mut config = receiver.forward_config();
        config.headers = headers;
        let err = Forwarder::new(&config).err().expect("refused at start");
        assert!(err.contains(reserved), "{err}");
        assert!(!err.contains("evil"), "the value stays secret: {err}");
    }
    let mut config = receiver.forward_config();
    config.headers = ExtraHeaders(vec![("X-Custom".to_string(), Secret::new("kept"))]);
    let forwarder = Forwarder::new(&config).unwrap();
    let push = text_push(PushOp::Replace, &[("job", "j")], "m 1\n");
    bounded(forwarder.forward(&push)).await.unwrap();
    let headers = &receiver.received()[0].headers;
    assert_eq!(headers["x-custom"], "kept");
    assert_eq!(headers["content-encoding"], "snappy");
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(headers["x-prometheus-remote-write-version"], "0.1.0");
}

/// Row 8: timestamps are int64 milliseconds since the Unix epoch (the
/// push's receive time) and values are float64, sent bit for bit.
#[tokio::test]
async fn row_08_timestamps_are_milliseconds() {
    let mut push = text_push(
        PushOp::Replace,
        &[("job", "j")],
        "m 0.1\nbig 1.2345678901234567e+300\n",
    );
    // 2023-11-14T22:13:20.123456789Z: sub-millisecond parts are cut.
    push.received_at = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
    let received = forward_one(&push).await;
    let request = &received.request;
    assert!(!request.timeseries.is_empty());
    for series in &request.timeseries {
        assert_eq!(series.samples.len(), 1);
        assert_eq!(series.samples[0].timestamp, 1_700_000_000_123);
    }
    let value = |name| series_named(request, name)[0].samples[0].value.to_bits();
    assert_eq!(value("m"), 0.1f64.to_bits());
    assert_eq!(value("big"), 1.234_567_890_123_456_7e300f64.to_bits());
    // push_time_seconds keeps the sub-millisecond part: a float64 value.
    let push_time = series_named(request, "push_time_seconds")[0].samples[0].value;
    assert!(
        (push_time - 1_700_000_000.123_457).abs() < 1e-6,
        "{push_time}"
    );

    // Now: the timestamp is the receive time in ms.
    let live = text_push(PushOp::Replace, &[("job", "j")], "m 1\n");
    let received = forward_one(&live).await;
    let ts = series_named(&received.request, "m")[0].samples[0].timestamp;
    assert_eq!(ts, unix_ms(live.received_at));
}

/// Captures what the forwarder logs while the guard lives (the test runtime
/// is single-threaded, so the forwarder's tasks log on this thread).
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    fn start(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Row 9: response bodies are never parsed for meaning: a success with a
/// body that reads like an error is a success, an error body that reads
/// like an instruction changes nothing; error bodies are logged verbatim
/// and handed to the pusher as text.
#[tokio::test]
async fn row_09_error_bodies_are_logged_and_never_parsed() {
    const REFUSAL: &str = r#"{"status":"error","retry":true,"error":"out of order sample"}"#;
    const FAILURE: &str = r#"{"retry":false} <html>garbage</html>"#;
    let logs = LogCapture::default();
    let _guard = logs.start();
    let receiver = Receiver::start().await;
    let failed_once = AtomicBool::new(false);
    receiver.respond(move |request| {
        let job = request
            .timeseries
            .iter()
            .flat_map(|s| s.labels.iter())
            .find(|l| l.name == "job")
            .map_or("", |l| l.value.as_str());
        match job {
            "ok" => Fault::Status(
                200,
                r#"{"status":"error","error":"everything failed"}"#,
                None,
            ),
            "refused" if has_series(request, "m") => Fault::Status(400, REFUSAL, None),
            "retried" if !failed_once.swap(true, Ordering::SeqCst) => {
                Fault::Status(500, FAILURE, None)
            }
            _ => Fault::Accept,
        }
    });
    let forwarder = Forwarder::new(&receiver.forward_config()).unwrap();
    let push = |job| text_push(PushOp::Replace, &[("job", job)], "m 1\n");

    // 200 with an error-looking body: accepted.
    bounded(forwarder.forward(&push("ok"))).await.unwrap();
    // 400 whose body asks for a retry: refused once, body passed as text.
    let err = bounded(forwarder.forward(&push("refused")))
        .await
        .unwrap_err();
    match err {
        SinkError::Rejected(message) => {
            assert!(message.contains("400 Bad Request"), "{message}");
            assert!(message.contains(REFUSAL), "{message}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    // 500 whose body says not to retry: retried all the same.
    bounded(forwarder.forward(&push("retried"))).await.unwrap();
    let received = receiver.received();
    let attempts = |job: &str| {
        received
            .iter()
            .filter(|r| has_series(&r.request, "m"))
            .filter(|r| {
                r.request
                    .timeseries
                    .iter()
                    .any(|s| labels_of(s).contains(&("job", job)))
            })
            .count()
    };
    assert_eq!(attempts("ok"), 1);
    assert_eq!(attempts("refused"), 1);
    assert_eq!(attempts("retried"), 2);
    let logged = logs.text();
    assert!(logged.contains(REFUSAL), "{logged}");
    assert!(logged.contains(FAILURE), "{logged}");
}

/// Row 10: every request carries the complete label set of each sample;
/// a series pushed again is sent with all its labels again.
#[tokio::test]
async fn row_10_complete_label_set_with_every_sample() {
    let receiver = Receiver::start().await;
    let forwarder = Forwarder::new(&receiver.forward_config()).unwrap();
    for value in ["1", "2"] {
        let push = text_push(
            PushOp::Replace,
            &[("job", "j"), ("instance", "i")],
            &format!("m{{a=\"1\",b=\"2\"}} {value}\n"),
        );
        bounded(forwarder.forward(&push)).await.unwrap();
    }
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    let expected = [
        ("__name__", "m"),
        ("a", "1"),
        ("b", "2"),
        ("instance", "i"),
        ("job", "j"),
    ];
    for (r, value) in received.iter().zip([1.0, 2.0]) {
        let m = series_named(&r.request, "m");
        assert_eq!(m.len(), 1);
        assert_eq!(labels_of(m[0]), expected);
        assert_eq!(m[0].samples[0].value, value);
        let push_time = series_named(&r.request, "push_time_seconds");
        assert_eq!(
            labels_of(push_time[0]),
            [
                ("__name__", "push_time_seconds"),
                ("instance", "i"),
                ("job", "j")
            ]
        );
    }
}

/// Row 11: every series carries one non-empty `__name__`, summaries and
/// histograms' derived series included.
#[tokio::test]
#[allow(non_snake_case)] // the name spells the label `__name__`
async fn row_11_every_series_has___name__() {
    let received = forward_one(&every_type_push()).await;
    let mut names: Vec<&str> = Vec::new();
    for series in &received.request.timeseries {
        let name_labels: Vec<_> = series
            .labels
            .iter()
            .filter(|l| l.name == "__name__")
            .collect();
        assert_eq!(name_labels.len(), 1, "{:?}", labels_of(series));
        assert!(!name_labels[0].value.is_empty());
        names.push(&name_labels[0].value);
    }
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "c",
            "colon:name",
            "g",
            "h_bucket",
            "h_bucket",
            "h_count",
            "h_sum",
            "push_failure_time_seconds",
            "push_time_seconds",
            "s",
            "s_count",
            "s_sum",
            "u"
        ]
    );
}

/// Row 12: no label name repeats within a series: a body label named like a
/// grouping label is sent once (with the grouping value), and a body that
/// repeats a label (accepted when the consistency check is off) is sent
/// with it once.
#[tokio::test]
async fn row_12_no_repeated_label_names() {
    let push = text_push(
        PushOp::Replace,
        &[("job", "j"), ("instance", "url")],
        "m{instance=\"body\",job=\"other\",a=\"1\"} 1\n",
    );
    let received = forward_one(&push).await;
    assert_eq!(
        labels_of(series_named(&received.request, "m")[0]),
        [
            ("__name__", "m"),
            ("a", "1"),
            ("instance", "url"),
            ("job", "j")
        ]
    );

    // Only a protobuf body can repeat a label (the text parser refuses
    // it); without the consistency check validation lets it through.
    let repeated = unchecked_protobuf_push(raw_gauge_push(
        "j",
        "m",
        &[("a", "1"), ("a", "2"), ("job", "j")],
        1.0,
    ));
    let labels = &repeated.families.to_model()[0].metric[0].label;
    assert_eq!(labels.iter().filter(|l| l.name() == "a").count(), 2);
    let received = forward_one(&repeated).await;
    for series in &received.request.timeseries {
        let names: Vec<&str> = series.labels.iter().map(|l| l.name.as_str()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(names.len(), unique.len(), "{names:?}");
    }
    let m = labels_of(series_named(&received.request, "m")[0]);
    assert_eq!(m.iter().filter(|(n, _)| *n == "a").count(), 1, "{m:?}");
}

/// Row 13: label names are sorted by their bytes: upper case before `_`,
/// `_A` before `__name__` before `_a`, lower case last; `le` and
/// `quantile` land in place.
#[tokio::test]
async fn row_13_label_names_sorted() {
    let push = text_push(
        PushOp::Replace,
        &[("job", "j")],
        "m{zeta=\"z\",Upper=\"u\",_a=\"y\",alpha=\"a\",B=\"b\",_A=\"x\",a_=\"c\"} 1\n\
         # TYPE h histogram\nh_bucket{z=\"1\",a=\"1\",le=\"1\"} 1\nh_bucket{z=\"1\",a=\"1\",le=\"+Inf\"} 1\n\
         h_sum{z=\"1\",a=\"1\"} 1\nh_count{z=\"1\",a=\"1\"} 1\n\
         # TYPE s summary\ns{r=\"1\",p=\"1\",quantile=\"0.9\"} 1\ns_sum{r=\"1\",p=\"1\"} 1\ns_count{r=\"1\",p=\"1\"} 1\n",
    );
    let received = forward_one(&push).await;
    let names = |series: &TimeSeries| -> Vec<String> {
        series.labels.iter().map(|l| l.name.clone()).collect()
    };
    assert_eq!(
        names(series_named(&received.request, "m")[0]),
        [
            "B", "Upper", "_A", "__name__", "_a", "a_", "alpha", "job", "zeta"
        ]
    );
    assert_eq!(
        names(series_named(&received.request, "h_bucket")[0]),
        ["__name__", "a", "job", "le", "z"]
    );
    assert_eq!(
        names(series_named(&received.request, "s")[0]),
        ["__name__", "job", "p", "quantile", "r"]
    );
    for series in &received.request.timeseries {
        let names: Vec<&[u8]> = series.labels.iter().map(|l| l.name.as_bytes()).collect();
        assert!(
            names.windows(2).all(|w| w[0] < w[1]),
            "{:?}",
            labels_of(series)
        );
    }
}

/// Row 14: no empty label names and no empty label values: `k=""` in the
/// body or in the grouping key (the Pushgateway's `instance=""`) is
/// dropped, the series still sent.
#[tokio::test]
async fn row_14_no_empty_names_or_values() {
    let receiver = Receiver::start().await;
    let forwarder = Forwarder::new(&receiver.forward_config()).unwrap();
    // No instance in the URL: the merged labels the sinks see have
    // instance="".
    let implicit = text_push(PushOp::Replace, &[("job", "j")], "m{e=\"\",a=\"1\"} 1\n");
    assert!(
        GroupingLabels::new(&implicit.key)
            .merge(&implicit.families.to_model()[0].metric[0].label)
            .any(|l| l.name() == "instance" && l.value().is_empty())
    );
    bounded(forwarder.forward(&implicit)).await.unwrap();
    let explicit = text_push(
        PushOp::Replace,
        &[("job", "k"), ("empty", "")],
        "m{a=\"1\"} 1\n",
    );
    bounded(forwarder.forward(&explicit)).await.unwrap();
    bounded(forwarder.forward(&delete(&[("job", "k"), ("empty", "")])))
        .await
        .unwrap();
    let series = all_series(&receiver.received());
    // m and push_time_seconds and push_failure_time_seconds per push, and
    // the DELETE's three stale markers.
    assert_eq!(series.len(), 9);
    for s in &series {
        assert!(
            s.labels
                .iter()
                .all(|l| !l.name.is_empty() && !l.value.is_empty()),
            "{:?}",
            labels_of(s)
        );
    }
    let m: Vec<_> = series.iter().filter(|s| name_of(s) == "m").collect();
    assert_eq!(
        labels_of(m[0]),
        [("__name__", "m"), ("a", "1"), ("job", "j")]
    );
    assert_eq!(
        labels_of(m[1]),
        [("__name__", "m"), ("a", "1"), ("job", "k")]
    );

    // An empty label name can only come in a protobuf body.
    let empty_name = raw_gauge_push("j", "m", &[("", "1"), ("job", "j")], 1.0);
    assert_unchecked_push_refused_unsent(empty_name, "").await;
}

fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Row 15: what the forwarder sends follows the 1.0 grammar: metric names
/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names `[a-zA-Z_][a-zA-Z0-9_]*`,
/// values any UTF-8. Names outside it are refused before they reach the
/// wire.
#[tokio::test]
async fn row_15_names_match_the_1_0_grammar() {
    let mut push = every_type_push();
    let utf8 = text_push(
        PushOp::Replace,
        &[("job", "types"), ("instance", "i1")],
        "v{text=\"äöü ✓ \\\"quoted\\\" \\n line\"} 1\n",
    );
    push.families
        .to_mut()
        .extend(utf8.families.to_model().iter().cloned());
    let received = forward_one(&push).await;
    assert_eq!(received.request.timeseries.len(), 14);
    for series in &received.request.timeseries {
        assert!(is_metric_name(name_of(series)), "{:?}", labels_of(series));
        for label in &series.labels {
            assert!(is_label_name(&label.name), "{:?}", labels_of(series));
        }
    }
    let v = labels_of(series_named(&received.request, "v")[0]);
    assert!(v.contains(&("text", "äöü ✓ \"quoted\" \n line")), "{v:?}");

    // A protobuf push can carry any name; validation refuses it.
    let bad = raw_gauge_push("j", "m", &[("bad-name", "1"), ("job", "j")], 1.0);
    let rejection =
        protobuf_push(bad, &PushConfig::default()).expect_err("an invalid label name is refused");
    assert!(
        rejection.message.contains("bad-name"),
        "{}",
        rejection.message
    );
    let bad = raw_gauge_push("j", "1m", &[("job", "j")], 1.0);
    let rejection =
        protobuf_push(bad, &PushConfig::default()).expect_err("an invalid metric name is refused");
    assert!(rejection.message.contains("1m"), "{}", rejection.message);
    // Without the consistency check the forwarder refuses them itself.
    let bad_label = raw_gauge_push("j", "m", &[("bad-name", "1"), ("job", "j")], 1.0);
    assert_unchecked_push_refused_unsent(bad_label, "bad-name").await;
    let bad_metric = raw_gauge_push("j", "1m", &[("job", "j")], 1.0);
    assert_unchecked_push_refused_unsent(bad_metric, "1m").await;
}

/// Row 16: no label besides `__name__` starting with `__` is sent: a push
/// carrying one is refused by validation, and the forwarder itself never
/// lets one through.
#[tokio::test]
#[allow(non_snake_case)] // the name spells the label `__name__`
async fn row_16_no_reserved___labels_sent_besides___name__() {
    let refused = try_text_push(
        PushOp::Replace,
        &[("job", "j")],
        "m{__meta=\"x\"} 1\n",
        &PushConfig::default(),
    );
    let rejection = refused.expect_err("a __ label is refused");
    assert_eq!(rejection.status, http::StatusCode::BAD_REQUEST);
    assert!(
        rejection.message.contains("__meta"),
        "{}",
        rejection.message
    );
    // Without the consistency check the forwarder refuses it itself.
    let reserved = raw_gauge_push("j", "m", &[("__meta", "x"), ("job", "j")], 1.0);
    assert_unchecked_push_refused_unsent(reserved, "__meta").await;
    // A text body's label names are legal by its grammar, and the
    // forwarder trusts that, but a `__` prefix is still refused.
    let unchecked = PushConfig {
        disable_consistency_check: true,
        ..PushConfig::default()
    };
    let text = try_text_push(
        PushOp::Replace,
        &[("job", "j")],
        "m{a=\"1\",__meta=\"x\"} 1\n",
        &unchecked,
    )
    .expect("accepted without the consistency check");
    assert_refused_unsent(text, "__meta").await;
    let openmetrics = Push::from_body(
        PushOp::Replace,
        key(&[("job", "j")]),
        BodyFormat::OpenMetrics,
        b"# TYPE m gauge\nm{a=\"1\",__meta=\"x\"} 1\n# EOF\n",
        &unchecked,
    )
    .expect("accepted without the consistency check");
    assert!(
        matches!(openmetrics.families, Families::Indexed(_)),
        "the OpenMetrics body is indexed"
    );
    assert_refused_unsent(openmetrics, "__meta").await;

    let received = forward_one(&every_type_push()).await;
    for series in &received.request.timeseries {
        let reserved: Vec<&str> = series
            .labels
            .iter()
            .map(|l| l.name.as_str())
            .filter(|n| n.starts_with("__"))
            .collect();
        assert_eq!(reserved, ["__name__"], "{:?}", labels_of(series));
    }
}

/// Row 17: one series' samples go out oldest first with strictly increasing
/// timestamps, even when many pushes of one group arrive within one
/// millisecond and concurrently. POSTs (which do not replace each other)
/// each keep their sample, a millisecond apart; PUTs within one
/// millisecond collapse to the newest state (issue 14: no stamp may run
/// ahead of the clock), so fewer samples go out, still in order.
#[tokio::test]
async fn row_17_per_series_samples_in_timestamp_order() {
    for op in [PushOp::Merge, PushOp::Replace] {
        let receiver = Receiver::start().await;
        // Slow answers make pushes pile up and share requests.
        receiver.respond(|_| Fault::Delay(Duration::from_millis(20), Box::new(Fault::Accept)));
        let mut config = receiver.forward_config();
        config.concurrency = 4;
        let forwarder = Arc::new(Forwarder::new(&config).unwrap());
        let received_at = SystemTime::now();
        let mut handles = Vec::new();
        for i in 0..60 {
            let f = forwarder.clone();
            handles.push(tokio::spawn(async move {
                // All within one millisecond as far as the pushes say.
                let mut p = text_push(op, &[("job", "same")], &format!("m {i}\n"));
                p.received_at = received_at;
                f.forward(&p).await
            }));
        }
        for handle in handles {
            bounded(handle).await.unwrap().unwrap();
        }
        let answered = unix_ms(SystemTime::now());
        let samples: Vec<(i64, f64)> = all_series(&receiver.received())
            .iter()
            .filter(|s| name_of(s) == "m")
            .flat_map(|s| s.samples.iter().map(|x| (x.timestamp, x.value)))
            .collect();
        if op == PushOp::Merge {
            assert_eq!(samples.len(), 60);
        } else {
            assert!((1..60).contains(&samples.len()), "{samples:?}");
        }
        assert!(samples.windows(2).all(|w| w[0].0 < w[1].0), "{samples:?}");
        assert_eq!(samples[0].0, unix_ms(received_at));
        assert!(samples.iter().all(|s| s.0 <= answered), "{samples:?}");
    }
}

/// Row 18: pushes that queue while a request is in flight share the next
/// request (many series per request).
#[tokio::test]
async fn row_18_pushes_that_arrive_together_share_requests() {
    let receiver = Receiver::start().await;
    receiver.script([Fault::Delay(
        Duration::from_millis(300),
        Box::new(Fault::Accept),
    )]);
    let mut config = receiver.forward_config();
    config.concurrency = 1;
    let forwarder = Arc::new(Forwarder::new(&config).unwrap());
    let gate = {
        let f = forwarder.clone();
        tokio::spawn(async move {
            f.forward(&text_push(PushOp::Replace, &[("job", "gate")], "gate 1\n"))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut handles = Vec::new();
    for i in 0..5 {
        let f = forwarder.clone();
        handles.push(tokio::spawn(async move {
            let job = format!("j{i}");
            f.forward(&text_push(PushOp::Replace, &[("job", &job)], "m 1\n"))
                .await
        }));
    }
    bounded(gate).await.unwrap().unwrap();
    for handle in handles {
        bounded(handle).await.unwrap().unwrap();
    }
    let received = receiver.received();
    assert_eq!(received.len(), 2, "the gate, then one shared request");
    assert_eq!(series_named(&received[1].request, "m").len(), 5);
    assert_eq!(
        series_named(&received[1].request, "push_time_seconds").len(),
        5
    );
}

/// Row 20: a stale marker is the NaN with bits `0x7ff0000000000002`, and
/// that pattern means nothing else: a pushed NaN is sent as another NaN.
#[tokio::test]
async fn row_20_stale_marker_bit_pattern() {
    let receiver = Receiver::start().await;
    let forwarder = Forwarder::new(&receiver.forward_config()).unwrap();
    let nan = text_push(PushOp::Replace, &[("job", "j")], "m NaN\n");
    bounded(forwarder.forward(&nan)).await.unwrap();
    bounded(forwarder.forward(&delete(&[("job", "j")])))
        .await
        .unwrap();
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    let pushed = series_named(&received[0].request, "m")[0].samples[0].value;
    assert!(pushed.is_nan());
    assert_ne!(pushed.to_bits(), STALE_NAN_BITS);
    let ended: Vec<(&str, u64)> = received[1]
        .request
        .timeseries
        .iter()
        .map(|s| (name_of(s), s.samples[0].value.to_bits()))
        .collect();
    assert_eq!(ended.len(), 3, "{ended:?}");
    for (name, bits) in ended {
        assert_eq!(bits, STALE_NAN_BITS, "{name}");
    }

    // A protobuf push can carry the stale bit pattern itself; it must not
    // reach the backend as a stale marker.
    let stale_value = raw_gauge_push("p", "m", &[("job", "p")], f64::from_bits(STALE_NAN_BITS));
    bounded(forwarder.forward(&stale_value)).await.unwrap();
    let sent = series_named(&receiver.received()[2].request, "m")[0].samples[0].value;
    assert!(sent.is_nan());
    assert_ne!(sent.to_bits(), STALE_NAN_BITS);
}

fn stale_markers(receiver: &Receiver) -> Vec<String> {
    let mut markers: Vec<String> = all_series(&receiver.received())
        .iter()
        .filter(|s| {
            s.samples
                .iter()
                .any(|x| x.value.to_bits() == STALE_NAN_BITS)
        })
        .map(|s| {
            labels_of(s)
                .iter()
                .map(|(n, v)| format!("{n}={v:?}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    markers.sort();
    markers
}

/// Row 21: a series that will not be appended any more gets a stale marker:
/// a PUT that drops it, a DELETE of its group. A POST of another family
/// ends nothing.
#[tokio::test]
async fn row_21_stale_markers_on_discontinuation() {
    let receiver = Receiver::start().await;
    let forwarder = Forwarder::new(&receiver.forward_config()).unwrap();
    let s = &[("job", "s")];
    let both = text_push(PushOp::Replace, s, "m{i=\"1\"} 1\nm{i=\"2\"} 2\n");
    bounded(forwarder.forward(&both)).await.unwrap();
    assert!(stale_markers(&receiver).is_empty());

    let one = text_push(PushOp::Replace, s, "m{i=\"1\"} 1\n");
    bounded(forwarder.forward(&one)).await.unwrap();
    assert_eq!(stale_markers(&receiver), [r#"__name__="m",i="2",job="s""#]);

    let other = text_push(PushOp::Merge, s, "n 1\n");
    bounded(forwarder.forward(&other)).await.unwrap();
    assert_eq!(stale_markers(&receiver).len(), 1);

    bounded(forwarder.forward(&delete(s))).await.unwrap();
    assert_eq!(
        stale_markers(&receiver),
        [
            r#"__name__="m",i="1",job="s""#,
            r#"__name__="m",i="2",job="s""#,
            r#"__name__="n",job="s""#,
            r#"__name__="push_failure_time_seconds",job="s""#,
            r#"__name__="push_time_seconds",job="s""#,
        ]
    );
    // A DELETE of an unknown group needs no request.
    let before = receiver.received().len();
    bounded(forwarder.forward(&delete(&[("job", "never")])))
        .await
        .unwrap();
    assert_eq!(receiver.received().len(), before);
}

/// Row 22: every 5xx is retried, with a growing (exponential, jittered)
/// backoff.
#[tokio::test]
async fn row_22_5xx_retried_with_backoff() {
    let receiver = Receiver::start().await;
    receiver.script([
        Fault::Status(500, "boom", None),
        Fault::Status(503, "maintenance", None),
        Fault::Status(502, "bad gateway", None),
        Fault::Status(504, "gateway timeout", None),
        Fault::Accept,
    ]);
    let forwarder = Forwarder::new(&receiver.forward_config()).unwrap();
    let push = text_push(PushOp::Replace, &[("job", "j")], "m 1\n");
    bounded(forwarder.forward(&push)).await.unwrap();
    let received = receiver.received();
    assert_eq!(received.len(), 5);
    assert!(received[4].accepted);
    let gaps: Vec<Duration> = received.windows(2).map(|w| w[1].at - w[0].at).collect();
    eprintln!("retry gaps (min_backoff 50ms, max 400ms): {gaps:?}");
    // Attempt n waits in [min·2ⁿ/2, min·2ⁿ]: 25–50, 50–100, 100–200, 200–400 ms.
    for (gap, floor) in gaps.iter().zip([25, 50, 100, 200]) {
        assert!(*gap >= Duration::from_millis(floor), "{gaps:?}");
    }
    assert!(gaps[3] > gaps[0], "backoff grows: {gaps:?}");
}

/// Row 23: 4xx other than 429 is final: exactly one attempt, the pusher
/// told the backend's status and text.
#[tokio::test]
async fn row_23_4xx_other_than_429_never_retried() {
    for (code, reason) in [
        (400, "400 Bad Request"),
        (401, "401 Unauthorized"),
        (404, "404 Not Found"),
        (413, "413 Payload Too Large"),
    ] {
        let receiver = Receiver::start().await;
        receiver.respond(move |_| Fault::Status(code, "backend says no", None));
        let forwarder = Forwarder::new(&receiver.forward_config()).unwrap();
        let push = text_push(PushOp::Replace, &[("job", "j")], "m 1\n");
        let err = bounded(forwarder.forward(&push)).await.unwrap_err();
        match err {
            SinkError::Rejected(message) => {
                assert!(message.contains(reason), "{message}");
                assert!(message.contains("backend says no"), "{message}");
            }
            other => panic!("{code}: expected Rejected, got {other:?}"),
        }
        // Ten backoffs' worth of time for a retry to show up.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let received = receiver.received();
        let with_m = received
            .iter()
            .filter(|r| has_series(&r.request, "m"))
            .count();
        assert_eq!(with_m, 1, "{code} must not be retried");
        // Besides, one best-effort push_failure_time_seconds report.
        assert_eq!(received.len(), 2, "{code}");
        assert!(has_series(
            &received[1].request,
            "push_failure_time_seconds"
        ));
    }
}

/// Row 24: 429 is retried (pushrelay does, so a push is not lost to a
/// short throttle).
#[tokio::test]
async fn row_24_429_retried() {
    let receiver = Receiver::start().await;
    receiver.script([
        Fault::Status(429, "slow down", None),
        Fault::Status(429, "slow down", None),
        Fault::Accept,
    ]);
    let forwarder = Forwarder::new(&receiver.forward_config()).unwrap();
    let push = text_push(PushOp::Replace, &[("job", "j")], "m 1\n");
    bounded(forwarder.forward(&push)).await.unwrap();
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    assert!(!received[0].accepted && !received[1].accepted && received[2].accepted);
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) for `time`.
fn http_date(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let days = (secs / 86_400) as i64;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // H. Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{weekday}, {day:02} {month_name} {year} {h:02}:{m:02}:{s:02} GMT")
}

/// Row 25: `Retry-After`, as delay-seconds or as an HTTP-date, sets the
/// time of the next attempt (instead of the 25–50 ms first backoff).
#[tokio::test]
async fn row_25_retry_after_seconds_and_http_date_honoured() {
    assert_eq!(
        http_date(UNIX_EPOCH + Duration::from_secs(784_111_777)),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );
    for status in [429, 503] {
        let retry_after: &'static str = if status == 429 {
            "1"
        } else {
            // Whole seconds: at least 1 s ahead once truncated.
            let at = SystemTime::now() + Duration::from_secs(2);
            Box::leak(http_date(at).into_boxed_str())
        };
        let receiver = Receiver::start().await;
        receiver.script([Fault::Status(status, "later", Some(retry_after))]);
        let forwarder = Forwarder::new(&receiver.forward_config()).unwrap();
        let push = text_push(PushOp::Replace, &[("job", "j")], "m 1\n");
        bounded(forwarder.forward(&push)).await.unwrap();
        let received = receiver.received();
        assert_eq!(received.len(), 2, "{retry_after}");
        let gap = received[1].at - received[0].at;
        assert!(gap >= Duration::from_millis(900), "{retry_after}: {gap:?}");
        assert!(gap <= Duration::from_secs(3), "{retry_after}: {gap:?}");
    }
}

/// Row 27: a retried request is the whole request again, byte for byte.
#[tokio::test]
async fn row_27_whole_request_resent_on_5xx() {
    let receiver = Receiver::start().await;
    receiver.script([
        Fault::Status(500, "partial write", None),
        Fault::Status(429, "throttled", None),
        Fault::Accept,
    ]);
    let forwarder = Forwarder::new(&receiver.forward_config()).unwrap();
    let body: String = (0..20).map(|i| format!("m{{i=\"{i}\"}} {i}\n")).collect();
    let push = text_push(PushOp::Replace, &[("job", "j")], &body);
    bounded(forwarder.forward(&push)).await.unwrap();
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    assert_eq!(series_named(&received[0].request, "m").len(), 20);
    for retry in &received[1..] {
        assert_eq!(retry.body, received[0].body);
        assert_eq!(retry.request, received[0].request);
    }
}
