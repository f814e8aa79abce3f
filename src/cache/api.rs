//! The JSON API in the Pushgateway's shape:
//! `GET /api/v1/status` and `GET /api/v1/metrics`, plus the CORS headers
//! every API answer carries.
//!
//! Every number is a string formatted as Go's `%v` prints floats; group
//! objects mix the fixed keys `labels` and `last_push_successful` with one
//! key per family (including `push_time_seconds` and
//! `push_failure_time_seconds`), as the Pushgateway does. Two keys no
//! metric name can take are added when they apply: `pushrelay.tenant`
//! (the group's tenant) and `pushrelay.expires_at` (RFC 3339, when the
//! group expires under `cache.group_ttl`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use super::scrape::stamp_families;
use super::store::Group;
use super::ttl::TtlPolicy;
use crate::exposition::gofloat;
use crate::proto::client::{Metric, MetricFamily, MetricType};

/// The CORS and caching headers of every API answer.
pub const API_HEADERS: [(&str, &str); 5] = [
    (
        "access-control-allow-headers",
        "Accept, Authorization, Content-Type, Origin",
    ),
    ("access-control-allow-methods", "GET, POST, DELETE, OPTIONS"),
    ("access-control-allow-origin", "*"),
    ("access-control-expose-headers", "Date"),
    ("cache-control", "no-cache, no-store, must-revalidate"),
];

/// Wraps `data` in the API's success envelope.
pub fn success(data: Value) -> Vec<u8> {
    let envelope = json!({ "status": "success", "data": data });
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// `GET /api/v1/metrics`: one object per group.
pub fn metrics(groups: &[Arc<Group>], ttl: &TtlPolicy) -> Value {
    let mut ordered: Vec<&Arc<Group>> = groups.iter().collect();
    ordered.sort_by(|a, b| (&a.key, &a.tenant).cmp(&(&b.key, &b.tenant)));
    Value::Array(ordered.into_iter().map(|g| group_object(g, ttl)).collect())
}

fn group_object(group: &Arc<Group>, ttl: &TtlPolicy) -> Value {
    let mut object = Map::new();
    if let Some(tenant) = &group.tenant {
        object.insert("pushrelay.tenant".into(), Value::String(tenant.clone()));
    }
    if let Some(at) = ttl.expires_at(group) {
        object.insert(
            "pushrelay.expires_at".into(),
            Value::String(rfc3339_nano(at)),
        );
    }
    for stored in group.families.values() {
        object.insert(
            stored.name().to_string(),
            family_object(&stored.family(), stored.stored_at),
        );
    }
    let single = std::slice::from_ref(group);
    let [push_time, failure_time] = stamp_families(single);
    object.insert(
        push_time.name().to_string(),
        family_object(&push_time, group.push_time.stored_at),
    );
    object.insert(
        failure_time.name().to_string(),
        family_object(&failure_time, group.failure_time.stored_at),
    );
    let labels: Map<String, Value> = group
        .key
        .labels()
        .iter()
        .map(|(n, v)| (n.clone(), Value::String(v.clone())))
        .collect();
    object.insert("labels".into(), Value::Object(labels));
    object.insert(
        "last_push_successful".into(),
        Value::Bool(group.last_push_successful()),
    );
    Value::Object(object)
}

fn family_object(family: &MetricFamily, stored_at: SystemTime) -> Value {
    let kind = family.r#type.unwrap_or(MetricType::Counter as i32);
    let mut object = Map::new();
    object.insert("time_stamp".into(), Value::String(rfc3339_nano(stored_at)));
    object.insert(
        "type".into(),
        Value::String(super::signatures::type_name(kind).to_string()),
    );
    if let Some(help) = family.help.as_deref().filter(|h| !h.is_empty()) {
        object.insert("help".into(), Value::String(help.to_string()));
    }
    let metrics = family
        .metric
        .iter()
        .map(|m| metric_object(kind, m))
        .collect();
    object.insert("metrics".into(), Value::Array(metrics));
    Value::Object(object)
}

fn number(v: Option<f64>) -> Value {
    Value::String(gofloat::format(v.unwrap_or(0.0)))
}

fn metric_object(kind: i32, metric: &Metric) -> Value {
    let labels: Map<String, Value> = metric
        .label
        .iter()
        .map(|l| (l.name().to_string(), Value::String(l.value().to_string())))
        .collect();
    let mut object = Map::new();
    object.insert("labels".into(), Value::Object(labels));
    match MetricType::try_from(kind) {
        Ok(MetricType::Counter) => {
            object.insert(
                "value".into(),
                number(metric.counter.as_ref().and_then(|c| c.value)),
            );
        }
        Ok(MetricType::Gauge) => {
            object.insert(
                "value".into(),
                number(metric.gauge.as_ref().and_then(|g| g.value)),
            );
        }
        Ok(MetricType::Untyped) => {
            object.insert(
                "value".into(),
                number(metric.untyped.as_ref().and_then(|u| u.value)),
            );
        }
        Ok(MetricType::Summary) => {
            let summary = metric.summary.clone().unwrap_or_default();
            let quantiles: Map<String, Value> = summary
                .quantile
                .iter()
                .map(|q| (gofloat::format(q.quantile()), number(q.value)))
                .collect();
            object.insert("quantiles".into(), Value::Object(quantiles));
            object.insert(
                "count".into(),
                Value::String(summary.sample_count().to_string()),
            );
            object.insert("sum".into(), number(summary.sample_sum));
        }
        Ok(MetricType::Histogram) => {
            let histogram = metric.histogram.clone().unwrap_or_default();
            let buckets: Map<String, Value> = histogram
                .bucket
                .iter()
                .map(|b| {
                    let count = match b.cumulative_count_float {
                        Some(f) if f > 0.0 => gofloat::format(f),
                        _ => b.cumulative_count().to_string(),
                    };
                    (gofloat::format(b.upper_bound()), Value::String(count))
                })
                .collect();
            let count = match histogram.sample_count_float {
                Some(f) if f > 0.0 => gofloat::format(f),
                _ => histogram.sample_count().to_string(),
            };
            object.insert("buckets".into(), Value::Object(buckets));
            object.insert("count".into(), Value::String(count));
            object.insert("sum".into(), number(histogram.sample_sum));
        }
        _ => {
            object.insert("value".into(), Value::String("0".into()));
        }
    }
    Value::Object(object)
}

/// `GET /api/v1/status`.
pub fn status(flags: &BTreeMap<String, String>, started_at: SystemTime) -> Value {
    json!({
        "build_information": {
            "branch": "",
            "buildDate": "",
            "buildUser": "",
            "goVersion": "",
            "revision": "",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "flags": flags,
        "start_time": rfc3339_nano(started_at),
    })
}

/// Go's `time.RFC3339Nano` in UTC: fractional seconds without trailing
/// zeros, none at all when zero.
pub fn rfc3339_nano(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let nanos = since.subsec_nanos();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Go's `time.Duration.String()`: `5m0s`, `1h30m0s`, `1.5s`, `300ms`,
/// `0s`; the form the Pushgateway's status page shows its flags in.
pub fn go_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    /// `value / unit` with the fraction's trailing zeros dropped.
    fn decimal(value: u128, unit: u128) -> String {
        let fraction = value % unit;
        if fraction == 0 {
            return (value / unit).to_string();
        }
        let width = unit.ilog10() as usize;
        let digits = format!("{fraction:0width$}");
        format!("{}.{}", value / unit, digits.trim_end_matches('0'))
    }
    match nanos {
        0 => "0s".to_string(),
        1..1_000 => format!("{nanos}ns"),
        1_000..1_000_000 => format!("{}µs", decimal(nanos, 1_000)),
        1_000_000..1_000_000_000 => format!("{}ms", decimal(nanos, 1_000_000)),
        _ => {
            let seconds = nanos / 1_000_000_000;
            let (hours, minutes) = (seconds / 3600, seconds / 60 % 60);
            let mut out = String::new();
            if hours > 0 {
                out.push_str(&format!("{hours}h"));
            }
            if seconds >= 60 {
                out.push_str(&format!("{minutes}m"));
            }
            let within_minute = nanos % 60_000_000_000;
            out.push_str(&format!("{}s", decimal(within_minute, 1_000_000_000)));
            out
        }
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_nano_matches_go() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_795_313_196, 909_091_000);
        assert_eq!(rfc3339_nano(t), "2026-11-22T02:06:36.909091Z");
        assert_eq!(rfc3339_nano(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339_nano(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn durations_print_as_go_prints_them() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(999), "999ns"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (Duration::from_millis(300), "300ms"),
            (Duration::from_micros(2_250), "2.25ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(5400), "1h30m0s"),
            (Duration::new(86_401, 100_000_000), "24h0m1.1s"),
        ];
        for (duration, go) in cases {
            assert_eq!(go_duration(duration), go, "{duration:?}");
        }
    }

    #[test]
    fn empty_store_is_an_empty_array() {
        assert_eq!(
            String::from_utf8(success(metrics(&[], &TtlPolicy::new(&Default::default())))).unwrap(),
            r#"{"data":[],"status":"success"}"#
        );
    }
}
