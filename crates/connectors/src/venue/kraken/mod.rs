//! Kraken Spot WebSocket v2: `book` (snapshot + updates, truncated to the subscribed depth,
//! CRC32 checksum verified on every message with the exact decimal strings), `trade` and
//! `ticker` (Kraken's own 24 h ticker).
//!
//! - `subscription`: `subscribe`/`unsubscribe` frames with `req_id`, ack tracking.
//! - `trade`: `trade` updates (Kraken's `side` is the taker's).
//! - `ticker`: `ticker` messages (exact numbers, base volume, Kraken's 24 h change).
//! - `book`: book messages (numbers read as raw JSON text so trailing zeros survive) and the
//!   depth-truncated mirror that verifies the checksum.
//! - `session`: one connection's [`Session`](crate::conn::Session).
//!
//! Symbols: `BTC-USD` ↔ `BTC/USD`; Kraken's legacy `XBT` (REST `wsname` `XBT/USD`) is read as
//! `BTC` both ways.

mod book;
mod session;
mod subscription;
mod ticker;
mod trade;

use crate::ConnectorError;
use crate::conn::{Protocol, Session};
use crate::settings::{FeedSettings, VenueSpec};
use crate::venue::parse::Text;
use model::{Decimal, Instrument, Symbol, Venue};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

pub use book::{BookMessage, KrakenBook};
pub use ticker::parse_tickers;
pub use trade::parse_trades;

pub const VENUE: &str = "kraken";
/// Base URL; the connector appends `/v2`.
pub const DEFAULT_WS_URL: &str = "wss://ws.kraken.com";
pub const DEFAULT_REST_URL: &str = "https://api.kraken.com";
/// Book depth subscribed when `depth` is not configured.
pub const DEFAULT_DEPTH: usize = 10;
/// Depths Kraken accepts.
pub const DEPTHS: [usize; 5] = [10, 25, 100, 500, 1000];

/// Kraken's v2 spelling of a normalized symbol: `BTC-USD` → `BTC/USD` (`XBT` becomes `BTC`).
pub fn native_symbol(symbol: &Symbol) -> String {
    canonical(&format!("{}/{}", symbol.base(), symbol.quote()))
}

/// A Kraken pair name with the `XBT` alias replaced: `XBT/USD` → `BTC/USD`.
pub fn canonical(native: &str) -> String {
    match native.split_once('/') {
        Some((base, quote)) => format!("{}/{}", alias(base), alias(quote)),
        None => native.to_string(),
    }
}

fn alias(asset: &str) -> &str {
    if asset == "XBT" { "BTC" } else { asset }
}

/// The normalized symbol of a Kraken pair name (`XBT/USD` → `BTC-USD`), if well formed.
pub fn normalized_symbol(native: &str) -> Option<Symbol> {
    let canonical = canonical(native);
    let (base, quote) = canonical.split_once('/')?;
    Symbol::new(&format!("{base}-{quote}")).ok()
}

#[derive(Debug)]
pub struct KrakenProtocol {
    venue: Venue,
    spec: VenueSpec,
    depth: usize,
}

impl KrakenProtocol {
    pub fn new(spec: VenueSpec) -> Result<Self, ConnectorError> {
        spec.validate_spot("venues.kraken")?;
        let depth = match spec.feed.depth {
            0 => DEFAULT_DEPTH,
            n if DEPTHS.contains(&n) => n,
            n => {
                return Err(ConnectorError::Config(format!(
                    "venues.kraken.feed.depth must be one of {DEPTHS:?}, got {n}"
                )));
            }
        };
        Ok(Self {
            venue: Venue::new(VENUE).map_err(|e| ConnectorError::Config(e.to_string()))?,
            spec,
            depth,
        })
    }

    /// The subscribed book depth.
    pub fn depth(&self) -> usize {
        self.depth
    }
}

impl Protocol for KrakenProtocol {
    fn venue(&self) -> &Venue {
        &self.venue
    }

    fn spec(&self) -> &VenueSpec {
        &self.spec
    }

    fn shards(&self) -> Vec<Vec<Symbol>> {
        vec![self.spec.symbols.clone()]
    }

    fn ws_url(&self, _shard: &[Symbol]) -> String {
        format!("{}/v2", self.spec.ws_base(DEFAULT_WS_URL))
    }

    fn session(&self, shard: &[Symbol]) -> Box<dyn Session> {
        Box::new(session::KrakenSession::new(self, shard))
    }

    fn send_interval(&self) -> Duration {
        Duration::from_millis(100)
    }

    fn instruments_url(&self) -> Option<String> {
        Some(format!(
            "{}/0/public/AssetPairs",
            self.spec.rest_base(DEFAULT_REST_URL)
        ))
    }

    fn parse_instruments(&self, body: &str) -> Result<Vec<Instrument>, ConnectorError> {
        parse_asset_pairs(&self.venue, &self.spec.feed, &self.spec.symbols, body)
            .map_err(ConnectorError::Connection)
    }

    fn fallback_instruments(&self) -> Vec<Instrument> {
        self.spec
            .symbols
            .iter()
            .map(|s| self.spec.feed.instrument(&self.venue, s, native_symbol(s)))
            .collect()
    }
}

#[derive(Deserialize)]
struct AssetPairs<'a> {
    #[serde(default)]
    error: Vec<String>,
    #[serde(borrow, default)]
    result: HashMap<Text<'a>, AssetPair<'a>>,
}

#[derive(Deserialize)]
struct AssetPair<'a> {
    #[serde(borrow)]
    wsname: Option<Text<'a>>,
    #[serde(borrow)]
    tick_size: Option<Text<'a>>,
    pair_decimals: Option<u32>,
    lot_decimals: Option<u32>,
}

/// `GET /0/public/AssetPairs`: tick size (`tick_size`, else `10^-pair_decimals`) and lot size
/// (`10^-lot_decimals`) of the configured symbols, matched by `wsname` with `XBT` read as `BTC`.
pub fn parse_asset_pairs(
    venue: &Venue,
    feed: &FeedSettings,
    symbols: &[Symbol],
    body: &str,
) -> Result<Vec<Instrument>, String> {
    let pairs: AssetPairs = serde_json::from_str(body).map_err(|e| format!("AssetPairs: {e}"))?;
    if !pairs.error.is_empty() {
        return Err(format!("AssetPairs: {}", pairs.error.join("; ")));
    }
    let by_symbol: HashMap<Symbol, &AssetPair> = pairs
        .result
        .values()
        .filter_map(|p| Some((normalized_symbol(p.wsname.as_deref()?)?, p)))
        .collect();
    Ok(symbols
        .iter()
        .map(|symbol| {
            let mut instrument = feed.instrument(venue, symbol, native_symbol(symbol));
            if let Some(pair) = by_symbol.get(symbol) {
                let tick = pair
                    .tick_size
                    .as_deref()
                    .and_then(|t| model::parse_decimal(t).ok())
                    .or_else(|| pair.pair_decimals.map(|d| Decimal::new(1, d.min(28))));
                if let Some(tick) = tick {
                    instrument.tick_size = tick.normalize();
                }
                if let Some(d) = pair.lot_decimals {
                    instrument.lot_size = Decimal::new(1, d.min(28));
                }
            }
            instrument
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_map_both_ways_with_the_xbt_alias() {
        let cases = [
            ("BTC-USD", "BTC/USD"),
            ("XBT-USD", "BTC/USD"),
            ("ETH-XBT", "ETH/BTC"),
            ("SOL-EUR", "SOL/EUR"),
        ];
        for (normalized, native) in cases {
            assert_eq!(native_symbol(&Symbol::new(normalized).unwrap()), native);
        }
        assert_eq!(normalized_symbol("XBT/USD").unwrap().as_str(), "BTC-USD");
        assert_eq!(normalized_symbol("BTC/USD").unwrap().as_str(), "BTC-USD");
        assert!(normalized_symbol("BTCUSD").is_none());
        assert!(normalized_symbol("btc/usd").is_none());
    }

    #[test]
    fn asset_pairs_from_the_docs_give_tick_and_lot() {
        let body = include_str!("../../../test_data/kraken/rest_assetpairs_snapshot.json");
        let venue = Venue::new(VENUE).unwrap();
        let symbols = [
            Symbol::new("BTC-USD").unwrap(),
            Symbol::new("ETH-USD").unwrap(),
        ];
        let list = parse_asset_pairs(&venue, &FeedSettings::default(), &symbols, body).unwrap();
        assert_eq!(list[0].tick_size.to_string(), "0.1");
        assert_eq!(list[0].lot_size.to_string(), "0.00000001");
        assert_eq!(list[0].native_symbol, "BTC/USD");
        assert_eq!(list[1].tick_size.to_string(), "0.01");
        let error = parse_asset_pairs(
            &venue,
            &FeedSettings::default(),
            &symbols,
            r#"{"error":["EGeneral:Internal error"]}"#,
        );
        assert!(error.unwrap_err().contains("Internal error"));
    }

    /// Regression (issue 15): Kraken's REST escapes slashes (`"wsname":"AAVE\/AUD"`), which a
    /// borrowed `&str` cannot hold: tick and lot silently became 0.
    #[test]
    fn asset_pairs_with_escaped_slashes_give_tick_and_lot() {
        let body = include_str!("../../../test_data/kraken/rest_assetpairs_escaped.json");
        assert!(body.contains(r#""wsname":"AAVE\/AUD""#));
        let venue = Venue::new(VENUE).unwrap();
        let symbols = [
            Symbol::new("AAVE-AUD").unwrap(),
            Symbol::new("BTC-USD").unwrap(),
        ];
        let list = parse_asset_pairs(&venue, &FeedSettings::default(), &symbols, body).unwrap();
        assert_eq!(list[0].tick_size.to_string(), "0.01");
        assert_eq!(list[0].lot_size.to_string(), "0.00000001");
        assert_eq!(list[1].tick_size.to_string(), "0.1");
    }

    #[test]
    fn depth_must_be_one_kraken_accepts() {
        let mut spec = VenueSpec::new(vec![Symbol::new("BTC-USD").unwrap()]);
        assert_eq!(KrakenProtocol::new(spec.clone()).unwrap().depth(), 10);
        spec.feed.depth = 25;
        assert_eq!(KrakenProtocol::new(spec.clone()).unwrap().depth(), 25);
        spec.feed.depth = 20;
        assert!(
            KrakenProtocol::new(spec)
                .unwrap_err()
                .to_string()
                .contains("feed.depth")
        );
    }
}
