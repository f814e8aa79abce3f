//! A sample line's label set: the names, the quoted (and maybe escaped)
//! values, and the `quantile` or `le` a summary or histogram line selects
//! its value by, with the semantics and messages of Go's `expfmt`.

use std::borrow::Cow;

use memchr::memchr3;

use super::{Fault, Parser, Step, invalid_escape};
use crate::exposition::goquote::{quote, quote_byte};
use crate::exposition::text::scan::{is_blank, label_name_end, parse_go_float, skip_blanks};
use crate::label_order;
use crate::proto::client::MetricType;

impl<'a> Parser<'a> {
    /// The labels after `{` up to `}`; returns the index of the first byte
    /// of the value. A summary's `quantile` and a histogram's `le` go to
    /// `selector` instead of the label list.
    pub(super) fn label_set(
        &mut self,
        mut at: usize,
        family: usize,
        kind: MetricType,
        selector: &mut f64,
    ) -> Step<usize> {
        let body = self.body;
        loop {
            at = skip_blanks(body, at);
            if self.byte(at)? == b'}' {
                let value_start = skip_blanks(body, at + 1);
                self.byte(value_start)?;
                return Ok(value_start);
            }
            let name_end = label_name_end(body, at);
            if name_end == at {
                return Err(Fault::Msg(format!(
                    "invalid label name for metric {}",
                    quote(self.families[family].name().as_bytes())
                )));
            }
            let after_name = self.byte(name_end)?;
            let name = self.str_at(at, name_end).unwrap_or_default();
            if name == "__name__" {
                return Err(Fault::Msg(
                    "label name \"__name__\" is reserved".to_string(),
                ));
            }
            let special = match kind {
                MetricType::Summary => name == "quantile",
                MetricType::Histogram => name == "le",
                _ => false,
            };
            let mut eq = name_end;
            if is_blank(after_name) {
                eq = skip_blanks(body, name_end + 1);
            }
            let found = self.byte(eq)?;
            if found != b'=' {
                return Err(Fault::Msg(format!(
                    "expected '=' after label name, found {}",
                    quote_byte(found)
                )));
            }
            if !special && self.has_label(name) {
                return Err(Fault::Msg(format!(
                    "duplicate label names for metric {}",
                    quote(self.families[family].name().as_bytes())
                )));
            }
            let open = skip_blanks(body, eq + 1);
            let found = self.byte(open)?;
            if found != b'"' {
                return Err(Fault::Msg(format!(
                    "expected '\"' at start of label value, found {}",
                    quote_byte(found)
                )));
            }
            let (value, close) = self.label_value(open + 1)?;
            if special {
                let label = if kind == MetricType::Summary {
                    "quantile"
                } else {
                    "le"
                };
                *selector = parse_go_float(value.as_bytes()).ok_or_else(|| {
                    Fault::Msg(format!(
                        "expected float as value for '{label}' label, got {}",
                        quote(value.as_bytes())
                    ))
                })?;
            }
            let after_value = skip_blanks(body, close + 1);
            let separator = self.byte(after_value)?;
            if separator != b',' && separator != b'}' {
                return Err(Fault::Msg(format!(
                    "unexpected end of label value {}",
                    quote(value.as_bytes())
                )));
            }
            if !special {
                self.index.note_label_name(name);
                self.labels.push((name, value));
            }
            if separator == b'}' {
                let value_start = skip_blanks(body, after_value + 1);
                self.byte(value_start)?;
                return Ok(value_start);
            }
            at = after_value + 1;
        }
    }

    /// Whether the current line already has a label `name`.
    fn has_label(&mut self, name: &'a str) -> bool {
        const SCAN_LIMIT: usize = 16;
        if self.labels.len() < SCAN_LIMIT {
            return self
                .labels
                .iter()
                .any(|(seen, _)| label_order::same(seen.as_bytes(), name.as_bytes()));
        }
        // Labels are unique once checked, so the set holds exactly the
        // first `len` of them.
        let known = self.label_names.len();
        if let Some(new) = self.labels.get(known..) {
            self.label_names.extend(new.iter().map(|(seen, _)| *seen));
        }
        self.label_names.contains(name)
    }

    /// A quoted label value starting after its opening quote; returns the
    /// unescaped text and the index of the closing quote.
    fn label_value(&self, start: usize) -> Step<(Cow<'a, str>, usize)> {
        let body = self.body;
        let mut unescaped: Option<Vec<u8>> = None;
        let mut from = start;
        loop {
            let at = memchr3(b'"', b'\\', b'\n', &body[from..])
                .map(|offset| from + offset)
                .ok_or(Fault::Eof)?;
            match body[at] {
                b'"' => {
                    let value = match unescaped {
                        None => self.str_at(start, at).map(Cow::Borrowed),
                        Some(mut bytes) => {
                            bytes.extend_from_slice(&body[from..at]);
                            String::from_utf8(bytes).ok().map(Cow::Owned)
                        }
                    };
                    return match value {
                        Some(value) => Ok((value, at)),
                        None => Err(Fault::Msg(format!(
                            "invalid label value {}",
                            quote(&unescape(&body[start..at]))
                        ))),
                    };
                }
                b'\n' => {
                    let mut so_far = unescaped.unwrap_or_default();
                    so_far.extend_from_slice(&body[from..at]);
                    return Err(Fault::Msg(format!(
                        "label value {} contains unescaped new-line",
                        quote(&so_far)
                    )));
                }
                _ => {
                    let bytes = unescaped.get_or_insert_with(Vec::new);
                    bytes.extend_from_slice(&body[from..at]);
                    match self.byte(at + 1)? {
                        b'"' => bytes.push(b'"'),
                        b'\\' => bytes.push(b'\\'),
                        b'n' => bytes.push(b'\n'),
                        other => return Err(invalid_escape(other)),
                    }
                    from = at + 2;
                }
            }
        }
    }
}

/// Label-value escapes applied to a complete (already checked) value, for
/// the error message about its bytes.
fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter().copied();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'n') => out.push(b'\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}
