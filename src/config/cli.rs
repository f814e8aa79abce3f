//! The command-line flags: clap's view of every setting, turned into the
//! top figment layer. Only the flags given override the lower layers.
//! `--help` shows each setting's built-in default, taken from
//! `Config::default()` (clap's own defaults would override the lower
//! layers, so the flags have none).

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser};
use figment::Metadata;
use figment::value::{Dict, Map, Value};

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
    /// How long a client may take to send a request's headers.
    #[arg(long = "web.read-header-timeout", value_name = "DURATION")]
    pub web_read_header_timeout: Option<String>,
    /// How long an idle keep-alive connection is kept open.
    #[arg(long = "web.idle-timeout", value_name = "DURATION")]
    pub web_idle_timeout: Option<String>,
    /// How long a client may take to send a request's body.
    #[arg(long = "web.read-timeout", value_name = "DURATION")]
    pub web_read_timeout: Option<String>,
    /// Most client connections open at once (more wait to be accepted).
    #[arg(long = "web.max-connections", value_name = "N")]
    pub web_max_connections: Option<usize>,

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
    /// When pushes are answered: sync (backend accepted), async (queued) or
    /// durable (fsynced to the disk queue).
    #[arg(long = "remote-write.ack", value_name = "MODE")]
    pub remote_write_ack: Option<String>,
    /// Directory of the disk queue (ack=durable).
    #[arg(long = "remote-write.queue.dir", value_name = "DIR")]
    pub remote_write_queue_dir: Option<String>,
    /// Most bytes the disk queue holds (429 beyond).
    #[arg(long = "remote-write.queue.max-bytes", value_name = "BYTES")]
    pub remote_write_queue_max_bytes: Option<u64>,
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
    /// remote_write protocol: auto (2.0, falling back to 1.0), 1.0 or 2.0.
    #[arg(long = "remote-write.protocol", value_name = "PROTOCOL")]
    pub remote_write_protocol: Option<String>,
    /// Label added to every forwarded series lacking it, `name=value`
    /// (repeatable; `${VAR}` in the value expands from the environment).
    #[arg(long = "remote-write.external-label", value_name = "NAME=VALUE")]
    pub remote_write_external_label: Vec<String>,
    /// Re-send every cached group this often, e.g. 15s (turns --cache on; 0s: never).
    #[arg(long = "remote-write.resend-interval", value_name = "DURATION")]
    pub remote_write_resend_interval: Option<String>,

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
    /// Longest metric name in bytes.
    #[arg(long = "push.max-metric-name-length", value_name = "BYTES")]
    pub push_max_metric_name_length: Option<usize>,
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
    /// Remove a cached group not pushed for this long, e.g. 26h (0s: never).
    #[arg(long = "cache.group-ttl", value_name = "DURATION")]
    pub cache_group_ttl: Option<String>,
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
    /// Parses the process's arguments with [`Cli::command_with_defaults`];
    /// exits with clap's message on a bad flag or after `--help`.
    pub fn parse_with_defaults() -> Self {
        let matches = Self::command_with_defaults().get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
    }

    /// The flags, each setting's help ending in `[default: ...]` when its
    /// built-in default is set: the flag `--a.b-c` is the key `a.b_c`.
    pub fn command_with_defaults() -> clap::Command {
        let defaults = serde_json::to_value(super::Config::default()).unwrap_or_default();
        let mut command = Self::command();
        let shown: Vec<(clap::Id, String)> = command
            .get_arguments()
            .filter(|arg| arg.get_action().takes_values())
            .filter_map(|arg| {
                let key = arg.get_long()?.replace('-', "_");
                let default = key
                    .split('.')
                    .try_fold(&defaults, |value, part| value.get(part))?;
                let text = match default {
                    serde_json::Value::String(text) if !text.is_empty() => text.clone(),
                    serde_json::Value::Number(number) => number.to_string(),
                    serde_json::Value::Bool(flag) => flag.to_string(),
                    _ => return None,
                };
                Some((arg.get_id().clone(), text))
            })
            .collect();
        for (id, default) in shown {
            command = command.mut_arg(id, |arg| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                arg.help(format!("{help} [default: {default}]"))
            });
        }
        command
    }

    /// The flags that were given, as a figment dictionary of nested keys.
    pub(super) fn overrides(&self) -> Dict {
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
        let timeouts = [
            ("web.read_header_timeout", &self.web_read_header_timeout),
            ("web.idle_timeout", &self.web_idle_timeout),
            ("web.read_timeout", &self.web_read_timeout),
        ];
        for (key, value) in timeouts {
            if let Some(v) = value {
                set(key, string(v));
            }
        }
        if let Some(v) = self.web_max_connections {
            set("web.max_connections", Value::from(v));
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
        if let Some(v) = &self.remote_write_queue_dir {
            set("remote_write.queue.dir", string(v));
        }
        if let Some(v) = self.remote_write_queue_max_bytes {
            set("remote_write.queue.max_bytes", Value::from(v));
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
        if let Some(v) = &self.remote_write_protocol {
            set("remote_write.protocol", string(v));
        }
        if !self.remote_write_external_label.is_empty() {
            set(
                "remote_write.external_labels",
                Value::from(self.remote_write_external_label.clone()),
            );
        }
        if let Some(v) = &self.remote_write_resend_interval {
            set("remote_write.resend_interval", string(v));
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
        if let Some(v) = self.push_max_metric_name_length {
            set("push.max_metric_name_length", Value::from(v));
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
        if let Some(v) = &self.cache_group_ttl {
            set("cache.group_ttl", string(v));
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
pub(super) struct FlagsProvider(pub(super) Dict);

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
