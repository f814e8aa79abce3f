//! The integration-test harness, the one way every test file starts peers
//! and talks to them.
//!
//! - Every process a test starts (Prometheus, the Pushgateway, pushrelay,
//!   Chromium) is a [`Peer`]: started on a free loopback port with its own
//!   temporary directory and with no `PUSHRELAY_*` variable of the
//!   developer's environment; ready when its own PID holds the listening
//!   socket and its probe answers ([`Ready`]); started again on another
//!   port when a stranger took the port first; killed by its PID when
//!   dropped. Runs that end by themselves use [`pushrelay_command`] or
//!   [`run_to_exit`], with the same environment cleanup.
//! - A peer binary that is missing is a test failure that says to run
//!   `scripts/install-peers.sh`: nothing is skipped.
//! - [`RecordingProxy`] sits between pushrelay and Prometheus. Prometheus
//!   2.42 keeps no remote-written metadata and silently drops empty label
//!   values, so TYPE/HELP and label hygiene can only be checked on the wire:
//!   the proxy records every request (headers and decoded `WriteRequest`)
//!   and forwards it unchanged.
//! - The clients under `tests/clients/` (Go client_golang, Python
//!   prometheus_client) are run by [`run_go_push`] and [`run_py_push`].
//!
//! Parts: [`peers`] (the processes), [`fetch`] (HTTP client), [`proxy`]
//! (recording pass-through and wire checks), [`clients`] (client programs),
//! all re-exported here; and, used by path: [`model`] (metrics built by
//! hand), [`receiver`] (in-process remote_write receiver with fault
//! injection, 1.0-only or 2.0 with [`rw2`]'s rule checks), [`tls`] (test CA, pushrelay behind TLS, HTTPS client),
//! [`victoria`] (VictoriaMetrics, the second remote_write backend),
//! [`cache`] (Pushgateway and pushrelay side by side in cache mode),
//! [`browser`] (headless Chromium). Every test binary uses a different part
//! of the harness, hence `allow(dead_code, unused_imports)`.
#![allow(dead_code, unused_imports)]

pub mod browser;
pub mod cache;
mod clients;
mod fetch;
pub mod model;
mod peers;
mod proxy;
pub mod receiver;
pub mod rw2;
pub mod tls;
pub mod victoria;

pub use clients::*;
pub use fetch::*;
pub use peers::*;
pub use proxy::*;

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What every "peer missing" failure tells the reader to do.
pub const INSTALL_HINT: &str = "run scripts/install-peers.sh to install the test peers";

/// The value of Prometheus' stale marker (a NaN with this exact bit
/// pattern). Written out here rather than taken from the crate, so a wrong
/// constant in pushrelay fails the tests instead of passing them.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The sum of the samples of `name` in a text exposition whose label
/// block contains every one of `labels` (e.g. `outcome="sent"`).
pub fn sample_sum(exposition: &str, name: &str, labels: &[&str]) -> f64 {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| labels.iter().all(|l| line.contains(l)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs `f` with a bound so a hung forwarder fails the test.
pub async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test took too long")
}

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

/// Reads from `stream` until `answer` holds a whole response head, at most
/// `limit`; `None` when none came in time.
pub async fn read_head(
    stream: &mut tokio::net::TcpStream,
    answer: &mut Vec<u8>,
    limit: Duration,
) -> Option<()> {
    use tokio::io::AsyncReadExt;
    let read = async {
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
        Some(())
    };
    tokio::time::timeout(limit, read).await.ok().flatten()
}
