//! OKX v5 public WebSocket: `books` (400-level snapshot, then incremental updates chained by
//! `prevSeqId` → `seqId`, CRC32 `checksum` over the top 25 levels), `trades` and `tickers`
//! (the venue's own 24 h ticker), for spot (`instType` SPOT) and perpetual swaps (SWAP).
//!
//! - `wire`: the one-pass frame shape (events, pushes of every channel) and its level type.
//! - `subscription`: `subscribe`/`unsubscribe` frames and per-argument ack tracking.
//! - `ticker`: the `tickers` channel's parser (base-currency volume for spot and swaps).
//! - `contract`: swap contract sizes (`ctVal`) and the exact conversion to base units.
//! - `perp`: the swaps' `funding-rate`, `mark-price`, `index-tickers`, `open-interest` and
//!   `liquidation-orders` parsers.
//! - `session`: one connection's [`Session`](crate::conn::Session): per-instrument sequence
//!   chains, trades, the swaps' perpetual channels (`session/perp`), the text `ping`
//!   keep-alive.
//!
//! Symbols: `BTC-USDT` ↔ `BTC-USDT` (SPOT), `BTC-USDT-PERP` ↔ `BTC-USDT-SWAP` (SWAP). OKX
//! sends swap sizes in contracts; the session publishes them in base units (`size × ctVal`,
//! exact), with `ctVal` from the instruments endpoint or the config's `contract_size`.

mod contract;
mod perp;
mod session;
mod subscription;
mod ticker;
mod wire;

use crate::ConnectorError;
use crate::conn::{Protocol, Session};
use crate::settings::{FeedSettings, VenueSpec};
use crate::venue::parse::{Text, excerpt};
use contract::Units;
use model::{Decimal, Instrument, PERP_SUFFIX, Symbol, Venue};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

pub use ticker::parse_tickers;
pub use wire::{BookUpdate, parse_book, parse_trades};

pub const VENUE: &str = "okx";
/// Base URL; the connector appends `/ws/v5/public`.
pub const DEFAULT_WS_URL: &str = "wss://ws.okx.com:8443";
pub const DEFAULT_REST_URL: &str = "https://www.okx.com";
/// Channels per spot instrument: `books`, `trades` and `tickers`.
pub const CHANNELS_PER_SYMBOL: usize = 3;
/// Channels per swap: those, `funding-rate`, `mark-price`, `index-tickers` and
/// `open-interest` (plus one `liquidation-orders` per connection).
pub const CHANNELS_PER_SWAP: usize = 7;
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
    /// Base units per contract of each configured swap, by OKX `instId`: the config's
    /// `contract_size` at first, replaced by the venue's `ctVal` when the instruments answer
    /// is parsed. Each new session reads it (the connector parses metadata before it opens any
    /// connection, and replay does the same with the recorded answer).
    contract_sizes: RwLock<HashMap<String, Decimal>>,
}

impl OkxProtocol {
    pub fn new(spec: VenueSpec) -> Result<Self, ConnectorError> {
        spec.validate("venues.okx")?;
        let contract_sizes = spec
            .symbols
            .iter()
            .filter(|s| s.is_perpetual())
            .filter_map(|s| {
                let size = spec.feed.instruments.get(s.as_str())?.contract_size?;
                Some((native_symbol(s), size))
            })
            .collect();
        Ok(Self {
            venue: Venue::new(VENUE).map_err(|e| ConnectorError::Config(e.to_string()))?,
            spec,
            contract_sizes: RwLock::new(contract_sizes),
        })
    }

    /// What `symbol`'s sizes are counted in on the wire: base units (spot), contracts of a
    /// known size, or contracts of an unknown size (no metadata, no config).
    pub(crate) fn units(&self, symbol: &Symbol) -> Units {
        if !symbol.is_perpetual() {
            return Units::Base;
        }
        let sizes = self
            .contract_sizes
            .read()
            .unwrap_or_else(|e| e.into_inner());
        sizes
            .get(&native_symbol(symbol))
            .map_or(Units::Unknown, |c| Units::Contracts(*c))
    }

    /// The swap's contract size in base units, if known (`ctVal`, or the config's).
    pub fn contract_size(&self, symbol: &Symbol) -> Option<Decimal> {
        match self.units(symbol) {
            Units::Contracts(c) => Some(c),
            Units::Base | Units::Unknown => None,
        }
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

    /// Consecutive symbols while their channels (3 a spot pair, 7 a swap, 1 more for a
    /// connection with swaps: `liquidation-orders`) fit `max_streams_per_connection`; at least
    /// one symbol a connection.
    fn shards(&self) -> Vec<Vec<Symbol>> {
        let budget = self.spec.feed.max_streams_per_connection;
        let mut shards: Vec<Vec<Symbol>> = Vec::new();
        let mut used = 0;
        let mut has_swap = false;
        for symbol in &self.spec.symbols {
            let perp = symbol.is_perpetual();
            let cost = if perp {
                CHANNELS_PER_SWAP
            } else {
                CHANNELS_PER_SYMBOL
            } + usize::from(perp && !has_swap);
            match shards.last_mut() {
                Some(shard) if used + cost <= budget => {
                    shard.push(symbol.clone());
                    used += cost;
                    has_swap |= perp;
                }
                _ => {
                    shards.push(vec![symbol.clone()]);
                    used = if perp {
                        CHANNELS_PER_SWAP + 1
                    } else {
                        CHANNELS_PER_SYMBOL
                    };
                    has_swap = perp;
                }
            }
        }
        shards
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
        let (list, sizes) = parse_metadata(&self.venue, &self.spec.feed, &self.spec.symbols, body)
            .map_err(ConnectorError::Connection)?;
        let mut known = self
            .contract_sizes
            .write()
            .unwrap_or_else(|e| e.into_inner());
        for (native, size) in sizes {
            match size {
                Ok(size) => {
                    known.insert(native, size);
                }
                Err(reason) => {
                    tracing::warn!(inst = %native, %reason, "OKX swap without a usable contract size: its sizes are not published");
                    known.remove(&native);
                }
            }
        }
        Ok(list)
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
    /// SWAP: the contract value, in `ctValCcy`.
    #[serde(borrow, default)]
    ct_val: Option<Text<'a>>,
    #[serde(borrow, default)]
    ct_val_ccy: Option<Text<'a>>,
}

/// A swap's `ctVal` as base units per contract: refused when it is missing, not a positive
/// decimal, or counted in another currency than the base (an inverse swap).
fn base_contract_size(symbol: &Symbol, info: &InstrumentInfo) -> Result<Decimal, String> {
    let text = info.ct_val.as_deref().unwrap_or_default();
    let ct_val = model::parse_decimal(text)
        .ok()
        .filter(|c| *c > Decimal::ZERO)
        .ok_or_else(|| format!("ctVal {:?} is not a positive decimal", excerpt(text)))?;
    match info.ct_val_ccy.as_deref() {
        Some(ccy) if ccy == symbol.base() => Ok(ct_val.normalize()),
        other => Err(format!(
            "ctValCcy {:?} is not the base currency {} (an inverse swap)",
            other.map(excerpt),
            symbol.base()
        )),
    }
}

/// `GET /api/v5/public/instruments?instType=…`: tick size `tickSz`, lot size `lotSz` (for a
/// swap, `lotSz × ctVal`: base units, like every size the gateway publishes), for the
/// configured symbols. `body` is one answer, or a JSON array of answers (one per `instType`,
/// as the connector joins them). A configured symbol missing from every answer keeps its
/// configured values.
pub fn parse_instruments(
    venue: &Venue,
    feed: &FeedSettings,
    symbols: &[Symbol],
    body: &str,
) -> Result<Vec<Instrument>, String> {
    parse_metadata(venue, feed, symbols, body).map(|(list, _)| list)
}

/// Swaps' contract sizes found in an answer: `(instId, ctVal in base units or why not)`.
type ContractSizes = Vec<(String, Result<Decimal, String>)>;

/// [`parse_instruments`], and the contract size of every configured swap the answer lists.
fn parse_metadata(
    venue: &Venue,
    feed: &FeedSettings,
    symbols: &[Symbol],
    body: &str,
) -> Result<(Vec<Instrument>, ContractSizes), String> {
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
    let mut sizes = Vec::new();
    let list = symbols
        .iter()
        .map(|symbol| {
            let native = native_symbol(symbol);
            let mut instrument = feed.instrument(venue, symbol, native.clone());
            if let Some(info) = found.iter().find(|i| i.inst_id.as_str() == native) {
                if let Some(tick) = dec(&info.tick_sz) {
                    instrument.tick_size = tick;
                }
                let size = symbol
                    .is_perpetual()
                    .then(|| base_contract_size(symbol, info));
                match (dec(&info.lot_sz), &size) {
                    (Some(lot), None) => instrument.lot_size = lot,
                    (Some(lot), Some(Ok(ct_val))) => {
                        if let Ok(base) = contract::to_base("lotSz", lot, *ct_val) {
                            instrument.lot_size = base;
                        }
                    }
                    // Contracts of an unknown size: keep the configured lot.
                    (Some(_), Some(Err(_))) | (None, _) => {}
                }
                if let Some(size) = size {
                    sizes.push((native, size));
                }
            }
            instrument
        })
        .collect();
    Ok((list, sizes))
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
            ("0.1".into(), "0.0001".into()),
            "swap lot: 0.01 contracts of 0.01 BTC, in base units"
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

    fn perp_spec(contract_size: Option<&str>) -> VenueSpec {
        let mut spec = VenueSpec::new(vec![
            Symbol::new("BTC-USDT").unwrap(),
            Symbol::new("BTC-USDT-PERP").unwrap(),
        ]);
        if let Some(size) = contract_size {
            spec.feed.instruments.insert(
                "BTC-USDT-PERP".into(),
                crate::settings::InstrumentOverride {
                    tick_size: Decimal::ONE,
                    lot_size: Decimal::ONE,
                    contract_size: Some(model::parse_decimal(size).unwrap()),
                },
            );
        }
        spec
    }

    /// The contract size comes from the venue's `ctVal`, else from the config; without either
    /// (or for an inverse swap) it is unknown, never guessed.
    #[test]
    fn contract_sizes_from_ct_val_then_config_and_never_guessed() {
        let swap = include_str!("../../../test_data/okx/rest_instruments_swap_snapshot.json");
        let perp = Symbol::new("BTC-USDT-PERP").unwrap();
        let spot = Symbol::new("BTC-USDT").unwrap();
        let p = OkxProtocol::new(perp_spec(None)).unwrap();
        assert_eq!(
            (p.units(&spot), p.units(&perp)),
            (Units::Base, Units::Unknown)
        );
        p.parse_instruments(swap).unwrap();
        assert_eq!(
            p.contract_size(&perp).map(|c| c.to_string()),
            Some("0.01".into())
        );
        let p = OkxProtocol::new(perp_spec(Some("0.1"))).unwrap();
        assert_eq!(
            p.contract_size(&perp).map(|c| c.to_string()),
            Some("0.1".into()),
            "config"
        );
        p.parse_instruments(swap).unwrap();
        assert_eq!(
            p.contract_size(&perp).map(|c| c.to_string()),
            Some("0.01".into()),
            "venue wins"
        );
        // One line per unusable ctVal: the swap's size becomes unknown.
        for bad in [
            swap.replace(r#""ctValCcy":"BTC""#, r#""ctValCcy":"USD""#),
            swap.replace(r#""ctVal":"0.01""#, r#""ctVal":"""#),
            swap.replace(r#""ctVal":"0.01""#, r#""ctVal":"-1""#),
            swap.replace(r#""ctVal":"0.01","#, ""),
        ] {
            let p = OkxProtocol::new(perp_spec(Some("0.1"))).unwrap();
            let list = p.parse_instruments(&bad).unwrap();
            assert_eq!(p.units(&perp), Units::Unknown, "{bad}");
            assert_eq!(list[1].lot_size, Decimal::ONE, "configured lot kept: {bad}");
        }
    }

    #[test]
    fn shards_count_seven_channels_a_swap_and_one_liquidation_subscription() {
        let mut spec = VenueSpec::new(
            [
                "BTC-USDT",
                "ETH-USDT",
                "BTC-USDT-PERP",
                "ETH-USDT-PERP",
                "SOL-USDT",
            ]
            .iter()
            .map(|s| Symbol::new(s).unwrap())
            .collect(),
        );
        spec.feed.max_streams_per_connection = 14;
        let shards = OkxProtocol::new(spec).unwrap().shards();
        let names: Vec<Vec<&str>> = shards
            .iter()
            .map(|s| s.iter().map(Symbol::as_str).collect())
            .collect();
        // 3 + 3 + (7 + 1) = 14; then 7 + 1 + 3 = 11.
        assert_eq!(
            names,
            [
                vec!["BTC-USDT", "ETH-USDT", "BTC-USDT-PERP"],
                vec!["ETH-USDT-PERP", "SOL-USDT"]
            ]
        );
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
