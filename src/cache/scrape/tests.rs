use std::time::{Duration, SystemTime};

use prost::Message;

use super::*;
use crate::cache::store::{Store, StoreOptions};
use crate::proto::client::{Bucket, Counter, Histogram, Quantile, Summary};
use crate::push::{GroupingKey, Push, PushOp};

/// Grouping labels and the families pushed to them.
type GroupPush<'a> = (Vec<(&'a str, &'a str)>, Vec<MetricFamily>);

fn store_with(pushes: Vec<GroupPush<'_>>, disable_check: bool) -> Store {
    let store = Store::new(StoreOptions {
        disable_consistency_check: disable_check,
        own_families: Default::default(),
    });
    for (key, families) in pushes {
        let push = Push {
            op: PushOp::Replace,
            key: GroupingKey::new(key.iter().map(|(n, v)| (n.to_string(), v.to_string()))),
            families: families.into(),
            received_at: SystemTime::UNIX_EPOCH + Duration::from_secs(10),
            tenant: None,
        };
        store.apply(&push).unwrap();
    }
    store
}

fn family(name: &str, kind: MetricType, help: Option<&str>, metrics: Vec<Metric>) -> MetricFamily {
    MetricFamily {
        name: Some(name.into()),
        help: help.map(str::to_string),
        r#type: Some(kind as i32),
        metric: metrics,
        unit: None,
    }
}

fn gauge(labels: &[(&str, &str)], value: f64) -> Metric {
    Metric {
        label: labels.iter().map(|&(n, v)| LabelPair::new(n, v)).collect(),
        gauge: Some(Gauge { value: Some(value) }),
        ..Default::default()
    }
}

fn text(store: &Store, own: &[MetricFamily]) -> String {
    let rendered = render(&store.snapshot(), own, Format::Text, false).unwrap();
    assert_eq!(rendered.content_type, TEXT_CONTENT_TYPE);
    String::from_utf8(rendered.body).unwrap()
}

/// The scrape without the two stamp families (their values are times).
fn without_stamps(text: &str) -> String {
    text.lines()
        .filter(|l| !l.contains("push_time_seconds") && !l.contains("push_failure_time_seconds"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn families_merge_across_groups_sorted_by_label_count_then_values() {
    let store = store_with(
        vec![
            (
                vec![("job", "j8")],
                vec![family(
                    "a",
                    MetricType::Gauge,
                    Some("A."),
                    vec![gauge(&[], 1.0)],
                )],
            ),
            (
                vec![("job", "j5")],
                vec![family(
                    "a",
                    MetricType::Gauge,
                    Some("A."),
                    vec![gauge(&[], 2.0)],
                )],
            ),
            (
                vec![("job", "j+7"), ("p", "a b")],
                vec![family(
                    "a",
                    MetricType::Gauge,
                    Some("A."),
                    vec![gauge(&[], 3.0)],
                )],
            ),
            (
                vec![("job", "z")],
                vec![family(
                    "b",
                    MetricType::Counter,
                    None,
                    vec![Metric {
                        counter: Some(Counter {
                            value: Some(4.0),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                )],
            ),
        ],
        false,
    );
    assert_eq!(
        without_stamps(&text(&store, &[])),
        "# HELP a A.\n# TYPE a gauge\n\
         a{instance=\"\",job=\"j5\"} 2\n\
         a{instance=\"\",job=\"j8\"} 1\n\
         a{instance=\"\",job=\"j+7\",p=\"a b\"} 3\n\
         # TYPE b counter\n\
         b{instance=\"\",job=\"z\"} 4\n"
    );
}

#[test]
fn stamps_are_exposed_per_group_with_their_help() {
    let store = store_with(vec![(vec![("job", "j"), ("instance", "i")], vec![])], false);
    let out = text(&store, &[]);
    assert!(out.contains(
        "# HELP push_failure_time_seconds Last Unix time when changing this group in the Pushgateway failed.\n\
         # TYPE push_failure_time_seconds gauge\n\
         push_failure_time_seconds{instance=\"i\",job=\"j\"} 0\n"
    ), "{out}");
    assert!(
        out.contains("push_time_seconds{instance=\"i\",job=\"j\"} 10\n"),
        "{out}"
    );
}

#[test]
fn summaries_and_histograms_expand_with_inf_bucket_and_escapes() {
    let summary = Metric {
        label: vec![LabelPair::new("path", "a\"b\\c\nd")],
        summary: Some(Summary {
            sample_count: Some(4),
            sample_sum: Some(10.5),
            quantile: vec![Quantile {
                quantile: Some(0.5),
                value: Some(1.0),
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let histogram = Metric {
        histogram: Some(Histogram {
            sample_count: Some(3),
            sample_sum: Some(2.5),
            bucket: vec![Bucket {
                cumulative_count: Some(1),
                upper_bound: Some(0.5),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let store = store_with(
        vec![(
            vec![("job", "j")],
            vec![
                family(
                    "s",
                    MetricType::Summary,
                    Some("line\\one\ntwo"),
                    vec![summary],
                ),
                family("h", MetricType::Histogram, Some(""), vec![histogram]),
            ],
        )],
        false,
    );
    assert_eq!(
        without_stamps(&text(&store, &[])),
        "# HELP h \n# TYPE h histogram\n\
         h_bucket{instance=\"\",job=\"j\",le=\"0.5\"} 1\n\
         h_bucket{instance=\"\",job=\"j\",le=\"+Inf\"} 3\n\
         h_sum{instance=\"\",job=\"j\"} 2.5\n\
         h_count{instance=\"\",job=\"j\"} 3\n\
         # HELP s line\\\\one\\ntwo\n# TYPE s summary\n\
         s{instance=\"\",job=\"j\",path=\"a\\\"b\\\\c\\nd\",quantile=\"0.5\"} 1\n\
         s_sum{instance=\"\",job=\"j\",path=\"a\\\"b\\\\c\\nd\"} 10.5\n\
         s_count{instance=\"\",job=\"j\",path=\"a\\\"b\\\\c\\nd\"} 4\n"
    );
}

#[test]
fn empty_families_are_omitted_and_own_families_merge_with_their_help() {
    let store = store_with(
        vec![(
            vec![("job", "j")],
            vec![
                family("empty", MetricType::Gauge, None, vec![]),
                family(
                    "process_open_fds",
                    MetricType::Gauge,
                    Some("pushed help"),
                    vec![gauge(&[], 7.0)],
                ),
            ],
        )],
        false,
    );
    let own = [family(
        "process_open_fds",
        MetricType::Gauge,
        Some("Number of open file descriptors."),
        vec![gauge(&[], 9.0)],
    )];
    assert_eq!(
        without_stamps(&text(&store, &own)),
        "# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\n\
         process_open_fds 9\n\
         process_open_fds{instance=\"\",job=\"j\"} 7\n"
    );
}

#[test]
fn the_earliest_stored_help_wins() {
    let store = Store::new(StoreOptions::default());
    for (job, help, at) in [("b", "second", 20), ("a", "first", 10), ("c", "third", 30)] {
        store
            .apply(&Push {
                op: PushOp::Replace,
                key: GroupingKey::new([("job".to_string(), job.to_string())]),
                families: vec![family(
                    "m",
                    MetricType::Gauge,
                    Some(help),
                    vec![gauge(&[], 1.0)],
                )]
                .into(),
                received_at: SystemTime::UNIX_EPOCH + Duration::from_secs(at),
                tenant: None,
            })
            .unwrap();
    }
    assert!(text(&store, &[]).contains("# HELP m first\n"));
}

#[test]
fn protobuf_scrape_is_delimited_and_sorted() {
    let store = store_with(
        vec![
            (
                vec![("job", "b")],
                vec![family("m", MetricType::Gauge, None, vec![gauge(&[], 1.0)])],
            ),
            (
                vec![("job", "a")],
                vec![family("m", MetricType::Gauge, None, vec![gauge(&[], 2.0)])],
            ),
        ],
        false,
    );
    let rendered = render(&store.snapshot(), &[], Format::Protobuf, false).unwrap();
    assert_eq!(rendered.content_type, PROTOBUF_CONTENT_TYPE);
    let mut body = rendered.body.as_slice();
    let mut names = Vec::new();
    while !body.is_empty() {
        let family = MetricFamily::decode_length_delimited(&mut body).unwrap();
        if family.name() == "m" {
            let jobs: Vec<&str> = family.metric.iter().map(|m| m.label[1].value()).collect();
            assert_eq!(jobs, ["a", "b"]);
        }
        names.push(family.name().to_string());
    }
    assert_eq!(
        names,
        ["m", "push_failure_time_seconds", "push_time_seconds"]
    );
}

#[test]
fn an_inconsistent_store_fails_the_scrape_when_unchecked() {
    let counter = Metric {
        counter: Some(Counter {
            value: Some(1.0),
            ..Default::default()
        }),
        ..Default::default()
    };
    let store = store_with(
        vec![
            (
                vec![("job", "a")],
                vec![family("c", MetricType::Counter, None, vec![counter])],
            ),
            (
                vec![("job", "b")],
                vec![family("c", MetricType::Gauge, None, vec![gauge(&[], 1.0)])],
            ),
        ],
        true,
    );
    let error = render(&store.snapshot(), &[], Format::Text, true)
        .err()
        .unwrap();
    assert!(
        error.contains("is not a COUNTER") || error.contains("is not a GAUGE"),
        "{error}"
    );
}

#[test]
fn negotiation_and_gzip() {
    let proto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1";
    assert_eq!(Format::negotiate(Some(proto)), Format::Protobuf);
    assert_eq!(
        Format::negotiate(Some(
            "text/plain;q=1,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5"
        )),
        Format::Text
    );
    assert_eq!(
        Format::negotiate(Some("application/openmetrics-text")),
        Format::Text
    );
    assert_eq!(Format::negotiate(None), Format::Text);
    assert!(accepts_gzip(Some("gzip, deflate")));
    assert!(!accepts_gzip(Some("gzip;q=0")));
    assert!(!accepts_gzip(Some("identity")));
    assert!(!accepts_gzip(None));
    let zipped = gzip(b"hello");
    let mut out = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(zipped.as_slice()),
        &mut out,
    )
    .unwrap();
    assert_eq!(out, "hello");
}

#[test]
fn cached_merge_orders_follow_every_write() {
    let pushed = |job: &str, values: &[(&str, f64)]| Push {
        op: PushOp::Replace,
        key: GroupingKey::new([("job".to_string(), job.to_string())]),
        families: vec![family(
            "m",
            MetricType::Gauge,
            None,
            values.iter().map(|(a, v)| gauge(&[("a", a)], *v)).collect(),
        )]
        .into(),
        received_at: SystemTime::UNIX_EPOCH + Duration::from_secs(10),
        tenant: None,
    };
    let store = store_with(vec![], false);
    store
        .apply(&pushed("x", &[("1", 1.0), ("3", 3.0)]))
        .unwrap();
    store
        .apply(&pushed("y", &[("2", 2.0), ("4", 4.0)]))
        .unwrap();
    let cache = MergeCache::default();
    let scrape = |format| {
        let groups = store.snapshot();
        let cached = render_cached(&groups, &[], format, false, Some(&cache)).unwrap();
        let fresh = render(&groups, &[], format, false).unwrap();
        assert_eq!(cached.body, fresh.body, "cached and fresh orders agree");
        String::from_utf8_lossy(&cached.body).into_owned()
    };
    let expected = "# TYPE m gauge\n\
         m{a=\"1\",instance=\"\",job=\"x\"} 1\n\
         m{a=\"2\",instance=\"\",job=\"y\"} 2\n\
         m{a=\"3\",instance=\"\",job=\"x\"} 3\n\
         m{a=\"4\",instance=\"\",job=\"y\"} 4\n";
    assert_eq!(without_stamps(&scrape(Format::Text)), expected);
    assert_eq!(without_stamps(&scrape(Format::Text)), expected);
    scrape(Format::Protobuf);
    store.apply(&pushed("y", &[("0", 5.0)])).unwrap();
    assert_eq!(
        without_stamps(&scrape(Format::Text)),
        "# TYPE m gauge\n\
         m{a=\"0\",instance=\"\",job=\"y\"} 5\n\
         m{a=\"1\",instance=\"\",job=\"x\"} 1\n\
         m{a=\"3\",instance=\"\",job=\"x\"} 3\n"
    );
    scrape(Format::Protobuf);
    store.delete(
        None,
        &GroupingKey::new([("job".to_string(), "x".to_string())]),
    );
    assert_eq!(
        without_stamps(&scrape(Format::Text)),
        "# TYPE m gauge\nm{a=\"0\",instance=\"\",job=\"y\"} 5\n"
    );
}

proptest::proptest! {
    #[test]
    fn the_merge_is_one_stable_sort_of_all_sources(
        sources in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec("[ab]{0,2}", 0..3), 0..12),
            0..6,
        ),
    ) {
        let metrics: Vec<Vec<Metric>> = sources
            .iter()
            .map(|source| {
                let mut metrics: Vec<Metric> = source
                    .iter()
                    .map(|values| {
                        let labels: Vec<(String, &str)> = values
                            .iter()
                            .enumerate()
                            .map(|(i, v)| (format!("l{i}"), v.as_str()))
                            .collect();
                        let labels: Vec<(&str, &str)> =
                            labels.iter().map(|(n, v)| (n.as_str(), *v)).collect();
                        gauge(&labels, 1.0)
                    })
                    .collect();
                metrics.sort_by(compare_metrics);
                metrics
            })
            .collect();
        let merged = Merged {
            name: "m",
            help: None,
            kind: MetricType::Gauge as i32,
            sources: metrics.iter().map(|m| Source::Decoded(m.iter().collect())).collect(),
            help_rank: None,
        };
        let mut expected: Vec<(u32, u32)> = metrics
            .iter()
            .enumerate()
            .flat_map(|(s, m)| (0..m.len()).map(move |p| (s as u32, p as u32)))
            .collect();
        expected.sort_by(|a, b| {
            compare_metrics(&metrics[a.0 as usize][a.1 as usize], &metrics[b.0 as usize][b.1 as usize])
        });
        proptest::prop_assert_eq!(merged.order(), expected);
    }
}
