//! The metric model and its formats.
//!
//! The model is the Prometheus client data model
//! ([`crate::proto::client::MetricFamily`]): the text parser produces it, the
//! protobuf push decoder reads it, the cache stores it. This module picks the
//! parser for a request's `Content-Type`.

pub(crate) mod gofloat;
pub(crate) mod goquote;
pub mod protobuf;
pub mod text;

use crate::proto::client::MetricFamily;

/// A body that could not be parsed; `Display` is the message the pusher gets
/// (worded as the Pushgateway words it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// The body formats a push can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// Text exposition format 0.0.4 (the default, as in the Pushgateway).
    Text,
    /// OpenMetrics text (`application/openmetrics-text`).
    OpenMetrics,
    /// Varint-length-delimited `io.prometheus.client.MetricFamily` messages.
    ProtobufDelimited,
}

impl BodyFormat {
    /// The format a `Content-Type` header asks for. Anything unknown is text,
    /// as the Pushgateway treats it.
    pub fn from_content_type(content_type: Option<&str>) -> Self {
        let Some(value) = content_type else {
            return Self::Text;
        };
        let mut parts = value.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        match media.as_str() {
            "application/vnd.google.protobuf" => {
                let params: Vec<(String, String)> = parts
                    .filter_map(|p| p.split_once('='))
                    .map(|(k, v)| {
                        (
                            k.trim().to_ascii_lowercase(),
                            v.trim().trim_matches('"').to_string(),
                        )
                    })
                    .collect();
                let param = |name: &str| {
                    params
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.as_str())
                };
                if param("proto") == Some("io.prometheus.client.MetricFamily")
                    && param("encoding") == Some("delimited")
                {
                    Self::ProtobufDelimited
                } else {
                    Self::Text
                }
            }
            "application/openmetrics-text" => Self::OpenMetrics,
            _ => Self::Text,
        }
    }
}

/// Parses a whole body in `format`.
pub fn parse(format: BodyFormat, body: &[u8]) -> Result<Vec<MetricFamily>, ParseError> {
    match format {
        BodyFormat::Text => text::parse(body),
        BodyFormat::OpenMetrics => text::parse_openmetrics(body),
        BodyFormat::ProtobufDelimited => protobuf::decode_delimited(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_pick_the_parser() {
        let go = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";
        assert_eq!(
            BodyFormat::from_content_type(Some(go)),
            BodyFormat::ProtobufDelimited
        );
        assert_eq!(
            BodyFormat::from_content_type(Some("text/plain; version=0.0.4; charset=utf-8")),
            BodyFormat::Text
        );
        assert_eq!(
            BodyFormat::from_content_type(Some("application/openmetrics-text; version=1.0.0")),
            BodyFormat::OpenMetrics
        );
        assert_eq!(BodyFormat::from_content_type(None), BodyFormat::Text);
        assert_eq!(
            BodyFormat::from_content_type(Some(
                "application/vnd.google.protobuf; proto=other; encoding=delimited"
            )),
            BodyFormat::Text
        );
    }
}
