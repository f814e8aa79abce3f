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
//! Every error names the key and the source it came from.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use figment::providers::{Env, Format, Serialized, Toml, Yaml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::security::outbound::{BasicAuthConfig, ExtraHeaders, TlsClientConfig};
use crate::security::tenant::TenantConfig;

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
    /// `async` once it is queued (a full queue then sheds with 429).
    pub ack: AckMode,
    /// Pushes queued per shard before pushers wait (`sync`) or are shed
    /// (`async`).
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
}

/// When a forwarded push is acknowledged to the pusher.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AckMode {
    /// After the backend accepted every sample of the push.
    #[default]
    Sync,
    /// As soon as the push is queued.
    Async,
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
            queue_capacity: 1024,
            min_backoff: GoDuration(Duration::from_millis(30)),
            max_backoff: GoDuration(Duration::from_secs(5)),
            max_remembered_series: 1_000_000,
            push_time_metrics: true,
            http2: false,
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
            max_label_name_length: 1024,
            max_label_value_length: 64 * 1024,
            disable_consistency_check: false,
        }
    }
}

/// Cache mode: pushrelay as a scrapeable Pushgateway.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Keep a Pushgateway store even when forwarding. Without a remote_write
    /// URL the cache is always on.
    pub enabled: bool,
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

/// A duration written as Go and Prometheus write them: `300ms`, `30s`, `5m`,
/// `1h30m`; a bare integer is seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    /// Parses `1h30m`, `250ms`, `10s`, or a bare number of seconds.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(seconds) = text.parse::<u64>() {
            return Ok(Self(Duration::from_secs(seconds)));
        }
        let bad = || format!("invalid duration {text:?}: expected e.g. 500ms, 30s, 5m, 1h");
        let mut rest = text;
        let mut total = Duration::ZERO;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let scale = match &rest[..unit_len] {
                "ms" => 0.001,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                "d" => 86400.0,
                _ => return Err(bad()),
            };
            total += Duration::from_secs_f64(number * scale);
            rest = &rest[unit_len..];
        }
        Ok(Self(total))
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms % 1000 != 0 {
            write!(f, "{ms}ms")
        } else if ms % 60_000 != 0 || ms == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{}m", ms / 60_000)
        }
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Seconds(s) => Ok(Self(Duration::from_secs(s))),
            Raw::Text(t) => Self::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// Command-line flags. Every setting flag is optional: only the flags given
/// override the lower layers.
#[derive(Debug, Default, Parser)]
#[command(
    name = "pushrelay",
    version,
    about = "Pushgateway-compatible push endpoint: forwards pushes as Prometheus remote_write, or caches them as a Pushgateway"
)]
pub struct Cli {
    /// Configuration file (TOML, or YAML for .yaml/.yml).
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Load and validate the configuration, print it, and exit.
    #[arg(long = "check-config")]
    pub check_config: bool,

    /// Address to listen on, e.g. `:9091` or `127.0.0.1:9091`.
    #[arg(long = "web.listen-address", value_name = "ADDR")]
    pub web_listen_address: Option<String>,
    /// Prefix for all routes.
    #[arg(long = "web.route-prefix", value_name = "PATH")]
    pub web_route_prefix: Option<String>,
    /// Path of the scrape endpoint.
    #[arg(long = "web.telemetry-path", value_name = "PATH")]
    pub web_telemetry_path: Option<String>,
    /// Enable `PUT /api/v1/admin/wipe`.
    #[arg(long = "web.enable-admin-api")]
    pub web_enable_admin_api: bool,
    /// Enable `PUT|POST /-/quit`.
    #[arg(long = "web.enable-lifecycle")]
    pub web_enable_lifecycle: bool,
    /// exporter-toolkit web config file (YAML): TLS and basic auth.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,
    /// Serve /-/healthy and /-/ready without basic auth.
    #[arg(long = "web.auth-exempt-health")]
    pub web_auth_exempt_health: bool,

    /// remote_write URL of the backend; without it pushrelay runs as a cache.
    #[arg(long = "remote-write.url", value_name = "URL")]
    pub remote_write_url: Option<String>,
    /// Timeout of one remote_write request.
    #[arg(long = "remote-write.timeout", value_name = "DURATION")]
    pub remote_write_timeout: Option<String>,
    /// How long a push may wait for the backend, retries included.
    #[arg(long = "remote-write.retry-deadline", value_name = "DURATION")]
    pub remote_write_retry_deadline: Option<String>,
    /// Most samples in one remote_write request.
    #[arg(long = "remote-write.max-samples-per-request", value_name = "N")]
    pub remote_write_max_samples_per_request: Option<usize>,
    /// Remote_write requests in flight at once.
    #[arg(long = "remote-write.concurrency", value_name = "N")]
    pub remote_write_concurrency: Option<usize>,
    /// PEM CA certificates that verify the backend (instead of the system store).
    #[arg(long = "remote-write.tls.ca-file", value_name = "FILE")]
    pub remote_write_tls_ca_file: Option<PathBuf>,
    /// PEM client certificate for the backend (mTLS).
    #[arg(long = "remote-write.tls.cert-file", value_name = "FILE")]
    pub remote_write_tls_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    #[arg(long = "remote-write.tls.key-file", value_name = "FILE")]
    pub remote_write_tls_key_file: Option<PathBuf>,
    /// Name the backend's certificate must carry, instead of the URL's host.
    #[arg(long = "remote-write.tls.server-name", value_name = "NAME")]
    pub remote_write_tls_server_name: Option<String>,
    /// Do not verify the backend's certificate (tests only).
    #[arg(long = "remote-write.tls.insecure-skip-verify")]
    pub remote_write_tls_insecure_skip_verify: bool,
    /// Basic-auth user name for the backend.
    #[arg(long = "remote-write.basic-auth.username", value_name = "NAME")]
    pub remote_write_basic_auth_username: Option<String>,
    /// File holding the basic-auth password for the backend.
    #[arg(long = "remote-write.basic-auth.password-file", value_name = "FILE")]
    pub remote_write_basic_auth_password_file: Option<PathBuf>,
    /// File holding a bearer token for the backend (re-read when it changes).
    #[arg(long = "remote-write.bearer-token-file", value_name = "FILE")]
    pub remote_write_bearer_token_file: Option<PathBuf>,
    /// Extra header on every remote_write request, `Name:Value` (repeatable).
    #[arg(long = "remote-write.header", value_name = "NAME:VALUE")]
    pub remote_write_header: Vec<String>,
    /// Static tenant (X-Scope-OrgID) for every push.
    #[arg(long = "remote-write.tenant.id", value_name = "TENANT")]
    pub remote_write_tenant_id: Option<String>,
    /// Grouping label whose value is the push's tenant.
    #[arg(long = "remote-write.tenant.from-label", value_name = "LABEL")]
    pub remote_write_tenant_from_label: Option<String>,
    /// Use the pusher's own X-Scope-OrgID header when it sends one.
    #[arg(long = "remote-write.tenant.passthrough")]
    pub remote_write_tenant_passthrough: bool,
    /// Most uncompressed bytes in one remote_write request.
    #[arg(long = "remote-write.max-bytes-per-request", value_name = "BYTES")]
    pub remote_write_max_bytes_per_request: Option<usize>,
    /// When pushes are answered: sync (backend accepted) or async (queued).
    #[arg(long = "remote-write.ack", value_name = "MODE")]
    pub remote_write_ack: Option<String>,
    /// Pushes queued per shard.
    #[arg(long = "remote-write.queue-capacity", value_name = "N")]
    pub remote_write_queue_capacity: Option<usize>,
    /// First retry delay, e.g. 30ms.
    #[arg(long = "remote-write.min-backoff", value_name = "DURATION")]
    pub remote_write_min_backoff: Option<String>,
    /// Longest retry delay, e.g. 5s.
    #[arg(long = "remote-write.max-backoff", value_name = "DURATION")]
    pub remote_write_max_backoff: Option<String>,
    /// Most series remembered for stale markers.
    #[arg(long = "remote-write.max-remembered-series", value_name = "N")]
    pub remote_write_max_remembered_series: Option<usize>,
    /// Forward push_time_seconds / push_failure_time_seconds (true or false).
    #[arg(long = "remote-write.push-time-metrics", value_name = "BOOL")]
    pub remote_write_push_time_metrics: Option<bool>,
    /// Use HTTP/2 with prior knowledge towards an http:// backend.
    #[arg(long = "remote-write.http2")]
    pub remote_write_http2: bool,

    /// Forward pushed sample timestamps instead of rejecting them.
    #[arg(long = "push.honor-timestamps")]
    pub push_honor_timestamps: bool,
    /// Most bytes of a request body as sent.
    #[arg(long = "push.max-body-bytes", value_name = "BYTES")]
    pub push_max_body_bytes: Option<u64>,
    /// Most bytes of a request body after decompression.
    #[arg(long = "push.max-decompressed-bytes", value_name = "BYTES")]
    pub push_max_decompressed_bytes: Option<u64>,
    /// Most series in one push.
    #[arg(long = "push.max-series", value_name = "N")]
    pub push_max_series: Option<usize>,
    /// Most labels on one series.
    #[arg(long = "push.max-labels-per-series", value_name = "N")]
    pub push_max_labels_per_series: Option<usize>,
    /// Longest label name in bytes.
    #[arg(long = "push.max-label-name-length", value_name = "BYTES")]
    pub push_max_label_name_length: Option<usize>,
    /// Longest label value in bytes.
    #[arg(long = "push.max-label-value-length", value_name = "BYTES")]
    pub push_max_label_value_length: Option<usize>,
    /// Cache mode: skip the push-time consistency check (answers 202).
    #[arg(long = "push.disable-consistency-check")]
    pub push_disable_consistency_check: bool,

    /// Keep a Pushgateway cache even when forwarding.
    #[arg(long = "cache")]
    pub cache: bool,
    /// File to persist the cache to.
    #[arg(long = "persistence.file", value_name = "FILE")]
    pub persistence_file: Option<PathBuf>,
    /// Minimum interval between persistence writes.
    #[arg(long = "persistence.interval", value_name = "DURATION")]
    pub persistence_interval: Option<String>,

    /// Log level: debug, info, warn, error.
    #[arg(long = "log.level", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log format: logfmt or json.
    #[arg(long = "log.format", value_name = "FORMAT")]
    pub log_format: Option<String>,
}

impl Cli {
    /// The flags that were given, as a figment dictionary of nested keys.
    fn overrides(&self) -> Dict {
        let mut root = Dict::new();
        let mut set = |path: &str, value: Value| insert_path(&mut root, path, value);
        let string = |s: &str| Value::from(s.to_string());
        if let Some(v) = &self.web_listen_address {
            set("web.listen_address", string(v));
        }
        if let Some(v) = &self.web_route_prefix {
            set("web.route_prefix", string(v));
        }
        if let Some(v) = &self.web_telemetry_path {
            set("web.telemetry_path", string(v));
        }
        if self.web_enable_admin_api {
            set("web.enable_admin_api", Value::from(true));
        }
        if self.web_enable_lifecycle {
            set("web.enable_lifecycle", Value::from(true));
        }
        if let Some(v) = &self.web_config_file {
            set("web.config_file", string(&v.to_string_lossy()));
        }
        if self.web_auth_exempt_health {
            set("web.auth_exempt_health", Value::from(true));
        }
        self.security_overrides(&mut set);
        if let Some(v) = &self.remote_write_url {
            set("remote_write.url", string(v));
        }
        if let Some(v) = &self.remote_write_timeout {
            set("remote_write.timeout", string(v));
        }
        if let Some(v) = &self.remote_write_retry_deadline {
            set("remote_write.retry_deadline", string(v));
        }
        if let Some(v) = self.remote_write_max_samples_per_request {
            set("remote_write.max_samples_per_request", Value::from(v));
        }
        if let Some(v) = self.remote_write_concurrency {
            set("remote_write.concurrency", Value::from(v));
        }
        if let Some(v) = self.remote_write_max_bytes_per_request {
            set("remote_write.max_bytes_per_request", Value::from(v));
        }
        if let Some(v) = &self.remote_write_ack {
            set("remote_write.ack", string(v));
        }
        if let Some(v) = self.remote_write_queue_capacity {
            set("remote_write.queue_capacity", Value::from(v));
        }
        if let Some(v) = &self.remote_write_min_backoff {
            set("remote_write.min_backoff", string(v));
        }
        if let Some(v) = &self.remote_write_max_backoff {
            set("remote_write.max_backoff", string(v));
        }
        if let Some(v) = self.remote_write_max_remembered_series {
            set("remote_write.max_remembered_series", Value::from(v));
        }
        if let Some(v) = self.remote_write_push_time_metrics {
            set("remote_write.push_time_metrics", Value::from(v));
        }
        if self.remote_write_http2 {
            set("remote_write.http2", Value::from(true));
        }
        if self.push_honor_timestamps {
            set("push.honor_timestamps", Value::from(true));
        }
        if let Some(v) = self.push_max_body_bytes {
            set("push.max_body_bytes", Value::from(v));
        }
        if let Some(v) = self.push_max_decompressed_bytes {
            set("push.max_decompressed_bytes", Value::from(v));
        }
        if let Some(v) = self.push_max_series {
            set("push.max_series", Value::from(v));
        }
        if let Some(v) = self.push_max_labels_per_series {
            set("push.max_labels_per_series", Value::from(v));
        }
        if let Some(v) = self.push_max_label_name_length {
            set("push.max_label_name_length", Value::from(v));
        }
        if let Some(v) = self.push_max_label_value_length {
            set("push.max_label_value_length", Value::from(v));
        }
        if self.push_disable_consistency_check {
            set("push.disable_consistency_check", Value::from(true));
        }
        if self.cache {
            set("cache.enabled", Value::from(true));
        }
        if let Some(v) = &self.persistence_file {
            set("persistence.file", string(&v.to_string_lossy()));
        }
        if let Some(v) = &self.persistence_interval {
            set("persistence.interval", string(v));
        }
        if let Some(v) = &self.log_level {
            set("log.level", string(v));
        }
        if let Some(v) = &self.log_format {
            set("log.format", string(v));
        }
        root
    }
}

impl Cli {
    /// The remote_write security flags.
    fn security_overrides(&self, set: &mut impl FnMut(&str, Value)) {
        let path = |p: &PathBuf| Value::from(p.to_string_lossy().into_owned());
        let files = [
            ("remote_write.tls.ca_file", &self.remote_write_tls_ca_file),
            (
                "remote_write.tls.cert_file",
                &self.remote_write_tls_cert_file,
            ),
            ("remote_write.tls.key_file", &self.remote_write_tls_key_file),
            (
                "remote_write.basic_auth.password_file",
                &self.remote_write_basic_auth_password_file,
            ),
            (
                "remote_write.bearer_token_file",
                &self.remote_write_bearer_token_file,
            ),
        ];
        for (key, value) in files {
            if let Some(v) = value {
                set(key, path(v));
            }
        }
        let strings = [
            (
                "remote_write.tls.server_name",
                &self.remote_write_tls_server_name,
            ),
            (
                "remote_write.basic_auth.username",
                &self.remote_write_basic_auth_username,
            ),
            ("remote_write.tenant.id", &self.remote_write_tenant_id),
            (
                "remote_write.tenant.from_label",
                &self.remote_write_tenant_from_label,
            ),
        ];
        for (key, value) in strings {
            if let Some(v) = value {
                set(key, Value::from(v.clone()));
            }
        }
        if self.remote_write_tls_insecure_skip_verify {
            set("remote_write.tls.insecure_skip_verify", Value::from(true));
        }
        if self.remote_write_tenant_passthrough {
            set("remote_write.tenant.passthrough", Value::from(true));
        }
        if !self.remote_write_header.is_empty() {
            set(
                "remote_write.headers",
                Value::from(self.remote_write_header.clone()),
            );
        }
    }
}

/// The command-line flags as a figment layer, named so that errors say the
/// value came from a flag.
struct FlagsProvider(Dict);

impl figment::Provider for FlagsProvider {
    fn metadata(&self) -> Metadata {
        Metadata::named("command-line flags")
    }

    fn data(&self) -> Result<Map<figment::Profile, Dict>, figment::Error> {
        Ok(Map::from([(figment::Profile::Default, self.0.clone())]))
    }
}

fn insert_path(root: &mut Dict, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            root.insert(path.to_string(), value);
        }
        Some((head, tail)) => {
            let entry = root
                .entry(head.to_string())
                .or_insert_with(|| Value::from(Map::<String, Value>::new()));
            if let Value::Dict(_, dict) = entry {
                insert_path(dict, tail, value);
            }
        }
    }
}

/// A configuration that could not be loaded, naming the key and its source.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads the layers for these flags, with `env` as the environment
    /// (`PUSHRELAY_*` variables), and validates the result.
    pub fn load(cli: &Cli) -> Result<Self, ConfigError> {
        // Only nested keys (`SECTION__KEY`): Kubernetes injects
        // `PUSHRELAY_SERVICE_HOST`-style variables for Services named
        // `pushrelay*`, which must not be read as configuration.
        let env = Env::prefixed("PUSHRELAY_")
            .filter(|key| key.as_str().contains("__"))
            .split("__");
        let figment = Self::figment(cli, env)?;
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError(describe_figment_error(e)))?;
        config.validate(&figment)?;
        Ok(config)
    }

    fn figment(cli: &Cli, env: Env) -> Result<Figment, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &cli.config {
            if !path.is_file() {
                return Err(ConfigError(format!(
                    "config file {} (from --config) does not exist or is not a file",
                    path.display()
                )));
            }
            figment = match path.extension().and_then(|e| e.to_str()) {
                Some("yaml" | "yml") => figment.merge(Yaml::file_exact(path)),
                _ => figment.merge(Toml::file_exact(path)),
            };
        }
        Ok(figment.merge(env).merge(FlagsProvider(cli.overrides())))
    }

    fn validate(&self, figment: &Figment) -> Result<(), ConfigError> {
        let fail = |key: &str, problem: String| {
            ConfigError(format!(
                "key `{key}` {}: {problem}",
                source_of(figment, key)
            ))
        };
        self.listen_addr()
            .map_err(|e| fail("web.listen_address", e))?;
        if let Some(url) = &self.remote_write.url {
            let uri: http::Uri = url
                .parse()
                .map_err(|e| fail("remote_write.url", format!("{url:?} is not a URL: {e}")))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(fail(
                    "remote_write.url",
                    format!("{url:?} must be an http:// or https:// URL with a host"),
                ));
            }
        }
        if self.remote_write.concurrency == 0 {
            return Err(fail(
                "remote_write.concurrency",
                "must be at least 1".into(),
            ));
        }
        for (key, value) in [
            (
                "remote_write.max_bytes_per_request",
                self.remote_write.max_bytes_per_request,
            ),
            (
                "remote_write.queue_capacity",
                self.remote_write.queue_capacity,
            ),
        ] {
            if value == 0 {
                return Err(fail(key, "must be at least 1".into()));
            }
        }
        if self.remote_write.min_backoff.0 > self.remote_write.max_backoff.0 {
            return Err(fail(
                "remote_write.min_backoff",
                format!(
                    "{} is longer than remote_write.max_backoff {}",
                    self.remote_write.min_backoff, self.remote_write.max_backoff
                ),
            ));
        }
        if self.remote_write.max_samples_per_request == 0 {
            return Err(fail(
                "remote_write.max_samples_per_request",
                "must be at least 1".into(),
            ));
        }
        if !matches!(self.log.level.as_str(), "debug" | "info" | "warn" | "error") {
            return Err(fail(
                "log.level",
                format!(
                    "{:?} is not one of debug, info, warn, error",
                    self.log.level
                ),
            ));
        }
        if !self.web.telemetry_path.starts_with('/') {
            return Err(fail("web.telemetry_path", "must start with /".into()));
        }
        self.validate_security(&fail)
    }

    /// Checks the security settings now, so a bad certificate, a missing
    /// secret file or a reserved header fails at start (and in
    /// `--check-config`). Messages never contain secret values.
    fn validate_security(
        &self,
        fail: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        use crate::security::{inbound::WebSecurity, outbound, tenant::TenantPolicy};
        // The security messages start with the key they are about; `fail`
        // names it already.
        let fail = |key: &str, problem: String| {
            let problem = match problem.strip_prefix(key).and_then(|p| p.strip_prefix(": ")) {
                Some(rest) => rest.to_string(),
                None => problem,
            };
            fail(key, problem)
        };
        if let Some(path) = self.web_config_file() {
            WebSecurity::load(path).map_err(|e| fail("web.config_file", e))?;
        }
        let rw = &self.remote_write;
        // The files of a configured section are checked here; the system's
        // CA store is the forwarder's to load, only for an https backend.
        if rw.tls != outbound::TlsClientConfig::default() {
            outbound::client_tls_config(&rw.tls, false).map_err(|e| fail("remote_write.tls", e))?;
        }
        outbound::Credentials::new(
            rw.basic_auth.as_ref(),
            rw.bearer_token_file.as_deref(),
            &rw.headers,
        )
        .map_err(|e| {
            let key = e
                .split([':', ' '])
                .next()
                .unwrap_or("remote_write")
                .to_string();
            fail(&key, e)
        })?;
        TenantPolicy::new(&rw.tenant).map_err(|e| fail("remote_write.tenant", e))?;
        Ok(())
    }

    /// The socket address to listen on; `:9091` means all interfaces.
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        let text = &self.web.listen_address;
        let full = if text.starts_with(':') {
            format!("0.0.0.0{text}")
        } else {
            text.clone()
        };
        full.parse()
            .map_err(|_| format!("{text:?} is not host:port or :port"))
    }

    /// The route prefix normalised as the Pushgateway does: `/` and empty
    /// mean none; otherwise one leading `/` and no trailing `/`.
    pub fn route_prefix(&self) -> String {
        let trimmed = self.web.route_prefix.trim_end_matches('/');
        if trimmed.is_empty() {
            String::new()
        } else if trimmed.starts_with('/') {
            trimmed.to_string()
        } else {
            format!("/{trimmed}")
        }
    }

    /// Forwarding is on when a remote_write URL is set.
    pub fn forwarding(&self) -> bool {
        self.remote_write.url.is_some()
    }

    /// The cache is on when asked for, or when there is nowhere to forward.
    pub fn caching(&self) -> bool {
        self.cache.enabled || !self.forwarding()
    }

    /// The web config file, if one is configured (an empty path means none).
    pub fn web_config_file(&self) -> Option<&Path> {
        self.web
            .config_file
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
    }

    /// The persistence file, if one is configured (an empty path means none).
    pub fn persistence_file(&self) -> Option<&Path> {
        self.persistence
            .file
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
    }
}

fn source_of(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(Metadata {
            name,
            source: Some(source),
            ..
        }) => format!("(from {name} {source})"),
        Some(meta) => format!("(from {})", meta.name),
        None => String::new(),
    }
}

fn describe_figment_error(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let mut text = e.kind.to_string();
            if !e.path.is_empty() {
                text = format!("key `{}`: {text}", e.path.join("."));
            }
            if let Some(meta) = &e.metadata {
                match &meta.source {
                    Some(source) => text.push_str(&format!(" (from {} {source})", meta.name)),
                    None => text.push_str(&format!(" (from {})", meta.name)),
                }
            }
            text
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads a config inside a figment jail: a private environment and a
    /// temporary working directory holding the optional config file.
    #[allow(clippy::result_large_err)] // figment's Jail closure signature
    fn load(
        args: &[&str],
        env: &[(&str, &str)],
        file: Option<(&str, &str)>,
    ) -> Result<Config, ConfigError> {
        let mut outcome = None;
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            let mut argv = vec!["pushrelay".to_string()];
            if let Some((name, body)) = file {
                jail.create_file(name, body)?;
                argv.push(format!("--config={name}"));
            }
            argv.extend(args.iter().map(|s| s.to_string()));
            for (k, v) in env {
                jail.set_env(k, v);
            }
            let cli = Cli::try_parse_from(argv).unwrap();
            outcome = Some(Config::load(&cli));
            Ok(())
        });
        outcome.unwrap()
    }

    #[test]
    fn defaults_listen_on_9091_in_cache_mode() {
        let config = load(&[], &[], None).unwrap();
        assert_eq!(config.listen_addr().unwrap().port(), 9091);
        assert!(config.caching());
        assert!(!config.forwarding());
    }

    #[test]
    fn layers_file_then_env_then_flags() {
        let file = (
            "c.toml",
            "[web]\nlisten_address = \"127.0.0.1:1000\"\n[remote_write]\nurl = \"http://file/\"\nconcurrency = 2\n",
        );
        let config = load(&[], &[], Some(file)).unwrap();
        assert_eq!(config.web.listen_address, "127.0.0.1:1000");
        assert_eq!(config.remote_write.concurrency, 2);

        let config = load(
            &[],
            &[("PUSHRELAY_WEB__LISTEN_ADDRESS", "127.0.0.1:2000")],
            Some(file),
        )
        .unwrap();
        assert_eq!(config.web.listen_address, "127.0.0.1:2000");

        let config = load(
            &[
                "--web.listen-address=127.0.0.1:3000",
                "--remote-write.url=http://flag/",
            ],
            &[("PUSHRELAY_WEB__LISTEN_ADDRESS", "127.0.0.1:2000")],
            Some(file),
        )
        .unwrap();
        assert_eq!(config.web.listen_address, "127.0.0.1:3000");
        assert_eq!(config.remote_write.url.as_deref(), Some("http://flag/"));
        assert_eq!(config.remote_write.concurrency, 2);
    }

    #[test]
    fn kubernetes_service_variables_are_not_configuration() {
        let env = [
            ("PUSHRELAY_PORT", "tcp://10.0.0.1:9091"),
            ("PUSHRELAY_SERVICE_HOST", "10.0.0.1"),
            (
                "PUSHRELAY_REMOTE_WRITE__URL",
                "http://env:9090/api/v1/write",
            ),
        ];
        let config = load(&[], &env, None).unwrap();
        assert_eq!(
            config.remote_write.url.as_deref(),
            Some("http://env:9090/api/v1/write")
        );
    }

    #[test]
    fn forwarding_delivery_settings_layer_and_validate() {
        let config = load(&[], &[], None).unwrap();
        assert_eq!(config.remote_write.ack, AckMode::Sync);
        assert!(config.remote_write.push_time_metrics);
        let config = load(
            &[
                "--remote-write.ack=async",
                "--remote-write.min-backoff=10ms",
                "--remote-write.max-backoff=2s",
                "--remote-write.push-time-metrics=false",
                "--remote-write.max-remembered-series=7",
            ],
            &[],
            Some(("c.toml", "[remote_write]\nqueue_capacity = 3\n")),
        )
        .unwrap();
        assert_eq!(config.remote_write.ack, AckMode::Async);
        assert_eq!(config.remote_write.min_backoff.0, Duration::from_millis(10));
        assert_eq!(config.remote_write.max_backoff.0, Duration::from_secs(2));
        assert!(!config.remote_write.push_time_metrics);
        assert_eq!(config.remote_write.max_remembered_series, 7);
        assert_eq!(config.remote_write.queue_capacity, 3);

        let err = load(&["--remote-write.ack=later"], &[], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("remote_write.ack"), "{err}");
        let err = load(
            &[
                "--remote-write.min-backoff=10s",
                "--remote-write.max-backoff=1s",
            ],
            &[],
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("remote_write.min_backoff"), "{err}");
    }

    #[test]
    fn yaml_files_are_read() {
        let config = load(
            &[],
            &[],
            Some((
                "c.yaml",
                "remote_write:\n  url: http://y:9090/api/v1/write\n  timeout: 1m30s\n",
            )),
        )
        .unwrap();
        assert_eq!(
            config.remote_write.url.as_deref(),
            Some("http://y:9090/api/v1/write")
        );
        assert_eq!(config.remote_write.timeout.0, Duration::from_secs(90));
    }

    #[test]
    fn bad_values_name_the_key_and_the_file() {
        let err = load(
            &[],
            &[],
            Some(("bad.toml", "[web]\nlisten_address = \"nope\"\n")),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("web.listen_address"), "{err}");
        assert!(err.contains("bad.toml"), "{err}");

        let err = load(
            &[],
            &[],
            Some(("bad.toml", "[remote_write]\ntimeout = \"5 parsecs\"\n")),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("remote_write.timeout"), "{err}");
        assert!(err.contains("bad.toml"), "{err}");

        let err = load(
            &[],
            &[],
            Some(("bad.toml", "[web]\nlisten_adress = \":1\"\n")),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("listen_adress"), "{err}");

        let err = load(&["--remote-write.url=ftp://x/"], &[], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("remote_write.url"), "{err}");
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(GoDuration::parse("5m").unwrap().0, Duration::from_secs(300));
        assert_eq!(
            GoDuration::parse("250ms").unwrap().0,
            Duration::from_millis(250)
        );
        assert_eq!(
            GoDuration::parse("1h30m").unwrap().0,
            Duration::from_secs(5400)
        );
        assert_eq!(GoDuration::parse("7").unwrap().0, Duration::from_secs(7));
        assert!(GoDuration::parse("").is_err());
        assert!(GoDuration::parse("5x").is_err());
        assert_eq!(GoDuration(Duration::from_secs(300)).to_string(), "5m");
        assert_eq!(
            GoDuration(Duration::from_millis(1500)).to_string(),
            "1500ms"
        );
    }

    #[test]
    fn route_prefix_is_normalised() {
        let mut config = Config::default();
        for (given, want) in [
            ("", ""),
            ("/", ""),
            ("x", "/x"),
            ("/x/", "/x"),
            ("/a/b", "/a/b"),
        ] {
            config.web.route_prefix = given.into();
            assert_eq!(config.route_prefix(), want, "{given:?}");
        }
    }
}
