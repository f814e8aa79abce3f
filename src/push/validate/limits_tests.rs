//! The push limits: series per push, labels per series, label name and
//! value lengths (grouping labels included), metric name length; the 400
//! names the limit and quotes only a short excerpt of a wide series.

use super::tests::{family, gauge, histogram, key, summary, validate};
use super::*;
use crate::push::body::limit_counter::LimitCounter;

fn limited(config: PushConfig, families: &mut [MetricFamily]) -> (Result<(), String>, u64) {
    let (result, counts) = LimitCounter::count(|| {
        validate(families, &key(&[("job", "j")]), &config).map_err(|r| r.message)
    });
    let counted = counts.values().sum();
    (result, counted)
}

#[test]
fn the_series_limit_counts_exposed_series() {
    let config = |max_series| PushConfig {
        max_series,
        ..PushConfig::default()
    };
    // 1 gauge + summary (2 quantiles + sum + count) + histogram (2 buckets,
    // +Inf added, + sum + count) = 1 + 4 + 5.
    let push = || {
        vec![
            family("g", MetricType::Gauge, vec![gauge(&[], 1.0)]),
            family("s", MetricType::Summary, vec![summary(&[("q", "1")], 2)]),
            family(
                "h",
                MetricType::Histogram,
                vec![histogram(&[], &[0.5, 1.0])],
            ),
        ]
    };
    assert_eq!(limited(config(10), &mut push()), (Ok(()), 0));
    let (result, counted) = limited(config(9), &mut push());
    assert_eq!(
        result,
        Err("push has more than push.max_series = 9 series; the limit is crossed at h{}".into())
    );
    assert_eq!(counted, 1);
    let explicit_inf = || {
        vec![family(
            "h",
            MetricType::Histogram,
            vec![histogram(&[], &[1.0, f64::INFINITY])],
        )]
    };
    assert_eq!(limited(config(4), &mut explicit_inf()).0, Ok(()));
    assert!(limited(config(3), &mut explicit_inf()).0.is_err());
}

#[test]
fn label_limits_name_the_limit_and_the_series() {
    let mut many = vec![family(
        "m",
        MetricType::Gauge,
        vec![gauge(&[("a", "1"), ("b", "2"), ("c", "")], 1.0)],
    )];
    let config = PushConfig {
        max_labels_per_series: 2,
        ..PushConfig::default()
    };
    // a, b and job count; the empty c and instance do not.
    assert_eq!(
        limited(config.clone(), &mut many.clone()),
        (
            Err(
                "series m{a=\"1\",b=\"2\",c=\"\",instance=\"\",job=\"j\"} has 3 labels, more \
                 than push.max_labels_per_series = 2"
                    .into()
            ),
            1
        )
    );
    let config = PushConfig {
        max_labels_per_series: 3,
        ..PushConfig::default()
    };
    assert_eq!(limited(config, &mut many).0, Ok(()));

    let long_name = "n".repeat(20);
    let mut families = vec![family(
        "m",
        MetricType::Gauge,
        vec![gauge(&[(long_name.as_str(), "v")], 1.0)],
    )];
    let config = PushConfig {
        max_label_name_length: 19,
        ..PushConfig::default()
    };
    assert_eq!(
        limited(config, &mut families),
        (
            Err(format!(
                "label name \"{long_name}\" (20 bytes) of series m{{instance=\"\",job=\"j\",\
                 {long_name}=\"v\"}} is longer than push.max_label_name_length = 19 bytes"
            )),
            1
        )
    );

    let long_value = "v".repeat(100);
    let mut families = vec![family(
        "m",
        MetricType::Gauge,
        vec![gauge(&[("a", long_value.as_str())], 1.0)],
    )];
    let config = PushConfig {
        max_label_value_length: 99,
        ..PushConfig::default()
    };
    let cut = format!("{}…", "v".repeat(64));
    assert_eq!(
        limited(config, &mut families),
        (
            Err(format!(
                "value of label a (100 bytes) of series m{{a=\"{cut}\",instance=\"\",job=\"j\"}} \
                 is longer than push.max_label_value_length = 99 bytes"
            )),
            1
        )
    );
}

#[test]
fn grouping_values_count_against_the_label_limits() {
    let mut families = vec![family("m", MetricType::Gauge, vec![gauge(&[], 1.0)])];
    let config = PushConfig {
        max_label_value_length: 3,
        ..PushConfig::default()
    };
    let err = validate(&mut families, &key(&[("job", "long")]), &config).unwrap_err();
    assert!(
        err.message.starts_with("value of label job (4 bytes)"),
        "{}",
        err.message
    );
}

#[test]
fn metric_names_are_bounded_and_the_400_says_so() {
    let long_name = "m".repeat(100_000);
    let mut families = vec![family(&long_name, MetricType::Gauge, vec![gauge(&[], 1.0)])];
    let (result, counted) = limited(PushConfig::default(), &mut families);
    let message = result.unwrap_err();
    assert!(
        message.contains("(100000 bytes) is longer than push.max_metric_name_length = 1024 bytes"),
        "{message}"
    );
    assert!(message.len() < 512, "{} bytes", message.len());
    assert_eq!(counted, 1);
    let config = PushConfig {
        max_metric_name_length: 100_000,
        ..PushConfig::default()
    };
    assert_eq!(limited(config, &mut families).0, Ok(()));
}

/// A series with 50,000 labels (each name distinct, all valid).
fn wide_metric() -> Metric {
    let names: Vec<String> = (0..50_000).map(|i| format!("l{i:05}")).collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    gauge(&pairs, 1.0)
}

#[test]
fn error_messages_quote_a_short_excerpt_of_a_wide_series() {
    let mut families = vec![family("m", MetricType::Gauge, vec![wide_metric()])];
    let message = limited(PushConfig::default(), &mut families).0.unwrap_err();
    assert!(
        message.len() < 2048,
        "{} bytes: {message:.300}",
        message.len()
    );
    assert!(message.contains("has 50001 labels"), "{message}");
    assert!(message.contains("(49986 more labels)"), "{message}");

    // The consistency check quotes the series too (here: a repeated label).
    let mut metric = wide_metric();
    metric.label.push(LabelPair::new("l00000", "again"));
    let mut families = vec![family("m", MetricType::Gauge, vec![metric])];
    let config = PushConfig {
        max_labels_per_series: 100_000,
        ..PushConfig::default()
    };
    let message = limited(config, &mut families).0.unwrap_err();
    assert!(message.contains("two or more labels"), "{message:.300}");
    assert!(
        message.len() < 2048,
        "{} bytes: {message:.300}",
        message.len()
    );
    assert!(message.contains("(49987 more labels)"), "{message}");
}
