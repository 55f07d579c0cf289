//! `tickgate record`: run the configured venues and capture their raw traffic for replay.

use anyhow::Context;
use clap::Args;
use connectors::conn::record::{CaptureFormat, Recorder};
use connectors::venue::Transport;
use server::{Config, Gateway};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Configuration file (TOML) naming the venues to record.
    #[arg(long, short)]
    config: PathBuf,
    /// Capture file to write.
    #[arg(long, short)]
    out: PathBuf,
    /// Capture format: `tgcap` (length-prefixed records in an LZ4 frame: the fastest to
    /// replay) or `jsonl-gz` (gzip-compressed JSON lines, for `zcat | jq`). `tickgate
    /// replay` and the replay venue read both.
    #[arg(long, default_value = "tgcap", value_parser = parse_format)]
    format: CaptureFormat,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM).
    #[arg(long)]
    duration: Option<u64>,
    /// Listen address while recording, overriding `server.listen` (the gateway serves its API
    /// as usual while it records).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

fn parse_format(name: &str) -> Result<CaptureFormat, String> {
    CaptureFormat::from_name(name)
        .ok_or_else(|| format!("unknown capture format (known: {})", CaptureFormat::NAMES))
}

pub fn run(args: RecordArgs) -> anyhow::Result<ExitCode> {
    let mut config = match Config::load(Some(&args.config)) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if !config
        .venues
        .iter()
        .filter_map(|v| v.kind())
        .any(|kind| kind.transport() == Transport::WebSocket)
    {
        eprintln!("error: venues: nothing to record; configure binance, coinbase or kraken");
        return Ok(ExitCode::from(2));
    }
    super::serve::init_logging(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let format = args.format;
    let (recorder, handle) = Recorder::create_as(&args.out, format)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let out = args.out.display().to_string();
    runtime.block_on(async move {
        let gateway = Gateway::start_with(config, Some(recorder), None).await?;
        tracing::info!(%out, "recording");
        match args.duration {
            Some(secs) => tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(secs)) => {}
                () = super::serve::wait_for_signal() => {}
            },
            None => super::serve::wait_for_signal().await,
        }
        gateway.stop().await?;
        anyhow::Ok(())
    })?;
    let (lines, dropped) = handle.finish().context("cannot complete the capture")?;
    println!(
        "recorded {lines} records to {} as {} ({dropped} dropped)",
        args.out.display(),
        format.name()
    );
    Ok(ExitCode::SUCCESS)
}
