//! Fuzzes the text parsers: no input may panic, the syntax-only scan must
//! agree with the full parse on success and on the error message, and the
//! forward path's parse (`exposition::parse_body`: an index into the body)
//! must give the owned parse's families or its error, for text 0.0.4 and
//! OpenMetrics alike.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pushrelay::exposition::{BodyFormat, parse_body, text, with_labels_sorted};

fuzz_target!(|body: &[u8]| {
    let parsed = text::parse(body);
    let counted = text::count_samples(body);
    assert_eq!(parsed.as_ref().err(), counted.as_ref().err());
    if let Ok(families) = &parsed {
        let metrics: usize = families.iter().map(|f| f.metric.len()).sum();
        // Summary/histogram lines fold into one metric per label set.
        assert!(metrics <= counted.unwrap_or(0));
    }
    let openmetrics = text::parse_openmetrics(body);
    for (format, owned) in [
        (BodyFormat::Text, parsed),
        (BodyFormat::OpenMetrics, openmetrics),
    ] {
        let indexed = parse_body(format, Bytes::copy_from_slice(body));
        match (&indexed, &owned) {
            // Compared as printed: a NaN value is not equal to itself.
            // The index holds each metric's labels sorted by name.
            (Ok(indexed), Ok(owned)) => assert_eq!(
                format!("{:?}", with_labels_sorted(indexed.to_model().into_owned())),
                format!("{:?}", with_labels_sorted(owned.clone()))
            ),
            (indexed, owned) => assert_eq!(indexed.as_ref().err(), owned.as_ref().err()),
        }
    }
});
