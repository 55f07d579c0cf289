//! The `tickgate` command line: run the gateway, inspect its streams, check configuration and
//! benchmark it.
//!
//! # Layout
//!
//! - `cmd::serve`: `tickgate serve`.
//! - `cmd::record`: `tickgate record --config FILE --out FILE`.
//! - `cmd::replay`: `tickgate replay FILE [--to ndjson|stdout]`: a capture through ingest and
//!   the hub, no server; the channels' messages as NDJSON.
//! - `cmd::tail`: `tickgate tail CHANNEL...` (on the SDK: survives restarts).
//! - `cmd::book`: `tickgate book CHANNEL` (live top of book from the SDK's mirror).
//! - `cmd::config`: `tickgate config default|check`.
//! - `cmd::export`: `tickgate export`: a range of stored trades or candles as CSV or NDJSON.
//! - `cmd::bench`: `tickgate bench fanout|idle|history|auth|alerts`, one module each under
//!   `cmd/bench/`.
//! - `cmd::keys` (+ `keys_backend`, `keys_scan`): `tickgate keys ...`, offline or via the admin
//!   API.
//! - `cmd::audit`: `tickgate audit verify`.
//! - `cmd::credentials`: how the CLI authenticates to a running gateway (bearer or signed),
//!   shared by `keys`/`audit --url` and `tail`/`book`.

/// mimalloc frees memory allocated on another thread without taking a lock: `replay` hands
/// every parsed event from its parse thread to ingest, which glibc made slower than one
/// thread (docs/benchmarks.md, "Parsing on its own thread, and mimalloc").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "tickgate",
    version,
    about = "Secure real-time crypto market-data gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(cmd::serve::ServeArgs),
    /// Capture the configured venues' raw traffic to a file (replay it with a `replay` venue).
    Record(cmd::record::RecordArgs),
    /// Play a capture through ingest and the hub (no server) and write the channels' messages
    /// as NDJSON, as WebSocket subscribers would receive them.
    Replay(cmd::replay::ReplayArgs),
    /// Print a channel's messages as they arrive (reconnects and recovers by itself).
    Tail(cmd::tail::TailArgs),
    /// Show the live top of a book, kept by the SDK's local mirror.
    Book(cmd::book::BookArgs),
    /// Print the default configuration or check a configuration file.
    #[command(subcommand)]
    Config(cmd::config::ConfigCommand),
    /// Write a range of stored trades or candles to a file or stdout (CSV or NDJSON).
    Export(cmd::export::ExportArgs),
    /// Benchmarks (see docs/benchmarks.md).
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
    /// Manage API keys: create, list, show, update, rotate, cancel-rotation, revoke, usage,
    /// rewrap, scan.
    #[command(subcommand)]
    Keys(Box<cmd::keys::KeysCommand>),
    /// The audit log: verify its hash chain.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCommand),
}

fn main() -> ExitCode {
    // rustls' crypto provider: ring only (never aws-lc-rs), before any TLS or HTTP client.
    server::install_crypto_provider();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::run(args),
        Command::Record(args) => cmd::record::run(args),
        Command::Replay(args) => cmd::replay::run(args),
        Command::Tail(args) => cmd::tail::run(args),
        Command::Book(args) => cmd::book::run(args),
        Command::Config(command) => cmd::config::run(command),
        Command::Export(args) => cmd::export::run(args),
        Command::Bench(command) => cmd::bench::run(command),
        Command::Keys(command) => cmd::keys::run(*command),
        Command::Audit(command) => cmd::audit::run(command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
