//! Connection machinery shared by every WebSocket venue, written once.
//!
//! - [`backoff`]: exponential backoff with full jitter, reset after a stable period.
//! - [`venue_protocol`]: the sans-I/O [`Protocol`]/[`Session`] seam a venue implements.
//! - `driver`: one task per shard (group of symbols): connect, subscribe, read without ever
//!   blocking on ingest, answer pings, per-symbol staleness watchdog (resubscribe, then
//!   reconnect), connection silence timeout, reconnect with backoff and a fresh session (books
//!   are rebuilt from new snapshots, never merged), make-before-break rotation.
//! - `link`: one open connection: socket, session, paced send queue, REST answers, and the
//!   per-symbol last-seen times the driver's watchdog reads.
//! - [`ws_connector`]: [`WsConnector`], which runs a [`Protocol`] behind the `Connector` seam.
//! - [`ws`], [`rest`]: opening connections (rustls + ring) and REST GETs.
//! - [`record`]: captures of raw traffic for `tickgate record` and the `replay` venue.
//! - [`stats`]: per-venue link counters.

pub mod backoff;
mod driver;
pub(crate) mod input;
mod link;
mod outflow;
pub mod record;
pub mod rest;
pub mod stats;
mod status;
pub mod venue_protocol;
pub mod ws;
pub mod ws_connector;

pub use venue_protocol::{Io, Protocol, RestRequest, Session};
pub use ws_connector::WsConnector;
