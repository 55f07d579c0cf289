//! `tickgate serve`.

use anyhow::Context;
use clap::Args;
use connectors::venue::VenueKind;
use server::config::LogFormat;
use server::{Config, Gateway};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Without it the built-in defaults run the simulated market.
    #[arg(long, short, env = "TICKGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address, overriding `server.listen` (default 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory, overriding `server.data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Events per second per symbol of the simulated venue, overriding `venues.sim.rate`.
    #[arg(long)]
    sim_rate: Option<f64>,
    /// Worker threads of the runtime (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.server.data_dir = dir;
    }
    if let Some(rate) = args.sim_rate {
        for venue in config
            .venues
            .iter_mut()
            .filter(|v| v.kind() == Some(VenueKind::Sim))
        {
            venue.sim.rate = rate;
        }
    }
    if let Err(error) = config.validate() {
        eprintln!("error: {error}");
        return Ok(ExitCode::from(2));
    }
    init_logging(&config);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = runtime.build().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let gateway = Gateway::start(config).await?;
        wait_for_signal().await;
        tracing::info!("shutting down");
        gateway.stop().await?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

pub(crate) fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    // Colours only on a terminal, never in files or pipes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

pub(crate) async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
