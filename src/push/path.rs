//! The push URL grammar: percent-decoding and the grouping key.

use super::{GroupingKey, Rejection};

/// Percent-decodes a request path (once; `+` stays `+`).
pub fn decode_path(raw: &str) -> Result<Vec<u8>, Rejection> {
    Ok(percent_encoding::percent_decode_str(raw).collect())
}

/// Parses what follows `/metrics/` in a decoded push path: `job/<job>` or
/// `job@base64/<b64>`, then `/<label>/<value>` pairs.
pub fn parse_grouping_key(rest: &[u8]) -> Result<GroupingKey, Rejection> {
    let text =
        std::str::from_utf8(rest).map_err(|_| Rejection::bad_request("path is not valid UTF-8"))?;
    let mut parts = text.split('/');
    if parts.next() != Some("job") {
        return Err(Rejection::bad_request("job name is required"));
    }
    let job = parts.next().unwrap_or("").to_string();
    if job.is_empty() {
        return Err(Rejection::bad_request("job name is required"));
    }
    let rest: Vec<&str> = parts.collect();
    let mut pairs = vec![];
    for pair in rest.chunks(2) {
        if let [name, value] = pair {
            pairs.push((name.to_string(), value.to_string()));
        }
    }
    pairs.push(("job".to_string(), job));
    Ok(GroupingKey::new(pairs))
}
