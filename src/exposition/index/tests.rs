//! The index holds what the owned parser produces, validation on it
//! answers as on the owned families, and conversion reads it into the same
//! series: each checked against the owned path on the same body.

use bytes::Bytes;
use proptest::prelude::*;

use crate::config::PushConfig;
use crate::exposition::{BodyFormat, Families, parse_body, text};
use crate::forward::convert::{convert, convert_families};
use crate::push::GroupingKey;
use crate::push::validate::{check, check_families};

fn key() -> GroupingKey {
    GroupingKey::new([
        ("job".to_string(), "j".to_string()),
        ("b".to_string(), "g".to_string()),
    ])
}

fn indexed(body: &str) -> Result<Families, String> {
    parse_body(BodyFormat::Text, Bytes::copy_from_slice(body.as_bytes())).map_err(|e| e.0)
}

/// Parse, check and convert `body` both ways and compare every answer;
/// returns whether the body stayed indexed through the check.
fn same_as_owned(body: &str, config: &PushConfig) -> bool {
    let owned = text::parse(body.as_bytes()).map_err(|e| e.0);
    let mut families = match (indexed(body), owned) {
        (Ok(families), Ok(owned)) => {
            assert_eq!(*families.to_model(), owned, "families of {body:?}");
            families
        }
        (indexed, owned) => {
            assert_eq!(indexed.map(|_| ()), owned.map(|_| ()), "errors of {body:?}");
            return false;
        }
    };
    let mut owned = families.to_model().into_owned();
    let checked = check_families(&mut families, &key(), config).map_err(|e| e.message);
    assert_eq!(
        checked,
        check(&mut owned, &key(), config).map_err(|e| e.message),
        "check of {body:?}"
    );
    if checked.is_ok() {
        assert_eq!(*families.to_model(), owned, "checked families of {body:?}");
        assert_eq!(
            convert_families(&families, &key()),
            convert(&owned, &key()),
            "conversion of {body:?}"
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
fn bodies_the_index_does_not_hold_take_the_owned_model() {
    let config = PushConfig::default();
    // Histograms and summaries, interleaved families.
    for body in [PYTHON_PUSH, "a 1\nb 2\na{x=\"1\"} 3\n"] {
        assert!(!same_as_owned(body, &config), "{body:?}");
    }
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
    let name = prop::sample::select(vec!["a", "b", "a_count", "_c"]);
    let label_name = prop::sample::select(vec!["x", "y", "job", "instance", "__r", "le"]);
    let value = prop::sample::select(vec!["", "1", "v\\\\w", "q\\\"", "n\\n", "long-value"]);
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
    /// Random bodies of counters, gauges and untyped series (typed by a
    /// leading TYPE line or not): every answer is the owned path's.
    #[test]
    fn random_bodies_answer_as_owned(
        kind in prop::sample::select(vec!["", "# TYPE a counter\n", "# TYPE b gauge\n"]),
        lines in prop::collection::vec(line(), 0..8),
        honor_timestamps in any::<bool>(),
    ) {
        let body = format!("{kind}{}", lines.concat());
        let config = PushConfig { honor_timestamps, ..PushConfig::default() };
        same_as_owned(&body, &config);
    }
}
