//! `trade` channel messages.

use crate::venue::parse::Text;
use crate::venue::parse::decimal;
use model::{Side, Timestamp, Trade};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct RawTrade<'a> {
    #[serde(borrow)]
    symbol: Text<'a>,
    #[serde(borrow)]
    side: Text<'a>,
    #[serde(borrow)]
    price: &'a RawValue,
    #[serde(borrow)]
    qty: &'a RawValue,
    trade_id: u64,
    #[serde(borrow)]
    timestamp: Text<'a>,
}

#[derive(Deserialize)]
struct TradeMessage<'a> {
    #[serde(borrow)]
    data: Vec<RawTrade<'a>>,
}

/// Parses a `trade` message into `(pair name, trade)`s. `side` is the taker's.
pub fn parse_trades(text: &str, recv_ts: Timestamp) -> Result<Vec<(String, u64, Trade)>, String> {
    let msg: TradeMessage = serde_json::from_str(text).map_err(|e| format!("trade: {e}"))?;
    msg.data
        .into_iter()
        .map(|t| {
            let side = match t.side.as_str() {
                "buy" => Side::Buy,
                "sell" => Side::Sell,
                other => return Err(format!("trade: unknown side {other:?}")),
            };
            let price = decimal("trade price", t.price.get().trim_matches('"'))?;
            let size = decimal("trade qty", t.qty.get().trim_matches('"'))?;
            if price <= model::Decimal::ZERO || size <= model::Decimal::ZERO {
                return Err(format!(
                    "trade {}: price and qty must be positive",
                    t.trade_id
                ));
            }
            let exchange_ts = Timestamp::parse_rfc3339(&t.timestamp)
                .ok_or_else(|| format!("trade: bad timestamp {:?}", t.timestamp))?;
            Ok((
                t.symbol.to_string(),
                t.trade_id,
                Trade {
                    id: t.trade_id.to_string(),
                    price,
                    size,
                    side,
                    exchange_ts,
                    recv_ts,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_trades_parse_exactly() {
        let text = include_str!("../../../test_data/kraken/ws_trade_update.json");
        let trades = parse_trades(text, Timestamp(1)).unwrap();
        assert_eq!(trades.len(), 2);
        let (pair, id, t) = &trades[1];
        assert_eq!((pair.as_str(), *id), ("MATIC/USD", 4_665_847));
        assert_eq!(t.price.to_string(), "0.5147");
        assert_eq!(t.size.to_string(), "1136.19677815");
        assert_eq!(t.side, Side::Buy);
        assert_eq!(t.exchange_ts, Timestamp(1_695_628_176_925_603));
        let bad = text.replace("\"buy\"", "\"up\"");
        assert!(parse_trades(&bad, Timestamp(1)).is_err());
        assert!(parse_trades(&text.replace("0.5147", "-0.5147"), Timestamp(1)).is_err());
    }

    /// Regression (issue 15): every string of a documented message escaped parses the same.
    #[test]
    fn escaped_strings_parse_like_plain_ones() {
        let text = include_str!("../../../test_data/kraken/ws_trade_update.json");
        let plain = parse_trades(text, Timestamp(1)).unwrap();
        let escaped = parse_trades(&crate::venue::parse::escaped(text), Timestamp(1));
        assert_eq!(escaped.unwrap(), plain);
    }
}
