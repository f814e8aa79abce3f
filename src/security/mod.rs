//! Security at both ends of pushrelay, and the secrets it handles.
//!
//! - [`inbound`] + [`webconfig`]: the `--web.config.file` (exporter-toolkit
//!   format): TLS for the listener (with client certificates) and basic
//!   auth for every request, reloaded when the files change;
//! - [`outbound`]: the TLS connector and the credentials (basic auth,
//!   bearer token, extra headers) for the remote_write backend;
//! - [`secret`]: [`Secret`] and [`SecretFile`], which never print their
//!   contents: secrets stay out of logs, errors, `--check-config` and
//!   `Debug` output.
//!
//! Configuration keeps paths to secret files, not the secrets themselves.

pub mod inbound;
pub mod outbound;
pub mod secret;
pub mod webconfig;

pub use secret::{Secret, SecretFile};
