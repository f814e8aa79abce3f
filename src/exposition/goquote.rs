//! Go's `%q` quoting (`strconv.Quote`, `strconv.QuoteRune`), as it appears
//! in the Pushgateway's messages: every path error (`improper label name
//! "a-b"`), the text parser's errors (`got "1\r"`, `found '\x01'`), and
//! validation messages.
//!
//! Contract: byte-for-byte Go's output. Printability of non-ASCII
//! characters follows Go's `unicode.IsPrint` (letters, marks, numbers,
//! punctuation, symbols); each byte of invalid UTF-8 is `\xNN`.

use std::fmt::Write as _;

/// `fmt.Sprintf("%q", s)` for a byte string.
pub(crate) fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_rune(&mut out, c, '"');
        }
        for &b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

/// `fmt.Sprintf("%q", b)` for a Go `byte`: the byte is read as the code
/// point of the same value (so `0xC3` prints as `'Ã'`).
pub(crate) fn quote_byte(b: u8) -> String {
    let mut out = String::with_capacity(8);
    out.push('\'');
    push_rune(&mut out, char::from(b), '\'');
    out.push('\'');
    out
}

fn push_rune(out: &mut String, c: char, quote: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if is_go_printable(c) => out.push(c),
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// Go's `unicode.IsPrint` for non-ASCII characters: letters, marks,
/// numbers, punctuation and symbols. Rust's `escape_debug` leaves exactly
/// those categories alone (it escapes Z* and C*, unassigned included); the
/// leading `a` keeps combining marks from being escaped as a string's first
/// character.
fn is_go_printable(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    let mut buf = [0u8; 5];
    buf[0] = b'a';
    let len = 1 + c.encode_utf8(&mut buf[1..]).len();
    match std::str::from_utf8(&buf[..len]) {
        Ok(s) => s.escape_debug().nth(1) == Some(c),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_quote_as_go() {
        // Expected text printed by Go's fmt.Sprintf("%q", ...) for the same input.
        let input = "a\"b\\c\u{0}\u{7}\u{8}\u{c}\r\u{b}\u{a0}\u{ad}\u{200b}\u{2028}\u{feff}\u{e000}\u{1F600}\u{E0001}\u{10FFFF}";
        let mut bytes = input.as_bytes().to_vec();
        bytes.extend_from_slice(b"\xff\xc3");
        assert_eq!(
            quote(&bytes),
            r#""a\"b\\c\x00\a\b\f\r\v\u00a0\u00ad\u200b\u2028\ufeff\ue000😀\U000e0001\U0010ffff\xff\xc3""#
        );
        assert_eq!(quote("é\u{200b}\t\u{7f}".as_bytes()), r#""é\u200b\t\x7f""#);
    }

    #[test]
    fn bytes_quote_as_go_runes() {
        let got: Vec<String> = [
            b'a', b'"', b'\'', b'\\', 0, b'\n', b'\t', 0x7f, 0x80, 0x9f, 0xa0, 0xad, 0xc3, 0xe9,
            0xff, b'}',
        ]
        .into_iter()
        .map(quote_byte)
        .collect();
        let want = r#"'a' '"' '\'' '\\' '\x00' '\n' '\t' '\x7f' '\u0080' '\u009f' '\u00a0' '\u00ad' 'Ã' 'é' 'ÿ' '}'"#;
        assert_eq!(got.join(" "), want);
    }

    #[test]
    fn path_errors_quote_as_the_pushgateway() {
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
}
