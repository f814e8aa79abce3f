//! The client programs under `tests/clients/`: the Go client_golang program
//! (built offline once into Cargo's target directory) and the Python
//! prometheus_client script.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use super::{INSTALL_HINT, repo_root, require_binary};

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
            if let (Some(built), Some(written)) = (modified(&binary), modified(&source))
                && built >= written {
                    return binary;
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
