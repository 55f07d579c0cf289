//! Hyperliquid frames: `{"channel": …, "data": …}` for `l2Book`, `trades`,
//! `subscriptionResponse`, `pong` and `error`.

use crate::venue::parse::{Text, decimal};
use model::{Level, Side, Timestamp, Trade};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Debug, Deserialize)]
pub(crate) struct Frame<'a> {
    #[serde(borrow)]
    pub channel: Text<'a>,
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
struct RawLevel<'a> {
    #[serde(borrow)]
    px: Text<'a>,
    #[serde(borrow)]
    sz: Text<'a>,
}

#[derive(Debug, Deserialize)]
struct RawBook<'a> {
    #[serde(borrow)]
    coin: Text<'a>,
    time: i64,
    #[serde(borrow)]
    levels: [Vec<RawLevel<'a>>; 2],
}

/// One `l2Book` message: the coin's whole published book (top 20 a side), best first.
#[derive(Debug, Clone, PartialEq)]
pub struct L2Book {
    pub coin: String,
    /// Milliseconds; later books have later (or equal) times.
    pub time: i64,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
}

pub(crate) fn build_l2book(data: &str) -> Result<L2Book, (Option<String>, String)> {
    let raw: RawBook = serde_json::from_str(data).map_err(|e| (None, format!("l2Book: {e}")))?;
    let coin = raw.coin.to_string();
    let side = |levels: &[RawLevel], name: &str| -> Result<Vec<Level>, (Option<String>, String)> {
        levels
            .iter()
            .map(|l| {
                let level = Level::new(decimal(name, &l.px)?, decimal(name, &l.sz)?);
                if level.price <= model::Decimal::ZERO || level.size <= model::Decimal::ZERO {
                    return Err(format!(
                        "{name} {} {} is not positive",
                        level.price, level.size
                    ));
                }
                Ok(level)
            })
            .collect::<Result<_, String>>()
            .map_err(|e| (Some(coin.clone()), e))
    };
    let bids = side(&raw.levels[0], "l2Book bid")?;
    let asks = side(&raw.levels[1], "l2Book ask")?;
    // Best first, each price once: the session diffs books in one merge pass on this order.
    if bids.windows(2).any(|w| w[0].price <= w[1].price)
        || asks.windows(2).any(|w| w[0].price >= w[1].price)
    {
        return Err((Some(coin), "l2Book: levels not in best-first order".into()));
    }
    Ok(L2Book {
        bids,
        asks,
        time: raw.time,
        coin,
    })
}

/// Parses a whole `l2Book` frame; an error names the coin when it is known.
pub fn parse_l2book(text: &str) -> Result<L2Book, (Option<String>, String)> {
    let frame: Frame = serde_json::from_str(text).map_err(|e| (None, format!("l2Book: {e}")))?;
    build_l2book(frame.data.map_or("null", |d| d.get()))
}

#[derive(Debug, Deserialize)]
struct RawTrade<'a> {
    #[serde(borrow)]
    coin: Text<'a>,
    #[serde(borrow)]
    side: Text<'a>,
    #[serde(borrow)]
    px: Text<'a>,
    #[serde(borrow)]
    sz: Text<'a>,
    time: i64,
    tid: u64,
}

/// `trades` data: `(coin, tid, trade)`. `side` is the aggressor's: `B` bought, `A` sold.
pub(crate) fn build_trades(
    data: &str,
    recv_ts: Timestamp,
) -> Result<Vec<(String, u64, Trade)>, String> {
    let raw: Vec<RawTrade> = serde_json::from_str(data).map_err(|e| format!("trades: {e}"))?;
    raw.into_iter()
        .map(|t| {
            let side = match t.side.as_str() {
                "B" => Side::Buy,
                "A" => Side::Sell,
                other => return Err(format!("trades: unknown side {other:?}")),
            };
            let price = decimal("trade px", &t.px)?;
            let size = decimal("trade sz", &t.sz)?;
            if price <= model::Decimal::ZERO || size <= model::Decimal::ZERO {
                return Err(format!("trade {}: px and sz must be positive", t.tid));
            }
            Ok((
                t.coin.to_string(),
                t.tid,
                Trade {
                    id: t.tid.to_string(),
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

/// Parses a whole `trades` frame.
pub fn parse_trades(text: &str, recv_ts: Timestamp) -> Result<Vec<(String, u64, Trade)>, String> {
    let frame: Frame = serde_json::from_str(text).map_err(|e| format!("trades: {e}"))?;
    build_trades(frame.data.map_or("null", |d| d.get()), recv_ts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::parse::escaped;

    #[test]
    fn documented_messages_parse_exactly() {
        let text = include_str!("../../../test_data/hyperliquid/ws_l2book_snapshot.json");
        let book = parse_l2book(text).unwrap();
        assert_eq!((book.coin.as_str(), book.time), ("BTC", 1_710_131_872_708));
        assert_eq!(book.bids[0].price.to_string(), "68674.0", "scale kept");
        assert_eq!(book.asks[2].size.to_string(), "1.17432");
        assert_eq!((book.bids.len(), book.asks.len()), (3, 3));
        assert_eq!(
            parse_l2book(&text.replace("\"0.04895\"", "\"-1\""))
                .unwrap_err()
                .0
                .as_deref(),
            Some("BTC")
        );
        assert!(parse_l2book(&text.replace("\"68674.0\"", "\"x\"")).is_err());
        let unsorted = text.replace("\"68672.0\"", "\"68690.0\"");
        assert!(
            parse_l2book(&unsorted)
                .unwrap_err()
                .1
                .contains("best-first")
        );
        assert!(
            parse_l2book(r#"{"channel":"l2Book","data":{"coin":"BTC","time":1,"levels":[[]]}}"#)
                .is_err()
        );
        let text = include_str!("../../../test_data/hyperliquid/ws_trades_update.json");
        let trades = parse_trades(text, Timestamp(1)).unwrap();
        let (coin, tid, t) = &trades[0];
        assert_eq!((coin.as_str(), *tid), ("BTC", 981_894_269_203_506));
        assert_eq!(
            (t.side, t.price.to_string(), t.size.to_string()),
            (Side::Buy, "68517.0".into(), "0.005".into())
        );
        assert_eq!(
            parse_trades(&text.replace("\"B\"", "\"A\""), Timestamp(1)).unwrap()[0]
                .2
                .side,
            Side::Sell
        );
        assert!(parse_trades(&text.replace("\"B\"", "\"X\""), Timestamp(1)).is_err());
    }

    /// Every string escaped (as any JSON writer may) parses the same (issue 15).
    #[test]
    fn escaped_strings_parse_like_plain_ones() {
        let text = include_str!("../../../test_data/hyperliquid/ws_l2book_snapshot.json");
        assert_eq!(
            parse_l2book(&escaped(text)).unwrap(),
            parse_l2book(text).unwrap()
        );
        let text = include_str!("../../../test_data/hyperliquid/ws_trades_update.json");
        assert_eq!(
            parse_trades(&escaped(text), Timestamp(1)).unwrap(),
            parse_trades(text, Timestamp(1)).unwrap()
        );
    }
}
