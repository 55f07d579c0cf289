//! `tickgate bench ...` (being written).

use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Cost of authenticating a bearer request (ns) and REST throughput with and without auth.
    Auth(super::bench_auth::BenchAuthArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Auth(args) => super::bench_auth::run(args),
    }
}
