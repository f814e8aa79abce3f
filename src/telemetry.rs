//! pushrelay's own metrics: every metric name in one place, the recorder,
//! and the text served on the telemetry path.
//!
//! Metrics are recorded through the `metrics` facade; the Prometheus recorder
//! renders them. Standard `process_*` metrics and a build-info gauge are added
//! so that dashboards and alerts written for exporters keep working.

use std::time::{SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Pushes answered, by `method` (put, post, delete) and `code`.
pub const PUSHES: &str = "pushrelay_pushes_total";
/// Time from request to answer of a push, by `method`.
pub const PUSH_DURATION: &str = "pushrelay_push_duration_seconds";
/// Samples received in accepted pushes.
pub const SAMPLES_RECEIVED: &str = "pushrelay_samples_received_total";
/// Samples the backend accepted.
pub const SAMPLES_FORWARDED: &str = "pushrelay_samples_forwarded_total";
/// remote_write requests sent, by `code` (HTTP status, or `error` when no
/// answer came).
pub const REMOTE_WRITE_REQUESTS: &str = "pushrelay_remote_write_requests_total";
/// Remembered series forgotten (with their group) to stay within
/// `remote_write.max_remembered_series`; no stale markers follow for them.
pub const SERIES_MEMORY_EVICTIONS: &str = "pushrelay_series_memory_evicted_series_total";
/// Series whose label sets are remembered for stale markers.
pub const REMEMBERED_SERIES: &str = "pushrelay_remembered_series";
/// Stale markers sent for series a push or delete ended.
pub const STALE_MARKERS: &str = "pushrelay_stale_markers_total";
/// Pushes waiting in the forwarder's queues.
pub const FORWARD_QUEUE_LENGTH: &str = "pushrelay_forward_queue_pushes";
/// Pushes refused by a limit, by `limit`.
pub const LIMIT_REJECTIONS: &str = "pushrelay_limit_rejections_total";
/// Always 1; the labels carry the version.
pub const BUILD_INFO: &str = "pushrelay_build_info";

const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The installed recorder; renders the telemetry scrape.
#[derive(Clone)]
pub struct Telemetry {
    handle: PrometheusHandle,
}

impl Telemetry {
    /// Installs the process-wide recorder (once per process) and describes
    /// every metric.
    pub fn install() -> Result<Self, String> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(PUSH_DURATION.into()), DURATION_BUCKETS)
            .map_err(|e| e.to_string())?
            .build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|e| e.to_string())?;
        describe();
        Ok(Self { handle })
    }

    /// The text exposition of pushrelay's own metrics.
    pub fn render(&self) -> String {
        let mut text = self.handle.render();
        text.push_str(&process_metrics());
        text
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        PUSHES,
        "Push requests answered, by method and HTTP status code."
    );
    describe_histogram!(
        PUSH_DURATION,
        Unit::Seconds,
        "Time from receiving a push to answering it."
    );
    describe_counter!(SAMPLES_RECEIVED, "Samples received in accepted pushes.");
    describe_counter!(
        SAMPLES_FORWARDED,
        "Samples accepted by the remote_write backend."
    );
    describe_counter!(
        REMOTE_WRITE_REQUESTS,
        "remote_write requests sent, by HTTP status code."
    );
    describe_counter!(
        SERIES_MEMORY_EVICTIONS,
        "Series forgotten by the stale-marker memory to stay within its bound."
    );
    describe_gauge!(
        REMEMBERED_SERIES,
        "Series whose label sets are remembered to send stale markers."
    );
    describe_counter!(
        STALE_MARKERS,
        "Stale markers sent for series that a push or delete ended."
    );
    describe_gauge!(
        FORWARD_QUEUE_LENGTH,
        "Pushes queued for forwarding and not yet answered."
    );
    describe_counter!(
        LIMIT_REJECTIONS,
        "Pushes refused by a configured limit, by limit."
    );
    describe_gauge!(
        BUILD_INFO,
        "A metric with a constant '1' value labeled by version."
    );
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// The standard `process_*` metrics, read from `/proc/self` (Linux); empty
/// elsewhere.
fn process_metrics() -> String {
    let mut out = String::new();
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return out;
    };
    // Fields after the parenthesised command name; see proc(5).
    let Some(after_comm) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return out;
    };
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    const TICKS_PER_SECOND: f64 = 100.0;
    let mut gauge = |name: &str, kind: &str, help: &str, value: f64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        gauge(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            (utime + stime) / TICKS_PER_SECOND,
        );
    }
    if let Some(vsize) = field(23) {
        gauge(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            vsize,
        );
    }
    if let Some(rss_kib) = read_status_kib("VmRSS:") {
        gauge(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            rss_kib * 1024.0,
        );
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        gauge(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            entries.count() as f64,
        );
    }
    if let Some(max) = max_open_files() {
        gauge(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max,
        );
    }
    if let (Some(start_ticks), Some(boot)) = (field(22), boot_time()) {
        gauge(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            boot + start_ticks / TICKS_PER_SECOND,
        );
    }
    out
}

fn read_status_kib(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

fn max_open_files() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("btime "))?;
    line[6..].trim().parse().ok()
}

/// Seconds since the Unix epoch, as a float.
pub fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_metrics_are_exposed_on_linux() {
        let text = process_metrics();
        for name in [
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(
                text.contains(&format!("\n{name} ")),
                "{name} missing in {text}"
            );
        }
        let start: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("process_start_time_seconds "))
            .unwrap()
            .parse()
            .unwrap();
        let now = unix_seconds(SystemTime::now());
        assert!(
            start <= now + 1.0 && start > now - 86_400.0 * 365.0,
            "start {start} now {now}"
        );
    }
}
