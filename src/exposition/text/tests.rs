//! Text 0.0.4 parser tests. Every error message below was read from the 400
//! body of a real Pushgateway 1.5.1 given the same body. (Properties:
//! `property_tests`.)

use super::parse;
use crate::proto::client::{MetricFamily, MetricType};

fn err(body: &[u8]) -> String {
    match parse(body) {
        Ok(families) => panic!("expected an error for {body:?}, got {families:?}"),
        Err(e) => e.to_string(),
    }
}

fn ok(body: &[u8]) -> Vec<MetricFamily> {
    parse(body).unwrap_or_else(|e| panic!("{body:?}: {e}"))
}

fn labels(metric: &crate::proto::client::Metric) -> Vec<(&str, &str)> {
    metric.label.iter().map(|l| (l.name(), l.value())).collect()
}

#[test]
fn errors_are_worded_as_the_pushgateway_words_them() {
    let table: &[(&[u8], &str)] = &[
        (
            b"some_metric 3.14",
            "line 1: unexpected end of input stream",
        ),
        (b"m 1\r\n", r#"line 1: expected float as value, got "1\r""#),
        (
            b"m 1 \n",
            r#"line 1: expected integer as timestamp, got """#,
        ),
        (
            b"m{a=\"1\",a=\"2\"} 3\n",
            r#"line 1: duplicate label names for metric "m""#,
        ),
        (
            b"m{__name__=\"x\"} 1\n",
            r#"line 1: label name "__name__" is reserved"#,
        ),
        (
            b"# TYPE tl gauge\n# TYPE tl counter\n",
            r#"line 2: second TYPE line for metric name "tl", or TYPE reported after samples"#,
        ),
        (
            b"hv 0x1F\n",
            r#"line 1: expected float as value, got "0x1F""#,
        ),
        (
            b"m{a=\"1\"\n",
            r#"line 1: unexpected end of label value "1""#,
        ),
        (
            b"m{a=\"1\nb\"} 1\n",
            r#"line 1: label value "1" contains unescaped new-line"#,
        ),
        (b"m{a=\"\\x\"} 1\n", r"line 1: invalid escape sequence '\x'"),
        (
            b"m{a=\"\xff\"} 1\n",
            r#"line 1: invalid label value "\xff""#,
        ),
        (
            b"m{a=1} 1\n",
            r#"line 1: expected '"' at start of label value, found '1'"#,
        ),
        (
            b"m{a\"1\"} 1\n",
            r#"line 1: expected '=' after label name, found '"'"#,
        ),
        (
            b"m{1a=\"1\"} 1\n",
            r#"line 1: invalid label name for metric "m""#,
        ),
        (
            b"m{a=\"1\" b=\"2\"} 1\n",
            r#"line 1: unexpected end of label value "1""#,
        ),
        (b"# HELP m a\\xb\n", r"line 1: invalid escape sequence '\x'"),
        (
            b"# HELP m a\n# HELP m b\n",
            r#"line 2: second HELP line for metric name "m""#,
        ),
        (b"# TYPE m foo\n", r#"line 1: unknown metric type "foo""#),
        (
            b"# TYPE m counter \n",
            r#"line 1: unknown metric type "counter ""#,
        ),
        (
            b"# TYPE m gaugehistogram\n",
            r#"line 1: unknown metric type "gaugehistogram""#,
        ),
        (b"# HELP 1m x\n", "line 1: invalid metric name in comment"),
        (
            b"m 1 1000 x\n",
            r#"line 1: spurious string after timestamp: " x""#,
        ),
        (
            b"m 1 abc\n",
            r#"line 1: expected integer as timestamp, got "abc""#,
        ),
        (b"{a=\"b\"} 1\n", "line 1: invalid metric name"),
        (
            b"m 1e400\n",
            r#"line 1: expected float as value, got "1e400""#,
        ),
        (
            b"# TYPE m summary\nm{quantile=\"abc\"} 1\n",
            r#"line 2: expected float as value for 'quantile' label, got "abc""#,
        ),
        (
            b"# TYPE m histogram\nm_bucket{le=\"x\"} 1\n",
            r#"line 2: expected float as value for 'le' label, got "x""#,
        ),
        (
            b"m{a=\"1\"}\n",
            r#"line 1: expected float as value, got """#,
        ),
        (b"# comment", "line 1: unexpected end of input stream"),
        (
            b"m{a=\"1\",a} 1\n",
            "line 1: expected '=' after label name, found '}'",
        ),
        (
            b"m{a=\"\\\n\"} 1\n",
            "line 1: invalid escape sequence '\\\n'",
        ),
        (
            b"m{\x01} 1\n",
            r#"line 1: invalid label name for metric "m""#,
        ),
        (
            b"m{a=\x01} 1\n",
            r#"line 1: expected '"' at start of label value, found '\x01'"#,
        ),
        (
            b"m{a=\"x\"\x01} 1\n",
            r#"line 1: unexpected end of label value "x""#,
        ),
        (
            b"m{a=\"\xc3\"} 1\n",
            r#"line 1: invalid label value "\xc3""#,
        ),
        (
            b"m{a=\"\xc3\xa9\xe2\x80\x8b\t\x7f\"\x01 1\n",
            r#"line 1: unexpected end of label value "é\u200b\t\x7f""#,
        ),
        (
            b"m 1 1000 \\\n",
            r#"line 1: spurious string after timestamp: " ""#,
        ),
        (
            b"m 1 99999999999999999999\n",
            r#"line 1: expected integer as timestamp, got "99999999999999999999""#,
        ),
        (
            b"m +nan\n",
            r#"line 1: expected float as value, got "+nan""#,
        ),
        (b"m 1_0\n", r#"line 1: expected float as value, got "1_0""#),
        (
            b"m \xc3\xa9\n",
            r#"line 1: expected float as value, got "é""#,
        ),
        (b"# HELP m a\\\n", "line 1: invalid escape sequence '\\\n'"),
        (
            b"m{a=\"\\\xc3\xa9\"} 1\n",
            "line 1: invalid escape sequence '\\Ã'",
        ),
        (
            b"a 1\n\n# c\nb{x=\"\"} 2\nc{",
            "line 5: unexpected end of input stream",
        ),
    ];
    for &(body, want) in table {
        assert_eq!(
            err(body),
            format!("text format parsing error in {want}"),
            "body {:?}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn untyped_is_the_default_and_families_keep_first_seen_order() {
    let families = ok(b"# HELP b the b\nz 1\nb{x=\"1\"} 2\na 3\nz 4\n");
    // `b` is first seen on its HELP line.
    let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
    assert_eq!(names, ["b", "z", "a"]);
    assert!(families.iter().all(|f| f.r#type() == MetricType::Untyped));
    assert_eq!(families[1].metric.len(), 2);
    assert_eq!(
        families[1].metric[1].untyped.as_ref().map(|u| u.value()),
        Some(4.0)
    );
    assert_eq!(families[0].help(), "the b");
    assert_eq!(labels(&families[0].metric[0]), [("x", "1")]);
}

#[test]
fn counters_and_gauges_carry_values_and_timestamps() {
    let families = ok(b"# TYPE c counter\n# TYPE g GAUGE\nc 1.5 -12\ng{a=\"b\"} -Inf\n");
    assert_eq!(families[0].r#type(), MetricType::Counter);
    assert_eq!(
        families[0].metric[0].counter.as_ref().map(|c| c.value()),
        Some(1.5)
    );
    assert_eq!(families[0].metric[0].timestamp_ms, Some(-12));
    assert_eq!(families[1].r#type(), MetricType::Gauge);
    assert_eq!(
        families[1].metric[0].gauge.as_ref().map(|g| g.value()),
        Some(f64::NEG_INFINITY)
    );
    assert_eq!(families[1].metric[0].timestamp_ms, None);
}

#[test]
fn special_values_and_go_float_syntax_are_accepted() {
    let families = ok(b"a NaN\nb +Inf\nc -Inf\nd 1e-3\ne .5\nf 5.\ng 1.E5\nh Infinity\ni 1e-400\n");
    let values: Vec<f64> = families
        .iter()
        .map(|f| {
            f.metric[0]
                .untyped
                .as_ref()
                .map(|u| u.value())
                .unwrap_or(-1.0)
        })
        .collect();
    assert!(values[0].is_nan());
    assert_eq!(
        &values[1..],
        &[
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e-3,
            0.5,
            5.0,
            1e5,
            f64::INFINITY,
            0.0
        ]
    );
}

#[test]
fn summaries_group_quantiles_sum_and_count_per_label_set() {
    let body = b"# TYPE s summary\n\
        s{a=\"1\",quantile=\"0.5\"} 10\n\
        s{quantile=\"0.9\",a=\"1\"} 20\n\
        s_sum{a=\"1\"} 100\n\
        s_count{a=\"1\"} 7\n\
        s{a=\"2\",quantile=\"0.5\"} 1\n\
        s_count{a=\"2\"} -1\n\
        s{a=\"2\",quantile=\"NaN\"} 3\n";
    let families = ok(body);
    assert_eq!(families.len(), 1);
    let family = &families[0];
    assert_eq!(family.r#type(), MetricType::Summary);
    assert_eq!(family.metric.len(), 2);
    let first = &family.metric[0];
    assert_eq!(labels(first), [("a", "1")]);
    let summary = first.summary.as_ref().expect("summary");
    assert_eq!(summary.sample_count, Some(7));
    assert_eq!(summary.sample_sum, Some(100.0));
    let quantiles: Vec<(f64, f64)> = summary
        .quantile
        .iter()
        .map(|q| (q.quantile(), q.value()))
        .collect();
    assert_eq!(quantiles, [(0.5, 10.0), (0.9, 20.0)]);
    let second = family.metric[1].summary.as_ref().expect("summary");
    // Go converts the float count with uint64(): -1 wraps; a NaN quantile
    // records nothing (both observed on the Pushgateway).
    assert_eq!(second.sample_count, Some(u64::MAX));
    assert_eq!(second.sample_sum, None);
    assert_eq!(second.quantile.len(), 1);
}

#[test]
fn histograms_group_buckets_sum_and_count() {
    let body = b"# HELP h lat\n# TYPE h histogram\n\
        h_bucket{le=\"0.1\"} 1\n\
        h_bucket{le=\"+Inf\"} 3\n\
        h_sum 2.5\n\
        h_count 3\n";
    let families = ok(body);
    assert_eq!(families.len(), 1);
    let histogram = families[0].metric[0].histogram.as_ref().expect("histogram");
    assert_eq!(families[0].help(), "lat");
    assert_eq!(histogram.sample_count, Some(3));
    assert_eq!(histogram.sample_sum, Some(2.5));
    let buckets: Vec<(f64, u64)> = histogram
        .bucket
        .iter()
        .map(|b| (b.upper_bound(), b.cumulative_count()))
        .collect();
    assert_eq!(buckets, [(0.1, 1), (f64::INFINITY, 3)]);
    assert!(families[0].metric[0].label.is_empty());
}

#[test]
fn suffixes_without_a_type_are_separate_untyped_families() {
    let families = ok(b"x_sum 1\nx_count 2\nx_bucket{le=\"1\"} 3\n");
    let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
    assert_eq!(names, ["x_sum", "x_count", "x_bucket"]);
    assert_eq!(labels(&families[2].metric[0]), [("le", "1")]);
    // A summary's `_bucket` is not part of it; a histogram's `le` is just a
    // label on other types.
    let families = ok(b"# TYPE s summary\ns_bucket 1\ns_count 1\n");
    let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
    assert_eq!(names, ["s", "s_bucket"]);
}

#[test]
fn suffix_help_and_type_lines_address_the_base_family() {
    assert_eq!(
        err(b"# TYPE x summary\n# TYPE x_count counter\n"),
        "text format parsing error in line 2: second TYPE line for metric name \"x\", or TYPE reported after samples"
    );
    let families = ok(b"# TYPE x summary\n# HELP x_sum about x\nx_sum 1\n");
    assert_eq!(families[0].name(), "x");
    assert_eq!(families[0].help(), "about x");
}

#[test]
fn type_after_samples_is_an_error() {
    assert_eq!(
        err(b"m 1\n# TYPE m gauge\n"),
        "text format parsing error in line 2: second TYPE line for metric name \"m\", or TYPE reported after samples"
    );
}

#[test]
fn label_escapes_names_with_colons_and_trailing_commas() {
    let families = ok(b"a:b:c{x=\"q\\\"\\\\\\n\",} 1\nempty{} 2\nsp { y = \"v\" , } 3\ntab\t4\n");
    assert_eq!(families[0].name(), "a:b:c");
    assert_eq!(labels(&families[0].metric[0]), [("x", "q\"\\\n")]);
    assert!(families[1].metric[0].label.is_empty());
    assert_eq!(labels(&families[2].metric[0]), [("y", "v")]);
    assert_eq!(
        families[3].metric[0].untyped.as_ref().map(|u| u.value()),
        Some(4.0)
    );
}

#[test]
fn help_escapes_and_empty_help() {
    let families = ok(b"# HELP h x\\\\y\\nz\nh 1\n# HELP e \ne 1\n# HELP n\nn 1\n");
    assert_eq!(families[0].help(), "x\\y\nz");
    assert_eq!(families[1].help, None);
    assert_eq!(families[2].help, None);
}

#[test]
fn comments_blank_lines_and_families_without_samples() {
    let families =
        ok(b"\n   \n# just a comment\n#\n# EOF\n# TYPE lonely counter\n# HELP quiet q\nm 1\n  \t");
    assert_eq!(families.len(), 1);
    assert_eq!(families[0].name(), "m");
    assert!(ok(b"").is_empty());
}

#[test]
fn type_words_ignore_case_and_backslashes() {
    let families = ok(b"# TYPE a Counter\n# TYPE b coun\\ter\na 1\nb 1\n");
    assert_eq!(families[0].r#type(), MetricType::Counter);
    assert_eq!(families[1].r#type(), MetricType::Counter);
}

#[test]
fn gauge_histogram_samples_are_kept_without_a_value() {
    // Observed on the Pushgateway: the family is stored as GAUGE_HISTOGRAM
    // with a value-less metric.
    let families = ok(b"# TYPE gh gauge_histogram\ngh{a=\"1\"} 1\n");
    assert_eq!(families[0].r#type(), MetricType::GaugeHistogram);
    let metric = &families[0].metric[0];
    assert_eq!(labels(metric), [("a", "1")]);
    assert!(metric.gauge.is_none() && metric.untyped.is_none() && metric.histogram.is_none());
}

#[test]
fn duplicate_series_are_both_kept() {
    let families = ok(b"m{a=\"1\"} 1\nm{a=\"1\"} 2\n");
    assert_eq!(families[0].metric.len(), 2);
}

#[test]
fn non_utf8_help_is_replaced_not_rejected() {
    let families = ok(b"# HELP m caf\xe9\nm 1\n");
    assert_eq!(families[0].help(), "caf\u{fffd}");
}

#[test]
fn counting_checks_like_parsing() {
    use super::count_samples;
    assert_eq!(
        count_samples(b"# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\nm{a=\"b\"} 2 3\n"),
        Ok(3)
    );
    for body in [&b"m 1"[..], b"m{a=\"1\",a=\"2\"} 1\n", b"m 1 x\n"] {
        let counted = count_samples(body).err();
        assert!(counted.is_some(), "{body:?}");
        assert_eq!(counted, parse(body).err());
    }
}

#[test]
fn many_labels_stay_fast_and_duplicates_are_still_found() {
    let mut line = String::from("m{");
    for i in 0..50_000 {
        line.push_str(&format!("l{i}=\"v\","));
    }
    let ok_body = format!("{line}}} 1\n");
    let started = std::time::Instant::now();
    let families = ok(ok_body.as_bytes());
    assert_eq!(families[0].metric[0].label.len(), 50_000);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let dup_body = format!("{line}l7=\"x\"}} 1\n");
    assert_eq!(
        err(dup_body.as_bytes()),
        "text format parsing error in line 1: duplicate label names for metric \"m\""
    );
}

#[test]
fn client_fixtures_parse_to_what_the_go_client_pushes_as_protobuf() {
    let text = ok(include_bytes!("../../../tests/fixtures/go_push_text.txt"));
    let mut proto = crate::exposition::protobuf::decode_delimited(include_bytes!(
        "../../../tests/fixtures/go_push.bin"
    ))
    .expect("fixture decodes");
    // The text rendering adds the implicit +Inf bucket.
    for family in &mut proto {
        for metric in &mut family.metric {
            if let Some(histogram) = metric.histogram.as_mut() {
                histogram.bucket.push(crate::proto::client::Bucket {
                    upper_bound: Some(f64::INFINITY),
                    cumulative_count: histogram.sample_count,
                    ..Default::default()
                });
            }
        }
    }
    assert_eq!(text, proto);

    let python = ok(include_bytes!("../../../tests/fixtures/python_push.txt"));
    let kinds: Vec<(&str, MetricType, usize)> = python
        .iter()
        .map(|f| (f.name(), f.r#type(), f.metric.len()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("py_requests_total", MetricType::Counter, 2),
            ("py_requests_created", MetricType::Gauge, 2),
            ("py_temperature_celsius", MetricType::Gauge, 1),
            ("py_latency_seconds", MetricType::Histogram, 1),
            ("py_latency_seconds_created", MetricType::Gauge, 1),
            ("py_size_bytes", MetricType::Summary, 1),
            ("py_size_bytes_created", MetricType::Gauge, 1),
        ]
    );
}
