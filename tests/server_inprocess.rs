//! The server run in-process (`server::serve` on a listener) on tokio's
//! paused clock: connection timeouts are checked in virtual time, so a
//! 120 s idle timeout costs the test milliseconds, and a cache-mode push
//! and scrape go through the same code the binary runs.
//!
//! Real time is what `tests/server_limits.rs` tests (thousands of
//! connections against the binary); here it is the server's decisions.

use std::sync::Arc;
use std::time::Duration;

use pushrelay::cache::store::StoreOptions;
use pushrelay::cache::{self, Cache};
use pushrelay::config::{Config, GoDuration};
use pushrelay::server::{self, AppState};
use pushrelay::sinks::Sinks;
use pushrelay::telemetry::Telemetry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// A cache-mode server on a loopback port, with the given header and idle
/// timeouts, serving until the test ends.
async fn serve(read_header_timeout: Duration, idle_timeout: Duration) -> std::net::SocketAddr {
    let mut config = Config::default();
    config.web.read_header_timeout = GoDuration(read_header_timeout);
    config.web.idle_timeout = GoDuration(idle_timeout);
    let cache = Cache::new(StoreOptions {
        disable_consistency_check: false,
        own_families: cache::own_families(),
    });
    let sinks = Sinks {
        forwarder: None,
        cache: Some(cache),
    };
    let telemetry = Telemetry::install().expect("installing the metrics recorder");
    let state = Arc::new(AppState::new(&config, sinks, telemetry));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(server::serve(listener, state, std::future::pending()));
    address
}

/// Reads until the server closes the connection (an hour of virtual time
/// at most); what it sent.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(3600), stream.read_to_end(&mut received))
        .await
        .expect("the server closes the connection within the hour")
        .expect("reading until the server closes");
    String::from_utf8_lossy(&received).into_owned()
}

/// Sends one HTTP/1.1 request on `stream` and reads its whole response
/// (the server answers with a `Content-Length`).
async fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed mid-response: {received:?}");
        received.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&received);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .expect("a Content-Length");
            if body.len() >= length {
                return text.into_owned();
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_timeout() {
    let address = serve(Duration::from_secs(10), Duration::from_secs(120)).await;
    let mut silent = TcpStream::connect(address).await.unwrap();
    let connected = Instant::now();
    let received = read_to_close(&mut silent).await;
    let held = connected.elapsed();
    assert!(received.is_empty(), "nothing is answered: {received:?}");
    assert!(
        (Duration::from_secs(10)..Duration::from_secs(11)).contains(&held),
        "closed after {held:?}, the header timeout is 10 s"
    );
}

#[tokio::test(start_paused = true)]
async fn a_push_and_a_scrape_then_the_idle_connection_closes_at_the_idle_timeout() {
    let address = serve(Duration::from_secs(10), Duration::from_secs(120)).await;
    let mut client = TcpStream::connect(address).await.unwrap();
    let body = "# TYPE inprocess_value gauge\ninprocess_value 42\n";
    let pushed = exchange(
        &mut client,
        &format!(
            "PUT /metrics/job/inprocess HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(pushed.starts_with("HTTP/1.1 200"), "{pushed}");
    let scraped = exchange(&mut client, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        scraped.contains("inprocess_value{instance=\"\",job=\"inprocess\"} 42"),
        "{scraped}"
    );

    // Kept alive, then idle: closed at the idle timeout, not the header one.
    let idle = Instant::now();
    let received = read_to_close(&mut client).await;
    let held = idle.elapsed();
    assert!(received.is_empty(), "{received:?}");
    assert!(
        (Duration::from_secs(120)..Duration::from_secs(121)).contains(&held),
        "closed after {held:?} idle, the idle timeout is 120 s"
    );
}
