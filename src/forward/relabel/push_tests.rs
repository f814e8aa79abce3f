//! Relabeling of whole converted pushes: external labels, rules, the
//! validity and duplicate checks, and that a push (with its per-push memo
//! and plans) comes out as each of its series relabeled alone.

use super::super::convert;
use super::tests::rule;
use super::*;
use crate::config::ExternalLabels;
use crate::exposition::text;
use crate::push::GroupingKey;
use crate::push::validate::check as validate;

/// A relabeler for `rules` (YAML list) and `external` labels.
fn relabeler(external: &[(&str, &str)], rules: &str) -> Relabeler {
    let config = RemoteWriteConfig {
        external_labels: ExternalLabels(
            external
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        ),
        write_relabel_configs: serde_yaml::from_str(rules).unwrap(),
        ..RemoteWriteConfig::default()
    };
    Relabeler::new(&config, |name| {
        (name == "NODE_NAME").then(|| "node-7".to_string())
    })
    .unwrap()
}

/// A series' labels as `{name="value",...}`, as the tests compare them.
fn series_text<'a>(labels: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> String {
    let labels: Vec<String> = labels
        .map(|(n, v)| {
            format!(
                "{}={:?}",
                String::from_utf8_lossy(n),
                String::from_utf8_lossy(v)
            )
        })
        .collect();
    format!("{{{}}}", labels.join(","))
}

/// `body` pushed to job `j`, converted and relabeled: each family's name
/// and its series as `{name="value",...}`.
fn relabel_push(relabeler: &Relabeler, body: &str) -> Vec<(String, Vec<String>)> {
    let key = GroupingKey::new([("job".to_string(), "j".to_string())]);
    let mut families = text::parse(body.as_bytes()).unwrap();
    validate(&mut families, &key, &Default::default()).unwrap();
    let mut converted = convert::convert(&families, &key);
    relabeler.apply(&mut converted);
    converted
        .families
        .iter()
        .map(|family| {
            assert_eq!(
                family.labels.start,
                converted.series[family.series.clone()]
                    .first()
                    .map_or(family.labels.start, |s| s.labels().start),
                "a family's label bytes start with its first series"
            );
            let series = converted.series[family.series.clone()]
                .iter()
                .map(|s| series_text(decode_labels(converted.series_labels(s))))
                .collect();
            (family.name.clone(), series)
        })
        .collect()
}

#[test]
fn external_labels_are_added_unless_pushed_and_expand_the_environment() {
    let relabeler = relabeler(
        &[
            ("cluster", "eu-1"),
            ("node", "${NODE_NAME}"),
            ("job", "ignored"),
            ("unset", "$NOPE"),
        ],
        "[]",
    );
    let got = relabel_push(&relabeler, "up{cluster=\"mine\"} 1\nother 2\n");
    assert_eq!(
        got,
        [
            (
                "up".to_string(),
                vec![r#"{__name__="up",cluster="mine",job="j",node="node-7"}"#.to_string()]
            ),
            (
                "other".to_string(),
                vec![r#"{__name__="other",cluster="eu-1",job="j",node="node-7"}"#.to_string()]
            ),
        ]
    );
}

#[test]
fn rules_run_after_external_labels_and_drop_rename_and_invalidate() {
    let relabeler = relabeler(
        &[("cluster", "eu-1")],
        r#"
- {source_labels: [__name__], regex: 'go_.*', action: drop}
- {source_labels: [cluster], target_label: region, regex: '(eu)-.*'}
- {regex: pod, action: labeldrop}
- {source_labels: [__name__], regex: 'gone', target_label: __name__, replacement: ''}
- {source_labels: [__name__], target_label: __tmp_name}
"#,
    );
    let body = "go_goroutines 5\nup{pod=\"p1\"} 1\nup{pod=\"p2\"} 1\ngone 3\nkept 4\n";
    let got = relabel_push(&relabeler, body);
    let region = r#"cluster="eu-1",job="j",region="eu""#;
    assert_eq!(
        got,
        [
            ("go_goroutines".to_string(), vec![]),
            // Two series that labeldrop made equal: the first is kept.
            (
                "up".to_string(),
                vec![format!(r#"{{__name__="up",{region}}}"#)]
            ),
            // `__name__` deleted: invalid, dropped.
            ("gone".to_string(), vec![]),
            // `__tmp_name` scratch label removed.
            (
                "kept".to_string(),
                vec![format!(r#"{{__name__="kept",{region}}}"#)]
            ),
        ]
    );
}

#[test]
fn no_rules_and_no_external_labels_leave_a_push_untouched() {
    let relabeler = relabeler(&[], "[]");
    assert!(relabeler.is_noop());
    let key = GroupingKey::new([("job".to_string(), "j".to_string())]);
    let mut families = text::parse(b"a{x=\"1\"} 1\nb 2\n").unwrap();
    validate(&mut families, &key, &Default::default()).unwrap();
    let converted = convert::convert(&families, &key);
    let mut relabeled = converted.clone();
    relabeler.apply(&mut relabeled);
    assert_eq!(relabeled, converted);
    let one = converted.series_labels(&converted.series[0]);
    assert_eq!(
        relabeler.relabel_encoded(one.to_vec()).as_deref(),
        Some(one)
    );
}

#[test]
fn an_encoded_series_is_relabeled_or_dropped() {
    let relabeler = relabeler(
        &[("cluster", "c")],
        "[{source_labels: [__name__], regex: push_failure_time_seconds, action: drop}]",
    );
    let mut push_time = Vec::new();
    wire::put_label(&mut push_time, b"__name__", b"push_time_seconds");
    wire::put_label(&mut push_time, b"job", b"j");
    let mut expected = Vec::new();
    wire::put_label(&mut expected, b"__name__", b"push_time_seconds");
    wire::put_label(&mut expected, b"cluster", b"c");
    wire::put_label(&mut expected, b"job", b"j");
    assert_eq!(relabeler.relabel_encoded(push_time), Some(expected));
    let mut failure = Vec::new();
    wire::put_label(&mut failure, b"__name__", b"push_failure_time_seconds");
    assert_eq!(relabeler.relabel_encoded(failure), None);
}

#[test]
fn a_series_rewritten_into_an_earlier_untouched_one_is_dropped_as_a_duplicate() {
    // The first series is left as it is; only the second one's rewrite
    // makes the two equal, and the first is kept.
    let relabeler = relabeler(
        &[],
        "[{source_labels: [x], regex: '2', target_label: x, replacement: '1'}]",
    );
    let got = relabel_push(&relabeler, "a{x=\"1\"} 1\na{x=\"2\"} 2\na{x=\"3\"} 3\n");
    assert_eq!(
        got,
        [(
            "a".to_string(),
            vec![
                r#"{__name__="a",job="j",x="1"}"#.to_string(),
                r#"{__name__="a",job="j",x="3"}"#.to_string(),
            ]
        )]
    );
}

#[test]
fn remembered_results_match_each_series_relabeled_alone() {
    // Many series with few distinct values (the memo pays) and with all
    // distinct values (the memo gives up): each series comes out as the
    // rules applied to it alone would make it.
    let rules = [
        "{source_labels: [code], regex: '(\\d)\\d\\d', target_label: class, replacement: '${1}xx'}",
        "{source_labels: [code], regex: '5.[0-3]', action: drop}",
        "{source_labels: [path], regex: '/p/(\\d+)', target_label: 'id_${1}', replacement: 'y'}",
        "{source_labels: [path], target_label: bucket, modulus: 7, action: hashmod}",
        "{source_labels: [path], target_label: upper, action: uppercase}",
        "{regex: '(c.*)', replacement: 'copy_${1}', action: labelmap}",
        "{regex: 'copy_code|z', action: labeldrop}",
    ];
    let relabeler = relabeler(&[], &format!("[{}]", rules.join(",")));
    let compiled: Vec<Rule> = rules
        .iter()
        .map(|yaml| Rule::compile(&rule(yaml)).unwrap())
        .collect();
    let mut body = String::new();
    let mut inputs = Vec::new();
    for i in 0..300 {
        let (code, path) = (format!("{}", 200 + (i % 7) * 50), format!("/p/{i}"));
        body.push_str(&format!("m{{code=\"{code}\",path=\"{path}\"}} {i}\n"));
        inputs.push((code, path));
    }
    let got = relabel_push(&relabeler, &body);
    let expected: Vec<String> = inputs
        .iter()
        .filter_map(|(code, path)| {
            let input = [
                ("__name__", "m"),
                ("code", code.as_str()),
                ("job", "j"),
                ("path", path.as_str()),
            ];
            let mut labels: LabelSet = input
                .iter()
                .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
                .collect();
            for rule in &compiled {
                if !rule.apply(&mut labels, &mut Vec::new()) {
                    return None;
                }
            }
            Some(series_text(labels.iter()))
        })
        .collect();
    assert!(expected.len() > 200 && expected.len() < 300);
    assert_eq!(got, [("m".to_string(), expected)]);
}

#[test]
fn a_labelmap_name_that_is_not_a_label_name_makes_the_series_invalid() {
    let relabeler = relabeler(
        &[],
        "[{regex: 'x(.*)', replacement: '${1}', action: labelmap}]",
    );
    assert_eq!(
        relabel_push(&relabeler, "a{x1=\"v\"} 1\n"),
        [("a".to_string(), vec![])]
    );
}

/// `body` (pushed to job `j`) relabeled as a push comes out as each of
/// its series relabeled alone (no memo, no plan) would.
fn assert_push_relabels_as_each_series_alone(external: &[(&str, &str)], rules: &str, body: &str) {
    let relabeler = relabeler(external, rules);
    let key = GroupingKey::new([("job".to_string(), "j".to_string())]);
    let mut families = text::parse(body.as_bytes()).unwrap();
    validate(&mut families, &key, &Default::default()).unwrap();
    let converted = convert::convert(&families, &key);
    let expected: Vec<Vec<u8>> = converted
        .series
        .iter()
        .filter_map(|s| relabeler.relabel_encoded(converted.series_labels(s).to_vec()))
        .collect();
    let mut relabeled = converted.clone();
    relabeler.apply(&mut relabeled);
    let got: Vec<&[u8]> = relabeled
        .series
        .iter()
        .map(|s| relabeled.series_labels(s))
        .collect();
    assert_eq!(got, expected, "{rules}");
    assert!(expected.len() > 50, "{rules}: the rules keep series");
    // The same push again replays the plans remembered for it whole.
    let mut again = converted.clone();
    relabeler.apply(&mut again);
    assert_eq!(
        again, relabeled,
        "{rules}: the push relabeled a second time"
    );
}

#[test]
fn a_push_like_a_remembered_one_but_for_one_value_is_relabeled_afresh() {
    let rules = r#"[{source_labels: [code], regex: '(\d)\d\d', target_label: code_class, replacement: '${1}xx'},
                    {source_labels: [code], regex: '5..', action: drop}]"#;
    let relabeler = relabeler(&[("cluster", "c1")], rules);
    let body = |last_code: u32| {
        let mut body = String::from("# TYPE m counter\n");
        for i in 0..100 {
            let code = if i == 99 { last_code } else { 200 + i % 3 };
            body.push_str(&format!("m{{code=\"{code}\",path=\"/p/{i}\"}} {i}\n"));
        }
        body
    };
    // The first push is remembered whole; the second differs in its last
    // series only, whose plan the first push's does not give.
    let first = relabel_push(&relabeler, &body(201));
    let second = relabel_push(&relabeler, &body(503));
    assert_eq!(first[0].1.len(), 100);
    assert_eq!(second[0].1[..], first[0].1[..99]);
    assert_eq!(
        relabel_push(&relabeler, &body(404))[0].1[99],
        r#"{__name__="m",cluster="c1",code="404",code_class="4xx",job="j",path="/p/99"}"#
    );
}

#[test]
fn planned_series_come_out_as_each_series_relabeled_alone() {
    // Families with many series sharing `__name__` and codes (plans pay),
    // paths all distinct; a status code both read and overwritten.
    let mut body = String::new();
    for family in ["http_requests_total", "rpc_calls_total", "go_gc"] {
        body.push_str(&format!("# TYPE {family} counter\n"));
        for i in 0..120 {
            let code = 200 + (i % 7) * 50;
            let extra = if i % 3 == 0 { ",pod_uid=\"u\"" } else { "" };
            body.push_str(&format!(
                "{family}{{code=\"{code}\",path=\"/p/{i}\"{extra}}} {i}\n"
            ));
        }
    }
    let external = [("cluster", "c1"), ("node", "n1"), ("code", "ignored")];
    for rules in [
        // The benchmark's rules.
        r#"[{source_labels: [__name__], regex: 'go_.*|process_.*', action: drop},
            {source_labels: [__name__], regex: '.*_total', action: keep},
            {regex: pod_uid, action: labeldrop},
            {source_labels: [code], regex: '(\d)\d\d', target_label: code_class, replacement: '${1}xx'},
            {source_labels: [code], regex: '5..', action: drop}]"#,
        // Values overwritten, labels deleted, reserved scratch labels,
        // `__name__` rewritten, equality and hashing.
        r#"[{source_labels: [code], regex: '(\d)\d\d', target_label: code, replacement: '${1}00'},
            {source_labels: [__name__], target_label: __tmp_n},
            {source_labels: [__tmp_n, code], separator: '@', regex: 'rpc.*@3.*', action: drop},
            {source_labels: [__name__], regex: 'http_(.*)', target_label: __name__, replacement: 'web_${1}'},
            {source_labels: [cluster], target_label: node, regex: 'c(.*)', replacement: ''},
            {source_labels: [code], target_label: shard, modulus: 3, action: hashmod},
            {source_labels: [code], target_label: c2, action: uppercase},
            {source_labels: [c2], target_label: code, action: keepequal},
            {regex: 'pod_.*', action: labelkeep},
            ]"#,
    ] {
        // labelkeep above keeps only `pod_*`: no `__name__`, all invalid.
        if rules.contains("labelkeep") {
            let relabeler = relabeler(&external, rules);
            let key = GroupingKey::new([("job".to_string(), "j".to_string())]);
            let mut families = text::parse(body.as_bytes()).unwrap();
            validate(&mut families, &key, &Default::default()).unwrap();
            let mut converted = convert::convert(&families, &key);
            relabeler.apply(&mut converted);
            assert!(converted.series.is_empty());
            let without_labelkeep = rules.replace("{regex: 'pod_.*', action: labelkeep},", "");
            assert_push_relabels_as_each_series_alone(&external, &without_labelkeep, &body);
        } else {
            assert_push_relabels_as_each_series_alone(&external, rules, &body);
        }
    }
}

#[test]
fn what_rides_beside_a_series_follows_it_when_earlier_series_are_dropped() {
    let relabeler = relabeler(&[], "- {source_labels: [k], regex: drop, action: drop}");
    let key = GroupingKey::new([("job".to_string(), "j".to_string())]);
    let body = "# TYPE a counter\n\
                a_total{k=\"drop\"} 1 100 # {trace=\"x\"} 1\n\
                a_total{k=\"keep\"} 2 200 # {trace=\"y\"} 2\n\
                # EOF\n";
    let mut families = text::parse_openmetrics(body.as_bytes()).unwrap();
    let limits = crate::config::PushConfig {
        honor_timestamps: true,
        ..Default::default()
    };
    validate(&mut families, &key, &limits).unwrap();
    let mut converted = convert::convert(&families, &key);
    assert_eq!(converted.series.len(), 2);
    relabeler.apply(&mut converted);
    assert_eq!(converted.series.len(), 1);
    let kept = &converted.series[0];
    assert!(series_text(decode_labels(converted.series_labels(kept))).contains("keep"));
    assert_eq!(converted.timestamp(0), Some(200_000));
    let extras: Vec<_> = converted
        .extras
        .iter()
        .map(|(index, extras)| (*index, extras.exemplars[0].labels.clone()))
        .collect();
    assert_eq!(
        extras,
        [(0, vec![("trace".to_string(), "y".to_string())])],
        "the dropped series' exemplar goes with it; the kept one's follows it"
    );
}
