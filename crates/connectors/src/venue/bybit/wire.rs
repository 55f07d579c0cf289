//! The shape of every Bybit v5 public frame, read in one pass: request answers (`op`,
//! `success`, `req_id`) and pushes (`topic`, `type`, `data`) of `orderbook` and `publicTrade`.

use crate::venue::parse::{Text, decimal, levels};
use model::{Level, Side, Timestamp, Trade};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Any frame Bybit sends on a public endpoint.
#[derive(Debug, Deserialize)]
pub(crate) struct Frame<'a> {
    #[serde(borrow, default)]
    pub topic: Option<Text<'a>>,
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Text<'a>>,
    #[serde(default)]
    pub ts: Option<i64>,
    /// An object for `orderbook`, an array for `publicTrade`: parsed once the topic is known.
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub op: Option<Text<'a>>,
    #[serde(default)]
    pub success: Option<bool>,
    #[serde(borrow, default)]
    pub ret_msg: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub req_id: Option<Text<'a>>,
}

#[derive(Debug, Deserialize)]
struct RawBook<'a> {
    #[serde(borrow)]
    s: Text<'a>,
    #[serde(borrow, default)]
    b: Vec<[Text<'a>; 2]>,
    #[serde(borrow, default)]
    a: Vec<[Text<'a>; 2]>,
    u: u64,
    #[serde(default)]
    seq: Option<u64>,
}

/// A parsed `orderbook` push.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderbookUpdate {
    pub symbol: String,
    pub snapshot: bool,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
    /// Update id: consecutive within a subscription; `1` after a Bybit service restart (with
    /// a snapshot).
    pub u: u64,
    /// Cross sequence (not consecutive; compares data of different depths).
    pub seq: Option<u64>,
    pub ts: Timestamp,
}

pub(crate) fn build_orderbook(
    kind: Option<&str>,
    ts: Option<i64>,
    data: &str,
) -> Result<OrderbookUpdate, String> {
    let snapshot = match kind {
        Some("snapshot") => true,
        Some("delta") => false,
        other => return Err(format!("orderbook: unknown type {other:?}")),
    };
    let raw: RawBook = serde_json::from_str(data).map_err(|e| format!("orderbook: {e}"))?;
    Ok(OrderbookUpdate {
        symbol: raw.s.to_string(),
        snapshot,
        bids: levels("orderbook bid", &raw.b)?,
        asks: levels("orderbook ask", &raw.a)?,
        u: raw.u,
        seq: raw.seq,
        ts: Timestamp::from_millis(ts.unwrap_or_default().max(0)),
    })
}

/// Parses a whole `orderbook` push.
pub fn parse_orderbook(text: &str) -> Result<OrderbookUpdate, String> {
    let frame: Frame = serde_json::from_str(text).map_err(|e| format!("orderbook: {e}"))?;
    let data = frame.data.ok_or("orderbook: data missing")?;
    build_orderbook(frame.kind.as_deref(), frame.ts, data.get())
}

#[derive(Debug, Deserialize)]
struct RawTrade<'a> {
    #[serde(rename = "T")]
    time: i64,
    #[serde(borrow)]
    s: Text<'a>,
    #[serde(rename = "S", borrow)]
    side: Text<'a>,
    #[serde(borrow)]
    v: Text<'a>,
    #[serde(borrow)]
    p: Text<'a>,
    #[serde(borrow)]
    i: Text<'a>,
    #[serde(default)]
    seq: u64,
}

/// One trade: `(symbol, cross sequence, trade)`. `S` is the taker's side; `i` the trade id.
pub(crate) fn build_trades(
    data: &str,
    recv_ts: Timestamp,
) -> Result<Vec<(String, u64, Trade)>, String> {
    let raw: Vec<RawTrade> = serde_json::from_str(data).map_err(|e| format!("publicTrade: {e}"))?;
    raw.into_iter()
        .map(|t| {
            let side = match t.side.as_str() {
                "Buy" => Side::Buy,
                "Sell" => Side::Sell,
                other => return Err(format!("publicTrade: unknown side {other:?}")),
            };
            let price = decimal("trade p", &t.p)?;
            let size = decimal("trade v", &t.v)?;
            if price <= model::Decimal::ZERO || size <= model::Decimal::ZERO {
                return Err(format!("trade {}: p and v must be positive", t.i));
            }
            Ok((
                t.s.to_string(),
                t.seq,
                Trade {
                    id: t.i.to_string(),
                    price,
                    size,
                    side,
                    exchange_ts: Timestamp::from_millis(t.time.max(0)),
                    recv_ts,
                },
            ))
        })
        .collect()
}

/// Parses a whole `publicTrade` push.
pub fn parse_trades(text: &str, recv_ts: Timestamp) -> Result<Vec<(String, u64, Trade)>, String> {
    let frame: Frame = serde_json::from_str(text).map_err(|e| format!("publicTrade: {e}"))?;
    build_trades(
        frame.data.ok_or("publicTrade: data missing")?.get(),
        recv_ts,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::parse::escaped;

    #[test]
    fn documented_orderbook_messages_parse_exactly() {
        let s = parse_orderbook(include_str!(
            "../../../test_data/bybit/ws_orderbook_snapshot.json"
        ))
        .unwrap();
        assert!(s.snapshot);
        assert_eq!(
            (s.symbol.as_str(), s.u, s.seq),
            ("BTCUSDT", 18_521_288, Some(7_961_638_724))
        );
        assert_eq!(s.bids[0].price.to_string(), "16493.50", "scale kept");
        assert_eq!(s.asks[1].size.to_string(), "0.213");
        assert_eq!(s.ts, Timestamp::from_millis(1_672_304_484_978));
        let d = parse_orderbook(include_str!(
            "../../../test_data/bybit/ws_orderbook_delta.json"
        ))
        .unwrap();
        assert!(!d.snapshot);
        assert_eq!(d.u, 177_400_507);
        assert!(d.bids[4].size.is_zero() && d.asks[0].size.is_zero());
        for bad in [
            r#"{"topic":"orderbook.50.BTCUSDT","type":"partial","ts":1,"data":{"s":"BTCUSDT","b":[],"a":[],"u":1}}"#,
            r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[["1x","1"]],"a":[],"u":1}}"#,
            r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT","b":[],"a":[]}}"#,
            r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1}"#,
        ] {
            assert!(parse_orderbook(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn documented_trades_parse_with_the_taker_side() {
        let text = include_str!("../../../test_data/bybit/ws_publictrade_update.json");
        let trades = parse_trades(text, Timestamp(3)).unwrap();
        let (symbol, seq, t) = &trades[0];
        assert_eq!((symbol.as_str(), *seq), ("BTCUSDT", 1_783_284_617));
        assert_eq!(t.id, "20f43950-d8dd-5b31-9112-a178eb6023af");
        assert_eq!(
            (t.price.to_string(), t.size.to_string(), t.side),
            ("16578.50".into(), "0.001".into(), Side::Buy)
        );
        assert_eq!(t.exchange_ts, Timestamp::from_millis(1_672_304_486_865));
        assert_eq!(
            parse_trades(&text.replace("\"Buy\"", "\"Sell\""), Timestamp(3)).unwrap()[0]
                .2
                .side,
            Side::Sell
        );
        for bad in [
            text.replace("\"Buy\"", "\"Up\""),
            text.replace("\"16578.50\"", "\"0\""),
        ] {
            assert!(parse_trades(&bad, Timestamp(3)).is_err(), "{bad}");
        }
    }

    /// Every string escaped (as any JSON writer may) parses the same (issue 15).
    #[test]
    fn escaped_strings_parse_like_plain_ones() {
        for text in [
            include_str!("../../../test_data/bybit/ws_orderbook_snapshot.json"),
            include_str!("../../../test_data/bybit/ws_orderbook_delta.json"),
        ] {
            assert_eq!(
                parse_orderbook(&escaped(text)).unwrap(),
                parse_orderbook(text).unwrap()
            );
        }
        let text = include_str!("../../../test_data/bybit/ws_publictrade_update.json");
        assert_eq!(
            parse_trades(&escaped(text), Timestamp(1)).unwrap(),
            parse_trades(text, Timestamp(1)).unwrap()
        );
    }
}
