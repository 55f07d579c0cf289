//! Venue connectors: everything that turns a venue's feed into normalized [`FeedEvent`]s.
//!
//! # Layout
//!
//! - [`event`]: the events a connector emits ([`FeedEvent`]) and the commands it accepts
//!   ([`Command`]).
//! - [`connector`]: the [`Connector`] seam every venue implements, with its guarantees.
//! - [`conn`]: connection machinery every WebSocket venue shares (backoff, watchdog,
//!   reconnect, rotation, recording) behind a sans-I/O [`conn::Protocol`] seam.
//! - [`settings`]: [`settings::FeedSettings`] and [`settings::VenueSpec`], a venue's config.
//! - [`venue`]: one folder per venue. [`venue::sim`] is the deterministic simulated market that
//!   runs by default; real venues (Binance, Coinbase, Kraken) plug in beside it, and
//!   [`venue::evm`] follows an EVM chain's blocks and contract logs through reorgs;
//!   [`venue::VenueKind`] is the registry of them all.
//! - `mock` (feature `mock`): local servers speaking each real venue's protocol with fault
//!   switches, and a local anvil chain, for tests.
//!
//! A connector never touches order-book validation, channels or clients: it parses, sequences and
//! reconnects; the `ingest` stage validates books and publishes to the hub.

pub mod conn;
pub mod connector;
pub mod event;
#[cfg(feature = "mock")]
pub mod mock;
pub mod settings;
pub mod venue;

pub use connector::{Connector, ConnectorContext, ConnectorError};
pub use event::{ChainItem, Command, ConnectionState, FeedBatch, FeedEvent, InvalidCause};
