//! `<symbol>@trade` events.

use crate::venue::parse::Text;
use crate::venue::parse::decimal;
use model::{Side, Timestamp, Trade};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct RawTrade<'a> {
    #[serde(borrow, rename = "s")]
    symbol: Text<'a>,
    #[serde(rename = "t")]
    id: u64,
    #[serde(borrow, rename = "p")]
    price: Text<'a>,
    #[serde(borrow, rename = "q")]
    qty: Text<'a>,
    #[serde(rename = "T")]
    time: i64,
    /// The buyer was the maker: the aggressor sold.
    #[serde(rename = "m")]
    buyer_is_maker: bool,
}

/// Parses a `trade` event: `(native symbol, numeric id, trade)`. The aggressor side comes from
/// `m`: buyer is maker → the taker sold.
pub fn parse_trade(data: &str, recv_ts: Timestamp) -> Result<(String, u64, Trade), String> {
    let raw: RawTrade = serde_json::from_str(data).map_err(|e| format!("trade: {e}"))?;
    let (id, trade) = build_trade(
        raw.id,
        &raw.price,
        &raw.qty,
        raw.time,
        raw.buyer_is_maker,
        recv_ts,
    )?;
    Ok((raw.symbol.to_string(), id, trade))
}

/// Validates and converts the fields of a `trade` event: `(numeric id, trade)`.
pub(crate) fn build_trade(
    id: u64,
    price: &str,
    qty: &str,
    time: i64,
    buyer_is_maker: bool,
    recv_ts: Timestamp,
) -> Result<(u64, Trade), String> {
    let price = decimal("trade price", price)?;
    let size = decimal("trade qty", qty)?;
    if price <= model::Decimal::ZERO || size <= model::Decimal::ZERO {
        return Err(format!("trade {id}: price and qty must be positive"));
    }
    let side = if buyer_is_maker {
        Side::Sell
    } else {
        Side::Buy
    };
    Ok((
        id,
        Trade {
            id: id.to_string(),
            price,
            size,
            side,
            exchange_ts: Timestamp::from_millis(time),
            recv_ts,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_trade_parses_with_the_taker_side() {
        let text = include_str!("../../../test_data/binance/ws_trade_update.json");
        let envelope: serde_json::Value = serde_json::from_str(text).unwrap();
        let data = envelope["data"].to_string();
        let (native, id, trade) = parse_trade(&data, Timestamp(7)).unwrap();
        assert_eq!((native.as_str(), id), ("BNBBTC", 12345));
        assert_eq!(trade.price.to_string(), "0.001");
        assert_eq!(trade.size.to_string(), "100");
        assert_eq!(trade.side, Side::Sell, "m=true: the buyer was the maker");
        assert_eq!(trade.exchange_ts, Timestamp(1_672_515_782_136_000));
        let buy = data.replace("\"m\":true", "\"m\":false");
        assert_eq!(parse_trade(&buy, Timestamp(7)).unwrap().2.side, Side::Buy);
    }

    #[test]
    fn malformed_trades_are_errors() {
        for bad in [
            "{}",
            r#"{"s":"X","t":1,"p":"1e3","q":"1","T":1,"m":true}"#,
            r#"{"s":"X","t":1,"p":"-1","q":"1","T":1,"m":true}"#,
            r#"{"s":"X","t":-1,"p":"1","q":"1","T":1,"m":true}"#,
            "not json",
        ] {
            assert!(parse_trade(bad, Timestamp(0)).is_err(), "{bad}");
        }
    }

    /// Regression (issue 15): every string of a documented message escaped parses the same.
    #[test]
    fn escaped_strings_parse_like_plain_ones() {
        let text = include_str!("../../../test_data/binance/ws_trade_update.json");
        let data = serde_json::from_str::<serde_json::Value>(text).unwrap()["data"].to_string();
        let escaped = crate::venue::parse::escaped(&data);
        assert_eq!(
            parse_trade(&escaped, Timestamp(7)).unwrap(),
            parse_trade(&data, Timestamp(7)).unwrap()
        );
    }
}
