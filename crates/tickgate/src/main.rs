//! The `tickgate` command line: run the gateway, inspect its streams, check configuration and
//! benchmark it.
//!
//! # Layout
//!
//! - `cmd::serve`: `tickgate serve`.
//! - `cmd::record`: `tickgate record --config FILE --out FILE`.
//! - `cmd::tail`: `tickgate tail CHANNEL...`.
//! - `cmd::config`: `tickgate config default|check`.
//! - `cmd::bench`: `tickgate bench fanout|idle`.

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
    /// Print a channel's messages as they arrive.
    Tail(cmd::tail::TailArgs),
    /// Print the default configuration or check a configuration file.
    #[command(subcommand)]
    Config(cmd::config::ConfigCommand),
    /// Benchmarks (see docs/benchmarks.md).
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
}

fn main() -> ExitCode {
    // rustls' crypto provider: ring only (never aws-lc-rs), before any TLS or HTTP client.
    server::install_crypto_provider();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::run(args),
        Command::Record(args) => cmd::record::run(args),
        Command::Tail(args) => cmd::tail::run(args),
        Command::Config(command) => cmd::config::run(command),
        Command::Bench(command) => cmd::bench::run(command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
