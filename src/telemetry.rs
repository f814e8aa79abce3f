//! pushrelay's own metrics: every metric name in one place, the recorder,
//! and the text served on the telemetry path.
//!
//! Metrics are recorded through the `metrics` facade; the Prometheus recorder
//! renders them. Standard `process_*` metrics and a build-info gauge are added
//! so that dashboards and alerts written for exporters keep working.

use std::time::{SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The type of one of pushrelay's own metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One of pushrelay's own metrics: the single definition of its name, type
/// and help. The recorder is described from these, the process metrics are
/// written from them, and the cache derives from them the names pushes must
/// not clash with, so no list of names is kept anywhere else.
#[derive(Clone, Copy, Debug)]
pub struct OwnMetric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn own(name: &'static str, kind: Kind, help: &'static str) -> OwnMetric {
    OwnMetric { name, kind, help }
}

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
/// Async pushes that found their shard's queue past its hot depth and
/// waited, by outcome (`forward::HOT_QUEUE_DEPTH`).
pub const HOT_QUEUE_WAITS: &str = "pushrelay_forward_hot_queue_waits_total";
/// Pushes refused by a limit, by `limit`.
pub const LIMIT_REJECTIONS: &str = "pushrelay_limit_rejections_total";
/// Times the backend refused Remote-Write 2.0 and the forwarder switched to
/// 1.0 (`remote_write.protocol = auto`).
pub const REMOTE_WRITE_FALLBACKS: &str = "pushrelay_remote_write_protocol_fallbacks_total";
/// Samples, histograms and exemplars (`kind`) a 2.0 backend answered 2xx
/// to but reported not written: data lost.
pub const REMOTE_WRITE_UNWRITTEN: &str = "pushrelay_remote_write_unwritten_total";
/// Bytes the disk queue (`ack = "durable"`) holds on disk.
pub const DISK_QUEUE_BYTES: &str = "pushrelay_disk_queue_bytes";
/// Age of the oldest entry of the disk queue not yet known delivered.
pub const DISK_QUEUE_OLDEST_AGE: &str = "pushrelay_disk_queue_oldest_entry_age_seconds";
/// Entries (pushes) written to the disk queue.
pub const DISK_QUEUE_WRITTEN: &str = "pushrelay_disk_queue_entries_written_total";
/// Disk-queue entries whose delivery is confirmed (removed from the queue).
pub const DISK_QUEUE_DELIVERED: &str = "pushrelay_disk_queue_entries_delivered_total";
/// Disk-queue entries given up, by `reason`: `too_old` (the backend refuses
/// them as out of bounds / too old), `out_of_order` (out of order or a
/// duplicate timestamp), `rejected` (another 4xx), `corrupt` (a damaged
/// queue tail cut at start, counted once per cut).
pub const DISK_QUEUE_DROPPED: &str = "pushrelay_disk_queue_entries_dropped_total";
/// Forwarded series dropped by a `write_relabel_configs` rule, by `rule`
/// (its index in the list).
pub const RELABEL_DROPPED_SERIES: &str = "pushrelay_relabel_dropped_series_total";
/// Forwarded series dropped after relabeling because they could not be
/// written, by `reason`: `invalid` (no valid metric name, or an invalid
/// label name) or `duplicate` (equal to an earlier series of the push).
pub const RELABEL_INVALID_SERIES: &str = "pushrelay_relabel_invalid_series_total";
/// Re-sends of cached groups (`remote_write.resend_interval`), by
/// `outcome`: `sent`, `failed`, `busy` (skipped: earlier re-sends still
/// queued, as during an outage), `outdated` (dropped: a newer push of the
/// group was forwarded first).
pub const RESENDS: &str = "pushrelay_resends_total";
/// Cached groups removed because nobody pushed them within their TTL.
pub const GROUPS_EXPIRED: &str = "pushrelay_cache_groups_expired_total";
/// Always 1; the labels carry the version.
pub const BUILD_INFO: &str = "pushrelay_build_info";

/// Every metric the recorder exposes.
pub const RECORDED: &[OwnMetric] = &[
    own(
        PUSHES,
        Kind::Counter,
        "Push requests answered, by method and HTTP status code.",
    ),
    own(
        PUSH_DURATION,
        Kind::Histogram,
        "Time from receiving a push to answering it.",
    ),
    own(
        SAMPLES_RECEIVED,
        Kind::Counter,
        "Samples received in accepted pushes.",
    ),
    own(
        SAMPLES_FORWARDED,
        Kind::Counter,
        "Samples accepted by the remote_write backend.",
    ),
    own(
        REMOTE_WRITE_REQUESTS,
        Kind::Counter,
        "remote_write requests sent, by HTTP status code.",
    ),
    own(
        SERIES_MEMORY_EVICTIONS,
        Kind::Counter,
        "Series forgotten by the stale-marker memory to stay within its bound.",
    ),
    own(
        REMEMBERED_SERIES,
        Kind::Gauge,
        "Series whose label sets are remembered to send stale markers.",
    ),
    own(
        STALE_MARKERS,
        Kind::Counter,
        "Stale markers sent for series that a push or delete ended.",
    ),
    own(
        FORWARD_QUEUE_LENGTH,
        Kind::Gauge,
        "Pushes queued for forwarding and not yet answered.",
    ),
    own(
        LIMIT_REJECTIONS,
        Kind::Counter,
        "Pushes refused by a configured limit, by limit.",
    ),
    own(
        REMOTE_WRITE_FALLBACKS,
        Kind::Counter,
        "Switches from Remote-Write 2.0 to 1.0 for a backend that refused 2.0.",
    ),
    own(
        REMOTE_WRITE_UNWRITTEN,
        Kind::Counter,
        "Samples, histograms and exemplars a Remote-Write 2.0 backend reported not written, by kind.",
    ),
    own(
        DISK_QUEUE_BYTES,
        Kind::Gauge,
        "Bytes the durable disk queue holds on disk.",
    ),
    own(
        DISK_QUEUE_OLDEST_AGE,
        Kind::Gauge,
        "Age of the oldest disk-queue entry not yet known delivered.",
    ),
    own(
        DISK_QUEUE_WRITTEN,
        Kind::Counter,
        "Entries written to the durable disk queue.",
    ),
    own(
        DISK_QUEUE_DELIVERED,
        Kind::Counter,
        "Disk-queue entries delivered and removed from the queue.",
    ),
    own(
        DISK_QUEUE_DROPPED,
        Kind::Counter,
        "Disk-queue entries given up, by reason.",
    ),
    own(
        RELABEL_DROPPED_SERIES,
        Kind::Counter,
        "Forwarded series dropped by a write relabeling rule, by rule index.",
    ),
    own(
        RELABEL_INVALID_SERIES,
        Kind::Counter,
        "Forwarded series dropped because relabeling left them unwritable, by reason.",
    ),
    own(
        HOT_QUEUE_WAITS,
        Kind::Counter,
        "Async pushes that waited for their shard to catch up before being queued, by outcome: a slot came free in time, or the push was queued deeper (the shard cannot keep up).",
    ),
    own(
        RESENDS,
        Kind::Counter,
        "Re-sends of cached groups through remote_write, by outcome.",
    ),
    own(
        GROUPS_EXPIRED,
        Kind::Counter,
        "Cached groups removed because they were not pushed within their TTL.",
    ),
    own(
        BUILD_INFO,
        Kind::Gauge,
        "A metric with a constant '1' value labeled by version.",
    ),
];

const PROCESS_CPU: OwnMetric = own(
    "process_cpu_seconds_total",
    Kind::Counter,
    "Total user and system CPU time spent in seconds.",
);
const PROCESS_VIRTUAL_MEMORY: OwnMetric = own(
    "process_virtual_memory_bytes",
    Kind::Gauge,
    "Virtual memory size in bytes.",
);
const PROCESS_RESIDENT_MEMORY: OwnMetric = own(
    "process_resident_memory_bytes",
    Kind::Gauge,
    "Resident memory size in bytes.",
);
const PROCESS_OPEN_FDS: OwnMetric = own(
    "process_open_fds",
    Kind::Gauge,
    "Number of open file descriptors.",
);
const PROCESS_MAX_FDS: OwnMetric = own(
    "process_max_fds",
    Kind::Gauge,
    "Maximum number of open file descriptors.",
);
const PROCESS_START_TIME: OwnMetric = own(
    "process_start_time_seconds",
    Kind::Gauge,
    "Start time of the process since unix epoch in seconds.",
);

/// The standard `process_*` metrics, as exporters expose them.
pub const PROCESS: &[OwnMetric] = &[
    PROCESS_CPU,
    PROCESS_VIRTUAL_MEMORY,
    PROCESS_RESIDENT_MEMORY,
    PROCESS_OPEN_FDS,
    PROCESS_MAX_FDS,
    PROCESS_START_TIME,
];

/// Every metric on pushrelay's telemetry path.
pub fn own_metrics() -> impl Iterator<Item = &'static OwnMetric> {
    RECORDED.iter().chain(PROCESS)
}

/// The family the Pushgateway (and the cache) exposes per group with the
/// time of the last successful change; the forwarder sends it too.
pub const PUSH_TIME: &str = "push_time_seconds";
/// Its help text, as the Pushgateway writes it.
pub const PUSH_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway succeeded.";
/// The family with the time of a group's last failed change.
pub const PUSH_FAILURE_TIME: &str = "push_failure_time_seconds";
/// Its help text, as the Pushgateway writes it.
pub const PUSH_FAILURE_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway failed.";

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
    for metric in RECORDED {
        let (name, help) = (metric.name, metric.help);
        match metric.kind {
            Kind::Counter => describe_counter!(name, help),
            Kind::Gauge => describe_gauge!(name, help),
            Kind::Histogram => describe_histogram!(name, Unit::Seconds, help),
        }
    }
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
    let mut write = |metric: OwnMetric, value: f64| {
        let OwnMetric { name, kind, help } = metric;
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        write(PROCESS_CPU, (utime + stime) / TICKS_PER_SECOND);
    }
    if let Some(vsize) = field(23) {
        write(PROCESS_VIRTUAL_MEMORY, vsize);
    }
    if let Some(rss_kib) = read_status_kib("VmRSS:") {
        write(PROCESS_RESIDENT_MEMORY, rss_kib * 1024.0);
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        write(PROCESS_OPEN_FDS, entries.count() as f64);
    }
    if let Some(max) = max_open_files() {
        write(PROCESS_MAX_FDS, max);
    }
    if let (Some(start_ticks), Some(boot)) = (field(22), boot_time()) {
        write(PROCESS_START_TIME, boot + start_ticks / TICKS_PER_SECOND);
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

/// Unix time in seconds with nanosecond precision, as Go's
/// `float64(t.UnixNano()) / 1e9` (how the Pushgateway writes push times);
/// 0 before the epoch. Every timestamp pushrelay exposes or forwards as
/// seconds goes through here.
pub fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_nanos() as f64 / 1e9)
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
