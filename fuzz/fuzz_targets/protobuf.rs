//! Fuzzes the delimited protobuf decoder: no input may panic, and what
//! decodes re-encodes to a body that decodes to the same families (compared
//! as bytes, since NaN values never compare equal).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use pushrelay::exposition::protobuf;
use pushrelay::proto::client::MetricFamily;

fn encode(families: &[MetricFamily]) -> Vec<u8> {
    let mut out = Vec::new();
    for family in families {
        family
            .encode_length_delimited(&mut out)
            .expect("Vec grows as needed");
    }
    out
}

fuzz_target!(|body: &[u8]| {
    if let Ok(families) = protobuf::decode_delimited(body) {
        let once = encode(&families);
        let again = protobuf::decode_delimited(&once).expect("re-encoded body decodes");
        assert_eq!(encode(&again), once);
    }
});
