//! Go's `strconv.FormatFloat(v, 'g', -1, 64)`: how the Pushgateway prints
//! floats (`1e+06`, `1e-05`, `123456`, `+Inf`).
//!
//! Contract: the digits are the shortest decimal string that round-trips to
//! `v` (taken from `ryu`); the layout is Go's: with decimal exponent `X`
//! (value = `d.ddd × 10^X`), `X < -4 || X >= 6` prints `d.ddde±XX` (sign
//! always, at least two exponent digits), otherwise plain decimal. Special
//! values print as `NaN`, `+Inf`, `-Inf`; negative zero as `-0`.

use std::fmt::Write as _;

/// Formats `v` as Go's `%v` / `FormatFloat(v, 'g', -1, 64)` does.
pub fn format(v: f64) -> String {
    let mut out = String::with_capacity(24);
    write(&mut out, v);
    out
}

/// Appends `v`, formatted as [`format`] does, to `buf` without allocating
/// beyond `buf`'s own growth.
pub fn write(buf: &mut String, v: f64) {
    if v.is_nan() {
        buf.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        buf.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if v.is_sign_negative() {
        buf.push('-');
    }
    if v == 0.0 {
        buf.push('0');
        return;
    }
    let mut ryu_buf = ryu::Buffer::new();
    let shortest = ryu_buf.format_finite(v.abs());
    let (digits, exponent) = Decimal::from_ryu(shortest);
    let digits = &digits.bytes[..digits.len];
    if !(-4..6).contains(&exponent) {
        push_ascii(buf, &digits[..1]);
        if digits.len() > 1 {
            buf.push('.');
            push_ascii(buf, &digits[1..]);
        }
        buf.push('e');
        buf.push(if exponent < 0 { '-' } else { '+' });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            buf.push('0');
        }
        // Writing an integer into a String cannot fail.
        let _ = write!(buf, "{magnitude}");
    } else if exponent < 0 {
        buf.push_str("0.");
        for _ in 0..(-exponent - 1) {
            buf.push('0');
        }
        push_ascii(buf, digits);
    } else {
        let integer_digits = exponent as usize + 1;
        if digits.len() <= integer_digits {
            push_ascii(buf, digits);
            for _ in digits.len()..integer_digits {
                buf.push('0');
            }
        } else {
            push_ascii(buf, &digits[..integer_digits]);
            buf.push('.');
            push_ascii(buf, &digits[integer_digits..]);
        }
    }
}

fn push_ascii(buf: &mut String, digits: &[u8]) {
    for &d in digits {
        buf.push(char::from(d));
    }
}

/// Significant digits (no leading or trailing zeros) of a positive finite
/// float; at most 17 for an f64.
struct Decimal {
    bytes: [u8; 24],
    len: usize,
}

impl Decimal {
    /// Reads ryu's output (`123.45`, `0.0001`, `1e16`, `1.5e-7`) as digits
    /// plus the decimal exponent of the first digit.
    fn from_ryu(text: &str) -> (Self, i32) {
        let (mantissa, exp_part) = match text.split_once('e') {
            Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
            None => (text, 0),
        };
        let mut decimal = Decimal {
            bytes: [0; 24],
            len: 0,
        };
        // Position of the decimal point relative to the digits collected so
        // far, counting leading zeros that are dropped.
        let mut integer_len: i32 = 0;
        let mut seen_point = false;
        let mut leading_zeros_after_point: i32 = 0;
        for &b in mantissa.as_bytes() {
            match b {
                b'.' => seen_point = true,
                b'0' if decimal.len == 0 => {
                    if seen_point {
                        leading_zeros_after_point += 1;
                    }
                }
                _ => {
                    if decimal.len < decimal.bytes.len() {
                        decimal.bytes[decimal.len] = b;
                        decimal.len += 1;
                    }
                    if !seen_point {
                        integer_len += 1;
                    }
                }
            }
        }
        while decimal.len > 1 && decimal.bytes[decimal.len - 1] == b'0' {
            decimal.len -= 1;
        }
        let exponent = if integer_len > 0 {
            integer_len - 1 + exp_part
        } else {
            -leading_zeros_after_point - 1 + exp_part
        };
        (decimal, exponent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Printed by Go 1.x `strconv.FormatFloat(v, 'g', -1, 64)` on this
    /// machine (values given by their bit patterns so nothing is lost).
    const GO_TABLE: &[(u64, &str)] = &[
        (4696837146684686336, "1e+06"),
        (4683220244930494464, "123456"),
        (4728057454347157504, "1.23456789e+08"),
        (4532020583610935537, "1e-05"),
        (4547007122018943789, "0.0001"),
        (4681608360884174848, "100000"),
        (4921056587992461136, "1e+21"),
        (4712889646009286656, "1.2345678e+07"),
        (4591870180066957722, "0.1"),
        (13826050856027422720, "-0.5"),
        (1, "5e-324"),
        (9218868437227405311, "1.7976931348623157e+308"),
        (9221120237041090561, "NaN"),
        (9218868437227405312, "+Inf"),
        (18442240474082181120, "-Inf"),
        (9223372036854775808, "-0"),
        (0, "0"),
        (4607182418800017408, "1"),
        (4631107791820423168, "42"),
        (4614253070214989087, "3.14"),
        (4696837138094751744, "999999"),
        (4906019910204099648, "1e+20"),
        (6103021453049119613, "1e+100"),
        (4504762867522569078, "1.5e-07"),
        (4548686525128629352, "0.00012345"),
        (4683220293034128179, "123456.7"),
        (4698053240045751501, "1.2345678e+06"),
        (4537999922764202797, "2.5e-05"),
        (3110860544497550640, "1e-100"),
        (4745316897316810380, "1.795313196909091e+09"),
        (4636737291354636288, "100"),
        (4562254508917369340, "0.001"),
        (4950912855330343670, "1e+23"),
        (4503599627370496, "2.2250738585072014e-308"),
        (9094988921128908188, "1e+300"),
        (2489547715679921, "1.23e-308"),
    ];

    #[test]
    fn matches_go_format_float_table() {
        for &(bits, want) in GO_TABLE {
            let v = f64::from_bits(bits);
            assert_eq!(format(v), want, "bits {bits} ({v:?})");
        }
    }

    #[test]
    fn write_appends_to_existing_text() {
        let mut buf = String::from("x ");
        write(&mut buf, 1e6);
        write(&mut buf, -2.5);
        assert_eq!(buf, "x 1e+06-2.5");
    }

    proptest::proptest! {
        #[test]
        fn output_round_trips(bits in proptest::num::u64::ANY) {
            let v = f64::from_bits(bits);
            let text = format(v);
            let back: f64 = match text.as_str() {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                other => other.parse().expect("Go-style output parses"),
            };
            if v.is_nan() {
                proptest::prop_assert!(back.is_nan());
            } else {
                proptest::prop_assert_eq!(back.to_bits(), v.to_bits());
            }
            // Layout: an exponent always carries a sign and two digits.
            if let Some((_, exp)) = text.split_once('e') {
                proptest::prop_assert!(exp.starts_with('+') || exp.starts_with('-'));
                proptest::prop_assert!(exp.len() >= 3);
            }
        }
    }
}
