//! External labels and write relabeling, end to end against the real
//! Prometheus 2.42: what Prometheus stores is exactly what the rules say
//! (external labels added unless pushed, dropped series and labels gone,
//! a renamed label, `push_time_seconds` relabeled like the rest), a PUT
//! that leaves a series out and a DELETE end exactly the relabeled series,
//! and the drops are counted by rule index. A bad rule is refused at start
//! and by `--check-config`, naming the rule's index and key; the check
//! prints the rules.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::{Prometheus, Pushrelay, Series, TEXT_CONTENT_TYPE, get, pushrelay_command, request};
use http::Method;

/// The rules under test (YAML, as Prometheus writes them).
const RULES: &str = r#"
remote_write:
  write_relabel_configs:
    # 0: debug metrics are not forwarded
    - source_labels: [__name__]
      regex: debug_.*
      action: drop
    # 1: a high-cardinality label is dropped
    - regex: pod_uid
      action: labeldrop
    # 2, 3: `env` is renamed to `environment`
    - source_labels: [env]
      target_label: environment
    - regex: env
      action: labeldrop
    # 4: the failure-time series is not wanted
    - source_labels: [__name__]
      regex: push_failure_time_seconds
      action: drop
"#;

const GROUP: &str = "/metrics/job/relabel_e2e/instance/i1";

/// The label sets, sorted as [`labels_of`] sorts them.
fn label_sets(series: &[&[(&str, &str)]]) -> Vec<BTreeMap<String, String>> {
    let mut out: Vec<BTreeMap<String, String>> = series
        .iter()
        .map(|labels| {
            labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        })
        .collect();
    out.sort();
    out
}

fn labels_of(series: &[Series]) -> Vec<BTreeMap<String, String>> {
    let mut out: Vec<_> = series.iter().map(|s| s.labels.clone()).collect();
    out.sort();
    out
}

async fn push(relay: &Pushrelay, method: Method, body: &str) {
    let reply = request(
        method.clone(),
        &format!("{}{GROUP}", relay.url()),
        &[("content-type", TEXT_CONTENT_TYPE)],
        Bytes::copy_from_slice(body.as_bytes()),
    )
    .await;
    let status = reply.status;
    assert!(
        status.is_success(),
        "{method} answered {status}: {}",
        reply.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stores_exactly_what_the_rules_say_and_a_delete_ends_it() {
    let prometheus = Prometheus::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("pushrelay.yaml");
    std::fs::write(&config, RULES).expect("writing the config");
    // `${HOME}` stands for the Downward API's `${NODE_NAME}`: a variable
    // the launched pushrelay inherits.
    let home = std::env::var("HOME").expect("HOME is set");
    let relay = Pushrelay::start(&[
        format!("--config={}", config.display()),
        format!("--remote-write.url={}", prometheus.write_url()),
        "--remote-write.retry-deadline=5s".into(),
        "--remote-write.external-label=cluster=eu-1".into(),
        "--remote-write.external-label=node=${HOME}".into(),
    ])
    .await;

    let first = "\
# TYPE jobs_done counter
jobs_done{env=\"prod\",pod_uid=\"abc\"} 3
# TYPE debug_info gauge
debug_info 1
# TYPE temperature gauge
temperature{cluster=\"mine\"} 21.5
";
    push(&relay, Method::PUT, first).await;
    let group = [
        ("instance", "i1"),
        ("job", "relabel_e2e"),
        ("node", home.as_str()),
    ];
    let with = |extra: &[(&'static str, &'static str)], name: &'static str| {
        let mut labels: Vec<(&str, &str)> = group.to_vec();
        labels.push(("__name__", name));
        labels.extend_from_slice(extra);
        labels
    };
    let jobs_done = with(&[("cluster", "eu-1"), ("environment", "prod")], "jobs_done");
    // A pushed label of the same name wins over the external label.
    let temperature = with(&[("cluster", "mine")], "temperature");
    let push_time = with(&[("cluster", "eu-1")], "push_time_seconds");
    let stored = prometheus.all_series().await;
    assert_eq!(
        labels_of(&stored),
        label_sets(&[&jobs_done, &temperature, &push_time]),
        "after the first PUT"
    );
    let value = |name: &str| {
        stored
            .iter()
            .find(|s| s.name() == name)
            .map(|s| s.value)
            .unwrap_or_else(|| panic!("{name} not stored"))
    };
    assert_eq!(value("jobs_done"), 3.0);
    assert_eq!(value("temperature"), 21.5);
    assert!(value("push_time_seconds") > 0.0);

    // A PUT without `temperature` ends the relabeled series, and only it.
    push(
        &relay,
        Method::PUT,
        "jobs_done{env=\"prod\",pod_uid=\"def\"} 4\n",
    )
    .await;
    let stored = prometheus.all_series().await;
    assert_eq!(
        labels_of(&stored),
        label_sets(&[&jobs_done, &push_time]),
        "after the second PUT (pod_uid changed, which the rules drop)"
    );
    assert_eq!(
        stored
            .iter()
            .find(|s| s.name() == "jobs_done")
            .map(|s| s.value),
        Some(4.0)
    );

    // A DELETE leaves no live series.
    push(&relay, Method::DELETE, "").await;
    let stored = prometheus.all_series().await;
    assert!(stored.is_empty(), "live after DELETE: {stored:?}");

    let metrics = get(&format!("{}/metrics", relay.url())).await.text();
    // `push_failure_time_seconds` meets rule 4 on each of the three pushes.
    for (rule, count) in [("0", 1), ("4", 3)] {
        let line = format!("pushrelay_relabel_dropped_series_total{{rule=\"{rule}\"}} {count}");
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in:\n{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rule_is_refused_naming_its_index_and_key_and_the_check_prints_the_rules() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, RULES).expect("writing the config");
    let output = pushrelay_command()
        .arg("--check-config")
        .arg(format!("--config={}", good.display()))
        .output()
        .expect("running pushrelay");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}");
    assert_eq!(
        printed
            .matches("[[remote_write.write_relabel_configs]]")
            .count(),
        5,
        "{printed}"
    );
    assert!(printed.contains("regex = \"debug_.*\""), "{printed}");

    for (broken, key, problem) in [
        (
            RULES.replace("regex: pod_uid", "regex: '(pod_uid'"),
            "remote_write.write_relabel_configs[1].regex",
            "is not a valid regex",
        ),
        (
            RULES.replace("action: labeldrop", "action: label_drop"),
            "remote_write.write_relabel_configs[1].action",
            "unknown relabel action",
        ),
        (
            RULES.replace(
                "    - source_labels: [env]\n      target_label: environment\n",
                "    - source_labels: [env]\n",
            ),
            "remote_write.write_relabel_configs[2].target_label",
            "requires 'target_label'",
        ),
    ] {
        let file = dir.path().join("broken.yaml");
        std::fs::write(&file, &broken).expect("writing the config");
        for check in [true, false] {
            let mut command = pushrelay_command();
            if check {
                command.arg("--check-config");
            }
            let output = command
                .arg(format!("--config={}", file.display()))
                .arg("--remote-write.url=http://127.0.0.1:9/api/v1/write")
                .arg("--web.listen-address=127.0.0.1:0")
                .output()
                .expect("running pushrelay");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "accepted:\n{broken}");
            assert_ne!(output.status.code(), Some(101), "panicked: {stderr}");
            assert!(
                stderr.contains(&format!("key `{key}` (from YAML file")),
                "the error does not name {key} and its source: {stderr}"
            );
            assert!(stderr.contains(problem), "{stderr}");
        }
    }
}
