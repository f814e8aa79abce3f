//! A fast remote_write sink for load runs: the cheapest receiver that still
//! does the receiver's share of the work, so a benchmark measures the
//! sender.
//!
//! Contract:
//! - `POST` any path with a snappy (block format) body holding a remote_write
//!   1.0 `WriteRequest`: the body is decompressed, its samples and
//!   histograms are counted by a shallow protobuf walk (no allocation per
//!   series), and the answer is 204. A body that does not decompress or
//!   walk is 400 with the reason.
//! - `GET` any path: `samples <n>\nrequests <n>\nrejected <n>\n`, the totals
//!   since start.
//! - Listens on `127.0.0.1:<port>` (first argument, 0 = any free port) and
//!   prints `listening on <addr>` once bound, so a script can read the port.
//!
//! Run: `cargo run --release --example null_receiver -- 0`

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

#[derive(Default)]
struct Counts {
    samples: AtomicU64,
    requests: AtomicU64,
    rejected: AtomicU64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 0,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(port))
}

async fn serve(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on {}", listener.local_addr()?);
    let counts = Arc::new(Counts::default());
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let counts = counts.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(counts.clone(), request));
            // A client that hangs up mid-request is not the receiver's problem.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    counts: Arc<Counts>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::POST {
        let text = format!(
            "samples {}\nrequests {}\nrejected {}\n",
            counts.samples.load(Ordering::Relaxed),
            counts.requests.load(Ordering::Relaxed),
            counts.rejected.load(Ordering::Relaxed),
        );
        return Ok(reply(StatusCode::OK, text));
    }
    let outcome = match request.into_body().collect().await {
        Ok(body) => count_samples(&body.to_bytes()),
        Err(e) => Err(format!("reading the body: {e}")),
    };
    counts.requests.fetch_add(1, Ordering::Relaxed);
    match outcome {
        Ok(samples) => {
            counts.samples.fetch_add(samples, Ordering::Relaxed);
            Ok(reply(StatusCode::NO_CONTENT, String::new()))
        }
        Err(message) => {
            counts.rejected.fetch_add(1, Ordering::Relaxed);
            Ok(reply(StatusCode::BAD_REQUEST, message))
        }
    }
}

fn reply(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response
}

/// Decompresses a snappy block body and counts the samples and histograms
/// of its `WriteRequest`.
fn count_samples(compressed: &[u8]) -> Result<u64, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(compressed)
        .map_err(|e| format!("snappy: {e}"))?;
    let mut samples = 0;
    // WriteRequest: 1 = timeseries, 3 = metadata.
    for field in Fields::new(&raw) {
        let (number, value) = field?;
        if number == 1 {
            // TimeSeries: 1 = labels, 2 = samples, 3 = exemplars, 4 = histograms.
            for inner in Fields::new(value) {
                let (inner_number, _) = inner?;
                if inner_number == 2 || inner_number == 4 {
                    samples += 1;
                }
            }
        }
    }
    Ok(samples)
}

/// Iterates the top-level fields of one protobuf message as
/// `(field number, length-delimited payload)`; scalar fields yield an empty
/// payload.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(message: &'a [u8]) -> Self {
        Self { rest: message }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .rest
                .split_first()
                .ok_or("protobuf: truncated varint")?;
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("protobuf: varint too long".into())
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        if len > self.rest.len() {
            return Err("protobuf: truncated field".into());
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    fn field(&mut self) -> Result<(u64, &'a [u8]), String> {
        let tag = self.varint()?;
        let payload = match tag & 7 {
            0 => {
                self.varint()?;
                &[][..]
            }
            1 => self.take(8).map(|_| &[][..])?,
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|e| e.to_string())?;
                self.take(len)?
            }
            5 => self.take(4).map(|_| &[][..])?,
            wire => return Err(format!("protobuf: unsupported wire type {wire}")),
        };
        Ok((tag >> 3, payload))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, &'a [u8]), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let field = self.field();
        if field.is_err() {
            self.rest = &[];
        }
        Some(field)
    }
}
