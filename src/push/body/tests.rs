use std::io::{Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use flate2::write::GzEncoder;
use flate2::{Compression, Crc};
use http_body::{Frame, SizeHint};
use proptest::prelude::*;

use super::gzip::{GZIP_FHCRC, gzip_header_len, inflate};
use super::limit_counter::LimitCounter;
use super::*;

const PYTHON_PUSH: &[u8] = include_bytes!("../../../tests/fixtures/python_push.txt");
const PYTHON_GZIP: &[u8] = include_bytes!("../../../tests/fixtures/python_push_gzip.bin");
const PYTHON_SNAPPY_FRAMED: &[u8] =
    include_bytes!("../../../tests/fixtures/python_push_snappy_framed.bin");

const GENEROUS: BodyLimits = BodyLimits {
    max_body_bytes: 1 << 30,
    max_decompressed_bytes: 1 << 30,
};

fn limits(max_body_bytes: u64, max_decompressed_bytes: u64) -> BodyLimits {
    BodyLimits {
        max_body_bytes,
        max_decompressed_bytes,
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn snappy_framed(data: &[u8]) -> Vec<u8> {
    let mut encoder = snap::write::FrameEncoder::new(Vec::new());
    encoder.write_all(data).unwrap();
    encoder.into_inner().unwrap()
}

fn snappy_block(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(data).unwrap()
}

fn decode_ok(encoding: Option<&str>, body: &[u8]) -> Vec<u8> {
    decode(encoding, Bytes::copy_from_slice(body), &GENEROUS)
        .unwrap_or_else(|e| panic!("{encoding:?}: {e:?}"))
        .to_vec()
}

fn decode_err(encoding: Option<&str>, body: &[u8], limits: &BodyLimits) -> Rejection {
    decode(encoding, Bytes::copy_from_slice(body), limits).expect_err("must be refused")
}

/// A body streamed in chunks, with or without an announced length.
struct ChunkedBody {
    chunks: Vec<Bytes>,
    announce_length: bool,
}

impl http_body::Body for ChunkedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.chunks.is_empty() {
            return Poll::Ready(None);
        }
        let chunk = self.chunks.remove(0);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn size_hint(&self) -> SizeHint {
        if self.announce_length {
            SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum())
        } else {
            SizeHint::default()
        }
    }
}

fn chunked(data: &[u8], chunk: usize, announce_length: bool) -> ChunkedBody {
    ChunkedBody {
        chunks: data.chunks(chunk).map(Bytes::copy_from_slice).collect(),
        announce_length,
    }
}

#[test]
fn identity_and_absent_encodings_pass_the_body_through() {
    for encoding in [None, Some(""), Some("identity"), Some(" IDENTITY ")] {
        assert_eq!(
            decode_ok(encoding, PYTHON_PUSH),
            PYTHON_PUSH,
            "{encoding:?}"
        );
    }
}

#[test]
fn gzip_is_decoded_case_insensitively() {
    let compressed = gzip(PYTHON_PUSH);
    for encoding in ["gzip", "GZIP", "Gzip", "x-gzip"] {
        assert_eq!(
            decode_ok(Some(encoding), &compressed),
            PYTHON_PUSH,
            "{encoding}"
        );
    }
}

#[test]
fn the_python_clients_gzip_and_snappy_bodies_decode() {
    let gz = decode_ok(Some("gzip"), PYTHON_GZIP);
    let snappy = decode_ok(Some("snappy"), PYTHON_SNAPPY_FRAMED);
    for text in [&gz, &snappy] {
        let text = std::str::from_utf8(text).unwrap();
        assert!(text.starts_with("# HELP py_requests_total"), "{text}");
        assert!(text.ends_with('\n'));
    }
    // Both captures hold the same families; only `*_created` values differ.
    let names = |t: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(t)
            .lines()
            .filter(|l| l.starts_with("# TYPE"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(names(&gz), names(PYTHON_PUSH));
    assert_eq!(names(&snappy), names(PYTHON_PUSH));
}

#[test]
fn concatenated_gzip_members_are_one_body_as_go_reads_them() {
    let mut body = gzip(b"gz_a 1\n");
    body.extend(gzip(b"gz_b 2\n"));
    assert_eq!(decode_ok(Some("gzip"), &body), b"gz_a 1\ngz_b 2\n");
}

#[test]
fn gzip_header_fields_are_skipped() {
    let mut encoder = flate2::GzBuilder::new()
        .filename("metrics.txt")
        .comment("a comment")
        .extra(vec![1, 2, 3, 4])
        .write(Vec::new(), Compression::fast());
    encoder.write_all(b"m 1\n").unwrap();
    let body = encoder.finish().unwrap();
    assert_eq!(decode_ok(Some("gzip"), &body), b"m 1\n");

    // FHCRC: a header CRC16 that matches, then one that does not.
    let plain = gzip(b"m 1\n");
    let mut header = plain[..10].to_vec();
    header[3] |= GZIP_FHCRC;
    let mut crc = Crc::new();
    crc.update(&header);
    let mut with_hcrc = header.clone();
    with_hcrc.extend_from_slice(&(crc.sum() as u16).to_le_bytes());
    with_hcrc.extend_from_slice(&plain[10..]);
    assert_eq!(decode_ok(Some("gzip"), &with_hcrc), b"m 1\n");
    with_hcrc[10] ^= 0xff;
    assert_eq!(
        decode_err(Some("gzip"), &with_hcrc, &GENEROUS).message,
        "gzip: invalid header (header checksum mismatch)"
    );
}

#[test]
fn corrupt_gzip_is_a_400_naming_the_problem() {
    let good = gzip(b"gz_a 1\n");
    let mut bad_crc = good.clone();
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xff;
    let mut bad_size = good.clone();
    bad_size[n - 1] ^= 0x01;
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"garbage");
    let mut bad_block_type = good.clone();
    bad_block_type[10] = 0x07; // final block of the reserved type 3
    let cases: &[(&[u8], &str)] = &[
        (b"", "gzip: empty body (EOF)"),
        (b"gz_c 1\n", "gzip: invalid header"),
        (b"\x1f\x8b", "gzip: unexpected EOF (truncated header)"),
        (
            &good[..15],
            "gzip: unexpected EOF (truncated deflate stream)",
        ),
        (&good[..n - 3], "gzip: unexpected EOF (truncated trailer)"),
        (&bad_crc, "gzip: invalid checksum"),
        (&bad_size, "gzip: invalid checksum"),
        (&trailing, "gzip: invalid header"),
        (
            &bad_block_type,
            "gzip: corrupt deflate stream after 0 compressed bytes",
        ),
    ];
    for (body, want) in cases {
        let err = decode_err(Some("gzip"), body, &GENEROUS);
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.starts_with(want), "{want}: got {}", err.message);
    }
}

#[test]
fn snappy_framed_and_block_formats_are_both_decoded() {
    let data = PYTHON_PUSH.repeat(200); // several 64 KiB frames
    assert_eq!(decode_ok(Some("snappy"), &snappy_framed(&data)), data);
    assert_eq!(decode_ok(Some("SNAPPY"), &snappy_block(&data)), data);
    assert_eq!(decode_ok(Some("snappy"), b""), b"");
}

#[test]
fn corrupt_snappy_is_a_400_naming_the_problem() {
    let framed = snappy_framed(b"m 1\nm2 2\n");
    let mut bad_crc = framed.clone();
    let n = bad_crc.len();
    bad_crc[n - 1] ^= 0xff;
    let cases: &[(Vec<u8>, &str)] = &[
        (bad_crc, "snappy: corrupt input (bad checksum"),
        (
            framed[..n - 2].to_vec(),
            "snappy: unexpected EOF (truncated framed stream)",
        ),
        (b"m 1\n".to_vec(), "snappy: corrupt input"),
        (
            snappy_block(b"m 1\n")[..3].to_vec(),
            "snappy: corrupt input",
        ),
    ];
    for (body, want) in cases {
        let err = decode_err(Some("snappy"), body, &GENEROUS);
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.starts_with(want), "{want}: got {}", err.message);
    }
}

#[test]
fn unknown_encodings_are_a_415_naming_them() {
    for encoding in ["br", "deflate", "zstd", "gzip, identity", "compress"] {
        let err = decode_err(Some(encoding), b"m 1\n", &GENEROUS);
        assert_eq!(err.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            err.message.contains(&format!("{encoding:?}")),
            "{}",
            err.message
        );
    }
}

#[test]
fn decoded_output_above_the_limit_is_a_413_for_every_encoding() {
    let data = vec![b'x'; 200_000];
    let cases = [
        ("gzip", gzip(&data)),
        ("snappy", snappy_framed(&data)),
        ("snappy", snappy_block(&data)),
        ("identity", data.clone()),
    ];
    for (encoding, body) in &cases {
        let exact = limits(1 << 30, data.len() as u64);
        assert_eq!(decode_ok_with(encoding, body, &exact), data, "{encoding}");
        let tight = limits(1 << 30, data.len() as u64 - 1);
        let (err, counts) = LimitCounter::count(|| decode_err(Some(encoding), body, &tight));
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE, "{encoding}");
        assert!(
            err.message
                .contains("limit of 199999 bytes (push.max_decompressed_bytes)"),
            "{}",
            err.message
        );
        assert_eq!(counts.get("max_decompressed_bytes"), Some(&1));
    }
}

fn decode_ok_with(encoding: &str, body: &[u8], limits: &BodyLimits) -> Vec<u8> {
    decode(Some(encoding), Bytes::copy_from_slice(body), limits)
        .unwrap_or_else(|e| panic!("{encoding}: {e:?}"))
        .to_vec()
}

#[test]
fn a_snappy_block_announcing_a_huge_length_is_refused_before_allocating() {
    // Varint 0xffffffff as the decoded length, then nothing.
    let body = b"\xff\xff\xff\xff\x0f";
    let err = decode_err(Some("snappy"), body, &limits(1 << 30, 1 << 20));
    assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// One deflate chunk of `len` zeros ending in a full flush: the compressor
/// starts over after it, so repeating the chunk bytes is a valid deflate
/// stream of repeated zeros.
fn deflate_zero_chunk(len: usize) -> Vec<u8> {
    let mut compressor = flate2::Compress::new(Compression::best(), false);
    let mut chunks = Vec::new();
    for _ in 0..2 {
        let mut out = Vec::with_capacity(len / 100 + 1024);
        compressor
            .compress_vec(&vec![0u8; len], &mut out, flate2::FlushCompress::Full)
            .unwrap();
        chunks.push(out);
    }
    assert_eq!(chunks[0], chunks[1], "full-flush chunks must repeat");
    chunks.swap_remove(0)
}

/// A gzip body of `repeats` chunks of `chunk_len` zeros, with a correct
/// trailer when `with_trailer`.
fn zero_bomb(chunk_len: usize, repeats: usize, with_trailer: bool) -> Vec<u8> {
    let chunk = deflate_zero_chunk(chunk_len);
    let mut finisher = flate2::Compress::new(Compression::best(), false);
    let mut last = Vec::with_capacity(64);
    finisher
        .compress_vec(&[], &mut last, flate2::FlushCompress::Finish)
        .unwrap();
    let mut body = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for _ in 0..repeats {
        body.extend_from_slice(&chunk);
    }
    body.extend_from_slice(&last);
    if with_trailer {
        let mut crc = Crc::new();
        let zeros = vec![0u8; chunk_len];
        for _ in 0..repeats {
            crc.update(&zeros);
        }
        body.extend_from_slice(&crc.sum().to_le_bytes());
        body.extend_from_slice(&((chunk_len * repeats) as u32).to_le_bytes());
    }
    body
}

#[test]
fn the_bomb_construction_is_a_valid_gzip_stream() {
    let body = zero_bomb(1 << 20, 4, true);
    let mut via_flate2 = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut via_flate2)
        .unwrap();
    assert_eq!(via_flate2.len(), 4 << 20);
    assert_eq!(decode_ok(Some("gzip"), &body), via_flate2);
}

#[test]
fn a_gzip_bomb_of_one_gib_is_refused_at_the_limit() {
    // 1 GiB of zeros in about 1 MiB; decoding stops at the 16 MiB limit, so
    // the trailer (never reached) is left out.
    let body = zero_bomb(1 << 20, 1 << 10, false);
    assert!(body.len() < 2 << 20, "bomb is {} bytes", body.len());
    let cap = 16 << 20;
    let (err, counts) =
        LimitCounter::count(|| decode_err(Some("gzip"), &body, &limits(64 << 20, cap)));
    assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(counts.get("max_decompressed_bytes"), Some(&1));
    // The output buffer itself never grows past the limit.
    let mut out = Vec::new();
    let header = gzip_header_len(&body).unwrap();
    assert!(matches!(
        inflate(&body[header..], &mut out, cap as usize),
        Err(DecodeError::TooLarge)
    ));
    assert!(out.capacity() <= cap as usize + 1, "{}", out.capacity());
}

#[test]
fn a_bomb_under_a_large_limit_is_counted_not_kept() {
    // 1 GiB of zeros against a 256 MiB limit: only the first pass may keep
    // output, and only up to the eager size; the rest is counted.
    let body = zero_bomb(1 << 20, 1 << 10, false);
    let limit = 256 << 20;
    let caps = std::cell::RefCell::new(Vec::new());
    let result = decode_counted(
        limit,
        |cap| {
            caps.borrow_mut().push(cap);
            gunzip(&body, cap)
        },
        || gunzip_len(&body, limit),
    );
    assert!(matches!(result, Err(DecodeError::TooLarge)), "{result:?}");
    assert_eq!(*caps.borrow(), [EAGER_DECODE_BYTES]);
    let (err, counts) =
        LimitCounter::count(|| decode_err(Some("gzip"), &body, &limits(64 << 20, limit as u64)));
    assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(counts.get("max_decompressed_bytes"), Some(&1));
}

#[test]
fn bodies_above_the_eager_size_decode_exactly_or_hit_the_limit() {
    let size = EAGER_DECODE_BYTES + (4 << 20);
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let two_members = [gzip(&data[..size / 2]), gzip(&data[size / 2..])].concat();
    for (encoding, body) in [
        ("gzip", gzip(&data)),
        ("gzip", two_members),
        ("snappy", snappy_framed(&data)),
    ] {
        let fits = limits(1 << 30, size as u64);
        assert!(decode_ok_with(encoding, &body, &fits) == data, "{encoding}");
        let tight = limits(1 << 30, size as u64 - 1);
        let err = decode_err(Some(encoding), &body, &tight);
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE, "{encoding}");
    }
    // The counting pass reports broken framing as the decoder does.
    let truncated = zero_bomb(1 << 20, 12, false);
    let err = decode_err(Some("gzip"), &truncated, &limits(1 << 30, 16 << 20));
    assert_eq!(
        (err.status, err.message.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "gzip: unexpected EOF (truncated trailer)"
        )
    );
    let mut bad_crc = zero_bomb(1 << 20, 12, true);
    let crc_at = bad_crc.len() - 8;
    bad_crc[crc_at] ^= 1;
    let err = decode_err(Some("gzip"), &bad_crc, &limits(1 << 30, 16 << 20));
    assert_eq!(err.message, "gzip: invalid checksum");
}

#[tokio::test]
async fn read_body_refuses_an_announced_length_above_the_limit_before_reading() {
    let body = chunked(&[b'x'; 2048], 512, true);
    let err = read_body(body, None, &limits(1024, 1 << 20))
        .await
        .unwrap_err();
    assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        err.message,
        "request body of 2048 bytes is larger than the limit of 1024 bytes (push.max_body_bytes)"
    );
}

#[tokio::test]
async fn read_body_refuses_a_stream_once_it_crosses_the_limit() {
    let body = chunked(&[b'x'; 4096], 100, false);
    let err = read_body(body, None, &limits(1000, 1 << 20))
        .await
        .unwrap_err();
    assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        err.message,
        "request body is larger than the limit of 1000 bytes (push.max_body_bytes)"
    );
}

#[tokio::test]
async fn read_body_joins_chunks_and_decodes() {
    let compressed = gzip(PYTHON_PUSH);
    let body = chunked(&compressed, 7, false);
    let got = read_body(
        body,
        Some("gzip"),
        &limits(compressed.len() as u64, 1 << 20),
    )
    .await
    .unwrap();
    assert_eq!(got, PYTHON_PUSH);
    // Large compressed bodies go through the blocking pool.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let data: Vec<u8> = (0..400_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let compressed = snappy_block(&data);
    assert!(compressed.len() >= BLOCKING_DECODE_THRESHOLD);
    let got = read_body(
        chunked(&compressed, 1 << 16, true),
        Some("snappy"),
        &GENEROUS,
    )
    .await
    .unwrap();
    assert_eq!(got, data);
}

#[test]
fn a_body_in_one_chunk_is_kept_without_a_copy() {
    let chunk = Bytes::from_static(b"m 1\n");
    let mut collected = Collected::new(Some(4));
    collected.push(chunk.clone());
    let body = collected.into_bytes();
    assert_eq!(body.as_ptr(), chunk.as_ptr());
}

#[test]
fn chunks_are_joined_into_one_buffer_sized_by_the_announced_length() {
    let announced = 1 << 20;
    let data: Vec<u8> = (0..announced).map(|i| (i % 253) as u8).collect();
    let mut collected = Collected::new(Some(announced as u64));
    let mut sent = 0;
    for chunk in data.chunks(1000) {
        collected.push(Bytes::copy_from_slice(chunk));
        sent += chunk.len();
        let capacity = collected.joined.as_ref().map_or(sent, BytesMut::capacity);
        // A client that announces much and sends little costs at most four
        // times what it sent (and never more than it announced).
        assert!(capacity <= (4 * sent).max(2000), "{capacity} after {sent}");
        assert!(capacity <= announced, "{capacity} over {announced}");
    }
    // The last growth took the announced length whole: no spare capacity.
    assert_eq!(
        collected.joined.as_ref().map(BytesMut::capacity),
        Some(announced)
    );
    assert_eq!(collected.into_bytes(), data);
}

#[test]
fn chunks_without_an_announced_length_are_joined() {
    let data: Vec<u8> = (0..100_000).map(|i| (i % 251) as u8).collect();
    let mut collected = Collected::new(None);
    for chunk in data.chunks(777) {
        collected.push(Bytes::copy_from_slice(chunk));
        collected.push(Bytes::new());
    }
    assert_eq!(collected.len(), data.len() as u64);
    assert_eq!(collected.into_bytes(), data);
    assert!(Collected::new(None).into_bytes().is_empty());
}

#[test]
fn the_body_limit_is_counted() {
    let (err, counts) = LimitCounter::count(|| decode_err(None, &[0; 11], &limits(10, 100)));
    assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(counts.get("max_body_bytes"), Some(&1));
}

proptest! {
    #[test]
    fn arbitrary_bodies_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..512),
        encoding in prop_oneof![Just("gzip"), Just("snappy"), Just("identity"), Just("br")],
    ) {
        let mut framed = SNAPPY_STREAM_IDENTIFIER.to_vec();
        framed.extend_from_slice(&body);
        let mut gz = vec![0x1f, 0x8b, 8];
        gz.extend_from_slice(&body);
        for candidate in [body.clone(), framed, gz] {
            let _ = decode(Some(encoding), Bytes::from(candidate), &limits(1 << 20, 4096));
        }
    }

    #[test]
    fn compressed_bodies_round_trip(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        prop_assert_eq!(decode_ok(Some("gzip"), &gzip(&data)), data.clone());
        prop_assert_eq!(decode_ok(Some("snappy"), &snappy_framed(&data)), data.clone());
        prop_assert_eq!(decode_ok(Some("snappy"), &snappy_block(&data)), data);
    }
}
