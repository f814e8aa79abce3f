//! One remote_write HTTP exchange: POST a snappy-block-compressed
//! request (a 1.0 `WriteRequest` or a 2.0 `Request`) for one tenant, with
//! the headers its protocol reserves, and report what came back, including
//! the 2.0 `X-Prometheus-Remote-Write-*-Written` counts. The endpoint holds
//! the protocol `Negotiation` its answers feed.
//!
//! Connections are pooled by a hyper-util legacy client over the
//! [`https_connector`] of `remote_write.tls`: `http://` URLs are plain TCP,
//! `https://` URLs are verified against the CA file or the system store,
//! with an optional client certificate and server-name override. HTTP/2 is
//! chosen by ALPN on TLS, or forced (prior knowledge on plain TCP) with
//! `remote_write.http2`.
//!
//! Headers of each request, in the order they are set, each step able to
//! replace what the previous one set: the configured extra headers and
//! `Authorization` ([`Credentials::apply`], secret files re-read when they
//! change), the tenant header ([`TenantPolicy::apply`]), then
//! `Content-Encoding`, `Content-Type`, `X-Prometheus-Remote-Write-Version`
//! and `User-Agent`, so nothing configured can override those four. 1.0
//! sends `application/x-protobuf` and version `0.1.0`; 2.0 sends
//! `application/x-protobuf;proto=io.prometheus.write.v2.Request` and
//! `2.0.0`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::negotiate::{Negotiation, Protocol};
use super::readiness::{PROBE_HEADER, Readiness};
use super::retry;
use super::wire_v2::Counts;
use crate::config::RemoteWriteConfig;
use crate::push::tenant::TenantPolicy;
use crate::security::outbound::{Credentials, error_chain, https_connector};
use crate::telemetry;

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
        /// The `X-Prometheus-Remote-Write-*-Written` counts; `None` when
        /// the answer carries none of the three headers (a missing one of
        /// three counts as 0).
        written: Option<Counts>,
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

/// The backend endpoint, its connection pool and what every request
/// carries besides the body.
pub struct Endpoint {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    timeout: Duration,
    user_agent: HeaderValue,
    credentials: Credentials,
    tenancy: Arc<TenantPolicy>,
    negotiation: Negotiation,
    readiness: Readiness,
}

impl Endpoint {
    /// Builds the pooled client for `config.url` with the TLS settings,
    /// credentials and tenancy of `config`. Secret files are read once here,
    /// so a missing one fails at start.
    pub fn new(config: &RemoteWriteConfig) -> Result<Self, String> {
        let url = config.url.as_deref().ok_or("remote_write.url is not set")?;
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("remote_write.url {url:?} is not a URL: {e}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!(
                "remote_write.url {url:?} must be an http:// or https:// URL with a host"
            ));
        }
        let connector = https_connector(&config.tls, uri.scheme_str() == Some("https"))
            .map_err(|e| e.to_string())?;
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
            credentials: Credentials::from_config(config).map_err(|e| e.to_string())?,
            tenancy: Arc::new(TenantPolicy::new(&config.tenant)?),
            negotiation: Negotiation::new(config.protocol),
            readiness: Readiness::new(config.retry_deadline.0),
        })
    }

    /// The tenant policy requests are sent with; the push handler resolves
    /// each push's tenant with the same policy.
    pub fn tenancy(&self) -> &Arc<TenantPolicy> {
        &self.tenancy
    }

    /// The protocol choice for this endpoint.
    pub fn negotiation(&self) -> &Negotiation {
        &self.negotiation
    }

    /// The backend's health as this endpoint's exchanges saw it.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// POSTs one compressed request of `protocol` as `tenant` (no tenant
    /// header for `None`), waiting at most `timeout` (the configured
    /// timeout when `None`). Counts the request by status.
    pub async fn post(
        &self,
        compressed: Bytes,
        protocol: Protocol,
        tenant: Option<&str>,
        timeout: Option<Duration>,
    ) -> Answer {
        self.send(compressed, protocol, tenant, timeout, false)
            .await
    }

    /// POSTs an empty remote_write 1.0 request marked as a readiness probe
    /// (`readiness::PROBE_HEADER`), waiting at most `timeout`.
    pub async fn probe(&self, empty: Bytes, tenant: Option<&str>, timeout: Duration) -> Answer {
        self.send(empty, Protocol::V1, tenant, Some(timeout), true)
            .await
    }

    async fn send(
        &self,
        compressed: Bytes,
        protocol: Protocol,
        tenant: Option<&str>,
        timeout: Option<Duration>,
        is_probe: bool,
    ) -> Answer {
        let timeout = timeout.unwrap_or(self.timeout).min(self.timeout);
        let exchange = self.exchange(compressed, protocol, tenant, is_probe);
        let answer = match tokio::time::timeout(timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Answer::NoAnswer(format!("no answer within {timeout:?}")),
        };
        self.readiness.record(answer.status());
        let code = match answer.status() {
            Some(status) => status.as_str().to_string(),
            None => "error".to_string(),
        };
        metrics::counter!(telemetry::REMOTE_WRITE_REQUESTS, "code" => code).increment(1);
        answer
    }

    /// The headers of a request for `tenant`, in the order the module docs
    /// give. An unreadable secret file is an error naming the file.
    fn headers(
        &self,
        tenant: Option<&str>,
        protocol: Protocol,
        is_probe: bool,
    ) -> Result<HeaderMap, String> {
        let mut headers = HeaderMap::new();
        self.credentials.apply(&mut headers)?;
        self.tenancy.apply(tenant, &mut headers)?;
        let (content_type, version) = match protocol {
            Protocol::V1 => ("application/x-protobuf", "0.1.0"),
            Protocol::V2 => (
                "application/x-protobuf;proto=io.prometheus.write.v2.Request",
                "2.0.0",
            ),
        };
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(
            "x-prometheus-remote-write-version",
            HeaderValue::from_static(version),
        );
        headers.insert(header::USER_AGENT, self.user_agent.clone());
        if is_probe {
            headers.insert(PROBE_HEADER, HeaderValue::from_static("readiness"));
        }
        Ok(headers)
    }

    async fn exchange(
        &self,
        compressed: Bytes,
        protocol: Protocol,
        tenant: Option<&str>,
        is_probe: bool,
    ) -> Answer {
        let headers = match self.headers(tenant, protocol, is_probe) {
            Ok(headers) => headers,
            // Retried like a missing answer: a secret file being rotated
            // comes back.
            Err(e) => return Answer::NoAnswer(format!("remote_write credentials: {e}")),
        };
        let mut request = Request::new(Full::new(compressed));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = headers;
        let response = match self.client.request(request).await {
            Ok(r) => r,
            Err(e) => return Answer::NoAnswer(error_chain(&e)),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
        let written = written_counts(response.headers());
        // Read the body so the connection can be reused; keep it only for
        // errors: the receiver's text is what explains a refusal, so it is
        // logged and handed to the pusher as it came.
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
            written,
        }
    }
}

/// The counts of the `X-Prometheus-Remote-Write-{Samples,Histograms,
/// Exemplars}-Written` headers; `None` when none is present. A value that
/// is not a number counts as 0: the receiver did not say it stored more.
fn written_counts(headers: &HeaderMap) -> Option<Counts> {
    let count = |kind: &str| {
        headers
            .get(format!("x-prometheus-remote-write-{kind}-written"))
            .map(|v| {
                v.to_str()
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0)
            })
    };
    let (samples, histograms, exemplars) =
        (count("samples"), count("histograms"), count("exemplars"));
    if samples.is_none() && histograms.is_none() && exemplars.is_none() {
        return None;
    }
    Some(Counts {
        samples: samples.unwrap_or(0),
        histograms: histograms.unwrap_or(0),
        exemplars: exemplars.unwrap_or(0),
    })
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
    let needed = snap::raw::max_compress_len(raw.len());
    if needed > KEPT_SNAPPY_OUTPUT {
        return snap::raw::Encoder::new()
            .compress_vec(raw)
            .map(Bytes::from)
            .map_err(snappy_failed);
    }
    SNAPPY.with_borrow_mut(|(encoder, output)| {
        if output.len() < needed {
            output.resize(needed, 0);
        }
        let written = encoder.compress(raw, output).map_err(snappy_failed)?;
        Ok(Bytes::copy_from_slice(&output[..written]))
    })
}

/// The largest output buffer a thread keeps between requests (a request
/// of about 850 KB).
const KEPT_SNAPPY_OUTPUT: usize = 1 << 20;

thread_local! {
    /// Each thread's snappy encoder (its hash table) and output buffer,
    /// reused: a fresh encoder zeroes a new table, and `compress_vec`
    /// zeroes a new output of the worst-case size, which together cost
    /// about as much as the compression itself (callgrind: 170 of the
    /// ~510 instructions per forwarded series); copying out what was
    /// written costs a few.
    static SNAPPY: std::cell::RefCell<(snap::raw::Encoder, Vec<u8>)> =
        std::cell::RefCell::new((snap::raw::Encoder::new(), Vec::new()));
}

fn snappy_failed(error: snap::Error) -> String {
    format!("snappy compression failed: {error}")
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
        assert_eq!(unsnappy(&compressed), raw);
    }

    fn unsnappy(compressed: &[u8]) -> Vec<u8> {
        snap::raw::Decoder::new()
            .decompress_vec(compressed)
            .unwrap()
    }

    #[test]
    fn reused_buffers_compress_each_body_alone() {
        // A long body, then a short one: the kept output buffer is longer
        // than the second's output, and the encoder's table has the first's
        // positions; neither may leak into the second request.
        let long: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let short = b"abcabcabc short body".to_vec();
        let first = compress(&long).unwrap();
        let second = compress(&short).unwrap();
        assert_eq!(unsnappy(&first), long);
        assert_eq!(unsnappy(&second), short);
        // Above the kept size, the one-off path gives the same block.
        let huge = vec![7u8; KEPT_SNAPPY_OUTPUT + 1];
        assert_eq!(unsnappy(&compress(&huge).unwrap()), huge);
    }

    #[test]
    fn each_protocol_has_its_own_content_type_and_version() {
        let config = RemoteWriteConfig {
            url: Some("http://127.0.0.1:1/api/v1/write".into()),
            ..RemoteWriteConfig::default()
        };
        let endpoint = Endpoint::new(&config).unwrap();
        let v1 = endpoint.headers(None, Protocol::V1, false).unwrap();
        assert_eq!(v1[header::CONTENT_TYPE], "application/x-protobuf");
        assert_eq!(v1["x-prometheus-remote-write-version"], "0.1.0");
        let v2 = endpoint.headers(None, Protocol::V2, false).unwrap();
        assert_eq!(
            v2[header::CONTENT_TYPE],
            "application/x-protobuf;proto=io.prometheus.write.v2.Request"
        );
        assert_eq!(v2["x-prometheus-remote-write-version"], "2.0.0");
        assert_eq!(v2[header::CONTENT_ENCODING], "snappy");
        assert!(!v1.contains_key(PROBE_HEADER) && !v2.contains_key(PROBE_HEADER));
        let probe = endpoint.headers(None, Protocol::V1, true).unwrap();
        assert_eq!(probe[PROBE_HEADER], "readiness", "a probe says what it is");
        assert_eq!(probe[header::CONTENT_TYPE], "application/x-protobuf");
    }

    #[test]
    fn written_headers_are_read_and_a_missing_one_of_three_is_zero() {
        let mut headers = HeaderMap::new();
        assert_eq!(written_counts(&headers), None);
        headers.insert(
            "x-prometheus-remote-write-samples-written",
            HeaderValue::from_static("7"),
        );
        headers.insert(
            "x-prometheus-remote-write-exemplars-written",
            HeaderValue::from_static("x"),
        );
        assert_eq!(
            written_counts(&headers),
            Some(Counts {
                samples: 7,
                histograms: 0,
                exemplars: 0
            })
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
    fn missing_and_non_http_urls_are_refused_and_https_is_accepted() {
        let mut config = RemoteWriteConfig::default();
        assert!(Endpoint::new(&config).is_err());
        config.url = Some("ftp://x/api/v1/write".into());
        let err = Endpoint::new(&config).err().unwrap();
        assert!(err.contains("http:// or https://"), "{err}");
        config.url = Some("https://x/api/v1/write".into());
        config.tls.insecure_skip_verify = true;
        assert!(Endpoint::new(&config).is_ok());
    }

    #[test]
    fn configured_headers_come_first_and_the_reserved_four_last() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let mut config = RemoteWriteConfig {
            url: Some("http://127.0.0.1:1/api/v1/write".into()),
            bearer_token_file: Some(token),
            ..RemoteWriteConfig::default()
        };
        config.tenant.id = Some("team-a".into());
        config
            .headers
            .0
            .push(("X-Extra".into(), crate::config::Secret::new("1")));
        let endpoint = Endpoint::new(&config).unwrap();
        let headers = endpoint
            .headers(Some("team-b"), Protocol::V1, false)
            .unwrap();
        let names: Vec<&str> = headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "x-extra",
                "authorization",
                "x-scope-orgid",
                "content-encoding",
                "content-type",
                "x-prometheus-remote-write-version",
                "user-agent"
            ]
        );
        assert_eq!(headers["authorization"], "Bearer s3cret");
        assert_eq!(headers["x-scope-orgid"], "team-b");
        assert!(
            !endpoint
                .headers(None, Protocol::V1, false)
                .unwrap()
                .contains_key("x-scope-orgid")
        );
    }
}
