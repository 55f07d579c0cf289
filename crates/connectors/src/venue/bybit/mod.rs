//! Bybit v5 public WebSocket: `orderbook.{depth}.{symbol}` (snapshot, then deltas with
//! consecutive update ids `u`; a snapshot may come again at any time and replaces the book),
//! `publicTrade.{symbol}` and `tickers.{symbol}` (Bybit's own 24 h ticker; on linear also
//! funding, mark/index price and open interest), for spot and USDT linear perpetuals, and
//! `allLiquidation.{symbol}` for the perpetuals.
//!
//! - `wire`: the one-pass frame shape (request answers, pushes of every topic).
//! - `ticker`: the `tickers` parser, merging linear deltas into whole tickers and the
//!   perpetual's funding, mark and open interest.
//! - `liquidation`: the `allLiquidation` parser.
//! - `depth`: the prices of each book as Bybit publishes it (its top `depth`), so levels a
//!   delta pushes beyond the depth are removed locally.
//! - `session`: one connection's [`Session`](crate::conn::Session): subscriptions acked by
//!   `req_id`, per-symbol `u` continuity, trades, the `ping` every 20 s.
//!
//! Symbols: `BTC-USDT` ↔ `BTCUSDT` on the spot endpoint, `BTC-USDT-PERP` ↔ `BTCUSDT` on the
//! linear endpoint (Bybit uses one name for both; each connection serves one category).

mod depth;
mod liquidation;
mod session;
mod ticker;
mod wire;

use crate::ConnectorError;
use crate::conn::{Protocol, Session};
use crate::settings::{FeedSettings, VenueSpec};
use crate::venue::parse::Text;
use model::{Instrument, Symbol, Venue};
use serde::Deserialize;
use std::time::Duration;

pub use wire::{OrderbookUpdate, parse_orderbook, parse_trades};

pub const VENUE: &str = "bybit";
/// Base URL; a spot connection appends `/v5/public/spot`, a linear one `/v5/public/linear`.
pub const DEFAULT_WS_URL: &str = "wss://stream.bybit.com";
pub const DEFAULT_REST_URL: &str = "https://api.bybit.com";
/// Book depth subscribed when `depth` is not configured.
pub const DEFAULT_DEPTH: usize = 50;
/// Depths both the spot and the linear endpoints serve.
pub const DEPTHS: [usize; 4] = [1, 50, 200, 1000];
/// Topics per symbol at most: the book, the trades, the ticker and (perpetuals) the
/// liquidations.
pub const TOPICS_PER_SYMBOL: usize = 4;

/// Bybit's name of a normalized symbol (both categories): `BTC-USDT(-PERP)` → `BTCUSDT`.
pub fn native_symbol(symbol: &Symbol) -> String {
    format!("{}{}", symbol.base(), symbol.quote())
}

/// The Bybit category of a symbol: `spot` or `linear` (a `-PERP`).
pub fn category(symbol: &Symbol) -> &'static str {
    if symbol.is_perpetual() {
        "linear"
    } else {
        "spot"
    }
}

/// The Bybit v5 public protocol for a set of spot and linear symbols.
#[derive(Debug)]
pub struct BybitProtocol {
    venue: Venue,
    spec: VenueSpec,
    depth: usize,
}

impl BybitProtocol {
    pub fn new(spec: VenueSpec) -> Result<Self, ConnectorError> {
        spec.validate("venues.bybit")?;
        let depth = match spec.feed.depth {
            0 => DEFAULT_DEPTH,
            n if DEPTHS.contains(&n) => n,
            n => {
                return Err(ConnectorError::setting(
                    "venues.bybit.feed.depth",
                    format!("must be one of {DEPTHS:?}, got {n}"),
                ));
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

impl Protocol for BybitProtocol {
    fn venue(&self) -> &Venue {
        &self.venue
    }

    fn spec(&self) -> &VenueSpec {
        &self.spec
    }

    /// Spot and linear symbols live on different endpoints: separate shards, each cut by
    /// `max_streams_per_connection` (3 topics a symbol).
    fn shards(&self) -> Vec<Vec<Symbol>> {
        let per = (self.spec.feed.max_streams_per_connection / TOPICS_PER_SYMBOL).max(1);
        let mut shards = Vec::new();
        for linear in [false, true] {
            let group: Vec<Symbol> = self
                .spec
                .symbols
                .iter()
                .filter(|s| s.is_perpetual() == linear)
                .cloned()
                .collect();
            shards.extend(group.chunks(per).map(<[Symbol]>::to_vec));
        }
        shards
    }

    fn ws_url(&self, shard: &[Symbol]) -> String {
        let category = shard.first().map_or("spot", category);
        format!("{}/v5/public/{category}", self.spec.ws_base(DEFAULT_WS_URL))
    }

    fn session(&self, shard: &[Symbol]) -> Box<dyn Session> {
        Box::new(session::BybitSession::new(self, shard))
    }

    fn send_interval(&self) -> Duration {
        Duration::from_millis(100)
    }

    fn instruments_url(&self) -> Option<String> {
        self.instruments_urls().into_iter().next()
    }

    fn instruments_urls(&self) -> Vec<String> {
        let base = self.spec.rest_base(DEFAULT_REST_URL);
        ["spot", "linear"]
            .into_iter()
            .filter(|c| self.spec.symbols.iter().any(|s| category(s) == *c))
            .map(|c| format!("{base}/v5/market/instruments-info?category={c}"))
            .collect()
    }

    fn parse_instruments(&self, body: &str) -> Result<Vec<Instrument>, ConnectorError> {
        parse_instruments_info(&self.venue, &self.spec.feed, &self.spec.symbols, body)
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
#[serde(rename_all = "camelCase")]
struct Answer<'a> {
    ret_code: i64,
    #[serde(borrow, default)]
    ret_msg: Option<Text<'a>>,
    #[serde(borrow)]
    result: Option<InfoResult<'a>>,
}

#[derive(Deserialize)]
struct InfoResult<'a> {
    #[serde(borrow, default)]
    category: Option<Text<'a>>,
    #[serde(borrow, default)]
    list: Vec<Info<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Info<'a> {
    #[serde(borrow)]
    symbol: Text<'a>,
    #[serde(borrow, default)]
    price_filter: Option<PriceFilter<'a>>,
    #[serde(borrow, default)]
    lot_size_filter: Option<LotFilter<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PriceFilter<'a> {
    #[serde(borrow, default)]
    tick_size: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LotFilter<'a> {
    /// Linear: the quantity step.
    #[serde(borrow, default)]
    qty_step: Option<Text<'a>>,
    /// Spot: the base quantity precision.
    #[serde(borrow, default)]
    base_precision: Option<Text<'a>>,
}

/// `GET /v5/market/instruments-info?category=…`: tick size `priceFilter.tickSize`, lot size
/// `lotSizeFilter.qtyStep` (linear) or `basePrecision` (spot). `body` is one answer or a JSON
/// array of answers (spot, linear) as the connector joins them.
pub fn parse_instruments_info(
    venue: &Venue,
    feed: &FeedSettings,
    symbols: &[Symbol],
    body: &str,
) -> Result<Vec<Instrument>, String> {
    let answers: Vec<Answer> = if body.trim_start().starts_with('[') {
        serde_json::from_str(body).map_err(|e| format!("instruments-info: {e}"))?
    } else {
        vec![serde_json::from_str(body).map_err(|e| format!("instruments-info: {e}"))?]
    };
    let mut found: Vec<(&str, &Info)> = Vec::new();
    for answer in &answers {
        if answer.ret_code != 0 {
            return Err(format!(
                "instruments-info: Bybit error {}: {}",
                answer.ret_code,
                answer.ret_msg.as_deref().unwrap_or_default()
            ));
        }
        if let Some(result) = &answer.result {
            let category = result.category.as_deref().unwrap_or_default();
            found.extend(result.list.iter().map(|i| (category, i)));
        }
    }
    let dec = |t: Option<&Text>| {
        t.and_then(|t| model::parse_decimal(t).ok())
            .map(|d| d.normalize())
    };
    Ok(symbols
        .iter()
        .map(|symbol| {
            let native = native_symbol(symbol);
            let mut instrument = feed.instrument(venue, symbol, native.clone());
            if let Some((_, info)) = found
                .iter()
                .find(|(c, i)| *c == category(symbol) && i.symbol.as_str() == native)
            {
                if let Some(tick) = dec(info
                    .price_filter
                    .as_ref()
                    .and_then(|p| p.tick_size.as_ref()))
                {
                    instrument.tick_size = tick;
                }
                let lot = info
                    .lot_size_filter
                    .as_ref()
                    .and_then(|l| l.qty_step.as_ref().or(l.base_precision.as_ref()));
                if let Some(lot) = dec(lot) {
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

    fn symbols(list: &[&str]) -> Vec<Symbol> {
        list.iter().map(|s| Symbol::new(s).unwrap()).collect()
    }

    #[test]
    fn spot_and_linear_get_their_own_connections_and_endpoints() {
        let mut spec = VenueSpec::new(symbols(&["BTC-USDT", "BTC-USDT-PERP", "ETH-USDT"]));
        spec.feed.max_streams_per_connection = 2;
        let p = BybitProtocol::new(spec).unwrap();
        let shards = p.shards();
        let names: Vec<Vec<&str>> = shards
            .iter()
            .map(|s| s.iter().map(Symbol::as_str).collect())
            .collect();
        assert_eq!(
            names,
            [vec!["BTC-USDT"], vec!["ETH-USDT"], vec!["BTC-USDT-PERP"]]
        );
        assert_eq!(
            p.ws_url(&shards[0]),
            "wss://stream.bybit.com/v5/public/spot"
        );
        assert_eq!(
            p.ws_url(&shards[2]),
            "wss://stream.bybit.com/v5/public/linear"
        );
        assert_eq!(native_symbol(&shards[2][0]), "BTCUSDT");
        assert_eq!(p.instruments_urls().len(), 2);
        let mut spec = VenueSpec::new(symbols(&["BTC-USDT"]));
        spec.feed.depth = 25;
        assert!(
            BybitProtocol::new(spec)
                .unwrap_err()
                .to_string()
                .contains("venues.bybit.feed.depth")
        );
    }

    #[test]
    fn instruments_from_the_docs_give_tick_and_lot_per_category() {
        let spot = include_str!("../../../test_data/bybit/rest_instruments_spot_snapshot.json");
        let linear = include_str!("../../../test_data/bybit/rest_instruments_linear_snapshot.json");
        let venue = Venue::new(VENUE).unwrap();
        let list = parse_instruments_info(
            &venue,
            &FeedSettings::default(),
            &symbols(&["BTC-USDT", "BTC-USDT-PERP"]),
            &format!("[{spot},{linear}]"),
        )
        .unwrap();
        assert_eq!(
            (list[0].tick_size.to_string(), list[0].lot_size.to_string()),
            ("0.01".into(), "0.000001".into())
        );
        assert_eq!(
            (list[1].tick_size.to_string(), list[1].lot_size.to_string()),
            ("0.1".into(), "0.001".into())
        );
        let error = parse_instruments_info(
            &venue,
            &FeedSettings::default(),
            &symbols(&["BTC-USDT"]),
            r#"{"retCode":10001,"retMsg":"params error","result":{}}"#,
        );
        assert!(error.unwrap_err().contains("10001"));
    }
}
