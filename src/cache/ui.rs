//! The web page at `/` (and `/status`): lists every group with its labels,
//! last push time, a failure badge and its metrics, and a button per group
//! that deletes it with `DELETE metrics/job@base64/...` as the Pushgateway's
//! UI does. One self-contained HTML file (no build step, no CDN) that reads
//! the JSON API through relative URLs, so it works under any route prefix.

/// The page, embedded at compile time.
pub const PAGE: &str = include_str!("ui.html");
