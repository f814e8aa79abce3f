//! External labels and write relabeling, as Prometheus applies them to
//! what it writes: every forwarded series first gets the external labels
//! it lacks (a pushed label of the same name wins), then passes
//! `write_relabel_configs` in order ([`rule`] holds one rule's semantics).
//!
//! Contract of [`Relabeler`]:
//! - built once from `remote_write` (regexes compiled, `${VAR}` in external
//!   label values expanded from the environment); a rule Prometheus would
//!   refuse is a [`RelabelError`] naming the rule's index and key, at start
//!   and in `--check-config` (see [`check`]);
//! - [`Relabeler::apply`] rewrites a converted push in place, after the
//!   grouping labels are merged and before the series memory sees it, so
//!   stale markers end exactly the series that were written; with no
//!   external labels and no rules it returns at once;
//! - a series a rule drops is not sent (counted by rule index in
//!   `telemetry::RELABEL_DROPPED_SERIES`); a series left without a valid
//!   `__name__` or with an invalid label name, or equal to an earlier
//!   series of the same push after relabeling, is dropped too (counted in
//!   `telemetry::RELABEL_INVALID_SERIES` by reason): it could not be
//!   written, or its duplicate would make the backend refuse the request;
//! - labels starting with `__` (other than `__name__`) that rules leave
//!   behind, e.g. `__tmp_*` scratch labels, are removed, as Prometheus
//!   removes them after target relabeling: remote_write 1.0 as pushrelay
//!   writes it carries no reserved names.
//!
//! Cost (issue 15: at most +20 % forward CPU per sample with five typical
//! rules): labels are relabeled as they are encoded, without decoding them
//! into owned strings ([`labels`]); series that look the same to the
//! rules replay one [`plan`] instead of running them, and a push whose
//! labels are an earlier push's replays that push's plans without looking
//! them up (a job pushes the same series every interval); a rule's
//! regex runs once per distinct input of a push ([`memo`]); the validity
//! check and the duplicate check run only once a rule could have broken
//! what convert guarantees (valid names, distinct series).

mod decode;
mod labels;
mod md5;
mod memo;
mod plan;
mod rule;

use std::hash::{BuildHasher, Hasher};
use std::ops::Range;
use std::sync::{Mutex, PoisonError};

use decode::{decode_label_fields, decode_labels};
pub use labels::LabelSet;
use labels::Text;
use memo::Memo;
use plan::{PlanBook, Plans, PushShape};
pub use rule::{Rule, RuleProblem, is_label_name};

use super::convert::{Converted, Series};
use super::wire;
use crate::config::{KeyedProblem, RemoteWriteConfig};
use crate::hashing::{ByHash, Seeded};
use crate::push::validate::is_metric_name;
use crate::telemetry;

const NAME_LABEL: &[u8] = b"__name__";

/// A relabeling setting that cannot be used: its key (with the rule's
/// index, e.g. `remote_write.write_relabel_configs[2].regex`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct RelabelError {
    pub key: String,
    pub problem: String,
}

impl KeyedProblem for RelabelError {
    fn key(&self) -> &str {
        &self.key
    }

    fn problem(&self) -> &str {
        &self.problem
    }
}

/// Compiles the relabeling `config` describes once, so a bad rule fails at
/// start (and in `--check-config`).
pub fn check(config: &RemoteWriteConfig) -> Result<(), RelabelError> {
    Relabeler::new(config, |name| std::env::var(name).ok()).map(drop)
}

/// What a series became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Kept,
    /// Dropped by the rule at this index.
    DroppedBy(usize),
    /// Left without a valid metric name or with an invalid label name.
    Invalid,
}

/// One external label, with its `TimeSeries.labels` entry.
#[derive(Debug)]
struct ExternalLabel {
    name: Vec<u8>,
    value: Vec<u8>,
    encoded: Vec<u8>,
}

/// The compiled external labels and rules.
#[derive(Debug, Default)]
pub struct Relabeler {
    /// Sorted by name, values expanded, empty values left out.
    external: Vec<ExternalLabel>,
    rules: Vec<Rule>,
    /// The names whose values decide what the rules do (with `__name__`),
    /// or `None` when a rule makes names out of data and series cannot
    /// share a [`plan`].
    plan_key_values: Option<Vec<Vec<u8>>>,
    /// The plans of earlier pushes: one book per push being relabeled at
    /// once (at most one per thread), taken for the push and put back, so
    /// that pushes relabeled side by side each find plans.
    plan_books: Mutex<Vec<PlanBook>>,
    /// Hashes pushes' labels into [`PushShape`]s: one seed for the
    /// relabeler's life, so that a push hashes the same every time.
    shape_hasher: Seeded,
}

/// What relabeling one push keeps between its series: each rule's memo and
/// the buffers, so a series allocates nothing once they have grown.
struct Scratch<'a> {
    labels: LabelSet<'a>,
    input: Vec<u8>,
    memos: Vec<Memo>,
}

/// Counts of one push, added to the metrics once.
struct Tally {
    dropped_by_rule: Vec<u64>,
    invalid: u64,
    duplicate: u64,
}

impl Tally {
    fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Kept => {}
            Outcome::DroppedBy(rule) => self.dropped_by_rule[rule] += 1,
            Outcome::Invalid => self.invalid += 1,
        }
    }

    fn publish(&self) {
        for (rule, &count) in self.dropped_by_rule.iter().enumerate() {
            if count > 0 {
                metrics::counter!(telemetry::RELABEL_DROPPED_SERIES, "rule" => rule.to_string())
                    .increment(count);
            }
        }
        for (reason, count) in [("invalid", self.invalid), ("duplicate", self.duplicate)] {
            if count > 0 {
                metrics::counter!(telemetry::RELABEL_INVALID_SERIES, "reason" => reason)
                    .increment(count);
            }
        }
    }
}

impl Relabeler {
    /// Compiles `config.external_labels` (expanding `${VAR}` with `env`)
    /// and `config.write_relabel_configs`.
    pub fn new(
        config: &RemoteWriteConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, RelabelError> {
        let mut external = Vec::new();
        for (name, value) in &config.external_labels.0 {
            if !is_label_name(name.as_bytes()) || name.starts_with("__") {
                return Err(RelabelError {
                    key: format!("remote_write.external_labels.{name}"),
                    problem: format!(
                        "{name:?} is not a label name that can be written \
                         ([a-zA-Z_][a-zA-Z0-9_]* without a `__` prefix)"
                    ),
                });
            }
            let value = expand_env(value, &env);
            // Prometheus leaves out an external label whose value is empty.
            if !value.is_empty() {
                external.push((name.as_bytes().to_vec(), value.into_bytes()));
            }
        }
        external.sort();
        external.dedup_by(|a, b| a.0 == b.0);
        let external = external
            .into_iter()
            .map(|(name, value)| {
                let mut encoded = Vec::new();
                wire::put_label(&mut encoded, &name, &value);
                ExternalLabel {
                    name,
                    value,
                    encoded,
                }
            })
            .collect();
        let rules = config
            .write_relabel_configs
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                Rule::compile(rule).map_err(|p| RelabelError {
                    key: format!("remote_write.write_relabel_configs[{index}].{}", p.field),
                    problem: p.problem,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let plan_key_values = rules
            .iter()
            .map(Rule::names_used)
            .collect::<Option<Vec<_>>>()
            .map(|used| {
                let mut names: Vec<Vec<u8>> =
                    used.into_iter().flatten().map(<[u8]>::to_vec).collect();
                names.push(NAME_LABEL.to_vec());
                names.sort();
                names.dedup();
                names
            });
        Ok(Self {
            external,
            rules,
            plan_key_values,
            plan_books: Mutex::default(),
            shape_hasher: Seeded::default(),
        })
    }

    /// Whether relabeling leaves every series as it is.
    pub fn is_noop(&self) -> bool {
        self.external.is_empty() && self.rules.is_empty()
    }

    /// Relabels one encoded series (e.g. `push_time_seconds`): its new
    /// encoding, or `None` when it is dropped (and counted).
    pub fn relabel_encoded(&self, encoded: Vec<u8>) -> Option<Vec<u8>> {
        if self.is_noop() {
            return Some(encoded);
        }
        let mut tally = self.tally();
        let mut out = Vec::with_capacity(encoded.len() + 32);
        let mut scratch = self.scratch();
        let outcome = self.relabel_labels(&encoded, &mut scratch);
        tally.record(outcome);
        tally.publish();
        (outcome == Outcome::Kept).then(|| {
            scratch.labels.encode(&mut out);
            out
        })
    }

    /// Rewrites every series of `converted` (see the module docs); series
    /// ranges of families stay contiguous.
    pub fn apply(&self, converted: &mut Converted) {
        if self.is_noop() {
            return;
        }
        let old_labels = std::mem::take(&mut converted.labels);
        let old_series = std::mem::take(&mut converted.series);
        let external_bytes: usize = self.external.iter().map(|e| e.encoded.len()).sum();
        // Room for the external labels and about a label more per series
        // (rules add labels), so the buffer is not copied as it grows.
        let mut labels_out = Vec::with_capacity(
            old_labels.len() + old_labels.len() / 4 + old_series.len() * external_bytes,
        );
        let mut series_out: Vec<Series> = Vec::with_capacity(old_series.len());
        let mut tally = self.tally();
        let mut scratch = self.scratch();
        // Two series of a push can only become one when a rule changed or
        // removed a label one of them had; from the first such series on,
        // every series written is looked up among those before it.
        let mut seen: Option<ByHash<usize>> = None;
        let hasher = Seeded::default();
        let shape = self
            .plan_key_values
            .is_some()
            .then(|| push_shape(&self.shape_hasher, &old_labels, &old_series));
        let book = match shape {
            Some(_) => self.plan_books().pop().unwrap_or_default(),
            None => PlanBook::default(),
        };
        let mut plans = Plans::new(book, shape);
        // What rides beside a series (a pushed timestamp, what 2.0 adds)
        // goes where the series goes.
        let mut extras_in = std::mem::take(&mut converted.extras).into_iter().peekable();
        let mut extras_out = Vec::with_capacity(extras_in.len());
        let mut timestamps_in = std::mem::take(&mut converted.timestamps)
            .into_iter()
            .peekable();
        let mut timestamps_out = Vec::with_capacity(timestamps_in.len());
        // Rules that add labels can take a push past what a series
        // addresses.
        let mut too_large = false;
        for family in &mut converted.families {
            let family_start = (labels_out.len(), series_out.len());
            for (old_index, series) in old_series
                .iter()
                .enumerate()
                .take(family.series.end)
                .skip(family.series.start)
            {
                while extras_in.next_if(|(index, _)| *index < old_index).is_some() {}
                let extras = extras_in.next_if(|(index, _)| *index == old_index);
                while timestamps_in
                    .next_if(|(index, _)| *index < old_index)
                    .is_some()
                {}
                let timestamp = timestamps_in.next_if(|(index, _)| *index == old_index);
                let start = labels_out.len();
                let encoded = &old_labels[series.labels()];
                let (outcome, lossy) =
                    self.relabel_planned(encoded, &mut plans, &mut scratch, &mut labels_out);
                tally.record(outcome);
                if outcome != Outcome::Kept {
                    continue;
                }
                let written: Range<usize> = start..labels_out.len();
                if lossy && seen.is_none() {
                    let mut earlier = ByHash::default();
                    for (index, series) in series_out.iter().enumerate() {
                        earlier.insert(hasher.hash_one(&labels_out[series.labels()]), index);
                    }
                    seen = Some(earlier);
                }
                if let Some(seen) = &mut seen {
                    let hash = hasher.hash_one(&labels_out[written.clone()]);
                    if let Some(&earlier) = seen.get(&hash) {
                        let earlier: &Series = &series_out[earlier];
                        if labels_out[earlier.labels()] == labels_out[written.clone()] {
                            tally.duplicate += 1;
                            labels_out.truncate(start);
                            continue;
                        }
                    }
                    seen.insert(hash, series_out.len());
                }
                if let Some((_, extras)) = extras {
                    extras_out.push((series_out.len(), extras));
                }
                if let Some((_, timestamp)) = timestamp {
                    timestamps_out.push((series_out.len(), timestamp));
                }
                match Series::new(written, series.value()) {
                    Some(series) => series_out.push(series),
                    None => too_large = true,
                }
            }
            family.labels = family_start.0..labels_out.len();
            family.series = family_start.1..series_out.len();
        }
        converted.labels = labels_out;
        converted.series = series_out;
        converted.extras = extras_out;
        converted.timestamps = timestamps_out;
        converted.too_large |= too_large;
        tally.publish();
        if shape.is_some() {
            let book = plans.into_book();
            self.plan_books().push(book);
        }
    }

    /// The books of plans not in use.
    fn plan_books(&self) -> std::sync::MutexGuard<'_, Vec<PlanBook>> {
        // A book is whole whenever it is in the list: a panic elsewhere
        // while the lock was held leaves nothing half done.
        self.plan_books
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn tally(&self) -> Tally {
        Tally {
            dropped_by_rule: vec![0; self.rules.len()],
            invalid: 0,
            duplicate: 0,
        }
    }

    fn scratch(&self) -> Scratch<'_> {
        Scratch {
            labels: LabelSet::default(),
            input: Vec::new(),
            memos: self.rules.iter().map(|_| Memo::default()).collect(),
        }
    }

    /// Relabels the series `encoded` as the plan of series that look the
    /// same to the rules says, or runs the rules (and plans): its outcome,
    /// whether a label it had was changed or removed, and its labels
    /// appended to `out` when it is kept.
    fn relabel_planned<'a>(
        &'a self,
        encoded: &'a [u8],
        plans: &mut Plans<'a>,
        scratch: &mut Scratch<'a>,
        out: &mut Vec<u8>,
    ) -> (Outcome, bool) {
        let planning = match &self.plan_key_values {
            Some(names) if plans.enabled() => {
                // The first byte first: most names differ there, and a
                // slice comparison of equal lengths calls memcmp.
                let read = |name: &[u8]| {
                    names
                        .iter()
                        .any(|n| n.first() == name.first() && n.as_slice() == name)
                };
                if let Some(plan) = plans.find(decode_label_fields(encoded), read) {
                    if plan.outcome == Outcome::Kept {
                        plans.replay(&plan, out);
                    }
                    return (plan.outcome, plan.lossy);
                }
                plans.enabled()
            }
            _ => false,
        };
        let outcome = self.relabel_labels(encoded, scratch);
        if outcome == Outcome::Kept {
            scratch.labels.encode(out);
        }
        if planning && scratch.labels.decoded_sorted() {
            plans.remember(outcome, &scratch.labels);
        }
        (outcome, scratch.labels.is_lossy())
    }

    /// Decodes `encoded` (labels of a converted push: sorted, valid) into
    /// `scratch.labels` and relabels them.
    fn relabel_labels<'a>(&'a self, encoded: &'a [u8], scratch: &mut Scratch<'a>) -> Outcome {
        let labels = &mut scratch.labels;
        self.decode_with_external(encoded, labels);
        for (index, (rule, memo)) in self.rules.iter().zip(&mut scratch.memos).enumerate() {
            if !rule.apply_remembering(labels, &mut scratch.input, memo) {
                return Outcome::DroppedBy(index);
            }
        }
        // Decoded labels are valid: only what a rule wrote may not be.
        if labels.needs_check() {
            labels.retain_names(|name| name == NAME_LABEL || !name.starts_with(b"__"));
            let name_ok = std::str::from_utf8(labels.get(NAME_LABEL)).is_ok_and(is_metric_name);
            if !name_ok || !labels.names_are_valid() {
                return Outcome::Invalid;
            }
        }
        Outcome::Kept
    }

    /// Fills `labels` with the labels of `encoded` and the external labels
    /// it lacks, merging the two sorted lists in one pass.
    fn decode_with_external<'a>(&'a self, encoded: &'a [u8], labels: &mut LabelSet<'a>) {
        labels.clear_for_valid();
        let mut external = self.external.iter().peekable();
        let mut sorted = true;
        for (name, value, field) in decode_label_fields(encoded) {
            while let Some(e) = external.next_if(|e| e.name.as_slice() < name) {
                sorted &= labels.push_decoded(&e.name, &e.value, &e.encoded);
            }
            // A pushed label of the same name wins.
            external.next_if(|e| e.name.as_slice() == name);
            sorted &= labels.push_decoded(name, value, field);
        }
        for e in external {
            sorted &= labels.push_decoded(&e.name, &e.value, &e.encoded);
        }
        if !sorted {
            self.decode_unsorted(encoded, labels);
        }
    }

    /// [`Relabeler::decode_with_external`] for labels that do not come
    /// sorted: one insertion each.
    fn decode_unsorted<'a>(&'a self, encoded: &'a [u8], labels: &mut LabelSet<'a>) {
        labels.clear_for_valid();
        labels.mark_decoded_unsorted();
        for (name, value) in decode_labels(encoded) {
            labels.set(Text::Borrowed(name), Text::Borrowed(value));
        }
        for e in &self.external {
            if labels.get(&e.name).is_empty() {
                labels.set(Text::Borrowed(&e.name), Text::Borrowed(&e.value));
            }
        }
    }
}

/// What identifies the labels of a converted push: its encoded labels and
/// where each series' labels are, hashed, and their sizes.
fn push_shape(hasher: &Seeded, labels: &[u8], series: &[Series]) -> PushShape {
    let mut state = hasher.build_hasher();
    state.write(labels);
    for series in series {
        let labels = series.labels();
        state.write_usize(labels.start);
        state.write_usize(labels.end);
    }
    PushShape {
        hash: state.finish(),
        label_bytes: labels.len(),
        series: series.len(),
    }
}

/// `value` with `$VAR` and `${VAR}` replaced by the environment's values
/// (empty when unset) and `$$` by `$`, as Prometheus expands external
/// labels.
pub fn expand_env(value: &str, env: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(braced) = rest.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => {
                    out.push_str(&env(&braced[..end]).unwrap_or_default());
                    rest = &braced[end + 1..];
                }
                None => {
                    out.push_str("${");
                    rest = braced;
                }
            }
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if end == 0 {
                out.push('$');
            } else {
                out.push_str(&env(&rest[..end]).unwrap_or_default());
            }
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod push_tests;
#[cfg(test)]
mod tests;
