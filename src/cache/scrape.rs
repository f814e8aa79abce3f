//! `GET /metrics` in cache mode: every group's families merged by name with
//! pushrelay's own families, sorted as the Pushgateway (client_golang)
//! sorts them, written as text 0.0.4 or delimited protobuf, gzipped when
//! asked.
//!
//! Rules (reference §6): families by name (byte order), empty families
//! omitted; metrics by number of labels, then label values position by
//! position; `# HELP` only when a help string is set; `# TYPE` always;
//! `le`/`quantile` after the sorted labels; a `+Inf` bucket added in text
//! when missing; floats as Go prints them ([`crate::exposition::gofloat`]);
//! never a sample timestamp. Every group exposes `push_time_seconds` and
//! `push_failure_time_seconds`. When several groups give one family different
//! HELP strings, the earliest stored wins (the Pushgateway picks at random);
//! pushrelay's own HELP wins over a pushed one, as in the Pushgateway.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;
use std::time::SystemTime;

use prost::Message;

use super::consistency::{self, PUSH_FAILURE_TIME, PUSH_TIME, family_type, full_check};
use super::store::Group;
use crate::exposition::gofloat;
use crate::proto::client::{Gauge, LabelPair, Metric, MetricFamily, MetricType};

/// `Content-Type` of the text exposition.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `Content-Type` of the delimited protobuf exposition.
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

const PUSH_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway succeeded.";
const PUSH_FAILURE_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway failed.";

/// The exposition formats a scraper can negotiate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Protobuf,
}

impl Format {
    /// Picks the format from an `Accept` header as Prometheus' `expfmt`
    /// negotiation does: delimited protobuf when asked for, text otherwise
    /// (OpenMetrics is never offered).
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::Text;
        };
        let mut ranges: Vec<(f32, Option<Self>)> = accept
            .split(',')
            .map(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or("").to_ascii_lowercase();
                let mut q = 1.0f32;
                let mut proto = None;
                let mut encoding = None;
                for param in parts {
                    if let Some((k, v)) = param.split_once('=') {
                        let v = v.trim().trim_matches('"');
                        match k.trim().to_ascii_lowercase().as_str() {
                            "q" => q = v.parse().unwrap_or(0.0),
                            "proto" => proto = Some(v.to_string()),
                            "encoding" => encoding = Some(v.to_string()),
                            _ => {}
                        }
                    }
                }
                let format = match media.as_str() {
                    "application/vnd.google.protobuf"
                        if proto.as_deref() == Some("io.prometheus.client.MetricFamily")
                            && encoding.as_deref() == Some("delimited") =>
                    {
                        Some(Self::Protobuf)
                    }
                    "text/plain" => Some(Self::Text),
                    _ => None,
                };
                (q, format)
            })
            .collect();
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranges
            .into_iter()
            .filter(|(q, _)| *q > 0.0)
            .find_map(|(_, f)| f)
            .unwrap_or(Self::Text)
    }

    /// The response `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Text => TEXT_CONTENT_TYPE,
            Self::Protobuf => PROTOBUF_CONTENT_TYPE,
        }
    }
}

/// Whether an `Accept-Encoding` header accepts gzip.
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|value| {
        value.split(',').any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
    })
}

/// Gzips a response body.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// One family as exposed: the merge of every source of that name.
struct Merged<'a> {
    name: &'a str,
    help: Option<&'a str>,
    kind: i32,
    metrics: Vec<&'a Metric>,
    /// (stored at, group position) of the pushed family whose HELP is used;
    /// `None` for own families and the stamps, whose HELP always wins.
    help_rank: Option<(SystemTime, usize)>,
}

/// The `push_time_seconds` and `push_failure_time_seconds` families of
/// `groups`.
pub fn stamp_families(groups: &[Arc<Group>]) -> [MetricFamily; 2] {
    let family = |name: &str, help: &str, value: &dyn Fn(&Group) -> f64| MetricFamily {
        name: Some(name.into()),
        help: Some(help.into()),
        r#type: Some(MetricType::Gauge as i32),
        metric: groups
            .iter()
            .map(|g| Metric {
                label: g.push_labels(),
                gauge: Some(Gauge {
                    value: Some(value(g)),
                }),
                ..Default::default()
            })
            .collect(),
        unit: None,
    };
    [
        family(PUSH_TIME, PUSH_TIME_HELP, &|g| g.push_time.seconds()),
        family(PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP, &|g| {
            g.failure_time.seconds()
        }),
    ]
}

/// Merges own families, the stamps and every group's families; sorted.
fn merge<'a>(
    groups: &'a [Arc<Group>],
    fixed: impl IntoIterator<Item = &'a MetricFamily>,
) -> Vec<Merged<'a>> {
    let mut merged: BTreeMap<&'a str, Merged<'a>> = BTreeMap::new();
    for family in fixed {
        let entry = merged.entry(family.name()).or_insert_with(|| Merged {
            name: family.name(),
            help: family.help.as_deref(),
            kind: family_type(family),
            metrics: Vec::new(),
            help_rank: None,
        });
        entry.metrics.extend(family.metric.iter());
    }
    let mut ordered: Vec<&Arc<Group>> = groups.iter().collect();
    ordered.sort_by(|a, b| a.key.cmp(&b.key));
    for (position, group) in ordered.into_iter().enumerate() {
        for stored in group.families.values() {
            let family = &stored.family;
            let rank = (stored.stored_at, position);
            let entry = merged.entry(family.name()).or_insert_with(|| Merged {
                name: family.name(),
                help: family.help.as_deref(),
                kind: family_type(family),
                metrics: Vec::new(),
                help_rank: Some(rank),
            });
            // Pushed HELP: the earliest stored wins; own HELP (no rank) stays.
            if let Some(best) = &mut entry.help_rank
                && rank < *best
            {
                *best = rank;
                entry.help = family.help.as_deref();
            }
            entry.metrics.extend(family.metric.iter());
        }
    }
    merged
        .into_values()
        .map(|mut family| {
            family.metrics.sort_by(|a, b| compare_metrics(a, b));
            family
        })
        .filter(|f| !f.metrics.is_empty())
        .collect()
}

/// client_golang's metric order: fewer labels first, then label values
/// position by position.
fn compare_metrics(a: &Metric, b: &Metric) -> std::cmp::Ordering {
    a.label.len().cmp(&b.label.len()).then_with(|| {
        a.label
            .iter()
            .zip(&b.label)
            .map(|(x, y)| x.value().cmp(y.value()))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    })
}

/// A rendered scrape.
pub struct Rendered {
    pub body: Vec<u8>,
    pub content_type: &'static str,
}

/// Renders the scrape of `groups` with pushrelay's own families `own`.
/// With `check_all` (the push-time check is off) everything is gathered
/// first and any inconsistency fails the scrape, as in the Pushgateway.
pub fn render(
    groups: &[Arc<Group>],
    own: &[MetricFamily],
    format: Format,
    check_all: bool,
) -> Result<Rendered, String> {
    let stamps = stamp_families(groups);
    if check_all {
        let own_types: HashMap<String, i32> = own
            .iter()
            .map(|f| (f.name().to_string(), family_type(f)))
            .collect();
        let pushed = groups.iter().flat_map(|g| {
            g.families.values().flat_map(|s| {
                let kind = family_type(&s.family);
                s.family
                    .metric
                    .iter()
                    .map(move |m| (s.family.name(), kind, m))
            })
        });
        let fixed = own.iter().chain(&stamps).flat_map(|f| {
            let kind = family_type(f);
            f.metric.iter().map(move |m| (f.name(), kind, m))
        });
        let errors = full_check(fixed.chain(pushed), &own_types);
        if !errors.is_empty() {
            return Err(consistency::join_errors(&errors));
        }
    }
    let families = merge(groups, own.iter().chain(&stamps));
    let body = match format {
        Format::Text => {
            let mut out =
                String::with_capacity(families.iter().map(|f| f.metrics.len() * 64).sum());
            for family in &families {
                write_text_family(&mut out, family);
            }
            out.into_bytes()
        }
        Format::Protobuf => {
            let mut out = Vec::new();
            for family in &families {
                let message = MetricFamily {
                    name: Some(family.name.to_string()),
                    help: family.help.map(str::to_string),
                    r#type: Some(family.kind),
                    metric: family.metrics.iter().map(|m| (*m).clone()).collect(),
                    unit: None,
                };
                // Encoding into a Vec cannot run out of space.
                let _ = message.encode_length_delimited(&mut out);
            }
            out
        }
    };
    Ok(Rendered {
        body,
        content_type: format.content_type(),
    })
}

fn write_text_family(out: &mut String, family: &Merged<'_>) {
    let name = family.name;
    if let Some(help) = family.help {
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        escape_into(out, help, false);
        out.push('\n');
    }
    out.push_str("# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(&consistency::type_name(family.kind).to_ascii_lowercase());
    out.push('\n');
    for metric in &family.metrics {
        write_text_metric(out, name, family.kind, metric);
    }
}

fn write_text_metric(out: &mut String, name: &str, kind: i32, metric: &Metric) {
    let labels = &metric.label;
    let float = |v: Option<f64>| gofloat::format(v.unwrap_or(0.0));
    match MetricType::try_from(kind) {
        Ok(MetricType::Counter) => {
            let value = metric.counter.as_ref().and_then(|c| c.value);
            sample(out, name, "", labels, None, &float(value));
        }
        Ok(MetricType::Gauge) => {
            let value = metric.gauge.as_ref().and_then(|g| g.value);
            sample(out, name, "", labels, None, &float(value));
        }
        Ok(MetricType::Summary) => {
            let summary = metric.summary.clone().unwrap_or_default();
            for q in &summary.quantile {
                let quantile = gofloat::format(q.quantile());
                sample(
                    out,
                    name,
                    "",
                    labels,
                    Some(("quantile", &quantile)),
                    &float(q.value),
                );
            }
            sample(out, name, "_sum", labels, None, &float(summary.sample_sum));
            sample(
                out,
                name,
                "_count",
                labels,
                None,
                &summary.sample_count().to_string(),
            );
        }
        Ok(MetricType::Histogram | MetricType::GaugeHistogram) => {
            let histogram = metric.histogram.clone().unwrap_or_default();
            let float_counts = histogram.sample_count_float.is_some_and(|c| c > 0.0);
            let count = |int: Option<u64>, flt: Option<f64>| match flt {
                Some(f) if float_counts || int.is_none() && f > 0.0 => gofloat::format(f),
                _ => int.unwrap_or(0).to_string(),
            };
            let mut saw_inf = false;
            for bucket in &histogram.bucket {
                let bound = bucket.upper_bound();
                saw_inf |= bound == f64::INFINITY;
                let le = gofloat::format(bound);
                let value = count(bucket.cumulative_count, bucket.cumulative_count_float);
                sample(out, name, "_bucket", labels, Some(("le", &le)), &value);
            }
            let total = count(histogram.sample_count, histogram.sample_count_float);
            if !saw_inf {
                sample(out, name, "_bucket", labels, Some(("le", "+Inf")), &total);
            }
            sample(
                out,
                name,
                "_sum",
                labels,
                None,
                &float(histogram.sample_sum),
            );
            sample(out, name, "_count", labels, None, &total);
        }
        _ => {
            let value = metric.untyped.as_ref().and_then(|u| u.value);
            sample(out, name, "", labels, None, &float(value));
        }
    }
}

fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[LabelPair],
    extra: Option<(&str, &str)>,
    value: &str,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || extra.is_some() {
        out.push('{');
        let mut first = true;
        let pairs = labels.iter().map(|l| (l.name(), l.value())).chain(extra);
        for (label, label_value) in pairs {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(label);
            out.push_str("=\"");
            escape_into(out, label_value, true);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

/// Escapes `\` and newline (HELP), plus `"` in label values.
fn escape_into(out: &mut String, text: &str, quotes: bool) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests;
