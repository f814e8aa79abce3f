//! Ingest: everything between an HTTP push request and the [`Push`] value
//! handed to the sinks.
//!
//! The pipeline is: grouping key from the URL path ([`path`]), body bytes
//! through `Content-Encoding` and size limits ([`body`]), parsing
//! (`crate::exposition`), then validation against the merged grouping
//! labels ([`validate`]; the sinks do the merge, through [`grouping`]).
//! [`handler`] runs that pipeline for one request and maps the sinks'
//! answers to HTTP statuses.
//!
//! Ingest knows nothing about remote_write or the cache: it talks to a
//! [`PushSink`], and the only values that cross are [`Push`] and, back,
//! [`SinkError`]. The tenant of a push is ingest's to resolve ([`tenant`]).

pub mod body;
pub mod grouping;
pub mod handler;
pub mod path;
pub mod tenant;
pub mod validate;

use std::future::Future;
use std::time::{Duration, SystemTime};

use http::StatusCode;

use crate::config::PushConfig;
use bytes::Bytes;

use crate::exposition::{self, BodyFormat, Families};
use crate::proto::client::LabelPair;

/// What a push asks the sinks to do with its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PushOp {
    /// `PUT`: the pushed families replace the whole group.
    Replace,
    /// `POST`: the pushed families replace only the same-named families.
    Merge,
    /// `DELETE`: the group ends.
    Delete,
}

/// The labels of a group, taken from the URL path: always contains `job`,
/// sorted by label name, each name once.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupingKey {
    labels: Vec<(String, String)>,
}

impl GroupingKey {
    /// Builds a key from label pairs; for a repeated name the last pair wins
    /// (as the Pushgateway does with a repeated URL label).
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut labels: Vec<(String, String)> = Vec::new();
        for (name, value) in pairs {
            match labels.iter_mut().find(|(n, _)| *n == name) {
                Some(existing) => existing.1 = value,
                None => labels.push((name, value)),
            }
        }
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        Self { labels }
    }

    /// The label pairs, sorted by name.
    pub fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    /// The label pairs as the client data model holds them, sorted by name.
    pub fn label_pairs(&self) -> Vec<LabelPair> {
        self.labels
            .iter()
            .map(|(name, value)| LabelPair::new(name.as_str(), value.as_str()))
            .collect()
    }

    /// The value of one grouping label.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.labels[i].1.as_str())
    }

    /// The `job` label's value (empty only for a key built by hand without one).
    pub fn job(&self) -> &str {
        self.get("job").unwrap_or("")
    }
}

/// One accepted push, as the sinks see it.
///
/// `families` are parsed and validated (`validate::check_families`; a text
/// body is kept and indexed, see `exposition::index`): each metric's
/// own labels are sorted by name, and the grouping labels are NOT merged in:
/// each sink merges them (`grouping::GroupingLabels` gives the merged view,
/// where grouping labels override body labels and `instance=""` is added).
/// Empty label values are kept (the cache exposes them, the forwarder drops
/// them). For [`PushOp::Delete`] `families` is empty.
#[derive(Clone, Debug)]
pub struct Push {
    pub op: PushOp,
    pub key: GroupingKey,
    pub families: Families,
    pub received_at: SystemTime,
    /// The tenant the forwarder writes the push as (resolved by the
    /// forwarder's `TenantPolicy`); `None` when tenancy is off. The cache
    /// keys its groups by it too.
    pub tenant: Option<String>,
}

/// Why a sink did not take a push: the one outcome type from the sinks
/// (the forwarder's shards produce it directly) to the handler, which maps
/// it to an HTTP answer in one place.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum SinkError {
    /// The push is invalid for this sink (400); the message is for the pusher.
    #[error("{0}")]
    Rejected(String),
    /// The sink could not store the push now (503 with `Retry-After`).
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after: Duration,
    },
    /// The sink sheds load (429 with `Retry-After`): its queue is full.
    #[error("{message}")]
    Overloaded {
        message: String,
        retry_after: Duration,
    },
}

impl Push {
    /// The push a body makes: `body` parsed as `format`, then validated for
    /// `op` to `key` against `config` (`validate::check_families`). This is
    /// the one way from request bytes to a [`Push`]; the handler uses it and
    /// then sets the receive time and the tenant, which here are now and
    /// `None`. A text body is kept in the push (its index points into it).
    pub fn from_bytes(
        op: PushOp,
        key: GroupingKey,
        format: BodyFormat,
        body: Bytes,
        config: &PushConfig,
    ) -> Result<Self, Rejection> {
        let mut families =
            exposition::parse_body(format, body).map_err(|e| Rejection::bad_request(e.0))?;
        validate::check_families(&mut families, &key, config)?;
        Ok(Self {
            op,
            key,
            families,
            received_at: SystemTime::now(),
            tenant: None,
        })
    }
}

impl Push {
    /// [`Push::from_bytes`] for a borrowed body (copied when it is text).
    pub fn from_body(
        op: PushOp,
        key: GroupingKey,
        format: BodyFormat,
        body: &[u8],
        config: &PushConfig,
    ) -> Result<Self, Rejection> {
        Self::from_bytes(op, key, format, Bytes::copy_from_slice(body), config)
    }
}

/// What ingest needs from whatever stores or forwards a push
/// (`crate::sinks::Sinks` in the server; an in-memory one in the handler's
/// tests). Readiness and shutdown are the server's business, not ingest's.
pub trait PushSink: Sync {
    /// A push's place with the sink, given before its body is read
    /// ([`PushSink::admit`]) and used by [`PushSink::apply`].
    type Admission<'a>: Send
    where
        Self: 'a;

    /// Decides from the request alone, before its body is read, whether a
    /// push of `op` to `key` as `tenant` can be taken (a sink may wait a
    /// moment for room): a sink that sheds load refuses here ([`SinkError::Overloaded`]), so that a refusal
    /// costs neither reading nor parsing the body. The admission holds the
    /// push's place until it is applied or dropped.
    fn admit(
        &self,
        op: PushOp,
        tenant: Option<&str>,
        key: &GroupingKey,
    ) -> impl Future<Output = Result<Self::Admission<'_>, SinkError>> + Send;

    /// Stores or forwards `push`, admitted as `admission`; `Ok` once the
    /// sink has taken it. The sink owns the push, so it can free what it no
    /// longer needs (a large body) while it waits.
    fn apply<'a>(
        &'a self,
        push: Push,
        admission: Self::Admission<'a>,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Notes that a push of `tenant` to `key` received `at` was refused
    /// because its metrics are invalid or inconsistent (the Pushgateway
    /// shows that time as the group's `push_failure_time_seconds`).
    fn record_failure(&self, tenant: Option<&str>, key: &GroupingKey, at: SystemTime);

    /// The HTTP status of an accepted `op`.
    fn accepted_status(&self, op: PushOp) -> StatusCode;
}

/// An ingest-side refusal: the HTTP status and the message for the pusher.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub status: StatusCode,
    pub message: String,
    /// The push parsed but its metrics are invalid or inconsistent: the
    /// Pushgateway records a failed push for the group (its
    /// `push_failure_time_seconds`) in that case, and only then.
    pub records_failure: bool,
}

impl Rejection {
    /// A 400 Bad Request with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// A 400 for metrics that parsed but are invalid or inconsistent; the
    /// group's failure time is recorded.
    pub fn inconsistent(message: impl Into<String>) -> Self {
        Self {
            records_failure: true,
            ..Self::bad_request(message)
        }
    }

    /// Any status with `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            records_failure: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_key_sorts_and_keeps_last_repeated_label() {
        let key = GroupingKey::new([
            ("job".to_string(), "j".to_string()),
            ("b".to_string(), "1".to_string()),
            ("a".to_string(), "1".to_string()),
            ("a".to_string(), "2".to_string()),
        ]);
        let names: Vec<_> = key
            .labels()
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        assert_eq!(names, ["a=2", "b=1", "job=j"]);
        assert_eq!(key.job(), "j");
        assert_eq!(key.get("b"), Some("1"));
        assert_eq!(key.get("c"), None);
    }
}
