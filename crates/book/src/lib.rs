//! The L2 order book engine.
//!
//! # Layout
//!
//! - [`checksum`]: the tickgate CRC-32 over the top levels (exact algorithm documented there).
pub mod checksum;
