//! The text exposition format 0.0.4 parser (and OpenMetrics text).

use super::ParseError;
use crate::proto::client::MetricFamily;

/// Parses a text 0.0.4 body.
pub fn parse(_body: &[u8]) -> Result<Vec<MetricFamily>, ParseError> {
    Err(ParseError("text parser not built yet".into()))
}

/// Parses an OpenMetrics text body.
pub fn parse_openmetrics(_body: &[u8]) -> Result<Vec<MetricFamily>, ParseError> {
    Err(ParseError("OpenMetrics parser not built yet".into()))
}
