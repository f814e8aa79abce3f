//! Peer processes: Prometheus, the Pushgateway and pushrelay, each on a free
//! loopback port with its own temporary directory, ready when started,
//! killed by PID when dropped; plus reading their answers (query results,
//! the Pushgateway's text exposition) as [`Series`].

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use tempfile::TempDir;

use super::{free_port, get, require_binary, try_request};

/// A command for a peer process: no stdin, stdout and stderr into `log`,
/// and none of the tests' own `PUSHRELAY_*` configuration in its
/// environment (the one environment cleanup every launched process gets).
pub fn peer_command(binary: &Path, args: &[String], log: File) -> Command {
    let mut command = clean_command(binary);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("cloning the log handle"))
        .stderr(log);
    command
}

/// `binary` with every `PUSHRELAY_*` variable of the developer's
/// environment removed, so it cannot change the configuration under test.
///
/// Error backtraces are off (`RUST_LIB_BACKTRACE=0`): with `RUST_BACKTRACE`
/// set, every error pushrelay builds would capture and symbolise one, about
/// a quarter second each in a debug build. Panics keep `RUST_BACKTRACE`.
pub fn clean_command(binary: &Path) -> Command {
    let mut command = Command::new(binary);
    command.env("RUST_LIB_BACKTRACE", "0");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PUSHRELAY_") {
            command.env_remove(key);
        }
    }
    command
}

/// The pushrelay binary Cargo built for this test run, with a clean
/// environment (see [`clean_command`]), for runs that end by themselves
/// (`--check-config`).
pub fn pushrelay_command() -> Command {
    clean_command(&pushrelay_binary())
}

/// How long a peer may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one readiness probe may wait for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// When a started peer counts as ready.
#[derive(Clone, Debug)]
pub enum Ready {
    /// `GET <path>` over plain HTTP answers 200.
    Http(String),
    /// The process listens on its port (for a pushrelay serving TLS or
    /// asking for credentials, where no plain GET can answer 200).
    Listening,
}

/// A child process on 127.0.0.1, killed by its PID when dropped.
pub struct Peer {
    name: &'static str,
    binary: PathBuf,
    args: Vec<String>,
    ready: Ready,
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

    /// The peer's temporary directory (its working directory; it outlives
    /// restarts).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the peer wrote to stdout and stderr so far (over all its
    /// runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Starts `binary` with the arguments `args(port, dir)` and waits until
    /// it is `ready`. A port taken in the meantime by someone else makes the
    /// peer exit; it is then started again on another port.
    pub async fn start(
        name: &'static str,
        binary: &Path,
        ready: Ready,
        args: impl Fn(u16, &Path) -> Vec<String>,
    ) -> Peer {
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix(&format!("pushrelay-test-{name}-"))
                .tempdir()
                .expect("creating a temporary directory");
            let port = free_port();
            let args = args(port, dir.path());
            let log_path = dir.path().join("output.log");
            let child = spawn(binary, &args, &log_path, dir.path());
            let mut peer = Peer {
                name,
                binary: binary.to_path_buf(),
                args,
                ready: ready.clone(),
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                log_path,
                dir,
            };
            match peer.wait_ready().await {
                Ok(()) => return peer,
                Err(Exit::Exited(status)) => {
                    last_log = format!("exited with {status}:\n{}", peer.log());
                    // Go says "address already in use", Rust "Address ...".
                    if !last_log.to_lowercase().contains("address already in use") {
                        break;
                    }
                }
                Err(Exit::TimedOut) => peer.panic_not_ready(),
            }
        }
        panic!("{name} did not start: {last_log}")
    }

    /// Kills the process (if it still runs) and starts it again with the
    /// same arguments on the same port and directory, e.g. to find its data
    /// again; waits until it is ready.
    pub async fn restart(&mut self) {
        self.kill_hard();
        self.child = spawn(&self.binary, &self.args, &self.log_path, self.dir.path());
        match self.wait_ready().await {
            Ok(()) => {}
            Err(Exit::Exited(status)) => panic!(
                "{} exited with {status} on restart:\n{}",
                self.name,
                self.log()
            ),
            Err(Exit::TimedOut) => self.panic_not_ready(),
        }
    }

    fn panic_not_ready(&self) -> ! {
        panic!(
            "{} was not ready ({:?}) on {} within {READY_TIMEOUT:?}; its output:\n{}",
            self.name,
            self.ready,
            self.url(),
            self.log()
        )
    }

    /// The one readiness wait: polls until the process listens on its port
    /// and the probe succeeds, the process exits, or [`READY_TIMEOUT`]
    /// passes.
    async fn wait_ready(&mut self) -> Result<(), Exit> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.exited() {
                return Err(Exit::Exited(status));
            }
            // A stranger that took the port in a race would answer the probe
            // too (possibly another test's peer of the same kind): only our
            // own process holding the listening socket counts.
            if listens_on(self.pid(), self.addr.port()) && self.probe().await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Exit::TimedOut);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn probe(&self) -> bool {
        match &self.ready {
            Ready::Http(path) => {
                let url = format!("{}{path}", self.url());
                let answer = try_request(Method::GET, &url, &[], Bytes::new());
                matches!(
                    tokio::time::timeout(PROBE_TIMEOUT, answer).await,
                    Ok(Ok(reply)) if reply.status == StatusCode::OK
                )
            }
            Ready::Listening => true,
        }
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("polling the child")
    }

    /// Waits (bounded) until the process exits by itself; returns its
    /// status.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {limit:?}; its output:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends `signal` (a name `kill` knows, e.g. `TERM`, `STOP`) to the
    /// process by its PID.
    pub fn signal(&self, signal: &str) {
        let status = Command::new(require_binary("kill"))
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Kills the process with SIGKILL (by its PID) and reaps it.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the process with SIGKILL and returns everything it logged.
    pub fn stop(mut self) -> String {
        self.kill_hard();
        self.log()
    }
}

/// Whether process `pid` holds the socket listening on 127.0.0.1:`port`
/// (Linux: the socket's inode in `/proc/net/tcp` among the process' open
/// files).
fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    // Columns: slot, local address (hex, host order), remote, state (0A is
    // LISTEN), ..., inode (the tenth).
    let local = format!("0100007F:{port:04X}");
    let sockets: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let listening = fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A");
            listening
                .then(|| fields.get(9).map(|inode| format!("socket:[{inode}]")))
                .flatten()
        })
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|target| sockets.iter().any(|s| target.as_os_str() == s.as_str()))
}

/// Starts `binary args` in `dir`, appending its output to `log_path`.
fn spawn(binary: &Path, args: &[String], log_path: &Path, dir: &Path) -> Child {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .expect("opening the peer log");
    peer_command(binary, args, log)
        .current_dir(dir)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()))
}

/// Runs `binary args` in a temporary directory until it exits by itself
/// (bounded), e.g. because its configuration is refused; returns its exit
/// status and output.
pub async fn run_to_exit(binary: &Path, args: &[String]) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let log_path = dir.path().join("output.log");
    let mut child = spawn(binary, args, &log_path, dir.path());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(status) = child.try_wait().expect("polling the child") {
            return (status, log());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} kept running:\n{}", binary.display(), log());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

enum Exit {
    Exited(ExitStatus),
    TimedOut,
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Kill by PID; the temporary directory goes after.
        self.kill_hard();
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
        Self::start_with(&[]).await
    }

    /// [`Prometheus::start`] with `extra` flags (e.g. a short
    /// `--query.lookback-delta`).
    pub async fn start_with(extra: &[&str]) -> Self {
        let binary = require_binary("prometheus");
        let peer = Peer::start(
            "prometheus",
            &binary,
            Ready::Http("/-/ready".into()),
            |port, dir| {
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
                .into_iter()
                .chain(extra.iter().map(|flag| flag.to_string()))
                .collect()
            },
        )
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
        self.query_url(promql, "").await
    }

    /// Runs an instant query evaluated at `at` (Unix seconds).
    pub async fn query_at(&self, promql: &str, at: f64) -> Vec<Series> {
        self.query_url(promql, &format!("&time={at:.3}")).await
    }

    async fn query_url(&self, promql: &str, extra: &str) -> Vec<Series> {
        instant_query(&self.peer.url(), promql, extra).await
    }

    /// Every series Prometheus holds now (the instant vector `{__name__=~".+"}`),
    /// sorted.
    pub async fn all_series(&self) -> Vec<Series> {
        let mut series = self.query(r#"{__name__=~".+"}"#).await;
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        series
    }
}

/// Runs `promql` as an instant query on the Prometheus query API at `base`
/// (Prometheus and VictoriaMetrics both serve it), with `extra` query
/// parameters appended, and returns its vector result.
pub async fn instant_query(base: &str, promql: &str, extra: &str) -> Vec<Series> {
    let encoded = percent_encoding::utf8_percent_encode(promql, percent_encoding::NON_ALPHANUMERIC);
    let reply = get(&format!("{base}/api/v1/query?query={encoded}{extra}")).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "query {promql:?} failed: {}",
        reply.text()
    );
    parse_vector(&reply.body).unwrap_or_else(|e| panic!("query {promql:?}: {e}"))
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

pub fn parse_vector(body: &[u8]) -> Result<Vec<Series>, String> {
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
        let peer = Peer::start(
            "pushgateway",
            &binary,
            Ready::Http("/-/ready".into()),
            |port, _| {
                vec![
                    format!("--web.listen-address=127.0.0.1:{port}"),
                    "--persistence.file=".into(),
                    "--log.level=warn".into(),
                ]
            },
        )
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

/// The pushrelay binary Cargo built for this test run.
pub fn pushrelay_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pushrelay"))
}

/// pushrelay itself (the binary Cargo built for this test run).
pub struct Pushrelay {
    pub peer: Peer,
}

impl Pushrelay {
    /// Starts pushrelay with `args` added after its listen address; waits for
    /// `/-/healthy` (`/-/ready` depends on the backend).
    pub async fn start(args: &[impl AsRef<str>]) -> Self {
        Self::start_until(Ready::Http("/-/healthy".into()), args).await
    }

    /// Starts pushrelay with `args` added after its listen address; waits
    /// until it is `ready`.
    pub async fn start_until(ready: Ready, args: &[impl AsRef<str>]) -> Self {
        let args: Vec<String> = args.iter().map(|a| a.as_ref().to_string()).collect();
        let peer = Peer::start("pushrelay", &pushrelay_binary(), ready, |port, _| {
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
