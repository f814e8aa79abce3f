//! Durable delivery (`--remote-write.ack=durable`) end to end: pushrelay
//! (the built binary) with its disk queue, forwarding to the real
//! Prometheus 2.42.
//!
//! Pushers each own a group (`job="durable"`, `pusher="<i>"`) and PUT the
//! gauge `durable_seq` with the value `n` for their `n`-th push, so every
//! acknowledged push is one sample to look for: the raw samples of
//! `durable_seq[1h]` per pusher must be exactly the acknowledged `n`s, in
//! timestamp order, none twice.
//!
//! - a backend outage under load, with pushrelay killed by SIGKILL in the
//!   middle of it and started again: every push is answered 200 and every
//!   acknowledged sample arrives once, in order (the issue asks for a 30 s
//!   outage; 10 s is used to keep CI fast: what matters is that it is far
//!   longer than the retry deadline, 2 s here);
//! - a queue whose tail the test cuts or garbles while pushrelay is down:
//!   pushrelay starts, warns naming the file and the bytes dropped, and
//!   delivers every whole record before the damage;
//! - a full queue answers 429 with Retry-After and loses nothing it
//!   acknowledged; it takes pushes again once delivered;
//! - a DELETE after a SIGKILL restart ends the series pushed before it;
//! - a push the backend refuses as too old ("out of bounds") is dropped and
//!   counted as `too_old`, and delivery goes on.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    Prometheus, Pushrelay, TEXT_CONTENT_TYPE, get, read_head, request, try_request, unix_now,
};
use http::{Method, StatusCode};
use tokio::io::AsyncWriteExt;

/// The retry deadline: short, so that an outage is far longer than it.
const RETRY_DEADLINE: &str = "2s";
/// How long the tests wait for Prometheus to hold what was acknowledged.
const DELIVERY_WAIT: Duration = Duration::from_secs(60);

/// pushrelay in durable mode with its queue in its own directory (kept
/// over restarts), plus `extra` flags.
async fn durable_relay(write_url: &str, extra: &[&str]) -> Pushrelay {
    let mut args = vec![
        format!("--remote-write.url={write_url}"),
        "--remote-write.ack=durable".into(),
        "--remote-write.queue.dir=queue".into(),
        format!("--remote-write.retry-deadline={RETRY_DEADLINE}"),
        "--remote-write.max-backoff=500ms".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Pushrelay::start(&args).await
}

/// [`durable_relay`] with a disk queue of 1 MiB.
async fn small_queue_relay(write_url: &str) -> Pushrelay {
    durable_relay(write_url, &["--remote-write.queue.max-bytes=1048576"]).await
}

fn queue_dir(relay: &Pushrelay) -> PathBuf {
    relay.peer.dir().join("queue")
}

fn group_url(relay: &Pushrelay, pusher: usize) -> String {
    format!("{}/metrics/job/durable/pusher/{pusher}", relay.url())
}

/// PUTs `durable_seq n` (plus `extra` lines) for `pusher`; `Err` carries
/// the status or connection error.
async fn push_seq(relay_url: &str, pusher: usize, n: u64, extra: &str) -> Result<(), String> {
    let url = format!("{relay_url}/metrics/job/durable/pusher/{pusher}");
    let body = format!("# TYPE durable_seq gauge\ndurable_seq {n}\n{extra}");
    match try_request(
        Method::PUT,
        &url,
        &[("Content-Type", TEXT_CONTENT_TYPE)],
        body,
    )
    .await
    {
        Ok(reply) if reply.status == StatusCode::OK => Ok(()),
        Ok(reply) => Err(format!("{}: {}", reply.status, reply.text())),
        Err(error) => Err(error),
    }
}

/// 100 more series for a push: with them a push's record in the disk
/// queue takes about 12 KiB.
fn padding() -> String {
    let lines: String = (0..100)
        .map(|i| {
            format!(
                "durable_padding{{i=\"{i}\",text=\"{}\"}} 1\n",
                "x".repeat(20)
            )
        })
        .collect();
    format!("# TYPE durable_padding gauge\n{lines}")
}

/// The raw samples of `durable_seq` per pusher, in timestamp order.
async fn stored_seqs(prometheus: &Prometheus) -> BTreeMap<usize, Vec<u64>> {
    let query = percent_encoding::utf8_percent_encode(
        r#"durable_seq{job="durable"}[1h]"#,
        percent_encoding::NON_ALPHANUMERIC,
    );
    let reply = get(&format!("{}/api/v1/query?query={query}", prometheus.url())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let json: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON answer");
    let mut out = BTreeMap::new();
    for series in json["data"]["result"].as_array().expect("a matrix") {
        let pusher: usize = series["metric"]["pusher"]
            .as_str()
            .and_then(|p| p.parse().ok())
            .expect("a pusher label");
        let mut points: Vec<(f64, u64)> = series["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|point| {
                let value: f64 = point[1].as_str().unwrap().parse().expect("a number");
                (point[0].as_f64().expect("a timestamp"), value as u64)
            })
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        if std::env::var("DEBUG_POINTS").is_ok() {
            eprintln!("{pusher}: {points:?}");
        }
        out.insert(pusher, points.into_iter().map(|(_, v)| v).collect());
    }
    out
}

/// Waits until Prometheus holds exactly `acked[p]` for every pusher `p`
/// (in this order), or panics showing the difference.
async fn expect_delivered(prometheus: &Prometheus, acked: &BTreeMap<usize, Vec<u64>>) {
    expect_delivered_with_retries(prometheus, acked, &[]).await
}

/// [`expect_delivered`], where a push of `in_doubt` (pusher, sequence),
/// retried after its answer was lost, may stand twice in a row.
async fn expect_delivered_with_retries(
    prometheus: &Prometheus,
    acked: &BTreeMap<usize, Vec<u64>>,
    in_doubt: &[(usize, u64)],
) {
    let deadline = Instant::now() + DELIVERY_WAIT;
    loop {
        let mut stored = stored_seqs(prometheus).await;
        for (pusher, seqs) in stored.iter_mut() {
            let mut previous = None;
            seqs.retain(|&n| {
                let repeat = previous == Some(n) && in_doubt.contains(&(*pusher, n));
                previous = Some(n);
                !repeat
            });
        }
        let matches = acked
            .iter()
            .all(|(p, seqs)| stored.get(p).map(Vec::as_slice).unwrap_or(&[]) == seqs.as_slice());
        if matches {
            return;
        }
        if Instant::now() > deadline {
            for (p, seqs) in acked {
                let got = stored.get(p).cloned().unwrap_or_default();
                let missing: Vec<&u64> = seqs.iter().filter(|n| !got.contains(n)).collect();
                assert_eq!(
                    &got, seqs,
                    "pusher {p}: stored samples differ from the acknowledged ones \
                     (missing {missing:?})"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One pusher per group, pushing back to back until `stop`; returns the
/// acknowledged sequence numbers. Every push must be answered 200.
fn spawn_pushers(
    relay_url: Arc<std::sync::Mutex<String>>,
    pushers: usize,
    stop: Arc<AtomicBool>,
    in_doubt: Arc<std::sync::Mutex<Vec<(usize, u64)>>>,
) -> Vec<tokio::task::JoinHandle<Vec<u64>>> {
    (0..pushers)
        .map(|pusher| {
            let relay_url = relay_url.clone();
            let stop = stop.clone();
            let in_doubt = in_doubt.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    // A push to a pushrelay being restarted finds the port
                    // closed: it is not acknowledged, and tried again. One
                    // in flight when pushrelay is killed loses its answer
                    // (it may or may not be queued): it is tried again too,
                    // as a pusher retries an unanswered request, and may
                    // then be stored twice; only such a push may.
                    loop {
                        let url = relay_url.lock().unwrap().clone();
                        match push_seq(&url, pusher, n, "").await {
                            Ok(()) => break,
                            Err(error) if error.contains("Connect") => {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            Err(error) if error.contains("IncompleteMessage") => {
                                in_doubt.lock().unwrap().push((pusher, n));
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            Err(error) => panic!("push {n} of pusher {pusher} refused: {error}"),
                        }
                        if stop.load(Ordering::Relaxed) {
                            return acked;
                        }
                    }
                    acked.push(n);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                acked
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_with_a_sigkill_restart_loses_nothing_acknowledged() {
    let mut prometheus = Prometheus::start().await;
    let mut relay = durable_relay(&prometheus.write_url(), &[]).await;
    let url = Arc::new(std::sync::Mutex::new(relay.url()));
    let stop = Arc::new(AtomicBool::new(false));
    let in_doubt = Arc::new(std::sync::Mutex::new(Vec::new()));
    let pushers = spawn_pushers(url.clone(), 4, stop.clone(), in_doubt.clone());

    tokio::time::sleep(Duration::from_secs(2)).await;
    prometheus.peer.kill_hard();
    let outage = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    // SIGKILL in the middle of the outage, with acknowledged pushes only
    // on disk; the restart replays them before anything new.
    relay.peer.restart().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    prometheus.peer.restart().await;
    eprintln!("backend outage: {:?}", outage.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);

    let mut acked = BTreeMap::new();
    for (pusher, handle) in pushers.into_iter().enumerate() {
        acked.insert(pusher, handle.await.expect("pusher task"));
    }
    let total: usize = acked.values().map(Vec::len).sum();
    eprintln!("acknowledged pushes: {total}");
    assert!(total > 100, "too few pushes to say anything: {total}");
    let in_doubt = in_doubt.lock().unwrap().clone();
    expect_delivered_with_retries(&prometheus, &acked, &in_doubt).await;
}

/// Pushes `count` pushes of pusher 0 while the backend is down, kills
/// pushrelay, lets `damage` change the newest segment, brings everything
/// back, and expects the whole records before the damage delivered.
async fn damaged_tail_case(count: u64, damage: impl FnOnce(&Path, &[u64]) -> u64) {
    let mut prometheus = Prometheus::start().await;
    prometheus.peer.kill_hard();
    let mut relay = durable_relay(&prometheus.write_url(), &[]).await;
    for n in 1..=count {
        push_seq(&relay.url(), 0, n, "")
            .await
            .expect("acknowledged");
    }
    relay.peer.kill_hard();
    let segment = newest_segment(&queue_dir(&relay));
    let ends = record_ends(&segment);
    assert_eq!(ends.len() as u64, count, "one record per push");
    let whole = damage(&segment, &ends);

    prometheus.peer.restart().await;
    relay.peer.restart().await;
    let log = relay.peer.log();
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        log.contains("cut back to its last whole record") && log.contains(&name),
        "no warning naming {name}:\n{log}"
    );
    assert!(log.contains("bytes_dropped"), "{log}");
    let acked = BTreeMap::from([(0, (1..=whole).collect::<Vec<u64>>())]);
    expect_delivered(&prometheus, &acked).await;
    // The queue keeps working after the repair.
    push_seq(&relay.url(), 0, whole + 1, "")
        .await
        .expect("acknowledged");
    let acked = BTreeMap::from([(0, (1..=whole + 1).collect::<Vec<u64>>())]);
    expect_delivered(&prometheus, &acked).await;
}

/// The segment file with the highest first sequence number that has data.
fn newest_segment(dir: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the queue directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
        .collect();
    segments.sort();
    segments.pop().expect("a segment with records")
}

/// The end offsets of the records of a segment (`[len u32][crc u32][payload]`).
fn record_ends(path: &Path) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap();
    let mut ends = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 8 + len;
        ends.push(at as u64);
    }
    ends
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_queue_tail_is_cut_and_the_whole_records_are_delivered() {
    damaged_tail_case(20, |segment, ends| {
        // As a kill in the middle of writing the last record leaves it.
        let last_start = ends[ends.len() - 2];
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(segment)
            .unwrap();
        file.set_len(last_start + 5).unwrap();
        ends.len() as u64 - 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbled_queue_tail_is_cut_and_the_whole_records_are_delivered() {
    damaged_tail_case(20, |segment, ends| {
        // One flipped byte in the payload of the 16th record: its checksum
        // fails, and it and everything after it in the file are cut.
        let mut bytes = std::fs::read(segment).unwrap();
        let at = ends[14] as usize + 20;
        bytes[at] ^= 0xa5;
        std::fs::write(segment, bytes).unwrap();
        15
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_and_loses_nothing_acknowledged() {
    let mut prometheus = Prometheus::start().await;
    prometheus.peer.kill_hard();
    let relay = small_queue_relay(&prometheus.write_url()).await;
    // About 12 KiB per record: the 1 MiB queue is full after ~85 pushes.
    let padding = padding();
    let mut acked = Vec::new();
    let mut refusal = None;
    for n in 1..=1000 {
        let url = format!("{}/metrics/job/durable/pusher/0", relay.url());
        let body = format!("# TYPE durable_seq gauge\ndurable_seq {n}\n{padding}");
        let reply = request(
            Method::PUT,
            &url,
            &[("Content-Type", TEXT_CONTENT_TYPE)],
            body,
        )
        .await;
        match reply.status {
            StatusCode::OK => acked.push(n),
            StatusCode::TOO_MANY_REQUESTS => {
                refusal = Some(reply);
                break;
            }
            other => panic!("push {n}: unexpected {other}: {}", reply.text()),
        }
    }
    let refusal = refusal.expect("the queue never filled up");
    assert!(refusal.headers.contains_key("retry-after"), "{refusal:?}");
    assert!(refusal.text().contains("queue"), "{}", refusal.text());
    assert!(acked.len() > 50, "only {} pushes fit", acked.len());
    // Refused before its body is read: a body that never ends gets its 429.
    let mut endless = tokio::net::TcpStream::connect(relay.peer.addr())
        .await
        .unwrap();
    endless
        .write_all(
            b"PUT /metrics/job/durable/pusher/1 HTTP/1.1\r\nHost: x\r\n\
              Content-Type: text/plain; version=0.0.4\r\n\
              Transfer-Encoding: chunked\r\n\r\n4\r\nm 1\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    read_head(&mut endless, &mut answer, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no answer to an endless body: {answer:?}"));
    let head = String::from_utf8_lossy(&answer);
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");

    prometheus.peer.restart().await;
    expect_delivered(&prometheus, &BTreeMap::from([(0, acked.clone())])).await;
    // Delivered entries give their room back.
    let deadline = Instant::now() + DELIVERY_WAIT;
    let next = *acked.last().unwrap() + 1;
    while let Err(error) = push_seq(&relay.url(), 0, next, &padding).await {
        assert!(error.starts_with("429"), "{error}");
        assert!(
            Instant::now() < deadline,
            "the queue stayed full after delivery"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    acked.push(next);
    expect_delivered(&prometheus, &BTreeMap::from([(0, acked)])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_after_a_sigkill_restart_ends_the_series_pushed_before_it() {
    let prometheus = Prometheus::start().await;
    let mut relay = durable_relay(&prometheus.write_url(), &[]).await;
    push_seq(
        &relay.url(),
        3,
        1,
        "# TYPE durable_other gauge\ndurable_other 7\n",
    )
    .await
    .expect("acknowledged");
    let visible = r#"{job="durable",pusher="3"}"#;
    let deadline = Instant::now() + DELIVERY_WAIT;
    while prometheus.query(visible).await.len() < 4 {
        assert!(Instant::now() < deadline, "the push never arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    relay.peer.restart().await;
    let reply = request(Method::DELETE, &group_url(&relay, 3), &[], Bytes::new()).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    // The stale markers end every series of the group: durable_seq,
    // durable_other, push_time_seconds, push_failure_time_seconds.
    let deadline = Instant::now() + DELIVERY_WAIT;
    loop {
        let left = prometheus.query(visible).await;
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "series still live after the DELETE: {left:?}\n{}",
            relay.peer.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_refused_as_too_old_is_counted_and_delivery_goes_on() {
    let prometheus = Prometheus::start().await;
    let relay = durable_relay(&prometheus.write_url(), &["--push.honor-timestamps"]).await;
    push_seq(&relay.url(), 0, 1, "")
        .await
        .expect("acknowledged");
    expect_delivered(&prometheus, &BTreeMap::from([(0, vec![1])])).await;
    // Three hours back: before the head block Prometheus still appends to.
    let old_ms = ((unix_now() - 3.0 * 3600.0) * 1000.0) as i64;
    let url = format!("{}/metrics/job/durable/pusher/1", relay.url());
    let body = format!("# TYPE durable_seq gauge\ndurable_seq 1 {old_ms}\n");
    let reply = request(
        Method::PUT,
        &url,
        &[("Content-Type", TEXT_CONTENT_TYPE)],
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    push_seq(&relay.url(), 2, 5, "")
        .await
        .expect("acknowledged");
    let expected = BTreeMap::from([(0, vec![1]), (2, vec![5])]);
    expect_delivered(&prometheus, &expected).await;
    assert!(!stored_seqs(&prometheus).await.contains_key(&1));
    let metrics = get(&format!("{}/metrics", relay.url())).await.text();
    let dropped = metrics
        .lines()
        .find(|l| l.starts_with("pushrelay_disk_queue_entries_dropped_total{reason=\"too_old\"}"))
        .unwrap_or_else(|| panic!("no too_old count:\n{metrics}"));
    assert!(dropped.ends_with(" 1"), "{dropped}");
    assert!(
        relay.peer.log().contains("out of bounds"),
        "{}",
        relay.peer.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_saves_a_checkpoint_so_a_restart_replays_nothing() {
    let prometheus = Prometheus::start().await;
    let mut relay = durable_relay(&prometheus.write_url(), &[]).await;
    for n in 1..=5 {
        push_seq(&relay.url(), 0, n, "")
            .await
            .expect("acknowledged");
    }
    expect_delivered(&prometheus, &BTreeMap::from([(0, (1..=5).collect())])).await;
    // At once, before the periodic checkpoint: the stop must take one.
    relay.peer.signal("TERM");
    let status = relay.peer.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}");
    relay.peer.restart().await;
    let log = relay.peer.log();
    let opened: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("disk queue opened"))
        .collect();
    assert_eq!(opened.len(), 2, "{log}");
    assert!(opened[1].contains("replaying=0"), "{}", opened[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_pushrelay_on_the_same_queue_refuses_to_start() {
    let prometheus = Prometheus::start().await;
    let relay = durable_relay(&prometheus.write_url(), &[]).await;
    let args = vec![
        format!("--web.listen-address=127.0.0.1:{}", common::free_port()),
        format!("--remote-write.url={}", prometheus.write_url()),
        "--remote-write.ack=durable".into(),
        format!("--remote-write.queue.dir={}", queue_dir(&relay).display()),
    ];
    let (status, log) = common::run_to_exit(&common::pushrelay_binary(), &args).await;
    assert!(!status.success(), "{log}");
    assert!(log.contains("in use by another pushrelay"), "{log}");
    // The first one is unaffected.
    push_seq(&relay.url(), 0, 1, "")
        .await
        .expect("acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_filling_faster_than_its_checkpoints_frees_delivered_room_at_once() {
    let prometheus = Prometheus::start().await;
    let relay = small_queue_relay(&prometheus.write_url()).await;
    // About 12 KiB per record: 600 pushes, one every 10 ms (a pace the
    // backend keeps up with), write 7 times the 1 MiB queue. Room comes
    // back only when a checkpoint deletes delivered segments; on the 2 s
    // interval alone, the 2.4 MiB written between two fill the queue (a
    // 429 with the backend keeping up).
    let padding = padding();
    let mut acked = Vec::new();
    let mut pace = tokio::time::interval(Duration::from_millis(10));
    for n in 1..=600 {
        pace.tick().await;
        if let Err(error) = push_seq(&relay.url(), 0, n, &padding).await {
            panic!("push {n} after {} acknowledged: {error}", acked.len());
        }
        acked.push(n);
    }
    expect_delivered(&prometheus, &BTreeMap::from([(0, acked)])).await;
}
