//! Async shedding against the built pushrelay binary and a slow in-process
//! remote_write receiver: with the forwarding queue full, a push is
//! answered 429 from its headers alone, before its body is read (a body
//! that never ends still gets its answer at once, and its connection is
//! closed; a short body with a known length is skipped unread and its
//! connection kept), and every push that was acknowledged is delivered.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::receiver::{Fault, Receiver};
use common::{Pushrelay, TEXT_CONTENT_TYPE, bounded, get, read_head, sample_sum, try_request};
use http::{Method, StatusCode};
use pushrelay::forward::{HOT_QUEUE_DEPTH, HOT_QUEUE_PATIENCE};
use pushrelay::telemetry::HOT_QUEUE_WAITS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the receiver holds each request: the queue stays full for that
/// long once filled.
const BACKEND_DELAY: Duration = Duration::from_secs(3);

/// Whether the server closes `stream` (EOF or reset) within `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read).await.is_ok()
}

/// The `job` of every `m` series the receiver accepted.
fn delivered_jobs(receiver: &Receiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .filter(|r| r.accepted)
        .flat_map(|r| r.request.timeseries.clone())
        .filter(|s| {
            s.labels
                .iter()
                .any(|l| l.name == "__name__" && l.value == "m")
        })
        .filter_map(|s| {
            s.labels
                .iter()
                .find(|l| l.name == "job")
                .map(|l| l.value.clone())
        })
        .collect()
}

/// Waits (bounded) until the receiver has accepted `m` from every job of
/// `jobs`.
async fn until_delivered(receiver: &Receiver, jobs: &[String]) {
    bounded(async {
        while !jobs
            .iter()
            .all(|job| delivered_jobs(receiver).contains(job))
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

fn header_lines(answer: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(answer)
        .lines()
        .map(|l| l.to_ascii_lowercase())
        .collect()
}

/// Pushes `m{job=<job>} 1` over its own connection; the status.
async fn push(base: &str, job: &str) -> StatusCode {
    let url = format!("{base}/metrics/job/{job}");
    let reply = try_request(
        Method::PUT,
        &url,
        &[("Content-Type", TEXT_CONTENT_TYPE)],
        "m 1\n",
    )
    .await
    .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
    reply.status
}

/// Fills the single shard's queue (capacity 1): pushes until one is 429;
/// the jobs acknowledged meanwhile.
async fn fill_queue(base: &str) -> Vec<String> {
    let mut acknowledged = Vec::new();
    for i in 0..10 {
        let job = format!("filler{i}");
        match push(base, &job).await {
            StatusCode::OK => acknowledged.push(job),
            StatusCode::TOO_MANY_REQUESTS => return acknowledged,
            other => panic!("push {job}: {other}"),
        }
    }
    panic!("the queue never filled; acknowledged {acknowledged:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_async_queue_answers_429_before_the_body_and_loses_nothing_acknowledged() {
    let receiver = Receiver::start().await;
    receiver.respond(|_| Fault::Delay(BACKEND_DELAY, Box::new(Fault::Accept)));
    let relay = Pushrelay::start(&[
        format!("--remote-write.url={}", receiver.url),
        "--remote-write.ack=async".into(),
        "--remote-write.concurrency=1".into(),
        "--remote-write.queue-capacity=1".into(),
        "--web.read-timeout=30s".into(),
    ])
    .await;
    let base = relay.url();
    let addr: SocketAddr = relay.peer.addr();
    let started = Instant::now();
    let mut acknowledged = fill_queue(&base).await;

    // A chunked body that never ends: answered at once from the headers,
    // and the connection is closed (its body cannot be skipped).
    let mut endless = TcpStream::connect(addr).await.unwrap();
    endless
        .write_all(
            b"POST /metrics/job/endless HTTP/1.1\r\nHost: x\r\n\
              Content-Type: text/plain; version=0.0.4\r\n\
              Transfer-Encoding: chunked\r\n\r\n4\r\nm 1\n\r\n",
        )
        .await
        .unwrap();
    let asked = Instant::now();
    let mut answer = Vec::new();
    read_head(&mut endless, &mut answer, Duration::from_secs(1))
        .await
        .unwrap_or_else(|| {
            panic!(
                "no answer within 1 s to a push with an endless body: {:?}",
                String::from_utf8_lossy(&answer)
            )
        });
    let lines = header_lines(&answer);
    assert!(
        lines[0].starts_with("http/1.1 429"),
        "expected 429, got {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("retry-after: ")),
        "{lines:?}"
    );
    assert!(asked.elapsed() < Duration::from_secs(1));
    assert!(
        closed_within(&mut endless, Duration::from_secs(2)).await,
        "a connection whose body was not read is closed"
    );

    // A short body with its length: skipped unread, the connection kept
    // for the next request.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(
        b"POST /metrics/job/short HTTP/1.1\r\nHost: x\r\n\
          Content-Type: text/plain; version=0.0.4\r\nContent-Length: 4\r\n\r\nm 1\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    read_head(&mut kept, &mut answer, Duration::from_secs(1))
        .await
        .expect("an answer to the short push");
    let lines = header_lines(&answer);
    assert!(lines[0].starts_with("http/1.1 429"), "{lines:?}");
    assert!(!lines.iter().any(|l| l == "connection: close"), "{lines:?}");
    kept.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    rest.extend_from_slice(&answer[head_end..]);
    let healthy = async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&rest).contains("HTTP/1.1 200") {
            match kept.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => rest.extend_from_slice(&buf[..n]),
            }
        }
        true
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(2), healthy)
            .await
            .unwrap_or(false),
        "the connection serves the next request"
    );
    // All of it while the backend still held the first request: the
    // queue was full throughout.
    assert!(started.elapsed() < BACKEND_DELAY, "{:?}", started.elapsed());

    // Once the backend catches up, pushes are taken again, and every
    // acknowledged push arrives.
    let late = "late";
    bounded(async {
        loop {
            match push(&base, late).await {
                StatusCode::OK => break,
                StatusCode::TOO_MANY_REQUESTS => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                other => panic!("push {late}: {other}"),
            }
        }
    })
    .await;
    acknowledged.push(late.to_string());
    until_delivered(&receiver, &acknowledged).await;
    let delivered = delivered_jobs(&receiver);
    assert!(!delivered.contains(&"endless".to_string()), "{delivered:?}");
    assert!(!delivered.contains(&"short".to_string()), "{delivered:?}");
}

/// A receiver that holds each request 2 s, and pushrelay forwarding to it
/// with `ack = "async"` through one shard (default queue capacity; bodies
/// may take 30 s to arrive).
async fn one_shard_async_relay_of_a_stalling_backend() -> (Receiver, Pushrelay) {
    let receiver = Receiver::start().await;
    receiver.respond(|_| Fault::Delay(Duration::from_secs(2), Box::new(Fault::Accept)));
    let relay = Pushrelay::start(&[
        format!("--remote-write.url={}", receiver.url),
        "--remote-write.ack=async".into(),
        "--remote-write.concurrency=1".into(),
        "--web.read-timeout=30s".into(),
    ])
    .await;
    (receiver, relay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_pushes_beyond_the_hot_depth_wait_briefly_and_are_all_taken() {
    let (receiver, relay) = one_shard_async_relay_of_a_stalling_backend().await;
    let base = relay.url();
    let jobs: Vec<String> = (0..HOT_QUEUE_DEPTH + 6)
        .map(|i| format!("job{i}"))
        .collect();
    let mut took = Vec::new();
    for job in &jobs {
        let asked = Instant::now();
        assert_eq!(push(&base, job).await, StatusCode::OK, "push {job}");
        took.push(asked.elapsed());
    }
    // The worker holds the first push or two (its backend stalls), the
    // next ones fill the hot slots; every later one waited for a slot, in
    // vain, and was queued anyway.
    for (job, took) in jobs.iter().zip(&took).skip(HOT_QUEUE_DEPTH + 2) {
        assert!(*took >= HOT_QUEUE_PATIENCE, "{job} took {took:?}");
    }
    let own = get(&format!("{base}/metrics")).await.text();
    assert!(
        sample_sum(&own, HOT_QUEUE_WAITS, &["outcome=\"timeout\""]) >= 4.0,
        "{own}"
    );
    until_delivered(&receiver, &jobs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_slow_to_send_their_bodies_hold_no_hot_slot() {
    let (receiver, relay) = one_shard_async_relay_of_a_stalling_backend().await;
    let base = relay.url();
    // Admitted (their headers are in), their bodies never come.
    let mut slow = Vec::new();
    for i in 0..HOT_QUEUE_DEPTH + 2 {
        let mut stream = TcpStream::connect(relay.peer.addr()).await.unwrap();
        let head = format!(
            "PUT /metrics/job/slow{i} HTTP/1.1\r\nHost: x\r\n\
             Content-Type: text/plain; version=0.0.4\r\nContent-Length: 4\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        slow.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(push(&base, "prompt").await, StatusCode::OK);
    let own = get(&format!("{base}/metrics")).await.text();
    assert_eq!(sample_sum(&own, HOT_QUEUE_WAITS, &[]), 0.0, "{own}");
    until_delivered(&receiver, &["prompt".to_string()]).await;
    drop(slow);
}
