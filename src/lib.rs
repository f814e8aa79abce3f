//! pushrelay: a Pushgateway-compatible push endpoint.
//!
//! Short-lived jobs push metrics with the clients they already use (Go
//! `push.New`, Python `push_to_gateway`, curl). By default every push is
//! forwarded as Prometheus remote_write to a backend; with no backend (or
//! with `--cache`) pushrelay is also a scrapeable Pushgateway.
//!
//! Data flows one way: server → push → sinks.
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | the one `Config` struct and its layers (defaults < file < env < flags) |
//! | [`server`] | listeners, the routing table, graceful shutdown |
//! | [`push`] | ingest: grouping key, body decoding, validation, the push handler |
//! | [`exposition`] | metric formats: text and protobuf parsing, Go float formatting |
//! | [`sinks`] | fan-out of one `Push` to the enabled sinks |
//! | [`forward`] | remote_write: convert, batch, send |
//! | [`cache`] | the Pushgateway store and its scrape |
//! | [`telemetry`] | pushrelay's own metrics, all names in one place |
//! | [`security`] | TLS and auth on both sides, tenancy, secrets that never print |
//! | [`proto`] | generated protobuf types |

pub mod cache;
pub mod config;
pub mod exposition;
pub mod forward;
pub(crate) mod hashing;
pub mod proto;
pub mod push;
pub mod security;
pub mod server;
pub mod sinks;
pub mod telemetry;
