//! One compiled `relabel_config`, applied to a [`LabelSet`] with
//! Prometheus' semantics (`model/relabel/relabel.go`): the source label
//! values joined by the separator are the input; regexes are fully
//! anchored; setting a label to an empty value deletes it; `$1`, `${name}`
//! expand as Go's `Regexp.Expand` does (the `regex` crate's `expand` has
//! the same rules).
//!
//! Compiling refuses exactly what Prometheus' `Config.Validate` refuses,
//! naming the field at fault.

use std::sync::LazyLock;

use regex::bytes::Regex;

use super::labels::{LabelSet, Text};
use super::md5;
use super::memo::{Memo, Remembered, WrittenLabel};
use crate::config::RelabelConfig;
use crate::config::relabel::{DEFAULT_REGEX, DEFAULT_REPLACEMENT, DEFAULT_SEPARATOR};

/// Prometheus' `relabelTarget`: a label name in which `$1`, `$name`,
/// `${name}` may stand for parts (ASCII word characters, as Go's `\w`).
static TEMPLATED_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{[0-9A-Za-z_]+\}|[0-9A-Za-z_]+))+[0-9A-Za-z_]*)+$")
        .expect("the templated label name pattern compiles")
});

/// A label name as remote_write 1.0 and Prometheus' `LabelName.IsValid`
/// accept it.
pub fn is_label_name(name: &[u8]) -> bool {
    match name.split_first() {
        Some((first, rest)) => {
            (first.is_ascii_alphabetic() || *first == b'_')
                && rest.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        }
        None => false,
    }
}

/// A fully anchored regex, with a shortcut for the common patterns that
/// need no regex engine to test.
#[derive(Debug)]
struct Pattern {
    regex: Regex,
    shortcut: Shortcut,
}

#[derive(Debug)]
enum Shortcut {
    /// `(.*)`: matches every input.
    Everything,
    /// `a|b|c` without regex syntax: matches exactly one of these.
    Literals(Vec<Vec<u8>>),
    /// `a.*|b.*` with literal `a`, `b`: matches what starts with one of
    /// these (`.` matches anything under the `s` flag).
    Prefixes(Vec<Vec<u8>>),
    None,
}

impl Pattern {
    fn compile(pattern: &str) -> Result<Self, regex::Error> {
        // As Prometheus anchors it; `s` lets `.` match a newline too.
        let regex = Regex::new(&format!("^(?s:{pattern})$"))?;
        let is_literal = |part: &str| regex::escape(part) == part;
        let prefixes: Option<Vec<Vec<u8>>> = pattern
            .split('|')
            .map(|part| {
                part.strip_suffix(".*")
                    .filter(|prefix| is_literal(prefix))
                    .map(|prefix| prefix.as_bytes().to_vec())
            })
            .collect();
        let shortcut = if pattern == DEFAULT_REGEX {
            Shortcut::Everything
        } else if pattern.split('|').all(is_literal) {
            Shortcut::Literals(pattern.split('|').map(|p| p.as_bytes().to_vec()).collect())
        } else if let Some(prefixes) = prefixes {
            Shortcut::Prefixes(prefixes)
        } else {
            Shortcut::None
        };
        Ok(Self { regex, shortcut })
    }

    fn is_match(&self, input: &[u8]) -> bool {
        match &self.shortcut {
            Shortcut::Everything => true,
            Shortcut::Literals(literals) => literals.iter().any(|l| l == input),
            Shortcut::Prefixes(prefixes) => prefixes.iter().any(|p| input.starts_with(p)),
            Shortcut::None => self.regex.is_match(input),
        }
    }

    /// Whether `input` matches, remembered in `memo` when the regex
    /// engine must run.
    fn is_match_remembered(&self, input: &[u8], memo: &mut Memo) -> bool {
        match self.shortcut {
            Shortcut::None => matches!(
                *memo.get_or(input, |input| Remembered::Matched(
                    self.regex.is_match(input)
                )),
                Remembered::Matched(true)
            ),
            _ => self.is_match(input),
        }
    }

    /// `template` expanded with the captures of matching `input`, or
    /// `None` when it does not match.
    fn expand(&self, input: &[u8], template: &[u8]) -> Option<Box<[u8]>> {
        let captures = self.regex.captures(input)?;
        let mut out = Vec::new();
        captures.expand(template, &mut out);
        Some(out.into_boxed_slice())
    }
}

/// What a rule does, with the fields that action uses.
#[derive(Debug)]
enum Action {
    Replace {
        target: Vec<u8>,
        /// Whether `target` holds `$` references to expand.
        templated_target: bool,
        replacement: Vec<u8>,
    },
    Keep,
    Drop,
    KeepEqual(Vec<u8>),
    DropEqual(Vec<u8>),
    HashMod {
        target: Vec<u8>,
        modulus: u64,
    },
    LabelMap(Vec<u8>),
    LabelDrop,
    LabelKeep,
    Lowercase(Vec<u8>),
    Uppercase(Vec<u8>),
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    source_labels: Vec<Vec<u8>>,
    separator: Vec<u8>,
    pattern: Pattern,
    action: Action,
}

/// A rule Prometheus would refuse: the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    pub field: &'static str,
    pub problem: String,
}

fn problem(field: &'static str, problem: impl Into<String>) -> RuleProblem {
    RuleProblem {
        field,
        problem: problem.into(),
    }
}

impl Rule {
    /// Compiles `config`, refusing it as Prometheus' `Config.Validate`
    /// does.
    pub fn compile(config: &RelabelConfig) -> Result<Self, RuleProblem> {
        let action = config.action.to_ascii_lowercase();
        let target = &config.target_label;
        let target_is_name = is_label_name(target.as_bytes());
        let default_replacement = config.replacement == DEFAULT_REPLACEMENT;
        let needs_target = matches!(
            action.as_str(),
            "replace" | "hashmod" | "lowercase" | "uppercase" | "keepequal" | "dropequal"
        );
        if action.is_empty() {
            return Err(problem("action", "relabel action cannot be empty"));
        }
        if action == "hashmod" && config.modulus == 0 {
            return Err(problem(
                "modulus",
                "relabel configuration for hashmod requires non-zero modulus",
            ));
        }
        if needs_target && target.is_empty() {
            return Err(problem(
                "target_label",
                format!("relabel configuration for {action} action requires 'target_label' value"),
            ));
        }
        let templated_target = target.contains('$');
        let target_ok = match action.as_str() {
            "replace" if templated_target => TEMPLATED_NAME.is_match(target.as_bytes()),
            "replace" | "hashmod" | "lowercase" | "uppercase" | "keepequal" | "dropequal" => {
                target_is_name
            }
            _ => true,
        };
        if !target_ok {
            return Err(problem(
                "target_label",
                format!("{target:?} is invalid 'target_label' for {action} action"),
            ));
        }
        let equal = matches!(action.as_str(), "keepequal" | "dropequal");
        if (equal || matches!(action.as_str(), "lowercase" | "uppercase")) && !default_replacement {
            return Err(problem(
                "replacement",
                format!("'replacement' can not be set for {action} action"),
            ));
        }
        if action == "labelmap" && !TEMPLATED_NAME.is_match(config.replacement.as_bytes()) {
            return Err(problem(
                "replacement",
                format!(
                    "{:?} is invalid 'replacement' for {action} action",
                    config.replacement
                ),
            ));
        }
        if equal {
            let extra = [
                ("regex", config.regex != DEFAULT_REGEX),
                ("modulus", config.modulus != 0),
                ("separator", config.separator != DEFAULT_SEPARATOR),
            ];
            if let Some((field, _)) = extra.iter().find(|(_, set)| *set) {
                return Err(problem(
                    field,
                    format!(
                        "{action} action requires only 'source_labels' and 'target_label', and no other fields"
                    ),
                ));
            }
        }
        if matches!(action.as_str(), "labeldrop" | "labelkeep") {
            let extra = [
                ("source_labels", !config.source_labels.is_empty()),
                ("target_label", !target.is_empty()),
                ("modulus", config.modulus != 0),
                ("separator", config.separator != DEFAULT_SEPARATOR),
                ("replacement", !default_replacement),
            ];
            if let Some((field, _)) = extra.iter().find(|(_, set)| *set) {
                return Err(problem(
                    field,
                    format!("{action} action requires only 'regex', and no other fields"),
                ));
            }
        }
        let pattern = Pattern::compile(&config.regex).map_err(|e| {
            problem(
                "regex",
                format!("{:?} is not a valid regex: {e}", config.regex),
            )
        })?;
        let target = target.as_bytes().to_vec();
        let action = match action.as_str() {
            "replace" => Action::Replace {
                target,
                templated_target,
                replacement: config.replacement.as_bytes().to_vec(),
            },
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual(target),
            "dropequal" => Action::DropEqual(target),
            "hashmod" => Action::HashMod {
                target,
                modulus: config.modulus,
            },
            "labelmap" => Action::LabelMap(config.replacement.as_bytes().to_vec()),
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "lowercase" => Action::Lowercase(target),
            "uppercase" => Action::Uppercase(target),
            _ => {
                return Err(problem(
                    "action",
                    format!(
                        "unknown relabel action {:?} (expected replace, keep, drop, keepequal, \
                         dropequal, hashmod, labelmap, labeldrop, labelkeep, lowercase or uppercase)",
                        config.action
                    ),
                ));
            }
        };
        Ok(Self {
            source_labels: config
                .source_labels
                .iter()
                .map(|l| l.as_bytes().to_vec())
                .collect(),
            separator: config.separator.as_bytes().to_vec(),
            pattern,
            action,
        })
    }

    /// The label names whose values the rule reads or writes, or `None`
    /// when it makes names out of data (labelmap, a templated target), so
    /// that what it does is not a function of these values and the names.
    pub fn names_used(&self) -> Option<Vec<&[u8]>> {
        let mut names: Vec<&[u8]> = self.source_labels.iter().map(Vec::as_slice).collect();
        match &self.action {
            Action::Replace {
                templated_target: true,
                ..
            }
            | Action::LabelMap(_) => return None,
            Action::Replace { target, .. }
            | Action::KeepEqual(target)
            | Action::DropEqual(target)
            | Action::HashMod { target, .. }
            | Action::Lowercase(target)
            | Action::Uppercase(target) => names.push(target),
            Action::Keep | Action::Drop | Action::LabelDrop | Action::LabelKeep => {}
        }
        Some(names)
    }

    /// Applies the rule to `labels`; `false` when the series is dropped.
    /// `input` is scratch space for the joined source values.
    pub fn apply<'a>(&'a self, labels: &mut LabelSet<'a>, input: &mut Vec<u8>) -> bool {
        self.apply_remembering(labels, input, &mut Memo::default())
    }

    /// [`Rule::apply`], with what the rule computed for earlier series of
    /// the push in `memo`.
    pub fn apply_remembering<'a>(
        &'a self,
        labels: &mut LabelSet<'a>,
        input: &mut Vec<u8>,
        memo: &mut Memo,
    ) -> bool {
        input.clear();
        for (i, name) in self.source_labels.iter().enumerate() {
            if i > 0 {
                input.extend_from_slice(&self.separator);
            }
            input.extend_from_slice(labels.get(name));
        }
        let input = input.as_slice();
        match &self.action {
            Action::Drop => return !self.pattern.is_match_remembered(input, memo),
            Action::Keep => return self.pattern.is_match_remembered(input, memo),
            Action::DropEqual(target) => return labels.get(target) != input,
            Action::KeepEqual(target) => return labels.get(target) == input,
            Action::Replace {
                target,
                templated_target: true,
                replacement,
            } => {
                let remembered = memo.get_or(input, |input| {
                    Remembered::Named(self.replace_templated(input, target, replacement))
                });
                if let Remembered::Named(Some((name, value))) = &*remembered {
                    let name = labels.write(name);
                    let value = labels.write(value);
                    labels.set(name, value);
                }
            }
            Action::Replace {
                target,
                templated_target: false,
                replacement,
            } => {
                let remembered = memo.get_or(input, |input| {
                    Remembered::Value(self.pattern.expand(input, replacement))
                });
                if let Remembered::Value(Some(value)) = &*remembered {
                    let value = labels.write(value);
                    labels.set(Text::Borrowed(target), value);
                }
            }
            Action::Lowercase(target) | Action::Uppercase(target) => {
                let lower = matches!(self.action, Action::Lowercase(_));
                let remembered = memo.get_or(input, |input| {
                    let text = String::from_utf8_lossy(input);
                    let cased = if lower {
                        text.to_lowercase()
                    } else {
                        text.to_uppercase()
                    };
                    Remembered::Value(Some(cased.into_bytes().into_boxed_slice()))
                });
                if let Remembered::Value(Some(value)) = &*remembered {
                    let value = labels.write(value);
                    labels.set(Text::Borrowed(target), value);
                }
            }
            Action::HashMod { target, modulus } => {
                let remembered = memo.get_or(input, |input| {
                    let sum = md5::digest(input);
                    let mut low = [0u8; 8];
                    // The last 8 bytes, big-endian, as Prometheus reads them.
                    low.copy_from_slice(&sum[8..]);
                    let bucket = u64::from_be_bytes(low) % modulus;
                    Remembered::Value(Some(bucket.to_string().into_bytes().into_boxed_slice()))
                });
                if let Remembered::Value(Some(value)) = &*remembered {
                    let value = labels.write(value);
                    labels.set(Text::Borrowed(target), value);
                }
            }
            Action::LabelMap(replacement) => {
                for (name, value) in labels.entries_snapshot() {
                    let remembered = memo.get_or(labels.text(&name), |name| {
                        Remembered::Value(self.pattern.expand(name, replacement))
                    });
                    if let Remembered::Value(Some(mapped)) = &*remembered {
                        let mapped = labels.write(mapped);
                        labels.set_unchecked_name(mapped, value);
                    }
                }
            }
            Action::LabelDrop => {
                labels.retain_names(|name| !self.pattern.is_match_remembered(name, memo))
            }
            Action::LabelKeep => {
                labels.retain_names(|name| self.pattern.is_match_remembered(name, memo))
            }
        }
        true
    }

    /// A replace with a templated target: the name and value it writes,
    /// `None` when the regex does not match `input` or the name is not a
    /// valid label name (Prometheus then leaves the labels as they are).
    fn replace_templated(
        &self,
        input: &[u8],
        target: &[u8],
        replacement: &[u8],
    ) -> Option<WrittenLabel> {
        let value = self.pattern.expand(input, replacement)?;
        let name = self.pattern.expand(input, target)?;
        is_label_name(&name).then_some((name, value))
    }
}
