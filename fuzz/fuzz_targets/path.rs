//! Fuzzes the push URL grammar: percent-decoding, the 301 cleaning and the
//! grouping key parser must never panic, and every key they accept must be
//! well formed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pushrelay::push::GroupingKey;
use pushrelay::push::path;

fn check_key(key: &GroupingKey) {
    assert!(!key.job().is_empty(), "accepted a key without a job");
    let names: Vec<&str> = key.labels().iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "labels not sorted and unique: {names:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    // The input as a request path, the way the server sees it.
    if let Ok(raw) = std::str::from_utf8(data) {
        if let Ok(decoded) = path::decode_path(raw) {
            if let Some(location) = path::clean_redirect(&decoded) {
                let cleaned = path::decode_path(&location).expect("Location must decode");
                assert_eq!(path::clean_redirect(&cleaned), None, "cleaning is idempotent");
            }
            if let Some(rest) = decoded.strip_prefix(b"/metrics/") {
                if let Ok(key) = path::parse_grouping_key(rest) {
                    check_key(&key);
                }
            }
        }
    }
    // The input as an already decoded grouping path.
    if let Ok(key) = path::parse_grouping_key(data) {
        check_key(&key);
    }
});
