//! One module per venue, and the registry of them.
//!
//! - [`kind`]: [`VenueKind`], the one list of venues this build supports; config validation,
//!   checksum choice and connector construction come from it.
//! - [`sim`]: the deterministic simulated market (no network), the reference venue.
//! - [`binance`], [`bybit`], [`kraken`], [`coinbase`], [`okx`], [`hyperliquid`]: real venues, each a [`Protocol`] run by
//!   the shared [`WsConnector`].
//! - [`evm`]: an EVM chain's blocks and contract logs through reorgs (its own ingest).
//! - [`replay`]: plays a capture recorded by `tickgate record` through the same venue code.
//! - `parse`: decimal and level parsing shared by the venue parsers.

pub mod binance;
pub mod bybit;
pub mod coinbase;
pub mod evm;
pub mod hyperliquid;
pub mod kind;
pub mod kraken;
pub mod okx;
pub(crate) mod parse;
pub mod replay;
pub mod sim;

pub use kind::{Transport, VenueKind};

use crate::ConnectorError;
use crate::conn::Protocol;
use crate::settings::VenueSpec;
use std::sync::Arc;

/// The protocol of a WebSocket venue by name ([`VenueKind::protocol`]).
pub fn protocol(name: &str, spec: VenueSpec) -> Result<Arc<dyn Protocol>, ConnectorError> {
    VenueKind::from_name(name)
        .and_then(|kind| kind.protocol(spec))
        .unwrap_or_else(|| Err(ConnectorError::Config(format!("unknown venue {name:?}"))))
}

/// The algorithm that verifies a venue's book checksums, by name ([`VenueKind::checksum`]).
pub fn checksum_algo(name: &str) -> book::ChecksumAlgo {
    VenueKind::from_name(name).map_or(book::ChecksumAlgo::None, VenueKind::checksum)
}
