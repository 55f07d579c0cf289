//! Hyperliquid WebSocket: `l2Book` (a full top-20 snapshot per coin on every change, diffed
//! here into deltas) and `trades`, for perpetuals.
//!
//! - `ctx`: the `activeAssetCtx` parser (funding, mark, open interest, native ticker).
//! - `wire`: the frame shape (`channel` + `data`) of every message.
//! - `session`: one connection's [`Session`](crate::conn::Session): subscription acks, the
//!   last book forwarded per coin (each new snapshot becomes the delta to it), trades, the
//!   `ping` keep-alive.
//!
//! Symbols: perpetuals settle in USDC: `BTC-USDC-PERP` ↔ coin `BTC`. Instrument metadata
//! comes from the config: Hyperliquid serves it only by `POST /info` (`{"type":"meta"}`),
//! which the shared REST client (GET) does not send.

mod ctx;
mod fast;
mod session;
mod wire;

use crate::ConnectorError;
use crate::conn::{Protocol, Session};
use crate::settings::VenueSpec;
use model::{Instrument, Symbol, Venue};
use std::time::Duration;

pub use wire::{L2Book, parse_l2book, parse_trades};

pub const VENUE: &str = "hyperliquid";
/// The connector appends `/ws`.
pub const DEFAULT_WS_URL: &str = "wss://api.hyperliquid.xyz";
/// Levels a side in an `l2Book` message.
pub const BOOK_LEVELS: usize = 20;
/// The settlement currency of Hyperliquid perpetuals.
pub const QUOTE: &str = "USDC";

/// Hyperliquid's coin of a normalized symbol: `BTC-USDC-PERP` → `BTC`.
pub fn native_symbol(symbol: &Symbol) -> String {
    symbol.base().to_string()
}

/// The normalized symbol of a coin: `BTC` → `BTC-USDC-PERP`.
pub fn normalized_symbol(coin: &str) -> Option<Symbol> {
    Symbol::new(&format!("{coin}-{QUOTE}{}", model::PERP_SUFFIX)).ok()
}

/// The Hyperliquid protocol for a set of perpetuals.
#[derive(Debug)]
pub struct HyperliquidProtocol {
    venue: Venue,
    spec: VenueSpec,
}

impl HyperliquidProtocol {
    pub fn new(spec: VenueSpec) -> Result<Self, ConnectorError> {
        spec.validate("venues.hyperliquid")?;
        if let Some(symbol) = spec
            .symbols
            .iter()
            .find(|s| !s.is_perpetual() || s.quote() != QUOTE)
        {
            return Err(ConnectorError::setting(
                "venues.hyperliquid.symbols",
                format!("{symbol}: Hyperliquid perpetuals are BASE-{QUOTE}-PERP"),
            ));
        }
        Ok(Self {
            venue: Venue::new(VENUE).map_err(|e| ConnectorError::Config(e.to_string()))?,
            spec,
        })
    }
}

impl Protocol for HyperliquidProtocol {
    fn venue(&self) -> &Venue {
        &self.venue
    }

    fn spec(&self) -> &VenueSpec {
        &self.spec
    }

    /// One connection (Hyperliquid allows 1000 subscriptions per connection; a shard per
    /// `max_streams_per_connection / 2` coins beyond that).
    fn shards(&self) -> Vec<Vec<Symbol>> {
        let per = (self.spec.feed.max_streams_per_connection.min(1000) / 2).max(1);
        self.spec
            .symbols
            .chunks(per)
            .map(<[Symbol]>::to_vec)
            .collect()
    }

    fn ws_url(&self, _shard: &[Symbol]) -> String {
        format!("{}/ws", self.spec.ws_base(DEFAULT_WS_URL))
    }

    fn session(&self, shard: &[Symbol]) -> Box<dyn Session> {
        Box::new(session::HyperliquidSession::new(self, shard))
    }

    fn send_interval(&self) -> Duration {
        Duration::from_millis(100)
    }

    fn instruments_url(&self) -> Option<String> {
        None
    }

    fn parse_instruments(&self, _body: &str) -> Result<Vec<Instrument>, ConnectorError> {
        Ok(self.fallback_instruments())
    }

    fn fallback_instruments(&self) -> Vec<Instrument> {
        self.spec
            .symbols
            .iter()
            .map(|s| self.spec.feed.instrument(&self.venue, s, native_symbol(s)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_usdc_perpetuals() {
        let btc = Symbol::new("BTC-USDC-PERP").unwrap();
        assert_eq!(native_symbol(&btc), "BTC");
        assert_eq!(normalized_symbol("BTC"), Some(btc.clone()));
        assert!(HyperliquidProtocol::new(VenueSpec::new(vec![btc])).is_ok());
        for bad in ["BTC-USDC", "BTC-USDT-PERP"] {
            let error = HyperliquidProtocol::new(VenueSpec::new(vec![Symbol::new(bad).unwrap()]));
            assert!(
                error
                    .unwrap_err()
                    .to_string()
                    .contains("venues.hyperliquid.symbols"),
                "{bad}"
            );
        }
        let p =
            HyperliquidProtocol::new(VenueSpec::new(vec![Symbol::new("ETH-USDC-PERP").unwrap()]))
                .unwrap();
        assert_eq!(p.ws_url(&[]), "wss://api.hyperliquid.xyz/ws");
        assert!(
            p.instruments_url().is_none(),
            "metadata is POST-only: config fallback"
        );
    }
}
