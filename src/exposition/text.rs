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
#[cfg(test)]
mod property_tests;
mod scan;
#[cfg(test)]
mod tests;

use super::ParseError;
use super::index::{MAX_INDEXED_BODY, TextIndex};
use crate::proto::client::MetricFamily;
use parser::Build;
pub(crate) use scan::go_float_to_u64;

/// Parses a text 0.0.4 body.
pub fn parse(body: &[u8]) -> Result<Vec<MetricFamily>, ParseError> {
    parser::Parser::new(body, Build::Families).run()
}

/// Parses a text 0.0.4 body into an index into it (the forward path's
/// model), with the same errors as [`parse`]; `Ok(None)` when the body
/// needs the owned model (see `exposition::index`), which [`parse`] gives.
pub fn parse_index(body: &str) -> Result<Option<TextIndex>, ParseError> {
    if body.len() > MAX_INDEXED_BODY {
        return Ok(None);
    }
    parser::Parser::indexing(body).run_index()
}

/// Checks a text 0.0.4 body exactly as [`parse`] does (same errors) without
/// building the model; returns the number of sample lines. Cheap enough to
/// enforce a series limit before paying for the model.
pub fn count_samples(body: &[u8]) -> Result<usize, ParseError> {
    parser::Parser::new(body, Build::Nothing).count()
}

/// Parses an OpenMetrics 1.0 text body (see the `openmetrics` module for
/// how its types map onto the model).
pub fn parse_openmetrics(body: &[u8]) -> Result<Vec<MetricFamily>, ParseError> {
    openmetrics::parse(body)
}

/// Parses an OpenMetrics 1.0 text body into an index into it, with the
/// same errors as [`parse_openmetrics`]; `Ok(None)` when the body needs the
/// owned model (see `openmetrics::indexed`), which [`parse_openmetrics`]
/// gives.
pub fn parse_openmetrics_index(body: &str) -> Result<Option<TextIndex>, ParseError> {
    if body.len() > MAX_INDEXED_BODY {
        return Ok(None);
    }
    openmetrics::parse_index(body)
}
