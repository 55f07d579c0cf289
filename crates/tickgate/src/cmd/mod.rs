//! One module per subcommand.

pub mod bench;
pub mod bench_history;
pub mod book;
pub mod config;
pub mod export;
pub mod serve;
pub mod tail;
