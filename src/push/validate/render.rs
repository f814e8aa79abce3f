//! Metrics rendered for error messages: the protobuf compact text the
//! Pushgateway prints inside `collected metric "m" { ... }` (old Go protobuf
//! `CompactTextString`: `label:<name:"a" value:"1" > gauge:<value:1 > `),
//! and the short `name{labels}` form pushrelay's own limit messages use.
//! Both quote at most [`MAX_SHOWN_LABELS`] labels and say how many more
//! there were, so an answer stays small whatever a pushed series holds.
//!
//! The compact text is for humans: its exact spacing varies across Go
//! protobuf versions (and so across Pushgateway releases), so it is close,
//! not sacred.

use std::fmt::Write as _;

use crate::exposition::gofloat;
use crate::proto::client::{Bucket, BucketSpan, LabelPair, Metric};

/// `label:<...> ... <type>:<...> ` as Go's `%s` of a `*dto.Metric` prints
/// it (fields in Go struct order, each followed by a space).
pub fn compact_text(metric: &Metric) -> String {
    compact_text_labelled(metric, &metric.label)
}

/// [`compact_text`] of `metric` with the labels `labels` in place of its
/// own (the cache describes metrics with their stored labels).
pub fn compact_text_labelled<'l, L: std::borrow::Borrow<LabelPair> + 'l>(
    metric: &Metric,
    labels: impl IntoIterator<Item = &'l L>,
) -> String {
    let mut labels = labels.into_iter();
    let mut out = String::with_capacity(64 + 32 * MAX_SHOWN_LABELS);
    for label in labels.by_ref().take(MAX_SHOWN_LABELS) {
        let label = label.borrow();
        out.push_str("label:<");
        string_field(
            &mut out,
            "name",
            label.name.as_deref().map(shorten).as_deref(),
        );
        string_field(
            &mut out,
            "value",
            label.value.as_deref().map(shorten).as_deref(),
        );
        out.push_str("> ");
    }
    let left_out = labels.count();
    if left_out > 0 {
        let _ = write!(out, "… ({left_out} more labels) ");
    }
    if let Some(gauge) = &metric.gauge {
        out.push_str("gauge:<");
        float_field(&mut out, "value", gauge.value);
        out.push_str("> ");
    }
    if let Some(counter) = &metric.counter {
        out.push_str("counter:<");
        float_field(&mut out, "value", counter.value);
        out.push_str("> ");
    }
    if let Some(summary) = &metric.summary {
        out.push_str("summary:<");
        uint_field(&mut out, "sample_count", summary.sample_count);
        float_field(&mut out, "sample_sum", summary.sample_sum);
        for quantile in &summary.quantile {
            out.push_str("quantile:<");
            float_field(&mut out, "quantile", quantile.quantile);
            float_field(&mut out, "value", quantile.value);
            out.push_str("> ");
        }
        out.push_str("> ");
    }
    if let Some(untyped) = &metric.untyped {
        out.push_str("untyped:<");
        float_field(&mut out, "value", untyped.value);
        out.push_str("> ");
    }
    if let Some(histogram) = &metric.histogram {
        out.push_str("histogram:<");
        uint_field(&mut out, "sample_count", histogram.sample_count);
        float_field(&mut out, "sample_count_float", histogram.sample_count_float);
        float_field(&mut out, "sample_sum", histogram.sample_sum);
        for bucket in &histogram.bucket {
            bucket_field(&mut out, bucket);
        }
        if let Some(schema) = histogram.schema {
            let _ = write!(out, "schema:{schema} ");
        }
        float_field(&mut out, "zero_threshold", histogram.zero_threshold);
        uint_field(&mut out, "zero_count", histogram.zero_count);
        float_field(&mut out, "zero_count_float", histogram.zero_count_float);
        spans_field(&mut out, "negative_span", &histogram.negative_span);
        for delta in &histogram.negative_delta {
            let _ = write!(out, "negative_delta:{delta} ");
        }
        for count in &histogram.negative_count {
            float_field(&mut out, "negative_count", Some(*count));
        }
        spans_field(&mut out, "positive_span", &histogram.positive_span);
        for delta in &histogram.positive_delta {
            let _ = write!(out, "positive_delta:{delta} ");
        }
        for count in &histogram.positive_count {
            float_field(&mut out, "positive_count", Some(*count));
        }
        out.push_str("> ");
    }
    if let Some(timestamp) = metric.timestamp_ms {
        let _ = write!(out, "timestamp_ms:{timestamp} ");
    }
    out
}

fn bucket_field(out: &mut String, bucket: &Bucket) {
    out.push_str("bucket:<");
    uint_field(out, "cumulative_count", bucket.cumulative_count);
    float_field(out, "cumulative_count_float", bucket.cumulative_count_float);
    float_field(out, "upper_bound", bucket.upper_bound);
    out.push_str("> ");
}

fn spans_field(out: &mut String, name: &str, spans: &[BucketSpan]) {
    for span in spans {
        let _ = write!(out, "{name}:<");
        if let Some(offset) = span.offset {
            let _ = write!(out, "offset:{offset} ");
        }
        if let Some(length) = span.length {
            let _ = write!(out, "length:{length} ");
        }
        out.push_str("> ");
    }
}

fn string_field(out: &mut String, name: &str, value: Option<&str>) {
    let Some(value) = value else { return };
    let _ = write!(out, "{name}:\"");
    for &b in value.as_bytes() {
        match b {
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push_str("\" ");
}

fn float_field(out: &mut String, name: &str, value: Option<f64>) {
    let Some(v) = value else { return };
    let text = if v.is_nan() {
        "nan".to_string()
    } else if v == f64::INFINITY {
        "inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-inf".to_string()
    } else {
        gofloat::format(v)
    };
    let _ = write!(out, "{name}:{text} ");
}

fn uint_field(out: &mut String, name: &str, value: Option<u64>) {
    if let Some(v) = value {
        let _ = write!(out, "{name}:{v} ");
    }
}

/// Names and values longer than this are cut in messages.
const MAX_SHOWN_VALUE_CHARS: usize = 64;

/// Labels after this many are counted, not quoted, in messages.
pub const MAX_SHOWN_LABELS: usize = 16;

/// `name{a="1",b="2"}` with long names and values cut and at most
/// [`MAX_SHOWN_LABELS`] labels, for limit messages.
pub fn series(name: &str, labels: &[LabelPair]) -> String {
    let shown = &labels[..labels.len().min(MAX_SHOWN_LABELS)];
    let mut out = String::with_capacity(MAX_SHOWN_VALUE_CHARS * (2 * shown.len() + 1));
    out.push_str(&shorten(name));
    out.push('{');
    for (i, label) in shown.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&shorten(label.name()));
        out.push_str("=\"");
        for c in shorten(label.value()).chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                _ => out.push(c),
            }
        }
        out.push('"');
    }
    if labels.len() > shown.len() {
        let _ = write!(out, ",…({} more labels)", labels.len() - shown.len());
    }
    out.push('}');
    out
}

/// The first characters of `text`, with `…` when it was cut.
pub fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_SHOWN_VALUE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::client::{Counter, Quantile, Summary};

    #[test]
    fn compact_text_matches_the_pushgateway_rendering() {
        // From a Pushgateway 1.5.1 answer (values chosen so that the float
        // formatting does not depend on Go's 'g' layout).
        let metric = Metric {
            label: vec![
                LabelPair::new("a", "q\"\\\n\té"),
                LabelPair::new("job", "pb_esc"),
            ],
            summary: Some(Summary {
                sample_count: Some(3),
                sample_sum: Some(1.5),
                quantile: vec![Quantile {
                    quantile: Some(0.5),
                    value: Some(2.0),
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            compact_text(&metric),
            r#"label:<name:"a" value:"q\"\\\n\t\303\251" > label:<name:"job" value:"pb_esc" > summary:<sample_count:3 sample_sum:1.5 quantile:<quantile:0.5 value:2 > > "#
        );
        let metric = Metric {
            counter: Some(Counter {
                value: Some(f64::NEG_INFINITY),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(compact_text(&metric), "counter:<value:-inf > ");
    }

    #[test]
    fn series_cuts_long_values() {
        let long = "x".repeat(100);
        let text = series(
            "m",
            &[LabelPair::new("a", "1\""), LabelPair::new("b", &long)],
        );
        assert_eq!(text, format!("m{{a=\"1\\\"\",b=\"{}…\"}}", "x".repeat(64)));
    }
}
