//! Coinbase Advanced Trade market data: `level2` (snapshot then updates), `market_trades`
//! and `heartbeats`, one channel per subscribe message, sent within 5 s of connecting.
//!
//! - `subscription`: subscribe/unsubscribe frames and the `subscriptions` acknowledgement.
//! - `trade`: `market_trades` (its `side` is the maker's: inverted to the aggressor's).
//! - `book`: `l2_data` events.
//! - `ticker`: `ticker` events (Coinbase's own 24 h ticker).
//! - `session`: one connection's [`Session`](crate::conn::Session), with the per-connection
//!   `sequence_num` check: a gap resubscribes the connection's `level2` products (one product
//!   per connection by default, so exactly the product that lost data).

mod book;
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

pub use book::parse_level2;
pub use ticker::parse_tickers;
pub use trade::parse_market_trades;

pub const VENUE: &str = "coinbase";
pub const DEFAULT_WS_URL: &str = "wss://advanced-trade-ws.coinbase.com";
pub const DEFAULT_REST_URL: &str = "https://api.coinbase.com";

#[derive(Debug)]
pub struct CoinbaseProtocol {
    venue: Venue,
    spec: VenueSpec,
}

impl CoinbaseProtocol {
    pub fn new(spec: VenueSpec) -> Result<Self, ConnectorError> {
        spec.validate_spot("venues.coinbase")?;
        Ok(Self {
            venue: Venue::new(VENUE).map_err(|e| ConnectorError::Config(e.to_string()))?,
            spec,
        })
    }
}

impl Protocol for CoinbaseProtocol {
    fn venue(&self) -> &Venue {
        &self.venue
    }

    fn spec(&self) -> &VenueSpec {
        &self.spec
    }

    fn shards(&self) -> Vec<Vec<Symbol>> {
        let per = self.spec.feed.products_per_connection.max(1);
        self.spec
            .symbols
            .chunks(per)
            .map(<[Symbol]>::to_vec)
            .collect()
    }

    fn ws_url(&self, _shard: &[Symbol]) -> String {
        self.spec.ws_base(DEFAULT_WS_URL).to_string()
    }

    fn session(&self, shard: &[Symbol]) -> Box<dyn Session> {
        Box::new(session::CoinbaseSession::new(self, shard))
    }

    fn send_interval(&self) -> Duration {
        // Under the 8 unauthenticated messages per second per IP; three subscriptions go out
        // well within the 5 s the venue allows.
        Duration::from_millis(200)
    }

    fn instruments_url(&self) -> Option<String> {
        let ids: Vec<String> = self
            .spec
            .symbols
            .iter()
            .map(|s| format!("product_ids={s}"))
            .collect();
        Some(format!(
            "{}/api/v3/brokerage/market/products?{}",
            self.spec.rest_base(DEFAULT_REST_URL),
            ids.join("&")
        ))
    }

    fn parse_instruments(&self, body: &str) -> Result<Vec<Instrument>, ConnectorError> {
        parse_products(&self.venue, &self.spec.feed, &self.spec.symbols, body)
            .map_err(ConnectorError::Connection)
    }

    fn fallback_instruments(&self) -> Vec<Instrument> {
        self.spec
            .symbols
            .iter()
            .map(|s| self.spec.feed.instrument(&self.venue, s, s.to_string()))
            .collect()
    }
}

#[derive(Deserialize)]
struct Products<'a> {
    #[serde(borrow)]
    products: Vec<Product<'a>>,
}

#[derive(Deserialize)]
struct Product<'a> {
    #[serde(borrow)]
    product_id: Text<'a>,
    #[serde(borrow)]
    price_increment: Option<Text<'a>>,
    #[serde(borrow)]
    quote_increment: Option<Text<'a>>,
    #[serde(borrow)]
    base_increment: Option<Text<'a>>,
}

/// `GET /api/v3/brokerage/market/products`: tick = `price_increment` (else
/// `quote_increment`), lot = `base_increment`.
pub fn parse_products(
    venue: &Venue,
    feed: &FeedSettings,
    symbols: &[Symbol],
    body: &str,
) -> Result<Vec<Instrument>, String> {
    let products: Products = serde_json::from_str(body).map_err(|e| format!("products: {e}"))?;
    let dec = |t: Option<&str>| {
        t.and_then(|t| model::parse_decimal(t).ok())
            .map(|d| d.normalize())
    };
    Ok(symbols
        .iter()
        .map(|symbol| {
            let mut instrument = feed.instrument(venue, symbol, symbol.to_string());
            if let Some(p) = products
                .products
                .iter()
                .find(|p| p.product_id.as_str() == symbol.as_str())
            {
                if let Some(tick) =
                    dec(p.price_increment.as_deref()).or_else(|| dec(p.quote_increment.as_deref()))
                {
                    instrument.tick_size = tick;
                }
                if let Some(lot) = dec(p.base_increment.as_deref()) {
                    instrument.lot_size = lot;
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
    fn products_give_tick_and_lot_and_one_product_per_connection_by_default() {
        let body = include_str!("../../../test_data/coinbase/rest_products_snapshot.json");
        let venue = Venue::new(VENUE).unwrap();
        let symbols = [
            Symbol::new("BTC-USD").unwrap(),
            Symbol::new("ETH-USD").unwrap(),
        ];
        let list = parse_products(&venue, &FeedSettings::default(), &symbols, body).unwrap();
        assert_eq!(list[0].tick_size.to_string(), "0.01");
        assert_eq!(list[0].lot_size.to_string(), "0.00000001");
        assert!(parse_products(&venue, &FeedSettings::default(), &symbols, "[]").is_err());
        let p = CoinbaseProtocol::new(VenueSpec::new(symbols.to_vec())).unwrap();
        assert_eq!(p.shards().len(), 2);
        assert!(
            p.instruments_url()
                .unwrap()
                .ends_with("products?product_ids=BTC-USD&product_ids=ETH-USD")
        );
    }
}
