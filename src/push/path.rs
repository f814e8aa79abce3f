//! The push URL grammar: percent-decoding, path cleaning and the grouping
//! key, exactly as the Pushgateway 1.5 reads them.
//!
//! Contract:
//! - [`decode_path`] percent-decodes the whole request path once, before
//!   any splitting (`%2F` is a separator, `+` stays `+`); a malformed escape
//!   is the HTTP server's `400 Bad Request`.
//! - [`clean_redirect`] says where the Pushgateway would 301-redirect a
//!   decoded path containing `//`, `.` or `..` elements.
//! - [`parse_grouping_key`] reads `job/<job>` or `job@base64/<b64>` and the
//!   `/<name>[@base64]/<value>` pairs after it into a [`GroupingKey`], with
//!   the Pushgateway's checks, their order and their exact 400 messages.
//!
//! One conscious divergence (docs/ingest-divergences.md, row 10): a decoded
//! job or label value that is not valid UTF-8 is refused with a 400, where
//! the Pushgateway accepts it and then fails every later push and scrape.

mod gocompat;

pub(crate) use crate::exposition::goquote::quote as go_quote;

use super::{GroupingKey, Rejection};

const BASE64_SUFFIX: &[u8] = b"@base64";

/// Percent-decodes a request path once (`+` stays `+`). A `%` not followed
/// by two hex digits is refused as Go's HTTP server refuses it.
pub fn decode_path(raw: &str) -> Result<Vec<u8>, Rejection> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|&h| char::from(h).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|&l| char::from(l).to_digit(16));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(Rejection::bad_request("400 Bad Request"));
            };
            // Two hex digits always fit a byte.
            decoded.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            decoded.push(b);
            i += 1;
        }
    }
    Ok(decoded)
}

/// Where the Pushgateway (Go `net/http`) would redirect with 301 a decoded
/// path that contains `//`, `/./`, `/../` or ends in `/.` or `/..`: the
/// cleaned path, percent-encoded as Go writes it into `Location` (append
/// `?<query>` if the request had one). `None` when the path is already clean.
pub fn clean_redirect(decoded: &[u8]) -> Option<String> {
    let cleaned = gocompat::clean_path(decoded);
    (cleaned != decoded).then(|| gocompat::escape_path(&cleaned))
}

/// Parses what follows `/metrics/` in a decoded push path: `job/<job>` or
/// `job@base64/<b64>`, then `/<label>/<value>` pairs.
///
/// The checks run in the Pushgateway's order: a base64 job, then the label
/// string, then the empty job; a repeated label keeps its last value and a
/// `job` pair in the label part is overridden by the job.
pub fn parse_grouping_key(rest: &[u8]) -> Result<GroupingKey, Rejection> {
    let (job_is_base64, after_prefix) = if let Some(r) = rest.strip_prefix(b"job/") {
        (false, r)
    } else if let Some(r) = rest.strip_prefix(b"job@base64/") {
        (true, r)
    } else {
        return Err(Rejection::bad_request("job name is required"));
    };
    let (raw_job, label_string) = match after_prefix.iter().position(|&b| b == b'/') {
        Some(slash) => after_prefix.split_at(slash),
        None => (after_prefix, &b""[..]),
    };
    let job = if job_is_base64 {
        gocompat::decode_base64(raw_job).map_err(|e| {
            Rejection::bad_request(format!(
                "invalid base64 encoding in job name {}: {e}",
                go_quote(&e.partial)
            ))
        })?
    } else {
        raw_job.to_vec()
    };
    let labels = split_labels(label_string)?;
    if job.is_empty() {
        return Err(Rejection::bad_request("job name is required"));
    }
    let job = String::from_utf8(job).map_err(|e| {
        Rejection::bad_request(format!(
            "job name {} is not valid UTF-8 (pushrelay refuses it; the Pushgateway would \
             store it and then fail every push and scrape)",
            go_quote(e.as_bytes())
        ))
    })?;
    let mut pairs = Vec::with_capacity(labels.len() + 1);
    for (name, value) in labels {
        let value = String::from_utf8(value).map_err(|e| {
            Rejection::bad_request(format!(
                "value of label {name} is not valid UTF-8: {} (pushrelay refuses it; the \
                 Pushgateway would store it and then fail every push and scrape)",
                go_quote(e.as_bytes())
            ))
        })?;
        pairs.push((name, value));
    }
    pairs.push(("job".to_string(), job));
    Ok(GroupingKey::new(pairs))
}

/// The label string after the job (`""`, `"/"` or `"/<n>/<v>..."`) as
/// (name, decoded value) pairs in URL order.
fn split_labels(label_string: &[u8]) -> Result<Vec<(String, Vec<u8>)>, Rejection> {
    if label_string.len() <= 1 {
        return Ok(Vec::new());
    }
    let components: Vec<&[u8]> = label_string[1..].split(|&b| b == b'/').collect();
    if !components.len().is_multiple_of(2) {
        return Err(Rejection::bad_request(format!(
            "odd number of components in label string {}",
            go_quote(label_string)
        )));
    }
    let mut labels = Vec::with_capacity(components.len() / 2);
    for pair in components.chunks_exact(2) {
        let (raw_name, raw_value) = (pair[0], pair[1]);
        let trimmed = raw_name.strip_suffix(BASE64_SUFFIX);
        let name = trimmed.unwrap_or(raw_name);
        let valid_name = std::str::from_utf8(name)
            .ok()
            .filter(|n| is_legacy_label_name(n) && !n.starts_with("__"));
        let Some(name) = valid_name else {
            return Err(Rejection::bad_request(format!(
                "improper label name {}",
                go_quote(name)
            )));
        };
        let value = if trimmed.is_some() {
            gocompat::decode_base64(raw_value).map_err(|e| {
                Rejection::bad_request(format!(
                    "invalid base64 encoding for label {name}={}: {e}",
                    go_quote(raw_value)
                ))
            })?
        } else {
            raw_value.to_vec()
        };
        labels.push((name.to_string(), value));
    }
    Ok(labels)
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`: a label name as Prometheus' legacy scheme
/// (`model.LabelNameRE`) defines it.
pub(crate) fn is_legacy_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Runs a request path (as sent on the wire, after `/metrics/`) through
    /// decoding and parsing like the server does.
    fn parse(path: &str) -> Result<GroupingKey, Rejection> {
        parse_grouping_key(&decode_path(path)?)
    }

    fn key(pairs: &[(&str, &str)]) -> GroupingKey {
        GroupingKey::new(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())))
    }

    #[test]
    fn reference_examples_are_parsed_as_the_pushgateway_does() {
        // The grouping-key examples of the Pushgateway's documentation that
        // reach the push handler, plus other paths probed on a Pushgateway
        // 1.5.1.
        let accepted: &[(&str, &[(&str, &str)])] = &[
            ("job/some_job", &[("job", "some_job")]),
            ("job@base64/YS9i", &[("job", "a/b")]),
            ("job@base64/YS9i===", &[("job", "a/b")]),
            ("job/j+7/p/a%20b", &[("job", "j+7"), ("p", "a b")]),
            (
                "job/j/first@base64/=/second/x",
                &[("job", "j"), ("first", ""), ("second", "x")],
            ),
            ("job/j/e@base64/L3gveQ==", &[("job", "j"), ("e", "/x/y")]),
            ("job/j/e@base64/L3gveQ", &[("job", "j"), ("e", "/x/y")]),
            ("job/x/", &[("job", "x")]),
            ("job/j/a/1/a/2", &[("job", "j"), ("a", "2")]),
            ("job/j/job/other", &[("job", "j")]),
            ("job/j/a@base64/YW%0AJj", &[("job", "j"), ("a", "abc")]),
            ("job/j/a@base64/YR", &[("job", "j"), ("a", "a")]),
            ("job/j/a/%3D", &[("job", "j"), ("a", "=")]),
            ("job/j/b/2/a/1", &[("job", "j"), ("a", "1"), ("b", "2")]),
            (
                "job/j/a/1/instance/i",
                &[("job", "j"), ("a", "1"), ("instance", "i")],
            ),
        ];
        for (path, want) in accepted {
            assert_eq!(parse(path), Ok(key(want)), "{path}");
        }
        let refused: &[(&str, &str)] = &[
            (
                "job/j/instance",
                r#"odd number of components in label string "/instance""#,
            ),
            ("job/j/__x/y", r#"improper label name "__x""#),
            ("job/j/a-b/y", r#"improper label name "a-b""#),
            ("job/j/1a/y", r#"improper label name "1a""#),
            ("job/j/@base64/2", r#"improper label name """#),
            (
                "job/j/a@base64@base64/x",
                r#"improper label name "a@base64""#,
            ),
            ("job/j/a%22b/x", r#"improper label name "a\"b""#),
            ("job/j/a%0Ab/x", r#"improper label name "a\nb""#),
            ("job/j/a%FFb/x", r#"improper label name "a\xffb""#),
            ("job/j/a%C3%A9/x", "improper label name \"aé\""),
            ("job@base64/=", "job name is required"),
            ("job/", "job name is required"),
            (
                "job/j%2F6/p/q",
                r#"odd number of components in label string "/6/p/q""#,
            ),
            (
                "job/j%FF/x/y/z",
                r#"odd number of components in label string "/x/y/z""#,
            ),
            (
                "job/j/e@base64/L3gve+",
                r#"invalid base64 encoding for label e="L3gve+": illegal base64 data at input byte 5"#,
            ),
            (
                "job/j5/x/y/",
                r#"odd number of components in label string "/x/y/""#,
            ),
            (
                "job/j/a@base64/L",
                r#"invalid base64 encoding for label a="L": illegal base64 data at input byte 0"#,
            ),
            (
                "job/j/a@base64/YQ=Y",
                r#"invalid base64 encoding for label a="YQ=Y": illegal base64 data at input byte 2"#,
            ),
            (
                "job/j/a@base64/Y%0A",
                r#"invalid base64 encoding for label a="Y\n": illegal base64 data at input byte 1"#,
            ),
            (
                "job/j/a@base64/%FF",
                r#"invalid base64 encoding for label a="\xff": illegal base64 data at input byte 0"#,
            ),
            (
                "job/j/a@base64/YWJjZGVm%2B",
                r#"invalid base64 encoding for label a="YWJjZGVm+": illegal base64 data at input byte 8"#,
            ),
            (
                "job/j/x/%FF%00%07%22%5C%C2%A0%E2%80%8B%CC%81/x",
                "odd number of components in label string \
                 \"/x/\\xff\\x00\\a\\\"\\\\\\u00a0\\u200b\u{301}/x\"",
            ),
            (
                "job@base64/L",
                r#"invalid base64 encoding in job name "": illegal base64 data at input byte 0"#,
            ),
            (
                "job@base64/L3gve+",
                r#"invalid base64 encoding in job name "/x/": illegal base64 data at input byte 5"#,
            ),
            // A base64 job error comes before label errors; an empty job
            // only after them.
            (
                "job@base64/L/a",
                r#"invalid base64 encoding in job name "": illegal base64 data at input byte 0"#,
            ),
            (
                "job@base64/=/a",
                r#"odd number of components in label string "/a""#,
            ),
        ];
        for (path, want) in refused {
            assert_eq!(parse(path), Err(Rejection::bad_request(*want)), "{path}");
        }
    }

    #[test]
    fn invalid_utf8_in_grouping_values_is_refused_naming_the_divergence() {
        for (path, start) in [
            ("job/j%FF", r#"job name "j\xff" is not valid UTF-8"#),
            ("job@base64/_w", r#"job name "\xff" is not valid UTF-8"#),
            (
                "job/j/e@base64/L3gve_-",
                r#"value of label e is not valid UTF-8: "/x/{\xff""#,
            ),
            (
                "job/j/e/%C3",
                r#"value of label e is not valid UTF-8: "\xc3""#,
            ),
        ] {
            let err = parse(path).unwrap_err();
            assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
            assert!(err.message.starts_with(start), "{path}: {}", err.message);
            assert!(err.message.contains("Pushgateway"), "{}", err.message);
        }
    }

    #[test]
    fn decoding_happens_once_on_the_whole_path() {
        assert_eq!(decode_path("/a%2Fb+c%20d%25"), Ok(b"/a/b+c d%".to_vec()));
        assert_eq!(decode_path("/%2f%c3%a9"), Ok("//é".as_bytes().to_vec()));
        assert_eq!(decode_path("/%252F"), Ok(b"/%2F".to_vec()));
        for bad in ["/metrics/job/%%%", "/a%", "/a%2", "/a%g0", "/a%0g"] {
            assert_eq!(
                decode_path(bad),
                Err(Rejection::bad_request("400 Bad Request")),
                "{bad}"
            );
        }
    }

    #[test]
    fn clean_redirect_matches_the_pushgateway_301_locations() {
        // (request path as sent, Location observed on the Pushgateway 1.5.1)
        let cases: &[(&str, Option<&str>)] = &[
            ("/metrics/job/j/p/%2Fx%2Fy", Some("/metrics/job/j/p/x/y")),
            ("/metrics/job/j/x//y", Some("/metrics/job/j/x/y")),
            ("/metrics/job/j/./a/b", Some("/metrics/job/j/a/b")),
            ("/metrics/job/j/../a/b", Some("/metrics/job/a/b")),
            ("/metrics/job/j/a/.", Some("/metrics/job/j/a")),
            ("/metrics/job/j/a/..", Some("/metrics/job/j")),
            ("/metrics/job/j/x/%2E%2E", Some("/metrics/job/j")),
            ("/metrics/job/j/./", Some("/metrics/job/j/")),
            ("/metrics/job/j/a/../../../../x", Some("/x")),
            (
                "/metrics/job/j/a%20b//x/y%3Fz%25%FF%C3%A9~!*()",
                Some("/metrics/job/j/a%20b/x/y%3Fz%25%FF%C3%A9~%21%2A%28%29"),
            ),
            ("/metrics/job/x/", None),
            ("/metrics/job/j/a/b", None),
            ("/metrics/job/j/a.b/..c", None),
            ("/metrics/job/", None),
        ];
        for (raw, want) in cases {
            let decoded = decode_path(raw).unwrap();
            assert_eq!(clean_redirect(&decoded).as_deref(), *want, "{raw}");
        }
    }

    /// Renders a key as a push path with every value base64-encoded, as
    /// the Go client does for values containing `/`.
    fn render_base64(key: &GroupingKey) -> String {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE;
        let mut path = format!("job@base64/{}", engine.encode(key.job()));
        if key.job().is_empty() {
            path.push('=');
        }
        for (name, value) in key.labels().iter().filter(|(n, _)| n != "job") {
            let encoded = engine.encode(value);
            let encoded = if encoded.is_empty() {
                "=".into()
            } else {
                encoded
            };
            path.push_str(&format!("/{name}@base64/{encoded}"));
        }
        path
    }

    proptest! {
        #[test]
        fn arbitrary_paths_never_panic(raw in ".{0,64}", bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_path(&raw);
            let _ = clean_redirect(&bytes);
            let _ = parse_grouping_key(&bytes);
            let mut prefixed = b"job/".to_vec();
            prefixed.extend_from_slice(&bytes);
            let _ = parse_grouping_key(&prefixed);
            let mut prefixed = b"job@base64/".to_vec();
            prefixed.extend_from_slice(&bytes);
            let _ = parse_grouping_key(&prefixed);
        }

        #[test]
        fn a_key_rendered_with_base64_values_parses_back(
            job in "\\PC{1,12}",
            labels in proptest::collection::vec(("[a-zA-Z][a-zA-Z0-9_]{0,8}", "\\PC{0,12}"), 0..5),
        ) {
            let key = GroupingKey::new(
                labels.into_iter().chain([("job".to_string(), job)]),
            );
            let path = render_base64(&key);
            prop_assert_eq!(parse_grouping_key(path.as_bytes()), Ok(key.clone()));
            // The same path percent-encoded the way clients send it.
            let encoded = percent_encoding::utf8_percent_encode(&path, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
            prop_assert_eq!(parse(&encoded), Ok(key));
        }
    }
}
