//! The push-time consistency check, as the Pushgateway runs it, without
//! re-gathering the store.
//!
//! The Pushgateway applies a push to a copy of its store and gathers
//! everything (O(stored series) per push). Here the same errors are found
//! through an [`Index`] kept next to the store: family name → type and the
//! number of groups holding it, series signature → owning groups. A check
//! costs O(pushed series); the index is updated in O(changed series).
//!
//! Errors found (messages worded as client_golang's gatherer words them):
//! a metric whose value does not match its family type, a type clash with
//! another group or with pushrelay's own metrics, invalid or reserved label
//! names, a series already present in another group or twice in one push,
//! and `_count`/`_sum`/`_bucket` collisions with a summary or histogram.
//! [`full_check`] gathers everything instead; the scrape uses it when the
//! check is disabled, so that inconsistent data fails the scrape as in the
//! Pushgateway.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use super::stored::pair_bytes;
use crate::proto::client::{LabelPair, Metric, MetricFamily, MetricType};

/// Prefix of every 400 the check produces.
pub const REJECT_PREFIX: &str =
    "pushed metrics are invalid or inconsistent with existing metrics: ";

/// The per-process random seed of series signatures: label values chosen
/// by a pusher cannot be tuned to collide.
static SIGNATURE_SEED: OnceLock<foldhash::quality::RandomState> = OnceLock::new();

/// A 64-bit signature of one series (family name + all label pairs, as
/// bytes: [`crate::cache::stored::pair_bytes`] and
/// [`crate::cache::stored::Labels`] give the same pairs for one series).
pub fn series_signature<'a>(
    name: &str,
    labels: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> u64 {
    let mut hasher = SIGNATURE_SEED.get_or_init(Default::default).build_hasher();
    hasher.write(name.as_bytes());
    hasher.write_usize(name.len());
    // A hit is always confirmed by comparing labels: the encoding need not
    // be collision-free, only cheap (both lengths in one word).
    for (label, value) in labels {
        hasher.write(label);
        hasher.write(value);
        hasher.write_u64(((label.len() as u64) << 32) ^ value.len() as u64);
    }
    hasher.finish()
}

/// The signature of a series given as label pairs.
pub fn signature_of<'a, L: Borrow<LabelPair> + 'a>(
    name: &str,
    labels: impl IntoIterator<Item = &'a L>,
) -> u64 {
    series_signature(name, labels.into_iter().map(|l| pair_bytes(l.borrow())))
}

/// A `Hasher` for maps keyed by series signatures: they are already
/// uniformly distributed, so the key is its own hash.
#[derive(Clone, Copy, Default)]
pub struct SignatureHasher(u64);

impl Hasher for SignatureHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map keyed by series signature.
pub type BySignature<V> = HashMap<u64, V, BuildHasherDefault<SignatureHasher>>;

/// Whether two label lists are the same pairs in the same order.
pub fn same_labels<A: Borrow<LabelPair>, B: Borrow<LabelPair>>(a: &[A], b: &[B]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            let (x, y) = (x.borrow(), y.borrow());
            x.name() == y.name() && x.value() == y.value()
        })
}

/// Go's `MetricType.String()`: `COUNTER`, `GAUGE`, ...
pub fn type_name(kind: i32) -> &'static str {
    MetricType::try_from(kind).map_or("UNKNOWN", |t| t.as_str_name())
}

/// The type of a family; an absent type is COUNTER (the proto default).
pub fn family_type(family: &MetricFamily) -> i32 {
    family.r#type.unwrap_or(MetricType::Counter as i32)
}

/// A legacy Prometheus label name that is not reserved (`__` prefix).
pub fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.starts_with("__")
}

/// A short rendering of a metric for error messages, in the spirit of Go's
/// protobuf text (`label:<name:"a" value:"1" > gauge:<value:1 > `). Pushers
/// must not parse it; the Pushgateway's own rendering varies by version.
pub fn describe_metric(metric: &Metric) -> String {
    describe_series(metric, &metric.label)
}

/// [`describe_metric`] of `metric` with the labels `labels` in place of its
/// own.
pub fn describe_series<L: Borrow<LabelPair>>(metric: &Metric, labels: &[L]) -> String {
    let mut out = String::new();
    for label in labels {
        let label = label.borrow();
        out.push_str(&format!(
            "label:<name:{:?} value:{:?} > ",
            label.name(),
            label.value()
        ));
    }
    let value = |v: Option<f64>| crate::exposition::gofloat::format(v.unwrap_or(0.0));
    if let Some(g) = &metric.gauge {
        out.push_str(&format!("gauge:<value:{} > ", value(g.value)));
    }
    if let Some(c) = &metric.counter {
        out.push_str(&format!("counter:<value:{} > ", value(c.value)));
    }
    if let Some(u) = &metric.untyped {
        out.push_str(&format!("untyped:<value:{} > ", value(u.value)));
    }
    if let Some(s) = &metric.summary {
        out.push_str(&format!(
            "summary:<sample_count:{} sample_sum:{} > ",
            s.sample_count(),
            value(s.sample_sum)
        ));
    }
    if let Some(h) = &metric.histogram {
        out.push_str(&format!(
            "histogram:<sample_count:{} sample_sum:{} > ",
            h.sample_count(),
            value(h.sample_sum)
        ));
    }
    out
}

/// Joins gather errors as Go's multi-error does.
pub fn join_errors(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => {
            let mut out = format!("{} error(s) occurred:", many.len());
            for e in many {
                out.push_str("\n* ");
                out.push_str(e);
            }
            out
        }
    }
}

/// The checks that concern one metric alone: its value field matches the
/// family type, its label names are valid, unique, and not `quantile`/`le`
/// where those are generated.
pub fn check_metric(name: &str, kind: i32, metric: &Metric, errors: &mut Vec<String>) {
    check_series(name, kind, metric, &metric.label, errors);
}

/// [`check_metric`] of `metric` with the labels `labels` in place of its own.
pub fn check_series<L: Borrow<LabelPair>>(
    name: &str,
    kind: i32,
    metric: &Metric,
    labels: &[L],
    errors: &mut Vec<String>,
) {
    let matches = match MetricType::try_from(kind) {
        Ok(MetricType::Counter) => metric.counter.is_some(),
        Ok(MetricType::Gauge) => metric.gauge.is_some(),
        Ok(MetricType::Untyped) => metric.untyped.is_some(),
        Ok(MetricType::Summary) => metric.summary.is_some(),
        Ok(MetricType::Histogram | MetricType::GaugeHistogram) => metric.histogram.is_some(),
        Err(_) => false,
    };
    if !matches {
        errors.push(format!(
            "collected metric {name:?} {{ {}}} is not a {}",
            describe_series(metric, labels),
            type_name(kind)
        ));
        return;
    }
    let mut previous: Option<&str> = None;
    for label in labels {
        let label_name = label.borrow().name();
        if !valid_label_name(label_name) {
            errors.push(format!(
                "collected metric {name:?} {{ {}}} has a label with an invalid name: {label_name}",
                describe_series(metric, labels)
            ));
            return;
        }
        let generated = match MetricType::try_from(kind) {
            Ok(MetricType::Summary) => Some("quantile"),
            Ok(MetricType::Histogram | MetricType::GaugeHistogram) => Some("le"),
            _ => None,
        };
        if generated == Some(label_name) {
            errors.push(format!(
                "collected metric {name:?} {{ {}}} must not have an explicit {label_name:?} label",
                describe_series(metric, labels)
            ));
            return;
        }
        if previous == Some(label_name) {
            errors.push(format!(
                "collected metric {name:?} {{ {}}} has two or more labels with the same name: {label_name}",
                describe_series(metric, labels)
            ));
            return;
        }
        previous = Some(label_name);
    }
}

/// `_count`/`_sum`/`_bucket` collisions between `name` (of type `kind`) and
/// the family types `present` knows.
pub fn check_suffixes(
    name: &str,
    kind: i32,
    present: impl Fn(&str) -> Option<i32>,
    errors: &mut Vec<String>,
) {
    let summary = MetricType::Summary as i32;
    let histogram = MetricType::Histogram as i32;
    let gauge_histogram = MetricType::GaugeHistogram as i32;
    for suffix in ["_count", "_sum", "_bucket"] {
        let Some(base) = name.strip_suffix(suffix) else {
            continue;
        };
        match present(base) {
            Some(k) if k == summary && suffix != "_bucket" => errors.push(format!(
                "collected metric named {name:?} collides with previously collected summary named {base:?}"
            )),
            Some(k) if k == histogram || k == gauge_histogram => errors.push(format!(
                "collected metric named {name:?} collides with previously collected histogram named {base:?}"
            )),
            _ => {}
        }
    }
    let mut own_suffixes: &[&str] = &[];
    if kind == summary {
        own_suffixes = &["_count", "_sum"];
    } else if kind == histogram || kind == gauge_histogram {
        own_suffixes = &["_count", "_sum", "_bucket"];
    }
    for suffix in own_suffixes {
        let derived = format!("{name}{suffix}");
        if present(&derived).is_some() {
            errors.push(format!(
                "collected {} named {name:?} collides with previously collected metric named {derived:?}",
                type_name(kind).to_ascii_lowercase()
            ));
        }
    }
}

/// The store's consistency index. It never holds metric data itself: the
/// store confirms a signature hit by comparing labels in the owning group.
/// Owners are a multiset: a hash collision (or a series stored twice, when
/// the check is off) puts several groups under one signature.
#[derive(Debug, Default)]
pub struct Index {
    /// Non-empty families: name → (type, number of groups holding one).
    types: HashMap<String, (i32, u32)>,
    /// Signature → its first owner.
    series: BySignature<u64>,
    /// Signature → its further owners, for signatures held more than once.
    more: BySignature<Vec<u64>>,
}

impl Index {
    /// Records a family `name` of type `kind` stored in `group`, whose
    /// series have the signatures `signatures` (none: an empty family).
    pub fn insert_family(
        &mut self,
        group: u64,
        name: &str,
        kind: i32,
        signatures: impl IntoIterator<Item = u64>,
    ) {
        let mut any = false;
        for signature in signatures {
            self.insert_series(group, signature);
            any = true;
        }
        if any {
            match self.types.get_mut(name) {
                Some(entry) => entry.1 += 1,
                None => {
                    self.types.insert(name.to_string(), (kind, 1));
                }
            }
        }
    }

    /// Forgets a family that `group` no longer stores.
    pub fn remove_family(
        &mut self,
        group: u64,
        name: &str,
        signatures: impl IntoIterator<Item = u64>,
    ) {
        let mut any = false;
        for signature in signatures {
            self.remove_series(group, signature);
            any = true;
        }
        if any && let Some(entry) = self.types.get_mut(name) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                self.types.remove(name);
            }
        }
    }

    /// Records one series signature owned by `group`.
    pub fn insert_series(&mut self, group: u64, signature: u64) {
        match self.series.entry(signature) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(group);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.more.entry(signature).or_default().push(group);
            }
        }
    }

    /// Forgets one series signature owned by `group`.
    pub fn remove_series(&mut self, group: u64, signature: u64) {
        if let Some(more) = self.more.get_mut(&signature) {
            if let Some(i) = more.iter().position(|g| *g == group) {
                more.swap_remove(i);
            } else if self.series.get(&signature) == Some(&group) {
                if let Some(next) = more.pop() {
                    self.series.insert(signature, next);
                }
            }
            if more.is_empty() {
                self.more.remove(&signature);
            }
        } else if self.series.get(&signature) == Some(&group) {
            self.series.remove(&signature);
        }
    }

    /// The type of a stored family and how many groups hold it.
    pub fn family(&self, name: &str) -> Option<(i32, u32)> {
        self.types.get(name).copied()
    }

    /// The groups owning `signature`.
    pub fn owners(&self, signature: u64) -> impl Iterator<Item = u64> + '_ {
        let first = self.series.get(&signature).copied();
        let more = self.more.get(&signature).into_iter().flatten().copied();
        first.into_iter().chain(more)
    }

    /// Number of indexed series signatures (for tests and sizing).
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Gives back spare capacity after a large removal.
    pub fn shrink(&mut self) {
        self.series.shrink_to_fit();
        self.more.shrink_to_fit();
    }
}

/// Gathers `families` (already merged views of every group, plus
/// pushrelay's own families in `own`) and returns every error a scrape of
/// them would hit. O(all series); used only when the push-time check is off.
pub fn full_check<'a>(
    families: impl IntoIterator<Item = (&'a str, i32, &'a Metric)>,
    own: &HashMap<String, i32>,
) -> Vec<String> {
    let mut errors = Vec::new();
    let mut types: HashMap<&str, i32> = HashMap::new();
    let mut seen: BySignature<Vec<&Metric>> = BySignature::default();
    for (name, kind, metric) in families {
        let merged_kind = *types.entry(name).or_insert(kind);
        let expected = own.get(name).copied().unwrap_or(merged_kind);
        check_metric(name, expected, metric, &mut errors);
        let signature = signature_of(name, &metric.label);
        let same = seen.entry(signature).or_default();
        if same.iter().any(|m| same_labels(&m.label, &metric.label)) {
            errors.push(format!(
                "collected metric {name:?} {{ {}}} was collected before with the same name and label values",
                describe_metric(metric)
            ));
        }
        same.push(metric);
    }
    let mut names: HashSet<&str> = types.keys().copied().collect();
    names.extend(own.keys().map(String::as_str));
    let lookup = |n: &str| types.get(n).copied().or_else(|| own.get(n).copied());
    let mut sorted: Vec<&str> = names.into_iter().collect();
    sorted.sort_unstable();
    let mut checked: HashSet<&str> = HashSet::new();
    for name in sorted {
        checked.insert(name);
        if let Some(kind) = lookup(name) {
            // Only report each pair once: against names checked before.
            check_suffixes(
                name,
                kind,
                |n| checked.contains(n).then(|| lookup(n)).flatten(),
                &mut errors,
            );
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::client::Gauge;

    fn gauge(labels: &[(&str, &str)]) -> Metric {
        Metric {
            label: labels.iter().map(|&(n, v)| LabelPair::new(n, v)).collect(),
            gauge: Some(Gauge { value: Some(1.0) }),
            ..Default::default()
        }
    }

    #[test]
    fn label_names_follow_the_legacy_rules() {
        for ok in ["a", "_a", "a1", "job", "A_b"] {
            assert!(valid_label_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "__x", "a.b", "é"] {
            assert!(!valid_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn metric_checks_catch_type_field_mismatch_and_bad_labels() {
        let mut errors = Vec::new();
        check_metric("m", MetricType::Counter as i32, &gauge(&[]), &mut errors);
        assert!(errors[0].contains("is not a COUNTER"), "{errors:?}");
        errors.clear();
        check_metric(
            "m",
            MetricType::Gauge as i32,
            &gauge(&[("__x", "1")]),
            &mut errors,
        );
        assert!(
            errors[0].ends_with("has a label with an invalid name: __x"),
            "{errors:?}"
        );
        errors.clear();
        check_metric(
            "m",
            MetricType::Gauge as i32,
            &gauge(&[("a", "1"), ("a", "2")]),
            &mut errors,
        );
        assert!(errors[0].contains("two or more labels"), "{errors:?}");
        errors.clear();
        check_metric(
            "m",
            MetricType::Gauge as i32,
            &gauge(&[("a", "1")]),
            &mut errors,
        );
        assert!(errors.is_empty());
    }

    #[test]
    fn suffix_collisions_both_ways() {
        let summary = MetricType::Summary as i32;
        let histogram = MetricType::Histogram as i32;
        let gauge = MetricType::Gauge as i32;
        let mut errors = Vec::new();
        check_suffixes(
            "sm_count",
            gauge,
            |n| (n == "sm").then_some(summary),
            &mut errors,
        );
        assert!(errors[0].contains("collides with previously collected summary named \"sm\""));
        errors.clear();
        check_suffixes(
            "sm_bucket",
            gauge,
            |n| (n == "sm").then_some(summary),
            &mut errors,
        );
        assert!(errors.is_empty(), "a summary has no _bucket series");
        check_suffixes(
            "h",
            histogram,
            |n| (n == "h_bucket").then_some(gauge),
            &mut errors,
        );
        assert!(
            errors[0].contains("collected histogram named \"h\" collides"),
            "{errors:?}"
        );
    }

    #[test]
    fn index_counts_owners_as_a_multiset() {
        let mut index = Index::default();
        let family = MetricFamily {
            name: Some("m".into()),
            r#type: Some(MetricType::Gauge as i32),
            metric: vec![gauge(&[("job", "a")])],
            ..Default::default()
        };
        let signature = signature_of("m", &family.metric[0].label);
        let gauge = MetricType::Gauge as i32;
        index.insert_family(1, "m", gauge, [signature]);
        index.insert_family(2, "m", gauge, [signature]);
        index.insert_family(3, "m", gauge, [signature]);
        index.insert_family(4, "empty", gauge, []);
        assert_eq!(index.family("empty"), None);
        let owners = |index: &Index| index.owners(signature).collect::<Vec<_>>();
        assert_eq!(owners(&index), vec![1, 2, 3]);
        assert_eq!(index.family("m"), Some((gauge, 3)));
        index.remove_family(1, "m", [signature]);
        assert_eq!(owners(&index), vec![3, 2]);
        index.remove_family(2, "m", [signature]);
        assert_eq!(owners(&index), vec![3]);
        index.remove_family(3, "m", [signature]);
        assert!(owners(&index).is_empty());
        assert_eq!(index.family("m"), None);
        assert_eq!(index.series_count(), 0);
    }

    #[test]
    fn full_check_finds_duplicates_and_type_clashes() {
        let a = gauge(&[("job", "a")]);
        let counter = Metric {
            label: vec![LabelPair::new("job", "b")],
            counter: Some(Default::default()),
            ..Default::default()
        };
        let own = HashMap::new();
        let errors = full_check(
            [
                ("m", MetricType::Gauge as i32, &a),
                ("m", MetricType::Gauge as i32, &a),
                ("m", MetricType::Counter as i32, &counter),
            ],
            &own,
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("was collected before"));
        assert!(errors[1].contains("is not a GAUGE"));
        assert!(join_errors(&errors).starts_with("2 error(s) occurred:\n* "));
    }
}
