//! The shape of every OKX v5 public frame, read in one pass: events (`subscribe`, `error`,
//! `notice`, …) and pushes (`arg` + `action` + `data`) of `books` and `trades`.

use crate::venue::parse::{Text, decimal};
use model::{Level, Side, Timestamp, Trade};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use std::fmt;

/// A subscription argument: `{"channel":"books","instId":"BTC-USDT"}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Arg<'a> {
    #[serde(borrow)]
    pub channel: Text<'a>,
    #[serde(borrow, default)]
    pub inst_id: Option<Text<'a>>,
    /// `liquidation-orders` only: `SWAP`.
    #[serde(borrow, default)]
    pub inst_type: Option<Text<'a>>,
}

/// Any frame OKX sends on the public endpoint (except the text `pong`).
#[derive(Debug, Deserialize)]
pub(crate) struct Frame<'a> {
    #[serde(borrow, default)]
    pub event: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub arg: Option<Arg<'a>>,
    #[serde(borrow, default)]
    pub action: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub data: Option<Vec<Item<'a>>>,
    #[serde(borrow, default)]
    pub code: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub msg: Option<Text<'a>>,
}

/// One element of `data`: the fields of a `books` and of a `trades` element.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Item<'a> {
    #[serde(borrow, default)]
    pub asks: Option<Vec<RawLevel<'a>>>,
    #[serde(borrow, default)]
    pub bids: Option<Vec<RawLevel<'a>>>,
    #[serde(borrow, default)]
    pub ts: Option<Text<'a>>,
    #[serde(default)]
    pub checksum: Option<i64>,
    #[serde(default)]
    pub prev_seq_id: Option<i64>,
    #[serde(default)]
    pub seq_id: Option<i64>,
    #[serde(borrow, default)]
    pub trade_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub px: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub sz: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub side: Option<Text<'a>>,
}

/// A book level `["8476.98","415","0","13"]`: price, size, a deprecated field and the order
/// count; only the first two are read.
#[derive(Debug)]
pub(crate) struct RawLevel<'a>(pub Text<'a>, pub Text<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for RawLevel<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LevelVisitor;
        impl<'de> Visitor<'de> for LevelVisitor {
            type Value = RawLevel<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a level [price, size, …]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let price: Text = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let size: Text = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawLevel(price, size))
            }
        }
        deserializer.deserialize_seq(LevelVisitor)
    }
}

/// A parsed `books` element.
#[derive(Debug, Clone, PartialEq)]
pub struct BookUpdate {
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
    pub prev_seq_id: i64,
    pub seq_id: i64,
    /// The CRC-32 bit pattern OKX sent (its signed value `as u32`); `None` when it sent 0, as
    /// it does on every frame since the field's deprecation (June 2026).
    pub checksum: Option<u32>,
    pub ts: Timestamp,
}

fn levels(field: &str, raw: &Option<Vec<RawLevel>>) -> Result<Vec<Level>, String> {
    raw.iter()
        .flatten()
        .map(|RawLevel(p, s)| Ok(Level::new(decimal(field, p)?, decimal(field, s)?)))
        .collect()
}

fn millis(field: &str, text: Option<&str>) -> Result<Timestamp, String> {
    let text = text.ok_or_else(|| format!("{field}: missing"))?;
    text.parse::<i64>()
        .ok()
        .filter(|ms| *ms >= 0)
        .map(Timestamp::from_millis)
        .ok_or_else(|| format!("{field}: not a millisecond time: {text:?}"))
}

impl BookUpdate {
    pub(crate) fn build(item: &Item) -> Result<Self, String> {
        let (Some(prev_seq_id), Some(seq_id)) = (item.prev_seq_id, item.seq_id) else {
            return Err("books: seqId and prevSeqId are required".into());
        };
        Ok(Self {
            bids: levels("books bid", &item.bids)?,
            asks: levels("books ask", &item.asks)?,
            prev_seq_id,
            seq_id,
            checksum: item.checksum.filter(|c| *c != 0).map(|c| c as i32 as u32),
            ts: millis("books ts", item.ts.as_deref())?,
        })
    }
}

/// Parses a whole `books` push: `(instId, snapshot?, elements)`.
pub fn parse_book(text: &str) -> Result<(String, bool, Vec<BookUpdate>), String> {
    let frame: Frame = serde_json::from_str(text).map_err(|e| format!("books: {e}"))?;
    let inst = frame
        .arg
        .and_then(|a| a.inst_id)
        .ok_or("books: arg.instId missing")?;
    let snapshot = match frame.action.as_deref() {
        Some("snapshot") => true,
        Some("update") => false,
        other => return Err(format!("books: unknown action {other:?}")),
    };
    let updates = frame
        .data
        .unwrap_or_default()
        .iter()
        .map(BookUpdate::build)
        .collect::<Result<_, _>>()?;
    Ok((inst.to_string(), snapshot, updates))
}

/// Converts one `trades` element: `(numeric trade id, trade)`. `side` is the taker's.
pub(crate) fn build_trade(item: &Item, recv_ts: Timestamp) -> Result<(u64, Trade), String> {
    let id_text = item.trade_id.as_deref().ok_or("trades: tradeId missing")?;
    let id: u64 = id_text
        .parse()
        .map_err(|_| format!("trades: tradeId {id_text:?} is not a number"))?;
    let side = match item.side.as_deref() {
        Some("buy") => Side::Buy,
        Some("sell") => Side::Sell,
        other => return Err(format!("trades: unknown side {other:?}")),
    };
    let price = decimal("trade px", item.px.as_deref().unwrap_or_default())?;
    let size = decimal("trade sz", item.sz.as_deref().unwrap_or_default())?;
    if price <= model::Decimal::ZERO || size <= model::Decimal::ZERO {
        return Err(format!("trade {id}: px and sz must be positive"));
    }
    Ok((
        id,
        Trade {
            id: id_text.to_string(),
            price,
            size,
            side,
            exchange_ts: millis("trades ts", item.ts.as_deref())?,
            recv_ts,
        },
    ))
}

/// Parses a whole `trades` push into `(trade id, trade)`s.
pub fn parse_trades(text: &str, recv_ts: Timestamp) -> Result<Vec<(u64, Trade)>, String> {
    let frame: Frame = serde_json::from_str(text).map_err(|e| format!("trades: {e}"))?;
    frame
        .data
        .unwrap_or_default()
        .iter()
        .map(|item| build_trade(item, recv_ts))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::parse::escaped;

    #[test]
    fn documented_books_parse_exactly() {
        let text = include_str!("../../../test_data/okx/ws_books_snapshot.json");
        let (inst, snapshot, updates) = parse_book(text).unwrap();
        assert_eq!((inst.as_str(), snapshot), ("BTC-USDT", true));
        let u = &updates[0];
        assert_eq!((u.prev_seq_id, u.seq_id), (-1, 123_456));
        assert_eq!(u.asks[0].price.to_string(), "8476.98");
        assert_eq!(u.asks[0].size.to_string(), "415");
        assert_eq!(u.bids[0].price.to_string(), "8476.97");
        assert_eq!(u.checksum, Some(-855_196_043i32 as u32));
        assert_eq!(u.ts, Timestamp::from_millis(1_597_026_383_085));
        let text = include_str!("../../../test_data/okx/ws_books_update.json");
        let (_, snapshot, updates) = parse_book(text).unwrap();
        assert!(!snapshot);
        assert_eq!(
            (updates[0].prev_seq_id, updates[0].seq_id),
            (123_456, 123_457)
        );
        assert_eq!(updates[0].checksum, None, "0 means not sent");
    }

    #[test]
    fn malformed_books_are_errors() {
        let text = include_str!("../../../test_data/okx/ws_books_update.json");
        for bad in [
            text.replace("\"update\"", "\"partial\""),
            text.replace("\"8476.98\"", "\"84x6\""),
            text.replace("\"seqId\"", "\"seq\""),
            text.replace("\"1597026383185\"", "\"yesterday\""),
            r#"{"arg":{"channel":"books"},"action":"update","data":[]}"#.to_string(),
            "{".to_string(),
        ] {
            assert!(parse_book(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn documented_trades_parse_with_the_taker_side() {
        let text = include_str!("../../../test_data/okx/ws_trades_update.json");
        let trades = parse_trades(text, Timestamp(5)).unwrap();
        let (id, t) = &trades[0];
        assert_eq!(*id, 130_639_474);
        assert_eq!(
            (t.price.to_string(), t.size.to_string()),
            ("42219.9".into(), "0.12060306".into())
        );
        assert_eq!(t.side, Side::Buy);
        assert_eq!(t.exchange_ts, Timestamp::from_millis(1_630_048_897_897));
        assert_eq!(
            parse_trades(&text.replace("\"buy\"", "\"sell\""), Timestamp(5)).unwrap()[0]
                .1
                .side,
            Side::Sell
        );
        for bad in [
            text.replace("\"buy\"", "\"up\""),
            text.replace("\"42219.9\"", "\"-1\""),
            text.replace("\"130639474\"", "\"x1\""),
        ] {
            assert!(parse_trades(&bad, Timestamp(5)).is_err(), "{bad}");
        }
    }

    /// Every string escaped (as any JSON writer may) parses the same (issue 15).
    #[test]
    fn escaped_strings_parse_like_plain_ones() {
        for text in [
            include_str!("../../../test_data/okx/ws_books_snapshot.json"),
            include_str!("../../../test_data/okx/ws_books_update.json"),
        ] {
            assert_eq!(
                parse_book(&escaped(text)).unwrap(),
                parse_book(text).unwrap()
            );
        }
        let text = include_str!("../../../test_data/okx/ws_trades_update.json");
        assert_eq!(
            parse_trades(&escaped(text), Timestamp(1)).unwrap(),
            parse_trades(text, Timestamp(1)).unwrap()
        );
    }
}
