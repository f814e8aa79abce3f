//! The integration-test harness: real peers, an HTTP client, a Prometheus
//! query helper, and a recording remote_write pass-through.
//!
//! - Peers ([`Prometheus`], [`Pushgateway`], [`Pushrelay`]) run as child
//!   processes on 127.0.0.1, each on a free port with its own temporary
//!   directory. Starting one waits until it answers its readiness endpoint;
//!   dropping it kills it by its PID and removes the directory.
//! - A peer binary that is missing is a test failure that says to run
//!   `scripts/install-peers.sh`: nothing is skipped silently.
//! - [`RecordingProxy`] sits between pushrelay and Prometheus. Prometheus
//!   2.42 keeps no remote-written metadata and silently drops empty label
//!   values, so TYPE/HELP and label hygiene can only be checked on the wire:
//!   the proxy records every request (headers and decoded `WriteRequest`)
//!   and forwards it unchanged.
//! - The clients under `tests/clients/` (Go client_golang, Python
//!   prometheus_client) are run by [`run_go_push`] and [`run_py_push`].
//!
//! Every test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use pushrelay::proto::prompb::{MetricMetadata, TimeSeries, WriteRequest};
use tempfile::TempDir;

/// What every "peer missing" failure tells the reader to do.
pub const INSTALL_HINT: &str = "run scripts/install-peers.sh to install the test peers";

/// How long a peer may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one HTTP request of a test may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The value of Prometheus' stale marker (a NaN with this exact bit pattern).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

// ---------------------------------------------------------------------------
// Ports, binaries, files
// ---------------------------------------------------------------------------

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// The path of `name` in `PATH`; panics with the install hint when missing.
pub fn require_binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not installed (not found in PATH): {INSTALL_HINT}"))
}

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `tests/fixtures/`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = repo_root().join("tests/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The `Content-Type` recorded in a captured `.headers` fixture.
pub fn fixture_content_type(headers_file: &str) -> String {
    let text = String::from_utf8(fixture(headers_file)).expect("headers fixture is UTF-8");
    text.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_else(|| panic!("{headers_file} has no Content-Type line"))
}

/// Seconds since the Unix epoch, as Prometheus and the Pushgateway write times.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

// ---------------------------------------------------------------------------
// Peer processes
// ---------------------------------------------------------------------------

/// A child process on 127.0.0.1, killed by its PID when dropped.
pub struct Peer {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    log_path: PathBuf,
    /// Removed when the peer is dropped, after `Drop` has killed the child.
    dir: TempDir,
}

impl Peer {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The peer's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the peer wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Starts `binary` with the arguments `args(port, dir)` and waits until
    /// `GET <ready_path>` answers 200. A port taken in the meantime by
    /// someone else makes the peer exit; it is then started again on another
    /// port.
    async fn start(
        name: &'static str,
        binary: &Path,
        ready_path: &str,
        args: impl Fn(u16, &Path) -> Vec<String>,
    ) -> Peer {
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix(&format!("pushrelay-test-{name}-"))
                .tempdir()
                .expect("creating a temporary directory");
            let port = free_port();
            let log_path = dir.path().join("output.log");
            let log = File::create(&log_path).expect("creating the peer log");
            let mut command = Command::new(binary);
            command
                .args(args(port, dir.path()))
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("cloning the log handle"))
                .stderr(log);
            // The tests' own configuration must not leak into a peer.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("PUSHRELAY_") {
                    command.env_remove(key);
                }
            }
            let child = command
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
            let mut peer = Peer {
                name,
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                log_path,
                dir,
            };
            match peer.wait_ready(ready_path).await {
                Ok(()) => return peer,
                Err(Exit::Exited(status)) => {
                    last_log = format!("exited with {status}:\n{}", peer.log());
                    if !last_log.contains("address already in use") {
                        break;
                    }
                }
                Err(Exit::TimedOut) => panic!(
                    "{name} was not ready on {}{ready_path} within {READY_TIMEOUT:?}; its output:\n{}",
                    peer.url(),
                    peer.log()
                ),
            }
        }
        panic!("{name} did not start: {last_log}")
    }

    async fn wait_ready(&mut self, path: &str) -> Result<(), Exit> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let url = format!("{}{path}", self.url());
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the child") {
                return Err(Exit::Exited(status));
            }
            if let Ok(reply) = try_request(Method::GET, &url, &[], Bytes::new()).await {
                if reply.status == StatusCode::OK {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(Exit::TimedOut);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

enum Exit {
    Exited(std::process::ExitStatus),
    TimedOut,
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Kill by PID; the temporary directory goes after.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- {} (pid {}, {}) output ----\n{}",
                self.name,
                self.child.id(),
                self.url(),
                self.log()
            );
        }
    }
}

/// Debian's Prometheus as a remote_write receiver, with an empty scrape
/// configuration and its own storage directory.
pub struct Prometheus {
    pub peer: Peer,
}

impl Prometheus {
    pub async fn start() -> Self {
        let binary = require_binary("prometheus");
        let peer = Peer::start("prometheus", &binary, "/-/ready", |port, dir| {
            let config = dir.join("prometheus.yml");
            std::fs::write(
                &config,
                "global: {scrape_interval: 15s}\nscrape_configs: []\n",
            )
            .expect("writing prometheus.yml");
            vec![
                format!("--config.file={}", config.display()),
                format!("--storage.tsdb.path={}", dir.join("data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--web.enable-remote-write-receiver".into(),
                "--enable-feature=native-histograms".into(),
                "--log.level=warn".into(),
            ]
        })
        .await;
        Self { peer }
    }

    pub fn url(&self) -> String {
        self.peer.url()
    }

    /// The remote_write endpoint.
    pub fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.peer.url())
    }

    /// Runs an instant query and returns its vector result.
    pub async fn query(&self, promql: &str) -> Vec<Series> {
        let encoded =
            percent_encoding::utf8_percent_encode(promql, percent_encoding::NON_ALPHANUMERIC);
        let url = format!("{}/api/v1/query?query={encoded}", self.peer.url());
        let reply = get(&url).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "query {promql:?} failed: {}",
            reply.text()
        );
        parse_vector(&reply.body).unwrap_or_else(|e| panic!("query {promql:?}: {e}"))
    }

    /// Every series Prometheus holds now (the instant vector `{__name__=~".+"}`),
    /// sorted.
    pub async fn all_series(&self) -> Vec<Series> {
        let mut series = self.query(r#"{__name__=~".+"}"#).await;
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        series
    }
}

/// One series of an instant-vector result: its labels (with `__name__`) and
/// its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Series {
    pub fn name(&self) -> &str {
        self.labels.get("__name__").map_or("", String::as_str)
    }
}

fn parse_vector(body: &[u8]) -> Result<Vec<Series>, String> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("answer is not JSON: {e}"))?;
    if json["status"] != "success" {
        return Err(format!("query failed: {json}"));
    }
    if json["data"]["resultType"] != "vector" {
        return Err(format!("not a vector: {json}"));
    }
    let results = json["data"]["result"]
        .as_array()
        .ok_or_else(|| format!("no result array: {json}"))?;
    results
        .iter()
        .map(|item| {
            let labels = item["metric"]
                .as_object()
                .ok_or_else(|| format!("no metric object: {item}"))?
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let value = item["value"][1]
                .as_str()
                .ok_or_else(|| format!("no value: {item}"))?;
            Ok(Series {
                labels,
                value: parse_prometheus_float(value)?,
            })
        })
        .collect()
}

/// Parses a float as Prometheus and the Pushgateway write them.
pub fn parse_prometheus_float(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse().map_err(|e| format!("bad float {text:?}: {e}")),
    }
}

/// Debian's Pushgateway, in memory only: the behaviour oracle.
pub struct Pushgateway {
    pub peer: Peer,
}

impl Pushgateway {
    pub async fn start() -> Self {
        let binary = require_binary("prometheus-pushgateway");
        let peer = Peer::start("pushgateway", &binary, "/-/ready", |port, _| {
            vec![
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--persistence.file=".into(),
                "--log.level=warn".into(),
            ]
        })
        .await;
        Self { peer }
    }

    pub fn url(&self) -> String {
        self.peer.url()
    }

    /// The series of `GET /metrics` whose `job` label is `job`, as Prometheus
    /// would store them after a scrape with `honor_labels`: empty label
    /// values dropped.
    pub async fn series_of_job(&self, job: &str) -> Vec<Series> {
        let reply = get(&format!("{}/metrics", self.url())).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let mut series: Vec<Series> = parse_text_series(&reply.text())
            .unwrap_or_else(|e| panic!("Pushgateway /metrics: {e}"))
            .into_iter()
            .filter(|s| s.labels.get("job").map(String::as_str) == Some(job))
            .collect();
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        series
    }
}

/// pushrelay itself (the binary Cargo built for this test run).
pub struct Pushrelay {
    pub peer: Peer,
}

impl Pushrelay {
    /// Starts pushrelay with `args` added after its listen address; waits for
    /// `/-/healthy` (`/-/ready` depends on the backend).
    pub async fn start(args: &[String]) -> Self {
        let binary = PathBuf::from(env!("CARGO_BIN_EXE_pushrelay"));
        let peer = Peer::start("pushrelay", &binary, "/-/healthy", |port, _| {
            let mut all = vec![format!("--web.listen-address=127.0.0.1:{port}")];
            all.extend(args.iter().cloned());
            all
        })
        .await;
        Self { peer }
    }

    /// pushrelay forwarding to `write_url`, with retries bounded so that a
    /// failing backend shows up in seconds.
    pub async fn forwarding_to(write_url: &str) -> Self {
        Self::start(&[
            format!("--remote-write.url={write_url}"),
            "--remote-write.retry-deadline=5s".into(),
            "--log.level=debug".into(),
        ])
        .await
    }

    pub fn url(&self) -> String {
        self.peer.url()
    }
}

// ---------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------

/// A whole HTTP answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn client() -> &'static Client<HttpConnector, Full<Bytes>> {
    static CLIENT: OnceLock<Client<HttpConnector, Full<Bytes>>> = OnceLock::new();
    CLIENT.get_or_init(|| {
        Client::builder(TokioExecutor::new())
            // Idle connections would outlive a test's runtime.
            .pool_max_idle_per_host(0)
            .build_http()
    })
}

/// Sends one request and reads the whole answer; `Err` describes a failure
/// to connect or to read.
pub async fn try_request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Reply, String> {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(Full::new(body.into()))
        .map_err(|e| format!("building the request: {e}"))?;
    let exchange = async {
        let response = client()
            .request(request)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("reading the body: {e}"))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {REQUEST_TIMEOUT:?}"))?
}

/// Sends one request; panics if there is no answer.
pub async fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let description = format!("{method} {url}");
    try_request(method, url, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{description}: {e}"))
}

/// `GET url`.
pub async fn get(url: &str) -> Reply {
    request(Method::GET, url, &[], Bytes::new()).await
}

/// The Content-Type of text exposition 0.0.4, as the clients send it.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

// ---------------------------------------------------------------------------
// Recording remote_write pass-through
// ---------------------------------------------------------------------------

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
    let (status, response) = match client().request(forward).await {
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

// ---------------------------------------------------------------------------
// Wire checks
// ---------------------------------------------------------------------------

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
/// Empty when all is well.
pub fn wire_problems(
    writes: &[RecordedWrite],
    not_before_ms: i64,
    not_after_ms: i64,
) -> Vec<String> {
    let mut problems = Vec::new();
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
        for (name, want) in [
            ("content-encoding", "snappy"),
            ("content-type", "application/x-protobuf"),
            ("x-prometheus-remote-write-version", "0.1.0"),
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
        if request.timeseries.is_empty() && request.metadata.is_empty() {
            problem("empty WriteRequest".into());
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

// ---------------------------------------------------------------------------
// Text exposition (only what reading the Pushgateway's /metrics needs)
// ---------------------------------------------------------------------------

/// Parses the sample lines of a text exposition into series. Empty label
/// values are dropped, as Prometheus drops them on ingestion, so the result
/// compares directly with a Prometheus query.
pub fn parse_text_series(text: &str) -> Result<Vec<Series>, String> {
    let mut out = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| format!("line {}: {what}: {line:?}", number + 1);
        let (name_end, rest) = match line.find(['{', ' ']) {
            Some(i) => (i, &line[i..]),
            None => return Err(bad("no value")),
        };
        let mut labels = BTreeMap::new();
        labels.insert("__name__".to_string(), line[..name_end].to_string());
        let rest = if let Some(inner) = rest.strip_prefix('{') {
            let mut chars = inner.char_indices().peekable();
            let mut consumed = None;
            loop {
                while chars.next_if(|(_, c)| *c == ',' || *c == ' ').is_some() {}
                match chars.peek() {
                    Some((i, '}')) => {
                        consumed = Some(*i + 1);
                        break;
                    }
                    None => break,
                    _ => {}
                }
                let mut name = String::new();
                for (_, c) in chars.by_ref() {
                    if c == '=' {
                        break;
                    }
                    name.push(c);
                }
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(bad("label value not quoted"));
                }
                let mut value = String::new();
                let mut closed = false;
                while let Some((_, c)) = chars.next() {
                    match c {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('n') => value.push('\n'),
                            Some(other) => value.push(other),
                            None => return Err(bad("dangling escape")),
                        },
                        other => value.push(other),
                    }
                }
                if !closed {
                    return Err(bad("unterminated label value"));
                }
                if !value.is_empty() {
                    labels.insert(name.trim().to_string(), value);
                }
            }
            let end = consumed.ok_or_else(|| bad("unterminated label set"))?;
            &inner[end..]
        } else {
            rest
        };
        let mut fields = rest.split_whitespace();
        let value = fields.next().ok_or_else(|| bad("no value"))?;
        out.push(Series {
            labels,
            value: parse_prometheus_float(value).map_err(|e| bad(&e))?,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Client programs
// ---------------------------------------------------------------------------

/// The Go client (`tests/clients/go_push`), built once per test run into
/// Cargo's target directory and rebuilt when its source changes.
pub fn go_push_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let go = require_binary("go");
            let gocode = Path::new("/usr/share/gocode/src/github.com/prometheus/client_golang");
            assert!(
                gocode.is_dir(),
                "client_golang is not installed ({} missing): {INSTALL_HINT}",
                gocode.display()
            );
            let source = repo_root().join("tests/clients/go_push/main.go");
            let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go_push");
            let binary = out_dir.join("go_push");
            let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            if let (Some(built), Some(written)) = (modified(&binary), modified(&source)) {
                if built >= written {
                    return binary;
                }
            }
            std::fs::create_dir_all(&out_dir).expect("creating the Go build directory");
            // Concurrent test processes each build to their own file and
            // rename it into place, so no one runs a half-written binary.
            let partial = out_dir.join(format!("go_push.{}.partial", std::process::id()));
            let output = Command::new(go)
                .args(["build", "-o"])
                .arg(&partial)
                .arg("./tests/clients/go_push")
                .current_dir(repo_root())
                .env("GO111MODULE", "off")
                .env("GOPATH", "/usr/share/gocode")
                .env("GOPROXY", "off")
                .env("GOFLAGS", "")
                .env("GOCACHE", out_dir.join("gocache"))
                .output()
                .expect("running go build");
            assert!(
                output.status.success(),
                "building tests/clients/go_push failed ({INSTALL_HINT} if a package is missing):\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            std::fs::rename(&partial, &binary).expect("moving the Go client into place");
            binary
        })
        .clone()
}

/// What a client program printed and how it ended.
#[derive(Debug)]
pub struct ClientRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for ClientRun {
    fn from(output: Output) -> Self {
        Self {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

async fn run_blocking(mut command: Command) -> ClientRun {
    let shown = format!("{command:?}");
    tokio::task::spawn_blocking(move || command.stdin(Stdio::null()).output())
        .await
        .expect("client thread")
        .unwrap_or_else(|e| panic!("running {shown}: {e}"))
        .into()
}

/// Runs the Go client against `base_url` for group `{job, instance}` with
/// the given comma-separated steps (`push`, `add`, `delete`).
pub async fn run_go_push(base_url: &str, job: &str, instance: &str, steps: &str) -> ClientRun {
    let binary = tokio::task::spawn_blocking(go_push_binary)
        .await
        .expect("building the Go client");
    let mut command = Command::new(binary);
    command.args([
        format!("-url={base_url}"),
        format!("-job={job}"),
        format!("-instance={instance}"),
        format!("-steps={steps}"),
    ]);
    run_blocking(command).await
}

/// Runs the Python client (`tests/clients/py_push.py`) against `base_url`
/// for group `{job, instance}`: steps `push`, `pushadd`, `delete`; `gzip`
/// compresses the pushed bodies.
pub async fn run_py_push(
    base_url: &str,
    job: &str,
    instance: &str,
    steps: &str,
    gzip: bool,
) -> ClientRun {
    let python = require_binary("python3");
    let mut command = Command::new(python);
    command
        .arg(repo_root().join("tests/clients/py_push.py"))
        .arg(base_url)
        .args([
            format!("--job={job}"),
            format!("--instance={instance}"),
            format!("--steps={steps}"),
        ]);
    if gzip {
        command.arg("--compression=gzip");
    }
    let run = run_blocking(command).await;
    assert!(
        !run.stderr.contains("No module named 'prometheus_client'"),
        "the Python prometheus_client is not installed: {INSTALL_HINT}"
    );
    run
}
