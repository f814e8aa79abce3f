//! `GET /metrics` in cache mode: every group's families merged by name with
//! pushrelay's own families, sorted as the Pushgateway (client_golang)
//! sorts them, written as text 0.0.4 or delimited protobuf, gzipped when
//! asked.
//!
//! Rules, as the Pushgateway exposes its store: families by name (byte order), empty families
//! omitted; metrics by number of labels, then label values position by
//! position; `# HELP` only when a help string is set; `# TYPE` always;
//! `le`/`quantile` after the sorted labels; a `+Inf` bucket added in text
//! when missing; floats as Go prints them (`crate::exposition::gofloat`);
//! never a sample timestamp. Every group exposes `push_time_seconds` and
//! `push_failure_time_seconds`. When several groups give one family different
//! HELP strings, the earliest stored wins (the Pushgateway picks at random);
//! pushrelay's own HELP wins over a pushed one, as in the Pushgateway.
//!
//! Cost: a stored family keeps its text, sorted, once rendered
//! (`crate::cache::stored`); a scrape merges the groups' sorted families
//! (a k-way merge over runs, not a sort) and copies their bytes. With a
//! `MergeCache` the merge order of a family whose stored families did not
//! change since the previous scrape is reused, so a scrape of an unchanged
//! store is a copy of cached bytes plus the own families and the stamps.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::{Arc, PoisonError};
use std::time::SystemTime;

use prost::encoding::{self, WireType};

use super::consistency::full_check;
use super::merge_order::{CachedOrder, MergeCache};
use super::signatures::family_type;
use super::stored::Group;
use super::stored::{Labels, SortedView, StoredFamily, compare_values};
use super::text;
use crate::proto::client::{Gauge, LabelPair, Metric, MetricFamily, MetricType};
use crate::telemetry::{PUSH_FAILURE_TIME, PUSH_FAILURE_TIME_HELP, PUSH_TIME, PUSH_TIME_HELP};

/// `Content-Type` of the text exposition.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `Content-Type` of the delimited protobuf exposition.
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

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

/// Where the metrics of one exposed family come from.
enum Source<'a> {
    /// Decoded metrics, sorted: own families, the stamps, and stored
    /// families whose type renders differently from the exposed one.
    Decoded(Vec<&'a Metric>),
    /// A stored family: its stored bytes and cached text, in scrape order.
    Stored(&'a Arc<StoredFamily>, &'a SortedView),
}

impl<'a> Source<'a> {
    fn len(&self) -> usize {
        match self {
            Self::Decoded(metrics) => metrics.len(),
            Self::Stored(_, view) => view.order.len(),
        }
    }

    /// The label values of the metric at `position`, for the merge.
    fn values(&self, position: usize) -> Values<'a> {
        match self {
            Self::Decoded(metrics) => Values::Decoded(metrics[position].label.iter()),
            Self::Stored(stored, view) => {
                Values::Stored(stored.labels(view.order[position] as usize))
            }
        }
    }
}

#[derive(Clone)]
enum Values<'a> {
    Decoded(std::slice::Iter<'a, LabelPair>),
    Stored(Labels<'a>),
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            Self::Decoded(labels) => labels.next().map(|l| l.value().as_bytes()),
            Self::Stored(labels) => labels.next().map(|(_, v)| v),
        }
    }
}

/// One family as exposed: the merge of every source of that name.
struct Merged<'a> {
    name: &'a str,
    help: Option<&'a str>,
    kind: i32,
    sources: Vec<Source<'a>>,
    /// (stored at, group position) of the pushed family whose HELP is used;
    /// `None` for own families and the stamps, whose HELP always wins.
    help_rank: Option<(SystemTime, usize)>,
}

impl Merged<'_> {
    fn len(&self) -> usize {
        self.sources.iter().map(Source::len).sum()
    }

    /// Every metric as (source, position), in scrape order: a stable k-way
    /// merge of the sorted sources (equal metrics keep source order, as one
    /// stable sort of all of them would). A source yields a whole run of
    /// metrics while they sort before every other source's next metric.
    fn order(&self) -> Vec<(u32, u32)> {
        // A head: (source, position, that metric's label values).
        type Head<'v> = (usize, usize, Vec<&'v [u8]>);
        let key = |s: usize, p: usize| self.sources[s].values(p).collect::<Vec<_>>();
        let before = |a: &Head<'_>, b: &Head<'_>| {
            compare_values(a.2.iter().copied(), b.2.iter().copied()).then(a.0.cmp(&b.0))
        };
        let mut heads: Vec<Head<'_>> = (0..self.sources.len())
            .filter(|s| self.sources[*s].len() > 0)
            .map(|s| (s, 0, key(s, 0)))
            .collect();
        heads.sort_by(|a, b| before(a, b));
        let mut order = Vec::with_capacity(self.len());
        while !heads.is_empty() {
            let (source, position, _) = heads.remove(0);
            let len = self.sources[source].len();
            // The run ends at the first metric after the next head.
            let end = match heads.first() {
                None => len,
                Some(next) => {
                    let after = |q: usize| {
                        compare_values(self.sources[source].values(q), next.2.iter().copied())
                            .then(source.cmp(&next.0))
                            .is_gt()
                    };
                    // Gallop, then bisect: runs are often long.
                    let (mut low, mut step) = (position + 1, 1);
                    while low + step <= len && !after(low + step - 1) {
                        low += step;
                        step *= 2;
                    }
                    let mut high = (low + step - 1).min(len);
                    while low < high {
                        let middle = low + (high - low) / 2;
                        if after(middle) {
                            high = middle;
                        } else {
                            low = middle + 1;
                        }
                    }
                    low
                }
            };
            // Positions fit in u32: a stored family has fewer than 2^32
            // metrics (its encoding is under 4 GiB).
            order.extend((position..end).map(|p| (source as u32, p as u32)));
            if end < len {
                let head = (source, end, key(source, end));
                let at = heads.partition_point(|h| before(h, &head).is_lt());
                heads.insert(at, head);
            }
        }
        order
    }

    /// [`Merged::order`], from `cache` when it holds the order of exactly
    /// these sources; the order used is recorded in `next`.
    fn order_cached(
        &self,
        cache: Option<&MergeCache>,
        next: &mut HashMap<String, CachedOrder>,
    ) -> Arc<[(u32, u32)]> {
        let stored: Option<Vec<&Arc<StoredFamily>>> = self
            .sources
            .iter()
            .map(|s| match s {
                Source::Stored(stored, _) => Some(*stored),
                Source::Decoded(_) => None,
            })
            .collect();
        // Own families and the stamps change every scrape: never cached.
        let (Some(cache), Some(stored)) = (cache, stored) else {
            return self.order().into();
        };
        let same_sources = |cached: &CachedOrder| {
            cached.sources.len() == stored.len()
                && cached
                    .sources
                    .iter()
                    .zip(&stored)
                    .all(|(weak, arc)| std::ptr::eq(weak.as_ptr(), Arc::as_ptr(arc)))
        };
        let hit = cache
            .families
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(self.name)
            .filter(|c| same_sources(c))
            .map(|c| c.order.clone());
        let order = hit.unwrap_or_else(|| self.order().into());
        next.insert(
            self.name.to_string(),
            CachedOrder {
                sources: stored.iter().map(|arc| Arc::downgrade(arc)).collect(),
                order: order.clone(),
            },
        );
        order
    }
}

/// Whether metrics stored as `stored` render as a family of type `exposed`
/// renders them (histograms and gauge histograms print alike).
fn renders_as(stored: i32, exposed: i32) -> bool {
    let histogram = |k| k == MetricType::Histogram as i32 || k == MetricType::GaugeHistogram as i32;
    stored == exposed || histogram(stored) && histogram(exposed)
}

/// Merges own families, the stamps and every group's families (`ordered`:
/// sorted by grouping key); sorted by name. `mismatched` holds the decoded
/// metrics of stored families whose type differs from their exposed family's.
fn merge<'a>(
    ordered: &[&'a Arc<Group>],
    fixed: &'a [&'a MetricFamily],
    mismatched: &'a HashMap<(usize, &'a str), Vec<Metric>>,
) -> Vec<Merged<'a>> {
    let mut merged: BTreeMap<&'a str, Merged<'a>> = BTreeMap::new();
    for family in fixed {
        let entry = merged.entry(family.name()).or_insert_with(|| Merged {
            name: family.name(),
            help: family.help.as_deref(),
            kind: family_type(family),
            sources: Vec::new(),
            help_rank: None,
        });
        let mut metrics: Vec<&Metric> = family.metric.iter().collect();
        metrics.sort_by(|a, b| compare_metrics(a, b));
        entry.sources.push(Source::Decoded(metrics));
    }
    for (position, group) in ordered.iter().enumerate() {
        for stored in group.families.values() {
            let rank = (stored.stored_at, position);
            let entry = merged.entry(stored.name()).or_insert_with(|| Merged {
                name: stored.name(),
                help: stored.help(),
                kind: stored.kind(),
                sources: Vec::new(),
                help_rank: Some(rank),
            });
            // Pushed HELP: the earliest stored wins; own HELP (no rank) stays.
            if let Some(best) = &mut entry.help_rank
                && rank < *best
            {
                *best = rank;
                entry.help = stored.help();
            }
            if stored.is_empty() {
                continue;
            }
            let source = match mismatched.get(&(position, stored.name())) {
                Some(metrics) => {
                    let mut metrics: Vec<&Metric> = metrics.iter().collect();
                    metrics.sort_by(|a, b| compare_metrics(a, b));
                    Source::Decoded(metrics)
                }
                None => Source::Stored(stored, stored.view()),
            };
            entry.sources.push(source);
        }
    }
    merged.into_values().filter(|f| f.len() > 0).collect()
}

/// The exposed type of every family name: the first source's, own families
/// and stamps first, then groups in key order.
fn exposed_kinds<'a>(
    ordered: &[&'a Arc<Group>],
    fixed: &[&'a MetricFamily],
) -> HashMap<&'a str, i32> {
    let mut kinds = HashMap::new();
    for family in fixed {
        kinds.entry(family.name()).or_insert(family_type(family));
    }
    for group in ordered {
        for stored in group.families.values() {
            kinds.entry(stored.name()).or_insert(stored.kind());
        }
    }
    kinds
}

/// client_golang's metric order: fewer labels first, then label values
/// position by position.
fn compare_metrics(a: &Metric, b: &Metric) -> std::cmp::Ordering {
    compare_values(
        a.label.iter().map(|l| l.value().as_bytes()),
        b.label.iter().map(|l| l.value().as_bytes()),
    )
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
    render_cached(groups, own, format, check_all, None)
}

/// [`render`], reusing and updating the merge orders kept in `cache`.
pub fn render_cached(
    groups: &[Arc<Group>],
    own: &[MetricFamily],
    format: Format,
    check_all: bool,
    cache: Option<&MergeCache>,
) -> Result<Rendered, String> {
    let stamps = stamp_families(groups);
    if check_all {
        let own_types: HashMap<String, i32> = own
            .iter()
            .map(|f| (f.name().to_string(), family_type(f)))
            .collect();
        let decoded: Vec<MetricFamily> = groups
            .iter()
            .flat_map(|g| g.families.values().map(|s| s.family()))
            .collect();
        let all = own.iter().chain(&stamps).chain(&decoded).flat_map(|f| {
            let kind = family_type(f);
            f.metric.iter().map(move |m| (f.name(), kind, m))
        });
        let errors = full_check(all, &own_types);
        if !errors.is_empty() {
            return Err(crate::push::validate::join_errors(&errors));
        }
    }
    let mut ordered: Vec<&Arc<Group>> = groups.iter().collect();
    ordered.sort_by(|a, b| a.key.cmp(&b.key));
    let fixed: Vec<&MetricFamily> = own.iter().chain(&stamps).collect();
    let kinds = exposed_kinds(&ordered, &fixed);
    let mut mismatched = HashMap::new();
    for (position, group) in ordered.iter().enumerate() {
        for stored in group.families.values() {
            if !renders_as(stored.kind(), kinds[stored.name()]) {
                let metrics = (0..stored.len()).map(|i| stored.metric(i)).collect();
                mismatched.insert((position, stored.name()), metrics);
            }
        }
    }
    let families = merge(&ordered, &fixed, &mismatched);
    let mut next = HashMap::new();
    let mut order = |family: &Merged<'_>| family.order_cached(cache, &mut next);
    let body = match format {
        Format::Text => {
            let size = families
                .iter()
                .flat_map(|f| &f.sources)
                .map(|s| match s {
                    Source::Stored(_, view) => view.text.len(),
                    Source::Decoded(metrics) => metrics.len() * 64,
                })
                .sum();
            let mut out = String::with_capacity(size);
            for family in &families {
                write_text_family(&mut out, family, &mut order);
            }
            out.into_bytes()
        }
        Format::Protobuf => {
            let mut out = Vec::new();
            let mut body = Vec::new();
            for family in &families {
                write_protobuf_family(&mut out, &mut body, family, order(family));
            }
            out
        }
    };
    if let Some(cache) = cache {
        *cache
            .families
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = next;
    }
    Ok(Rendered {
        body,
        content_type: format.content_type(),
    })
}

fn write_protobuf_family(
    out: &mut Vec<u8>,
    body: &mut Vec<u8>,
    family: &Merged<'_>,
    order: Arc<[(u32, u32)]>,
) {
    let string_field = |tag: u32, value: &str, body: &mut Vec<u8>| {
        encoding::encode_key(tag, WireType::LengthDelimited, body);
        encoding::encode_varint(value.len() as u64, body);
        body.extend_from_slice(value.as_bytes());
    };
    body.clear();
    string_field(1, family.name, body);
    if let Some(help) = family.help {
        string_field(2, help, body);
    }
    encoding::int32::encode(3, &family.kind, body);
    for &(source, position) in order.iter() {
        let position = position as usize;
        match &family.sources[source as usize] {
            Source::Stored(stored, view) => {
                body.extend_from_slice(stored.entry(view.order[position] as usize));
            }
            Source::Decoded(metrics) => encoding::message::encode(4, metrics[position], body),
        }
    }
    encoding::encode_varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

fn write_text_family(
    out: &mut String,
    family: &Merged<'_>,
    order: &mut impl FnMut(&Merged<'_>) -> Arc<[(u32, u32)]>,
) {
    let name = family.name;
    text::write_header(out, name, family.help, family.kind);
    if let [Source::Stored(_, view)] = family.sources.as_slice() {
        out.push_str(&view.text);
        return;
    }
    for &(source, position) in order(family).iter() {
        let position = position as usize;
        match &family.sources[source as usize] {
            Source::Stored(_, view) => out.push_str(view.text_of(position)),
            Source::Decoded(metrics) => {
                text::write_metric(out, name, family.kind, metrics[position])
            }
        }
    }
}

#[cfg(test)]
mod tests;
