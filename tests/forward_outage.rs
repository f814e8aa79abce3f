//! Delivery you can trust, end to end: pushrelay (the built binary)
//! forwarding to the real Prometheus 2.42 under a load of concurrent
//! pushers, while Prometheus is killed and restarted on its data directory,
//! and while pushrelay itself is stopped with SIGTERM.
//!
//! Every pusher owns one group (`job="outage"`, `pusher="<i>"`) and pushes
//! the gauge `outage_seq` with the value `n` for its `n`-th push, so each
//! acknowledged push is one sample that can be looked for afterwards: the
//! raw samples of `outage_seq[10m]` per pusher must hold every `n` that was
//! answered 200. Even pushers PUT, odd pushers POST.
//!
//! - an outage shorter than the retry deadline is ridden out (every push
//!   waiting through it is acked and stored, and so is everything acked
//!   before the kill, which only the WAL replay can bring back); one longer
//!   than the deadline answers 503 with Retry-After, acks nothing while
//!   Prometheus is down, and recovers;
//! - SIGTERM under load: pushrelay exits 0, every ack is stored, later
//!   pushes find the port closed; with the backend stalled (SIGSTOP) or
//!   down (SIGKILL) at SIGTERM, pushrelay keeps draining until it is back,
//!   and every push in flight at SIGTERM is acked and stored; a push on a
//!   connection opened before SIGTERM is served even when its request
//!   arrives after the listener closed.
//!
//! The tests assert correctness only (nothing acknowledged is missing,
//! exit status 0, failures are 503 or a connection refused or reset); the
//! timings they print are figures, not assertions. Processes are started on
//! free loopback ports with their own temporary directories and killed by
//! PID when dropped.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    Peer, Prometheus, Pushrelay, READY_TIMEOUT, Ready, TEXT_CONTENT_TYPE, try_request, unix_now,
};
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Concurrent pushers.
const PUSHERS: usize = 8;
/// How long pushrelay keeps retrying a push: long enough to ride out an
/// outage of a few seconds, even when Prometheus restarts slowly on a
/// loaded machine.
const RETRY_DEADLINE: &str = "20s";
/// How long one push may take: the retry deadline plus slack.
const PUSH_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// Prometheus as a remote_write receiver that can be killed and started
/// again on its port and data directory (the harness' [`Peer::restart`]).
struct Backend {
    prometheus: Prometheus,
}

impl Backend {
    async fn start() -> Self {
        Self {
            prometheus: Prometheus::start().await,
        }
    }

    /// Starts Prometheus again on its port and data directory and waits
    /// until it is ready (after its WAL replay).
    async fn launch(&mut self) {
        self.prometheus.peer.restart().await;
    }

    /// `kill -9` by PID.
    fn kill_hard(&mut self) {
        self.prometheus.peer.kill_hard();
    }

    fn pid(&self) -> u32 {
        self.prometheus.peer.pid()
    }

    /// Sends `signal` to the running Prometheus (`STOP` stalls it: it
    /// keeps its connections but answers nothing until `CONT`).
    fn signal(&self, signal: &str) {
        self.prometheus.peer.signal(signal);
    }

    fn url(&self) -> String {
        self.prometheus.url()
    }

    /// The raw samples of `outage_seq{job=<job>}` in the last ten minutes,
    /// per pusher, as integers.
    async fn sequences(&self, job: &str) -> BTreeMap<usize, BTreeSet<u64>> {
        let promql = format!("outage_seq{{job=\"{job}\"}}[10m]");
        let encoded =
            percent_encoding::utf8_percent_encode(&promql, percent_encoding::NON_ALPHANUMERIC);
        let url = format!(
            "{}/api/v1/query?query={encoded}&time={:.3}",
            self.url(),
            unix_now()
        );
        let reply = within(
            "querying Prometheus",
            Duration::from_secs(20),
            try_request(Method::GET, &url, &[], Bytes::new()),
        )
        .await
        .unwrap_or_else(|e| panic!("{promql}: {e}"));
        assert_eq!(reply.status, StatusCode::OK, "{promql}: {}", reply.text());
        let json: serde_json::Value =
            serde_json::from_slice(&reply.body).expect("the query answer is JSON");
        assert_eq!(json["data"]["resultType"], "matrix", "{json}");
        let mut out: BTreeMap<usize, BTreeSet<u64>> = BTreeMap::new();
        for series in json["data"]["result"].as_array().expect("a result array") {
            let pusher: usize = series["metric"]["pusher"]
                .as_str()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("a series without a pusher label: {series}"));
            let values = out.entry(pusher).or_default();
            for pair in series["values"].as_array().expect("a values array") {
                let text = pair[1].as_str().expect("a sample value");
                let value: f64 = text.parse().expect("a numeric sample value");
                values.insert(value as u64);
            }
        }
        out
    }
}

/// The pushrelay binary Cargo built for this test run, forwarding to
/// `write_url`.
async fn start_relay(write_url: &str, retry_deadline: &str) -> (Peer, String) {
    let args = [
        format!("--remote-write.url={write_url}"),
        format!("--remote-write.retry-deadline={retry_deadline}"),
        "--log.level=info".into(),
    ];
    // Ready = the backend has answered, so forwarding works from the start.
    let relay = Pushrelay::start_until(Ready::Http("/-/ready".into()), &args).await;
    let url = relay.url();
    (relay.peer, url)
}

/// `what` must finish within `limit`.
async fn within<T>(what: &str, limit: Duration, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {limit:?}"))
}

// ---------------------------------------------------------------------------
// The load
// ---------------------------------------------------------------------------

/// What one push got.
#[derive(Debug)]
struct Outcome {
    pusher: usize,
    seq: u64,
    started: Instant,
    answered: Instant,
    /// The status, or why there was none.
    answer: Result<(StatusCode, Option<String>), String>,
}

impl Outcome {
    fn acked(&self) -> bool {
        matches!(self.answer, Ok((StatusCode::OK, _)))
    }

    fn latency(&self) -> Duration {
        self.answered - self.started
    }
}

/// Pusher `pusher`: pushes `outage_seq = 1, 2, ...` to its own group until
/// `stop` is set, one push at a time; returns every push's outcome.
async fn pusher(
    relay: String,
    job: &'static str,
    pusher: usize,
    stop: Arc<AtomicBool>,
) -> Vec<Outcome> {
    let method = if pusher.is_multiple_of(2) {
        Method::PUT
    } else {
        Method::POST
    };
    let url = format!("{relay}/metrics/job/{job}/pusher/{pusher}");
    let mut outcomes = Vec::new();
    let mut seq = 0;
    while !stop.load(Ordering::SeqCst) {
        seq += 1;
        let body = format!("# TYPE outage_seq gauge\noutage_seq {seq}\n");
        let started = Instant::now();
        let answer = match tokio::time::timeout(
            PUSH_TIMEOUT,
            try_request(
                method.clone(),
                &url,
                &[("content-type", TEXT_CONTENT_TYPE)],
                body,
            ),
        )
        .await
        {
            Ok(Ok(reply)) => Ok((
                reply.status,
                reply
                    .headers
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap_or("?").to_string()),
            )),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(format!("no answer within {PUSH_TIMEOUT:?}")),
        };
        let failed = answer.is_err();
        outcomes.push(Outcome {
            pusher,
            seq,
            started,
            answered: Instant::now(),
            answer,
        });
        if failed {
            // pushrelay is gone: do not spin.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    outcomes
}

/// Runs [`PUSHERS`] pushers until `stop` is set.
fn start_load(
    relay: &str,
    job: &'static str,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Outcome>>> {
    (0..PUSHERS)
        .map(|i| tokio::spawn(pusher(relay.to_string(), job, i, stop.clone())))
        .collect()
}

/// Stops the load and collects every outcome.
async fn finish_load(
    stop: &AtomicBool,
    tasks: Vec<tokio::task::JoinHandle<Vec<Outcome>>>,
) -> Vec<Outcome> {
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for task in tasks {
        let done = within(
            "a pusher finishing",
            PUSH_TIMEOUT + Duration::from_secs(5),
            task,
        )
        .await;
        outcomes.extend(done.expect("a pusher task panicked"));
    }
    outcomes
}

/// When pushrelay retried during an outage, from its log: for each retry
/// attempt number, the first time it was logged, as an offset from the
/// first failure. Shards retry independently, so this is the schedule of
/// the earliest failing request (backoff doubling from `min_backoff`,
/// jittered into the upper half).
fn retry_schedule(log: &str) -> Vec<(u32, Duration)> {
    let mut first: BTreeMap<u32, f64> = BTreeMap::new();
    for line in log.lines().filter(|l| l.contains("retrying")) {
        let time = line
            .split_whitespace()
            .next()
            .and_then(|stamp| stamp.split_once('T'))
            .map(|(_, clock)| clock.trim_end_matches('Z'))
            .and_then(|clock| {
                let mut parts = clock.split(':').map(|p| p.parse::<f64>().ok());
                Some(parts.next()?? * 3600.0 + parts.next()?? * 60.0 + parts.next()??)
            });
        let attempt = line
            .split_whitespace()
            .find_map(|field| field.strip_prefix("attempt="))
            .and_then(|n| n.parse().ok());
        if let (Some(time), Some(attempt)) = (time, attempt) {
            let entry = first.entry(attempt).or_insert(time);
            *entry = entry.min(time);
        }
    }
    let start = first.values().next().copied().unwrap_or_default();
    first
        .into_iter()
        .map(|(attempt, time)| (attempt, Duration::from_secs_f64((time - start).max(0.0))))
        .collect()
}

/// The acknowledged pushes missing from `stored`, as `(pusher, seq)`.
fn missing_acks(
    outcomes: &[Outcome],
    stored: &BTreeMap<usize, BTreeSet<u64>>,
) -> Vec<(usize, u64)> {
    outcomes
        .iter()
        .filter(|o| o.acked())
        .filter(|o| !stored.get(&o.pusher).is_some_and(|s| s.contains(&o.seq)))
        .map(|o| (o.pusher, o.seq))
        .collect()
}

/// Counts of the outcomes: (acked, 503 with Retry-After, other status,
/// no answer).
fn tally(outcomes: &[Outcome]) -> (usize, usize, usize, usize) {
    let mut counts = (0, 0, 0, 0);
    for outcome in outcomes {
        match &outcome.answer {
            Ok((StatusCode::OK, _)) => counts.0 += 1,
            Ok((StatusCode::SERVICE_UNAVAILABLE, Some(_))) => counts.1 += 1,
            Ok(_) => counts.2 += 1,
            Err(_) => counts.3 += 1,
        }
    }
    counts
}

fn unexpected_answers(outcomes: &[Outcome]) -> Vec<String> {
    outcomes
        .iter()
        .filter_map(|o| match &o.answer {
            Ok((StatusCode::OK, _)) | Ok((StatusCode::SERVICE_UNAVAILABLE, Some(_))) => None,
            Ok((status, _)) => Some(format!("pusher {} seq {}: {status}", o.pusher, o.seq)),
            Err(_) => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// What a load through a Prometheus outage came to.
struct OutageRun {
    outcomes: Vec<Outcome>,
    /// Every acknowledged push that is not in Prometheus afterwards.
    missing: Vec<(usize, u64)>,
    killed: Instant,
    /// When Prometheus was started again (it was down all along before).
    restarting: Instant,
    /// When Prometheus was ready again.
    back: Instant,
}

impl OutageRun {
    /// Acked pushes that were waiting while Prometheus was certainly down
    /// (killed, not yet started again): their retries rode out the outage.
    fn ridden_out(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.acked() && o.started < self.restarting && o.answered > self.restarting)
            .count()
    }
}

/// Pushes under load through pushrelay (retry deadline `retry_deadline`)
/// into Prometheus, kills Prometheus with SIGKILL after two seconds, starts
/// it again on the same data directory and port after `down_for`, pushes
/// two seconds more, then looks for every acknowledged push. Prints the
/// figures.
async fn run_outage(job: &'static str, retry_deadline: &str, down_for: Duration) -> OutageRun {
    let mut backend = Backend::start().await;
    let write_url = format!("{}/api/v1/write", backend.url());
    let (relay, relay_url) = start_relay(&write_url, retry_deadline).await;

    let stop = Arc::new(AtomicBool::new(false));
    let load = start_load(&relay_url, job, &stop);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let first_pid = backend.pid();
    let killed = Instant::now();
    backend.kill_hard();
    tokio::time::sleep(down_for).await;
    let restarting = Instant::now();
    within(
        "restarting Prometheus",
        READY_TIMEOUT + Duration::from_secs(5),
        backend.launch(),
    )
    .await;
    let back = Instant::now();
    assert_ne!(backend.pid(), first_pid, "Prometheus was not restarted");

    tokio::time::sleep(Duration::from_secs(2)).await;
    let outcomes = finish_load(&stop, load).await;
    let stored = backend.sequences(job).await;
    let missing = missing_acks(&outcomes, &stored);
    let run = OutageRun {
        outcomes,
        missing,
        killed,
        restarting,
        back,
    };

    let outcomes = &run.outcomes;
    let (acked, unavailable, other, no_answer) = tally(outcomes);
    let longest = outcomes
        .iter()
        .map(Outcome::latency)
        .max()
        .unwrap_or_default();
    // Acked before the kill: stored only through the WAL Prometheus replayed.
    let acked_before_kill = outcomes
        .iter()
        .filter(|o| o.acked() && o.answered < killed)
        .count();
    let stored_samples: usize = stored.values().map(BTreeSet::len).sum();
    eprintln!(
        "{job} figures (retry deadline {retry_deadline}): pushes sent {}, acked (200) {acked}, \
         503 {unavailable}, other status {other}, no answer {no_answer}; acked found in \
         Prometheus afterwards {}/{acked} (samples stored {stored_samples}); outage (kill -9 to \
         ready again) {:?}; acked before the kill {acked_before_kill}; acked pushes that waited \
         through the outage {}; longest push latency {longest:?}; retry schedule (attempt, time \
         since the first failure) {:?}",
        outcomes.len(),
        acked - run.missing.len(),
        back - killed,
        run.ridden_out(),
        retry_schedule(&relay.log()),
    );
    run
}

/// Every acknowledged push of `run` is in Prometheus, and every push that
/// failed got a 503 with `Retry-After`.
fn assert_acks_stored_and_failures_unavailable(run: &OutageRun) {
    assert!(
        run.missing.is_empty(),
        "{} acknowledged pushes are not in Prometheus after its restart (pusher, seq): {:?}",
        run.missing.len(),
        run.missing
    );
    let unexpected = unexpected_answers(&run.outcomes);
    assert!(
        unexpected.is_empty(),
        "a push failed otherwise than 503 with Retry-After: {unexpected:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_outage_loses_no_acknowledged_push() {
    let run = run_outage("outage", RETRY_DEADLINE, Duration::from_secs(2)).await;
    let outcomes = &run.outcomes;
    assert_acks_stored_and_failures_unavailable(&run);
    assert_eq!(
        outcomes
            .iter()
            .find(|o| o.answer.is_err())
            .map(|o| &o.answer),
        None,
        "pushrelay stayed up, yet a push got no answer"
    );
    assert!(
        run.ridden_out() > 0,
        "no acknowledged push waited through the outage ({} pushes)",
        outcomes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_outage_past_the_retry_deadline_is_503_then_recovers() {
    let run = run_outage("outage_503", "1s", Duration::from_secs(3)).await;
    let outcomes = &run.outcomes;
    assert_acks_stored_and_failures_unavailable(&run);
    // Prometheus was down three times as long as the deadline: pushes made
    // while it was certainly down failed, and none was acked.
    let during: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.started > run.killed && o.answered < run.restarting)
        .collect();
    assert!(
        !during.is_empty(),
        "no push was answered while Prometheus was down"
    );
    let acked_during: Vec<&&Outcome> = during.iter().filter(|o| o.acked()).collect();
    assert!(
        acked_during.is_empty(),
        "pushes were acked while Prometheus was down: {acked_during:?}"
    );
    let acked_after = outcomes
        .iter()
        .filter(|o| o.acked() && o.started > run.back)
        .count();
    assert!(
        acked_after > 0,
        "no push was acked after Prometheus came back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_on_a_connection_opened_before_sigterm_is_served() {
    let backend = Backend::start().await;
    let write_url = format!("{}/api/v1/write", backend.url());
    let (mut relay, relay_url) = start_relay(&write_url, RETRY_DEADLINE).await;
    let addr = relay_url.trim_start_matches("http://").to_string();

    // A pusher connects; its request follows once the shutdown is under
    // way (a slow client, or one whose request was still in the socket).
    let mut early = within(
        "connecting",
        Duration::from_secs(10),
        TcpStream::connect(&addr),
    )
    .await
    .expect("connecting to pushrelay");
    let terminated = Instant::now();
    relay.signal("TERM");
    let deadline = terminated + Duration::from_secs(10);
    loop {
        match TcpStream::connect(&addr).await {
            // A connection that reached the listen backlog as the listener
            // closed is reset rather than refused: closed either way.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                break;
            }
            Err(e) => panic!("connecting during the shutdown: {e}"),
            Ok(_) => {
                assert!(
                    Instant::now() < deadline,
                    "pushrelay still accepts connections 10 s after SIGTERM"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    let closed = Instant::now();

    let body = "outage_seq 1\n";
    let request = format!(
        "PUT /metrics/job/early/pusher/0 HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: {TEXT_CONTENT_TYPE}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        early.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        early.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = within("the early push", PUSH_TIMEOUT, exchange).await;
    let status_line = answer.as_ref().map(|bytes| {
        String::from_utf8_lossy(bytes)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    });
    let status = relay.wait_exit(Duration::from_secs(30)).await;
    let stored = backend.sequences("early").await;
    eprintln!(
        "early-connection figures: listener closed {:?} after SIGTERM; the push sent then got \
         {status_line:?}; SIGTERM to exit {:?}; exit status {status}",
        closed - terminated,
        terminated.elapsed()
    );

    assert!(
        matches!(&status_line, Ok(line) if line.starts_with("HTTP/1.1 200")),
        "a push on a connection opened before SIGTERM was not served: {status_line:?}"
    );
    assert_eq!(
        stored.get(&0),
        Some(&BTreeSet::from([1])),
        "the acked push is not in Prometheus"
    );
    assert_eq!(
        status.code(),
        Some(0),
        "pushrelay exited with {status} after SIGTERM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_load_drains_and_exits_zero() {
    let backend = Backend::start().await;
    let write_url = format!("{}/api/v1/write", backend.url());
    let (mut relay, relay_url) = start_relay(&write_url, RETRY_DEADLINE).await;

    let stop = Arc::new(AtomicBool::new(false));
    let load = start_load(&relay_url, "sigterm", &stop);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let terminated = Instant::now();
    relay.signal("TERM");
    let status = relay.wait_exit(Duration::from_secs(30)).await;
    let exited = Instant::now();
    // Pushes keep coming after the exit: they must find nobody listening.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outcomes = finish_load(&stop, load).await;
    let stored = backend.sequences("sigterm").await;

    let (acked, unavailable, other, no_answer) = tally(&outcomes);
    let missing = missing_acks(&outcomes, &stored);
    let found = acked - missing.len();
    let acked_after_signal = outcomes
        .iter()
        .filter(|o| o.acked() && o.answered > terminated)
        .count();
    let in_flight_at_signal = outcomes
        .iter()
        .filter(|o| o.started < terminated && o.answered > terminated)
        .count();
    let refused_after_exit = outcomes
        .iter()
        .filter(|o| o.started > exited && o.answer.is_err())
        .count();
    // Sent before the exit but never answered: refused once the listener
    // was closed, or reset when the connection was not read yet.
    let unanswered: Vec<&String> = outcomes
        .iter()
        .filter(|o| o.started < exited)
        .filter_map(|o| o.answer.as_ref().err())
        .collect();
    let refused_before_exit = unanswered
        .iter()
        .filter(|e| e.contains("ConnectionRefused"))
        .count();
    eprintln!(
        "SIGTERM figures: pushes sent {}, acked (200) {acked}, 503 {unavailable}, \
         other status {other}, no answer {no_answer}; acked found in Prometheus \
         {found}/{acked}; in flight at SIGTERM {in_flight_at_signal}, acked after SIGTERM \
         {acked_after_signal}; sent after the exit and refused {refused_after_exit}; sent \
         between SIGTERM and the exit and unanswered {} ({refused_before_exit} refused, the \
         others reset: {:?}); SIGTERM to exit {:?}; exit status {status}",
        outcomes.len(),
        unanswered.len(),
        unanswered.iter().find(|e| !e.contains("ConnectionRefused")),
        exited - terminated
    );

    assert_eq!(
        status.code(),
        Some(0),
        "pushrelay exited with {status} after SIGTERM:\n{}",
        relay.log()
    );
    assert!(
        missing.is_empty(),
        "{} acked pushes are not in Prometheus after the shutdown (pusher, seq): {missing:?}",
        missing.len()
    );
    let unexpected = unexpected_answers(&outcomes);
    assert!(
        unexpected.is_empty(),
        "a push failed otherwise than 503 with Retry-After or a refused connection: {unexpected:?}"
    );
    assert!(acked > 0, "no push was acknowledged before SIGTERM");
    assert!(
        refused_after_exit > 0,
        "no push was tried after pushrelay exited: the load stopped early"
    );
    let answered_after_exit: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.started > exited && o.answer.is_ok())
        .collect();
    assert!(
        answered_after_exit.is_empty(),
        "pushes sent after pushrelay exited were answered: {answered_after_exit:?}"
    );
}

/// How the backend is unavailable while pushrelay drains.
#[derive(Clone, Copy, Debug)]
enum Unavailable {
    /// SIGSTOP: connections are accepted, nothing is answered (pushrelay's
    /// requests hang until SIGCONT).
    Stalled,
    /// SIGKILL, then started again on its data: connections are refused
    /// (pushrelay retries with backoff until the restart).
    Killed,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_backend_stalls_waits_for_in_flight_pushes() {
    sigterm_while_the_backend_is_unavailable("stall", Unavailable::Stalled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_backend_is_down_waits_for_its_restart() {
    sigterm_while_the_backend_is_unavailable("down", Unavailable::Killed).await;
}

/// Makes the backend unavailable under load, sends SIGTERM to pushrelay,
/// checks a second later that it is still draining and refuses new
/// connections, then brings the backend back: every push in flight at
/// SIGTERM must be acked and stored, and pushrelay must exit 0.
async fn sigterm_while_the_backend_is_unavailable(job: &'static str, how: Unavailable) {
    let mut backend = Backend::start().await;
    let write_url = format!("{}/api/v1/write", backend.url());
    let (mut relay, relay_url) = start_relay(&write_url, RETRY_DEADLINE).await;

    let stop = Arc::new(AtomicBool::new(false));
    let load = start_load(&relay_url, job, &stop);
    tokio::time::sleep(Duration::from_secs(1)).await;
    match how {
        Unavailable::Stalled => backend.signal("STOP"),
        Unavailable::Killed => backend.kill_hard(),
    }
    let stalled = Instant::now();
    // Every pusher's push is now waiting for the backend.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let terminated = Instant::now();
    relay.signal("TERM");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let still_draining = relay.exited();
    // Meanwhile a new push finds nobody listening.
    let late = within(
        "a push during the drain",
        Duration::from_secs(10),
        try_request(
            Method::PUT,
            &format!("{relay_url}/metrics/job/{job}/pusher/{PUSHERS}"),
            &[("content-type", TEXT_CONTENT_TYPE)],
            "outage_seq 1\n",
        ),
    )
    .await;
    match how {
        Unavailable::Stalled => backend.signal("CONT"),
        Unavailable::Killed => {
            within(
                "restarting Prometheus",
                READY_TIMEOUT + Duration::from_secs(5),
                backend.launch(),
            )
            .await
        }
    }
    let resumed = Instant::now();
    let status = relay.wait_exit(Duration::from_secs(30)).await;
    let exited = Instant::now();
    let outcomes = finish_load(&stop, load).await;
    let stored = backend.sequences(job).await;

    let (acked, unavailable, other, no_answer) = tally(&outcomes);
    let missing = missing_acks(&outcomes, &stored);
    let in_flight: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.started < terminated && o.answered > terminated)
        .collect();
    let in_flight_acked = in_flight.iter().filter(|o| o.acked()).count();
    eprintln!(
        "SIGTERM with the backend {how:?} figures: pushes sent {}, acked (200) {acked}, \
         503 {unavailable}, other status {other}, no answer {no_answer}; acked found in \
         Prometheus {}/{acked}; in flight at SIGTERM {} of which acked {in_flight_acked}; \
         backend unavailable {:?}; backend back to exit {:?}; exit status {status}; push \
         during the drain: {:?}",
        outcomes.len(),
        acked - missing.len(),
        in_flight.len(),
        resumed - stalled,
        exited - resumed,
        late.as_ref().map(|r| r.status),
    );

    assert_eq!(
        still_draining, None,
        "pushrelay exited while pushes were still waiting for the backend"
    );
    assert!(
        late.is_err(),
        "a push sent during the drain was answered: {:?}",
        late.map(|r| (r.status, r.text()))
    );
    assert_eq!(
        status.code(),
        Some(0),
        "pushrelay exited with {status} after SIGTERM:\n{}",
        relay.log()
    );
    assert!(
        !in_flight.is_empty(),
        "no push was in flight at SIGTERM: the load did not run"
    );
    assert_eq!(
        in_flight_acked,
        in_flight.len(),
        "pushes in flight at SIGTERM were not all drained to the backend: {in_flight:?}"
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged pushes are not in Prometheus (pusher, seq): {missing:?}",
        missing.len()
    );
    let unexpected = unexpected_answers(&outcomes);
    assert!(
        unexpected.is_empty(),
        "a push failed otherwise than 503 with Retry-After or a refused connection: {unexpected:?}"
    );
}
