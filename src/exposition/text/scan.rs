//! Byte-level pieces of the text formats: character classes, Go's number
//! syntax, Go's float-to-count conversion and a fast hasher for the short
//! ASCII keys the parser looks up on every line.
//!
//! Contract: every function here is total (never panics) on arbitrary bytes.

use std::hash::{BuildHasherDefault, Hasher};

/// Character classes as a lookup table: one load per byte in the hot loops.
const NAME_START: u8 = 1;
const NAME_CONT: u8 = 2;
const LABEL_START: u8 = 4;
const LABEL_CONT: u8 = 8;

static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let letter = c.is_ascii_alphabetic() || c == b'_';
        let digit = c.is_ascii_digit();
        let mut class = 0;
        if letter || c == b':' {
            class |= NAME_START | NAME_CONT;
        }
        if digit {
            class |= NAME_CONT | LABEL_CONT;
        }
        if letter {
            class |= LABEL_START | LABEL_CONT;
        }
        table[b] = class;
        b += 1;
    }
    table
};

#[inline]
pub(crate) fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// End of the metric name starting at `start` (`[a-zA-Z_:][a-zA-Z0-9_:]*`);
/// `start` itself when no name starts there.
#[inline]
pub(crate) fn metric_name_end(bytes: &[u8], start: usize) -> usize {
    class_run_end(bytes, start, NAME_START, NAME_CONT)
}

/// End of the label name starting at `start` (`[a-zA-Z_][a-zA-Z0-9_]*`).
#[inline]
pub(crate) fn label_name_end(bytes: &[u8], start: usize) -> usize {
    class_run_end(bytes, start, LABEL_START, LABEL_CONT)
}

#[inline]
fn class_run_end(bytes: &[u8], start: usize, first: u8, rest: u8) -> usize {
    match bytes.get(start) {
        Some(&b) if CLASS[usize::from(b)] & first != 0 => {}
        _ => return start,
    }
    let mut end = start + 1;
    while let Some(&b) = bytes.get(end) {
        if CLASS[usize::from(b)] & rest == 0 {
            break;
        }
        end += 1;
    }
    end
}

/// Index of the first byte at or after `from` that is not a blank or tab.
#[inline]
pub(crate) fn skip_blanks(bytes: &[u8], mut from: usize) -> usize {
    while let Some(&b) = bytes.get(from) {
        if !is_blank(b) {
            break;
        }
        from += 1;
    }
    from
}

/// Index of the first blank, tab or newline at or after `from`.
#[inline]
pub(crate) fn token_end(bytes: &[u8], mut from: usize) -> usize {
    while let Some(&b) = bytes.get(from) {
        if is_blank(b) || b == b'\n' {
            break;
        }
        from += 1;
    }
    from
}

/// Go's `strconv.ParseFloat(s, 64)` as the text parser uses it: `p`, `P`
/// and `_` refused outright, `Inf`/`Infinity` (signed, any case) and `NaN`
/// (unsigned, any case), overflow is an error, underflow is zero.
pub(crate) fn parse_go_float(token: &[u8]) -> Option<f64> {
    if let Some(value) = small_integer(token) {
        return Some(value);
    }
    let (negative, unsigned) = match token.first() {
        Some(b'+') => (false, &token[1..]),
        Some(b'-') => (true, &token[1..]),
        _ => (false, token),
    };
    let signed = unsigned.len() != token.len();
    if unsigned.eq_ignore_ascii_case(b"inf") || unsigned.eq_ignore_ascii_case(b"infinity") {
        return Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if !signed && unsigned.eq_ignore_ascii_case(b"nan") {
        return Some(f64::NAN);
    }
    // Only decimal syntax is left; anything else (hex, underscores, names,
    // non-ASCII digits) is refused before handing the text to Rust, whose
    // decimal grammar then matches Go's.
    if !token
        .iter()
        .all(|&b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    let text = std::str::from_utf8(token).ok()?;
    let value: f64 = text.parse().ok()?;
    (!value.is_infinite()).then_some(value)
}

/// Fast path for the most common values: up to 15 digits, optionally
/// negative, which an f64 holds exactly (so the result equals the general
/// parse).
#[inline]
fn small_integer(token: &[u8]) -> Option<f64> {
    let (negative, digits) = match token.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, token),
    };
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut value: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u64::from(d - b'0');
    }
    let value = value as f64;
    Some(if negative { -value } else { value })
}

/// Go's `strconv.ParseInt(s, 10, 64)`.
pub(crate) fn parse_go_int(token: &[u8]) -> Option<i64> {
    std::str::from_utf8(token).ok()?.parse().ok()
}

/// Go's `uint64(f)` on amd64, which the text parser applies to summary and
/// histogram counts: truncation toward zero, negative values wrap (`-1` is
/// 18446744073709551615), NaN and out-of-range values give 2^63.
pub(crate) fn go_float_to_u64(v: f64) -> u64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    const OUT_OF_RANGE: u64 = 1 << 63;
    // The x86 conversion instruction yields 2^63 for NaN and anything that
    // does not fit an i64.
    let signed = |x: f64| -> u64 {
        if !(-TWO_63..TWO_63).contains(&x) {
            OUT_OF_RANGE
        } else {
            x as i64 as u64
        }
    };
    if v < TWO_63 {
        signed(v)
    } else {
        signed(v - TWO_63) | OUT_OF_RANGE
    }
}

/// FxHash (rustc's hasher): a multiply-rotate hash, several times faster
/// than SipHash on the short metric names looked up per line. Collision
/// resistance is not needed: keys come from one request and a collision
/// only costs a comparison.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_parse_as_go() {
        // (input, Go's result formatted with FormatFloat 'g' -1, or None for an error)
        let table: &[(&str, Option<f64>)] = &[
            ("1", Some(1.0)),
            ("+.5", Some(0.5)),
            ("-.5", Some(-0.5)),
            (".", None),
            ("-", None),
            ("+", None),
            ("1e", None),
            ("1e+", None),
            ("1.2.3", None),
            ("5.e-3", Some(0.005)),
            ("5.", Some(5.0)),
            (".5", Some(0.5)),
            ("1E5", Some(1e5)),
            ("e5", None),
            (".e5", None),
            ("Inf", Some(f64::INFINITY)),
            ("+Inf", Some(f64::INFINITY)),
            ("-inf", Some(f64::NEG_INFINITY)),
            ("infinity", Some(f64::INFINITY)),
            ("+Infinity", Some(f64::INFINITY)),
            ("infin", None),
            ("0x10", None),
            ("1e400", None),
            ("-1e400", None),
            ("1e-400", Some(0.0)),
            ("00012", Some(12.0)),
            ("1_0", None),
            ("1p3", None),
            ("  1", None),
            ("1 ", None),
            ("", None),
            ("+-1", None),
            ("1e+-5", None),
            ("1e5e5", None),
            ("9007199254740993", Some(9007199254740992.0)),
            ("0.1e-99999999999", Some(0.0)),
            ("1e99999999999", None),
            ("+0.0e0", Some(0.0)),
            ("١", None),
        ];
        for &(input, want) in table {
            let got = parse_go_float(input.as_bytes());
            assert_eq!(
                got.map(f64::to_bits),
                want.map(f64::to_bits),
                "input {input:?}"
            );
        }
        for nan in ["nan", "NaN", "nAn"] {
            assert!(parse_go_float(nan.as_bytes()).is_some_and(f64::is_nan));
        }
        for not_nan in ["+nan", "-NaN"] {
            assert_eq!(parse_go_float(not_nan.as_bytes()), None);
        }
        assert_eq!(
            parse_go_float(b"-0").map(f64::to_bits),
            Some((-0.0f64).to_bits())
        );
    }

    #[test]
    fn the_integer_fast_path_agrees_with_the_general_parse() {
        for token in [
            "0",
            "-0",
            "7",
            "-42",
            "000123",
            "999999999999999",
            "-999999999999999",
        ] {
            let general: f64 = token.parse().expect("decimal");
            assert_eq!(
                small_integer(token.as_bytes()).map(f64::to_bits),
                Some(general.to_bits()),
                "{token}"
            );
        }
        for token in ["", "-", "1.5", "1e3", "+1", "1234567890123456"] {
            assert_eq!(small_integer(token.as_bytes()), None, "{token}");
        }
    }

    #[test]
    fn ints_parse_as_go() {
        let table: &[(&str, bool)] = &[
            ("1", true),
            ("+1", true),
            ("-1", true),
            ("+", false),
            ("-", false),
            ("", false),
            ("01", true),
            ("9223372036854775807", true),
            ("9223372036854775808", false),
            ("-9223372036854775808", true),
            ("1_0", false),
            (" 1", false),
            ("0x1", false),
        ];
        for &(input, ok) in table {
            assert_eq!(parse_go_int(input.as_bytes()).is_some(), ok, "{input:?}");
        }
    }

    #[test]
    fn counts_convert_as_go_on_amd64() {
        assert_eq!(go_float_to_u64(3.9), 3);
        assert_eq!(go_float_to_u64(-1.0), u64::MAX);
        assert_eq!(go_float_to_u64(f64::NAN), 1 << 63);
        assert_eq!(go_float_to_u64(f64::INFINITY), 1 << 63);
        assert_eq!(go_float_to_u64(-1e30), 1 << 63);
        assert_eq!(go_float_to_u64(1.5e19), 15_000_000_000_000_000_000);
        assert_eq!(go_float_to_u64(1e30), 1 << 63);
        assert_eq!(go_float_to_u64(-0.5), 0);
    }

    #[test]
    fn names_scan_by_class() {
        assert_eq!(metric_name_end(b"a:b_1{", 0), 5);
        assert_eq!(metric_name_end(b"1a", 0), 0);
        assert_eq!(label_name_end(b"a:b", 0), 1);
        assert_eq!(label_name_end(b":a", 0), 0);
        assert_eq!(label_name_end(b"", 0), 0);
    }
}
