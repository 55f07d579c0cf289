//! OKX v5 public WebSocket: `books` (400-level snapshot, then incremental updates chained by
//! `prevSeqId` → `seqId`, CRC32 `checksum` over the top 25 levels), `trades` and `tickers`
//! (the venue's own 24 h ticker), for spot (`instType` SPOT) and perpetual swaps (SWAP).
//!
//! - `wire`: the one-pass frame shape (events, pushes of every channel) and its level type.
//! - `subscription`: `subscribe`/`unsubscribe` frames and per-argument ack tracking.
//! - `ticker`: the `tickers` channel's parser (base-currency volume for spot and swaps).
//! - `session`: one connection's [`Session`](crate::conn::Session): per-instrument sequence
//!   chains, trades, the text `ping` keep-alive.
//!
//! Symbols: `BTC-USDT` ↔ `BTC-USDT` (SPOT), `BTC-USDT-PERP` ↔ `BTC-USDT-SWAP` (SWAP). Swap
//! book and trade sizes are in contracts, as OKX sends them (`ctVal` base units each).

mod session;
mod subscription;
mod ticker;
mod wire;

use crate::ConnectorError;
use crate::conn::{Protocol, Session};
use crate::settings::{FeedSettings, VenueSpec};
use crate::venue::parse::Text;
use model::{Instrument, PERP_SUFFIX, Symbol, Venue};
use serde::Deserialize;
use std::time::Duration;

pub use ticker::parse_tickers;
pub use wire::{BookUpdate, parse_book, parse_trades};

pub const VENUE: &str = "okx";
/// Base URL; the connector appends `/ws/v5/public`.
pub const DEFAULT_WS_URL: &str = "wss://ws.okx.com:8443";
pub const DEFAULT_REST_URL: &str = "https://www.okx.com";
/// Channels per instrument: `books`, `trades` and `tickers`.
pub const CHANNELS_PER_SYMBOL: usize = 3;
/// OKX's swap suffix.
const SWAP_SUFFIX: &str = "-SWAP";

/// OKX's instrument id of a normalized symbol: `BTC-USDT` → `BTC-USDT`, `BTC-USDT-PERP` →
/// `BTC-USDT-SWAP`.
pub fn native_symbol(symbol: &Symbol) -> String {
    match symbol.as_str().strip_suffix(PERP_SUFFIX) {
        Some(pair) => format!("{pair}{SWAP_SUFFIX}"),
        None => symbol.to_string(),
    }
}

/// The normalized symbol of an OKX instrument id (`BTC-USDT-SWAP` → `BTC-USDT-PERP`), if it is
/// a spot pair or a perpetual swap.
pub fn normalized_symbol(native: &str) -> Option<Symbol> {
    match native.strip_suffix(SWAP_SUFFIX) {
        Some(pair) => Symbol::new(&format!("{pair}{PERP_SUFFIX}")).ok(),
        None => Symbol::new(native).ok(),
    }
}

/// The OKX v5 public protocol for a set of spot and swap instruments.
#[derive(Debug)]
pub struct OkxProtocol {
    venue: Venue,
    spec: VenueSpec,
}

impl OkxProtocol {
    pub fn new(spec: VenueSpec) -> Result<Self, ConnectorError> {
        spec.validate("venues.okx")?;
        Ok(Self {
            venue: Venue::new(VENUE).map_err(|e| ConnectorError::Config(e.to_string()))?,
            spec,
        })
    }

    fn instruments_url_for(&self, inst_type: &str) -> String {
        format!(
            "{}/api/v5/public/instruments?instType={inst_type}",
            self.spec.rest_base(DEFAULT_REST_URL)
        )
    }

    /// Send a text `ping` after this long without a frame: before OKX's 30 s idle close and
    /// before the connection's own silence watchdog (`silence_secs`).
    pub fn ping_after(&self) -> Duration {
        Duration::from_secs((self.spec.feed.silence_secs / 2).clamp(1, 20))
    }
}

impl Protocol for OkxProtocol {
    fn venue(&self) -> &Venue {
        &self.venue
    }

    fn spec(&self) -> &VenueSpec {
        &self.spec
    }

    fn shards(&self) -> Vec<Vec<Symbol>> {
        let per = (self.spec.feed.max_streams_per_connection / CHANNELS_PER_SYMBOL).max(1);
        self.spec
            .symbols
            .chunks(per)
            .map(<[Symbol]>::to_vec)
            .collect()
    }

    fn ws_url(&self, _shard: &[Symbol]) -> String {
        format!("{}/ws/v5/public", self.spec.ws_base(DEFAULT_WS_URL))
    }

    fn session(&self, shard: &[Symbol]) -> Box<dyn Session> {
        Box::new(session::OkxSession::new(self, shard))
    }

    fn send_interval(&self) -> Duration {
        // Subscriptions go out in few frames; 3 requests a second keeps well inside the
        // per-connection limit of 480 subscribe/unsubscribe requests an hour for bursts.
        Duration::from_millis(350)
    }

    fn instruments_url(&self) -> Option<String> {
        self.instruments_urls().into_iter().next()
    }

    fn instruments_urls(&self) -> Vec<String> {
        let mut urls = Vec::new();
        if self.spec.symbols.iter().any(|s| !s.is_perpetual()) {
            urls.push(self.instruments_url_for("SPOT"));
        }
        if self.spec.symbols.iter().any(Symbol::is_perpetual) {
            urls.push(self.instruments_url_for("SWAP"));
        }
        urls
    }

    fn parse_instruments(&self, body: &str) -> Result<Vec<Instrument>, ConnectorError> {
        parse_instruments(&self.venue, &self.spec.feed, &self.spec.symbols, body)
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
struct Answer<'a> {
    #[serde(borrow)]
    code: Text<'a>,
    #[serde(borrow, default)]
    msg: Option<Text<'a>>,
    #[serde(borrow, default)]
    data: Vec<InstrumentInfo<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstrumentInfo<'a> {
    #[serde(borrow)]
    inst_id: Text<'a>,
    #[serde(borrow, default)]
    tick_sz: Option<Text<'a>>,
    #[serde(borrow, default)]
    lot_sz: Option<Text<'a>>,
}

/// `GET /api/v5/public/instruments?instType=…`: tick size `tickSz`, lot size `lotSz` (for a
/// swap, in contracts), for the configured symbols. `body` is one answer, or a JSON array of
/// answers (one per `instType`, as the connector joins them). A configured symbol missing from
/// every answer keeps its configured values.
pub fn parse_instruments(
    venue: &Venue,
    feed: &FeedSettings,
    symbols: &[Symbol],
    body: &str,
) -> Result<Vec<Instrument>, String> {
    let answers: Vec<Answer> = if body.trim_start().starts_with('[') {
        serde_json::from_str(body).map_err(|e| format!("instruments: {e}"))?
    } else {
        vec![serde_json::from_str(body).map_err(|e| format!("instruments: {e}"))?]
    };
    let mut found: Vec<&InstrumentInfo> = Vec::new();
    for answer in &answers {
        if answer.code.as_str() != "0" {
            return Err(format!(
                "instruments: OKX error {}: {}",
                answer.code,
                answer.msg.as_deref().unwrap_or_default()
            ));
        }
        found.extend(answer.data.iter());
    }
    let dec = |t: &Option<Text>| {
        t.as_deref()
            .and_then(|t| model::parse_decimal(t).ok())
            .map(|d| d.normalize())
    };
    Ok(symbols
        .iter()
        .map(|symbol| {
            let native = native_symbol(symbol);
            let mut instrument = feed.instrument(venue, symbol, native.clone());
            if let Some(info) = found.iter().find(|i| i.inst_id.as_str() == native) {
                if let Some(tick) = dec(&info.tick_sz) {
                    instrument.tick_size = tick;
                }
                if let Some(lot) = dec(&info.lot_sz) {
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
    fn symbols_map_both_ways() {
        for (normalized, native) in [
            ("BTC-USDT", "BTC-USDT"),
            ("BTC-USDT-PERP", "BTC-USDT-SWAP"),
            ("ETH-USD-PERP", "ETH-USD-SWAP"),
        ] {
            let symbol = Symbol::new(normalized).unwrap();
            assert_eq!(native_symbol(&symbol), native);
            assert_eq!(normalized_symbol(native), Some(symbol));
        }
        assert_eq!(
            normalized_symbol("BTC-USD-250328"),
            None,
            "dated futures are not served"
        );
        assert_eq!(normalized_symbol("BTC-USD-250328-90000-C"), None);
    }

    #[test]
    fn instruments_from_the_docs_give_tick_and_lot_for_spot_and_swap() {
        let spot = include_str!("../../../test_data/okx/rest_instruments_snapshot.json");
        let swap = include_str!("../../../test_data/okx/rest_instruments_swap_snapshot.json");
        let venue = Venue::new(VENUE).unwrap();
        let symbols = [
            Symbol::new("BTC-USDT").unwrap(),
            Symbol::new("BTC-USDT-PERP").unwrap(),
            Symbol::new("DOGE-USDT").unwrap(),
        ];
        let feed = FeedSettings::default();
        let joined = format!("[{spot},{swap}]");
        let list = parse_instruments(&venue, &feed, &symbols, &joined).unwrap();
        assert_eq!(
            (list[0].tick_size.to_string(), list[0].lot_size.to_string()),
            ("0.1".into(), "0.00000001".into())
        );
        assert_eq!(list[1].native_symbol, "BTC-USDT-SWAP");
        assert_eq!(
            (list[1].tick_size.to_string(), list[1].lot_size.to_string()),
            ("0.1".into(), "0.01".into()),
            "swap lot in contracts"
        );
        assert_eq!(
            list[2].tick_size,
            model::Decimal::ZERO,
            "unknown: config fallback"
        );
        assert!(parse_instruments(&venue, &feed, &symbols, spot).is_ok());
        let error = parse_instruments(
            &venue,
            &feed,
            &symbols,
            r#"{"code":"51001","msg":"Instrument ID does not exist","data":[]}"#,
        );
        assert!(error.unwrap_err().contains("51001"));
        assert!(parse_instruments(&venue, &feed, &symbols, "{").is_err());
    }

    #[test]
    fn metadata_urls_follow_the_configured_market_types() {
        let spec = |s: &[&str]| VenueSpec::new(s.iter().map(|s| Symbol::new(s).unwrap()).collect());
        let urls = |s: &[&str]| OkxProtocol::new(spec(s)).unwrap().instruments_urls();
        assert_eq!(
            urls(&["BTC-USDT"]),
            ["https://www.okx.com/api/v5/public/instruments?instType=SPOT"]
        );
        assert_eq!(urls(&["BTC-USDT-PERP"]).len(), 1);
        assert!(urls(&["BTC-USDT-PERP"])[0].ends_with("instType=SWAP"));
        assert_eq!(urls(&["BTC-USDT", "BTC-USDT-PERP"]).len(), 2);
        let p = OkxProtocol::new(spec(&["BTC-USDT"])).unwrap();
        assert_eq!(p.ws_url(&[]), "wss://ws.okx.com:8443/ws/v5/public");
        assert_eq!(p.ping_after(), Duration::from_secs(15));
    }
}
