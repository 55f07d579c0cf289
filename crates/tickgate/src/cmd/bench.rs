//! `tickgate bench ...`.

use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// History store: trades written per second by batch size, and 1-day candle query latency.
    History(super::bench_history::HistoryBenchArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::History(args) => super::bench_history::run(args),
    }
}
