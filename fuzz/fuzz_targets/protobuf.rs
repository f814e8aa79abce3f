//! Fuzzes the delimited protobuf decoder: no input may panic, what decodes
//! re-encodes to a body that decodes to the same families (compared as
//! bytes, since NaN values never compare equal), and the forward path's
//! decode (`exposition::parse_body`: into the index when it can) gives the
//! owned decode's families or its error.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pushrelay::exposition::protobuf::{self, encode_delimited};
use pushrelay::exposition::{BodyFormat, parse_body, with_labels_sorted};

fuzz_target!(|body: &[u8]| {
    let decoded = protobuf::decode_delimited(body);
    if let Ok(families) = &decoded {
        let once = encode_delimited(families);
        let again = protobuf::decode_delimited(&once).expect("re-encoded body decodes");
        assert_eq!(encode_delimited(&again), once);
    }
    let parsed = parse_body(BodyFormat::ProtobufDelimited, Bytes::copy_from_slice(body));
    match (&parsed, &decoded) {
        // The index holds each metric's labels sorted by name.
        (Ok(parsed), Ok(owned)) => assert_eq!(
            encode_delimited(&with_labels_sorted(parsed.to_model().into_owned())),
            encode_delimited(&with_labels_sorted(owned.clone()))
        ),
        (parsed, owned) => assert_eq!(parsed.as_ref().err(), owned.as_ref().err()),
    }
});
