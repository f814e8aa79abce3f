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
//! | [`config`] | the one `Config` struct, its layers (defaults < file < env < flags), plain settings incl. secrets that never print |
//! | [`server`] | listeners, the routing table, graceful shutdown |
//! | `http_response` | the HTTP answers the server and the cache's web routes share (a leaf) |
//! | [`push`] | ingest: grouping key, body decoding, validation, the tenant policy, the push handler and the `PushSink` trait it talks to |
//! | [`exposition`] | metric formats: text and protobuf parsing, Go float formatting |
//! | [`sinks`] | `Sinks`, the `PushSink` that fans one `Push` out to the enabled sinks |
//! | [`forward`] | remote_write: convert, batch, send |
//! | [`cache`] | the Pushgateway store and its scrape |
//! | [`expiry`] | removal of cached groups not pushed within their TTL |
//! | [`resend`] | the re-send ticker: every cached group written again through the forwarder each interval |
//! | [`telemetry`] | pushrelay's own metrics, all names in one place |
//! | [`security`] | TLS and auth on both sides, built from `config`'s settings |
//! | [`proto`] | generated protobuf types |

pub mod cache;
pub mod config;
pub mod expiry;
pub mod exposition;
pub mod forward;
pub(crate) mod hashing;
mod http_response;
pub mod proto;
pub mod push;
pub mod resend;
pub mod security;
pub mod server;
pub mod sinks;
pub mod telemetry;
