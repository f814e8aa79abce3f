//! Go's `%q` quoting, as it appears inside the Pushgateway's parse error
//! messages (`got "1\r"`, `found '\x01'`).
//!
//! Contract: ASCII and invalid UTF-8 are quoted exactly as Go's
//! `strconv.Quote`/`QuoteRune` do. Go decides printability of non-ASCII
//! runes from the full Unicode tables; this module knows the categories that
//! matter in practice (C1 controls, separators, format characters, private
//! use, noncharacters) and treats the remaining assigned-or-not runes as
//! printable, so an unassigned code point may be shown raw where Go would
//! escape it. Only error-message text depends on this.

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

fn is_go_printable(c: char) -> bool {
    let cp = c as u32;
    if cp < 0x80 {
        return (0x20..0x7f).contains(&cp);
    }
    let not_printable = matches!(cp,
        0x80..=0xA0            // C1 controls, no-break space
        | 0xAD                 // soft hyphen
        | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F
        | 0x1680 | 0x180E
        | 0x2000..=0x200F      // spaces, zero-width, directional marks
        | 0x2028..=0x202F
        | 0x205F..=0x206F
        | 0x3000
        | 0xD800..=0xF8FF      // surrogates, private use
        | 0xFDD0..=0xFDEF
        | 0xFEFF
        | 0xFFF9..=0xFFFB
        | 0x110BD | 0x110CD
        | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF
        | 0xF0000..
    );
    // U+xxFFFE and U+xxFFFF are noncharacters in every plane.
    !not_printable && (cp & 0xFFFE) != 0xFFFE
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
}
