//! Cache mode side by side with the real Pushgateway 1.5.1: the same request
//! sequences go to both; status codes, error messages (up to the protobuf
//! debug text), the normalised scrape (text, protobuf, gzip) and the
//! normalised JSON API must agree.
//!
//! Normalisation drops the servers' own families (`go_*`, `process_*`,
//! `pushgateway_*`, `pushrelay_*`) and reduces push times to `0`/`<time>`.
//! Known divergences (docs/cache-divergences.md) are tested against
//! pushrelay alone at the end.

mod common;

use common::model::{counter, gauge};

use bytes::Bytes;
use common::Reply;
use common::cache::{
    PROTOBUF, Pair, error_key, gunzip, normalise_json, normalise_protobuf, normalise_text,
    protobuf_body,
};
use http::{Method, StatusCode};
use pushrelay::proto::client::{Bucket, Histogram, Metric, MetricFamily, MetricType};

/// How a step's answers are compared beyond the status code.
#[derive(Clone, Copy, Debug)]
enum Cmp {
    /// Error bodies up to the first `{`; success bodies of reads normalised.
    Same,
    /// Both error bodies contain this text (wording that depends on the
    /// reference's map iteration order is compared this way).
    Keyword(&'static str),
    /// Only the status code.
    Status,
}

#[derive(Clone, Debug)]
struct Step {
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
    cmp: Cmp,
}

fn step(method: Method, path: &str, body: impl Into<Bytes>) -> Step {
    Step {
        method,
        path: path.to_string(),
        headers: Vec::new(),
        body: body.into(),
        cmp: Cmp::Same,
    }
}

fn put(path: &str, text: &'static str) -> Step {
    step(Method::PUT, path, text)
}

fn post(path: &str, text: &'static str) -> Step {
    step(Method::POST, path, text)
}

fn del(path: &str) -> Step {
    step(Method::DELETE, path, "")
}

fn get(path: &str) -> Step {
    step(Method::GET, path, "")
}

fn pb(method: Method, path: &str, families: Vec<MetricFamily>) -> Step {
    step(method, path, protobuf_body(&families)).header("content-type", PROTOBUF)
}

impl Step {
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    fn keyword(mut self, text: &'static str) -> Self {
        self.cmp = Cmp::Keyword(text);
        self
    }

    fn status_only(mut self) -> Self {
        self.cmp = Cmp::Status;
        self
    }
}

fn family(name: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    MetricFamily {
        name: Some(name.into()),
        help: Some(format!("{name} help")),
        r#type: Some(kind as i32),
        metric: metrics,
        unit: None,
    }
}

/// Compares two answers to one step; `what` names the step in failures.
fn compare(what: &str, cmp: Cmp, gateway: &Reply, relay: &Reply) {
    assert_eq!(
        gateway.status,
        relay.status,
        "{what}: status differs\n gateway: {}\n relay:   {}",
        gateway.text(),
        relay.text()
    );
    if matches!(cmp, Cmp::Status) {
        return;
    }
    if !gateway.status.is_success() {
        match cmp {
            Cmp::Keyword(text) => {
                assert!(
                    gateway.text().contains(text),
                    "{what}: gateway said {}",
                    gateway.text()
                );
                assert!(
                    relay.text().contains(text),
                    "{what}: relay said {}",
                    relay.text()
                );
            }
            _ => assert_eq!(
                error_key(&gateway.text()),
                error_key(&relay.text()),
                "{what}: error differs"
            ),
        }
        return;
    }
    let header = |r: &Reply, name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    for name in [
        "content-type",
        "content-encoding",
        "access-control-allow-origin",
    ] {
        assert_eq!(
            header(gateway, name),
            header(relay, name),
            "{what}: header {name} differs"
        );
    }
    let body = |r: &Reply| {
        if header(r, "content-encoding") == "gzip" {
            gunzip(&r.body)
        } else {
            r.body.to_vec()
        }
    };
    let (g, r) = (body(gateway), body(relay));
    let content_type = header(gateway, "content-type");
    if content_type.starts_with("application/vnd.google.protobuf") {
        assert_eq!(
            normalise_protobuf(&g),
            normalise_protobuf(&r),
            "{what}: protobuf scrape differs"
        );
    } else if content_type.starts_with("application/json") {
        let (g, r) = (normalise_json(&g), normalise_json(&r));
        if what.contains("/api/v1/status") {
            let keys = |v: &serde_json::Value, path: &str| -> Vec<String> {
                v.pointer(path)
                    .and_then(|o| o.as_object())
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default()
            };
            assert_eq!(keys(&g, "/data"), keys(&r, "/data"), "{what}");
            assert_eq!(
                keys(&g, "/data/build_information"),
                keys(&r, "/data/build_information"),
                "{what}"
            );
        } else {
            assert_eq!(g, r, "{what}: JSON differs");
        }
    } else if content_type.starts_with("text/plain") {
        let (g, r) = (String::from_utf8_lossy(&g), String::from_utf8_lossy(&r));
        if what.contains("/-/") {
            assert_eq!(g, r, "{what}: body differs");
        } else {
            assert_eq!(
                normalise_text(&g),
                normalise_text(&r),
                "{what}: scrape differs"
            );
        }
    }
}

/// Pushes that make the Pushgateway apply every earlier queued write.
async fn barrier(pair: &Pair) {
    let _ = pair
        .send(Method::PUT, "/metrics/job/zz_barrier", &[], Bytes::new())
        .await;
}

/// Empties both stores and waits until the Pushgateway shows it.
async fn reset(pair: &Pair) {
    pair.send(Method::PUT, "/api/v1/admin/wipe", &[], Bytes::new())
        .await;
    for _ in 0..200 {
        let reply = pair
            .gateway
            .send(Method::GET, "/api/v1/metrics", &[], Bytes::new())
            .await;
        if normalise_json(&reply.body)["data"] == serde_json::json!([]) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the Pushgateway did not empty after a wipe");
}

async fn run(pair: &Pair, name: &str, steps: &[Step]) {
    let mut final_reads = vec![get("/metrics"), get("/api/v1/metrics")];
    let mut all: Vec<Step> = steps.to_vec();
    all.append(&mut final_reads);
    for (i, step) in all.iter().enumerate() {
        let headers: Vec<(&str, &str)> =
            step.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reads_store = step.method == Method::GET && i > 0;
        if reads_store
            && all[..i]
                .iter()
                .any(|s| s.method == Method::DELETE || s.path.contains("wipe"))
        {
            barrier(pair).await;
        }
        let (gateway, relay) = pair
            .send(step.method.clone(), &step.path, &headers, step.body.clone())
            .await;
        let what = format!("case {name}, step {i}: {} {}", step.method, step.path);
        compare(&what, step.cmp, &gateway, &relay);
    }
    reset(pair).await;
}

/// The table: (name, steps). Every case ends with a text scrape and a JSON
/// API read, compared normalised.
fn cases() -> Vec<(&'static str, Vec<Step>)> {
    let j = "/metrics/job/j";
    vec![
        // --- PUT/POST/DELETE semantics ---
        ("put untyped", vec![put(j, "some_metric 3.14\n")]),
        ("put with help and type", vec![put(j, "# HELP m Some help.\n# TYPE m counter\nm 1\n")]),
        ("put replaces the group", vec![put(j, "a 1\nb 2\n"), put(j, "c 3\n")]),
        ("post replaces same-named families only", vec![put(j, "a 1\nb 2\n"), post(j, "b{x=\"1\"} 5\nc 3\n")]),
        ("post replaces a whole family", vec![put(j, "m{x=\"1\"} 1\nm{x=\"2\"} 2\n"), post(j, "m{x=\"3\"} 3\n")]),
        ("put with empty body", vec![put(j, "a 1\n"), put(j, "")]),
        ("post with empty body", vec![put(j, "a 1\n"), post(j, "")]),
        ("put with only comments", vec![put(j, "# a comment\n\n# another\n")]),
        ("post with type but no samples keeps the family", vec![put(j, "m 1\n"), post(j, "# TYPE m counter\n")]),
        ("delete a group", vec![put(j, "a 1\n"), put("/metrics/job/k", "a 2\n"), del(j)]),
        ("delete an absent group", vec![del("/metrics/job/nothing")]),
        ("delete is exact", vec![put("/metrics/job/x", "a 1\n"), put("/metrics/job/x/instance/i", "a 2\n"), del("/metrics/job/x")]),
        ("grouping labels override body labels", vec![put("/metrics/job/e4/a/1", "ov{a=\"2\",job=\"zzz\"} 1\n")]),
        ("a body instance is kept", vec![put(j, "m{instance=\"i1\"} 1\n")]),
        ("a url instance", vec![put("/metrics/job/j/instance/i", "m 1\n")]),
        ("url label order does not matter", vec![put("/metrics/job/j/a/1/b/2", "m 1\n"), put("/metrics/job/j/b/2/a/1", "n 1\n")]),
        ("empty label values are kept", vec![put(j, "m{x=\"\"} 1\nm{x=\"y\"} 2\n")]),
        ("groups sort by label count then values", vec![
            put("/metrics/job/j8", "a 1\n"),
            put("/metrics/job/j5", "a 2\n"),
            put("/metrics/job/j+7/p/a%20b", "a 3\n"),
            put("/metrics/job/j/e@base64/L3gveQ==", "a 4\n"),
        ]),
        ("base64 job", vec![put("/metrics/job@base64/YS9i", "m 1\n")]),
        ("base64 empty label value", vec![put("/metrics/job/j/first@base64/=/second/x", "m 1\n")]),
        ("many groups and families", vec![
            put("/metrics/job/b", "z 1\na 2\n"),
            put("/metrics/job/a/instance/1", "z 3\n"),
            post("/metrics/job/a/instance/2", "y 4\n"),
        ]),
        // --- failure bookkeeping ---
        ("timestamps create a failure-only group", vec![put("/metrics/job/j3", "m 1 1000\n")]),
        ("timestamps leave an existing group alone", vec![put(j, "m 1\n"), post(j, "m 2 1000\n")]),
        ("a success after a failure keeps the failure time", vec![put(j, "m 1 1000\n"), put(j, "m 1\n")]),
        ("an inconsistent push records a failure", vec![
            put("/metrics/job/a", "# TYPE t counter\nt 1\n"),
            put(j, "m 1\n"),
            post(j, "# TYPE t gauge\nt 1\n").keyword("is not a"),
        ]),
        // --- consistency ---
        ("type clash across groups", vec![
            put("/metrics/job/a", "# TYPE t counter\nt 1\n"),
            put("/metrics/job/b", "# TYPE t gauge\nt 1\n").keyword("is not a"),
        ]),
        ("same type across groups", vec![
            put("/metrics/job/a", "# TYPE t counter\nt 1\n"),
            put("/metrics/job/b", "# TYPE t counter\nt 2\n"),
        ]),
        ("a group may change a family's type", vec![
            put(j, "# TYPE t counter\nt 1\n"),
            put(j, "# TYPE t gauge\nt 1\n"),
        ]),
        ("duplicate series across groups", vec![
            put("/metrics/job/k", "m{instance=\"i\"} 1\n"),
            put("/metrics/job/k/instance/i", "m 2\n").keyword("was collected before with the same name and label values"),
        ]),
        ("duplicate series within a push", vec![
            put(j, "d 1\nd 2\n").keyword("was collected before with the same name and label values"),
        ]),
        ("summary _count collision", vec![
            put("/metrics/job/a", "# TYPE sm summary\nsm{quantile=\"0.5\"} 1\nsm_sum 2\nsm_count 3\n"),
            put("/metrics/job/b", "sm_count 1\n").keyword("collides with previously collected"),
        ]),
        ("histogram _bucket collision", vec![
            put("/metrics/job/a", "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"),
            put("/metrics/job/b", "h_bucket 1\n").keyword("collides with previously collected"),
        ]),
        ("a summary has no _bucket", vec![
            put("/metrics/job/a", "# TYPE sm summary\nsm_sum 2\nsm_count 3\n"),
            put("/metrics/job/b", "sm_bucket 1\n"),
        ]),
        ("a reserved label name", vec![put(j, "r{__x=\"1\"} 1\n").status_only()]),
        ("push_time_seconds in a body is overwritten", vec![put(j, "push_time_seconds 5\nm 1\n")]),
        ("different help strings are tolerated", vec![
            put("/metrics/job/a", "# HELP h One.\nh 1\n"),
            put("/metrics/job/b", "# HELP h One.\nh 2\n"),
        ]),
        ("same series differing by an empty label", vec![put(j, "m{x=\"\"} 1\n"), put("/metrics/job/k", "m 2\n")]),
        // --- formatting ---
        ("go float formatting", vec![put(
            j,
            "f1 123456789\nf2 1000000\nf3 123456\nf4 0.00001\nf5 0.0001\nf6 -0.5\nf7 NaN\nf8 +Inf\nf9 -Inf\nf10 1e-300\nf11 42\nf12 3.14\nf13 0.1\nf14 1.5e300\n",
        )]),
        ("label value escapes", vec![put(j, "m{a=\"q\\\"b\\\\c\\nd\"} 1\n")]),
        ("help escapes", vec![put(j, "# HELP m a\\\\b\\nc\nm 1\n")]),
        ("unicode label values", vec![put(j, "m{a=\"ü → ✓\"} 1\n")]),
        ("summary exposition", vec![put(j, "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns{quantile=\"0.99\"} 2\ns_sum 10\ns_count 4\n")]),
        ("histogram without +Inf", vec![put(j, "# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"1\"} 2\nh_sum 3\nh_count 5\n")]),
        ("histogram with +Inf", vec![put(j, "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 5\nh_sum 3\nh_count 5\n")]),
        ("body labels are sorted", vec![put(j, "m{b=\"1\",a=\"2\"} 1\n")]),
        ("fewer labels sort first", vec![put(j, "m{x=\"1\"} 1\nm 2\n")]),
        ("families sort by byte order", vec![put(j, "b 1\na 2\n_c 3\nZ 4\n")]),
        // --- protobuf pushes ---
        ("go client protobuf push", vec![
            step(Method::PUT, "/metrics/job/go_job/instance/go1", common::fixture("go_push.bin")).header("content-type", PROTOBUF),
        ]),
        ("protobuf gauges and counters", vec![pb(Method::PUT, j, vec![
            family("pg", MetricType::Gauge, vec![gauge(&[("b", "2")], 1.5), gauge(&[("a", "1")], 2.0)]),
            family("pc", MetricType::Counter, vec![counter(7.0)]),
        ])]),
        ("protobuf type mismatch", vec![pb(Method::PUT, j, vec![family("pb_tm", MetricType::Gauge, vec![counter(1.0)])]).keyword("is not a GAUGE")]),
        ("protobuf histogram", vec![pb(Method::PUT, j, vec![family("ph", MetricType::Histogram, vec![Metric {
            histogram: Some(Histogram {
                sample_count: Some(4),
                sample_sum: Some(2.95),
                bucket: vec![
                    Bucket { cumulative_count: Some(1), upper_bound: Some(0.1), ..Default::default() },
                    Bucket { cumulative_count: Some(3), upper_bound: Some(1.0), ..Default::default() },
                ],
                ..Default::default()
            }),
            ..Default::default()
        }])])]),
        ("protobuf timestamps", vec![pb(Method::PUT, j, vec![family("pt", MetricType::Gauge, vec![Metric {
            timestamp_ms: Some(5),
            ..gauge(&[], 1.0)
        }])])]),
        // --- negotiation ---
        ("protobuf scrape", vec![
            put(j, "# TYPE a counter\na{x=\"1\"} 1\nb 2\n"),
            get("/metrics").header("accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1"),
        ]),
        ("gzip scrape", vec![put(j, "a 1\n"), get("/metrics").header("accept-encoding", "gzip")]),
        ("openmetrics is not offered", vec![put(j, "a 1\n"), get("/metrics").header("accept", "application/openmetrics-text; version=1.0.0")]),
        // --- API, admin, lifecycle, health ---
        ("api on an empty store", vec![get("/api/v1/metrics")]),
        ("api with summary and histogram", vec![
            put(j, "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 10\ns_count 4\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_sum 3\nh_count 5\n"),
            put("/metrics/job/f", "m 1 1\n"),
            get("/api/v1/metrics"),
        ]),
        ("api status", vec![get("/api/v1/status")]),
        ("api options", vec![step(Method::OPTIONS, "/api/v1/anything", "")]),
        ("api unknown path", vec![get("/api/v1/nothing")]),
        ("admin wipe", vec![put(j, "a 1\n"), put("/metrics/job/k", "a 2\n"), step(Method::PUT, "/api/v1/admin/wipe", "")]),
        ("admin wipe wrong method", vec![get("/api/v1/admin/wipe")]),
        ("quit without lifecycle", vec![step(Method::PUT, "/-/quit", "").status_only(), step(Method::POST, "/-/quit", "").status_only()]),
        ("health and readiness", vec![get("/-/healthy"), get("/-/ready")]),
        ("scrape with a wrong method", vec![step(Method::POST, "/metrics", "")]),
        ("unknown path", vec![get("/nothing/here")]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_mode_matches_the_pushgateway() {
    let cases = cases();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let pair = Pair::start("", &["--web.enable-admin-api"]).await;
    for (name, steps) in &cases {
        run(&pair, name, steps).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_prefix_applies_to_every_route() {
    let pair = Pair::start("/pg", &["--web.enable-admin-api", "--web.route-prefix=/pg"]).await;
    let steps = [
        put("/metrics/job/j", "a 1\n"),
        get("/metrics"),
        get("/api/v1/metrics"),
        get("/-/healthy"),
        del("/metrics/job/j"),
        get("/metrics"),
    ];
    run(&pair, "route prefix", &steps).await;
    // Without the prefix nothing is served.
    let (gateway, relay) = pair
        .send(Method::GET, "/../metrics", &[], Bytes::new())
        .await;
    assert_eq!(gateway.status.is_success(), relay.status.is_success());
    let bare = |s: &common::cache::Server| s.url("").replace("/pg", "/metrics");
    let g = common::get(&bare(&pair.gateway)).await;
    let r = common::get(&bare(&pair.relay)).await;
    assert_eq!(
        (g.status, r.status),
        (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
    );
}

/// The prefix itself (no trailing slash): the Pushgateway's router
/// redirects `GET` only, as Go's `http.Redirect` writes it (HTML body,
/// query kept); every other method is a 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bare_route_prefix_redirects_as_the_pushgateway() {
    let pair = Pair::start("/pg", &["--web.route-prefix=/pg"]).await;
    for method in [
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::POST,
        Method::DELETE,
        Method::OPTIONS,
    ] {
        for path in ["", "?x=1"] {
            let (gateway, relay) = pair.send(method.clone(), path, &[], Bytes::new()).await;
            let what = format!("{method} /pg{path}");
            assert_eq!(gateway.status, relay.status, "{what}: status");
            let header = |r: &Reply, name| {
                r.headers
                    .get(name)
                    .map(|v| v.to_str().unwrap_or("").to_string())
            };
            for name in [http::header::LOCATION, http::header::CONTENT_TYPE] {
                assert_eq!(
                    header(&gateway, name.clone()),
                    header(&relay, name.clone()),
                    "{what}: {name}"
                );
            }
            assert_eq!(gateway.text(), relay.text(), "{what}: body");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_consistency_check_pushes_are_accepted_and_scrapes_fail() {
    let pair = Pair::start(
        "",
        &["--web.enable-admin-api", "--push.disable-consistency-check"],
    )
    .await;
    let pushes = [
        put("/metrics/job/a", "# TYPE t counter\nt 1\n"),
        put("/metrics/job/b", "m 1 1000\n"),
        put("/metrics/job/c", "ok 1\n"),
    ];
    for (i, step) in pushes.iter().enumerate() {
        let (g, r) = pair
            .send(step.method.clone(), &step.path, &[], step.body.clone())
            .await;
        if step.body.as_ref().ends_with(b" 1000\n") {
            // Known divergence (docs/cache-divergences.md): the Pushgateway
            // acknowledges a timestamped push with 202 and drops it; we
            // refuse it with 400. Both record the failure.
            assert_eq!(
                (g.status, r.status),
                (StatusCode::ACCEPTED, StatusCode::BAD_REQUEST),
                "{}",
                r.text()
            );
            continue;
        }
        compare(&format!("unchecked push {i}"), Cmp::Same, &g, &r);
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }
    // Applied asynchronously by the Pushgateway: wait until both agree.
    let mut last = String::new();
    for _ in 0..100 {
        let (g, r) = pair.send(Method::GET, "/metrics", &[], Bytes::new()).await;
        last = format!(
            "{}\n---\n{}",
            normalise_text(&g.text()),
            normalise_text(&r.text())
        );
        if g.status == r.status && normalise_text(&g.text()) == normalise_text(&r.text()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (g, r) = pair.send(Method::GET, "/metrics", &[], Bytes::new()).await;
    compare("unchecked consistent scrape", Cmp::Same, &g, &r);
    assert_eq!(
        normalise_text(&g.text()),
        normalise_text(&r.text()),
        "{last}"
    );
    // Now an inconsistent push: both accept it, both scrapes fail with 500.
    let (g, r) = pair
        .send(
            Method::PUT,
            "/metrics/job/d",
            &[],
            Bytes::from("# TYPE t gauge\nt 1\n"),
        )
        .await;
    assert_eq!(
        (g.status, r.status),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED)
    );
    let mut statuses = (StatusCode::OK, StatusCode::OK);
    for _ in 0..100 {
        let (g, r) = pair.send(Method::GET, "/metrics", &[], Bytes::new()).await;
        statuses = (g.status, r.status);
        if g.status == StatusCode::INTERNAL_SERVER_ERROR {
            assert!(
                g.text()
                    .starts_with("An error has occurred while serving metrics:")
            );
            assert!(
                r.text()
                    .starts_with("An error has occurred while serving metrics:"),
                "{}",
                r.text()
            );
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        statuses,
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::INTERNAL_SERVER_ERROR
        )
    );
}

/// A body label named like a grouping label, repeated (only a protobuf
/// push can carry that, and only the unchecked store keeps it): the
/// Pushgateway sets the grouping value on the first of them and keeps the
/// others, so the stored series still has the repeated name and every
/// scrape fails; the JSON API, which keeps the last value of a name, shows
/// the kept body value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchecked_repeated_grouping_label_is_overridden_once_as_the_pushgateway() {
    let pair = Pair::start("", &["--push.disable-consistency-check"]).await;
    let push = pb(
        Method::PUT,
        "/metrics/job/j/a/g",
        vec![family(
            "m",
            MetricType::Gauge,
            vec![
                gauge(&[("a", "1"), ("a", "2")], 1.0),
                gauge(&[("b", "1"), ("a", "3"), ("a", "4")], 2.0),
            ],
        )],
    );
    let headers: Vec<(&str, &str)> = push.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (g, r) = pair
        .send(push.method.clone(), &push.path, &headers, push.body.clone())
        .await;
    compare("unchecked push", Cmp::Same, &g, &r);
    // Applied asynchronously by the Pushgateway: wait until it shows the push.
    let mut api = (Bytes::new(), Bytes::new());
    for _ in 0..100 {
        let (g, r) = pair
            .send(Method::GET, "/api/v1/metrics", &[], Bytes::new())
            .await;
        api = (g.body.clone(), r.body.clone());
        if normalise_json(&g.body)["data"] != serde_json::json!([]) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        normalise_json(&api.0),
        normalise_json(&api.1),
        "JSON API differs"
    );
    let (g, r) = pair.send(Method::GET, "/metrics", &[], Bytes::new()).await;
    compare("unchecked scrape", Cmp::Same, &g, &r);
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.text());
    assert!(
        r.text()
            .contains("has two or more labels with the same name: a"),
        "{}",
        r.text()
    );
}

/// A gauge histogram has no `_count`/`_sum`/`_bucket` siblings in the
/// Pushgateway's collision rule (only summaries and histograms do), in
/// either order, across groups and within one push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gauge_histogram_does_not_collide_with_suffixed_names_as_in_the_pushgateway() {
    let pair = Pair::start("", &[]).await;
    let gauge_histogram = |name: &str| {
        family(
            name,
            MetricType::GaugeHistogram,
            vec![Metric {
                histogram: Some(Histogram {
                    sample_count: Some(2),
                    sample_sum: Some(3.0),
                    bucket: vec![Bucket {
                        cumulative_count: Some(1),
                        upper_bound: Some(1.0),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            }],
        )
    };
    let plain = |name: &str| family(name, MetricType::Gauge, vec![gauge(&[], 1.0)]);
    let steps = [
        pb(Method::PUT, "/metrics/job/a", vec![gauge_histogram("gh")]),
        pb(Method::PUT, "/metrics/job/b", vec![plain("gh_count")]),
        pb(Method::PUT, "/metrics/job/c", vec![plain("gh_bucket")]),
        pb(Method::PUT, "/metrics/job/d", vec![plain("hg_sum")]),
        pb(Method::PUT, "/metrics/job/e", vec![gauge_histogram("hg")]),
        pb(
            Method::PUT,
            "/metrics/job/f",
            vec![gauge_histogram("x"), plain("x_count"), plain("x_bucket")],
        ),
    ];
    for (i, step) in steps.iter().enumerate() {
        let headers: Vec<(&str, &str)> =
            step.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (g, r) = pair
            .send(step.method.clone(), &step.path, &headers, step.body.clone())
            .await;
        compare(
            &format!("gauge histogram step {i}: {}", step.path),
            Cmp::Same,
            &g,
            &r,
        );
        assert!(g.status.is_success(), "step {i}: {}", g.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistence_round_trip_restores_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let gateway_file = common::cache::temp_file(dir.path(), "gateway.db");
    let relay_file = common::cache::temp_file(dir.path(), "relay.db");
    let gateway_flag = format!("--persistence.file={gateway_file}");
    let relay_flag = format!("--persistence.file={relay_file}");
    let interval = "--persistence.interval=50ms".to_string();
    let gateway_args = [gateway_flag, interval.clone()];
    let relay_args = [relay_flag, interval];
    let (gateway, relay) = tokio::join!(
        common::cache::Server::start(common::cache::Kind::Pushgateway, "", &gateway_args),
        common::cache::Server::start(common::cache::Kind::Pushrelay, "", &relay_args),
    );
    let mut pair = Pair { gateway, relay };
    for step in [
        put(
            "/metrics/job/a/instance/i",
            "# HELP m Help.\n# TYPE m counter\nm{x=\"1\"} 1\n",
        ),
        put(
            "/metrics/job/b",
            "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n",
        ),
        put("/metrics/job/c", "m 1 1000\n"),
    ] {
        pair.send(step.method.clone(), &step.path, &[], step.body.clone())
            .await;
    }
    barrier(&pair).await;
    let (g_before, r_before) = pair
        .send(Method::GET, "/api/v1/metrics", &[], Bytes::new())
        .await;
    // Let both write their file (interval 50 ms), then kill -9 and restart.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    pair.gateway = pair.gateway.restart_after("KILL").await;
    pair.relay = pair.relay.restart_after("KILL").await;
    let (g_after, r_after) = pair
        .send(Method::GET, "/api/v1/metrics", &[], Bytes::new())
        .await;
    let exact = |v: &[u8]| -> serde_json::Value {
        let mut v: serde_json::Value = serde_json::from_slice(v).unwrap();
        if let Some(groups) = v["data"].as_array_mut() {
            groups.sort_by_key(|g| g["labels"].to_string());
        }
        v
    };
    assert_eq!(
        exact(&g_before.body),
        exact(&g_after.body),
        "the Pushgateway restores exactly"
    );
    assert_eq!(
        exact(&r_before.body),
        exact(&r_after.body),
        "pushrelay restores exactly"
    );
    compare("persisted api", Cmp::Same, &g_after, &r_after);
    let (g, r) = pair.send(Method::GET, "/metrics", &[], Bytes::new()).await;
    compare("persisted scrape", Cmp::Same, &g, &r);
}

// --- known divergences: pushrelay alone ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn divergence_no_self_poisoning_group() {
    let relay = common::cache::Server::start(common::cache::Kind::Pushrelay, "", &[]).await;
    let send = |method: Method, path: &'static str, body: &'static str| {
        relay.send(method, path, &[], Bytes::from(body))
    };
    assert_eq!(
        send(Method::PUT, "/metrics/job/k", "m 1\n").await.status,
        StatusCode::OK
    );
    let refused = send(Method::PUT, "/metrics/job/k/instance@base64/=", "m 1\n").await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{}",
        refused.text()
    );
    // The Pushgateway would now refuse every push; pushrelay does not.
    assert_eq!(
        send(Method::PUT, "/metrics/job/other", "n 1\n")
            .await
            .status,
        StatusCode::OK
    );
    let scrape = send(Method::GET, "/metrics", "").await;
    assert_eq!(scrape.status, StatusCode::OK);
    assert_eq!(
        scrape
            .text()
            .matches("push_time_seconds{instance=\"\",job=\"k\"}")
            .count(),
        1
    );
}

/// The push-time consistency rules where pushrelay's ingest and cache once
/// disagreed, settled by the Pushgateway: an explicit `le` on a histogram
/// is accepted, an explicit `quantile` on a summary is refused, and every
/// inconsistency of a push is counted. Listing stops at 50 (a known
/// divergence, docs/cache-divergences.md): the count stays the
/// Pushgateway's, the answer's size stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistency_rules_match_the_pushgateway() {
    let pair = Pair::start("", &["--web.enable-admin-api"]).await;
    let labelled = |name: &str, value: &str, metric: Metric| Metric {
        label: vec![pushrelay::proto::client::LabelPair::new(name, value)],
        ..metric
    };
    let histogram = Metric {
        histogram: Some(Histogram {
            sample_count: Some(1),
            sample_sum: Some(1.0),
            ..Default::default()
        }),
        ..Default::default()
    };
    let summary = Metric {
        summary: Some(pushrelay::proto::client::Summary {
            sample_count: Some(1),
            sample_sum: Some(1.0),
            ..Default::default()
        }),
        ..Default::default()
    };
    let single = [
        (
            "explicit le on a histogram",
            pb(
                Method::PUT,
                "/metrics/job/le",
                vec![family(
                    "hle",
                    MetricType::Histogram,
                    vec![labelled("le", "1", histogram)],
                )],
            ),
        ),
        (
            "explicit quantile on a summary",
            pb(
                Method::PUT,
                "/metrics/job/q",
                vec![family(
                    "sq",
                    MetricType::Summary,
                    vec![labelled("quantile", "0.5", summary)],
                )],
            ),
        ),
    ];
    for (name, step) in single {
        let headers: Vec<(&str, &str)> =
            step.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (g, r) = pair
            .send(step.method.clone(), &step.path, &headers, step.body.clone())
            .await;
        compare(name, Cmp::Same, &g, &r);
        reset(&pair).await;
    }

    let series = |instance: &str| -> String {
        (0..60)
            .map(|i| format!("m{{{instance}x=\"{i}\"}} 1\n"))
            .collect()
    };
    let within_one_push: String = "d 1\n".repeat(60);
    let sequences = [
        (
            "59 duplicates within one push",
            vec![step(Method::PUT, "/metrics/job/d", within_one_push)],
            "59 error(s) occurred:",
        ),
        (
            "60 series already in another group",
            vec![
                step(Method::PUT, "/metrics/job/k", series("instance=\"i\",")),
                step(Method::PUT, "/metrics/job/k/instance/i", series("")),
            ],
            "60 error(s) occurred:",
        ),
    ];
    for (name, steps, count) in sequences {
        let mut last = None;
        for step in steps {
            last = Some(pair.send(step.method, &step.path, &[], step.body).await);
        }
        let (g, r) = last.expect("a step");
        compare(name, Cmp::Keyword(count), &g, &r);
        let listed = |text: &str| text.matches("\n* ").count();
        let total: usize = count.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(listed(&g.text()), total, "{name}: the gateway lists all");
        assert_eq!(listed(&r.text()), 51, "{name}: {}", r.text());
        assert!(
            r.text()
                .trim_end()
                .ends_with(&format!("\n* ... {} more not shown", total - 50)),
            "{name}: {}",
            r.text()
        );
        reset(&pair).await;
    }
}
