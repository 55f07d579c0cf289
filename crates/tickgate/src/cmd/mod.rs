//! One module per subcommand.

pub mod audit;
pub mod bench;
pub mod book;
pub mod config;
pub mod credentials;
pub mod export;
pub mod keys;
pub mod keys_backend;
pub mod keys_scan;
pub mod record;
pub mod replay;
pub mod serve;
pub mod tail;
