//! Fuzzes the text parsers: no input may panic, and the syntax-only scan
//! must agree with the full parse on success and on the error message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pushrelay::exposition::text;

fuzz_target!(|body: &[u8]| {
    let parsed = text::parse(body);
    let counted = text::count_samples(body);
    assert_eq!(parsed.as_ref().err(), counted.as_ref().err());
    if let Ok(families) = &parsed {
        let metrics: usize = families.iter().map(|f| f.metric.len()).sum();
        // Summary/histogram lines fold into one metric per label set.
        assert!(metrics <= counted.unwrap_or(0));
    }
    let _ = text::parse_openmetrics(body);
});
