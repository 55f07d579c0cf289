//! `tickgate config default|check`.

use clap::Subcommand;
use server::Config;
use server::config::DEFAULT_CONFIG_TOML;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the default configuration, with a comment on every key.
    Default,
    /// Validate a configuration file (with TICKGATE_* environment overrides applied) and print
    /// the effective configuration.
    Check {
        /// The TOML file to check.
        file: PathBuf,
    },
}

pub fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    match command {
        ConfigCommand::Default => {
            print!("{DEFAULT_CONFIG_TOML}");
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Check { file } => match Config::load(Some(&file)) {
            Ok(config) => {
                println!("# {} is valid; effective configuration:", file.display());
                print!("{}", config.to_toml());
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => {
                eprintln!("error: {error}");
                Ok(ExitCode::from(2))
            }
        },
    }
}
