//! One module per subcommand.

pub mod audit;
pub mod bench;
pub mod bench_auth;
pub mod config;
pub mod keys;
pub mod keys_backend;
pub mod keys_scan;
pub mod serve;
pub mod tail;
