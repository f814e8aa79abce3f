//! Validation of parsed families: every check a push goes through after
//! parsing, in one place.
//!
//! [`check`] runs the checks below on the labels the merge (step 3) would
//! give, without copying the grouping labels into every metric: it only
//! sorts each metric's own labels. The push handler uses it; the sinks
//! merge at their own pace through the same [`GroupingLabels`].
//!
//! Contract, in the order the checks run:
//! 1. Pushed timestamps: refused with the Pushgateway's message unless
//!    `push.honor_timestamps`.
//! 2. `push.max_series`: the series a scrape of the push would show
//!    (1 per counter, gauge, untyped or native histogram; quantiles + 2 per
//!    summary; buckets with `+Inf` + 2 per classic histogram).
//! 3. The merge, as the Pushgateway sanitises a push (`super::grouping`):
//!    every grouping label is set on every metric (on the first body label
//!    of that name, `job` included), `instance=""` is added when neither
//!    the URL nor the body has an `instance`, labels end up sorted by name.
//!    A repeated body label is kept repeated (and refused by step 5, as the
//!    Pushgateway does).
//! 4. `push.max_metric_name_length` per family, then per-series limits on
//!    the merged labels: `push.max_labels_per_series` (labels with a
//!    non-empty value), `push.max_label_name_length`,
//!    `push.max_label_value_length`.
//! 5. The consistency check the Pushgateway runs through client_golang's
//!    `Gatherers.Gather`, restricted to the push itself (the cache checks
//!    against stored groups): families in name order; suffix collisions
//!    (`x_count` next to summary `x`, ...), type/value mismatches, repeated,
//!    invalid or `__`-prefixed label names, explicit `quantile` labels on
//!    summaries (an explicit `le` on a histogram passes, as in the
//!    Pushgateway), duplicate series. Every failure is collected and reported
//!    as Go reports them (`N error(s) occurred:\n* ...`).
//!
//! With `push.disable_consistency_check` step 5 is skipped: the Pushgateway
//! then accepts every push that parses (and its scrapes fail instead).
//! Timestamps are still refused with a 400, where the Pushgateway answers
//! 202 and drops the push silently.
//!
//! Each failure is a 400. Messages of 1 and 5 carry the Pushgateway's
//! prefix; limit messages name the limit and the series, and are counted in
//! `LIMIT_REJECTIONS`. A message quotes a short excerpt of a series (its
//! first labels, long names and values cut, with the count of labels left
//! out), however wide the pushed series is. Families with no metrics are kept (a POST replaces
//! with them).
//!
//! Where this is stricter than the Pushgateway (which stores such pushes
//! and then fails every scrape): invalid metric names (of families that
//! have metrics) and unknown metric types are refused, and a
//! `GAUGE_HISTOGRAM` family must carry histograms. Where it is looser on
//! purpose: at most 50 errors are listed (the count is exact), so that the
//! answer stays small.

mod indexed;
pub(crate) mod render;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};

use super::grouping::{GroupingLabels, MergedLabels};
use super::path::{go_quote, is_legacy_label_name};
use super::{GroupingKey, Rejection};
use crate::config::PushConfig;
use crate::exposition::{self, Families};
use crate::hashing::{Prehashed, Seeded};
use crate::proto::client::{LabelPair, Metric, MetricFamily, MetricType};
use crate::telemetry;

/// The prefix of every consistency failure, as the Pushgateway writes it.
pub const INCONSISTENT_PREFIX: &str =
    "pushed metrics are invalid or inconsistent with existing metrics: ";

/// More collected errors than this are counted, not listed: the count is
/// the Pushgateway's, the answer stays small whatever the push holds.
const MAX_LISTED_ERRORS: usize = 50;

/// Joins collected errors as Go's multi-error does (one error alone; else
/// `N error(s) occurred:` and a `\n* ` line each), listing at most
/// [`MAX_LISTED_ERRORS`] of them. The push-time check (in itself and, in
/// the cache, against the stored groups) and the unchecked scrape answer
/// with it.
pub(crate) fn join_errors(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => {
            let mut out = format!("{} error(s) occurred:", many.len());
            for error in many.iter().take(MAX_LISTED_ERRORS) {
                out.push_str("\n* ");
                out.push_str(error);
            }
            if many.len() > MAX_LISTED_ERRORS {
                out.push_str(&format!(
                    "\n* ... {} more not shown",
                    many.len() - MAX_LISTED_ERRORS
                ));
            }
            out
        }
    }
}

/// Runs every check on the labels the merge would give, without merging:
/// each metric's own labels are only sorted by name. The sinks merge the grouping labels themselves (see
/// [`GroupingLabels`]), so the hot path never copies them into every metric.
pub fn check(
    families: &mut [MetricFamily],
    key: &GroupingKey,
    config: &PushConfig,
) -> Result<(), Rejection> {
    if !config.honor_timestamps && has_timestamps(families) {
        return Err(Rejection::inconsistent(format!(
            "{INCONSISTENT_PREFIX}pushed metrics must not have timestamps"
        )));
    }
    check_series_limit(families, config.max_series)?;
    let grouping = GroupingLabels::new(key);
    for family in families.iter_mut() {
        check_metric_name_length(family.name(), config.max_metric_name_length)?;
        for metric in &mut family.metric {
            exposition::sort_labels(metric);
            check_label_limits(
                family.name.as_deref().unwrap_or(""),
                metric,
                &grouping,
                config,
            )?;
        }
    }
    if config.disable_consistency_check {
        return Ok(());
    }
    check_consistency(families, &grouping)
}

/// [`check`] for a parsed push's families. An indexed text body is checked
/// on the index (which keeps labels sorted); when that fast check is not sure
/// the push passes, the owned families are built and [`check`] decides (and
/// words the refusal), and the push keeps them.
pub fn check_families(
    families: &mut Families,
    key: &GroupingKey,
    config: &PushConfig,
) -> Result<(), Rejection> {
    if let Families::Indexed(body) = families
        && indexed::passes(body, &GroupingLabels::new(key), config)
    {
        return Ok(());
    }
    check(families.to_mut(), key, config)
}

fn has_timestamps(families: &[MetricFamily]) -> bool {
    families
        .iter()
        .flat_map(|f| &f.metric)
        .any(|m| m.timestamp_ms.is_some())
}

fn limit_exceeded(limit: &'static str, message: String) -> Rejection {
    metrics::counter!(telemetry::LIMIT_REJECTIONS, "limit" => limit).increment(1);
    Rejection::bad_request(message)
}

/// Series a scrape of `metric` would show (see the module docs).
fn series_count(metric: &Metric) -> usize {
    if let Some(summary) = &metric.summary {
        return summary.quantile.len() + 2;
    }
    if let Some(histogram) = &metric.histogram {
        let native = histogram.schema.is_some()
            || !histogram.positive_span.is_empty()
            || !histogram.negative_span.is_empty();
        if native && histogram.bucket.is_empty() {
            return 1;
        }
        let has_inf = histogram
            .bucket
            .last()
            .is_some_and(|b| b.upper_bound() == f64::INFINITY);
        return histogram.bucket.len() + usize::from(!has_inf) + 2;
    }
    1
}

fn check_series_limit(families: &[MetricFamily], max_series: usize) -> Result<(), Rejection> {
    let mut total = 0usize;
    for family in families {
        for metric in &family.metric {
            total += series_count(metric);
            if total > max_series {
                return Err(limit_exceeded(
                    "max_series",
                    format!(
                        "push has more than push.max_series = {max_series} series; the limit \
                         is crossed at {}",
                        render::series(family.name(), &metric.label)
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn check_metric_name_length(name: &str, max: usize) -> Result<(), Rejection> {
    if name.len() <= max {
        return Ok(());
    }
    Err(limit_exceeded(
        "max_metric_name_length",
        format!(
            "metric name \"{}\" ({} bytes) is longer than push.max_metric_name_length = {max} bytes",
            render::shorten(name),
            name.len()
        ),
    ))
}

fn check_label_limits(
    family: &str,
    metric: &Metric,
    grouping: &GroupingLabels,
    config: &PushConfig,
) -> Result<(), Rejection> {
    let rendered = || render::series(family, &grouping.merged_metric(metric).label);
    // One pass: the count decides first, then the first label too long.
    let mut non_empty = 0;
    let mut too_long = None;
    for label in grouping.merge(&metric.label) {
        let (name, value) = (label.name(), label.value());
        non_empty += usize::from(!value.is_empty());
        if too_long.is_none()
            && (name.len() > config.max_label_name_length
                || value.len() > config.max_label_value_length)
        {
            too_long = Some((name, value));
        }
    }
    if non_empty > config.max_labels_per_series {
        return Err(limit_exceeded(
            "max_labels_per_series",
            format!(
                "series {} has {non_empty} labels, more than push.max_labels_per_series = {}",
                rendered(),
                config.max_labels_per_series
            ),
        ));
    }
    let Some((name, value)) = too_long else {
        return Ok(());
    };
    if name.len() > config.max_label_name_length {
        return Err(limit_exceeded(
            "max_label_name_length",
            format!(
                "label name \"{}\" ({} bytes) of series {} is longer than \
                 push.max_label_name_length = {} bytes",
                render::shorten(name),
                name.len(),
                rendered(),
                config.max_label_name_length
            ),
        ));
    }
    Err(limit_exceeded(
        "max_label_value_length",
        format!(
            "value of label {} ({} bytes) of series {} is longer than \
             push.max_label_value_length = {} bytes",
            render::shorten(name),
            value.len(),
            rendered(),
            config.max_label_value_length
        ),
    ))
}

/// A series' identity within a push: metric name and merged labels, with
/// their hash computed once (by [`check_metric`], with the push's seed).
struct SeriesKey<'a> {
    hash: u64,
    name: &'a str,
    labels: &'a [LabelPair],
    grouping: &'a GroupingLabels,
}

impl SeriesKey<'_> {
    fn merged(&self) -> MergedLabels<'_> {
        self.grouping.merge(self.labels)
    }
}

impl Hash for SeriesKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for SeriesKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && self.name == other.name
            && self.merged().map(pair_str).eq(other.merged().map(pair_str))
    }
}

impl Eq for SeriesKey<'_> {}

fn pair_str(label: &LabelPair) -> (&str, &str) {
    (label.name(), label.value())
}

/// The series seen so far in a push, and the seed their keys are hashed with.
struct SeenSeries<'a> {
    keys: HashSet<SeriesKey<'a>, Prehashed>,
    seed: Seeded,
}

/// What one family was registered as during the check.
struct Registered<'a> {
    kind: MetricType,
    help: &'a str,
}

/// client_golang's `Gatherers.Gather` checks over the push's own families.
fn check_consistency(
    families: &[MetricFamily],
    grouping: &GroupingLabels,
) -> Result<(), Rejection> {
    let mut order: Vec<&MetricFamily> = families.iter().collect();
    order.sort_by(|a, b| a.name().cmp(b.name()));
    let series: usize = families.iter().map(|f| f.metric.len()).sum();
    let mut registered: HashMap<&str, Registered<'_>> = HashMap::with_capacity(families.len());
    let mut seen = SeenSeries {
        keys: HashSet::with_capacity_and_hasher(series, Prehashed::default()),
        seed: Seeded::default(),
    };
    let mut errors: Vec<String> = Vec::new();
    for family in order {
        let name = family.name();
        // Go checks the name per metric: a family without metrics (a
        // zero-length protobuf message is one without a name) passes.
        if !is_metric_name(name) && !family.metric.is_empty() {
            errors.push(format!("invalid metric name {}", go_quote(name.as_bytes())));
            continue;
        }
        let Ok(kind) = MetricType::try_from(family.r#type.unwrap_or_default()) else {
            errors.push(format!(
                "metric family {name} has the unknown type {}",
                family.r#type.unwrap_or_default()
            ));
            continue;
        };
        match registered.get(name) {
            // A family name twice in one push (the parsers merge or replace
            // them, so this is only reached by a caller that did not).
            Some(existing) if existing.help != family.help() => {
                errors.push(format!(
                    "gathered metric family {name} has help {} but should have {}",
                    go_quote(family.help().as_bytes()),
                    go_quote(existing.help.as_bytes())
                ));
                continue;
            }
            Some(existing) if existing.kind != kind => {
                errors.push(format!(
                    "gathered metric family {name} has type {} but should have {}",
                    kind.as_str_name(),
                    existing.kind.as_str_name()
                ));
                continue;
            }
            Some(_) => {}
            None => {
                if let Some(collision) =
                    suffix_collision(name, kind, |n| registered.get(n).map(|r| r.kind))
                {
                    errors.push(collision);
                    continue;
                }
                registered.insert(
                    name,
                    Registered {
                        kind,
                        help: family.help(),
                    },
                );
            }
        }
        for metric in &family.metric {
            if let Some(error) = check_metric(name, kind, metric, grouping, &mut seen) {
                errors.push(error);
            }
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(Rejection::inconsistent(format!(
        "{INCONSISTENT_PREFIX}{}",
        join_errors(&errors)
    )))
}

/// client_golang's `checkSuffixCollisions` for a family `name` of type
/// `kind` about to be collected, against the families `collected` knows:
/// `_count`/`_sum` next to a summary, `_count`/`_sum`/`_bucket` next to a
/// histogram, in both directions. A gauge histogram has no such siblings,
/// as in the Pushgateway. Go's first error only, worded as Go words it.
///
/// The one collision rule: the push check (families in name order, so the
/// base family is always collected first), the cache's check against the
/// stored groups and the unchecked scrape use it.
pub(crate) fn suffix_collision(
    name: &str,
    kind: MetricType,
    collected: impl Fn(&str) -> Option<MetricType>,
) -> Option<String> {
    let quoted = |text: &str| go_quote(text.as_bytes());
    let base = ["_count", "_sum", "_bucket"]
        .into_iter()
        .find_map(|suffix| Some((name.strip_suffix(suffix)?, suffix)));
    if let Some((base, suffix)) = base {
        let base_kind = match collected(base) {
            Some(MetricType::Summary) if suffix != "_bucket" => Some("summary"),
            Some(MetricType::Histogram) => Some("histogram"),
            _ => None,
        };
        if let Some(base_kind) = base_kind {
            return Some(format!(
                "collected metric named {} collides with previously collected {base_kind} named {}",
                quoted(name),
                quoted(base)
            ));
        }
    }
    let siblings: &[&str] = match kind {
        MetricType::Summary => &["_count", "_sum"],
        MetricType::Histogram => &["_count", "_sum", "_bucket"],
        _ => return None,
    };
    // One buffer per summary or histogram family, never per metric.
    let mut sibling = String::with_capacity(name.len() + "_bucket".len());
    for suffix in siblings {
        sibling.clear();
        sibling.push_str(name);
        sibling.push_str(suffix);
        if collected(&sibling).is_some() {
            let what = if *suffix == "_bucket" {
                "histogram"
            } else {
                "histogram or summary"
            };
            return Some(format!(
                "collected {what} named {} collides with previously collected metric named {}",
                quoted(name),
                quoted(&sibling)
            ));
        }
    }
    None
}

/// The per-push part of client_golang's `checkMetricConsistency` for one
/// (merged) metric: [`metric_fault`], then the duplicate check.
fn check_metric<'a>(
    name: &'a str,
    kind: MetricType,
    metric: &'a Metric,
    grouping: &'a GroupingLabels,
    seen: &mut SeenSeries<'a>,
) -> Option<String> {
    let described = || {
        format!(
            "collected metric {} {{ {}}}",
            go_quote(name.as_bytes()),
            render::compact_text(&grouping.merged_metric(metric))
        )
    };
    let mut hasher = seen.seed.build_hasher();
    hasher.write(name.as_bytes());
    let fault = metric_fault(
        kind,
        metric,
        grouping.merge(&metric.label).map(pair_str),
        |label, value| {
            hasher.write_u8(0xff);
            hasher.write(label.as_bytes());
            hasher.write_u8(0xff);
            hasher.write(value.as_bytes());
        },
    );
    if let Some(fault) = fault {
        return Some(format!("{} {fault}", described()));
    }
    let key = SeriesKey {
        hash: hasher.finish(),
        name,
        labels: &metric.label,
        grouping,
    };
    if !seen.keys.insert(key) {
        return Some(format!(
            "{} was collected before with the same name and label values",
            described()
        ));
    }
    None
}

/// client_golang's `checkMetricConsistency` for one metric of a family of
/// type `kind` whose labels, as exposed (sorted by name), are `labels`: the
/// value field matches the type; label names are legacy names, not
/// `__`-prefixed, not repeated; a summary has no explicit `quantile` label.
/// An explicit `le` on a histogram passes, as in the Pushgateway.
/// `each_label` sees every label up to the first fault (the push check
/// hashes them on the way). The fault is the end of Go's message, the part
/// after `collected metric "m" { ... }`.
///
/// The one per-metric rule: the push check, the cache's push check and the
/// unchecked cache's scrape all use it.
pub(crate) fn metric_fault<'l>(
    kind: MetricType,
    metric: &Metric,
    labels: impl IntoIterator<Item = (&'l str, &'l str)>,
    mut each_label: impl FnMut(&'l str, &'l str),
) -> Option<String> {
    let has_value = match kind {
        MetricType::Counter => metric.counter.is_some(),
        MetricType::Gauge => metric.gauge.is_some(),
        MetricType::Summary => metric.summary.is_some(),
        MetricType::Untyped => metric.untyped.is_some(),
        MetricType::Histogram | MetricType::GaugeHistogram => metric.histogram.is_some(),
    };
    if !has_value {
        return Some(format!("is not a {}", kind.as_str_name()));
    }
    // Go starts from "" too, so a first label with an empty name counts as
    // a repeated one.
    let mut previous = "";
    for (label_name, value) in labels {
        each_label(label_name, value);
        if label_name == previous {
            return Some(format!(
                "has two or more labels with the same name: {label_name}"
            ));
        }
        if !is_legacy_label_name(label_name) || label_name.starts_with("__") {
            return Some(format!("has a label with an invalid name: {label_name}"));
        }
        if kind == MetricType::Summary && label_name == "quantile" {
            return Some("must not have an explicit \"quantile\" label".to_string());
        }
        previous = label_name;
    }
    None
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`: a metric name as Prometheus' legacy scheme
/// defines it.
pub(crate) fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

#[cfg(test)]
mod consistency_tests;
#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod property_tests;
#[cfg(test)]
mod tests;
