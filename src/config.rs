//! Configuration: one [`Config`] struct, layered by figment as built-in
//! defaults < config file (`--config`, TOML or YAML) < environment
//! (`PUSHRELAY_*`) < command-line flags.
//!
//! Flags keep the Pushgateway's names (`--web.listen-address`,
//! `--persistence.file`, ...) so pushrelay can replace a Pushgateway without
//! touching its manifests. In a file or the environment the same setting is
//! the nested key `web.listen_address`, i.e. `[web] listen_address = ...` in
//! TOML or `PUSHRELAY_WEB__LISTEN_ADDRESS` (sections joined by `__`).
//!
//! The settings are plain data (`backend` and `secret` hold the
//! security-related ones); other modules build live objects from them. A
//! module that refuses a setting (e.g. `crate::security`) reports a
//! [`KeyedProblem`] to [`Config::load_checked`], so every error names the
//! key and the source it came from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) mod backend;
mod cli;
mod duration;
mod load;
mod pairs;
pub mod relabel;
pub(crate) mod secret;
mod tenant;

pub use backend::{BasicAuthConfig, ExtraHeaders, TlsClientConfig};
pub use cli::Cli;
pub use duration::GoDuration;
pub use load::{ConfigError, KeyedProblem};
pub use relabel::{ExternalLabels, RelabelConfig};
pub use secret::Secret;
pub use tenant::{DEFAULT_TENANT_HEADER, TenantConfig};

/// The whole configuration. See the module docs for how it is layered.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub web: WebConfig,
    pub remote_write: RemoteWriteConfig,
    pub push: PushConfig,
    pub cache: CacheConfig,
    pub persistence: PersistenceConfig,
    pub log: LogConfig,
}

/// The HTTP server pushrelay listens with.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// `host:port` or `:port` (all interfaces), as the Pushgateway takes it.
    pub listen_address: String,
    /// Prefix for every route (`/pushgateway` is served in addition).
    pub route_prefix: String,
    /// Path of the scrape endpoint.
    pub telemetry_path: String,
    /// Enables `PUT /api/v1/admin/wipe`.
    pub enable_admin_api: bool,
    /// Enables `PUT|POST /-/quit`.
    pub enable_lifecycle: bool,
    /// exporter-toolkit web configuration (TLS, basic auth), as the
    /// Pushgateway's `--web.config.file`.
    pub config_file: Option<PathBuf>,
    /// Serve `/-/healthy` and `/-/ready` without basic auth (the
    /// Pushgateway exempts nothing).
    pub auth_exempt_health: bool,
    /// How long a client may take to send a request's headers (from the
    /// connection's start, or from the first byte of a later request).
    pub read_header_timeout: GoDuration,
    /// How long a keep-alive connection may wait for its next request.
    pub idle_timeout: GoDuration,
    /// How long a client may take to send a request's body.
    pub read_timeout: GoDuration,
    /// Most client connections open at once; beyond it new connections
    /// wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            listen_address: ":9091".into(),
            route_prefix: String::new(),
            telemetry_path: "/metrics".into(),
            enable_admin_api: false,
            enable_lifecycle: false,
            config_file: None,
            auth_exempt_health: false,
            read_header_timeout: GoDuration(Duration::from_secs(10)),
            // Above the 90 s idle timeout of Go's default client transport,
            // so a pusher does not reuse a connection the server is closing.
            idle_timeout: GoDuration(Duration::from_secs(120)),
            read_timeout: GoDuration(Duration::from_secs(60)),
            max_connections: 10_000,
        }
    }
}

/// The remote_write backend; forwarding is on when `url` is set.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// The backend's write URL, e.g. `http://prometheus:9090/api/v1/write`.
    pub url: Option<String>,
    /// Timeout of one remote_write request.
    pub timeout: GoDuration,
    /// How long a push may wait for its samples to be accepted, retries
    /// included, before the pusher gets a 503.
    pub retry_deadline: GoDuration,
    /// Most samples in one remote_write request.
    pub max_samples_per_request: usize,
    /// Remote_write requests in flight at once (series are sharded over them).
    pub concurrency: usize,
    /// TLS towards the backend (CA, client certificate, server name).
    pub tls: TlsClientConfig,
    /// Basic auth towards the backend; the password comes from a file.
    pub basic_auth: Option<BasicAuthConfig>,
    /// File holding a bearer token for the backend, re-read when it changes.
    pub bearer_token_file: Option<PathBuf>,
    /// Extra headers on every remote_write request (values are secrets).
    pub headers: ExtraHeaders,
    /// Which tenant (`X-Scope-OrgID`) a push is written as.
    pub tenant: TenantConfig,
    /// Most bytes (uncompressed protobuf) in one remote_write request; a
    /// single push larger than this is split at series boundaries.
    pub max_bytes_per_request: usize,
    /// When a push is answered: `sync` once the backend accepted all of it,
    /// `async` once it is queued (a full queue then sheds with 429),
    /// `durable` once it is fsynced to the disk queue (`queue.dir`).
    pub ack: AckMode,
    /// The disk queue of `ack = "durable"`.
    pub queue: DiskQueueConfig,
    /// Pushes queued per shard before pushers wait (`sync`) or are shed
    /// (`async`). With `durable` the disk is the queue, and a shard holds at
    /// most `forward::DURABLE_SHARD_QUEUE` records ahead of delivery.
    pub queue_capacity: usize,
    /// First retry delay; doubles per attempt up to `max_backoff`, jittered.
    pub min_backoff: GoDuration,
    /// Longest delay between two attempts (unless `Retry-After` asks more).
    pub max_backoff: GoDuration,
    /// Most series whose label sets are remembered for stale markers; the
    /// groups pushed least recently are forgotten beyond it.
    pub max_remembered_series: usize,
    /// Forward `push_time_seconds` / `push_failure_time_seconds` per group.
    pub push_time_metrics: bool,
    /// Speak HTTP/2 with prior knowledge to an `http://` backend.
    pub http2: bool,
    /// The remote_write protocol: `auto` (2.0, falling back to 1.0 for a
    /// backend that does not take it), `1.0` or `2.0`.
    pub protocol: Protocol,
    /// Labels added to every forwarded series lacking them (Prometheus'
    /// `external_labels`; `${VAR}` expands from the environment at start).
    pub external_labels: ExternalLabels,
    /// Prometheus `relabel_config`s applied to every forwarded series after
    /// the external labels, before it is written.
    pub write_relabel_configs: Vec<RelabelConfig>,
    /// Re-send every cached group this often (`0s`: never); turns the
    /// cache on.
    pub resend_interval: GoDuration,
}

/// Which remote_write protocol the forwarder speaks.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum Protocol {
    /// 2.0 first; 1.0 for an endpoint that answers 2.0 with 415 or with no
    /// `X-Prometheus-Remote-Write-*-Written` header, probing 2.0 again later.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "1.0")]
    V1,
    #[serde(rename = "2.0")]
    V2,
}

/// The smallest `remote_write.queue.max_bytes`: room for a few segments.
pub const MIN_DISK_QUEUE_BYTES: u64 = 1 << 20;

/// When a forwarded push is acknowledged to the pusher.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AckMode {
    /// After the backend accepted every sample of the push.
    #[default]
    Sync,
    /// As soon as the push is queued.
    Async,
    /// Once the push is written and fsynced to the disk queue; delivered
    /// from there, also after a restart.
    Durable,
}

/// `remote_write.queue`: where and how big the disk queue of
/// `ack = "durable"` is.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DiskQueueConfig {
    /// The queue's directory (segment files and the series-memory
    /// snapshot); required with `ack = "durable"`.
    pub dir: Option<PathBuf>,
    /// Most bytes the queue holds on disk; pushes get 429 beyond it.
    pub max_bytes: u64,
}

impl Default for DiskQueueConfig {
    fn default() -> Self {
        Self {
            dir: None,
            max_bytes: 1 << 30,
        }
    }
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        Self {
            url: None,
            timeout: GoDuration(Duration::from_secs(10)),
            retry_deadline: GoDuration(Duration::from_secs(30)),
            max_samples_per_request: 10_000,
            concurrency: 4,
            tls: TlsClientConfig::default(),
            basic_auth: None,
            bearer_token_file: None,
            headers: ExtraHeaders::default(),
            tenant: TenantConfig::default(),
            max_bytes_per_request: 8 << 20,
            ack: AckMode::Sync,
            queue: DiskQueueConfig::default(),
            queue_capacity: 1024,
            min_backoff: GoDuration(Duration::from_millis(30)),
            max_backoff: GoDuration(Duration::from_secs(5)),
            max_remembered_series: 1_000_000,
            push_time_metrics: true,
            http2: false,
            protocol: Protocol::Auto,
            external_labels: ExternalLabels::default(),
            write_relabel_configs: Vec::new(),
            resend_interval: GoDuration(Duration::ZERO),
        }
    }
}

/// What pushrelay accepts from pushers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Forward pushed timestamps instead of rejecting them (the Pushgateway
    /// cannot).
    pub honor_timestamps: bool,
    /// Most bytes of a request body as sent (413 above).
    pub max_body_bytes: u64,
    /// Most bytes of a request body after decompression (413 above).
    pub max_decompressed_bytes: u64,
    /// Most series in one push (400 above).
    pub max_series: usize,
    /// Most labels on one series, grouping labels included (400 above).
    pub max_labels_per_series: usize,
    /// Longest metric name in bytes (400 above).
    pub max_metric_name_length: usize,
    /// Longest label name in bytes (400 above).
    pub max_label_name_length: usize,
    /// Longest label value in bytes (400 above).
    pub max_label_value_length: usize,
    /// Cache mode: skip the push-time consistency check (pushes are then
    /// answered 202, as in the Pushgateway).
    pub disable_consistency_check: bool,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            honor_timestamps: false,
            max_body_bytes: 64 << 20,
            max_decompressed_bytes: 256 << 20,
            max_series: 1_000_000,
            max_labels_per_series: 128,
            max_metric_name_length: 1024,
            max_label_name_length: 1024,
            max_label_value_length: 64 * 1024,
            disable_consistency_check: false,
        }
    }
}

/// Cache mode: pushrelay as a scrapeable Pushgateway.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Keep a Pushgateway store even when forwarding. Without a remote_write
    /// URL the cache is always on.
    pub enabled: bool,
    /// Remove a group not pushed for this long (`0s`: never).
    pub group_ttl: GoDuration,
    /// Per-group overrides of `group_ttl`; the first rule whose labels all
    /// match the group's grouping labels wins.
    pub group_ttl_rules: Vec<GroupTtlRule>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            group_ttl: GoDuration(Duration::ZERO),
            group_ttl_rules: Vec::new(),
        }
    }
}

/// One `[[cache.group_ttl_rules]]` entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupTtlRule {
    /// Grouping labels and the values they must have, e.g. `{ job = "backup" }`.
    #[serde(rename = "match")]
    pub matches: BTreeMap<String, String>,
    /// The TTL of the groups it matches (`0s`: never expire).
    pub ttl: GoDuration,
}

/// Where the cache is persisted.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PersistenceConfig {
    /// Persistence file; empty keeps the cache in memory only.
    pub file: Option<PathBuf>,
    /// Minimum interval between two writes of the file.
    pub interval: GoDuration,
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        Self {
            file: None,
            interval: GoDuration(Duration::from_secs(300)),
        }
    }
}

/// Logging.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// `logfmt` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Logfmt,
        }
    }
}

/// The log line format.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Logfmt,
    Json,
}

#[cfg(test)]
mod tests;
