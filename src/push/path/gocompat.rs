//! Go standard-library behaviours the Pushgateway's answers depend on, so
//! that pushrelay's messages and decisions come out byte-for-byte the same:
//!
//! - [`decode_base64`]: `base64.RawURLEncoding.DecodeString` after trimming
//!   trailing `=`, with Go's error offsets and partial output;
//! - [`clean_path`] and [`escape_path`]: `net/http`'s path cleaning before
//!   routing and `net/url`'s escaping of the redirect target.

use std::fmt::Write as _;

/// A failed base64 decode: the bytes decoded before the failing quantum (Go
/// returns them, and the Pushgateway prints them for a job name) and the
/// input offset Go reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base64Error {
    pub partial: Vec<u8>,
    pub offset: usize,
}

impl std::fmt::Display for Base64Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "illegal base64 data at input byte {}", self.offset)
    }
}

const INVALID: u8 = 0xff;

const fn url_safe_decode_table() -> [u8; 256] {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
}

static DECODE: [u8; 256] = url_safe_decode_table();

/// Decodes a Pushgateway base64 value: all trailing `=` are stripped, then
/// the rest is decoded as unpadded URL-safe base64 the way Go does it
/// (`\r`/`\n` skipped, non-zero trailing bits tolerated, a lone final
/// character or any other byte an error at Go's offset).
pub fn decode_base64(input: &[u8]) -> Result<Vec<u8>, Base64Error> {
    let end = input.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    let src = &input[..end];
    let mut out = Vec::with_capacity(src.len() * 3 / 4);
    let mut si = 0;
    loop {
        let mut quantum = [0u8; 4];
        let mut filled = 0;
        while filled < 4 {
            let Some(&byte) = src.get(si) else {
                if filled == 1 {
                    return Err(Base64Error {
                        partial: out,
                        offset: si - 1,
                    });
                }
                break;
            };
            si += 1;
            match DECODE[usize::from(byte)] {
                INVALID if byte == b'\n' || byte == b'\r' => {}
                INVALID => {
                    return Err(Base64Error {
                        partial: out,
                        offset: si - 1,
                    });
                }
                sextet => {
                    quantum[filled] = sextet;
                    filled += 1;
                }
            }
        }
        let bits = u32::from(quantum[0]) << 18
            | u32::from(quantum[1]) << 12
            | u32::from(quantum[2]) << 6
            | u32::from(quantum[3]);
        let bytes = bits.to_be_bytes();
        // `filled` sextets carry `filled - 1` whole bytes (0 for an empty tail).
        out.extend_from_slice(&bytes[1..filled.max(1)]);
        if filled < 4 {
            return Ok(out);
        }
    }
}

/// Go's `path.Clean` applied as `net/http` applies it before routing: the
/// path is made rooted, `//`, `.` and `..` elements are resolved, and a
/// trailing `/` is kept (except for the root itself).
pub fn clean_path(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for element in path.split(|&b| b == b'/') {
        match element {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            _ => parts.push(element),
        }
    }
    let mut cleaned = Vec::with_capacity(path.len() + 1);
    for part in &parts {
        cleaned.push(b'/');
        cleaned.extend_from_slice(part);
    }
    // The root stays `/`; any other path keeps its trailing slash.
    if cleaned.is_empty() || path.ends_with(b"/") {
        cleaned.push(b'/');
    }
    cleaned
}

/// Escapes a decoded path as Go's `url.URL.EscapedPath` does for a path it
/// has to re-encode: letters, digits and `-_.~$&+,/:;=@` stay, every other
/// byte becomes `%XX` (upper-case hex).
pub fn escape_path(path: &[u8]) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path {
        if b.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_go_raw_url_encoding() {
        let ok: &[(&str, &[u8])] = &[
            ("L3gveQ", b"/x/y"),
            ("L3gveQ=", b"/x/y"),
            ("L3gveQ==", b"/x/y"),
            ("L3gveQ===", b"/x/y"),
            ("=", b""),
            ("", b""),
            ("YS9i", b"a/b"),
            ("YR", b"a"),
            ("YW\nJj", b"abc"),
            ("YW\n", b"a"),
            ("_-8", b"\xff\xef"),
        ];
        for (input, want) in ok {
            assert_eq!(
                decode_base64(input.as_bytes()).as_deref(),
                Ok(*want),
                "{input}"
            );
        }
        let bad: &[(&str, &[u8], usize)] = &[
            ("L", b"", 0),
            ("L3gve+", b"/x/", 5),
            ("L3gve+==", b"/x/", 5),
            ("Y\n", b"", 1),
            ("YQ=Y", b"", 2),
            ("YQ=a=", b"", 2),
            ("YWJjZGVm+", b"abcdef", 8),
            ("YWJjZGVmZ2hp!", b"abcdefghi", 12),
            ("YWJjZ", b"abc", 4),
        ];
        for (input, partial, offset) in bad {
            assert_eq!(
                decode_base64(input.as_bytes()),
                Err(Base64Error {
                    partial: partial.to_vec(),
                    offset: *offset
                }),
                "{input}"
            );
        }
    }

    #[test]
    fn clean_path_matches_go_net_http() {
        let cases: &[(&str, &str)] = &[
            ("/metrics/job/j/p//x/y", "/metrics/job/j/p/x/y"),
            ("/metrics/job/j/./a/b", "/metrics/job/j/a/b"),
            ("/metrics/job/j/../a/b", "/metrics/job/a/b"),
            ("/metrics/job/j/a/.", "/metrics/job/j/a"),
            ("/metrics/job/j/a/..", "/metrics/job/j"),
            ("/metrics/job/j/./", "/metrics/job/j/"),
            ("/metrics/job/j/a/../../../../x", "/x"),
            ("/metrics/job/x/", "/metrics/job/x/"),
            ("/..", "/"),
            ("", "/"),
            ("a/b", "/a/b"),
        ];
        for (input, want) in cases {
            assert_eq!(
                String::from_utf8_lossy(&clean_path(input.as_bytes())),
                *want,
                "{input}"
            );
        }
    }

    #[test]
    fn escape_path_matches_go_url_escaping() {
        // Observed Location header of the Pushgateway 1.5.1.
        assert_eq!(
            escape_path("/metrics/job/j/a b/x/y?z%\u{ff}é~!*()".as_bytes()),
            "/metrics/job/j/a%20b/x/y%3Fz%25%C3%BF%C3%A9~%21%2A%28%29"
        );
        assert_eq!(escape_path(b"/a$&+,:;=@\xff"), "/a$&+,:;=@%FF");
    }
}
