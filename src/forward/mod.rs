//! remote_write forwarding: convert pushes to remote_write, batch, send.

pub mod convert;
pub mod wire;

use crate::config::RemoteWriteConfig;
use crate::push::{Push, SinkError};

/// The forwarding sink.
pub struct Forwarder {
    _config: RemoteWriteConfig,
}

impl Forwarder {
    /// Builds the sink for the configured backend.
    pub fn new(config: &RemoteWriteConfig) -> Result<Self, String> {
        Ok(Self {
            _config: config.clone(),
        })
    }

    /// Forwards one push; returns once the backend accepted all of it.
    pub async fn forward(&self, _push: &Push) -> Result<(), SinkError> {
        Err(SinkError::Unavailable {
            message: "forwarding not built yet".into(),
            retry_after: std::time::Duration::from_secs(1),
        })
    }

    /// Whether the backend has been reached.
    pub fn is_ready(&self) -> bool {
        false
    }
}
