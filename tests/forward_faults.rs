//! The forwarder against a fault-injecting in-process remote_write receiver:
//! fault scenarios that are not rows of the remote-write sender checklist
//! (those are `forward_checklist.rs`): deadlines, dropped connections,
//! timeouts, refusals within a batch, request splitting, HTTP/2, async
//! acknowledgement, readiness, and an end-to-end run against Prometheus.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::receiver::{Fault, Receiver};
use common::{Prometheus, bounded};
use pushrelay::config::{AckMode, GoDuration, RemoteWriteConfig};
use pushrelay::forward::Forwarder;
use pushrelay::proto::client::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use pushrelay::proto::prompb::{TimeSeries, WriteRequest};
use pushrelay::push::{GroupingKey, Push, PushOp, SinkError};

/// A gauge sample: family name, labels besides `job`, value.
type GaugeSample<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// A push of gauge samples to `{job=<job>}`.
fn push(op: PushOp, job: &str, metrics: &[GaugeSample]) -> Push {
    let key = GroupingKey::new([("job".to_string(), job.to_string())]);
    let mut families: Vec<MetricFamily> = Vec::new();
    for (name, labels, value) in metrics {
        let mut label: Vec<LabelPair> = labels
            .iter()
            .chain([("job", job)].iter())
            .map(|(n, v)| LabelPair {
                name: Some(n.to_string()),
                value: Some(v.to_string()),
            })
            .collect();
        label.sort_by(|a, b| a.name().cmp(b.name()));
        let metric = Metric {
            label,
            gauge: Some(Gauge {
                value: Some(*value),
            }),
            ..Default::default()
        };
        match families.iter_mut().find(|f| f.name() == *name) {
            Some(family) => family.metric.push(metric),
            None => families.push(MetricFamily {
                name: Some(name.to_string()),
                help: Some(format!("help of {name}")),
                r#type: Some(MetricType::Gauge as i32),
                metric: vec![metric],
                unit: None,
            }),
        }
    }
    Push {
        op,
        key,
        families: families.into(),
        received_at: SystemTime::now(),
        tenant: None,
    }
}

fn gauge(job: &str, name: &str, value: f64) -> Push {
    push(PushOp::Replace, job, &[(name, &[], value)])
}

/// `name{labels}` of a series, labels in wire order.
fn series_id(series: &TimeSeries) -> String {
    let labels: Vec<String> = series
        .labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    labels.join(",")
}

fn name_of(series: &TimeSeries) -> &str {
    series
        .labels
        .iter()
        .find(|l| l.name == "__name__")
        .map_or("", |l| l.value.as_str())
}

fn has_series(request: &WriteRequest, name: &str) -> bool {
    request.timeseries.iter().any(|s| name_of(s) == name)
}

#[tokio::test]
async fn a_backend_that_stays_down_makes_the_push_unavailable_at_the_deadline() {
    let receiver = Receiver::start().await;
    receiver.respond(|_| Fault::Status(503, "maintenance", None));
    let mut config = receiver.forward_config();
    config.retry_deadline = GoDuration(Duration::from_secs(1));
    let forwarder = Forwarder::new(&config).unwrap();
    let started = Instant::now();
    let err = bounded(forwarder.forward(&gauge("j", "m", 1.0)))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    match err {
        SinkError::Unavailable {
            message,
            retry_after,
        } => {
            assert!(message.contains("503"), "{message}");
            assert!(message.contains("maintenance"), "{message}");
            assert!(retry_after >= Duration::from_secs(1));
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    // The last attempt is made at the deadline, not before it.
    assert!(elapsed >= Duration::from_millis(1000), "{elapsed:?}");
    assert!(elapsed <= Duration::from_millis(2500), "{elapsed:?}");
    assert!(receiver.received().len() >= 3);
}

/// Backoff as in the issue report: from 30 ms doubling up to 5 s, so the
/// next delay after 1.65 s of retries would pass a 3 s deadline.
fn long_backoff_config(receiver: &Receiver) -> RemoteWriteConfig {
    let mut config = receiver.forward_config();
    config.retry_deadline = GoDuration(Duration::from_secs(3));
    config.min_backoff = GoDuration(Duration::from_millis(30));
    config.max_backoff = GoDuration(Duration::from_secs(5));
    config
}

#[tokio::test]
async fn the_last_attempt_is_made_at_the_retry_deadline() {
    let receiver = Receiver::start().await;
    receiver.respond(|_| Fault::Status(503, "down", None));
    let forwarder = Forwarder::new(&long_backoff_config(&receiver)).unwrap();
    let started = Instant::now();
    let err = bounded(forwarder.forward(&gauge("j", "m", 1.0)))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, SinkError::Unavailable { .. }), "{err:?}");
    let last = receiver.received().last().unwrap().at;
    assert!(
        last.duration_since(started) >= Duration::from_millis(2950),
        "last attempt {:?} after the push, before the 3 s deadline",
        last.duration_since(started)
    );
    assert!(elapsed < Duration::from_millis(3500), "{elapsed:?}");
}

#[tokio::test]
async fn an_outage_shorter_than_the_retry_deadline_is_survived() {
    let receiver = Receiver::start().await;
    let outage_ends = Instant::now() + Duration::from_millis(2900);
    receiver.respond(move |_| {
        if Instant::now() < outage_ends {
            Fault::Status(503, "down", None)
        } else {
            Fault::Accept
        }
    });
    let forwarder = Forwarder::new(&long_backoff_config(&receiver)).unwrap();
    bounded(forwarder.forward(&gauge("j", "m", 1.0)))
        .await
        .unwrap();
    assert!(receiver.received().last().unwrap().accepted);
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let receiver = Receiver::start().await;
    receiver.script([Fault::Drop]);
    let forwarder = Forwarder::new(&receiver.forward_config()).unwrap();
    bounded(forwarder.forward(&gauge("j", "m", 1.0)))
        .await
        .unwrap();
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert!(!received[0].accepted && received[1].accepted);
}

#[tokio::test]
async fn a_slow_backend_times_out_and_is_retried() {
    let receiver = Receiver::start().await;
    receiver.script([Fault::Delay(
        Duration::from_secs(3),
        Box::new(Fault::Accept),
    )]);
    let mut config = receiver.forward_config();
    config.timeout = GoDuration(Duration::from_millis(300));
    let forwarder = Forwarder::new(&config).unwrap();
    let started = Instant::now();
    bounded(forwarder.forward(&gauge("j", "m", 1.0)))
        .await
        .unwrap();
    // Did not wait for the 3 s answer.
    assert!(started.elapsed() < Duration::from_millis(2900));
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    let gap = received[1].at - received[0].at;
    assert!(gap >= Duration::from_millis(300), "{gap:?}");
}

#[tokio::test]
async fn one_refused_push_does_not_fail_its_batch_neighbours() {
    let receiver = Receiver::start().await;
    // The first request is slow, so the next pushes queue up behind it and
    // share one request; any request carrying `bad` is refused.
    receiver.script([Fault::Delay(
        Duration::from_millis(400),
        Box::new(Fault::Accept),
    )]);
    receiver.respond(|request| {
        if has_series(request, "bad") {
            Fault::Status(400, "bad sample", None)
        } else {
            Fault::Accept
        }
    });
    let mut config = receiver.forward_config();
    config.concurrency = 1;
    let forwarder = Arc::new(Forwarder::new(&config).unwrap());
    let gate = {
        let f = forwarder.clone();
        tokio::spawn(async move { f.forward(&gauge("gate", "gate", 1.0)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut handles = Vec::new();
    for (job, name) in [("a", "good"), ("b", "bad"), ("c", "good")] {
        let f = forwarder.clone();
        handles.push(tokio::spawn(async move {
            f.forward(&gauge(job, name, 1.0)).await
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bounded(gate).await.unwrap().unwrap();
    let mut results = Vec::new();
    for handle in handles {
        results.push(bounded(handle).await.unwrap());
    }
    assert_eq!(results[0], Ok(()));
    assert!(
        matches!(&results[1], Err(SinkError::Rejected(m)) if m.contains("bad sample")),
        "{:?}",
        results[1]
    );
    assert_eq!(results[2], Ok(()));
    let received = receiver.received();
    let shared = received
        .iter()
        .find(|r| has_series(&r.request, "bad") && has_series(&r.request, "good"))
        .expect("the three pushes shared a request");
    assert!(!shared.accepted);
    let goods_accepted = received
        .iter()
        .filter(|r| r.accepted)
        .flat_map(|r| r.request.timeseries.iter())
        .filter(|s| name_of(s) == "good")
        .count();
    assert_eq!(goods_accepted, 2);
}

/// What a push adds besides its own series (the checklist rows about the
/// wire are in `forward_checklist.rs`): `push_time_seconds` and
/// `push_failure_time_seconds` with the grouping labels that have a value,
/// and one `MetricMetadata` per family.
#[tokio::test]
async fn a_push_carries_push_time_metrics_and_metadata() {
    let receiver = Receiver::start().await;
    let forwarder = Forwarder::new(&receiver.forward_config()).unwrap();
    let mut p = push(
        PushOp::Replace,
        "wire",
        &[
            (
                "b_metric",
                &[("zone", "z"), ("empty", ""), ("Upper", "u")],
                1.0,
            ),
            ("a_metric", &[("x", "1")], 2.0),
            ("a_metric", &[("x", "2")], 3.0),
        ],
    );
    p.key = GroupingKey::new([
        ("job".to_string(), "wire".to_string()),
        ("instance".to_string(), String::new()),
    ]);
    bounded(forwarder.forward(&p)).await.unwrap();
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let request = &received[0].request;
    let ids: Vec<String> = request.timeseries.iter().map(series_id).collect();
    assert!(
        ids.contains(&r#"Upper="u",__name__="b_metric",job="wire",zone="z""#.to_string()),
        "{ids:?}"
    );
    assert!(
        ids.contains(&r#"__name__="push_time_seconds",job="wire""#.to_string()),
        "{ids:?}"
    );
    let push_failure = request
        .timeseries
        .iter()
        .find(|s| name_of(s) == "push_failure_time_seconds")
        .unwrap();
    assert_eq!(push_failure.samples[0].value, 0.0);
    let mut metadata: Vec<(&str, i32, &str)> = request
        .metadata
        .iter()
        .map(|m| (m.metric_family_name.as_str(), m.r#type, m.help.as_str()))
        .collect();
    metadata.sort();
    assert_eq!(
        metadata,
        [
            ("a_metric", 2, "help of a_metric"),
            ("b_metric", 2, "help of b_metric"),
            (
                "push_failure_time_seconds",
                2,
                "Last Unix time when changing this group in the Pushgateway failed."
            ),
            (
                "push_time_seconds",
                2,
                "Last Unix time when changing this group in the Pushgateway succeeded."
            ),
        ]
    );
}

#[tokio::test]
async fn a_push_larger_than_the_request_limits_is_split_in_order() {
    let receiver = Receiver::start().await;
    let mut config = receiver.forward_config();
    config.max_samples_per_request = 10;
    let forwarder = Forwarder::new(&config).unwrap();
    let values: Vec<String> = (0..35).map(|i| i.to_string()).collect();
    let labels: Vec<[(&str, &str); 1]> = values.iter().map(|v| [("i", v.as_str())]).collect();
    let samples: Vec<GaugeSample> = labels.iter().map(|l| ("m", &l[..], 1.0)).collect();
    bounded(forwarder.forward(&push(PushOp::Replace, "big", &samples)))
        .await
        .unwrap();
    let received = receiver.received();
    // 35 series + push_time_seconds + push_failure_time_seconds.
    assert_eq!(received.len(), 4);
    assert!(received.iter().all(|r| r.request.timeseries.len() <= 10));
    let sent: Vec<String> = received
        .iter()
        .flat_map(|r| r.request.timeseries.iter())
        .filter(|s| name_of(s) == "m")
        .map(|s| s.labels[1].value.clone())
        .collect();
    assert_eq!(sent, values);
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_spoken_when_configured() {
    let receiver = Receiver::start().await;
    let mut config = receiver.forward_config();
    config.http2 = true;
    let forwarder = Forwarder::new(&config).unwrap();
    bounded(forwarder.forward(&gauge("j", "m", 1.0)))
        .await
        .unwrap();
    let received = receiver.received();
    assert_eq!(received[0].version, http::Version::HTTP_2);
    assert_eq!(received[0].headers["content-encoding"], "snappy");

    let plain = Forwarder::new(&receiver.forward_config()).unwrap();
    bounded(plain.forward(&gauge("j", "m", 2.0))).await.unwrap();
    assert_eq!(receiver.received()[1].version, http::Version::HTTP_11);
}

#[tokio::test]
async fn async_ack_answers_at_once_and_sheds_when_the_queue_is_full() {
    let receiver = Receiver::start().await;
    receiver.respond(|_| Fault::Delay(Duration::from_millis(500), Box::new(Fault::Accept)));
    let mut config = receiver.forward_config();
    config.ack = AckMode::Async;
    config.concurrency = 1;
    config.queue_capacity = 1;
    let forwarder = Forwarder::new(&config).unwrap();
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for i in 0..5 {
        outcomes.push(forwarder.forward(&gauge(&format!("j{i}"), "m", 1.0)).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Synchronous answers would take at least 5 × 500 ms.
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(outcomes[0], Ok(()));
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, Err(SinkError::Overloaded { .. }))),
        "{outcomes:?}"
    );
    bounded(forwarder.drain()).await;
    let forwarded = receiver
        .received()
        .iter()
        .filter(|r| r.accepted)
        .map(|r| {
            r.request
                .timeseries
                .iter()
                .filter(|s| name_of(s) == "m")
                .count()
        })
        .sum::<usize>();
    let queued = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(forwarded, queued, "drain sends every queued push");
}

#[tokio::test]
async fn async_admission_waits_a_moment_for_room_before_shedding() {
    let receiver = Receiver::start().await;
    receiver.respond(|_| Fault::Delay(Duration::from_millis(800), Box::new(Fault::Accept)));
    let mut config = receiver.forward_config();
    config.ack = AckMode::Async;
    config.concurrency = 1;
    config.queue_capacity = 1;
    let forwarder = Forwarder::new(&config).unwrap();
    // One in flight (held by the backend), one queued: the queue is full.
    let first = forwarder.forward(&gauge("j0", "m", 1.0)).await;
    assert_eq!(first, Ok(()));
    let mut outcomes = Vec::new();
    let mut waited = Duration::ZERO;
    for i in 1..4 {
        let started = Instant::now();
        let outcome = forwarder.forward(&gauge(&format!("j{i}"), "m", 1.0)).await;
        if matches!(outcome, Err(SinkError::Overloaded { .. })) {
            waited = started.elapsed();
            outcomes.push(outcome);
            break;
        }
        outcomes.push(outcome);
    }
    assert!(
        matches!(outcomes.last(), Some(Err(SinkError::Overloaded { .. }))),
        "{outcomes:?}"
    );
    // Refused only after waiting for room, and long before the backend
    // freed any.
    assert!(
        waited >= pushrelay::forward::ADMISSION_PATIENCE,
        "{waited:?}"
    );
    assert!(waited < Duration::from_millis(600), "{waited:?}");
    bounded(forwarder.drain()).await;
}

#[tokio::test]
async fn ready_once_the_backend_answered() {
    let receiver = Receiver::start().await;
    let mut config = receiver.forward_config();
    // Nothing listens on port 1.
    config.url = Some("http://127.0.0.1:1/api/v1/write".into());
    let down = Forwarder::new(&config).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!down.is_ready());

    let up = Forwarder::new(&receiver.forward_config()).unwrap();
    bounded(async {
        while !up.is_ready() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(receiver.probes() >= 1);
    assert!(
        receiver.received().is_empty(),
        "the probe is an empty request"
    );
}

/// Polls `ready` every 50 ms until it equals `want`; how long that took.
async fn until_ready_is(forwarder: &Forwarder, want: bool, limit: Duration) -> Duration {
    let started = Instant::now();
    while forwarder.is_ready() != want {
        assert!(
            started.elapsed() < limit,
            "/-/ready was not {want} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn ready_follows_the_backend_down_past_the_deadline_and_back_up() {
    let mut prometheus = Prometheus::start().await;
    let config = RemoteWriteConfig {
        url: Some(prometheus.write_url()),
        timeout: GoDuration(Duration::from_secs(1)),
        retry_deadline: GoDuration(Duration::from_secs(2)),
        min_backoff: GoDuration(Duration::from_millis(50)),
        max_backoff: GoDuration(Duration::from_millis(400)),
        ..RemoteWriteConfig::default()
    };
    let forwarder = Forwarder::new(&config).unwrap();
    until_ready_is(&forwarder, true, Duration::from_secs(10)).await;

    prometheus.peer.kill_hard();
    let down = Instant::now();
    let err = bounded(forwarder.forward(&gauge("j", "m", 1.0)))
        .await
        .unwrap_err();
    assert!(matches!(err, SinkError::Unavailable { .. }), "{err:?}");
    until_ready_is(&forwarder, false, Duration::from_secs(4)).await;
    let unready_after = down.elapsed();
    assert!(
        unready_after >= Duration::from_millis(1900),
        "unready {unready_after:?} after the outage began, before the 2 s deadline"
    );

    // Back, and no push arrives: pushrelay notices by itself.
    prometheus.peer.restart().await;
    let back = until_ready_is(&forwarder, true, Duration::from_secs(5)).await;
    eprintln!(
        "figures: unready {unready_after:?} after the backend went down (deadline 2 s); \
         ready again {back:?} after it was back"
    );
}

/// Issue 14 bug 5: a backend that dies while no push arrives is noticed
/// all the same: pushrelay checks an idle backend itself.
#[tokio::test]
async fn ready_turns_503_when_an_idle_backend_dies() {
    let mut prometheus = Prometheus::start().await;
    let config = RemoteWriteConfig {
        url: Some(prometheus.write_url()),
        timeout: GoDuration(Duration::from_secs(1)),
        retry_deadline: GoDuration(Duration::from_secs(2)),
        ..RemoteWriteConfig::default()
    };
    let forwarder = Forwarder::new(&config).unwrap();
    until_ready_is(&forwarder, true, Duration::from_secs(10)).await;
    // Healthy and idle for a while: still ready.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(forwarder.is_ready(), "an idle, healthy backend is ready");

    prometheus.peer.kill_hard();
    let down = Instant::now();
    // Deadline 2 s; "a couple of seconds" after it passes at the latest.
    until_ready_is(&forwarder, false, Duration::from_secs(5)).await;
    let unready_after = down.elapsed();
    assert!(
        unready_after >= Duration::from_millis(1900),
        "unready {unready_after:?} after the outage began, before the 2 s deadline"
    );
    eprintln!("figures: idle backend down, unready after {unready_after:?} (deadline 2 s)");
}

#[tokio::test]
async fn prometheus_stores_forwarded_series_and_honours_stale_markers() {
    let prometheus = Prometheus::start().await;
    let config = RemoteWriteConfig {
        url: Some(prometheus.write_url()),
        ..RemoteWriteConfig::default()
    };
    let forwarder = Forwarder::new(&config).unwrap();
    bounded(async {
        while !forwarder.is_ready() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    let mut p = push(
        PushOp::Replace,
        "e2e",
        &[
            ("pushrelay_e2e", &[("i", "1")], 42.0),
            ("pushrelay_e2e", &[("i", "2")], 43.0),
        ],
    );
    // A native histogram travels as a remote_write histogram.
    p.families.to_mut().push(MetricFamily {
        name: Some("pushrelay_e2e_native".into()),
        help: Some("native".into()),
        r#type: Some(MetricType::Histogram as i32),
        metric: vec![Metric {
            label: vec![LabelPair {
                name: Some("job".into()),
                value: Some("e2e".into()),
            }],
            histogram: Some(pushrelay::proto::client::Histogram {
                sample_count: Some(3),
                sample_sum: Some(4.5),
                schema: Some(0),
                zero_threshold: Some(1e-128),
                zero_count: Some(0),
                positive_span: vec![pushrelay::proto::client::BucketSpan {
                    offset: Some(0),
                    length: Some(2),
                }],
                positive_delta: vec![1, 1],
                ..Default::default()
            }),
            ..Default::default()
        }],
        unit: None,
    });
    bounded(forwarder.forward(&p)).await.unwrap();

    let found = prometheus.query("pushrelay_e2e").await;
    let mut values: Vec<(&str, f64)> = found
        .iter()
        .map(|s| (s.labels.get("i").map_or("", String::as_str), s.value))
        .collect();
    values.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(values, [("1", 42.0), ("2", 43.0)], "{found:?}");
    assert_eq!(found[0].labels["job"], "e2e");
    let count = prometheus
        .query("histogram_count(pushrelay_e2e_native)")
        .await;
    assert_eq!(count[0].value, 3.0, "{count:?}");
    let push_time = prometheus.query("push_time_seconds").await;
    assert_eq!(push_time.len(), 1, "{push_time:?}");
    assert_eq!(push_time[0].labels["job"], "e2e");

    // A PUT without i="2" ends it; a DELETE ends everything.
    let one = push(
        PushOp::Replace,
        "e2e",
        &[("pushrelay_e2e", &[("i", "1")], 44.0)],
    );
    bounded(forwarder.forward(&one)).await.unwrap();
    let left = prometheus.query("pushrelay_e2e").await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].labels["i"], "1");
    assert_eq!(left[0].value, 44.0);
    let native = prometheus
        .query("histogram_count(pushrelay_e2e_native)")
        .await;
    assert!(native.is_empty(), "native histogram ended: {native:?}");

    let delete = Push {
        op: PushOp::Delete,
        key: GroupingKey::new([("job".to_string(), "e2e".to_string())]),
        families: Vec::new().into(),
        received_at: SystemTime::now(),
        tenant: None,
    };
    bounded(forwarder.forward(&delete)).await.unwrap();
    assert!(prometheus.query("pushrelay_e2e").await.is_empty());
    assert!(prometheus.query("push_time_seconds").await.is_empty());
}
