//! The text exposition formats: Prometheus text 0.0.4 (what the Pushgateway
//! accepts) and OpenMetrics 1.0 text.
//!
//! Contract: [`parse`] accepts exactly what the Pushgateway 1.5.1 text
//! parser (Go `expfmt.TextParser`) accepts, produces the same families
//! (order: first seen; empty families dropped) and fails with the same
//! `text format parsing error in line N: …` messages. It never panics on
//! any input.

mod goquote;
mod parser;
mod scan;
#[cfg(test)]
mod tests;

use super::ParseError;
use crate::proto::client::MetricFamily;

/// Parses a text 0.0.4 body.
pub fn parse(body: &[u8]) -> Result<Vec<MetricFamily>, ParseError> {
    parser::Parser::new(body).run()
}

/// Parses an OpenMetrics text body.
pub fn parse_openmetrics(_body: &[u8]) -> Result<Vec<MetricFamily>, ParseError> {
    Err(ParseError("OpenMetrics parser not built yet".into()))
}
