//! `book` messages and the depth-truncated mirror that verifies Kraken's checksum.

use crate::venue::parse::Text;
use crate::venue::parse::decimal;
use book::checksum::kraken_checksum;
use model::{Decimal, Level, Timestamp};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::cmp::Reverse;
use std::collections::BTreeMap;

/// One symbol's part of a `book` message.
#[derive(Debug, Clone, PartialEq)]
pub struct BookEntry {
    pub symbol: String,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
    pub checksum: u32,
    pub ts: Timestamp,
}

/// A `book` message: a snapshot or an update, per symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct BookMessage {
    pub snapshot: bool,
    pub entries: Vec<BookEntry>,
}

#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(borrow, rename = "type")]
    kind: Text<'a>,
    #[serde(borrow)]
    data: Vec<RawEntry<'a>>,
}

#[derive(Deserialize)]
struct RawEntry<'a> {
    #[serde(borrow)]
    symbol: Text<'a>,
    #[serde(borrow, default)]
    bids: Vec<RawLevel<'a>>,
    #[serde(borrow, default)]
    asks: Vec<RawLevel<'a>>,
    checksum: u32,
    #[serde(borrow)]
    timestamp: Option<Text<'a>>,
}

/// Prices and quantities are JSON numbers whose exact text matters (trailing zeros are part of
/// the checksum), so they are read as raw text, never as `f64`.
#[derive(Deserialize)]
struct RawLevel<'a> {
    #[serde(borrow)]
    price: &'a RawValue,
    #[serde(borrow)]
    qty: &'a RawValue,
}

fn level(raw: &RawLevel) -> Result<Level, String> {
    Ok(Level::new(
        decimal("book price", raw.price.get().trim_matches('"'))?,
        decimal("book qty", raw.qty.get().trim_matches('"'))?,
    ))
}

impl BookMessage {
    /// Parses a `book` message. The symbol of the first entry is returned with any error so
    /// the caller can rebuild that book.
    pub fn parse(text: &str) -> Result<Self, (Option<String>, String)> {
        let raw: RawMessage =
            serde_json::from_str(text).map_err(|e| (None, format!("book: {e}")))?;
        let snapshot = match raw.kind.as_str() {
            "snapshot" => true,
            "update" => false,
            other => return Err((None, format!("book: unknown type {other:?}"))),
        };
        let mut entries = Vec::with_capacity(raw.data.len());
        for e in raw.data {
            let fail = |reason: String| (Some(e.symbol.to_string()), reason);
            let bids = e
                .bids
                .iter()
                .map(level)
                .collect::<Result<Vec<_>, _>>()
                .map_err(fail)?;
            let asks = e
                .asks
                .iter()
                .map(level)
                .collect::<Result<Vec<_>, _>>()
                .map_err(fail)?;
            let ts = match e.timestamp {
                Some(t) => Timestamp::parse_rfc3339(&t)
                    .ok_or_else(|| fail(format!("book: bad timestamp {t:?}")))?,
                None => Timestamp(0),
            };
            entries.push(BookEntry {
                symbol: e.symbol.to_string(),
                bids,
                asks,
                checksum: e.checksum,
                ts,
            });
        }
        Ok(Self { snapshot, entries })
    }
}

/// One symbol's book as Kraken defines it: at most `depth` levels a side, levels kept with the
/// exact scale Kraken sent.
#[derive(Debug, Clone)]
pub struct KrakenBook {
    bids: BTreeMap<Reverse<Decimal>, Level>,
    asks: BTreeMap<Decimal, Level>,
    depth: usize,
}

impl KrakenBook {
    pub fn new(depth: usize) -> Self {
        Self {
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            depth,
        }
    }

    /// Replaces the book with a snapshot (truncated to the depth). Rejects non-positive levels.
    pub fn load(&mut self, bids: &[Level], asks: &[Level]) -> Result<(), String> {
        self.bids.clear();
        self.asks.clear();
        for l in bids.iter().chain(asks) {
            if l.price <= Decimal::ZERO || l.size <= Decimal::ZERO {
                return Err(format!(
                    "snapshot level {} {} is not positive",
                    l.price, l.size
                ));
            }
        }
        for l in bids {
            self.bids.insert(Reverse(l.price), *l);
        }
        for l in asks {
            self.asks.insert(l.price, *l);
        }
        self.truncate();
        Ok(())
    }

    /// Applies an update in order (qty 0 removes), then truncates to the depth. Returns the
    /// removals truncation caused (`qty 0` levels, bids then asks), which Kraken never sends but
    /// a downstream mirror needs to stay identical.
    pub fn apply(
        &mut self,
        bids: &[Level],
        asks: &[Level],
    ) -> Result<(Vec<Level>, Vec<Level>), String> {
        for l in bids.iter().chain(asks) {
            if l.price <= Decimal::ZERO || l.size < Decimal::ZERO {
                return Err(format!("update level {} {} is invalid", l.price, l.size));
            }
        }
        for l in bids {
            if l.size.is_zero() {
                self.bids.remove(&Reverse(l.price));
            } else {
                self.bids.insert(Reverse(l.price), *l);
            }
        }
        for l in asks {
            if l.size.is_zero() {
                self.asks.remove(&l.price);
            } else {
                self.asks.insert(l.price, *l);
            }
        }
        Ok(self.truncate())
    }

    fn truncate(&mut self) -> (Vec<Level>, Vec<Level>) {
        let mut removed = (Vec::new(), Vec::new());
        while self.bids.len() > self.depth {
            if let Some((_, l)) = self.bids.pop_last() {
                removed.0.push(Level::new(l.price, Decimal::ZERO));
            }
        }
        while self.asks.len() > self.depth {
            if let Some((_, l)) = self.asks.pop_last() {
                removed.1.push(Level::new(l.price, Decimal::ZERO));
            }
        }
        removed
    }

    /// Kraken's CRC32 over the top 10 levels.
    pub fn checksum(&self) -> u32 {
        kraken_checksum(self.bids.values(), self.asks.values())
    }

    /// Bids and asks, best first.
    pub fn levels(&self) -> (Vec<Level>, Vec<Level>) {
        (
            self.bids.values().copied().collect(),
            self.asks.values().copied().collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(p: &str, s: &str) -> Level {
        Level::new(
            model::parse_decimal(p).unwrap(),
            model::parse_decimal(s).unwrap(),
        )
    }

    #[test]
    fn documented_snapshot_parses_exactly_and_matches_its_checksum() {
        let text = include_str!("../../../test_data/kraken/ws_book_snapshot.json");
        let msg = BookMessage::parse(text).unwrap();
        assert!(msg.snapshot);
        let e = &msg.entries[0];
        assert_eq!(e.symbol, "BTC/USD");
        assert_eq!(
            e.bids[0].size.to_string(),
            "0.10000000",
            "trailing zeros survive"
        );
        assert_eq!(e.bids[3].price.to_string(), "45281.0");
        let mut book = KrakenBook::new(10);
        book.load(&e.bids, &e.asks).unwrap();
        assert_eq!(book.checksum(), e.checksum);
        assert_eq!(e.checksum, 3_310_070_434);
        assert_eq!(e.ts, Timestamp(1_696_613_755_440_295));
    }

    #[test]
    fn documented_update_parses() {
        let text = include_str!("../../../test_data/kraken/ws_book_update.json");
        let msg = BookMessage::parse(text).unwrap();
        assert!(!msg.snapshot);
        assert_eq!(msg.entries[0].bids[0].size.to_string(), "1098.3947558");
        assert_eq!(msg.entries[0].checksum, 2_114_181_697);
    }

    #[test]
    fn malformed_book_messages_name_their_symbol() {
        let bad_price = r#"{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":"1e5","qty":1}],"asks":[],"checksum":1}]}"#;
        assert_eq!(
            BookMessage::parse(bad_price).unwrap_err().0.as_deref(),
            Some("BTC/USD")
        );
        let bad_type = r#"{"channel":"book","type":"delta","data":[]}"#;
        assert!(BookMessage::parse(bad_type).is_err());
        assert!(BookMessage::parse("{").is_err());
    }

    #[test]
    fn updates_truncate_to_depth_and_report_what_fell_out() {
        let mut book = KrakenBook::new(2);
        book.load(
            &[lv("10", "1"), lv("9", "1")],
            &[lv("11", "1"), lv("12", "1")],
        )
        .unwrap();
        let (bids, asks) = book.apply(&[lv("9.5", "2")], &[]).unwrap();
        assert_eq!(bids, vec![lv("9", "0")]);
        assert!(asks.is_empty());
        // A level that fell out is gone even when a better one is removed later.
        book.apply(&[lv("10", "0")], &[]).unwrap();
        assert_eq!(book.levels().0, vec![lv("9.5", "2")]);
        assert!(book.apply(&[lv("-1", "1")], &[]).is_err());
        assert!(book.load(&[lv("1", "0")], &[]).is_err());
    }

    /// Regression (issue 15): every string of a documented message escaped parses the same.
    #[test]
    fn escaped_strings_parse_like_plain_ones() {
        use crate::venue::parse::escaped;
        for text in [
            include_str!("../../../test_data/kraken/ws_book_snapshot.json"),
            include_str!("../../../test_data/kraken/ws_book_update.json"),
        ] {
            assert_eq!(BookMessage::parse(&escaped(text)), BookMessage::parse(text));
        }
    }
}
