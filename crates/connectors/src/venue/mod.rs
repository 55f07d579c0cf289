//! One module per venue.
//!
//! - [`sim`]: the deterministic simulated market (no network), the reference venue.
//! - [`binance`], [`kraken`], [`coinbase`]: real venues, each a [`Protocol`] run by the shared
//!   [`WsConnector`].
//! - [`replay`]: plays a capture recorded by `tickgate record` through the same venue code.
//! - `parse`: decimal and level parsing shared by the venue parsers.

pub mod binance;
pub mod coinbase;
pub mod evm;
pub mod kraken;
pub(crate) mod parse;
pub mod replay;
pub mod sim;

use crate::ConnectorError;
use crate::conn::Protocol;
use crate::settings::VenueSpec;
use std::sync::Arc;

/// Venues that connect over WebSocket (everything except `sim` and `replay`).
pub const WS_VENUES: [&str; 3] = [binance::VENUE, coinbase::VENUE, kraken::VENUE];

/// The protocol of a WebSocket venue by name.
pub fn protocol(name: &str, spec: VenueSpec) -> Result<Arc<dyn Protocol>, ConnectorError> {
    Ok(match name {
        binance::VENUE => Arc::new(binance::BinanceProtocol::new(spec)?),
        kraken::VENUE => Arc::new(kraken::KrakenProtocol::new(spec)?),
        coinbase::VENUE => Arc::new(coinbase::CoinbaseProtocol::new(spec)?),
        other => return Err(ConnectorError::Config(format!("unknown venue {other:?}"))),
    })
}

/// The algorithm that verifies a venue's book checksums.
pub fn checksum_algo(name: &str) -> book::ChecksumAlgo {
    match name {
        "kraken" => book::ChecksumAlgo::Kraken,
        _ => book::ChecksumAlgo::None,
    }
}
