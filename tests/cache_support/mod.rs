//! Harness for the cache-mode tests: the real Pushgateway and pushrelay in
//! cache mode as child processes (killed by PID on drop), requests sent to
//! both, and the normalisations that make their answers comparable.
//!
//! Builds on `tests/common` for the HTTP client and free ports.
#![allow(dead_code)]

pub mod browser;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use prost::Message;
use pushrelay::proto::client::MetricFamily;
use serde_json::Value;

use crate::common::{Reply, free_port, require_binary, try_request};

/// Families that belong to the servers themselves, not to the store.
const OWN_PREFIXES: [&str; 4] = ["go_", "process_", "pushgateway_", "pushrelay_"];
const STAMPS: [&str; 2] = ["push_time_seconds", "push_failure_time_seconds"];

/// `Content-Type` of a delimited protobuf push or scrape.
pub const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// Which implementation a server runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Pushgateway,
    Pushrelay,
}

/// One server on 127.0.0.1.
pub struct Server {
    pub kind: Kind,
    child: Child,
    port: u16,
    prefix: String,
    args: Vec<String>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `kind` with `args` (after the listen address and the fixed
    /// flags) and waits for `<prefix>/-/healthy`.
    pub async fn start(kind: Kind, prefix: &str, args: &[String]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = dir.path().join("output.log");
        let mut server = Self::spawn(kind, prefix, args, log.clone(), dir);
        server.wait_healthy().await;
        server
    }

    fn spawn(
        kind: Kind,
        prefix: &str,
        args: &[String],
        log: PathBuf,
        dir: tempfile::TempDir,
    ) -> Self {
        let port = free_port();
        let (binary, mut all) = match kind {
            Kind::Pushgateway => (
                require_binary("prometheus-pushgateway"),
                vec!["--log.level=warn".to_string()],
            ),
            Kind::Pushrelay => (
                PathBuf::from(env!("CARGO_BIN_EXE_pushrelay")),
                vec!["--log.level=warn".to_string()],
            ),
        };
        all.push(format!("--web.listen-address=127.0.0.1:{port}"));
        if kind == Kind::Pushgateway && !args.iter().any(|a| a.starts_with("--persistence.file")) {
            all.push("--persistence.file=".into());
        }
        all.extend(args.iter().cloned());
        let out = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(binary);
        command
            .args(&all)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PUSHRELAY_") {
                command.env_remove(key);
            }
        }
        let child = command.spawn().expect("starting the server");
        Self {
            kind,
            child,
            port,
            prefix: prefix.to_string(),
            args: args.to_vec(),
            log,
            _dir: dir,
        }
    }

    /// Starts `kind` with `args` and waits (bounded) for it to exit on its
    /// own, e.g. because its configuration is refused; returns its exit
    /// status and output.
    pub async fn run_to_exit(kind: Kind, args: &[String]) -> (std::process::ExitStatus, String) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = dir.path().join("output.log");
        let mut server = Self::spawn(kind, "", args, log, dir);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = server.child.try_wait().expect("polling the child") {
                return (status, server.log());
            }
            assert!(
                Instant::now() < deadline,
                "{kind:?} kept running:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = self.url("/-/healthy");
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the child") {
                panic!("{:?} exited with {status}:\n{}", self.kind, self.log());
            }
            if let Ok(reply) = try_request(Method::GET, &url, &[], Bytes::new()).await
                && reply.status == StatusCode::OK
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{:?} not healthy:\n{}",
                self.kind,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// The full URL of `path` under the route prefix.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}{}", self.port, self.prefix, path)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one request below the prefix.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Reply {
        try_request(method.clone(), &self.url(path), headers, body)
            .await
            .unwrap_or_else(|e| panic!("{:?} {method} {path}: {e}\n{}", self.kind, self.log()))
    }

    /// Kills the process with `signal` (by PID) and waits for it.
    pub fn stop(&mut self, signal: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    /// Kills the server with `signal` and starts it again (same flags, new
    /// port).
    pub async fn restart_after(mut self, signal: &str) -> Self {
        self.stop(signal);
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = dir.path().join("output.log");
        let mut server = Self::spawn(self.kind, &self.prefix, &self.args, log, dir);
        server.wait_healthy().await;
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Pushgateway and pushrelay with the same flags.
pub struct Pair {
    pub gateway: Server,
    pub relay: Server,
}

impl Pair {
    pub async fn start(prefix: &str, args: &[&str]) -> Self {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let (gateway, relay) = tokio::join!(
            Server::start(Kind::Pushgateway, prefix, &args),
            Server::start(Kind::Pushrelay, prefix, &args)
        );
        Self { gateway, relay }
    }

    /// Sends the same request to both.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> (Reply, Reply) {
        tokio::join!(
            self.gateway
                .send(method.clone(), path, headers, body.clone()),
            self.relay.send(method, path, headers, body)
        )
    }
}

/// A text scrape without the servers' own families, with stamp values
/// reduced to `0` or `<time>`.
pub fn normalise_text(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let name = match line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
        {
            Some(rest) => rest.split(' ').next().unwrap_or(""),
            None => line.split(['{', ' ']).next().unwrap_or(""),
        };
        if OWN_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        if STAMPS.contains(&name) && !line.starts_with('#') {
            let (series, value) = line.rsplit_once(' ').unwrap_or((line, ""));
            let value = if value == "0" { "0" } else { "<time>" };
            out.push_str(&format!("{series} {value}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A protobuf scrape decoded, normalised like [`normalise_text`].
pub fn normalise_protobuf(mut body: &[u8]) -> Vec<MetricFamily> {
    let mut families = Vec::new();
    while !body.is_empty() {
        let mut family =
            MetricFamily::decode_length_delimited(&mut body).expect("delimited protobuf");
        if OWN_PREFIXES.iter().any(|p| family.name().starts_with(p)) {
            continue;
        }
        if STAMPS.contains(&family.name()) {
            for metric in &mut family.metric {
                if let Some(gauge) = &mut metric.gauge {
                    gauge.value = Some(if gauge.value() == 0.0 { 0.0 } else { 1.0 });
                }
            }
        }
        families.push(family);
    }
    families
}

/// A JSON API answer with times removed and groups sorted by labels.
pub fn normalise_json(body: &[u8]) -> Value {
    let mut value: Value = serde_json::from_slice(body).expect("JSON answer");
    if let Some(Value::Array(groups)) = value.get_mut("data") {
        for group in groups.iter_mut() {
            let Some(object) = group.as_object_mut() else {
                continue;
            };
            for (name, family) in object.iter_mut() {
                let Some(family) = family.as_object_mut() else {
                    continue;
                };
                family.remove("time_stamp");
                if STAMPS.contains(&name.as_str())
                    && let Some(Value::Array(metrics)) = family.get_mut("metrics")
                {
                    for metric in metrics {
                        let zero = metric.get("value").and_then(Value::as_str) == Some("0");
                        metric["value"] = Value::String(if zero { "0" } else { "<time>" }.into());
                    }
                }
            }
        }
        groups.sort_by_key(|g| g.get("labels").map(|l| l.to_string()).unwrap_or_default());
    }
    value
}

/// The comparable part of an error body: what precedes the first `{`
/// (the Pushgateway's protobuf debug text varies by version).
pub fn error_key(body: &str) -> String {
    body.split('{').next().unwrap_or("").trim_end().to_string()
}

/// Encodes families as a delimited protobuf body.
pub fn protobuf_body(families: &[MetricFamily]) -> Bytes {
    let mut out = Vec::new();
    for family in families {
        family
            .encode_length_delimited(&mut out)
            .expect("encoding into a Vec");
    }
    Bytes::from(out)
}

/// Gunzips a body.
pub fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut out)
        .expect("gzip body");
    out
}

/// A path in a temporary directory that outlives the servers using it.
pub fn temp_file(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}
