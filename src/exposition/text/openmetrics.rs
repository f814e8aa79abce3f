//! OpenMetrics 1.0 text, mapped onto the Pushgateway data model.
//!
//! The Pushgateway itself has no OpenMetrics parser (it reads such bodies as
//! text 0.0.4); these are our decisions, chosen so the stored series are the
//! ones Prometheus stores when it scrapes the same exposition:
//! - a counter `foo` becomes the COUNTER family `foo_total` (the sample
//!   name), the name the Go and Python clients also push in text 0.0.4;
//! - `_created` samples become the `created_timestamp` of the counter,
//!   summary or histogram metric with the same labels, not series;
//! - `info` `foo` becomes the GAUGE family `foo_info` (value as given);
//!   `stateset` becomes a GAUGE family; `unknown` becomes UNTYPED;
//!   `gaugehistogram` becomes GAUGE_HISTOGRAM with `_gsum`/`_gcount` as the
//!   histogram's sum/count;
//! - `# UNIT` fills `MetricFamily.unit`; exemplars are kept on a counter's
//!   sample and on a histogram bucket (where the client data model has a
//!   place for them; elsewhere they are checked for syntax and dropped);
//!   timestamps (float seconds) become `timestamp_ms`;
//! - `# EOF` must end the body; a sample whose name does not belong to the
//!   family announced by the preceding metadata is an untyped family of its
//!   own; other `#` lines are ignored.
//!
//! Errors read `openmetrics parsing error in line N: <problem>`.
//!
//! Layout: this module walks the lines and places each sample in its
//! family; `line` reads a sample line's label set, escapes and trailer;
//! the parsed samples go to a `Sink`: `owned` builds `MetricFamily`
//! values, `indexed` the borrowed index.

mod indexed;
mod line;
mod owned;

use std::borrow::Cow;
use std::collections::HashMap;

use memchr::memchr;

use super::scan::{metric_name_end, parse_go_float, skip_blanks, token_end};
use crate::exposition::ParseError;
use crate::exposition::goquote::quote;
use crate::exposition::index::TextIndex;
use crate::proto::client::{Exemplar, MetricFamily, MetricType};
use indexed::IndexSink;
use line::{created, label_set, trailer, unescape};
use owned::Owned;

/// The OpenMetrics family types.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum OmType {
    Counter,
    Gauge,
    Summary,
    Histogram,
    GaugeHistogram,
    StateSet,
    Info,
    Unknown,
}

impl OmType {
    fn from_word(word: &str) -> Option<Self> {
        Some(match word {
            "counter" => Self::Counter,
            "gauge" => Self::Gauge,
            "summary" => Self::Summary,
            "histogram" => Self::Histogram,
            "gaugehistogram" => Self::GaugeHistogram,
            "stateset" => Self::StateSet,
            "info" => Self::Info,
            "unknown" => Self::Unknown,
            _ => return None,
        })
    }

    fn model(self) -> MetricType {
        match self {
            Self::Counter => MetricType::Counter,
            Self::Gauge | Self::StateSet | Self::Info => MetricType::Gauge,
            Self::Summary => MetricType::Summary,
            Self::Histogram => MetricType::Histogram,
            Self::GaugeHistogram => MetricType::GaugeHistogram,
            Self::Unknown => MetricType::Untyped,
        }
    }

    /// The name the model family gets for OpenMetrics family `name`.
    fn family_name(self, name: &str) -> String {
        match self {
            Self::Counter => format!("{name}_total"),
            Self::Info => format!("{name}_info"),
            _ => name.to_string(),
        }
    }
}

/// What a sample line contributes to its metric.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Value,
    Sum,
    Count,
    Bucket,
    Quantile,
    Created,
}

/// The family announced by the latest metadata lines.
struct Announced {
    name: String,
    kind: OmType,
    help: Option<String>,
    unit: Option<String>,
    family: Option<usize>,
}

/// A sample's labels, borrowed from its line unless unescaped.
type Labels<'a> = Vec<(&'a str, Cow<'a, str>)>;

/// One parsed sample line, placed in its family.
struct Sample<'a, 'l> {
    family: usize,
    kind: OmType,
    part: Part,
    /// Without the `le` or `quantile` label (that is the selector).
    labels: &'l [(&'a str, Cow<'a, str>)],
    selector: Option<f64>,
    value: f64,
    timestamp_ms: Option<i64>,
    exemplar: Option<Exemplar>,
}

/// The sink cannot hold the body: the owned model must (see
/// `indexed::IndexSink`).
struct NeedsOwnedModel;

/// Where the parsed families go: owned families, or an index.
trait Sink<'a> {
    /// Starts the next family (numbered from 0 in order), which gets the
    /// next sample.
    fn family(
        &mut self,
        name: String,
        kind: OmType,
        help: Option<String>,
        unit: Option<String>,
    ) -> Result<(), NeedsOwnedModel>;

    /// Adds a sample to its family.
    fn sample(&mut self, sample: Sample<'a, '_>) -> Result<(), NeedsOwnedModel>;
}

/// The families read so far, by name and model type, and their sink.
struct Builder<S> {
    by_name: HashMap<String, usize>,
    kinds: Vec<MetricType>,
    sink: S,
}

/// Why a parse stopped.
enum Stop {
    Invalid(ParseError),
    NeedsOwnedModel,
}

/// Parses an OpenMetrics text body into owned families.
pub(super) fn parse(body: &[u8]) -> Result<Vec<MetricFamily>, ParseError> {
    let fail = |line: usize| {
        ParseError(format!(
            "openmetrics parsing error in line {line}: invalid UTF-8"
        ))
    };
    let text = std::str::from_utf8(body).map_err(|err| {
        let line = body[..err.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        fail(line)
    })?;
    match run(text, Owned::default()) {
        Ok(owned) => Ok(owned
            .families
            .into_iter()
            .filter(|f| !f.metric.is_empty())
            .collect()),
        Err(Stop::Invalid(err)) => Err(err),
        Err(Stop::NeedsOwnedModel) => unreachable!("the owned model holds every body"),
    }
}

/// Parses `text` into an index (see [`indexed`]): `Ok(None)` when the
/// owned model must hold it.
pub(super) fn parse_index(text: &str) -> Result<Option<TextIndex>, ParseError> {
    match run(text, IndexSink::new(text)) {
        Ok(sink) => {
            let IndexSink {
                mut index,
                mut helps,
                ..
            } = sink;
            index.finish(|slot| helps.get_mut(slot).and_then(Option::take));
            Ok(Some(index))
        }
        Err(Stop::Invalid(err)) => Err(err),
        Err(Stop::NeedsOwnedModel) => Ok(None),
    }
}

/// Parses `text` into `sink`.
fn run<'a, S: Sink<'a>>(text: &'a str, sink: S) -> Result<S, Stop> {
    let mut line_no = 0usize;
    let fail = |line: usize, problem: String| {
        Stop::Invalid(ParseError(format!(
            "openmetrics parsing error in line {line}: {problem}"
        )))
    };
    let mut builder = Builder {
        by_name: HashMap::new(),
        kinds: Vec::new(),
        sink,
    };
    // One line's labels, reused.
    let mut labels: Labels<'a> = Vec::new();
    let mut announced: Option<Announced> = None;
    let mut seen_eof = false;
    let mut rest = text;
    while !rest.is_empty() {
        line_no += 1;
        let (line, next) = match memchr(b'\n', rest.as_bytes()) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, ""),
        };
        rest = next;
        if seen_eof {
            return Err(fail(line_no, "unexpected content after \"# EOF\"".into()));
        }
        if line == "# EOF" {
            seen_eof = true;
            continue;
        }
        let outcome = if let Some(comment) = line.strip_prefix('#') {
            metadata(comment, &mut announced, &builder).map_err(Fault::Problem)
        } else {
            sample(line, &mut labels, &mut announced, &mut builder)
        };
        match outcome {
            Ok(()) => {}
            Err(Fault::Problem(problem)) => return Err(fail(line_no, problem)),
            Err(Fault::NeedsOwnedModel) => return Err(Stop::NeedsOwnedModel),
        }
    }
    if !seen_eof {
        return Err(fail(line_no.max(1), "missing \"# EOF\" at the end".into()));
    }
    Ok(builder.sink)
}

/// Why a line was not read.
enum Fault {
    /// The line is invalid: the problem, for the error message.
    Problem(String),
    NeedsOwnedModel,
}

impl From<String> for Fault {
    fn from(problem: String) -> Self {
        Self::Problem(problem)
    }
}

impl From<NeedsOwnedModel> for Fault {
    fn from(_: NeedsOwnedModel) -> Self {
        Self::NeedsOwnedModel
    }
}

/// `# TYPE`, `# HELP`, `# UNIT`: update the announced family.
fn metadata<S>(
    comment: &str,
    announced: &mut Option<Announced>,
    builder: &Builder<S>,
) -> Result<(), String> {
    let Some(rest) = comment.strip_prefix(' ') else {
        return Ok(());
    };
    let (keyword, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if !matches!(keyword, "TYPE" | "HELP" | "UNIT") {
        return Ok(());
    }
    let name_len = metric_name_end(rest.as_bytes(), 0);
    if name_len == 0 {
        return Err(format!("invalid metric name in # {keyword} line"));
    }
    let name = &rest[..name_len];
    let value = match &rest[name_len..] {
        "" => "",
        tail => tail
            .strip_prefix(' ')
            .ok_or_else(|| format!("invalid metric name in # {keyword} line"))?,
    };
    if announced.as_ref().is_none_or(|a| a.name != name) {
        if builder.by_name.contains_key(name)
            || builder.by_name.contains_key(&format!("{name}_total"))
            || builder.by_name.contains_key(&format!("{name}_info"))
        {
            return Err(format!(
                "metric family {} is not contiguous",
                quote(name.as_bytes())
            ));
        }
        *announced = Some(Announced {
            name: name.to_string(),
            kind: OmType::Unknown,
            help: None,
            unit: None,
            family: None,
        });
    }
    let Some(current) = announced.as_mut() else {
        return Ok(());
    };
    if current.family.is_some() {
        return Err(format!(
            "# {keyword} line for {} after its samples",
            quote(name.as_bytes())
        ));
    }
    match keyword {
        "TYPE" => {
            current.kind = OmType::from_word(value)
                .ok_or_else(|| format!("unknown metric type {}", quote(value.as_bytes())))?;
        }
        "HELP" => {
            let help = unescape(value, false)?;
            current.help = (!help.is_empty()).then(|| help.into_owned());
        }
        _ => current.unit = Some(value.to_string()),
    }
    Ok(())
}

/// Which part of which announced family a sample name is.
fn classify(kind: OmType, family: &str, sample: &str) -> Option<Part> {
    let suffix = sample.strip_prefix(family)?;
    let part = match (kind, suffix) {
        (OmType::Counter, "_total") => Part::Value,
        (OmType::Counter | OmType::Summary | OmType::Histogram, "_created") => Part::Created,
        (OmType::Summary, "") => Part::Quantile,
        (OmType::Summary | OmType::Histogram, "_sum") => Part::Sum,
        (OmType::Summary | OmType::Histogram, "_count") => Part::Count,
        (OmType::Histogram | OmType::GaugeHistogram, "_bucket") => Part::Bucket,
        (OmType::GaugeHistogram, "_gsum") => Part::Sum,
        (OmType::GaugeHistogram, "_gcount") => Part::Count,
        (OmType::Info, "_info") => Part::Value,
        (OmType::Gauge | OmType::StateSet | OmType::Unknown, "") => Part::Value,
        _ => return None,
    };
    Some(part)
}

fn sample<'a, S: Sink<'a>>(
    line: &'a str,
    labels: &mut Labels<'a>,
    announced: &mut Option<Announced>,
    b: &mut Builder<S>,
) -> Result<(), Fault> {
    let bytes = line.as_bytes();
    let name_end = metric_name_end(bytes, 0);
    if name_end == 0 {
        return Err(Fault::Problem("invalid metric name".into()));
    }
    let name = &line[..name_end];
    labels.clear();
    let after_labels = if bytes.get(name_end) == Some(&b'{') {
        label_set(line, name_end + 1, labels)?
    } else {
        name_end
    };
    let value_start = skip_blanks(bytes, after_labels);
    if value_start == after_labels {
        return Err(format!("expected a space after {}", quote(name.as_bytes())).into());
    }
    let value_end = token_end(bytes, value_start);
    let token = &bytes[value_start..value_end];
    let value = parse_go_float(token)
        .ok_or_else(|| format!("expected float as value, got {}", quote(token)))?;
    let (timestamp_ms, exemplar) = trailer(line, value_end)?;

    let placed = announced
        .as_ref()
        .and_then(|a| Some((a, classify(a.kind, &a.name, name)?)));
    let (family, kind, part) = match placed {
        Some((a, part)) => {
            let kind = a.kind;
            let family = match a.family {
                Some(family) => family,
                None => {
                    let (help, unit) = (a.help.clone(), a.unit.clone());
                    b.new_family(kind.family_name(&a.name), kind, help, unit)?
                }
            };
            if let Some(current) = announced.as_mut() {
                current.family = Some(family);
            }
            (family, kind, part)
        }
        None => {
            // A sample outside its announced family: an untyped family of
            // its own, as a scraper would read it.
            *announced = None;
            let family = match b.by_name.get(name) {
                // Only the family just being read may continue.
                Some(&family)
                    if family + 1 == b.kinds.len() && b.kinds[family] == MetricType::Untyped =>
                {
                    family
                }
                Some(_) => {
                    return Err(format!(
                        "samples of {} are not contiguous",
                        quote(name.as_bytes())
                    )
                    .into());
                }
                None => b.new_family(name.to_string(), OmType::Unknown, None, None)?,
            };
            (family, OmType::Unknown, Part::Value)
        }
    };

    let selector_name = match part {
        Part::Bucket => Some("le"),
        Part::Quantile => Some("quantile"),
        _ => None,
    };
    let mut selector = None;
    if let Some(selector_name) = selector_name {
        let at = labels
            .iter()
            .position(|(n, _)| *n == selector_name)
            .ok_or_else(|| {
                format!(
                    "missing {selector_name:?} label on {}",
                    quote(name.as_bytes())
                )
            })?;
        let (_, raw) = labels.remove(at);
        selector = Some(parse_go_float(raw.as_bytes()).ok_or_else(|| {
            format!(
                "expected float as value for '{selector_name}' label, got {}",
                quote(raw.as_bytes())
            )
        })?);
    }
    b.sink.sample(Sample {
        family,
        kind,
        part,
        labels,
        selector,
        value,
        timestamp_ms,
        exemplar,
    })?;
    Ok(())
}

impl<'a, S: Sink<'a>> Builder<S> {
    /// Registers a family of OpenMetrics type `kind` with its model name,
    /// and starts it in the sink; its number.
    fn new_family(
        &mut self,
        name: String,
        kind: OmType,
        help: Option<String>,
        unit: Option<String>,
    ) -> Result<usize, NeedsOwnedModel> {
        let index = self.kinds.len();
        self.by_name.insert(name.clone(), index);
        self.kinds.push(kind.model());
        self.sink
            .family(name, kind, help, unit.filter(|u| !u.is_empty()))?;
        Ok(index)
    }
}

impl OmType {
    /// Whether a metric's samples may span lines (grouped by label set);
    /// else each line is a metric of its own.
    fn multi_line(self) -> bool {
        matches!(
            self,
            Self::Counter | Self::Summary | Self::Histogram | Self::GaugeHistogram
        )
    }
}
