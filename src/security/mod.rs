//! Security at both ends of pushrelay: live objects built from the plain
//! settings in [`crate::config`].
//!
//! - [`inbound`] + `webconfig`: the `--web.config.file` (exporter-toolkit
//!   format): TLS for the listener (with client certificates) and basic
//!   auth for every request, reloaded when the files change;
//! - [`outbound`]: the TLS connector and the credentials (basic auth,
//!   bearer token, extra headers) for the remote_write backend;
//! - `secret`: [`SecretFile`], a secret read from a file and re-read when
//!   it changes.
//!
//! Configuration keeps paths to secret files, not the secrets themselves.
//! A setting these objects cannot be built from is a [`SecurityError`]
//! naming its configuration key; [`check`] builds them all once, so
//! `Config::load_checked` reports it at start with the key's source.

use crate::config::{Config, KeyedProblem};

pub mod inbound;
pub mod outbound;
pub(crate) mod secret;
pub(crate) mod webconfig;

pub use secret::SecretFile;

/// A security setting that cannot be used: its configuration key (e.g.
/// `remote_write.tls.ca_file`) and what is wrong, never a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct SecurityError {
    pub key: &'static str,
    pub problem: String,
}

impl SecurityError {
    /// A problem with the setting `key`.
    pub fn new(key: &'static str, problem: impl Into<String>) -> Self {
        Self {
            key,
            problem: problem.into(),
        }
    }
}

impl KeyedProblem for SecurityError {
    fn key(&self) -> &str {
        self.key
    }

    fn problem(&self) -> &str {
        &self.problem
    }
}

/// Builds every security object `config` describes once, so a bad
/// certificate, a missing secret file or a reserved header fails at start
/// (and in `--check-config`).
pub fn check(config: &Config) -> Result<(), SecurityError> {
    if let Some(path) = config.web_config_file() {
        inbound::WebSecurity::load(path)?;
    }
    let rw = &config.remote_write;
    // The files of a configured section are checked here; the system's CA
    // store is the forwarder's to load, only for an https backend.
    if rw.tls != crate::config::TlsClientConfig::default() {
        outbound::client_tls_config(&rw.tls, false)?;
    }
    outbound::Credentials::from_config(rw)?;
    crate::push::tenant::TenantPolicy::new(&rw.tenant)
        .map_err(|problem| SecurityError::new("remote_write.tenant", problem))?;
    Ok(())
}
