//! One module per subcommand.

pub mod bench;
pub mod book;
pub mod config;
pub mod serve;
pub mod tail;
