//! What each push must produce: the pushed bodies, the exact series and
//! families they must give, and the comparison that reports every
//! difference. Shared by the forwarding tests and the oracle test that pins
//! these expectations against the real Pushgateway.

use std::collections::BTreeMap;

use pushrelay::proto::prompb::metric_metadata::MetricType;

use crate::common::Series;

pub type Labels = BTreeMap<String, String>;

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---------------------------------------------------------------------------
// What each push must produce
// ---------------------------------------------------------------------------

/// A text body with every kind of family. Label names are out of order and
/// one label value is empty: both must be cleaned up on the way; `le="1.0"`
/// must arrive as `le="1"`, as a Pushgateway scrape would show it.
pub const TEXT_BODY: &str = r#"# HELP relay_jobs_processed_total Jobs processed.
# TYPE relay_jobs_processed_total counter
relay_jobs_processed_total{queue="high",env="prod"} 12
relay_jobs_processed_total{queue="low",env="prod"} 3
# HELP relay_queue_depth Items waiting.
# TYPE relay_queue_depth gauge
relay_queue_depth{shard=""} 7.5
# HELP relay_untyped_thing Something without a type.
# TYPE relay_untyped_thing untyped
relay_untyped_thing{kind="x"} 42
# HELP relay_duration_seconds Run time.
# TYPE relay_duration_seconds histogram
relay_duration_seconds_bucket{le="0.5"} 2
relay_duration_seconds_bucket{le="1.0"} 5
relay_duration_seconds_bucket{le="+Inf"} 6
relay_duration_seconds_sum 4.25
relay_duration_seconds_count 6
# HELP relay_payload_bytes Payload size.
# TYPE relay_payload_bytes summary
relay_payload_bytes{quantile="0.5"} 1024
relay_payload_bytes{quantile="0.9"} 4096
relay_payload_bytes_sum 20480
relay_payload_bytes_count 10
"#;

/// A body whose third line is broken.
pub const BAD_TEXT_BODY: &str = "# TYPE relay_ok gauge\nrelay_ok 1\nrelay_bad abc\n";

/// One series of a family: name suffix (`_bucket`, `_sum`, ...), labels
/// besides the grouping labels, value.
pub type SeriesSpec<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// Adds the families of one kind of push to an expectation.
pub type AddFamilies = for<'a> fn(&'a mut Expected, &Labels) -> &'a mut Expected;

/// Slack on a push time, for a sender that keeps it to the millisecond or
/// reads its clock a little before the push is received.
pub const TIME_SLACK: f64 = 0.5;

/// The value a series must have.
#[derive(Clone, Copy, Debug)]
pub enum Want {
    Is(f64),
    /// A time in seconds, inside this window.
    Between(f64, f64),
}

impl Want {
    pub fn accepts(self, value: f64) -> bool {
        match self {
            Want::Is(want) => {
                want == value || (want - value).abs() <= 1e-12 * want.abs().max(value.abs())
            }
            Want::Between(low, high) => (low..=high).contains(&value),
        }
    }
}

/// The series and the families one or more pushes must produce.
#[derive(Default)]
pub struct Expected {
    pub series: Vec<(Labels, Want)>,
    pub families: BTreeMap<String, (MetricType, String)>,
}

impl Expected {
    /// Adds a family and its series; `grouping` is added to every series.
    pub fn family(
        &mut self,
        name: &str,
        kind: MetricType,
        help: &str,
        grouping: &Labels,
        series: &[SeriesSpec],
    ) -> &mut Self {
        self.families
            .insert(name.to_string(), (kind, help.to_string()));
        for (suffix, pairs, value) in series {
            let mut all = grouping.clone();
            all.extend(labels(pairs));
            all.insert("__name__".into(), format!("{name}{suffix}"));
            self.series.push((all, Want::Is(*value)));
        }
        self
    }

    /// The `push_time_seconds` and `push_failure_time_seconds` a Pushgateway
    /// keeps per group: the last successful push happened in
    /// `[pushed_after, pushed_before]` (give or take [`TIME_SLACK`]), no
    /// push failed.
    pub fn push_times(
        &mut self,
        grouping: &Labels,
        pushed_after: f64,
        pushed_before: f64,
    ) -> &mut Self {
        for (name, value) in [
            (
                "push_time_seconds",
                Want::Between(pushed_after - TIME_SLACK, pushed_before + TIME_SLACK),
            ),
            ("push_failure_time_seconds", Want::Is(0.0)),
        ] {
            let mut all = grouping.clone();
            all.insert("__name__".into(), name.into());
            self.series.push((all, value));
        }
        self.families.insert(
            "push_time_seconds".into(),
            (
                MetricType::Gauge,
                "Last Unix time when changing this group in the Pushgateway succeeded.".into(),
            ),
        );
        self.families.insert(
            "push_failure_time_seconds".into(),
            (
                MetricType::Gauge,
                "Last Unix time when changing this group in the Pushgateway failed.".into(),
            ),
        );
        self
    }

    pub fn text_body(&mut self, grouping: &Labels) -> &mut Self {
        self.family(
            "relay_jobs_processed_total",
            MetricType::Counter,
            "Jobs processed.",
            grouping,
            &[
                ("", &[("env", "prod"), ("queue", "high")], 12.0),
                ("", &[("env", "prod"), ("queue", "low")], 3.0),
            ],
        )
        .family(
            "relay_queue_depth",
            MetricType::Gauge,
            "Items waiting.",
            grouping,
            &[("", &[], 7.5)],
        )
        .family(
            "relay_untyped_thing",
            MetricType::Unknown,
            "Something without a type.",
            grouping,
            &[("", &[("kind", "x")], 42.0)],
        )
        .family(
            "relay_duration_seconds",
            MetricType::Histogram,
            "Run time.",
            grouping,
            &[
                ("_bucket", &[("le", "0.5")], 2.0),
                ("_bucket", &[("le", "1")], 5.0),
                ("_bucket", &[("le", "+Inf")], 6.0),
                ("_sum", &[], 4.25),
                ("_count", &[], 6.0),
            ],
        )
        .family(
            "relay_payload_bytes",
            MetricType::Summary,
            "Payload size.",
            grouping,
            &[
                ("", &[("quantile", "0.5")], 1024.0),
                ("", &[("quantile", "0.9")], 4096.0),
                ("_sum", &[], 20480.0),
                ("_count", &[], 10.0),
            ],
        )
    }

    /// What the Go client pushes (live program and captured fixture alike).
    pub fn go_client(&mut self, grouping: &Labels) -> &mut Self {
        self.family(
            "go_push_requests_total",
            MetricType::Counter,
            "A counter.",
            grouping,
            &[("", &[("path", "/a")], 3.0), ("", &[("path", "/b")], 5.0)],
        )
        .family(
            "go_push_temperature_celsius",
            MetricType::Gauge,
            "A gauge.",
            grouping,
            &[("", &[], 21.5)],
        )
        .family(
            "go_push_latency_seconds",
            MetricType::Histogram,
            "A histogram.",
            grouping,
            &[
                ("_bucket", &[("le", "0.1")], 1.0),
                ("_bucket", &[("le", "0.5")], 2.0),
                ("_bucket", &[("le", "1")], 3.0),
                ("_bucket", &[("le", "+Inf")], 4.0),
                ("_sum", &[], 2.95),
                ("_count", &[], 4.0),
            ],
        )
        .family(
            "go_push_size_bytes",
            MetricType::Summary,
            "A summary.",
            grouping,
            &[
                ("", &[("quantile", "0.5")], 200.0),
                ("", &[("quantile", "0.99")], 300.0),
                ("_sum", &[], 600.0),
                ("_count", &[], 3.0),
            ],
        )
    }

    /// What the Python client's `push` step pushes.
    pub fn py_client(&mut self, grouping: &Labels) -> &mut Self {
        self.family(
            "py_requests_total",
            MetricType::Counter,
            "Requests handled.",
            grouping,
            &[("", &[("path", "/a")], 3.0), ("", &[("path", "/b")], 5.0)],
        )
        .family(
            "py_temperature_celsius",
            MetricType::Gauge,
            "A gauge.",
            grouping,
            &[("", &[], 21.5)],
        )
        .family(
            "py_latency_seconds",
            MetricType::Histogram,
            "A histogram.",
            grouping,
            &[
                ("_bucket", &[("le", "0.1")], 1.0),
                ("_bucket", &[("le", "0.5")], 2.0),
                ("_bucket", &[("le", "1")], 3.0),
                ("_bucket", &[("le", "+Inf")], 4.0),
                ("_sum", &[], 2.95),
                ("_count", &[], 4.0),
            ],
        )
        .family(
            "py_size_bytes",
            MetricType::Summary,
            "A summary.",
            grouping,
            &[("_sum", &[], 600.0), ("_count", &[], 3.0)],
        )
    }

    /// What the Python client's `pushadd` step adds.
    pub fn py_client_extra(&mut self, grouping: &Labels) -> &mut Self {
        self.family(
            "py_extra_gauge",
            MetricType::Gauge,
            "Added by pushadd.",
            grouping,
            &[("", &[], 7.0)],
        )
    }
}

/// Panics with a readable difference unless `actual` is exactly the
/// expected series: same label sets, acceptable values, nothing more.
pub fn assert_exact_series(context: &str, actual: &[Series], expected: &[(Labels, Want)]) {
    let mut problems = Vec::new();
    let actual_by_labels: BTreeMap<&Labels, f64> =
        actual.iter().map(|s| (&s.labels, s.value)).collect();
    let expected_by_labels: BTreeMap<&Labels, Want> =
        expected.iter().map(|(l, w)| (l, *w)).collect();
    assert_eq!(
        expected_by_labels.len(),
        expected.len(),
        "{context}: the expectation lists a series twice"
    );
    for (labels, want) in &expected_by_labels {
        match actual_by_labels.get(labels) {
            None => problems.push(format!("missing    {labels:?} (want {want:?})")),
            Some(value) if !want.accepts(*value) => {
                problems.push(format!("wrong value {labels:?} = {value} (want {want:?})"))
            }
            Some(_) => {}
        }
    }
    for (labels, value) in &actual_by_labels {
        if !expected_by_labels.contains_key(labels) {
            problems.push(format!("unexpected {labels:?} = {value}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{context}: {} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}
