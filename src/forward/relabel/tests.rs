//! Relabeling tests: a table mirroring Prometheus' own
//! `model/relabel/relabel_test.go` cases (same inputs, same outputs; the
//! table is written here, each action at least twice), the refusals of
//! `Config.Validate` (pushes relabeled whole: `push_tests`).

use super::*;
use crate::config::{ExternalLabels, RelabelConfig};

/// A rule from Prometheus' YAML form.
pub(super) fn rule(yaml: &str) -> RelabelConfig {
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
