//! Generated protobuf types (see `build.rs` and `proto/`).
//!
//! - [`client`]: the Prometheus client data model (`io.prometheus.client`),
//!   which is also pushrelay's in-memory metric model: the text parser
//!   produces it, the protobuf push decoder reads it, the cache stores it.
//! - [`prompb`]: the remote_write 1.0 wire types (`prometheus`).

/// `io.prometheus.client`: MetricFamily, Metric, LabelPair, ...
#[allow(clippy::all, missing_docs)]
pub mod client {
    include!(concat!(env!("OUT_DIR"), "/io.prometheus.client.rs"));
}

/// `prometheus`: WriteRequest, TimeSeries, Sample, MetricMetadata, ...
#[allow(clippy::all, missing_docs)]
pub mod prompb {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}
