//! The metric model and its formats.
//!
//! The model is the Prometheus client data model
//! ([`crate::proto::client::MetricFamily`]): the text parser produces it, the
//! protobuf push decoder reads it, the cache stores it. A push's body is
//! parsed into [`Families`]: for text and OpenMetrics, an index into the
//! kept body ([`index`]) that the forward path reads without a heap
//! allocation per series; for protobuf, an index of the decoded values;
//! else (bodies the index cannot hold) owned families. This module picks
//! the parser for a request's `Content-Type`.

pub(crate) mod gofloat;
pub(crate) mod goquote;
pub mod index;
pub mod protobuf;
pub mod text;

use std::borrow::Cow;

use bytes::Bytes;

use crate::proto::client::{LabelPair, Metric, MetricFamily};
use index::IndexedBody;

/// The families of a parsed push.
#[derive(Clone, Debug, PartialEq)]
pub enum Families {
    /// Owned families: bodies the index does not hold, and pushes built in
    /// code.
    Owned(Vec<MetricFamily>),
    /// A text or OpenMetrics body and its index, or a protobuf body's
    /// index.
    Indexed(IndexedBody),
}

impl Default for Families {
    fn default() -> Self {
        Self::Owned(Vec::new())
    }
}

impl From<Vec<MetricFamily>> for Families {
    fn from(families: Vec<MetricFamily>) -> Self {
        Self::Owned(families)
    }
}

impl Families {
    /// The families as owned values (built from the index when indexed).
    pub fn to_model(&self) -> Cow<'_, [MetricFamily]> {
        match self {
            Self::Owned(families) => Cow::Borrowed(families),
            Self::Indexed(indexed) => Cow::Owned(indexed.to_families()),
        }
    }

    /// The families as owned values to change (the push keeps them owned
    /// from then on).
    pub fn to_mut(&mut self) -> &mut Vec<MetricFamily> {
        if let Self::Indexed(indexed) = self {
            *self = Self::Owned(indexed.to_families());
        }
        match self {
            Self::Owned(families) => families,
            Self::Indexed(_) => unreachable!("made owned above"),
        }
    }

    /// The number of metrics of all families.
    pub fn metric_count(&self) -> usize {
        match self {
            Self::Owned(families) => families.iter().map(|f| f.metric.len()).sum(),
            Self::Indexed(indexed) => indexed.metric_count(),
        }
    }

    /// Whether there are no families.
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Owned(families) => families.is_empty(),
            Self::Indexed(indexed) => indexed.families().is_empty(),
        }
    }
}

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

/// Parses a whole body in `format` into the index when it can (see
/// [`index`]: a text or OpenMetrics body is kept and indexed, a protobuf
/// body decoded into an index), else into owned families.
pub fn parse_body(format: BodyFormat, body: Bytes) -> Result<Families, ParseError> {
    let index = match format {
        BodyFormat::Text => text::parse_index,
        BodyFormat::OpenMetrics => text::parse_openmetrics_index,
        BodyFormat::ProtobufDelimited => {
            return match protobuf::decode_index(&body) {
                Some(index) => Ok(Families::Indexed(IndexedBody::new(String::new(), index))),
                None => protobuf::decode_delimited(&body).map(Families::Owned),
            };
        }
    };
    // Without a copy when the body is the only handle on its buffer.
    match String::from_utf8(Vec::from(body)) {
        Ok(text) => match index(&text)? {
            Some(index) => Ok(Families::Indexed(IndexedBody::new(text, index))),
            None => parse(format, text.as_bytes()).map(Families::Owned),
        },
        Err(not_utf8) => parse(format, not_utf8.as_bytes()).map(Families::Owned),
    }
}

/// Sorts each of `metric`'s labels by name, stably (a repeated name keeps
/// its order): the order validation gives the owned model, and the order
/// the index holds them in.
pub fn sort_labels(metric: &mut Metric) {
    let by_name = |a: &LabelPair, b: &LabelPair| a.name().cmp(b.name());
    if !metric.label.is_sorted_by(|a, b| by_name(a, b).is_le()) {
        metric.label.sort_by(by_name);
    }
}

/// `families` with each metric's labels sorted by name (see
/// [`sort_labels`]): the owned model as the index holds it, for comparing
/// the two.
pub fn with_labels_sorted(mut families: Vec<MetricFamily>) -> Vec<MetricFamily> {
    families
        .iter_mut()
        .flat_map(|f| f.metric.iter_mut())
        .for_each(sort_labels);
    families
}

/// Parses a whole body in `format` into owned families.
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
