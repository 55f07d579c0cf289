//! `market_trades` events.

use crate::venue::parse::Text;
use crate::venue::parse::decimal;
use model::{Side, Timestamp, Trade};
use serde::Deserialize;

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, rename = "type")]
    kind: Text<'a>,
    #[serde(borrow, default)]
    trades: Vec<RawTrade<'a>>,
}

#[derive(Deserialize)]
struct RawTrade<'a> {
    #[serde(borrow)]
    trade_id: Text<'a>,
    #[serde(borrow)]
    product_id: Text<'a>,
    #[serde(borrow)]
    price: Text<'a>,
    #[serde(borrow)]
    size: Text<'a>,
    #[serde(borrow)]
    side: Text<'a>,
    #[serde(borrow)]
    time: Text<'a>,
}

/// Parses `market_trades` events into `(product, trade)`s, `snapshot` events flagged. Coinbase's
/// `side` is the **maker's**: `BUY` means a resting buy was hit, so the aggressor sold.
pub fn parse_market_trades(
    events: &str,
    recv_ts: Timestamp,
) -> Result<Vec<(bool, String, Trade)>, String> {
    let events: Vec<Event> =
        serde_json::from_str(events).map_err(|e| format!("market_trades: {e}"))?;
    let mut out = Vec::new();
    for event in events {
        let snapshot = match event.kind.as_str() {
            "snapshot" => true,
            "update" => false,
            other => return Err(format!("market_trades: unknown type {other:?}")),
        };
        for t in event.trades {
            let side = match t.side.as_str() {
                "BUY" => Side::Sell,
                "SELL" => Side::Buy,
                other => return Err(format!("market_trades: unknown side {other:?}")),
            };
            let price = decimal("trade price", &t.price)?;
            let size = decimal("trade size", &t.size)?;
            if price <= model::Decimal::ZERO || size <= model::Decimal::ZERO {
                return Err(format!(
                    "trade {}: price and size must be positive",
                    t.trade_id
                ));
            }
            let exchange_ts = Timestamp::parse_rfc3339(&t.time)
                .ok_or_else(|| format!("trade: bad time {:?}", t.time))?;
            out.push((
                snapshot,
                t.product_id.to_string(),
                Trade {
                    id: t.trade_id.to_string(),
                    price,
                    size,
                    side,
                    exchange_ts,
                    recv_ts,
                },
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_trade_parses_with_the_side_inverted() {
        let v: serde_json::Value = serde_json::from_str(include_str!(
            "../../../test_data/coinbase/ws_market_trades_update.json"
        ))
        .unwrap();
        let trades = parse_market_trades(&v["events"].to_string(), Timestamp(1)).unwrap();
        let (snapshot, product, t) = &trades[0];
        assert!(!snapshot);
        assert_eq!(product, "ETH-USD");
        assert_eq!(t.side, Side::Sell, "maker BUY: the taker sold");
        assert_eq!(
            (t.price.to_string(), t.size.to_string()),
            ("1260.01".into(), "0.3".into())
        );
        assert_eq!(t.id, "000000000");
        let sell = v["events"].to_string().replace("BUY", "SELL");
        assert_eq!(
            parse_market_trades(&sell, Timestamp(1)).unwrap()[0].2.side,
            Side::Buy
        );
        assert!(
            parse_market_trades(
                &v["events"].to_string().replace("BUY", "HOLD"),
                Timestamp(1)
            )
            .is_err()
        );
    }

    /// Regression (issue 15): every string of a documented message escaped parses the same.
    #[test]
    fn escaped_strings_parse_like_plain_ones() {
        let v: serde_json::Value = serde_json::from_str(include_str!(
            "../../../test_data/coinbase/ws_market_trades_update.json"
        ))
        .unwrap();
        let events = v["events"].to_string();
        let escaped = crate::venue::parse::escaped(&events);
        assert_eq!(
            parse_market_trades(&escaped, Timestamp(1)).unwrap(),
            parse_market_trades(&events, Timestamp(1)).unwrap()
        );
    }
}
