//! The forwarder's one clock rule (issue 14, bug 1): per series, timestamps
//! strictly increase and are never stamped ahead of the wall clock, even
//! when one group is pushed thousands of times a second; once a DELETE is
//! acknowledged, Prometheus shows nothing of the group at any time from
//! then on.
//!
//! The storms use the asynchronous acknowledgement so that an unoptimised
//! test build still pushes several times per millisecond (what a release
//! build reaches with synchronous pushers), then wait for the queue to
//! drain: the drain is the acknowledgement.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::receiver::{Fault, Receiver};
use common::{Prometheus, bounded, model};
use pushrelay::config::{AckMode, RemoteWriteConfig};
use pushrelay::forward::Forwarder;
use pushrelay::proto::client::{MetricFamily, MetricType};
use pushrelay::push::{GroupingKey, Push, PushOp, SinkError};

const CLIENTS: usize = 8;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// A PUT of `flap_value{job="flap"} value`, or a DELETE of the group.
fn flap(op: PushOp, value: f64) -> Push {
    let families = if op == PushOp::Delete {
        Vec::new()
    } else {
        vec![MetricFamily {
            name: Some("flap_value".into()),
            help: Some("a value pushed and deleted in turn".into()),
            r#type: Some(MetricType::Gauge as i32),
            metric: vec![model::gauge(&[("job", "flap")], value)],
            unit: None,
        }]
    };
    Push {
        op,
        key: GroupingKey::new([("job".to_string(), "flap".to_string())]),
        families: families.into(),
        received_at: SystemTime::now(),
        tenant: None,
    }
}

/// `CLIENTS` tasks alternating PUT and DELETE on one group for `length`,
/// retrying while the queue is full; returns how many pushes were taken.
async fn storm(forwarder: &Arc<Forwarder>, length: Duration) -> usize {
    let end = Instant::now() + length;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let forwarder = forwarder.clone();
            tokio::spawn(async move {
                let mut taken = 0;
                let mut i = client;
                while Instant::now() < end {
                    let op = if i % 2 == 0 {
                        PushOp::Replace
                    } else {
                        PushOp::Delete
                    };
                    match forwarder.forward(&flap(op, i as f64)).await {
                        Ok(()) => {
                            taken += 1;
                            i += 1;
                        }
                        Err(SinkError::Overloaded { .. }) => tokio::task::yield_now().await,
                        Err(other) => panic!("push failed: {other}"),
                    }
                }
                taken
            })
        })
        .collect();
    let mut taken = 0;
    for task in tasks {
        taken += task.await.unwrap();
    }
    taken
}

fn async_config(url: String) -> RemoteWriteConfig {
    RemoteWriteConfig {
        url: Some(url),
        ack: AckMode::Async,
        ..RemoteWriteConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_pushed_thousands_of_times_a_second_is_never_stamped_ahead_of_the_clock() {
    let receiver = Receiver::start().await;
    // The receiver notes, as each request arrives, how far its samples'
    // timestamps are ahead of the wall clock, and every series' timestamps.
    let lead = Arc::new(AtomicI64::new(i64::MIN));
    let last_by_series: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    let out_of_order = Arc::new(AtomicI64::new(0));
    {
        let (lead, last_by_series, out_of_order) =
            (lead.clone(), last_by_series.clone(), out_of_order.clone());
        receiver.respond(move |request| {
            let now = now_ms();
            let mut last = last_by_series.lock().unwrap();
            for series in &request.timeseries {
                let id = format!("{:?}", series.labels);
                for sample in &series.samples {
                    lead.fetch_max(sample.timestamp - now, Ordering::SeqCst);
                    let previous = last.insert(id.clone(), sample.timestamp);
                    if previous.is_some_and(|p| p >= sample.timestamp) {
                        out_of_order.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            Fault::Accept
        });
    }
    let forwarder = Arc::new(Forwarder::new(&async_config(receiver.url.clone())).unwrap());
    let pushes = storm(&forwarder, Duration::from_secs(3)).await;
    bounded(forwarder.drain()).await;
    assert!(
        pushes > 3 * 1000 * 2,
        "the storm must reach several pushes per millisecond to test anything: {pushes} in 3 s"
    );
    let lead = lead.load(Ordering::SeqCst);
    assert!(
        lead <= 2,
        "a sample was stamped {lead} ms ahead of the clock ({pushes} pushes)"
    );
    assert_eq!(
        out_of_order.load(Ordering::SeqCst),
        0,
        "repeated or older timestamps"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_storm_an_acknowledged_delete_leaves_nothing_to_query() {
    let prometheus = Prometheus::start().await;
    let forwarder = Arc::new(Forwarder::new(&async_config(prometheus.write_url())).unwrap());
    storm(&forwarder, Duration::from_secs(3)).await;
    // The storm may leave the async queue full: the DELETE is retried as a
    // pusher retries a 429, until it is acknowledged.
    bounded(async {
        loop {
            match forwarder.forward(&flap(PushOp::Delete, 0.0)).await {
                Err(SinkError::Overloaded { .. }) => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                answer => break answer,
            }
        }
    })
    .await
    .unwrap();
    bounded(forwarder.drain()).await;
    let acknowledged = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for at in [acknowledged, acknowledged + 1.0, acknowledged + 30.0] {
        let found = prometheus.query_at("{job=\"flap\"}", at).await;
        assert!(
            found.is_empty(),
            "{:.3} s after the DELETE was acknowledged the group still shows: {found:?}",
            at - acknowledged
        );
    }
    // The stale markers did land (the group existed and was ended).
    let ended = prometheus
        .query(&format!(
            "count_over_time(flap_value[1m] @ {acknowledged:.3})"
        ))
        .await;
    assert!(!ended.is_empty(), "the storm reached Prometheus");
}
