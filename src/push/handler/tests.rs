//! The handler against an in-memory sink: how each outcome of ingest and of
//! the sink becomes an HTTP status, and what reaches the sink.

use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use http_body::Frame;
use http_body_util::Full;

use super::*;
use crate::config::TenantConfig;

/// A sink that keeps what it is given, or refuses everything with one
/// error.
#[derive(Default)]
struct MemorySink {
    applied: Mutex<Vec<Push>>,
    failures: Mutex<Vec<GroupingKey>>,
    refusal: Option<SinkError>,
    /// Refuse every push at admission, before its body is read, with this.
    shedding: Option<SinkError>,
    /// Answer 202 to accepted pushes too (as the cache does without its
    /// consistency check).
    unchecked: bool,
}

impl MemorySink {
    fn refusing(refusal: SinkError) -> Self {
        Self {
            refusal: Some(refusal),
            ..Self::default()
        }
    }

    fn applied(&self) -> Vec<Push> {
        self.applied.lock().unwrap().clone()
    }

    fn failures(&self) -> Vec<GroupingKey> {
        self.failures.lock().unwrap().clone()
    }
}

impl PushSink for MemorySink {
    type Admission<'a> = ();

    async fn admit(
        &self,
        _op: PushOp,
        _tenant: Option<&str>,
        _key: &GroupingKey,
    ) -> Result<(), SinkError> {
        match &self.shedding {
            Some(refusal) => Err(refusal.clone()),
            None => Ok(()),
        }
    }

    async fn apply(&self, push: Push, (): ()) -> Result<(), SinkError> {
        if let Some(refusal) = &self.refusal {
            return Err(refusal.clone());
        }
        self.applied.lock().unwrap().push(push);
        Ok(())
    }

    fn record_failure(&self, _tenant: Option<&str>, key: &GroupingKey, _at: SystemTime) {
        self.failures.lock().unwrap().push(key.clone());
    }

    fn accepted_status(&self, op: PushOp) -> StatusCode {
        if op == PushOp::Delete || self.unchecked {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        }
    }
}

/// A body that notes whether anyone read it.
struct WatchedBody<'a>(&'a AtomicBool);

impl http_body::Body for WatchedBody<'_> {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.store(true, Ordering::Relaxed);
        Poll::Ready(None)
    }
}

fn ingest() -> Ingest {
    Ingest::new(PushConfig::default(), None)
}

fn with_tenant_label(label: &str) -> Ingest {
    let config = TenantConfig {
        from_label: Some(label.into()),
        ..TenantConfig::default()
    };
    let policy = TenantPolicy::new(&config).unwrap();
    Ingest::new(PushConfig::default(), Some(Arc::new(policy)))
}

async fn push(
    ingest: &Ingest,
    sink: &MemorySink,
    op: PushOp,
    path: &str,
    body: &str,
) -> Result<StatusCode, PushFailure> {
    let body = Full::new(Bytes::from(body.to_string()));
    ingest
        .handle(sink, op, path.as_bytes(), &HeaderMap::new(), body)
        .await
}

#[tokio::test]
async fn an_accepted_push_reaches_the_sink_unmerged_and_answers_its_status() {
    let sink = MemorySink::default();
    let status = push(
        &ingest(),
        &sink,
        PushOp::Replace,
        "job/j/a/1",
        "m{z=\"2\",b=\"1\"} 3\n",
    )
    .await;
    assert_eq!(status, Ok(StatusCode::OK));
    let applied = sink.applied();
    assert_eq!(applied.len(), 1);
    let push = &applied[0];
    assert_eq!(push.op, PushOp::Replace);
    assert_eq!(
        push.key.labels(),
        [("a".into(), "1".into()), ("job".into(), "j".into())]
    );
    assert_eq!(push.tenant, None);
    let families = push.families.to_model();
    let names: Vec<&str> = families[0].metric[0]
        .label
        .iter()
        .map(|l| l.name())
        .collect();
    assert_eq!(
        names,
        ["b", "z"],
        "own labels sorted, grouping labels not merged"
    );
    assert!(sink.failures().is_empty());
}

#[tokio::test]
async fn the_sink_decides_the_success_status() {
    let sink = MemorySink {
        unchecked: true,
        ..MemorySink::default()
    };
    let status = push(&ingest(), &sink, PushOp::Merge, "job/j", "m 1\n").await;
    assert_eq!(status, Ok(StatusCode::ACCEPTED));
}

#[tokio::test]
async fn a_delete_is_202_without_reading_the_body() {
    let sink = MemorySink::default();
    let read = AtomicBool::new(false);
    let status = ingest()
        .handle(
            &sink,
            PushOp::Delete,
            b"job/j",
            &HeaderMap::new(),
            WatchedBody(&read),
        )
        .await;
    assert_eq!(status, Ok(StatusCode::ACCEPTED));
    assert!(!read.load(Ordering::Relaxed));
    let applied = sink.applied();
    assert_eq!(applied[0].op, PushOp::Delete);
    assert!(applied[0].families.is_empty());
}

#[tokio::test]
async fn inconsistent_metrics_are_400_and_recorded_as_the_groups_failure() {
    let sink = MemorySink::default();
    let failure = push(&ingest(), &sink, PushOp::Replace, "job/j", "m 1 1000\n")
        .await
        .unwrap_err();
    assert_eq!(failure.status, StatusCode::BAD_REQUEST);
    assert!(
        failure.message.contains("timestamps"),
        "{}",
        failure.message
    );
    assert_eq!(failure.retry_after, None);
    assert_eq!(
        sink.failures(),
        [GroupingKey::new([("job".into(), "j".into())])]
    );
    assert!(sink.applied().is_empty());
}

#[tokio::test]
async fn an_unparsable_body_is_400_without_a_recorded_failure() {
    let sink = MemorySink::default();
    let failure = push(&ingest(), &sink, PushOp::Replace, "job/j", "m{ 1\n")
        .await
        .unwrap_err();
    assert_eq!(failure.status, StatusCode::BAD_REQUEST);
    assert!(sink.failures().is_empty());
    assert!(sink.applied().is_empty());
}

#[tokio::test]
async fn a_path_without_a_job_is_400_before_the_body_is_read() {
    let sink = MemorySink::default();
    let read = AtomicBool::new(false);
    let failure = ingest()
        .handle(
            &sink,
            PushOp::Replace,
            b"instance/i",
            &HeaderMap::new(),
            WatchedBody(&read),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.status, StatusCode::BAD_REQUEST);
    assert!(!read.load(Ordering::Relaxed));
    assert!(sink.applied().is_empty());
}

#[tokio::test]
async fn each_sink_refusal_maps_to_its_status_and_retry_after() {
    let after = Duration::from_secs(7);
    let cases = [
        (
            SinkError::Rejected("backend said no".into()),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            SinkError::Unavailable {
                message: "backend down".into(),
                retry_after: after,
            },
            StatusCode::SERVICE_UNAVAILABLE,
            Some(after),
        ),
        (
            SinkError::Overloaded {
                message: "queue full".into(),
                retry_after: after,
            },
            StatusCode::TOO_MANY_REQUESTS,
            Some(after),
        ),
    ];
    for (refusal, status, retry_after) in cases {
        let message = refusal.to_string();
        let sink = MemorySink::refusing(refusal);
        let failure = push(&ingest(), &sink, PushOp::Replace, "job/j", "m 1\n")
            .await
            .unwrap_err();
        assert_eq!(failure.status, status, "{message}");
        assert_eq!(failure.message, message);
        assert_eq!(failure.retry_after, retry_after, "{message}");
        assert!(sink.failures().is_empty(), "a sink refusal is not recorded");
    }
}

/// A body that never ends, noting whether anyone polled it.
struct EndlessBody<'a>(&'a AtomicBool);

impl http_body::Body for EndlessBody<'_> {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.store(true, Ordering::Relaxed);
        Poll::Pending
    }
}

#[tokio::test]
async fn a_shedding_sink_is_429_before_the_body_is_read() {
    let after = Duration::from_secs(1);
    let sink = MemorySink {
        shedding: Some(SinkError::Overloaded {
            message: "queue full".into(),
            retry_after: after,
        }),
        ..MemorySink::default()
    };
    let (ingest, headers) = (ingest(), HeaderMap::new());
    for op in [PushOp::Replace, PushOp::Merge, PushOp::Delete] {
        let read = AtomicBool::new(false);
        let answer = ingest.handle(&sink, op, b"job/j", &headers, EndlessBody(&read));
        let failure = tokio::time::timeout(Duration::from_secs(5), answer)
            .await
            .expect("answered without waiting for the body")
            .unwrap_err();
        assert_eq!(failure.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(failure.retry_after, Some(after));
        assert!(!read.load(Ordering::Relaxed), "{op:?}: the body was polled");
    }
    assert!(sink.applied().is_empty());
    assert!(sink.failures().is_empty());
}

#[tokio::test]
async fn a_missing_tenant_is_400_before_the_body_is_read() {
    let sink = MemorySink::default();
    let read = AtomicBool::new(false);
    let failure = with_tenant_label("team")
        .handle(
            &sink,
            PushOp::Replace,
            b"job/j",
            &HeaderMap::new(),
            WatchedBody(&read),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.status, StatusCode::BAD_REQUEST);
    assert!(failure.message.contains("no tenant"), "{}", failure.message);
    assert!(!read.load(Ordering::Relaxed), "the body was read");
    assert!(sink.applied().is_empty());
}

#[tokio::test]
async fn the_resolved_tenant_travels_in_the_push() {
    let sink = MemorySink::default();
    let status = push(
        &with_tenant_label("team"),
        &sink,
        PushOp::Replace,
        "job/j/team/blue",
        "m 1\n",
    )
    .await;
    assert_eq!(status, Ok(StatusCode::OK));
    assert_eq!(sink.applied()[0].tenant.as_deref(), Some("blue"));
}
