//! The web page at `/` in headless Chromium: it lists a pushed group with
//! its labels and metrics, and the group's delete button removes it (through
//! `DELETE metrics/job@base64/...`, as the Pushgateway's UI sends it).

mod common;

use bytes::Bytes;
use common::browser::Browser;
use common::cache::{Kind, Server};
use http::{Method, StatusCode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_lists_groups_and_deletes_one() {
    let server = Server::start(
        Kind::Pushrelay,
        "/ui",
        &["--web.route-prefix=/ui".to_string()],
    )
    .await;
    for (path, body) in [
        ("/metrics/job/other_job", "other_metric 1\n"),
        // A grouping value with a slash needs base64 ("a/b").
        (
            "/metrics/job/ui_job/instance@base64/YS9i",
            "ui_metric{x=\"1\"} 42\n",
        ),
    ] {
        let reply = server.send(Method::PUT, path, &[], Bytes::from(body)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
    }
    let page_url = server.url("/");
    let api_url = server.url("/api/v1/metrics");
    let mut browser = Browser::start().await;
    let groups = tokio::task::spawn_blocking(move || {
        browser.call("Page.navigate", serde_json::json!({ "url": page_url }));
        browser.wait_for("document.body.innerText.includes('job=\"ui_job\"') && document.body.innerText.includes('instance=\"a/b\"')");
        browser.wait_for("document.body.innerText.includes('ui_metric') && document.body.innerText.includes('other_job')");
        // Delete the ui_job group with its own button.
        browser.evaluate(
            "Array.from(document.querySelectorAll('section.group')).find(s => s.innerText.includes('ui_job')).querySelector('button.delete').click(); true",
        );
        browser.wait_for("!document.body.innerText.includes('ui_job') && document.body.innerText.includes('other_job')");
        browser.evaluate(&format!("fetch('{api_url}').then(r => r.json()).then(b => b.data.length)"))
    })
    .await
    .expect("browser thread");
    assert_eq!(groups, serde_json::json!(1), "only other_job is left");
}
