//! The push handler: runs the ingest pipeline for one request and hands the
//! resulting [`Push`] to the sinks. It stays thin: each step lives in its
//! own module. The push's tenant is resolved from the grouping key and the
//! request headers by ingest's [`TenantPolicy`] before the body is read, so
//! a push without a required tenant is refused (400) cheaply; then the
//! sinks admit the push ([`PushSink::admit`]), also before the body, so a
//! push shed for a full queue (429) costs neither reading nor parsing it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};

use super::body::{self, BodyLimits};
use super::tenant::TenantPolicy;
use super::{GroupingKey, Push, PushOp, PushSink, Rejection, SinkError, path};
use crate::config::PushConfig;
use crate::exposition::{BodyFormat, Families};
use crate::http_response::header_str;
use crate::telemetry;

/// What a push is checked against.
#[derive(Clone, Debug)]
pub struct Ingest {
    config: PushConfig,
    /// `None` when no sink writes tenants (no forwarder): pushes then have
    /// no tenant, whatever they send.
    tenancy: Option<Arc<TenantPolicy>>,
}

/// A push that did not succeed: the status, the message for the pusher, and
/// when to come back (503/429).
#[derive(Debug, Clone, PartialEq)]
pub struct PushFailure {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl From<Rejection> for PushFailure {
    fn from(r: Rejection) -> Self {
        Self {
            status: r.status,
            message: r.message,
            retry_after: None,
        }
    }
}

impl From<SinkError> for PushFailure {
    fn from(e: SinkError) -> Self {
        match e {
            SinkError::Rejected(message) => Self {
                status: StatusCode::BAD_REQUEST,
                message,
                retry_after: None,
            },
            SinkError::Unavailable {
                message,
                retry_after,
            } => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message,
                retry_after: Some(retry_after),
            },
            SinkError::Overloaded {
                message,
                retry_after,
            } => Self {
                status: StatusCode::TOO_MANY_REQUESTS,
                message,
                retry_after: Some(retry_after),
            },
        }
    }
}

impl Ingest {
    /// Ingest checking pushes against `config` and resolving their tenant
    /// with `tenancy` (the policy the forwarder sends with).
    pub fn new(config: PushConfig, tenancy: Option<Arc<TenantPolicy>>) -> Self {
        Self { config, tenancy }
    }

    /// Handles a push request whose decoded path after `/metrics/` is
    /// `grouping_path`, handing the push to `sinks`. Returns the sinks'
    /// success status (200, or 202 for DELETE).
    pub async fn handle<S, B>(
        &self,
        sinks: &S,
        op: PushOp,
        grouping_path: &[u8],
        headers: &HeaderMap,
        body: B,
    ) -> Result<StatusCode, PushFailure>
    where
        S: PushSink,
        B: http_body::Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let started = Instant::now();
        let method_label = match op {
            PushOp::Replace => "put",
            PushOp::Merge => "post",
            PushOp::Delete => "delete",
        };
        let outcome = self.run(sinks, op, grouping_path, headers, body).await;
        let code = match &outcome {
            Ok(status) => *status,
            Err(failure) => failure.status,
        };
        metrics::counter!(telemetry::PUSHES, "method" => method_label, "code" => code.as_str().to_string())
            .increment(1);
        metrics::histogram!(telemetry::PUSH_DURATION, "method" => method_label)
            .record(started.elapsed().as_secs_f64());
        outcome
    }

    async fn run<S, B>(
        &self,
        sinks: &S,
        op: PushOp,
        grouping_path: &[u8],
        headers: &HeaderMap,
        body: B,
    ) -> Result<StatusCode, PushFailure>
    where
        S: PushSink,
        B: http_body::Body<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let received_at = SystemTime::now();
        let key: GroupingKey = path::parse_grouping_key(grouping_path)?;
        let tenant = match &self.tenancy {
            Some(policy) => policy.resolve(&key, headers)?,
            None => None,
        };
        // Before the body: a sink that sheds load refuses at the cost of
        // the headers alone.
        let admission = sinks.admit(op, tenant.as_deref(), &key).await?;
        if op == PushOp::Delete {
            let push = Push {
                op,
                key,
                families: Families::default(),
                received_at,
                tenant,
            };
            sinks.apply(push, admission).await?;
            return Ok(StatusCode::ACCEPTED);
        }
        let limits = BodyLimits {
            max_body_bytes: self.config.max_body_bytes,
            max_decompressed_bytes: self.config.max_decompressed_bytes,
        };
        let bytes =
            body::read_body(body, header_str(headers, header::CONTENT_ENCODING), &limits).await?;
        let format = BodyFormat::from_content_type(header_str(headers, header::CONTENT_TYPE));
        let push = match Push::from_bytes(op, key.clone(), format, bytes, &self.config) {
            Ok(push) => Push {
                received_at,
                tenant,
                ..push
            },
            Err(rejection) => {
                if rejection.records_failure {
                    sinks.record_failure(tenant.as_deref(), &key, received_at);
                }
                return Err(rejection.into());
            }
        };
        let samples = push.families.metric_count();
        sinks.apply(push, admission).await?;
        metrics::counter!(telemetry::SAMPLES_RECEIVED).increment(samples as u64);
        Ok(sinks.accepted_status(op))
    }
}

#[cfg(test)]
mod tests;
