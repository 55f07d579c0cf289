//! The L2 order book engine: one [`OrderBook`] per instrument, built from a venue snapshot and
//! kept current by sequenced deltas.
//!
//! A book is `AwaitingSnapshot` until a valid snapshot makes it `Live`. Any sequence gap, crossed
//! book, checksum mismatch or invalid level makes it `Stale` and empties it: the caller rebuilds
//! it from a fresh snapshot ([`BookError::is_terminal`]). A book that is not live never serves
//! levels, so a consumer cannot read a book that may be wrong.
//!
//! # Layout
//!
//! - `book`: [`OrderBook`], the snapshot and delta rules (gap, duplicate, crossed, checksum) and
//!   the read views (best, top N, depth, checksum).
//! - `ladder`: one side of a book, a `BTreeMap` keyed so that iteration is best price first.
//! - `state`: [`BookState`] and [`StaleReason`], the book's lifecycle.
//! - `error`: [`BookError`], with its stable codes and terminal/non-terminal classification.
//! - [`checksum`]: the tickgate CRC-32 over the top levels (exact algorithm documented there) and
//!   [`ChecksumAlgo`], which picks the algorithm that verifies a venue's checksum field.

mod book;
pub mod checksum;
mod error;
mod ladder;
mod state;

pub use book::{DeltaOutcome, OrderBook};
pub use checksum::ChecksumAlgo;
pub use error::BookError;
pub use state::{BookState, StaleReason};
