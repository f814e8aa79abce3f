//! Cache persistence across restarts of pushrelay: what was persisted comes
//! back exactly after `kill -9`, a graceful stop writes the file whatever the
//! interval, and a corrupt file stops the start with a clear error instead
//! of an empty store.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::cache::{Kind, Server};
use http::{Method, StatusCode};
use serde_json::Value;

async fn push(server: &Server, path: &str, body: &'static str) {
    let reply = server.send(Method::PUT, path, &[], Bytes::from(body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
}

/// `/api/v1/metrics` with groups in a fixed order; times included.
async fn api(server: &Server) -> Value {
    let reply = server
        .send(Method::GET, "/api/v1/metrics", &[], Bytes::new())
        .await;
    let mut value: Value = serde_json::from_slice(&reply.body).expect("JSON");
    if let Some(groups) = value["data"].as_array_mut() {
        groups.sort_by_key(|g| g["labels"].to_string());
    }
    value
}

async fn fill(server: &Server) {
    push(
        server,
        "/metrics/job/a/instance/i",
        "# HELP m Help.\n# TYPE m counter\nm{x=\"1\"} 1\n",
    )
    .await;
    push(
        server,
        "/metrics/job/b",
        "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n",
    )
    .await;
    let reply = server
        .send(
            Method::POST,
            "/metrics/job/b",
            &[],
            Bytes::from("n 1 1000\n"),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "a failure to remember"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_then_restart_restores_what_was_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.db");
    let args = [
        format!("--persistence.file={}", file.display()),
        "--persistence.interval=100ms".into(),
    ];
    let server = Server::start(Kind::Pushrelay, "", &args).await;
    fill(&server).await;
    let before = api(&server).await;
    assert_eq!(before["data"].as_array().map(Vec::len), Some(2));
    // The first change is written at once, later ones within the interval.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server = server.restart_after("KILL").await;
    assert_eq!(api(&server).await, before);
    // Later changes are persisted too.
    push(&server, "/metrics/job/c", "z 1\n").await;
    let before = api(&server).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server = server.restart_after("KILL").await;
    assert_eq!(api(&server).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_writes_the_file_whatever_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.db");
    let args = [
        format!("--persistence.file={}", file.display()),
        "--persistence.interval=1h".into(),
    ];
    let server = Server::start(Kind::Pushrelay, "", &args).await;
    // The first write goes out at once; wait for it so the second change
    // is only on disk if the shutdown writes it.
    push(&server, "/metrics/job/first", "a 1\n").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    fill(&server).await;
    let before = api(&server).await;
    let server = server.restart_after("TERM").await;
    assert_eq!(api(&server).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_file_is_an_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.db");
    std::fs::write(&file, b"not a cache file at all").unwrap();
    let (status, log) = Server::run_to_exit(
        Kind::Pushrelay,
        &[format!("--persistence.file={}", file.display())],
    )
    .await;
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("cache.db") && log.contains("bad header"),
        "{log}"
    );
}
