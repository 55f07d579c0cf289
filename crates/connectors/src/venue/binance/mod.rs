//! Binance Spot: combined streams over `/stream`, `SUBSCRIBE` with ids and acks, diff-depth
//! books rebuilt from REST snapshots by the documented `U`/`u`/`lastUpdateId` algorithm.
//!
//! - `subscription`: stream names, `SUBSCRIBE`/`UNSUBSCRIBE` frames, ack tracking.
//! - `trade`: `trade` events (aggressor side from `m`).
//! - `ticker`: `ticker` events (Binance's own rolling 24 h ticker).
//! - `book`: depth diffs, REST snapshots and the per-symbol sync state machine.
//! - `fast`: the byte scanner for canonical market data frames (serde reads the rest).
//! - `session`: one connection's [`Session`](crate::conn::Session).
//!
//! Limits respected: at most 5 incoming messages per second per connection (frames are sent
//! 250 ms apart), at most [`FeedSettings::max_streams_per_connection`] streams per connection
//! (three per symbol; more symbols are sharded onto more connections), connections replaced
//! make-before-break before the 24 h limit and on `serverShutdown`.

mod book;
mod fast;
mod session;
mod subscription;
mod ticker;
mod trade;

use crate::ConnectorError;
use crate::conn::{Protocol, Session};
use crate::settings::{FeedSettings, VenueSpec};
use crate::venue::parse::Text;
use model::{Instrument, Symbol, Venue};
use serde::Deserialize;
use std::time::Duration;

pub use book::{DepthSnapshot, DepthUpdate};
pub use ticker::parse_ticker;
pub use trade::parse_trade;

/// The venue name.
pub const VENUE: &str = "binance";
pub const DEFAULT_WS_URL: &str = "wss://stream.binance.com:9443";
pub const DEFAULT_REST_URL: &str = "https://api.binance.com";
/// REST snapshot levels when `depth` is not configured (weight 50).
pub const DEFAULT_DEPTH: usize = 1000;
/// Streams per symbol: `@trade`, `@depth@100ms` and `@ticker`.
pub const STREAMS_PER_SYMBOL: usize = 3;

/// Binance's spelling of a normalized symbol: `BTC-USDT` → `BTCUSDT`.
pub fn native_symbol(symbol: &Symbol) -> String {
    format!("{}{}", symbol.base(), symbol.quote())
}

/// The Binance Spot protocol for a set of symbols.
#[derive(Debug)]
pub struct BinanceProtocol {
    venue: Venue,
    spec: VenueSpec,
}

impl BinanceProtocol {
    pub fn new(spec: VenueSpec) -> Result<Self, ConnectorError> {
        spec.validate_spot("venues.binance")?;
        Ok(Self {
            venue: Venue::new(VENUE).map_err(|e| ConnectorError::Config(e.to_string()))?,
            spec,
        })
    }

    fn depth(&self) -> usize {
        match self.spec.feed.depth {
            0 => DEFAULT_DEPTH,
            n => n,
        }
    }
}

impl Protocol for BinanceProtocol {
    fn venue(&self) -> &Venue {
        &self.venue
    }

    fn spec(&self) -> &VenueSpec {
        &self.spec
    }

    fn shards(&self) -> Vec<Vec<Symbol>> {
        let per = (self.spec.feed.max_streams_per_connection / STREAMS_PER_SYMBOL).max(1);
        self.spec
            .symbols
            .chunks(per)
            .map(<[Symbol]>::to_vec)
            .collect()
    }

    fn ws_url(&self, _shard: &[Symbol]) -> String {
        format!("{}/stream", self.spec.ws_base(DEFAULT_WS_URL))
    }

    fn session(&self, shard: &[Symbol]) -> Box<dyn Session> {
        Box::new(session::BinanceSession::new(self, shard, false))
    }

    fn standby_session(&self, shard: &[Symbol]) -> Box<dyn Session> {
        Box::new(session::BinanceSession::new(self, shard, true))
    }

    fn send_interval(&self) -> Duration {
        // 4 frames/s leaves room under the 5/s limit for pongs.
        Duration::from_millis(250)
    }

    fn rotate_after(&self) -> Option<Duration> {
        Some(Duration::from_secs(self.spec.feed.rotate_after_secs))
    }

    fn instruments_url(&self) -> Option<String> {
        let names: Vec<String> = self
            .spec
            .symbols
            .iter()
            .map(|s| format!("%22{}%22", native_symbol(s)))
            .collect();
        Some(format!(
            "{}/api/v3/exchangeInfo?symbols=%5B{}%5D",
            self.spec.rest_base(DEFAULT_REST_URL),
            names.join(",")
        ))
    }

    fn parse_instruments(&self, body: &str) -> Result<Vec<Instrument>, ConnectorError> {
        parse_exchange_info(&self.venue, &self.spec.feed, &self.spec.symbols, body)
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
struct ExchangeInfo<'a> {
    #[serde(borrow)]
    symbols: Vec<SymbolInfo<'a>>,
}

#[derive(Deserialize)]
struct SymbolInfo<'a> {
    #[serde(borrow)]
    symbol: Text<'a>,
    #[serde(borrow, default)]
    filters: Vec<Filter<'a>>,
}

#[derive(Deserialize)]
struct Filter<'a> {
    #[serde(borrow, rename = "filterType")]
    kind: Text<'a>,
    #[serde(borrow, rename = "tickSize")]
    tick_size: Option<Text<'a>>,
    #[serde(borrow, rename = "stepSize")]
    step_size: Option<Text<'a>>,
}

/// `GET /api/v3/exchangeInfo`: tick size from `PRICE_FILTER`, lot size from `LOT_SIZE`, for
/// the configured symbols (others ignored). A configured symbol missing from the answer keeps
/// its configured values.
pub fn parse_exchange_info(
    venue: &Venue,
    feed: &FeedSettings,
    symbols: &[Symbol],
    body: &str,
) -> Result<Vec<Instrument>, String> {
    let info: ExchangeInfo =
        serde_json::from_str(body).map_err(|e| format!("exchangeInfo: {e}"))?;
    let mut out = Vec::new();
    for symbol in symbols {
        let native = native_symbol(symbol);
        let mut instrument = feed.instrument(venue, symbol, native.clone());
        if let Some(info) = info.symbols.iter().find(|s| *s.symbol == *native) {
            for filter in &info.filters {
                let parse = |t: Option<&str>| {
                    t.and_then(|t| model::parse_decimal(t).ok())
                        .map(|d| d.normalize())
                };
                match filter.kind.as_str() {
                    "PRICE_FILTER" => {
                        if let Some(tick) = parse(filter.tick_size.as_deref()) {
                            instrument.tick_size = tick;
                        }
                    }
                    "LOT_SIZE" => {
                        if let Some(lot) = parse(filter.step_size.as_deref()) {
                            instrument.lot_size = lot;
                        }
                    }
                    _ => {}
                }
            }
        }
        out.push(instrument);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::Decimal;

    #[test]
    fn maps_symbols_and_shards_within_the_stream_limit() {
        let symbols: Vec<Symbol> = ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
            .iter()
            .map(|s| Symbol::new(s).unwrap())
            .collect();
        assert_eq!(native_symbol(&symbols[0]), "BTCUSDT");
        let mut spec = VenueSpec::new(symbols);
        spec.feed.max_streams_per_connection = 6;
        let p = BinanceProtocol::new(spec.clone()).unwrap();
        let shards: Vec<usize> = p.shards().iter().map(Vec::len).collect();
        assert_eq!(shards, [2, 1], "3 streams per symbol, 6 per connection");
        spec.feed.max_streams_per_connection = 1024;
        assert_eq!(BinanceProtocol::new(spec).unwrap().shards().len(), 1);
    }

    #[test]
    fn exchange_info_from_the_docs_gives_tick_and_lot() {
        let body = include_str!("../../../test_data/binance/rest_exchangeinfo_snapshot.json");
        let venue = Venue::new("binance").unwrap();
        let symbols = [
            Symbol::new("ETH-BTC").unwrap(),
            Symbol::new("XRP-BTC").unwrap(),
        ];
        let list = parse_exchange_info(&venue, &FeedSettings::default(), &symbols, body).unwrap();
        assert_eq!(list[0].native_symbol, "ETHBTC");
        assert_eq!(list[0].tick_size.to_string(), "0.000001");
        assert_eq!(list[0].lot_size.to_string(), "0.001");
        assert_eq!(
            list[1].tick_size,
            Decimal::ZERO,
            "unknown to the venue: config fallback"
        );
        assert!(parse_exchange_info(&venue, &FeedSettings::default(), &symbols, "{").is_err());
    }
}
