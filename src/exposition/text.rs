//! The text exposition formats: Prometheus text 0.0.4 (what the Pushgateway
//! accepts) and OpenMetrics 1.0 text.
//!
//! Contract: [`parse`] accepts exactly what the Pushgateway 1.5.1 text
//! parser (Go `expfmt.TextParser`) accepts, produces the same families
//! (order: first seen; empty families dropped) and fails with the same
//! `text format parsing error in line N: …` messages.
//! [`parse_openmetrics`] reads OpenMetrics 1.0 (which the Pushgateway does
//! not parse) into the same model. Neither panics on any input.

#[cfg(test)]
mod om_tests;
mod openmetrics;
mod parser;
mod scan;
#[cfg(test)]
mod tests;

use super::ParseError;
use crate::proto::client::MetricFamily;

/// Parses a text 0.0.4 body.
pub fn parse(body: &[u8]) -> Result<Vec<MetricFamily>, ParseError> {
    parser::Parser::new(body, true).run()
}

/// Checks a text 0.0.4 body exactly as [`parse`] does (same errors) without
/// building the model; returns the number of sample lines. Cheap enough to
/// enforce a series limit before paying for the model.
pub fn count_samples(body: &[u8]) -> Result<usize, ParseError> {
    parser::Parser::new(body, false).count()
}

/// Parses an OpenMetrics 1.0 text body (see the `openmetrics` module for
/// how its types map onto the model).
pub fn parse_openmetrics(body: &[u8]) -> Result<Vec<MetricFamily>, ParseError> {
    openmetrics::parse(body)
}
