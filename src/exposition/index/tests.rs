//! The index holds what the owned parser produces, validation on it
//! answers as on the owned families, and conversion reads it into the same
//! series: each checked against the owned path on the same body.

use bytes::Bytes;
use proptest::prelude::*;

use crate::config::PushConfig;
use crate::exposition::index::MAX_GROUPED_LABELS;
use crate::exposition::{self, BodyFormat, Families, parse_body};
use crate::forward::convert::{convert, convert_families};
use crate::push::GroupingKey;
use crate::push::validate::{check, check_families};

pub(super) fn key() -> GroupingKey {
    GroupingKey::new([
        ("job".to_string(), "j".to_string()),
        ("b".to_string(), "g".to_string()),
    ])
}

fn indexed(body: &str) -> Result<Families, String> {
    parse_body(BodyFormat::Text, Bytes::copy_from_slice(body.as_bytes())).map_err(|e| e.0)
}

/// Parse, check and convert a text `body` both ways and compare every
/// answer; returns whether the body stayed indexed through the check.
fn same_as_owned(body: &str, config: &PushConfig) -> bool {
    same_as_owned_in(BodyFormat::Text, body.as_bytes(), config)
}

/// Compares as printed: a NaN value is not equal to itself.
#[track_caller]
fn assert_same<T: std::fmt::Debug + ?Sized>(a: &T, b: &T, what: &str) {
    assert_eq!(format!("{a:?}"), format!("{b:?}"), "{what}");
}

/// [`same_as_owned`] for a body in `format`.
pub(super) fn same_as_owned_in(format: BodyFormat, body: &[u8], config: &PushConfig) -> bool {
    let what = |stage: &str| format!("{stage} of {:?}", String::from_utf8_lossy(body));
    let owned = exposition::parse(format, body).map_err(|e| e.0);
    let parsed = parse_body(format, Bytes::copy_from_slice(body)).map_err(|e| e.0);
    let mut families = match (parsed, owned) {
        (Ok(families), Ok(owned)) => {
            // The index sorts each metric's labels; the owned model keeps
            // them as pushed until the check sorts them.
            assert_same(
                &exposition::with_labels_sorted(families.to_model().into_owned()),
                &exposition::with_labels_sorted(owned),
                &what("families"),
            );
            families
        }
        (parsed, owned) => {
            assert_eq!(parsed.map(|_| ()), owned.map(|_| ()), "{}", what("errors"));
            return false;
        }
    };
    let mut owned = families.to_model().into_owned();
    let checked = check_families(&mut families, &key(), config).map_err(|e| e.message);
    assert_eq!(
        checked,
        check(&mut owned, &key(), config).map_err(|e| e.message),
        "{}",
        what("check")
    );
    if checked.is_ok() {
        assert_same(
            &*families.to_model(),
            owned.as_slice(),
            &what("checked families"),
        );
        assert_same(
            &convert_families(&families, &key()),
            &convert(&owned, &key()),
            &what("conversion"),
        );
    }
    matches!(families, Families::Indexed(_))
}

const BENCH_1000: &str = include_str!("../../../tests/fixtures/bench_1000.txt");
const PYTHON_PUSH: &str = include_str!("../../../tests/fixtures/python_push.txt");

#[test]
fn the_forward_path_body_is_indexed_and_reads_as_owned() {
    let config = PushConfig::default();
    assert!(same_as_owned(BENCH_1000, &config));
    let families = indexed(BENCH_1000).expect("valid");
    assert_eq!(families.metric_count(), 1000);
    assert!(same_as_owned(
        "# HELP a first\n# TYPE a gauge\na{z=\"1\",c=\"x\\\\y\\\"\\n\"} 1 17\na{c=\"2\"} -Inf\n\
         # HELP unused no samples\nb{job=\"own\",instance=\"i\"} 3\nc 1e3\n",
        &PushConfig {
            honor_timestamps: true,
            ..PushConfig::default()
        }
    ));
}

#[test]
fn summaries_and_histograms_are_indexed() {
    let config = PushConfig::default();
    assert!(same_as_owned(PYTHON_PUSH, &config));
    for body in [
        // Label sets in any order, sum and count before or after the
        // buckets, a metric's lines not in a row where no other metric's
        // quantiles or buckets come in between, a NaN bound, no `+Inf`.
        "# TYPE h histogram\nh_bucket{a=\"1\",b=\"2\",le=\"0.5\"} 1\n\
         h_bucket{le=\"1\",b=\"2\",a=\"1\"} 2.9\nh_sum{b=\"2\",a=\"1\"} 3\n\
         h_count{a=\"2\"} 4\nh_count{a=\"1\",b=\"2\"} -1\nh_bucket{le=\"NaN\",a=\"2\"} 7\n\
         # TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns{quantile=\"0.9\"} 3\ns_count 4\n\
         s_sum{x=\"y\"} 1\ns_count 5\ns{x=\"y\",quantile=\"0.1\"} 1e3\n",
        // A summary without quantiles, a histogram without buckets.
        "# TYPE s summary\ns_count 1\n# TYPE h histogram\nh_sum{x=\"1\"} 2\n",
        // Between a metric's lines, another family's.
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\ng 2\nh_bucket{le=\"+Inf\"} 3\n",
    ] {
        assert!(same_as_owned(body, &config), "{body:?}");
    }
    let timestamps = PushConfig {
        honor_timestamps: true,
        ..PushConfig::default()
    };
    // The last timestamp of a metric's lines is its timestamp.
    let body = "# TYPE s summary\ns_sum 1 10\ns_count 2\ns{quantile=\"1\"} 3 30\ng 1 5\n";
    assert!(same_as_owned(body, &timestamps));
    let refusals = [
        // Limits count quantiles + 2 and buckets with `+Inf` + 2.
        "# TYPE s summary\ns{quantile=\"0.5\"} 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\n",
        // Suffix collisions, repeated series once merged.
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count_sum 1\n# TYPE h_count gauge\nh_count 1\n",
        "# TYPE s summary\ns_sum{job=\"a\"} 1\ns_sum{job=\"b\"} 1\n",
    ];
    let strict = PushConfig {
        max_series: 3,
        ..PushConfig::default()
    };
    for body in refusals {
        same_as_owned(body, &strict);
        same_as_owned(body, &config);
    }
}

#[test]
fn bodies_the_index_does_not_hold_take_the_owned_model() {
    let config = PushConfig::default();
    let many_labels: String = (0..=MAX_GROUPED_LABELS)
        .map(|i| format!("l{i}=\"v\","))
        .collect();
    for body in [
        // Families whose lines interleave.
        "a 1\nb 2\na{x=\"1\"} 3\n".to_string(),
        // Buckets of two metrics interleaving.
        "# TYPE h histogram\nh_bucket{x=\"1\",le=\"1\"} 1\nh_bucket{x=\"2\",le=\"1\"} 1\n\
         h_bucket{x=\"1\",le=\"2\"} 2\n"
            .to_string(),
        // Gauge histograms; a histogram metric with too many labels to
        // compare.
        "# TYPE g gaugehistogram\ng_bucket{le=\"1\"} 1\n".to_string(),
        format!("# TYPE h histogram\nh_bucket{{{many_labels}le=\"1\"}} 1\n"),
    ] {
        assert!(!same_as_owned(&body, &config), "{body:?}");
    }
    // A timestamp of an earlier metric after a later one's.
    let timestamps = PushConfig {
        honor_timestamps: true,
        ..PushConfig::default()
    };
    let body = "# TYPE s summary\ns_sum 1\ng 1 5\ns_count 1 3\n";
    assert!(!same_as_owned(body, &timestamps));
    let not_utf8 = parse_body(
        BodyFormat::Text,
        Bytes::from_static(b"# HELP a \xff\na 1\n"),
    )
    .expect("HELP is not checked for UTF-8");
    assert!(matches!(not_utf8, Families::Owned(_)));
}

#[test]
fn refusals_are_the_owned_checks() {
    let strict = PushConfig {
        max_series: 2,
        max_labels_per_series: 3,
        max_label_value_length: 4,
        max_metric_name_length: 5,
        ..PushConfig::default()
    };
    for body in [
        "a 1 17\n",
        "a{x=\"1\"} 1\na{x=\"1\"} 2\n",
        "a{__x=\"1\"} 1\n",
        "a{x=\"1\",x=\"2\"} 1\n",
        "a{y=\"1\"} 1\na{y=\"2\"} 1\na{y=\"3\"} 1\n",
        "a{x=\"1\",y=\"2\"} 1\n",
        "a{x=\"12345\"} 1\n",
        "abcdef 1\n",
        "a{job=\"x\",instance=\"y\"} 1\na 2\n",
        "a{x=\"\"} 1\na 2\n",
    ] {
        same_as_owned(body, &strict);
        same_as_owned(body, &PushConfig::default());
    }
    let unchecked = PushConfig {
        disable_consistency_check: true,
        ..PushConfig::default()
    };
    assert!(same_as_owned("a{x=\"1\"} 1\na{x=\"1\"} 2\n", &unchecked));
}

#[test]
fn parse_errors_are_the_owned_parsers() {
    for body in [
        "a{x=\"1\" 1\n",
        "a{x=\"\\q\"} 1\n",
        "a 1\n# TYPE a gauge\n",
        "a{x=\"1\"} x\n",
        "a 1 2 3\n",
        "a 1",
    ] {
        assert!(!same_as_owned(body, &PushConfig::default()), "{body:?}");
    }
}

fn line() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec!["a", "b", "a_count", "a_sum", "a_bucket", "_c"]);
    let label_name =
        prop::sample::select(vec!["x", "y", "job", "instance", "__r", "le", "quantile"]);
    let value = prop::sample::select(vec![
        "",
        "1",
        "0.5",
        "+Inf",
        "NaN",
        "v\\\\w",
        "q\\\"",
        "n\\n",
        "long-value",
    ]);
    let labels = prop::collection::vec((label_name, value), 0..4);
    let number = prop::sample::select(vec!["1", "-2.5", "+Inf", "3e2"]);
    let timestamp = prop::option::of(prop::sample::select(vec!["17", "-3"]));
    (name, labels, number, timestamp).prop_map(|(name, labels, number, timestamp)| {
        let labels: Vec<String> = labels
            .iter()
            .map(|(name, value)| format!("{name}=\"{value}\""))
            .collect();
        let mut line = format!("{name}{{{}}} {number}", labels.join(","));
        if let Some(timestamp) = timestamp {
            line.push(' ');
            line.push_str(timestamp);
        }
        line.push('\n');
        line
    })
}

proptest! {
    /// Random bodies of counters, gauges, untyped series, summaries and
    /// histograms (typed by a leading TYPE line or not): every answer is
    /// the owned path's.
    #[test]
    fn random_bodies_answer_as_owned(
        kind in prop::sample::select(vec![
            "",
            "# TYPE a counter\n",
            "# TYPE b gauge\n",
            "# TYPE a summary\n",
            "# TYPE a histogram\n",
        ]),
        lines in prop::collection::vec(line(), 0..8),
        honor_timestamps in any::<bool>(),
    ) {
        let body = format!("{kind}{}", lines.concat());
        let config = PushConfig { honor_timestamps, ..PushConfig::default() };
        same_as_owned(&body, &config);
    }
}

/// A summary or histogram family `a` whose metrics each come in a row
/// (distinct label sets, their labels in random order, `+Inf` bucket or not), sometimes with a
/// gauge line between the last metric's sum and count.
fn distribution_body() -> impl Strategy<Value = String> {
    let label_set = prop::collection::vec(
        (
            prop::sample::select(vec!["x", "y", "z"]),
            prop::sample::select(vec!["1", "2"]),
        ),
        0..3,
    );
    let metric = (
        label_set,
        prop::collection::vec(prop::sample::select(vec!["0.1", "0.5", "1", "+Inf"]), 0..4),
        any::<bool>(),
    );
    let metrics = prop::collection::vec(metric, 0..4);
    (any::<bool>(), metrics, any::<bool>()).prop_map(|(summary, metrics, gauge_between)| {
        let (kind, line_name, selector) = if summary {
            ("summary", "a", "quantile")
        } else {
            ("histogram", "a_bucket", "le")
        };
        let mut body = format!("# TYPE a {kind}\n");
        let last = metrics.len().saturating_sub(1);
        let mut seen = std::collections::HashSet::new();
        for (at, (labels, bounds, reversed)) in metrics.into_iter().enumerate() {
            let mut labels: Vec<String> = labels
                .iter()
                .map(|(name, value)| format!("{name}=\"{value}\","))
                .collect();
            labels.sort();
            labels.dedup_by(|a, b| a[..2] == b[..2]);
            // A label set seen before would be that metric's lines again.
            if !seen.insert(labels.concat()) {
                continue;
            }
            if reversed {
                labels.reverse();
            }
            let labels = labels.concat();
            for (i, bound) in bounds.iter().enumerate() {
                body.push_str(&format!(
                    "{line_name}{{{labels}{selector}=\"{bound}\"}} {i}\n"
                ));
            }
            body.push_str(&format!("a_sum{{{labels}}} 2.5\n"));
            if gauge_between && at == last {
                body.push_str("g 1\n");
            }
            body.push_str(&format!("a_count{{{labels}}} 3\n"));
        }
        body
    })
}

proptest! {
    /// Summaries and histograms as clients push them: every answer is the
    /// owned path's, and the index holds them.
    #[test]
    fn summaries_and_histograms_answer_as_owned(body in distribution_body()) {
        let config = PushConfig::default();
        same_as_owned(&body, &config);
        prop_assert!(matches!(indexed(&body), Ok(Families::Indexed(_))), "{}", body);
    }
}

#[test]
fn an_illegal_grouping_label_name_is_refused_on_the_index_as_owned() {
    // The index check trusts a text body's names (its grammar admits only
    // legacy ones) but not a grouping key built elsewhere than the URL.
    let key = GroupingKey::new([
        ("job".to_string(), "j".to_string()),
        ("bad-name".to_string(), "v".to_string()),
    ]);
    let config = PushConfig::default();
    let mut families = indexed("m{a=\"1\"} 1\n").unwrap();
    let mut owned = families.to_model().into_owned();
    let answer = check_families(&mut families, &key, &config).map_err(|e| e.message);
    assert!(answer.is_err(), "{answer:?}");
    assert_eq!(
        answer,
        check(&mut owned, &key, &config).map_err(|e| e.message)
    );
}
