//! The relabeling settings as plain data, in Prometheus' own syntax:
//! `remote_write.external_labels` ([`ExternalLabels`]) and
//! `remote_write.write_relabel_configs` (a list of [`RelabelConfig`]).
//! `crate::forward::relabel` compiles them once (regexes, templates) and
//! refuses what Prometheus refuses, naming the rule's index and key.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::pairs::Pairs;

/// `remote_write.external_labels`: labels added to every forwarded series
/// that does not carry a label of the same name. Written as a table
/// (`{cluster = "eu-1"}`) or a list of `name=value` strings (as the
/// repeatable `--remote-write.external-label` gives them). Values may name
/// environment variables (`${NODE_NAME}`), expanded at start.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExternalLabels(pub Vec<(String, String)>);

impl Serialize for ExternalLabels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let map: BTreeMap<&str, &str> = self
            .0
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        map.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ExternalLabels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = match Pairs::deserialize(deserializer)? {
            Pairs::Map(map) => return Ok(Self(map.into_iter().collect())),
            Pairs::Entries(entries) => entries,
        };
        let pairs = entries
            .into_iter()
            .map(|entry| match entry.split_once('=') {
                Some((name, value)) => Ok((name.trim().to_string(), value.to_string())),
                None => Err(serde::de::Error::custom(format!(
                    "external label {entry:?} is not `name=value`"
                ))),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(pairs))
    }
}

/// The separator Prometheus joins source label values with by default.
pub const DEFAULT_SEPARATOR: &str = ";";
/// The regex Prometheus matches with by default: anything, captured.
pub const DEFAULT_REGEX: &str = "(.*)";
/// The replacement Prometheus writes by default: the first capture.
pub const DEFAULT_REPLACEMENT: &str = "$1";
/// The action Prometheus takes by default.
pub const DEFAULT_ACTION: &str = "replace";

/// One entry of `remote_write.write_relabel_configs`, field for field as
/// Prometheus' `relabel_config` (same names, same defaults). The action is
/// kept as written (any case); an unknown one is refused when the rules are
/// compiled, with the rule's index.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` into the input.
    pub source_labels: Vec<String>,
    pub separator: String,
    /// RE2 syntax, fully anchored.
    pub regex: String,
    /// For `hashmod`.
    pub modulus: u64,
    /// The label written (`replace` may use `$1`, `${name}` in it).
    pub target_label: String,
    /// The value written by `replace`, the name by `labelmap`.
    pub replacement: String,
    /// replace, keep, drop, keepequal, dropequal, hashmod, labelmap,
    /// labeldrop, labelkeep, lowercase, uppercase.
    pub action: String,
}

impl Default for RelabelConfig {
    fn default() -> Self {
        Self {
            source_labels: Vec::new(),
            separator: DEFAULT_SEPARATOR.into(),
            regex: DEFAULT_REGEX.into(),
            modulus: 0,
            target_label: String::new(),
            replacement: DEFAULT_REPLACEMENT.into(),
            action: DEFAULT_ACTION.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_labels_come_from_a_table_or_a_list() {
        let from_map: ExternalLabels =
            serde_json::from_str(r#"{"cluster": "eu-1", "node": "${NODE_NAME}"}"#).unwrap();
        assert_eq!(
            from_map.0,
            [
                ("cluster".to_string(), "eu-1".to_string()),
                ("node".to_string(), "${NODE_NAME}".to_string())
            ]
        );
        let from_list: ExternalLabels =
            serde_json::from_str(r#"["cluster=eu-1", "expr=a=b"]"#).unwrap();
        assert_eq!(from_list.0[1], ("expr".to_string(), "a=b".to_string()));
        let err = serde_json::from_str::<ExternalLabels>(r#"["cluster"]"#).unwrap_err();
        assert!(err.to_string().contains("name=value"), "{err}");
    }

    #[test]
    fn a_rule_has_prometheus_defaults() {
        let rule: RelabelConfig =
            serde_yaml::from_str("source_labels: [a]\ntarget_label: b\n").unwrap();
        assert_eq!(rule.separator, ";");
        assert_eq!(rule.regex, "(.*)");
        assert_eq!(rule.replacement, "$1");
        assert_eq!(rule.action, "replace");
        let err = serde_yaml::from_str::<RelabelConfig>("regexp: x\n").unwrap_err();
        assert!(err.to_string().contains("regexp"), "{err}");
    }
}
