//! `tickgate bench ...`.

use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// History store: trades written per second by batch size, and 1-day candle query latency.
    History(super::bench_history::HistoryBenchArgs),
    /// Cost of authenticating a bearer request (ns) and REST throughput with and without auth.
    Auth(super::bench_auth::BenchAuthArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::History(args) => super::bench_history::run(args),
        BenchCommand::Auth(args) => super::bench_auth::run(args),
    }
}
