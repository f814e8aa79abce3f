//! Loading a [`Config`]: the figment layers (defaults < file < environment
//! < flags), the validation of values no type can express, and the errors,
//! each naming the key and the source (file, variable or flag) it came
//! from. A module that refuses a setting reports a [`KeyedProblem`] through
//! [`Config::load_checked`] and is worded the same way.

use std::net::SocketAddr;
use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml, Yaml};
use figment::{Figment, Metadata};

use super::cli::FlagsProvider;
use super::{AckMode, Cli, Config, MIN_DISK_QUEUE_BYTES};

/// A configuration that could not be loaded, naming the key and its source.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

/// A setting that the module using it refused: the key (e.g.
/// `remote_write.tls.ca_file`) and what is wrong with its value.
pub trait KeyedProblem {
    fn key(&self) -> &str;
    fn problem(&self) -> &str;
}

/// So that one check can report the problems of several modules.
impl<P: KeyedProblem + ?Sized> KeyedProblem for Box<P> {
    fn key(&self) -> &str {
        (**self).key()
    }

    fn problem(&self) -> &str {
        (**self).problem()
    }
}

impl Config {
    /// [`Config::load`], then `check` (a check another module owns, e.g.
    /// building the security objects once); a problem it finds is reported
    /// as a bad value is: with its key and the source the key came from.
    pub fn load_checked<P: KeyedProblem>(
        cli: &Cli,
        check: impl FnOnce(&Config) -> Result<(), P>,
    ) -> Result<Self, ConfigError> {
        let (config, figment) = Self::load_layers(cli)?;
        check(&config).map_err(|p| invalid_key(&figment, p.key(), p.problem()))?;
        Ok(config)
    }

    /// Loads the layers for these flags and the environment
    /// (`PUSHRELAY_*` variables), and validates the plain values.
    pub fn load(cli: &Cli) -> Result<Self, ConfigError> {
        Self::load_layers(cli).map(|(config, _)| config)
    }

    /// The loaded configuration and the layers it came from.
    fn load_layers(cli: &Cli) -> Result<(Self, Figment), ConfigError> {
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
        Ok((config, figment))
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
        let fail = |key: &str, problem: String| invalid_key(figment, key, &problem);
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
        if self.web.max_connections == 0 {
            return Err(fail("web.max_connections", "must be at least 1".into()));
        }
        for (key, value) in [
            ("web.read_header_timeout", self.web.read_header_timeout),
            ("web.idle_timeout", self.web.idle_timeout),
            ("web.read_timeout", self.web.read_timeout),
        ] {
            if value.0.is_zero() {
                return Err(fail(key, "must be longer than 0s".into()));
            }
        }
        if self.remote_write.concurrency == 0 {
            return Err(fail(
                "remote_write.concurrency",
                "must be at least 1".into(),
            ));
        }
        if !self.remote_write.resend_interval.0.is_zero() && !self.forwarding() {
            return Err(fail(
                "remote_write.resend_interval",
                "re-sends go to the remote_write backend: set remote_write.url too".into(),
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
        if self.remote_write.ack == AckMode::Durable && self.remote_write.queue.dir.is_none() {
            return Err(fail(
                "remote_write.queue.dir",
                "is required with remote_write.ack = \"durable\"".into(),
            ));
        }
        if self.remote_write.queue.max_bytes < MIN_DISK_QUEUE_BYTES {
            return Err(fail(
                "remote_write.queue.max_bytes",
                format!("must be at least {MIN_DISK_QUEUE_BYTES}"),
            ));
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

    /// The cache is on when asked for, when there is nowhere to forward,
    /// or when cached groups are re-sent.
    pub fn caching(&self) -> bool {
        self.cache.enabled || !self.forwarding() || self.resending()
    }

    /// Whether cached groups are re-sent through remote_write.
    pub fn resending(&self) -> bool {
        self.forwarding() && !self.remote_write.resend_interval.0.is_zero()
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

/// The error for a bad value of `key`, naming where the key was set.
fn invalid_key(figment: &Figment, key: &str, problem: &str) -> ConfigError {
    ConfigError(format!(
        "key `{key}` {}: {problem}",
        source_of(figment, key)
    ))
}

fn source_of(figment: &Figment, key: &str) -> String {
    // An entry of a list (`write_relabel_configs[2].regex`) came from where
    // the list came from.
    let key = key.split('[').next().unwrap_or(key);
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
