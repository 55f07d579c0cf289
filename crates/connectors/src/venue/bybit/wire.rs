//! The shape of every Bybit v5 public frame, read in one pass: request answers (`op`,
//! `success`, `req_id`) and pushes (`topic`, `type`, `data`) of `orderbook` and `publicTrade`.
//!
//! Bybit writes `topic` before `data`, so the `data` of a book or trade push is parsed into its
//! own shape in the frame's single pass ([`Data::Book`], [`Data::Trades`]). Any other `data`
//! (tickers, liquidations, or a frame whose `topic` comes after `data`) is kept raw and parsed
//! once the topic is known. A frame whose typed `data` does not parse is read again with raw
//! `data` ([`Frame::parse`]), so a malformed book still names its symbol and rebuilds only
//! that book.

use crate::venue::parse::{Levels, Text, decimal};
use model::{Level, Side, Timestamp, Trade};
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// The `data` of a push.
#[derive(Debug)]
pub(crate) enum Data<'a> {
    /// An `orderbook` push's, parsed in the frame's pass.
    Book(RawBook),
    /// A `publicTrade` push's, parsed in the frame's pass.
    Trades(Vec<RawTrade<'a>>),
    /// Anything else, parsed once the topic is known.
    Raw(&'a RawValue),
}

impl Data<'_> {
    /// The JSON text of a raw `data`.
    pub(crate) fn raw(&self) -> Option<&str> {
        match self {
            Self::Raw(raw) => Some(raw.get()),
            _ => None,
        }
    }
}

/// Any frame Bybit sends on a public endpoint.
#[derive(Debug, Default)]
pub(crate) struct Frame<'a> {
    pub topic: Option<Text<'a>>,
    pub kind: Option<Text<'a>>,
    pub ts: Option<i64>,
    pub data: Option<Data<'a>>,
    pub op: Option<Text<'a>>,
    pub success: Option<bool>,
    pub ret_msg: Option<Text<'a>>,
    pub req_id: Option<Text<'a>>,
}

impl<'a> Frame<'a> {
    /// Parses a frame in one pass; if its typed `data` is malformed, again with raw `data`
    /// (the caller then reports the bad book or trade against its topic). Fails only on text
    /// that is not a JSON object of this shape.
    pub(crate) fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<Frame>(text).or_else(|_| {
            serde_json::from_str::<LooseFrame>(text).map(|f| Frame {
                topic: f.topic,
                kind: f.kind,
                ts: f.ts,
                data: f.data.map(Data::Raw),
                op: f.op,
                success: f.success,
                ret_msg: f.ret_msg,
                req_id: f.req_id,
            })
        })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Frame<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FrameVisitor;
        impl<'de> Visitor<'de> for FrameVisitor {
            type Value = Frame<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Bybit frame object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Frame<'de>, A::Error> {
                let mut frame = Frame::default();
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    match key.as_str() {
                        "topic" => frame.topic = map.next_value()?,
                        "type" => frame.kind = map.next_value()?,
                        "ts" => frame.ts = map.next_value()?,
                        "data" => {
                            let kind = frame.topic.as_deref().and_then(|t| t.split_once('.'));
                            frame.data = Some(match kind.map(|(kind, _)| kind) {
                                Some("orderbook") => Data::Book(map.next_value()?),
                                Some("publicTrade") => Data::Trades(map.next_value()?),
                                _ => Data::Raw(map.next_value()?),
                            });
                        }
                        "op" => frame.op = map.next_value()?,
                        "success" => frame.success = map.next_value()?,
                        "ret_msg" => frame.ret_msg = map.next_value()?,
                        "req_id" => frame.req_id = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(frame)
            }
        }
        deserializer.deserialize_map(FrameVisitor)
    }
}

/// [`Frame`] with `data` always raw: the second reading of a frame whose typed `data` failed.
#[derive(Debug, Deserialize)]
struct LooseFrame<'a> {
    #[serde(borrow, default)]
    topic: Option<Text<'a>>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<Text<'a>>,
    #[serde(default)]
    ts: Option<i64>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    op: Option<Text<'a>>,
    #[serde(default)]
    success: Option<bool>,
    #[serde(borrow, default)]
    ret_msg: Option<Text<'a>>,
    #[serde(borrow, default)]
    req_id: Option<Text<'a>>,
}

/// The `data` of an `orderbook` push. `s` (the symbol) is not read: the topic names it.
#[derive(Debug, Deserialize)]
pub(crate) struct RawBook {
    #[serde(default)]
    b: Levels,
    #[serde(default)]
    a: Levels,
    u: u64,
    #[serde(default)]
    seq: Option<u64>,
}

/// A parsed `orderbook` push.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderbookUpdate {
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

/// The book push of `frame`: its typed `data`, or its raw `data` parsed now.
pub(crate) fn build_orderbook(frame: Frame) -> Result<OrderbookUpdate, String> {
    let snapshot = match frame.kind.as_deref() {
        Some("snapshot") => true,
        Some("delta") => false,
        other => return Err(format!("orderbook: unknown type {other:?}")),
    };
    let raw = match frame.data {
        Some(Data::Book(raw)) => raw,
        Some(Data::Raw(raw)) => {
            serde_json::from_str(raw.get()).map_err(|e| format!("orderbook: {e}"))?
        }
        Some(Data::Trades(_)) | None => return Err("orderbook: data missing".into()),
    };
    Ok(OrderbookUpdate {
        snapshot,
        bids: raw.b.0,
        asks: raw.a.0,
        u: raw.u,
        seq: raw.seq,
        ts: Timestamp::from_millis(frame.ts.unwrap_or_default().max(0)),
    })
}

/// Parses a whole `orderbook` push.
pub fn parse_orderbook(text: &str) -> Result<OrderbookUpdate, String> {
    build_orderbook(Frame::parse(text).map_err(|e| format!("orderbook: {e}"))?)
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawTrade<'a> {
    #[serde(rename = "T")]
    time: i64,
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

/// One trade: `(cross sequence, trade)`. `S` is the taker's side; `i` the trade id; the
/// symbol (`s`) is not read: the topic names it.
/// The frame's typed `data`, or its raw `data` parsed now.
pub(crate) fn build_trades(
    data: Option<Data>,
    recv_ts: Timestamp,
) -> Result<Vec<(u64, Trade)>, String> {
    let raw: Vec<RawTrade> = match data {
        Some(Data::Trades(raw)) => raw,
        Some(Data::Raw(raw)) => {
            serde_json::from_str(raw.get()).map_err(|e| format!("publicTrade: {e}"))?
        }
        Some(Data::Book(_)) | None => return Err("publicTrade: data missing".into()),
    };
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
pub fn parse_trades(text: &str, recv_ts: Timestamp) -> Result<Vec<(u64, Trade)>, String> {
    let frame = Frame::parse(text).map_err(|e| format!("publicTrade: {e}"))?;
    build_trades(frame.data, recv_ts)
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
        assert_eq!((s.u, s.seq), (18_521_288, Some(7_961_638_724)));
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
        let (seq, t) = &trades[0];
        assert_eq!(*seq, 1_783_284_617);
        assert_eq!(t.id, "20f43950-d8dd-5b31-9112-a178eb6023af");
        assert_eq!(
            (t.price.to_string(), t.size.to_string(), t.side),
            ("16578.50".into(), "0.001".into(), Side::Buy)
        );
        assert_eq!(t.exchange_ts, Timestamp::from_millis(1_672_304_486_865));
        assert_eq!(
            parse_trades(&text.replace("\"Buy\"", "\"Sell\""), Timestamp(3)).unwrap()[0]
                .1
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
