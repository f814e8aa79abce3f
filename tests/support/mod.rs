//! Test-only helpers shared by the integration tests.

pub mod prometheus;
pub mod receiver;

use std::time::Duration;

/// Runs `f` with a bound so a hung forwarder fails the test.
pub async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test took too long")
}
