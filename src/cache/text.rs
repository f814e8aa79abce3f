//! The text exposition (0.0.4) writers of the cache: a family's header
//! lines and one metric's sample lines, as client_golang's `expfmt` writes
//! them (labels in stored order, then `le`/`quantile`; a `+Inf` bucket added
//! when missing; floats as Go prints them; no timestamps). A stored family
//! renders its text with them once; the scrape writes the rest.

use super::signatures::type_name;
use crate::exposition::gofloat;
use crate::proto::client::{LabelPair, Metric, MetricType};

/// `# HELP` (when a help string is set) and `# TYPE` of a family.
pub(super) fn write_header(out: &mut String, name: &str, help: Option<&str>, kind: i32) {
    if let Some(help) = help {
        out.push_str("# HELP ");
        out.push_str(name);
        out.push(' ');
        escape_into(out, help, false);
        out.push('\n');
    }
    out.push_str("# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(&type_name(kind).to_ascii_lowercase());
    out.push('\n');
}

/// The text lines of one metric of a family `name` of type `kind`.
pub(super) fn write_metric(out: &mut String, name: &str, kind: i32, metric: &Metric) {
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

/// Escapes `\` and newline (HELP), plus `"` in label values; copies the
/// runs between escapes whole.
fn escape_into(out: &mut String, text: &str, quotes: bool) {
    let bytes = text.as_bytes();
    let mut done = 0;
    loop {
        let next = if quotes {
            memchr::memchr3(b'\\', b'\n', b'"', &bytes[done..])
        } else {
            memchr::memchr2(b'\\', b'\n', &bytes[done..])
        };
        let Some(at) = next.map(|i| done + i) else {
            out.push_str(&text[done..]);
            return;
        };
        // The escaped characters are ASCII: `at` is a char boundary.
        out.push_str(&text[done..at]);
        out.push_str(match bytes[at] {
            b'\\' => "\\\\",
            b'\n' => "\\n",
            _ => "\\\"",
        });
        done = at + 1;
    }
}
