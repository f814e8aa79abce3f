//! Relabeling tests: a table mirroring Prometheus' own
//! `model/relabel/relabel_test.go` cases (same inputs, same outputs; the
//! table is written here, each action at least twice), the refusals of
//! `Config.Validate`, and the relabeling of converted pushes.

use super::*;
use crate::config::{ExternalLabels, RelabelConfig};
use crate::exposition::text;
use crate::push::GroupingKey;
use crate::push::validate::check as validate;

/// A rule from Prometheus' YAML form.
fn rule(yaml: &str) -> RelabelConfig {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

/// `rules` applied in order to `input`, as Prometheus' `relabel.Process`:
/// the labels left, or `None` when the series is dropped.
fn process(input: &[(&str, &str)], rules: &[&str]) -> Option<Vec<(String, String)>> {
    let compiled: Vec<Rule> = rules
        .iter()
        .map(|yaml| Rule::compile(&rule(yaml)).unwrap_or_else(|e| panic!("{yaml}: {e:?}")))
        .collect();
    let mut labels: LabelSet = input
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect();
    let mut scratch = Vec::new();
    for rule in &compiled {
        if !rule.apply(&mut labels, &mut scratch) {
            return None;
        }
    }
    Some(
        labels
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8(n.to_vec()).unwrap(),
                    String::from_utf8(v.to_vec()).unwrap(),
                )
            })
            .collect(),
    )
}

fn owned(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = labels
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    out.sort();
    out
}

/// One row: input labels, rules (YAML), expected labels or `None` (dropped).
type Case<'a> = (
    &'a [(&'a str, &'a str)],
    &'a [&'a str],
    Option<&'a [(&'a str, &'a str)]>,
);

const ABC: &[(&str, &str)] = &[("a", "foo"), ("b", "bar"), ("c", "baz")];
const PORTS: &[(&str, &str)] = &[
    ("__tmp_port", "1234"),
    ("__port1", "1234"),
    ("__port2", "5678"),
];
const SOME_NAME_VALUE: &[(&str, &str)] = &[("a", "some-name-value")];

#[test]
fn prometheus_relabel_cases() {
    let cases: &[Case] = &[
        // replace with ${1} twice in the replacement
        (
            ABC,
            &[
                "{source_labels: [a], regex: 'f(.*)', target_label: d, replacement: 'ch${1}-ch${1}'}",
            ],
            Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "choo-choo")]),
        ),
        // two replaces, the second reading what the first wrote
        (
            ABC,
            &[
                "{source_labels: [a, b], regex: 'f(.*);(.*)r', target_label: a, replacement: 'b${1}${2}m'}",
                "{source_labels: [c, a], regex: '(b).*b(.*)ba(.*)', target_label: d, replacement: '$1$2$2$3'}",
            ],
            Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz"), ("d", "boooom")]),
        ),
        // drop first: the replace after it never runs
        (
            &[("a", "foo")],
            &[
                "{source_labels: [a], regex: '.*o.*', action: drop}",
                "{source_labels: [a], regex: 'f(.*)', target_label: d, replacement: 'ch$1-ch$1'}",
            ],
            None,
        ),
        (
            &[("a", "foo"), ("b", "bar")],
            &["{source_labels: [a], regex: '.*o.*', action: drop}"],
            None,
        ),
        (
            &[("a", "abc")],
            &["{source_labels: [a], regex: '.*(b).*', target_label: d, replacement: '$1'}"],
            Some(&[("a", "abc"), ("d", "b")]),
        ),
        (
            &[("a", "foo")],
            &["{source_labels: [a], regex: no-match, action: drop}"],
            Some(&[("a", "foo")]),
        ),
        // anchored: `f|o` matches neither "foo" nor a part of it
        (
            &[("a", "foo")],
            &["{source_labels: [a], regex: 'f|o', action: drop}"],
            Some(&[("a", "foo")]),
        ),
        (
            &[("a", "foo")],
            &["{source_labels: [a], regex: no-match, action: keep}"],
            None,
        ),
        (
            &[("a", "foo")],
            &["{source_labels: [a], regex: 'f.*', action: keep}"],
            Some(&[("a", "foo")]),
        ),
        // no replacement when the regex does not match
        (
            &[("a", "boo")],
            &["{source_labels: [a], regex: f, target_label: b, replacement: bar}"],
            Some(&[("a", "boo")]),
        ),
        (
            ABC,
            &["{source_labels: [c], target_label: d, action: hashmod, modulus: 1000}"],
            Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")]),
        ),
        (
            &[("a", "foo\nbar")],
            &["{source_labels: [a], target_label: b, action: hashmod, modulus: 1000}"],
            Some(&[("a", "foo\nbar"), ("b", "734")]),
        ),
        (
            &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            &["{regex: '(b.*)', replacement: 'bar_${1}', action: labelmap}"],
            Some(&[
                ("a", "foo"),
                ("b1", "bar"),
                ("b2", "baz"),
                ("bar_b1", "bar"),
                ("bar_b2", "baz"),
            ]),
        ),
        (
            &[
                ("a", "foo"),
                ("__meta_my_bar", "aaa"),
                ("__meta_my_baz", "bbb"),
                ("__meta_other", "ccc"),
            ],
            &["{regex: '__meta_(my.*)', replacement: '${1}', action: labelmap}"],
            Some(&[
                ("a", "foo"),
                ("__meta_my_bar", "aaa"),
                ("__meta_my_baz", "bbb"),
                ("__meta_other", "ccc"),
                ("my_bar", "aaa"),
                ("my_baz", "bbb"),
            ]),
        ),
        // a templated target label
        (
            SOME_NAME_VALUE,
            &[
                "{source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${2}', target_label: '${1}'}",
            ],
            Some(&[("a", "some-name-value"), ("name", "value")]),
        ),
        // an empty replacement deletes the (absent) target
        (
            SOME_NAME_VALUE,
            &[
                "{source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${3}', target_label: '${1}'}",
            ],
            Some(SOME_NAME_VALUE),
        ),
        // a target that expands to an invalid name changes nothing
        (
            &[("a", "some-name-0")],
            &[
                "{source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${1}', target_label: '${3}'}",
                "{source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${1}', target_label: '${3}'}",
                "{source_labels: [a], regex: 'some-([^-]+)(-[^,]+)', replacement: '${1}', target_label: '${3}'}",
            ],
            Some(&[("a", "some-name-0")]),
        ),
        // a real-life service discovery tag string
        (
            &[("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar")],
            &[
                "{source_labels: [__meta_sd_tags], regex: '(?:.+,|^)path:(/[^,]+).*', replacement: '${1}', target_label: __metrics_path__}",
                "{source_labels: [__meta_sd_tags], regex: '(?:.+,|^)job:([^,]+).*', replacement: '${1}', target_label: job}",
                "{source_labels: [__meta_sd_tags], regex: '(?:.+,|^)label:([^=]+)=([^,]+).*', replacement: '${2}', target_label: '${1}'}",
            ],
            Some(&[
                ("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar"),
                ("__metrics_path__", "/secret"),
                ("job", "some-job"),
                ("foo", "bar"),
            ]),
        ),
        // prometheus/prometheus#12283: labeldrop, replace, then keep
        (
            &[
                ("__meta_kubernetes_pod_container_port_name", "foo"),
                ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
            ],
            &[
                "{regex: '^__meta_kubernetes_pod_container_port_name$', action: labeldrop}",
                "{source_labels: [__meta_kubernetes_pod_annotation_XXX_metrics_port], regex: '(.+)', replacement: metrics, target_label: __meta_kubernetes_pod_container_port_name}",
                "{source_labels: [__meta_kubernetes_pod_container_port_name], regex: '^metrics$', action: keep}",
            ],
            Some(&[
                ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
                ("__meta_kubernetes_pod_container_port_name", "metrics"),
            ]),
        ),
        (
            &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            &["{regex: '(b.*)', action: labelkeep}"],
            Some(&[("b1", "bar"), ("b2", "baz")]),
        ),
        (
            &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
            &["{regex: '(b.*)', action: labeldrop}"],
            Some(&[("a", "foo")]),
        ),
        (
            &[("foo", "bAr123Foo")],
            &[
                "{source_labels: [foo], action: uppercase, target_label: foo_uppercase}",
                "{source_labels: [foo], action: lowercase, target_label: foo_lowercase}",
            ],
            Some(&[
                ("foo", "bAr123Foo"),
                ("foo_lowercase", "bar123foo"),
                ("foo_uppercase", "BAR123FOO"),
            ]),
        ),
        (
            PORTS,
            &["{source_labels: [__tmp_port], action: keepequal, target_label: __port1}"],
            Some(PORTS),
        ),
        (
            PORTS,
            &["{source_labels: [__tmp_port], action: dropequal, target_label: __port1}"],
            None,
        ),
        (
            PORTS,
            &["{source_labels: [__tmp_port], action: dropequal, target_label: __port2}"],
            Some(PORTS),
        ),
        (
            PORTS,
            &["{source_labels: [__tmp_port], action: keepequal, target_label: __port2}"],
            None,
        ),
        // Beyond Prometheus' table, so that every action is covered twice:
        // labelkeep of literal names (the literal shortcut),
        (
            &[("__name__", "up"), ("job", "j"), ("pod", "p")],
            &["{regex: '__name__|job', action: labelkeep}"],
            Some(&[("__name__", "up"), ("job", "j")]),
        ),
        // lowercase of joined sources; uppercase of nothing deletes,
        (
            &[("a", "X"), ("b", "Y"), ("gone", "z")],
            &[
                "{source_labels: [a, b], separator: '-', action: lowercase, target_label: ab}",
                "{source_labels: [missing], action: uppercase, target_label: gone}",
            ],
            Some(&[("a", "X"), ("ab", "x-y"), ("b", "Y")]),
        ),
        // the prefix shortcut (`a.*|b.*`) matches as the regex would.
        (
            &[("a", "boo\nx")],
            &["{source_labels: [a], regex: 'f.*|bo.*', action: keep}"],
            Some(&[("a", "boo\nx")]),
        ),
        (
            &[("a", "xbo")],
            &["{source_labels: [a], regex: 'f.*|bo.*', action: keep}"],
            None,
        ),
        // `.` matches a newline (the `s` flag), and renaming a metric.
        (
            &[("__name__", "old_name"), ("a", "x\ny")],
            &[
                "{source_labels: [a], regex: 'x.y', action: keep}",
                "{source_labels: [__name__], regex: 'old_(.*)', target_label: __name__, replacement: 'new_$1'}",
            ],
            Some(&[("__name__", "new_name"), ("a", "x\ny")]),
        ),
    ];
    for (index, (input, rules, expected)) in cases.iter().enumerate() {
        let got = process(input, rules);
        assert_eq!(
            got,
            expected.map(owned),
            "case {index}: {input:?} with {rules:?}"
        );
    }
}

#[test]
fn rules_prometheus_refuses_are_refused_naming_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("{action: ''}", "action", "relabel action cannot be empty"),
        (
            "{action: replace}",
            "target_label",
            "requires 'target_label' value",
        ),
        (
            "{action: lowercase}",
            "target_label",
            "requires 'target_label' value",
        ),
        (
            "{action: lowercase, target_label: '${3}'}",
            "target_label",
            r#""${3}" is invalid 'target_label'"#,
        ),
        (
            "{source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${1}', target_label: '0${3}'}",
            "target_label",
            r#""0${3}" is invalid 'target_label'"#,
        ),
        (
            "{source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${1}', target_label: '-${3}'}",
            "target_label",
            r#""-${3}" is invalid 'target_label' for replace action"#,
        ),
        (
            "{action: hashmod, target_label: h}",
            "modulus",
            "requires non-zero modulus",
        ),
        (
            "{action: Replace_All, target_label: x}",
            "action",
            "unknown relabel action",
        ),
        (
            "{regex: '(unclosed', target_label: x}",
            "regex",
            "is not a valid regex",
        ),
        (
            "{action: keepequal, target_label: x, regex: 'a.*'}",
            "regex",
            "requires only 'source_labels' and 'target_label'",
        ),
        (
            "{action: uppercase, target_label: x, replacement: y}",
            "replacement",
            "'replacement' can not be set",
        ),
        (
            "{action: labeldrop, regex: x, source_labels: [a]}",
            "source_labels",
            "requires only 'regex'",
        ),
        (
            "{action: labelmap, regex: x, replacement: '-'}",
            "replacement",
            "is invalid 'replacement'",
        ),
    ];
    for (yaml, field, expected) in cases {
        let err = Rule::compile(&rule(yaml)).expect_err(yaml);
        assert_eq!(err.field, *field, "{yaml}: {err:?}");
        assert!(err.problem.contains(expected), "{yaml}: {err:?}");
    }
    // Valid: a templated target whose reference the regex lacks; any case
    // of the action name.
    for yaml in [
        "{source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${1}', target_label: '${3}'}",
        "{action: DROP, source_labels: [a], regex: x}",
    ] {
        Rule::compile(&rule(yaml)).unwrap_or_else(|e| panic!("{yaml}: {e:?}"));
    }
}

#[test]
fn templated_target_labels_are_checked_as_prometheus_does() {
    let cases = [
        ("-label", false),
        ("label", true),
        ("label${1}", true),
        ("${1}label", true),
        ("${1}", true),
        ("${", false),
        ("$", false),
        ("${}", false),
        ("foo${", false),
        ("$1", true),
        ("asd$2asd", true),
        ("-foo${1}bar-", false),
        ("_${1}_", true),
        ("foo${bar}foo", true),
    ];
    for (target, valid) in cases {
        let yaml = format!("{{source_labels: [a], target_label: '{target}'}}");
        assert_eq!(Rule::compile(&rule(&yaml)).is_ok(), valid, "{target:?}");
    }
}

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
                    .map_or(family.labels.start, |s| s.labels.start),
                "a family's label bytes start with its first series"
            );
            let series = converted.series[family.series.clone()]
                .iter()
                .map(|s| {
                    let labels: Vec<String> = decode_labels(converted.series_labels(s))
                        .map(|(n, v)| {
                            format!(
                                "{}={:?}",
                                String::from_utf8_lossy(n),
                                String::from_utf8_lossy(v)
                            )
                        })
                        .collect();
                    format!("{{{}}}", labels.join(","))
                })
                .collect();
            (family.name.clone(), series)
        })
        .collect()
}

use super::super::convert;

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
fn bad_settings_name_the_rule_index_and_key() {
    let config = RemoteWriteConfig {
        write_relabel_configs: serde_yaml::from_str(
            "[{source_labels: [a], action: drop}, {regex: '[z-a]', target_label: x}]",
        )
        .unwrap(),
        ..RemoteWriteConfig::default()
    };
    let err = check(&config).unwrap_err();
    assert_eq!(err.key, "remote_write.write_relabel_configs[1].regex");
    assert!(err.problem.contains("[z-a]"), "{err}");
    let config = RemoteWriteConfig {
        external_labels: ExternalLabels(vec![("__bad".into(), "v".into())]),
        ..RemoteWriteConfig::default()
    };
    assert_eq!(
        check(&config).unwrap_err().key,
        "remote_write.external_labels.__bad"
    );
}

#[test]
fn environment_references_expand_as_prometheus_expands_them() {
    let env = |name: &str| match name {
        "A" => Some("x".to_string()),
        "LONG_NAME" => Some("y".to_string()),
        _ => None,
    };
    let cases = [
        ("${A}", "x"),
        ("$A-$LONG_NAME", "x-y"),
        ("pre${A}post", "prexpost"),
        ("$$A", "$A"),
        ("${UNSET}", ""),
        ("cost: 5$", "cost: 5$"),
        ("${open", "${open"),
        ("plain", "plain"),
    ];
    for (value, expected) in cases {
        assert_eq!(expand_env(value, env), expected, "{value:?}");
    }
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
            let labels: Vec<String> = labels
                .iter()
                .map(|(n, v)| {
                    format!(
                        "{}={:?}",
                        String::from_utf8_lossy(n),
                        String::from_utf8_lossy(v)
                    )
                })
                .collect();
            Some(format!("{{{}}}", labels.join(",")))
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
