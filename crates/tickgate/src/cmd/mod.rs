//! One module per subcommand.

pub mod bench;
pub mod config;
pub mod record;
pub mod serve;
pub mod tail;
