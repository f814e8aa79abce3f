//! The text 0.0.4 parser: one pass over the body bytes, building
//! `MetricFamily` values with the semantics (and the error messages) of Go's
//! `expfmt.TextParser` as vendored by Pushgateway 1.5.1.
//!
//! Contract: the body is validated as UTF-8 once; names, label values and
//! numbers are borrowed slices of it until they are copied into the model,
//! so the only allocations are the owned strings and vectors of the model
//! itself (plus label values that contain escapes). Every error carries the
//! line number Go reports. Families come out in the order first seen, empty
//! ones dropped.

mod build;
mod labels;

use build::set_value;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use memchr::{memchr, memchr2};

use super::scan::{
    is_blank, is_metric_name_byte, metric_name_end, parse_go_float, parse_go_int,
    short_decimal_token, skip_blanks, token_end,
};
use crate::exposition::ParseError;
use crate::exposition::goquote::quote;
use crate::exposition::index::{Role, TextIndex};
use crate::hashing::Seeded;
use crate::proto::client::{MetricFamily, MetricType};

/// Why parsing stopped: the input ended mid-line, or a syntax problem worded
/// as Go words it.
pub(super) enum Fault {
    Eof,
    Msg(String),
    /// The body is valid so far but the index cannot hold it (see
    /// `exposition::index`): parse it into the owned model instead.
    NeedsOwnedModel,
}

/// What the parser builds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Build {
    /// Nothing: only the syntax is checked.
    Nothing,
    /// Owned `MetricFamily` values.
    Families,
    /// A [`TextIndex`] into the body.
    Index,
}

type Step<T> = Result<T, Fault>;

/// What a sample name refers to: a family, and whether the line is that
/// summary's or histogram's `_sum` or `_count`.
#[derive(Clone, Copy)]
struct Resolved {
    family: usize,
    role: Role,
}

pub(super) struct Parser<'a> {
    body: &'a [u8],
    /// The whole body as text when it is valid UTF-8 (the common case):
    /// slicing it at ASCII delimiters needs no further validation.
    text: Option<&'a str>,
    line: usize,
    families: Vec<MetricFamily>,
    kinds: Vec<Option<MetricType>>,
    /// Summary/histogram metrics of each family by their label set.
    groups: Vec<HashMap<Box<[u8]>, usize, Seeded>>,
    /// Summary/histogram metrics in the index by family and a hash of
    /// their label set.
    indexed_groups: HashMap<(usize, u64), usize, Seeded>,
    by_name: HashMap<&'a [u8], usize, Seeded>,
    resolved: HashMap<&'a [u8], Resolved, Seeded>,
    last_resolved: Option<(&'a [u8], Resolved)>,
    /// Labels of the current line (reused across lines).
    labels: Vec<(&'a str, Cow<'a, str>)>,
    group_key: Vec<u8>,
    label_order: Vec<usize>,
    /// Names of the current line's labels once there are many of them, so
    /// the duplicate check stays linear on hostile lines.
    label_names: HashSet<&'a str, Seeded>,
    build: Build,
    /// The metrics, when building an index (families still hold names and
    /// help texts).
    index: TextIndex,
    samples: usize,
}

impl<'a> Parser<'a> {
    /// A parser building an index into `body` (already known to be text).
    pub(super) fn indexing(body: &'a str) -> Self {
        Self::with_text(body.as_bytes(), Some(body), Build::Index)
    }

    pub(super) fn new(body: &'a [u8], build: Build) -> Self {
        Self::with_text(body, std::str::from_utf8(body).ok(), build)
    }

    fn with_text(body: &'a [u8], text: Option<&'a str>, build: Build) -> Self {
        let index = match build {
            // Exact room for a body of one-label lines, about right for
            // others: growing by doubling would copy the index and, at its
            // peak, hold half of it twice.
            // (A label value has two quotes; memchr counts with SIMD.)
            Build::Index => TextIndex::for_text(
                memchr::memchr_iter(b'\n', body).count(),
                memchr::memchr_iter(b'"', body).count() / 2,
            ),
            _ => TextIndex::default(),
        };
        Parser {
            body,
            text,
            line: 0,
            families: Vec::new(),
            kinds: Vec::new(),
            groups: Vec::new(),
            indexed_groups: HashMap::default(),
            by_name: HashMap::default(),
            resolved: HashMap::default(),
            last_resolved: None,
            labels: Vec::new(),
            group_key: Vec::new(),
            label_order: Vec::new(),
            label_names: HashSet::default(),
            build,
            index,
            samples: 0,
        }
    }

    /// Parses the whole body into an index; `None` when the body needs the
    /// owned model (see [`Fault::NeedsOwnedModel`]).
    pub(super) fn run_index(mut self) -> Result<Option<TextIndex>, ParseError> {
        match self.lines() {
            Ok(()) => {}
            Err(Fault::NeedsOwnedModel) => return Ok(None),
            Err(fault) => return Err(self.error(fault)),
        }
        let mut helps: Vec<Option<String>> =
            self.families.iter_mut().map(|f| f.help.take()).collect();
        self.index
            .finish(|slot| helps.get_mut(slot).and_then(Option::take));
        Ok(Some(self.index))
    }

    pub(super) fn run(mut self) -> Result<Vec<MetricFamily>, ParseError> {
        if let Err(fault) = self.lines() {
            return Err(self.error(fault));
        }
        Ok(self
            .families
            .into_iter()
            .zip(self.kinds)
            .filter(|(family, _)| !family.metric.is_empty())
            .map(|(mut family, kind)| {
                family.r#type = kind.map(|k| k as i32);
                family
            })
            .collect())
    }

    /// Checks the whole body; returns the number of sample lines.
    pub(super) fn count(mut self) -> Result<usize, ParseError> {
        match self.lines() {
            Ok(()) => Ok(self.samples),
            Err(fault) => Err(self.error(fault)),
        }
    }

    fn error(&self, fault: Fault) -> ParseError {
        let problem = match fault {
            Fault::Eof => "unexpected end of input stream".to_string(),
            Fault::Msg(message) => message,
            // Only `run_index` meets it, and handles it.
            Fault::NeedsOwnedModel => "the body needs the owned model".to_string(),
        };
        ParseError(format!(
            "text format parsing error in line {}: {problem}",
            self.line
        ))
    }

    fn lines(&mut self) -> Step<()> {
        let mut pos = 0;
        loop {
            self.line += 1;
            let start = skip_blanks(self.body, pos);
            let Some(&first) = self.body.get(start) else {
                return Ok(());
            };
            pos = match first {
                b'#' => self.comment(start)?,
                b'\n' => start + 1,
                _ => self.sample(start)?,
            };
        }
    }

    /// The byte at `at`; running off the end is the end-of-input fault.
    #[inline]
    fn byte(&self, at: usize) -> Step<u8> {
        self.body.get(at).copied().ok_or(Fault::Eof)
    }

    #[inline]
    fn str_at(&self, start: usize, end: usize) -> Option<&'a str> {
        match self.text {
            Some(text) => text.get(start..end),
            None => std::str::from_utf8(self.body.get(start..end)?).ok(),
        }
    }

    /// Index just past the newline ending the line that contains `from`.
    fn next_line(&self, from: usize) -> Step<usize> {
        memchr(b'\n', &self.body[from..])
            .map(|offset| from + offset + 1)
            .ok_or(Fault::Eof)
    }

    /// A `#` line: HELP, TYPE, or a comment to skip. Returns the start of
    /// the next line.
    fn comment(&mut self, hash: usize) -> Step<usize> {
        let body = self.body;
        let start = skip_blanks(body, hash + 1);
        if self.byte(start)? == b'\n' {
            return Ok(start + 1);
        }
        let end = token_end(body, start);
        if self.byte(end)? == b'\n' {
            return Ok(end + 1);
        }
        let keyword = &body[start..end];
        let is_help = keyword == b"HELP";
        if !is_help && keyword != b"TYPE" {
            return self.next_line(end);
        }
        let name_start = skip_blanks(body, end + 1);
        self.byte(name_start)?;
        let name_end = metric_name_end(body, name_start);
        let after_name = self.byte(name_end)?;
        if after_name == b'\n' {
            return Ok(name_end + 1);
        }
        if !is_blank(after_name) {
            return Err(Fault::Msg("invalid metric name in comment".into()));
        }
        let family = self.resolve(name_start, name_end)?.family;
        let text_start = skip_blanks(body, name_end + 1);
        if self.byte(text_start)? == b'\n' {
            return Ok(text_start + 1);
        }
        if is_help {
            if self.families[family].help.is_some() {
                return Err(Fault::Msg(format!(
                    "second HELP line for metric name {}",
                    quote(self.families[family].name().as_bytes())
                )));
            }
            let (help, newline) = self.help_text(text_start)?;
            self.families[family].help = Some(help);
            Ok(newline + 1)
        } else {
            if self.kinds[family].is_some() {
                return Err(Fault::Msg(format!(
                    "second TYPE line for metric name {}, or TYPE reported after samples",
                    quote(self.families[family].name().as_bytes())
                )));
            }
            let next = self.next_line(text_start)?;
            let word = without_backslashes(&body[text_start..next - 1]);
            let kind = metric_type(&word)
                .ok_or_else(|| Fault::Msg(format!("unknown metric type {}", quote(&word))))?;
            self.kinds[family] = Some(kind);
            Ok(next)
        }
    }

    /// The rest of a HELP line with `\\` and `\n` unescaped; returns the text
    /// and the index of the terminating newline.
    fn help_text(&self, start: usize) -> Step<(String, usize)> {
        let body = self.body;
        let mut text: Vec<u8> = Vec::new();
        let mut from = start;
        loop {
            let at = memchr2(b'\\', b'\n', &body[from..])
                .map(|offset| from + offset)
                .ok_or(Fault::Eof)?;
            text.extend_from_slice(&body[from..at]);
            if body[at] == b'\n' {
                // HELP is not validated as UTF-8 by the Pushgateway's parser;
                // the model needs a String, so bad bytes become U+FFFD.
                let help = match String::from_utf8(text) {
                    Ok(help) => help,
                    Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
                };
                return Ok((help, at));
            }
            match self.byte(at + 1)? {
                b'\\' => text.push(b'\\'),
                b'n' => text.push(b'\n'),
                other => return Err(invalid_escape(other)),
            }
            from = at + 2;
        }
    }

    /// A sample line starting at `start`. Returns the start of the next line.
    fn sample(&mut self, start: usize) -> Step<usize> {
        let body = self.body;
        let (name_end, after_name, Resolved { family, role }) = match self.same_name(start) {
            Some(known) => known,
            None => {
                let name_end = metric_name_end(body, start);
                if name_end == start {
                    return Err(Fault::Msg("invalid metric name".into()));
                }
                let after_name = self.byte(name_end)?;
                (name_end, after_name, self.resolve(start, name_end)?)
            }
        };
        let kind = *self.kinds[family].get_or_insert(MetricType::Untyped);
        let mut at = name_end;
        if is_blank(after_name) {
            at = skip_blanks(body, name_end + 1);
            self.byte(at)?;
        }
        self.labels.clear();
        self.label_names.clear();
        let mut selector = f64::NAN;
        if body[at] == b'{' {
            at = self.label_set(at + 1, family, kind, &mut selector)?;
        }
        self.samples += 1;
        let index = match (self.build, kind) {
            (Build::Nothing, _) => None,
            (Build::Families, MetricType::Summary | MetricType::Histogram) => {
                Some(self.grouped_metric(family))
            }
            (Build::Families, _) => {
                self.reserve_run(family, start, name_end);
                Some(self.new_metric(family))
            }
            (Build::Index, MetricType::Counter | MetricType::Gauge | MetricType::Untyped) => {
                Some(self.new_indexed_metric(family, kind)?)
            }
            (Build::Index, MetricType::Summary | MetricType::Histogram) => {
                Some(self.grouped_indexed_metric(family, kind)?)
            }
            (Build::Index, MetricType::GaugeHistogram) => return Err(Fault::NeedsOwnedModel),
        };
        // Most values are short decimals, read as the token is found.
        let (value_end, short) = match short_decimal_token(body, at) {
            Some((end, value)) => (end, Some(value)),
            None => (token_end(body, at), None),
        };
        let terminator = self.byte(value_end)?;
        let value = match short {
            Some(value) => value,
            None => {
                let token = &body[at..value_end];
                parse_go_float(token).ok_or_else(|| {
                    Fault::Msg(format!("expected float as value, got {}", quote(token)))
                })?
            }
        };
        match index {
            Some(index) if self.build == Build::Index => self
                .index
                .set_value(family, index, role, selector, value)
                .then_some(())
                .ok_or(Fault::NeedsOwnedModel)?,
            Some(index) => {
                let metric = &mut self.families[family].metric[index];
                set_value(metric, kind, role, selector, value);
            }
            None => {}
        }
        if terminator == b'\n' {
            return Ok(value_end + 1);
        }
        let ts_start = skip_blanks(body, value_end + 1);
        self.byte(ts_start)?;
        let ts_end = token_end(body, ts_start);
        self.byte(ts_end)?;
        let token = &body[ts_start..ts_end];
        let timestamp = parse_go_int(token).ok_or_else(|| {
            Fault::Msg(format!(
                "expected integer as timestamp, got {}",
                quote(token)
            ))
        })?;
        match index {
            Some(index) if self.build == Build::Index => self
                .index
                .set_timestamp(index, timestamp)
                .then_some(())
                .ok_or(Fault::NeedsOwnedModel)?,
            Some(index) => self.families[family].metric[index].timestamp_ms = Some(timestamp),
            None => {}
        }
        let next = self.next_line(ts_end)?;
        let rest = without_backslashes(&body[ts_end..next - 1]);
        if !rest.is_empty() {
            return Err(Fault::Msg(format!(
                "spurious string after timestamp: {}",
                quote(&rest)
            )));
        }
        Ok(next)
    }

    /// When the line at `start` names the metric the previous sample line
    /// named (the usual case), its end, the byte after it and what it
    /// resolves to, without scanning the name byte by byte.
    #[inline]
    fn same_name(&self, start: usize) -> Option<(usize, u8, Resolved)> {
        let (last, resolved) = self.last_resolved?;
        let end = start + last.len();
        let after = *self.body.get(end)?;
        (self.body[start..].starts_with(last) && !is_metric_name_byte(after))
            .then_some((end, after, resolved))
    }
}

/// `# TYPE` words, matched case-insensitively as Go's `strings.ToUpper`
/// (simple per-rune upper-casing) against the `MetricType` names.
fn metric_type(word: &[u8]) -> Option<MetricType> {
    let word = std::str::from_utf8(word).ok()?;
    let upper: String = word
        .chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(single), None) => single,
                _ => c,
            }
        })
        .collect();
    MetricType::from_str_name(&upper)
}

/// Go's raw rest-of-line reading drops every backslash.
fn without_backslashes(bytes: &[u8]) -> Cow<'_, [u8]> {
    if memchr(b'\\', bytes).is_none() {
        Cow::Borrowed(bytes)
    } else {
        Cow::Owned(bytes.iter().copied().filter(|&b| b != b'\\').collect())
    }
}

fn invalid_escape(after_backslash: u8) -> Fault {
    Fault::Msg(format!(
        "invalid escape sequence '\\{}'",
        char::from(after_backslash)
    ))
}
