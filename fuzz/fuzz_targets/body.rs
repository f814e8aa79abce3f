//! Fuzzes `Content-Encoding` decoding: gzip and snappy (framed and block)
//! decoders must never panic, and never return more than the limit.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pushrelay::push::body::{self, BodyLimits};

const LIMITS: BodyLimits = BodyLimits {
    max_body_bytes: 1 << 20,
    max_decompressed_bytes: 1 << 20,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else {
        return;
    };
    let encoding = ["gzip", "snappy", "identity", "x-gzip"][usize::from(selector % 4)];
    // Half of the inputs start with a valid prefix so that the fuzzer
    // reaches past the format checks quickly.
    let mut body = Vec::with_capacity(payload.len() + 10);
    if selector & 0x80 != 0 {
        match encoding {
            "snappy" => body.extend_from_slice(b"\xff\x06\x00\x00sNaPpY"),
            "gzip" | "x-gzip" => body.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]),
            _ => {}
        }
    }
    body.extend_from_slice(payload);
    if let Ok(decoded) = body::decode(Some(encoding), Bytes::from(body), &LIMITS) {
        assert!(decoded.len() as u64 <= LIMITS.max_decompressed_bytes);
    }
});
