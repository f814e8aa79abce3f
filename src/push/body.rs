//! Request bodies: reading under a size limit and undoing `Content-Encoding`
//! under a second limit.
//!
//! Contract:
//! - The body as sent may hold at most `max_body_bytes`: a larger
//!   `Content-Length` is refused before anything is read, a body streamed
//!   past the limit as soon as it crosses it (413).
//! - `Content-Encoding` (case-insensitive) may be absent, `identity`,
//!   `gzip` (also `x-gzip`; concatenated members are one body, as Go reads
//!   them) or `snappy`, in the framed/stream format (what the Python client
//!   and snzip send, recognised by its stream identifier chunk) or the block
//!   format. Anything else is a 415 naming the encoding.
//! - The decoded body may hold at most `max_decompressed_bytes` (413).
//!   Decompression writes into a buffer that never grows past that limit.
//!   Above [`EAGER_DECODE_BYTES`] of output it stops, counts the whole
//!   decoded size through a small scratch buffer, and decodes again only if
//!   that size is within the limit: a compression bomb is refused having
//!   cost at most [`EAGER_DECODE_BYTES`] of memory, whatever the limit (a
//!   legitimate body that large is decoded twice more, which is rare and
//!   cheap next to parsing it).
//! - Corrupt input is a 400 naming the encoding and the problem.
//!
//! Divergence from the Pushgateway 1.5.1 (which decodes only a
//! case-sensitive `gzip` and reads anything else raw): unknown encodings
//! are refused instead of being parsed as text, snappy is decoded (as
//! Pushgateway 1.6+ does), and a gzip body with a bad checksum or trailing
//! garbage is refused where the Pushgateway's text parser happens to accept
//! the already-decoded lines.

use std::io::Read;

use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body_util::BodyExt;

use super::Rejection;
use crate::telemetry;
use gzip::{gunzip, gunzip_len};

mod gzip;

/// The size limits a body is read under.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    pub max_body_bytes: u64,
    pub max_decompressed_bytes: u64,
}

/// Compressed bodies at least this large are decoded on the blocking pool
/// so that a big decompression does not stall the connection tasks.
const BLOCKING_DECODE_THRESHOLD: usize = 256 << 10;

/// The first chunk of every snappy framed stream: chunk type 0xff, length 6,
/// `sNaPpY`.
const SNAPPY_STREAM_IDENTIFIER: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// Output grows in steps of at least this much (and at most to the limit).
const MIN_GROWTH: usize = 64 << 10;

/// Decoded output up to this size is kept from the first pass; beyond it
/// the decoded size is counted before any more memory is spent.
pub const EAGER_DECODE_BYTES: usize = 8 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Snappy,
}

impl Encoding {
    fn from_header(value: Option<&str>) -> Result<Self, Rejection> {
        let Some(raw) = value else {
            return Ok(Self::Identity);
        };
        let name = raw.trim();
        if name.is_empty() || name.eq_ignore_ascii_case("identity") {
            Ok(Self::Identity)
        } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            Ok(Self::Gzip)
        } else if name.eq_ignore_ascii_case("snappy") {
            Ok(Self::Snappy)
        } else {
            Err(Rejection::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported Content-Encoding {raw:?}: pushrelay decodes gzip, snappy \
                     (framed or block format) and identity"
                ),
            ))
        }
    }
}

/// Reads a whole body under `limits.max_body_bytes` and undoes its
/// `Content-Encoding` under `limits.max_decompressed_bytes`.
pub async fn read_body<B>(
    body: B,
    content_encoding: Option<&str>,
    limits: &BodyLimits,
) -> Result<Bytes, Rejection>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let encoding = Encoding::from_header(content_encoding)?;
    let raw = collect_limited(body, limits.max_body_bytes).await?;
    let limits = *limits;
    if encoding != Encoding::Identity
        && raw.len() >= BLOCKING_DECODE_THRESHOLD
        && let Ok(runtime) = tokio::runtime::Handle::try_current()
    {
        return runtime
            .spawn_blocking(move || decode_encoded(encoding, raw, &limits))
            .await
            .map_err(|e| {
                Rejection::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("decoding the request body failed: {e}"),
                )
            })?;
    }
    decode_encoded(encoding, raw, &limits)
}

/// Undoes `content_encoding` on a body already in memory, under both
/// limits: the synchronous core of [`read_body`] (for fuzzing and benches).
pub fn decode(
    content_encoding: Option<&str>,
    body: Bytes,
    limits: &BodyLimits,
) -> Result<Bytes, Rejection> {
    let encoding = Encoding::from_header(content_encoding)?;
    if body.len() as u64 > limits.max_body_bytes {
        return Err(body_too_large(
            limits.max_body_bytes,
            Some(body.len() as u64),
        ));
    }
    decode_encoded(encoding, body, limits)
}

async fn collect_limited<B>(body: B, max_body_bytes: u64) -> Result<Bytes, Rejection>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    // hyper reports a Content-Length as an exact size hint.
    let hint = body.size_hint();
    let announced = hint.lower();
    if announced > max_body_bytes {
        return Err(body_too_large(max_body_bytes, Some(announced)));
    }
    let mut body = std::pin::pin!(body);
    let mut collected = Collected::new(hint.exact());
    while let Some(frame) = body.as_mut().frame().await {
        let frame = frame
            .map_err(|e| Rejection::bad_request(format!("reading the request body failed: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if collected.len() + data.len() as u64 > max_body_bytes {
            return Err(body_too_large(max_body_bytes, None));
        }
        collected.push(data);
    }
    Ok(collected.into_bytes())
}

/// A body's bytes as they arrive. The first chunk is kept as it came (most
/// bodies arrive in one); from the second on, chunks are copied into one
/// buffer as they come, so a large body is held once rather than as its
/// chunks plus their join (whose freed chunks the allocator would keep).
/// The buffer grows by doubling up to the announced length, and takes the
/// whole announced length once a quarter of it has arrived: a client that
/// announces a large body and sends little of it costs at most four times
/// what it sent.
struct Collected {
    announced: Option<u64>,
    first: Option<Bytes>,
    joined: Option<BytesMut>,
}

impl Collected {
    fn new(announced: Option<u64>) -> Self {
        Self {
            announced,
            first: None,
            joined: None,
        }
    }

    fn len(&self) -> u64 {
        match (&self.joined, &self.first) {
            (Some(joined), _) => joined.len() as u64,
            (None, Some(first)) => first.len() as u64,
            (None, None) => 0,
        }
    }

    fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let (mut joined, first) = match (self.joined.take(), self.first.take()) {
            (Some(joined), _) => (joined, None),
            (None, None) => {
                self.first = Some(data);
                return;
            }
            (None, Some(first)) => (BytesMut::new(), Some(first)),
        };
        let first = first.unwrap_or_default();
        let needed = joined.len() + first.len() + data.len();
        self.grow(&mut joined, needed);
        joined.extend_from_slice(&first);
        joined.extend_from_slice(&data);
        self.joined = Some(joined);
    }

    /// Makes room in `joined` for `needed` bytes in all.
    fn grow(&self, joined: &mut BytesMut, needed: usize) {
        if needed <= joined.capacity() {
            return;
        }
        let doubled = needed.max(joined.capacity() * 2);
        let target = match self.announced.and_then(|n| usize::try_from(n).ok()) {
            Some(announced) if needed.saturating_mul(4) >= announced => announced.max(needed),
            Some(announced) => doubled.min(announced),
            None => doubled,
        };
        joined.reserve(target - joined.len());
    }

    fn into_bytes(self) -> Bytes {
        match (self.joined, self.first) {
            (Some(joined), _) => joined.freeze(),
            (None, Some(first)) => first,
            (None, None) => Bytes::new(),
        }
    }
}

fn decode_encoded(
    encoding: Encoding,
    body: Bytes,
    limits: &BodyLimits,
) -> Result<Bytes, Rejection> {
    let limit = usize::try_from(limits.max_decompressed_bytes).unwrap_or(usize::MAX);
    let decoded = match encoding {
        Encoding::Identity if body.len() > limit => Err(DecodeError::TooLarge),
        Encoding::Identity => return Ok(body),
        Encoding::Gzip => {
            decode_counted(limit, |cap| gunzip(&body, cap), || gunzip_len(&body, limit))
        }
        Encoding::Snappy if body.is_empty() => Ok(Vec::new()),
        Encoding::Snappy if body.starts_with(SNAPPY_STREAM_IDENTIFIER) => decode_counted(
            limit,
            |cap| unsnappy_framed(&body, cap, true).map(|(out, _)| out),
            || unsnappy_framed(&body, limit, false).map(|(_, len)| len),
        ),
        Encoding::Snappy => unsnappy_block(&body, limit),
    };
    match decoded {
        Ok(bytes) => Ok(Bytes::from(bytes)),
        Err(DecodeError::TooLarge) => {
            count_limit_rejection("max_decompressed_bytes");
            Err(Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "decoded request body is larger than the limit of {} bytes \
                     (push.max_decompressed_bytes)",
                    limits.max_decompressed_bytes
                ),
            ))
        }
        Err(DecodeError::Corrupt(message)) => Err(Rejection::bad_request(message)),
    }
}

/// Runs `decode(cap)` with `cap` = [`EAGER_DECODE_BYTES`] first; if the
/// output is larger, `count()` must find it within `limit` before
/// `decode(limit)` runs. A stream format cannot tell its decoded size
/// before it is decoded, and keeping all of it to find out is what a bomb
/// exploits.
fn decode_counted(
    limit: usize,
    decode: impl Fn(usize) -> Result<Vec<u8>, DecodeError>,
    count: impl FnOnce() -> Result<usize, DecodeError>,
) -> Result<Vec<u8>, DecodeError> {
    if limit <= EAGER_DECODE_BYTES {
        return decode(limit);
    }
    match decode(EAGER_DECODE_BYTES) {
        Err(DecodeError::TooLarge) => {
            count()?;
            decode(limit)
        }
        decoded => decoded,
    }
}

fn body_too_large(max_body_bytes: u64, announced: Option<u64>) -> Rejection {
    count_limit_rejection("max_body_bytes");
    let size = match announced {
        Some(n) => format!(" of {n} bytes"),
        None => String::new(),
    };
    Rejection::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "request body{size} is larger than the limit of {max_body_bytes} bytes \
             (push.max_body_bytes)"
        ),
    )
}

fn count_limit_rejection(limit: &'static str) {
    metrics::counter!(telemetry::LIMIT_REJECTIONS, "limit" => limit).increment(1);
}

#[derive(Debug)]
enum DecodeError {
    TooLarge,
    Corrupt(String),
}

fn corrupt(message: impl Into<String>) -> DecodeError {
    DecodeError::Corrupt(message.into())
}

/// Makes room in `out` for more output without its capacity ever passing
/// `limit + 1` (one byte past the limit is how "more than the limit" shows).
fn reserve_within(out: &mut Vec<u8>, wanted: usize, limit: usize) -> Result<(), DecodeError> {
    let ceiling = limit.saturating_add(1);
    if out.len() >= ceiling {
        return Err(DecodeError::TooLarge);
    }
    if out.capacity() - out.len() >= wanted.max(1) {
        return Ok(());
    }
    let target = out
        .capacity()
        .saturating_mul(2)
        .max(out.len().saturating_add(wanted.max(MIN_GROWTH)))
        .min(ceiling);
    out.reserve_exact(target - out.len());
    Ok(())
}

/// Decodes a framed snappy body: the output (empty unless `keep`) and its
/// size.
fn unsnappy_framed(
    input: &[u8],
    limit: usize,
    keep: bool,
) -> Result<(Vec<u8>, usize), DecodeError> {
    let mut reader = snap::read::FrameDecoder::new(input);
    let mut out = Vec::new();
    let mut total: usize = 0;
    let mut scratch = vec![0u8; MIN_GROWTH];
    loop {
        let n = match reader.read(&mut scratch) {
            Ok(0) => return Ok((out, total)),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(corrupt("snappy: unexpected EOF (truncated framed stream)"));
            }
            Err(e) => return Err(corrupt(format!("{e} (framed format)"))),
        };
        total = total.saturating_add(n);
        if total > limit {
            return Err(DecodeError::TooLarge);
        }
        if keep {
            reserve_within(&mut out, n, limit)?;
            out.extend_from_slice(&scratch[..n]);
        }
    }
}

fn unsnappy_block(input: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let block_error = |e: snap::Error| corrupt(format!("{e} (block format)"));
    // The block header announces the decoded length: check it before
    // allocating anything.
    let len = snap::raw::decompress_len(input).map_err(block_error)?;
    if len > limit {
        return Err(DecodeError::TooLarge);
    }
    snap::raw::Decoder::new()
        .decompress_vec(input)
        .map_err(block_error)
}

/// A metrics recorder for tests that counts `LIMIT_REJECTIONS` by `limit`.
#[cfg(test)]
pub(crate) mod limit_counter {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    #[derive(Default)]
    pub struct LimitCounter {
        counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
    }

    impl LimitCounter {
        /// Runs `f` with this recorder installed on the current thread and
        /// returns its result with the rejections counted per `limit`.
        pub fn count<T>(f: impl FnOnce() -> T) -> (T, HashMap<String, u64>) {
            let recorder = Self::default();
            let result = metrics::with_local_recorder(&recorder, f);
            let counts = recorder
                .counters
                .lock()
                .map(|c| {
                    c.iter()
                        .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
                        .collect()
                })
                .unwrap_or_default();
            (result, counts)
        }
    }

    impl Recorder for LimitCounter {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            if key.name() != crate::telemetry::LIMIT_REJECTIONS {
                return Counter::noop();
            }
            let limit = key
                .labels()
                .find(|l| l.key() == "limit")
                .map(|l| l.value().to_string())
                .unwrap_or_default();
            let mut counters = self.counters.lock().expect("test recorder lock");
            Counter::from_arc(counters.entry(limit).or_default().clone())
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }
}

#[cfg(test)]
mod tests;
