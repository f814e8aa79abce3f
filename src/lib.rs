//! pushrelay: a Pushgateway-compatible push endpoint.
//!
//! Short-lived jobs push metrics with the clients they already use (Go
//! `push.New`, Python `push_to_gateway`, curl). By default every push is
//! forwarded as Prometheus remote_write to a backend; with no backend (or
//! with `--cache`) pushrelay is also a scrapeable Pushgateway.
//!
//! # The map
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | the one `Config` struct, its layers (defaults < file < env < flags), plain settings incl. secrets that never print |
//! | [`server`] | listeners, the routing table, graceful shutdown |
//! | `http_response` | the HTTP answers the server and the cache's web routes share (a leaf) |
//! | [`push`] | ingest: grouping key and the one merge of its labels, body decoding, validation, the tenant policy, the push handler and the `PushSink` trait it talks to |
//! | [`exposition`] | the metric formats: text, OpenMetrics and delimited protobuf parsed into one borrowed index (the owned `MetricFamily` model for what the index declines, and for the cache), Go float formatting and quoting |
//! | [`sinks`] | `Sinks`, the `PushSink` that fans one `Push` out to the enabled sinks |
//! | [`forward`] | remote_write: convert, external labels and write relabeling, series memory (stale markers), shards, batch, send, retry, the 1.0/2.0 wire encodings and their negotiation, the readiness probe, the durable queue |
//! | [`cache`] | the Pushgateway store, its consistency check, scrape, JSON API, persistence and web page |
//! | [`expiry`] | removal of cached groups not pushed within their TTL |
//! | [`resend`] | the re-send ticker: every cached group written again through the forwarder each interval |
//! | [`telemetry`] | pushrelay's own metrics, each defined once (the cache's clash list derives from it) |
//! | [`security`] | TLS and auth on both sides, built from `config`'s settings |
//! | `hashing` | the one hashing policy for keys pushers control (seeded per process) |
//! | `label_order` | how label names compare on the hot paths (first byte, then `memcmp`) |
//! | [`proto`] | generated protobuf types |
//!
//! # The path of a push
//!
//! Data flows one way: `server` routes `PUT`/`POST`/`DELETE
//! /metrics/job/...` to [`push::handler`], which resolves the grouping key
//! from the path (`push::path`) and the tenant (`push::tenant`), reads the
//! body within its limits (`push::body`), parses it (`exposition`: a text
//! or OpenMetrics body is kept and indexed, protobuf's strings are copied
//! into the index; what the index declines becomes `MetricFamily` values)
//! and checks it (`push::validate`) into one [`push::Push`]. The handler
//! hands it to a [`push::PushSink`]; in production that is [`sinks::Sinks`],
//! which checks it against the cache, forwards it (`forward`: convert →
//! shard → batch → send) and stores it (`cache`). The sink's answer comes
//! back as one [`push::SinkError`] (or success), which the handler maps
//! once to the HTTP status.
//!
//! # Error policy
//!
//! Errors that decide an answer are typed, because their caller acts on
//! the kind: [`push::Rejection`] (ingest's 4xx, and whether the group's
//! failure time is recorded), [`push::SinkError`] (400, 503 or 429 with
//! `Retry-After`), the cache's refusals, and [`security::SecurityError`]
//! (which carries the configuration key it is about, so a bad setting is
//! reported with its key and source at start). Errors that only end up in
//! a message (a parse error's text, a persistence file that cannot be
//! read, a backend's answer) are strings or `thiserror` wrappers around
//! one; `main` reports start-up failures through `anyhow`. Nothing on the
//! request path panics on input: every refusal is a status and a short
//! message that names the problem.
//!
//! # Unsafe code
//!
//! Forbidden crate-wide. Memory freed after a load storm goes back to the
//! system through the binary's allocator (jemalloc with background
//! threads, set in `main.rs` with safe code), not through calls from here.

#![forbid(unsafe_code)]

pub mod cache;
pub mod config;
pub mod expiry;
pub mod exposition;
pub mod forward;
pub(crate) mod hashing;
mod http_response;
mod label_order;
pub mod proto;
pub mod push;
pub mod resend;
pub mod security;
pub mod server;
pub mod sinks;
pub mod telemetry;
