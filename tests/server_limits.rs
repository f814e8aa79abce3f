//! The server against slow, idle and too many clients, run against the
//! built pushrelay binary: idle and half-sent connections are closed after
//! the header and idle timeouts, trickled bodies after the read timeout,
//! new pushes are answered meanwhile, memory comes back, the connection
//! limit holds new connections in the backlog, running out of descriptors
//! backs off accepting while held connections are served, and SIGTERM
//! closes idle connections at once.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Peer, Pushrelay, Ready, bounded, pushrelay_binary, require_binary};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PUSH: &[u8] =
    b"PUT /metrics/job/fresh HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nm 1\n";

/// The resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Sends one push on a new connection; the status line and how long it took.
async fn push_on_new_connection(addr: SocketAddr) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(PUSH).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    (text.lines().next().unwrap_or("").to_string(), elapsed)
}

/// Waits until the server closes `stream` (EOF or reset); how long it took.
async fn closed_within(mut stream: TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut sink = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .ok()
        .map(|()| started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_clients_are_cut_off_while_pushes_keep_being_answered() {
    let relay = Pushrelay::start(&[
        "--web.read-header-timeout=2s",
        "--web.idle-timeout=2s",
        "--web.read-timeout=3s",
    ])
    .await;
    let addr = relay.peer.addr();
    let pid = relay.peer.pid();
    // Warm up (allocator arenas, the first push's state) before the baseline.
    for _ in 0..20 {
        assert_eq!(push_on_new_connection(addr).await.0, "HTTP/1.1 200 OK");
    }
    let rss_before = rss_kib(pid);

    // 3,000 connections: half send nothing, half half a request line.
    let mut idle = Vec::new();
    for i in 0..3000 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        if i % 2 == 1 {
            stream.write_all(b"PUT /metrics/jo").await.unwrap();
        }
        idle.push(stream);
    }
    // 200 pushes whose body trickles one byte per 100 ms.
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"PUT /metrics/job/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    let trickle = tokio::spawn(async move {
        let mut answers = Vec::new();
        let started = Instant::now();
        let mut open: Vec<Option<TcpStream>> = slow.into_iter().map(Some).collect();
        while started.elapsed() < Duration::from_secs(8) && open.iter().any(Option::is_some) {
            for slot in &mut open {
                let Some(stream) = slot else { continue };
                if stream.write_all(b"m").await.is_err() {
                    *slot = None;
                    continue;
                }
                let mut buf = [0u8; 256];
                if let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_micros(1), stream.read(&mut buf)).await
                {
                    answers.push(String::from_utf8_lossy(&buf[..n]).to_string());
                    *slot = None;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let still_open = open.iter().filter(|s| s.is_some()).count();
        (answers, still_open, started.elapsed())
    });

    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = rss_kib(pid);
    let (status, took) = push_on_new_connection(addr).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        took < Duration::from_millis(100),
        "a push took {took:?} with 3,200 slow and idle connections held"
    );

    let closes: Vec<_> = idle
        .into_iter()
        .map(|stream| tokio::spawn(closed_within(stream, Duration::from_secs(6))))
        .collect();
    let mut latest = Duration::ZERO;
    for close in closes {
        let waited = close.await.unwrap();
        let waited = waited.expect("an idle connection was still open 6 s later");
        latest = latest.max(waited);
    }
    let (answers, still_open, trickled) = trickle.await.unwrap();
    assert_eq!(still_open, 0, "slow bodies still open after {trickled:?}");
    assert!(
        answers.iter().all(|a| a.starts_with("HTTP/1.1 400")),
        "{:?}",
        answers.first()
    );
    assert!(
        answers.iter().any(|a| a.contains("web.read_timeout = 3s")),
        "{:?}",
        answers.first()
    );

    // Memory is handed back by the allocator's background threads within
    // its decay time (jemalloc's 10 s); waited for, bounded, not timed.
    let limit = rss_before + 4 * 1024;
    let closed = Instant::now();
    let mut rss_after = rss_kib(pid);
    while rss_after > limit && closed.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        rss_after = rss_kib(pid);
    }
    eprintln!(
        "figures: RSS {rss_before} KiB before, {held} KiB holding 3,200 connections, \
         {rss_after} KiB {:?} after; a push took {took:?}; the last idle connection closed \
         after {latest:?}; slow bodies ended after {trickled:?}",
        closed.elapsed()
    );
    assert!(
        rss_after <= limit,
        "RSS {rss_before} KiB before, {rss_after} KiB after"
    );
}

#[tokio::test]
async fn at_the_connection_limit_new_connections_wait_until_one_ends() {
    let relay = Pushrelay::start(&["--web.max-connections=10"]).await;
    let addr = relay.peer.addr();
    // The readiness probe's connection may still be held: wait it out.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = tokio::spawn(push_on_new_connection(addr));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "an 11th connection was served");
    drop(held.pop());
    let (status, _) = bounded(waiting).await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    let log = relay.peer.log();
    assert_eq!(
        log.matches("connection limit reached").count(),
        1,
        "logged at most once a second:\n{log}"
    );
}

#[tokio::test]
async fn sigterm_closes_idle_connections_at_once() {
    let mut relay = Pushrelay::start(&[] as &[&str]).await;
    let addr = relay.peer.addr();
    let silent = TcpStream::connect(addr).await.unwrap();
    let mut kept_alive = TcpStream::connect(addr).await.unwrap();
    kept_alive
        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = kept_alive.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(100)).await;

    let signalled = Instant::now();
    relay.peer.signal("TERM");
    for stream in [silent, kept_alive] {
        let closed = closed_within(stream, Duration::from_secs(4)).await;
        assert!(
            closed.is_some_and(|t| t < Duration::from_secs(1)),
            "an idle connection was closed {closed:?} after SIGTERM"
        );
    }
    let status = relay.peer.wait_exit(Duration::from_secs(4)).await;
    assert!(status.success(), "{status}");
    assert!(signalled.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn out_of_descriptors_held_connections_are_served_and_accepting_backs_off() {
    // pushrelay with 64 descriptors (prlimit execs it: the same PID).
    let peer = Peer::start(
        "pushrelay",
        &require_binary("prlimit"),
        Ready::Http("/-/healthy".into()),
        |port, _| {
            vec![
                "--nofile=64:64".into(),
                pushrelay_binary().display().to_string(),
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--web.read-header-timeout=3s".into(),
            ]
        },
    )
    .await;
    let addr = peer.addr();
    let mut kept = TcpStream::connect(addr).await.unwrap();
    let health = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n";
    kept.write_all(health).await.unwrap();
    let mut buf = [0u8; 512];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    // More silent connections than descriptors: the rest wait in the backlog.
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    kept.write_all(health).await.unwrap();
    let n = bounded(kept.read(&mut buf)).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "a held connection is served"
    );
    assert!(started.elapsed() < Duration::from_millis(100));

    // A new push waits until the silent ones time out, then is answered.
    let (status, took) = bounded(push_on_new_connection(addr)).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let log = peer.log();
    let failures = log.matches("accept failed").count();
    let seconds = started.elapsed().as_secs() as usize + 1;
    assert!(
        (1..=seconds).contains(&failures),
        "{failures} accept failures logged in {seconds} s:\n{log}"
    );
    assert!(log.contains("Too many open files"), "{log}");
    eprintln!("figures: a push at the descriptor limit was answered after {took:?}");
    drop(silent);
}
