//! An OpenMetrics body read into the index reads as the owned parse's
//! families, and checks and converts the same; what the index has no
//! place for takes the owned model.

use proptest::prelude::*;

use super::tests::same_as_owned_in;
use crate::config::PushConfig;
use crate::exposition::BodyFormat;

fn indexed(body: &str, config: &PushConfig) -> bool {
    same_as_owned_in(BodyFormat::OpenMetrics, body.as_bytes(), config)
}

#[test]
fn client_bodies_are_indexed() {
    let config = PushConfig::default();
    let timestamps = PushConfig {
        honor_timestamps: true,
        ..PushConfig::default()
    };
    for body in [
        // Counters (duplicates are one metric), help with escapes, units.
        "# TYPE req counter\n# HELP req Requests \\\"x\\\" \\\\ \\n.\n# UNIT req requests\n\
         req_total{path=\"/a\",code=\"200\"} 3\nreq_total{path=\"/b\"} 5\n\
         req_total{code=\"200\",path=\"/a\"} 4\n# EOF\n",
        // Gauges, info, stateset, unknown, samples outside their family,
        // escaped label values, an exemplar where it is dropped.
        "# TYPE build info\nbuild_info{version=\"1.0\\n\\\"x\\\\\"} 1\n\
         # TYPE st stateset\nst{st=\"a\"} 1\nst{st=\"b\"} 0\n\
         # TYPE u unknown\nu 5\n# TYPE g gauge\n# UNIT g seconds\ng -1 # {trace_id=\"x\"} 1\n\
         g{a=\"1\"} 2\nstray 2\nstray{a=\"b\"} 3\n# EOF\n",
        // Summaries and histograms, lines of a metric out of order.
        "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns{quantile=\"0.9\"} 3\ns_count 3\n\
         s_sum{x=\"y\"} 1 # {a=\"b\"} 1\ns_count{x=\"y\"} 2.9\n\
         # TYPE h histogram\nh_bucket{b=\"2\",a=\"1\",le=\"1\"} 1\nh_bucket{a=\"1\",b=\"2\",le=\"+Inf\"} 2\n\
         h_count{a=\"1\",b=\"2\"} 2\nh_sum{b=\"2\",a=\"1\"} 1.5\nh_sum 0\n# EOF\n",
        "# EOF\n",
    ] {
        assert!(indexed(body, &config), "{body:?}");
    }
    // Timestamps: refused by default, as the owned families are.
    let stamped = "# TYPE c counter\nc_total 1 1700000000.5\nc_total{a=\"1\"} 2\n\
                   # TYPE s summary\ns_sum 1 10\ns_count 2\ns{quantile=\"1\"} 3 30\n# EOF\n";
    assert!(indexed(stamped, &timestamps));
    assert!(!indexed(stamped, &config));
}

#[test]
fn what_the_index_has_no_place_for_takes_the_owned_model() {
    let config = PushConfig::default();
    for body in [
        // Start timestamps, exemplars kept on a counter or bucket.
        "# TYPE c counter\nc_total 3\nc_created 1700000000.5\n# EOF\n",
        "# TYPE c counter\nc_total 3 # {trace_id=\"abc\"} 1 1.5\n# EOF\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1 # {trace_id=\"d\"} 0.5\nh_bucket{le=\"+Inf\"} 1\n\
         h_sum 0.5\nh_count 1\n# EOF\n",
        // Gauge histograms, NaN quantiles and bounds.
        "# TYPE gh gaugehistogram\ngh_bucket{le=\"+Inf\"} 4\ngh_gsum 7\ngh_gcount 4\n# EOF\n",
        "# TYPE s summary\ns{quantile=\"NaN\"} 1\n# EOF\n",
        "# TYPE h histogram\nh_bucket{le=\"NaN\"} 1\n# EOF\n",
        // Buckets of two metrics interleaving.
        "# TYPE h histogram\nh_bucket{x=\"1\",le=\"1\"} 1\nh_bucket{x=\"2\",le=\"1\"} 1\n\
         h_bucket{x=\"1\",le=\"2\"} 2\n# EOF\n",
    ] {
        assert!(!indexed(body, &config), "{body:?}");
    }
    // A timestamp of an earlier metric after a later one's.
    let timestamps = PushConfig {
        honor_timestamps: true,
        ..PushConfig::default()
    };
    let body = "# TYPE c counter\nc_total 1\nc_total{a=\"1\"} 1 5\nc_total 1 3\n# EOF\n";
    assert!(!indexed(body, &timestamps));
}

#[test]
fn parse_errors_are_the_owned_parsers() {
    let config = PushConfig::default();
    for body in [
        "a 1\n",
        "# EOF\na 1\n",
        "a{x=\"1\",x=\"2\"} 1\n# EOF\n",
        "# TYPE h histogram\nh_bucket 1\n# EOF\n",
        "# TYPE c counter\nc_total 1\nc 2\nc_total 3\n# EOF\n",
        "# TYPE c counter\nc_total 1\nc_created x\n# EOF\n",
    ] {
        assert!(!indexed(body, &config), "{body:?}");
    }
}

fn line() -> impl Strategy<Value = String> {
    let metadata = prop::sample::select(vec![
        "# TYPE a counter",
        "# TYPE a summary",
        "# TYPE a histogram",
        "# TYPE a gauge",
        "# TYPE b stateset",
        "# HELP a h\\\\i",
        "# UNIT a seconds",
    ]);
    let name = prop::sample::select(vec![
        "a",
        "a_total",
        "a_sum",
        "a_count",
        "a_bucket",
        "a_created",
        "b",
    ]);
    let label_name = prop::sample::select(vec!["x", "y", "job", "le", "quantile"]);
    let value = prop::sample::select(vec!["", "1", "0.5", "+Inf", "NaN", "v\\\\w", "n\\n"]);
    let labels = prop::collection::vec((label_name, value), 0..3);
    let number = prop::sample::select(vec!["1", "-2.5", "+Inf", "3e2"]);
    let trailer = prop::sample::select(vec!["", " 17", " -3.5", " # {t=\"1\"} 1"]);
    prop_oneof![
        metadata.prop_map(String::from),
        (name, labels, number, trailer).prop_map(|(name, labels, number, trailer)| {
            let labels: Vec<String> = labels
                .iter()
                .map(|(name, value)| format!("{name}=\"{value}\""))
                .collect();
            format!("{name}{{{}}} {number}{trailer}", labels.join(","))
        }),
    ]
}

proptest! {
    /// Random OpenMetrics bodies: every answer is the owned path's.
    #[test]
    fn random_bodies_answer_as_owned(
        lines in prop::collection::vec(line(), 0..8),
        honor_timestamps in any::<bool>(),
    ) {
        let config = PushConfig { honor_timestamps, ..PushConfig::default() };
        let body = format!("{}\n# EOF\n", lines.join("\n"));
        indexed(&body, &config);
    }
}
