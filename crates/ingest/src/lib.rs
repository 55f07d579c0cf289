//! The books & aggregators stage: turns connector events into validated order books, trades,
//! tickers and candles, and publishes them through the hub's [`hub::Bus`].
//!
//! # Layout
//!
//! - [`pipeline`]: [`VenueIngest`], one task per venue: applies book events through the bus's
//!   book publishers (which validate them), asks the connector to resync one symbol when its book
//!   breaks, and publishes trades, tickers and candles once per batch.
//! - [`consolidate`]: the cross-venue `book:all:…` and `ticker:all:…` channels.
//! - [`ticker`]: rolling 24 h ticker statistics over per-minute buckets.
//! - [`candles`]: OHLCV candles for every interval, with completeness tracking.
//! - [`market`]: [`Market`], the instruments served and their aggregates, read by REST.
//! - [`stats`]: per-venue counters rendered by `/metrics`.
//! - `persist`: what each instrument hands to the history writer (trades once per batch,
//!   closed candles, and at shutdown its open candles marked incomplete).
//! - [`runner`]: wires a connector and its ingest task together ([`spawn_venue`]).
//! - [`onchain`]: [`ChainIngest`], the ingest task of an EVM source: `onchain.blocks` and
//!   `onchain.logs` channels, DEX trades through a [`VenueIngest`] per DEX venue
//!   ([`spawn_chain`]).

pub mod candles;
pub mod consolidate;
pub mod market;
pub mod onchain;
mod persist;
pub mod pipeline;
pub mod runner;
pub mod stats;
pub mod ticker;

pub use market::{InstrumentEntry, Market};
pub use onchain::{ChainIngest, spawn_chain};
pub use pipeline::VenueIngest;
pub use runner::{VenueHandle, spawn_venue};
pub use stats::VenueStats;
