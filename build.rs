//! Compiles the `.proto` files in `proto/` with protox (pure Rust), so a
//! fresh machine builds with cargo alone: no `protoc` binary is needed.

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
    Ok(())
}
