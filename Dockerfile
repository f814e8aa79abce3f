# syntax=docker/dockerfile:1
#
# pushrelay container image.
#
#   docker build -t pushrelay:0.1.0 .
#
# Stage 1 builds the release binary exactly as the README does
# (`cargo build --release --locked`). Stage 2 is distroless "cc": glibc,
# libgcc and CA certificates, no shell, no package manager, running as the
# image's non-root user (65532). The binary writes nothing outside the
# persistence file, so the container runs with a read-only root filesystem;
# mount a volume for --persistence.file.
#
# Keep the two Debian releases in step: the binary links against the build
# stage's glibc.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm
ARG DISTROLESS_DEBIAN=debian12

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
# The whole crate (see .dockerignore): Cargo checks every target Cargo.toml
# declares (benches, tests), so copying only src/ would break as they are
# added. protox compiles proto/ in build.rs: no protoc is needed. The cache
# mounts keep the registry and target/ between builds.
COPY . .
# jemalloc (the binary's allocator) is built from C sources with make,
# which the slim image lacks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make=4.3-4.1 \
    && rm -rf /var/lib/apt/lists/*
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D -m 0755 target/release/pushrelay /out/pushrelay

FROM gcr.io/distroless/cc-${DISTROLESS_DEBIAN}:nonroot
LABEL org.opencontainers.image.title="pushrelay" \
      org.opencontainers.image.description="Pushgateway-compatible push endpoint that forwards to Prometheus remote_write" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/pushrelay /usr/local/bin/pushrelay
USER 65532:65532
EXPOSE 9091
ENTRYPOINT ["/usr/local/bin/pushrelay"]
