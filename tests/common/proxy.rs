//! The recording remote_write pass-through and the checks of what it saw.
//!
//! Prometheus 2.42 keeps no remote-written metadata and silently drops
//! empty label values, so TYPE/HELP and label hygiene are checked on the
//! wire: [`RecordingProxy`] records every request (headers and decoded
//! `WriteRequest`) and forwards it unchanged; [`wire_problems`] and friends
//! read the records.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prost::Message;
use pushrelay::proto::prompb::{MetricMetadata, TimeSeries, WriteRequest};

use super::{STALE_NAN_BITS, http_client};

/// One request that went through the [`RecordingProxy`].
#[derive(Clone, Debug)]
pub struct RecordedWrite {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The body snappy-block-decoded and protobuf-decoded, or why not.
    pub decoded: Result<WriteRequest, String>,
    /// What the upstream answered.
    pub upstream_status: StatusCode,
}

impl RecordedWrite {
    /// The decoded request; panics (naming the problem) if it did not decode.
    pub fn request(&self) -> &WriteRequest {
        self.decoded
            .as_ref()
            .unwrap_or_else(|e| panic!("remote_write body did not decode: {e}"))
    }
}

/// Decodes a remote_write 1.0 body: snappy block format, then protobuf.
pub fn decode_write_request(body: &[u8]) -> Result<WriteRequest, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("not snappy block format: {e}"))?;
    WriteRequest::decode(raw.as_slice()).map_err(|e| format!("not a prometheus.WriteRequest: {e}"))
}

/// Encodes a remote_write 1.0 body.
pub fn encode_write_request(request: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .expect("snappy-compressing a WriteRequest")
}

/// An in-process HTTP server that records every request and forwards it
/// unchanged to `upstream`, answering with the upstream's answer.
pub struct RecordingProxy {
    addr: SocketAddr,
    records: Arc<Mutex<Vec<RecordedWrite>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingProxy {
    /// Starts the proxy in front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the recording proxy");
        let addr = listener.local_addr().expect("proxy address");
        let records = Arc::new(Mutex::new(Vec::new()));
        let upstream: Arc<str> = upstream.trim_end_matches('/').into();
        let task = {
            let records = records.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let records = records.clone();
                    let upstream = upstream.clone();
                    let service = service_fn(move |request| {
                        let records = records.clone();
                        let upstream = upstream.clone();
                        async move { Ok::<_, Infallible>(relay(&upstream, &records, request).await) }
                    });
                    tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        Self {
            addr,
            records,
            task,
        }
    }

    /// The remote_write URL to give the sender.
    pub fn write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    /// Every request recorded so far, in arrival order.
    pub fn writes(&self) -> Vec<RecordedWrite> {
        self.records.lock().expect("records lock").clone()
    }

    /// Forgets what was recorded so far.
    pub fn clear(&self) {
        self.records.lock().expect("records lock").clear();
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    upstream: &str,
    records: &Mutex<Vec<RecordedWrite>>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return plain_response(StatusCode::BAD_REQUEST, &format!("proxy: {e}")),
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut forward = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        if name != header::HOST {
            forward = forward.header(name, value);
        }
    }
    let forward = forward
        .body(Full::new(body.clone()))
        .expect("a request copied from a valid one is valid");
    let (status, response) = match http_client().request(forward).await {
        Ok(answer) => {
            let (answer_parts, answer_body) = answer.into_parts();
            let answer_body = answer_body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let mut response = Response::new(Full::new(answer_body));
            *response.status_mut() = answer_parts.status;
            for (name, value) in &answer_parts.headers {
                if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
                    response.headers_mut().append(name, value.clone());
                }
            }
            (answer_parts.status, response)
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            plain_response(StatusCode::BAD_GATEWAY, &format!("proxy: upstream: {e}")),
        ),
    };
    records.lock().expect("records lock").push(RecordedWrite {
        method: parts.method,
        path,
        headers: parts.headers,
        decoded: decode_write_request(&body),
        body,
        upstream_status: status,
    });
    response
}

fn plain_response(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(message.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// The labels of a wire series as a map (the wire form is checked
/// separately by [`wire_problems`]).
pub fn label_map(series: &TimeSeries) -> BTreeMap<String, String> {
    series
        .labels
        .iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

/// Whether `value` is Prometheus' stale marker.
pub fn is_stale_marker(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// Everything in `writes` that breaks remote_write 1.0 as a sender must
/// speak it: method, the four reserved headers, snappy block + protobuf
/// body, and per series: `__name__` present, label names sorted and unique,
/// no empty names or values, at least one sample, sample timestamps in
/// milliseconds within `[not_before_ms, not_after_ms]` and increasing.
/// Empty requests marked as readiness probes are allowed, and so are
/// Remote-Write 2.0 requests (with the 2.0 headers) before the first
/// non-empty 1.0 one: the `auto` protocol's first try, which a 1.0-only
/// backend reads as an empty request, before the switch to 1.0.
/// Empty when all is well.
pub fn wire_problems(
    writes: &[RecordedWrite],
    not_before_ms: i64,
    not_after_ms: i64,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut switched_to_1_0 = false;
    for (index, write) in writes.iter().enumerate() {
        let mut problem = |text: String| problems.push(format!("request #{index}: {text}"));
        if write.method != Method::POST {
            problem(format!("method {} (must be POST)", write.method));
        }
        let header = |name: &str| {
            write
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let v2 = super::rw2::is_v2(&write.headers);
        let (content_type, version) = if v2 {
            (super::rw2::V2_CONTENT_TYPE, "2.0.0")
        } else {
            ("application/x-protobuf", "0.1.0")
        };
        for (name, want) in [
            ("content-encoding", "snappy"),
            ("content-type", content_type),
            ("x-prometheus-remote-write-version", version),
        ] {
            if header(name).as_deref() != Some(want) {
                problem(format!(
                    "header {name} is {:?}, must be {want:?}",
                    header(name)
                ));
            }
        }
        match header("user-agent") {
            Some(agent) if agent.starts_with("pushrelay/") => {}
            other => problem(format!(
                "user-agent is {other:?}, must be pushrelay/<version>"
            )),
        }
        let request = match &write.decoded {
            Ok(request) => request,
            Err(e) => {
                problem(e.clone());
                continue;
            }
        };
        if v2 {
            if switched_to_1_0 {
                problem("a 2.0 request after the switch to 1.0".into());
            }
            continue;
        }
        let empty = request.timeseries.is_empty() && request.metadata.is_empty();
        switched_to_1_0 |= !empty;
        // Readiness probes are the only empty requests allowed, and they
        // say what they are; a write never does.
        let probe = header("pushrelay-probe").is_some();
        if empty && !probe {
            problem("empty WriteRequest that is not a readiness probe".into());
        }
        if probe && !empty {
            problem("a readiness probe that carries series or metadata".into());
        }
        for series in &request.timeseries {
            let shown = format!("{:?}", label_map(series));
            if !series.labels.iter().any(|l| l.name == "__name__") {
                problem(format!("series {shown} has no __name__"));
            }
            for pair in series.labels.windows(2) {
                if pair[0].name >= pair[1].name {
                    problem(format!(
                        "series {shown}: label names not sorted and unique ({:?} then {:?})",
                        pair[0].name, pair[1].name
                    ));
                }
            }
            for label in &series.labels {
                if label.name.is_empty() || label.value.is_empty() {
                    problem(format!(
                        "series {shown}: empty label name or value ({:?}={:?})",
                        label.name, label.value
                    ));
                }
            }
            if series.samples.is_empty() && series.histograms.is_empty() {
                problem(format!("series {shown} carries no sample"));
            }
            for pair in series.samples.windows(2) {
                if pair[0].timestamp >= pair[1].timestamp {
                    problem(format!("series {shown}: sample timestamps not increasing"));
                }
            }
            for sample in &series.samples {
                if sample.timestamp < not_before_ms || sample.timestamp > not_after_ms {
                    problem(format!(
                        "series {shown}: timestamp {} outside [{not_before_ms}, {not_after_ms}] (must be the receive time in ms)",
                        sample.timestamp
                    ));
                }
            }
        }
    }
    problems
}

/// The last non-stale value of every series in `writes`, by label set.
pub fn wire_latest_values(writes: &[RecordedWrite]) -> BTreeMap<BTreeMap<String, String>, f64> {
    let mut latest: BTreeMap<BTreeMap<String, String>, (i64, f64)> = BTreeMap::new();
    for write in writes {
        let Ok(request) = &write.decoded else {
            continue;
        };
        for series in &request.timeseries {
            for sample in &series.samples {
                let entry = latest.entry(label_map(series)).or_insert((i64::MIN, 0.0));
                if sample.timestamp >= entry.0 {
                    *entry = (sample.timestamp, sample.value);
                }
            }
        }
    }
    latest
        .into_iter()
        .filter(|(_, (_, value))| !is_stale_marker(*value))
        .map(|(labels, (_, value))| (labels, value))
        .collect()
}

/// The label sets that got a stale marker in `writes`.
pub fn wire_stale_series(writes: &[RecordedWrite]) -> Vec<BTreeMap<String, String>> {
    let mut stale: Vec<_> = writes
        .iter()
        .filter_map(|w| w.decoded.as_ref().ok())
        .flat_map(|r| r.timeseries.iter())
        .filter(|s| s.samples.iter().any(|sample| is_stale_marker(sample.value)))
        .map(label_map)
        .collect();
    stale.sort();
    stale.dedup();
    stale
}

/// Every metadata entry in `writes`, by family name; a family announced
/// with two different entries is a problem reported as `Err`.
pub fn wire_metadata(writes: &[RecordedWrite]) -> Result<BTreeMap<String, MetricMetadata>, String> {
    let mut by_family: BTreeMap<String, MetricMetadata> = BTreeMap::new();
    for write in writes {
        let Ok(request) = &write.decoded else {
            continue;
        };
        for entry in &request.metadata {
            match by_family.get(&entry.metric_family_name) {
                Some(seen) if seen != entry => {
                    return Err(format!(
                        "family {} announced as {seen:?} and as {entry:?}",
                        entry.metric_family_name
                    ));
                }
                _ => {
                    by_family.insert(entry.metric_family_name.clone(), entry.clone());
                }
            }
        }
    }
    Ok(by_family)
}
