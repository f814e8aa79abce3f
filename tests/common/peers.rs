//! Peer processes: Prometheus, the Pushgateway and pushrelay, each on a free
//! loopback port with its own temporary directory, ready when started,
//! killed by PID when dropped; plus reading their answers (query results,
//! the Pushgateway's text exposition) as [`Series`].

use std::collections::BTreeMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use tempfile::TempDir;

use super::{free_port, get, require_binary, try_request};

/// A command for a peer process: no stdin, stdout and stderr into `log`,
/// and none of the tests' own `PUSHRELAY_*` configuration in its
/// environment.
pub fn peer_command(binary: &Path, args: &[String], log: File) -> Command {
    let mut command = Command::new(binary);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("cloning the log handle"))
        .stderr(log);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PUSHRELAY_") {
            command.env_remove(key);
        }
    }
    command
}

/// How long a peer may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

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
            let mut command = peer_command(binary, &args(port, dir.path()), log);
            command.current_dir(dir.path());
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
