//! OpenMetrics parser tests.

use super::parse_openmetrics as parse;
use crate::proto::client::{MetricFamily, MetricType};

fn ok(body: &str) -> Vec<MetricFamily> {
    parse(body.as_bytes()).unwrap_or_else(|e| panic!("{body:?}: {e}"))
}

fn err(body: &str) -> String {
    match parse(body.as_bytes()) {
        Ok(families) => panic!("expected an error for {body:?}, got {families:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn counters_keep_the_total_name_and_carry_created() {
    let families = ok(
        "# TYPE req counter\n# HELP req Requests \\\"x\\\".\n# UNIT req requests\n\
        req_total{path=\"/a\"} 3 # {trace_id=\"abc\"} 1 1.5\n\
        req_created{path=\"/a\"} 1700000000.25\n\
        req_total{path=\"/b\"} 5\n# EOF\n",
    );
    assert_eq!(families.len(), 1);
    let family = &families[0];
    assert_eq!(family.name(), "req_total");
    assert_eq!(family.r#type(), MetricType::Counter);
    assert_eq!(family.help(), "Requests \"x\".");
    assert_eq!(family.unit(), "requests");
    assert_eq!(family.metric.len(), 2);
    let first = family.metric[0].counter.as_ref().expect("counter");
    assert_eq!(first.value, Some(3.0));
    let created = first.created_timestamp.expect("created");
    assert_eq!(
        (created.seconds, created.nanos),
        (1_700_000_000, 250_000_000)
    );
    assert_eq!(
        family.metric[1].counter.as_ref().and_then(|c| c.value),
        Some(5.0)
    );
}

#[test]
fn summaries_histograms_and_gauge_histograms_group_per_label_set() {
    let families = ok(
        "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\ns_created 10\n\
        # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1.5\nh_count 2\n\
        # TYPE gh gaugehistogram\ngh_bucket{le=\"+Inf\"} 4\ngh_gsum 7\ngh_gcount 4\n# EOF\n",
    );
    let kinds: Vec<(&str, MetricType, usize)> = families
        .iter()
        .map(|f| (f.name(), f.r#type(), f.metric.len()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("s", MetricType::Summary, 1),
            ("h", MetricType::Histogram, 1),
            ("gh", MetricType::GaugeHistogram, 1)
        ]
    );
    let summary = families[0].metric[0].summary.as_ref().expect("summary");
    assert_eq!(
        (summary.sample_sum, summary.sample_count),
        (Some(2.0), Some(3))
    );
    assert_eq!(summary.quantile.len(), 1);
    assert_eq!(summary.created_timestamp.map(|t| t.seconds), Some(10));
    let histogram = families[1].metric[0].histogram.as_ref().expect("histogram");
    assert_eq!(histogram.bucket.len(), 2);
    assert!(families[1].metric[0].label.is_empty());
    let gauge_histogram = families[2].metric[0].histogram.as_ref().expect("histogram");
    assert_eq!(gauge_histogram.sample_sum, Some(7.0));
    assert_eq!(gauge_histogram.sample_count, Some(4));
}

#[test]
fn info_stateset_unknown_and_gauge() {
    let families = ok("# TYPE build info\nbuild_info{version=\"1.0\"} 1\n\
        # TYPE st stateset\nst{st=\"a\"} 1\nst{st=\"b\"} 0\n\
        # TYPE u unknown\nu 5 1700000000.5\n# TYPE g gauge\ng -1\nstray 2\nstray{a=\"b\"} 3\n# EOF");
    let kinds: Vec<(&str, MetricType, usize)> = families
        .iter()
        .map(|f| (f.name(), f.r#type(), f.metric.len()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("build_info", MetricType::Gauge, 1),
            ("st", MetricType::Gauge, 2),
            ("u", MetricType::Untyped, 1),
            ("g", MetricType::Gauge, 1),
            ("stray", MetricType::Untyped, 2),
        ]
    );
    assert_eq!(families[2].metric[0].timestamp_ms, Some(1_700_000_000_500));
}

#[test]
fn eof_is_required_and_final() {
    assert_eq!(
        err("a 1\n"),
        "openmetrics parsing error in line 1: missing \"# EOF\" at the end"
    );
    assert_eq!(
        err("# EOF\na 1\n"),
        "openmetrics parsing error in line 2: unexpected content after \"# EOF\""
    );
    assert!(ok("# EOF\n").is_empty());
}

#[test]
fn syntax_errors_name_the_problem() {
    let table = [
        (
            "a{x=\"1\",x=\"2\"} 1\n# EOF\n",
            "line 1: duplicate label name \"x\"",
        ),
        (
            "a{x=1} 1\n# EOF\n",
            "line 1: expected =\" after label name \"x\"",
        ),
        ("a x\n# EOF\n", "line 1: expected float as value, got \"x\""),
        (
            "# TYPE a foo\n# EOF\n",
            "line 1: unknown metric type \"foo\"",
        ),
        (
            "# TYPE h histogram\nh_bucket 1\n# EOF\n",
            "line 2: missing \"le\" label on \"h_bucket\"",
        ),
        (
            "a 1 # x\n# EOF\n",
            "line 1: unexpected text after the value: \"# x\"",
        ),
        (
            "# TYPE a gauge\na 1\nb 1\n# TYPE a gauge\n# EOF\n",
            "line 4: metric family \"a\" is not contiguous",
        ),
        (
            "# TYPE c counter\nc_total 1\nc 2\nc_total 3\n# EOF\n",
            "line 4: samples of \"c_total\" are not contiguous",
        ),
    ];
    for (body, want) in table {
        assert_eq!(
            err(body),
            format!("openmetrics parsing error in {want}"),
            "{body:?}"
        );
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
        let _ = parse(&body);
    }

    #[test]
    fn om_like_text_never_panics(body in "[a-z_{}=\",# \\\\\n0-9.eE+-]{0,100}(# EOF\n)?") {
        let _ = parse(body.as_bytes());
    }
}

#[test]
fn exemplars_are_kept_on_counters_and_buckets() {
    let families = ok("# TYPE req counter\n\
        req_total 3 # {trace_id=\"abc\"} 1 1.5\n\
        # TYPE lat histogram\n\
        lat_bucket{le=\"0.5\"} 1 # {trace_id=\"def\"} 0.25\n\
        lat_bucket{le=\"+Inf\"} 2\nlat_sum 1\nlat_count 2\n\
        # TYPE g gauge\ng 1 # {trace_id=\"x\"} 1\n# EOF\n");
    let counter = families[0].metric[0].counter.as_ref().unwrap();
    let exemplar = counter.exemplar.as_ref().expect("the counter's exemplar");
    assert_eq!(exemplar.label[0].name(), "trace_id");
    assert_eq!(exemplar.label[0].value(), "abc");
    assert_eq!(exemplar.value, Some(1.0));
    let at = exemplar.timestamp.expect("timestamp");
    assert_eq!((at.seconds, at.nanos), (1, 500_000_000));
    let buckets = &families[1].metric[0].histogram.as_ref().unwrap().bucket;
    let exemplar = buckets[0].exemplar.as_ref().expect("the bucket's exemplar");
    assert_eq!(exemplar.value, Some(0.25));
    assert_eq!(exemplar.timestamp, None);
    assert!(buckets[1].exemplar.is_none());
    // A gauge has no place for one: checked, then dropped.
    assert!(families[2].metric[0].gauge.is_some());
}
