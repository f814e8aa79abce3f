//! Generated protobuf types (see `build.rs` and `proto/`).
//!
//! - [`client`]: the Prometheus client data model (`io.prometheus.client`),
//!   which is also pushrelay's in-memory metric model: the text parser
//!   produces it, the protobuf push decoder reads it, the cache stores it.
//! - [`prompb`]: the remote_write 1.0 wire types (`prometheus`).
//! - [`write_v2`]: the Remote-Write 2.0 wire types (`io.prometheus.write.v2`);
//!   the forwarder encodes them by hand (`forward::wire_v2`), these decode
//!   them in tests and in the encoder's own checks.

/// `io.prometheus.client`: MetricFamily, Metric, LabelPair, ...
#[allow(clippy::all, missing_docs)]
pub mod client {
    include!(concat!(env!("OUT_DIR"), "/io.prometheus.client.rs"));
}

impl client::LabelPair {
    /// A pair with both fields set (proto2 makes them optional).
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            value: Some(value.into()),
        }
    }
}

/// `prometheus`: WriteRequest, TimeSeries, Sample, MetricMetadata, ...
#[allow(clippy::all, missing_docs)]
pub mod prompb {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

/// `io.prometheus.write.v2`: Request, TimeSeries, Sample, Histogram, ...
#[allow(clippy::all, missing_docs)]
pub mod write_v2 {
    include!(concat!(env!("OUT_DIR"), "/io.prometheus.write.v2.rs"));
}
