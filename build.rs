//! Compiles the `.proto` files in `proto/` with protox (pure Rust), so a
//! fresh machine builds with cargo alone: no `protoc` binary is needed; and
//! links the binary with `link/start-up.ld` on Linux.

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/remote.proto",
        "proto/io/prometheus/client/metrics.proto",
        "proto/io/prometheus/write/v2/types.proto",
    ];
    for file in files.iter().chain(["proto/types.proto"].iter()) {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    link_start_up_code_first()
}

/// Most of an idle pushrelay's resident memory is the binary's code, and
/// the kernel maps it at least 64 KB at a time around each page touched
/// (fault-around on page-cached files). The ~1,160 functions that run from
/// start to idle (cache or forward mode) were spread over all 7 MB of code,
/// so 4.5 MiB of it was resident; `link/start-up.ld` places them first in
/// `.text` (an `INSERT` script: the rest of the default layout is kept),
/// and 2.0 MiB is: idle RSS 9.0 → 6.4 MiB (BENCHMARKS.md, "Memory after
/// load"). Its names come from a profile of the start
/// (`scripts/start-up-order.sh` regenerates them); a function they miss is
/// only placed as before. Only the binary is linked with it, and only on
/// Linux (ELF; lld and GNU ld both read `INSERT` scripts).
fn link_start_up_code_first() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=link/start-up.ld");
    if std::env::var("CARGO_CFG_TARGET_OS")? != "linux" {
        return Ok(());
    }
    let script = Path::new(&std::env::var("CARGO_MANIFEST_DIR")?).join("link/start-up.ld");
    // `-Xlinker` hands the path over as it is (`-Wl,` would split it at commas).
    for arg in ["-Xlinker", "-T", "-Xlinker"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-link-arg-bins={}", script.display());
    Ok(())
}
