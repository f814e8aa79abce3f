//! The cache-mode side of the harness: the real Pushgateway and pushrelay in
//! cache mode as [`Peer`]s with a route prefix, requests sent to both, and
//! the normalisations that make their answers comparable.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use prost::Message;
use pushrelay::proto::client::MetricFamily;
use serde_json::Value;

use crate::common::{
    Peer, Ready, Reply, free_port, pushrelay_binary, require_binary, run_to_exit, try_request,
};

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

/// One server on 127.0.0.1: a [`Peer`] that knows its kind and route
/// prefix.
pub struct Server {
    pub kind: Kind,
    peer: Peer,
    prefix: String,
}

impl Server {
    /// Starts `kind` with `args` (after the listen address and the fixed
    /// flags) and waits for `<prefix>/-/healthy`.
    pub async fn start(kind: Kind, prefix: &str, args: &[String]) -> Self {
        let ready = Ready::Http(format!("{prefix}/-/healthy"));
        let peer = Peer::start(kind.name(), &kind.binary(), ready, |port, _| {
            kind.arguments(port, args)
        })
        .await;
        Self {
            kind,
            peer,
            prefix: prefix.to_string(),
        }
    }

    /// Starts `kind` with `args` and waits (bounded) for it to exit on its
    /// own, e.g. because its configuration is refused; returns its exit
    /// status and output.
    pub async fn run_to_exit(kind: Kind, args: &[String]) -> (std::process::ExitStatus, String) {
        run_to_exit(&kind.binary(), &kind.arguments(free_port(), args)).await
    }

    /// The full URL of `path` under the route prefix.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}{}", self.peer.url(), self.prefix, path)
    }

    pub fn log(&self) -> String {
        self.peer.log()
    }

    pub fn pid(&self) -> u32 {
        self.peer.pid()
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

    /// Kills the server with `signal` (by PID), waits for it to exit, and
    /// starts it again (same flags, same port).
    pub async fn restart_after(mut self, signal: &str) -> Self {
        self.peer.signal(signal);
        self.peer.wait_exit(Duration::from_secs(30)).await;
        self.peer.restart().await;
        self
    }
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Pushgateway => "pushgateway",
            Kind::Pushrelay => "pushrelay",
        }
    }

    fn binary(self) -> PathBuf {
        match self {
            Kind::Pushgateway => require_binary("prometheus-pushgateway"),
            Kind::Pushrelay => pushrelay_binary(),
        }
    }

    /// The fixed flags, the listen address, then `args`; the Pushgateway
    /// keeps nothing on disk unless `args` name a persistence file.
    fn arguments(self, port: u16, args: &[String]) -> Vec<String> {
        let mut all = vec![
            "--log.level=warn".to_string(),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ];
        if self == Kind::Pushgateway && !args.iter().any(|a| a.starts_with("--persistence.file")) {
            all.push("--persistence.file=".into());
        }
        all.extend(args.iter().cloned());
        all
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
