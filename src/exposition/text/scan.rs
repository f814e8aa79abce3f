//! Byte-level pieces of the text formats: character classes, Go's number
//! syntax, and Go's float-to-count conversion.
//!
//! Contract: every function here is total (never panics) on arbitrary bytes.

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

/// Whether `b` can continue a metric name.
#[inline]
pub(crate) fn is_metric_name_byte(b: u8) -> bool {
    CLASS[usize::from(b)] & NAME_CONT != 0
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
    if let Some(value) = short_decimal(token) {
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

/// [`token_end`] and [`parse_go_float`] of the token at `from` in one pass,
/// when it is a short decimal (see `short_decimal`): its end and value.
/// `None` for any other token, which then takes the general path.
#[inline]
pub(crate) fn short_decimal_token(bytes: &[u8], from: usize) -> Option<(usize, f64)> {
    let (negative, unsigned_start) = match bytes.get(from) {
        Some(b'-') => (true, from + 1),
        Some(b'+') => (false, from + 1),
        _ => (false, from),
    };
    let mut at = unsigned_start;
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    let mut point: Option<usize> = None;
    loop {
        match bytes.get(at) {
            Some(&b) if b.is_ascii_digit() => {
                if digits == 15 {
                    return None;
                }
                mantissa = mantissa * 10 + u64::from(b - b'0');
                digits += 1;
            }
            Some(b'.') if point.is_none() => point = Some(digits),
            Some(&b) if is_blank(b) || b == b'\n' => break,
            None => break,
            Some(_) => return None,
        }
        at += 1;
    }
    if digits == 0 || at - unsigned_start > 16 {
        return None;
    }
    let fraction_digits = point.map_or(0, |at| digits - at);
    let value = mantissa as f64 / POW10[fraction_digits];
    Some((at, if negative { -value } else { value }))
}

/// Exact powers of ten an f64 holds.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Fast path for the most common values: an optional sign, digits with at
/// most one `.`, no exponent, at most 15 digits in all. The digits form an
/// integer an f64 holds exactly, and so does the power of ten it is divided
/// by, so the one correctly rounded division gives the correctly rounded
/// value of the decimal: the same f64 as the general parse.
#[inline]
fn short_decimal(token: &[u8]) -> Option<f64> {
    let (negative, unsigned) = match token.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, token),
    };
    if unsigned.len() > 16 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut digits = 0;
    let mut point: Option<usize> = None;
    for &b in unsigned {
        if b.is_ascii_digit() {
            mantissa = mantissa * 10 + u64::from(b - b'0');
            digits += 1;
        } else if b == b'.' && point.is_none() {
            point = Some(digits);
        } else {
            return None;
        }
    }
    if digits == 0 || digits > 15 {
        return None;
    }
    let fraction_digits = point.map_or(0, |at| digits - at);
    let value = mantissa as f64 / POW10[fraction_digits];
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
    fn the_decimal_fast_path_agrees_with_the_general_parse() {
        for token in [
            "0",
            "-0",
            "7",
            "-42",
            "+42",
            "000123",
            "999999999999999",
            "-999999999999999",
            "925.069",
            "-469.067",
            "0.1",
            "-0.0",
            "5.",
            ".5",
            "+.5",
            "0.00000000000001",
            "99999999999999.9",
            "123456789.012345",
        ] {
            let general: f64 = token.parse().expect("decimal");
            assert_eq!(
                short_decimal(token.as_bytes()).map(f64::to_bits),
                Some(general.to_bits()),
                "{token}"
            );
        }
        for token in [
            "",
            "-",
            "+",
            ".",
            "-.",
            "1.5.",
            "1e3",
            "--1",
            "+-1",
            "1234567890123456",
            "1234567890.123456",
            "1_0",
            " 1",
            "Inf",
        ] {
            assert_eq!(short_decimal(token.as_bytes()), None, "{token}");
        }
    }

    proptest::proptest! {
        #[test]
        fn short_decimals_parse_as_the_general_parse(
            sign in proptest::sample::select(vec!["", "-", "+"]),
            int in "[0-9]{0,15}",
            frac in proptest::option::of("[0-9]{0,15}"),
        ) {
            let token = match &frac {
                Some(frac) => format!("{sign}{int}.{frac}"),
                None => format!("{sign}{int}"),
            };
            let general: Option<f64> = token.parse().ok();
            if let Some(fast) = short_decimal(token.as_bytes()) {
                proptest::prop_assert_eq!(Some(fast.to_bits()), general.map(f64::to_bits), "{}", token);
            }
            proptest::prop_assert_eq!(
                parse_go_float(token.as_bytes()).map(f64::to_bits),
                general.map(f64::to_bits),
                "{}",
                token
            );
        }
    }

    proptest::proptest! {
        /// The one-pass scan ends where `token_end` does and, when it
        /// answers, reads the value `parse_go_float` reads from the token.
        #[test]
        fn the_one_pass_value_scan_agrees_with_token_end_and_the_parse(
            prefix in "[ a]{0,2}",
            token in "[-+]?[0-9.]{0,18}|[-+0-9.eEinfINFaxp_]{0,8}",
            end in proptest::sample::select(vec!["", " ", "\t", "\n", " 123\n", "x", "\r\n"]),
        ) {
            let line = format!("{prefix}{token}{end}");
            let bytes = line.as_bytes();
            let from = prefix.len();
            if let Some((value_end, value)) = short_decimal_token(bytes, from) {
                proptest::prop_assert_eq!(value_end, token_end(bytes, from), "{:?}", line);
                proptest::prop_assert_eq!(
                    Some(value.to_bits()),
                    parse_go_float(&bytes[from..value_end]).map(f64::to_bits),
                    "{:?}",
                    line
                );
            }
        }
    }

    #[test]
    fn the_one_pass_value_scan_takes_short_decimals_only() {
        let scan = |text: &str| short_decimal_token(text.as_bytes(), 0);
        assert_eq!(scan("670487 1\n"), Some((6, 670487.0)));
        assert_eq!(scan("-1.5\n"), Some((4, -1.5)));
        assert_eq!(scan("+2\t"), Some((2, 2.0)));
        assert_eq!(scan("42"), Some((2, 42.0)));
        for general in [
            "1e3\n",
            "Inf\n",
            "NaN\n",
            "1234567890123456\n",
            "1\r\n",
            "-\n",
            "\n",
        ] {
            assert_eq!(scan(general), None, "{general:?}");
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
