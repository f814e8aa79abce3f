//! The `pushrelay` binary: flags → [`Config`] → run. Nothing else lives here.

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use pushrelay::config::{Cli, Config, LogFormat};
use pushrelay::forward::Forwarder;
use pushrelay::security::inbound::WebSecurity;
use pushrelay::server::{self, AppState};
use pushrelay::sinks::Sinks;
use pushrelay::telemetry::Telemetry;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(&cli)?;
    if cli.check_config {
        print!(
            "{}",
            toml::to_string(&config).context("printing the configuration")?
        );
        eprintln!("configuration OK");
        return Ok(());
    }
    init_logging(&config);
    let Some(url) = config.remote_write.url.clone() else {
        bail!(
            "no remote_write backend configured: set one with --remote-write.url=http://HOST:9090/api/v1/write, \
             remote_write.url in the --config file, or PUSHRELAY_REMOTE_WRITE__URL"
        );
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let telemetry = Telemetry::install().map_err(anyhow::Error::msg)?;
        let forwarder = Forwarder::new(&config.remote_write).map_err(anyhow::Error::msg)?;
        let sinks = Sinks { forwarder: Some(forwarder), cache: None };
        let addr = config.listen_addr().map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        tracing::info!(address = %listener.local_addr()?, backend = %url, "pushrelay forwarding pushes as remote_write");
        let mut state = AppState::new(&config, sinks, telemetry);
        if let Some(path) = config.web_config_file() {
            let web = WebSecurity::load(path).map_err(anyhow::Error::msg)?;
            tracing::info!(tls = web.tls_enabled(), auth = web.auth_enabled(), "web config loaded");
            state = state.with_web_security(Arc::new(web));
        }
        let state = Arc::new(state);
        server::serve(listener, state.clone(), shutdown_signal()).await;
        state.sinks().drain().await;
        tracing::info!("stopped");
        Ok(())
    })
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::new(&config.log.level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Logfmt => builder.with_ansi(false).init(),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
