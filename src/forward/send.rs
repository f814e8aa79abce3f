//! One remote_write HTTP exchange: POST a snappy-block-compressed
//! `WriteRequest` with the four headers remote_write 1.0 reserves, and
//! report what came back.
//!
//! Connections are pooled by a hyper-util legacy client (HTTP/1.1, or HTTP/2
//! with prior knowledge when configured). The connector is the TLS seam:
//! today it is plain TCP and `https://` URLs are refused at start; an
//! `https` connector (hyper-rustls) slots in at [`Connector`] without
//! touching the callers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::retry;
use crate::config::RemoteWriteConfig;
use crate::telemetry;

/// The transport under the pooled client (the TLS seam).
type Connector = HttpConnector;

/// How much of an error body is kept for logs and pushers.
pub const ERROR_BODY_LIMIT: usize = 1024;
/// How much of any answer body is read (the rest is dropped with the
/// connection rather than read).
const READ_LIMIT: usize = 64 * 1024;

/// What one POST came back with.
#[derive(Clone, Debug)]
pub enum Answer {
    /// The backend answered.
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
        /// The body, truncated to [`ERROR_BODY_LIMIT`] (empty on 2xx).
        body: String,
    },
    /// No answer: connection refused or reset, timeout, broken response.
    NoAnswer(String),
}

impl Answer {
    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Answer::Status { status, .. } => Some(*status),
            Answer::NoAnswer(_) => None,
        }
    }
}

/// The backend endpoint and its connection pool.
pub struct Endpoint {
    client: Client<Connector, Full<Bytes>>,
    uri: Uri,
    timeout: Duration,
    user_agent: HeaderValue,
    reached: Arc<AtomicBool>,
}

impl Endpoint {
    /// Builds the pooled client for `config.url`.
    pub fn new(config: &RemoteWriteConfig) -> Result<Self, String> {
        let url = config.url.as_deref().ok_or("remote_write.url is not set")?;
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("remote_write.url {url:?} is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "remote_write.url {url:?}: https backends are not supported yet; use http://"
                ));
            }
            _ => return Err(format!("remote_write.url {url:?} must start with http://")),
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .http2_only(config.http2)
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        let user_agent = HeaderValue::from_static(concat!("pushrelay/", env!("CARGO_PKG_VERSION")));
        Ok(Self {
            client,
            uri,
            timeout: config.timeout.0,
            user_agent,
            reached: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Whether the backend has answered any request.
    pub fn reached(&self) -> bool {
        self.reached.load(Ordering::Relaxed)
    }

    /// POSTs one compressed `WriteRequest`, waiting at most `timeout` (the
    /// configured timeout when `None`). Counts the request by status.
    pub async fn post(&self, compressed: Bytes, timeout: Option<Duration>) -> Answer {
        let timeout = timeout.unwrap_or(self.timeout).min(self.timeout);
        let answer = match tokio::time::timeout(timeout, self.exchange(compressed)).await {
            Ok(answer) => answer,
            Err(_) => Answer::NoAnswer(format!("no answer within {timeout:?}")),
        };
        let code = match answer.status() {
            Some(status) => {
                self.reached.store(true, Ordering::Relaxed);
                status.as_str().to_string()
            }
            None => "error".to_string(),
        };
        metrics::counter!(telemetry::REMOTE_WRITE_REQUESTS, "code" => code).increment(1);
        answer
    }

    async fn exchange(&self, compressed: Bytes) -> Answer {
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(header::CONTENT_ENCODING, "snappy")
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .header(header::USER_AGENT, self.user_agent.clone())
            .body(Full::new(compressed));
        let request = match request {
            Ok(r) => r,
            Err(e) => return Answer::NoAnswer(format!("building the request: {e}")),
        };
        let response = match self.client.request(request).await {
            Ok(r) => r,
            Err(e) => return Answer::NoAnswer(describe_client_error(&e)),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
        // Read the body so the connection can be reused; keep it only for
        // errors, where the spec wants it logged verbatim.
        let body = match Limited::new(response.into_body(), READ_LIMIT)
            .collect()
            .await
        {
            Ok(collected) if !status.is_success() => truncate(&collected.to_bytes()),
            Ok(_) => String::new(),
            Err(e) if status.is_success() => {
                tracing::debug!(error = %e, "reading a remote_write success body");
                String::new()
            }
            Err(e) => format!("(body unreadable: {e})"),
        };
        Answer::Status {
            status,
            retry_after,
            body,
        }
    }
}

/// The error chain of a failed exchange, e.g. "client error (Connect):
/// tcp connect error: Connection refused (os error 111)".
fn describe_client_error(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The first [`ERROR_BODY_LIMIT`] bytes of `body` as text, trimmed, cut at a
/// character boundary, marked when cut.
pub fn truncate(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.len() <= ERROR_BODY_LIMIT {
        return text.to_string();
    }
    let mut end = ERROR_BODY_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… (truncated)", &text[..end])
}

/// Snappy block format, as remote_write requires (never the framed format).
pub fn compress(raw: &[u8]) -> Result<Bytes, String> {
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .map(Bytes::from)
        .map_err(|e| format!("snappy compression failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_snappy_block() {
        let raw = b"hello hello hello hello".repeat(10);
        let compressed = compress(&raw).unwrap();
        // No stream identifier chunk (0xff "sNaPpY"), and it block-decodes.
        assert_ne!(compressed[0], 0xff);
        assert_eq!(
            snap::raw::Decoder::new()
                .decompress_vec(&compressed)
                .unwrap(),
            raw
        );
    }

    #[test]
    fn long_bodies_are_truncated_at_char_boundaries() {
        assert_eq!(truncate(b"  short\n"), "short");
        let long = "é".repeat(ERROR_BODY_LIMIT);
        let cut = truncate(long.as_bytes());
        assert!(cut.ends_with("… (truncated)"));
        assert!(cut.len() < long.len());
    }

    #[test]
    fn https_and_missing_urls_are_refused() {
        let mut config = RemoteWriteConfig::default();
        assert!(Endpoint::new(&config).is_err());
        config.url = Some("https://x/api/v1/write".into());
        let err = Endpoint::new(&config).err().unwrap();
        assert!(err.contains("https"), "{err}");
    }
}
