//! Go's `strconv.FormatFloat(v, 'g', -1, 64)`: how the Pushgateway prints
//! floats (`1e+06`, `1e-05`, `123456`, `+Inf`).

/// Formats `v` as Go's `%v` / `FormatFloat(v, 'g', -1, 64)` does.
pub fn format(v: f64) -> String {
    // PLACEHOLDER until the exposition helper lands: Rust's shortest
    // round-trip Display.
    v.to_string()
}
