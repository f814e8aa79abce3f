//! The parts of an OpenMetrics sample line after its name: the label set,
//! escapes, and the trailer (timestamp, exemplar).

use std::borrow::Cow;

use memchr::memchr3;

use super::Labels;
use crate::exposition::goquote::quote;
use crate::exposition::text::scan::{label_name_end, parse_go_float, skip_blanks, token_end};
use crate::proto::client::{Exemplar, LabelPair};

/// Parses what follows the value: an optional timestamp (float seconds) and
/// an optional exemplar.
pub(super) fn trailer(line: &str, from: usize) -> Result<(Option<i64>, Option<Exemplar>), String> {
    let bytes = line.as_bytes();
    let mut at = skip_blanks(bytes, from);
    let mut timestamp_ms = None;
    if at < bytes.len() && bytes[at] != b'#' {
        let end = token_end(bytes, at);
        let token = &bytes[at..end];
        let seconds = parse_go_float(token)
            .filter(|s| s.is_finite())
            .ok_or_else(|| format!("expected timestamp, got {}", quote(token)))?;
        timestamp_ms = Some((seconds * 1000.0).round() as i64);
        at = skip_blanks(bytes, end);
    }
    if at < bytes.len() {
        line.get(at..)
            .and_then(|rest| rest.strip_prefix("# {"))
            .ok_or_else(|| format!("unexpected text after the value: {}", quote(&bytes[at..])))?;
        let offset = at + 3;
        let mut labels = Vec::new();
        let after = label_set(line, offset, &mut labels)
            .map_err(|problem| format!("invalid exemplar: {problem}"))?;
        let value_start = skip_blanks(bytes, after);
        let value_end = token_end(bytes, value_start);
        let value = parse_go_float(&bytes[value_start..value_end])
            .ok_or_else(|| "invalid exemplar: expected float as value".to_string())?;
        let ts_start = skip_blanks(bytes, value_end);
        let mut timestamp = None;
        if ts_start < bytes.len() {
            let ts_end = token_end(bytes, ts_start);
            let seconds = parse_go_float(&bytes[ts_start..ts_end])
                .filter(|s| s.is_finite() && ts_end == bytes.len())
                .ok_or_else(|| "invalid exemplar: expected timestamp".to_string())?;
            timestamp = Some(created(seconds));
        }
        let exemplar = Exemplar {
            label: labels
                .into_iter()
                .map(|(name, value)| LabelPair::new(name, value.into_owned()))
                .collect(),
            value: Some(value),
            timestamp,
        };
        return Ok((timestamp_ms, Some(exemplar)));
    }
    Ok((timestamp_ms, None))
}

/// Labels after `{`, appended to `labels`; returns the index after `}`.
pub(super) fn label_set<'a>(
    line: &'a str,
    mut at: usize,
    labels: &mut Labels<'a>,
) -> Result<usize, String> {
    let bytes = line.as_bytes();
    loop {
        at = skip_blanks(bytes, at);
        if bytes.get(at) == Some(&b'}') {
            return Ok(at + 1);
        }
        let name_end = label_name_end(bytes, at);
        if name_end == at {
            return Err("invalid label name".into());
        }
        let name = &line[at..name_end];
        if labels.iter().any(|(seen, _)| *seen == name) {
            return Err(format!("duplicate label name {}", quote(name.as_bytes())));
        }
        if bytes.get(name_end) != Some(&b'=') || bytes.get(name_end + 1) != Some(&b'"') {
            return Err(format!(
                "expected =\" after label name {}",
                quote(name.as_bytes())
            ));
        }
        let start = name_end + 2;
        let close = closing_quote(bytes, start)
            .ok_or_else(|| format!("unterminated value of label {}", quote(name.as_bytes())))?;
        labels.push((name, unescape(&line[start..close], true)?));
        at = skip_blanks(bytes, close + 1);
        match bytes.get(at) {
            Some(b',') => at += 1,
            Some(b'}') => return Ok(at + 1),
            _ => {
                return Err(format!(
                    "expected , or }} after the value of label {}",
                    quote(name.as_bytes())
                ));
            }
        }
    }
}

fn closing_quote(bytes: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = from + memchr3(b'"', b'\\', b'\n', bytes.get(from..)?)?;
        match bytes[at] {
            b'"' => return Some(at),
            b'\\' => from = at + 2,
            _ => return None,
        }
    }
}

/// OpenMetrics escapes: `\\`, `\n` and (in label values and HELP) `\"`.
pub(super) fn unescape(raw: &str, in_label: bool) -> Result<Cow<'_, str>, String> {
    if !raw.contains('\\') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') => out.push('"'),
            Some(other) if !in_label => {
                out.push('\\');
                out.push(other);
            }
            other => {
                let shown = other.map(String::from).unwrap_or_default();
                return Err(format!("invalid escape sequence '\\{shown}'"));
            }
        }
    }
    Ok(Cow::Owned(out))
}

/// `seconds` since the epoch as a protobuf timestamp (`_created` values and
/// exemplar timestamps).
pub(super) fn created(seconds: f64) -> prost_types::Timestamp {
    let whole = seconds.floor();
    prost_types::Timestamp {
        seconds: whole as i64,
        nanos: ((seconds - whole) * 1e9).round().min(999_999_999.0) as i32,
    }
}
