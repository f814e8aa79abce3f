//! Go standard-library behaviours the Pushgateway's answers depend on, so
//! that pushrelay's messages and decisions come out byte-for-byte the same:
//!
//! - [`quote`]: `strconv.Quote` (`%q`), used in every Pushgateway path error;
//! - [`decode_base64`]: `base64.RawURLEncoding.DecodeString` after trimming
//!   trailing `=`, with Go's error offsets and partial output;
//! - [`clean_path`] and [`escape_path`]: `net/http`'s path cleaning before
//!   routing and `net/url`'s escaping of the redirect target.

use std::fmt::Write as _;

/// Quotes `bytes` as Go's `strconv.Quote` does: `"` and `\` escaped, the
/// usual C escapes, other non-printable characters as `\xNN`, `\uNNNN` or
/// `\UNNNNNNNN`, each byte of invalid UTF-8 as `\xNN`.
pub fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_quoted_char(&mut out, c);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

fn push_quoted_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        ' '..='~' => out.push(c),
        '\u{07}' => out.push_str("\\a"),
        '\u{08}' => out.push_str("\\b"),
        '\u{0c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{0b}' => out.push_str("\\v"),
        '\0'..='\u{1f}' | '\u{7f}' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        _ if is_printable(c) => out.push(c),
        _ if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        _ => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// Go's `unicode.IsPrint` for non-ASCII characters: letters, marks, numbers,
/// punctuation and symbols. Rust's `escape_debug` leaves exactly those
/// categories alone (its table escapes Z* and C*); the leading `a` keeps
/// combining marks from being escaped as a string's first character.
fn is_printable(c: char) -> bool {
    let mut buf = [0u8; 5];
    buf[0] = b'a';
    let len = 1 + c.encode_utf8(&mut buf[1..]).len();
    match std::str::from_utf8(&buf[..len]) {
        Ok(s) => s.escape_debug().nth(1) == Some(c),
        Err(_) => false,
    }
}

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
    fn quote_matches_go_strconv_quote() {
        // Expected strings observed from the Pushgateway 1.5.1's 400 bodies.
        let cases: &[(&[u8], &str)] = &[
            (b"/instance", r#""/instance""#),
            (b"a\"b", r#""a\"b""#),
            (b"a\nb", r#""a\nb""#),
            (b"a\xffb", r#""a\xffb""#),
            ("aé".as_bytes(), "\"aé\""),
            (
                b"/x/\xff\x00\x07\"\\\xc2\xa0\xe2\x80\x8b\xcc\x81/x",
                "\"/x/\\xff\\x00\\a\\\"\\\\\\u00a0\\u200b\u{301}/x\"",
            ),
            (b"\x7f\x1b\t\r\x0b\x0c\x08", r#""\x7f\x1b\t\r\v\f\b""#),
            ("\u{e000}\u{f0000}".as_bytes(), r#""\ue000\U000f0000""#),
            (b"\xe2\x80A", r#""\xe2\x80A""#),
        ];
        for (input, want) in cases {
            assert_eq!(quote(input), *want, "input {input:?}");
        }
    }

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
