//! Debian's VictoriaMetrics (1.79) as a second remote_write backend: it
//! takes remote_write 1.0 at `/api/v1/write` and, like Prometheus ≤ 2.53,
//! reads a 2.0 request as an empty 1.0 one (2xx, no Written headers).
//! Started through the one [`Peer`] launcher, with its own storage
//! directory and no query latency offset, so what was written is found by
//! the next query once flushed.

use http::StatusCode;

use super::{Peer, Ready, Series, get, instant_query, require_binary};

pub struct VictoriaMetrics {
    pub peer: Peer,
}

impl VictoriaMetrics {
    pub async fn start() -> Self {
        let binary = require_binary("victoria-metrics");
        let peer = Peer::start(
            "victoria-metrics",
            &binary,
            Ready::Http("/health".into()),
            |port, dir| {
                vec![
                    format!("-httpListenAddr=127.0.0.1:{port}"),
                    format!("-storageDataPath={}", dir.join("data").display()),
                    // Data written "now" is queryable now, not 30 s later.
                    "-search.latencyOffset=0s".into(),
                    "-search.disableCache".into(),
                    "-loggerLevel=WARN".into(),
                ]
            },
        )
        .await;
        Self { peer }
    }

    pub fn url(&self) -> String {
        self.peer.url()
    }

    /// The remote_write 1.0 endpoint.
    pub fn write_url(&self) -> String {
        format!("{}/api/v1/write", self.peer.url())
    }

    /// Runs an instant query after flushing what was written (VictoriaMetrics
    /// buffers recent data in memory) and returns its vector result.
    pub async fn query(&self, promql: &str) -> Vec<Series> {
        let flushed = get(&format!("{}/internal/force_flush", self.url())).await;
        assert_eq!(
            flushed.status,
            StatusCode::OK,
            "force_flush: {}",
            flushed.text()
        );
        instant_query(&self.url(), promql, "").await
    }

    /// Queries until the result has `count` series (newly written series
    /// become searchable a moment after they are written, even flushed),
    /// at most 20 s; returns the last result.
    pub async fn query_until(&self, promql: &str, count: usize) -> Vec<Series> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let series = self.query(promql).await;
            if series.len() >= count || std::time::Instant::now() > deadline {
                return series;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Every series it holds now, sorted.
    pub async fn all_series(&self) -> Vec<Series> {
        let mut series = self.query(r#"{__name__=~".+"}"#).await;
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        series
    }
}
