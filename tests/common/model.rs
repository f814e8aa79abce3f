//! Metrics built by hand in the client data model, for tests that push
//! protobuf bodies.

use pushrelay::proto::client::{Counter, Gauge, LabelPair, Metric};

/// A gauge metric with these labels.
pub fn gauge(labels: &[(&str, &str)], value: f64) -> Metric {
    Metric {
        label: labels.iter().map(|&(n, v)| LabelPair::new(n, v)).collect(),
        gauge: Some(Gauge { value: Some(value) }),
        ..Default::default()
    }
}

/// A counter metric without labels.
pub fn counter(value: f64) -> Metric {
    Metric {
        counter: Some(Counter {
            value: Some(value),
            ..Default::default()
        }),
        ..Default::default()
    }
}
