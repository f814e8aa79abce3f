//! The `pushrelay` binary: flags → [`Config`] → run, on the process's
//! allocator. Nothing else lives here.

#![forbid(unsafe_code)]

use std::sync::Arc;

use anyhow::Context;
use pushrelay::cache::persistence::{self, Persister};
use pushrelay::cache::store::StoreOptions;
use pushrelay::cache::ttl::TtlPolicy;
use pushrelay::cache::{self, Cache};
use pushrelay::config::{Cli, Config, KeyedProblem, LogFormat};
use pushrelay::expiry::{self, Ending};
use pushrelay::forward::Forwarder;
use pushrelay::resend;
use pushrelay::security::inbound::WebSecurity;
use pushrelay::server::{self, AppState};
use pushrelay::sinks::Sinks;
use pushrelay::telemetry::Telemetry;

/// jemalloc with its background threads (the `background_threads` feature):
/// they hand pages freed by a load storm (scrape bodies, the buffers of
/// concurrent pushes and connections) back to the system within seconds,
/// also while no request comes in; glibc's allocator kept them in its
/// per-thread arenas (BENCHMARKS.md, "Memory after load").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse_with_defaults();
    let config = Config::load_checked(&cli, check_settings)?;
    if cli.check_config {
        print!(
            "{}",
            toml::to_string(&config).context("printing the configuration")?
        );
        eprintln!("configuration OK");
        return Ok(());
    }
    init_logging(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let telemetry = Telemetry::install().map_err(anyhow::Error::msg)?;
        let forwarder = match &config.remote_write.url {
            Some(_) => Some(Forwarder::new(&config.remote_write).map_err(anyhow::Error::msg)?),
            None => None,
        };
        let cache = config.caching().then(|| {
            Cache::new(StoreOptions {
                disable_consistency_check: config.push.disable_consistency_check,
                own_families: cache::own_families(),
            })
        });
        let mut persister = None;
        if let (Some(cache), Some(file)) = (&cache, config.persistence_file()) {
            let groups = persistence::load(cache, file)
                .context("restoring the cache (move the file away to start empty)")?;
            tracing::info!(file = %file.display(), groups, "cache restored");
            persister = Some(Persister::start(
                cache.clone(),
                file.to_path_buf(),
                config.persistence.interval.0,
            ));
        }
        let resender = match (&forwarder, &cache) {
            (Some(forwarder), Some(cache)) if config.resending() => {
                let interval = config.remote_write.resend_interval.0;
                tracing::info!(?interval, "re-sending every cached group through remote_write");
                Some(resend::start(
                    cache.clone(),
                    forwarder.resend_queue(interval),
                    interval,
                ))
            }
            _ => None,
        };
        let ending = forwarder.as_ref().map(|forwarder| Ending {
            queue: forwarder.resend_queue(config.remote_write.retry_deadline.0),
        });
        if let (Some(cache), Some(ending)) = (&cache, &ending) {
            expiry::end_wiped_groups(cache, ending.clone());
        }
        let ttl = TtlPolicy::new(&config.cache);
        let sweeper = match &cache {
            Some(cache) if ttl.is_enabled() => Some(expiry::start(cache.clone(), ttl, ending)),
            _ => None,
        };
        let quit = cache.clone();
        let sinks = Sinks { forwarder, cache };
        let addr = config.listen_addr().map_err(anyhow::Error::msg)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        let address = listener.local_addr()?;
        match (&config.remote_write.url, config.caching()) {
            (Some(url), false) => tracing::info!(%address, backend = %url, "pushrelay forwarding pushes as remote_write"),
            (Some(url), true) => tracing::info!(%address, backend = %url, "pushrelay forwarding pushes as remote_write and caching them (Pushgateway mode)"),
            (None, _) => tracing::info!(%address, "no remote_write backend configured: pushrelay runs in cache mode as a Pushgateway"),
        }
        let mut state = AppState::new(&config, sinks, telemetry);
        if let Some(path) = config.web_config_file() {
            let web = WebSecurity::load(path)?;
            tracing::info!(tls = web.tls_enabled(), auth = web.auth_enabled(), "web config loaded");
            state = state.with_web_security(Arc::new(web));
        }
        let state = Arc::new(state);
        let shutdown = async move {
            match quit {
                Some(cache) => tokio::select! {
                    () = shutdown_signal() => {}
                    () = cache.quit_requested() => tracing::info!("quit requested through /-/quit"),
                },
                None => shutdown_signal().await,
            }
        };
        server::serve(listener, state.clone(), shutdown).await;
        for task in [resender, sweeper].into_iter().flatten() {
            task.abort();
        }
        state.sinks().drain().await;
        if let Some(persister) = persister {
            persister.finish().await;
        }
        tracing::info!("stopped");
        Ok(())
    })
}

/// Builds what other modules make of the settings once, so a bad one fails
/// at start and in `--check-config`: the security objects and the
/// relabeling rules.
fn check_settings(config: &Config) -> Result<(), Box<dyn KeyedProblem>> {
    pushrelay::security::check(config).map_err(|e| Box::new(e) as Box<dyn KeyedProblem>)?;
    pushrelay::forward::relabel::check(&config.remote_write)
        .map_err(|e| Box::new(e) as Box<dyn KeyedProblem>)
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
