//! The `allLiquidation.{symbol}` topic (linear): every liquidation on the instrument.
//!
//! Bybit names the liquidated position's side in `S` (`Buy`: a long was liquidated); the
//! normalized side is the liquidation order's, the opposite one. `v` is in the base asset.

use crate::venue::parse::{Text, decimal};
use model::{Decimal, Liquidation, Side, Timestamp};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct RawLiquidation<'a> {
    #[serde(rename = "T")]
    time: i64,
    #[serde(rename = "S", borrow)]
    side: Text<'a>,
    #[serde(borrow)]
    v: Text<'a>,
    #[serde(borrow)]
    p: Text<'a>,
}

/// Parses the `data` array of an `allLiquidation` push, oldest first. All or nothing.
pub(crate) fn parse_liquidations(data: &str) -> Result<Vec<Liquidation>, String> {
    let raw: Vec<RawLiquidation> =
        serde_json::from_str(data).map_err(|e| format!("allLiquidation: {e}"))?;
    raw.into_iter()
        .map(|r| {
            let side = match r.side.as_str() {
                // The position's side; the order that closed it went the other way.
                "Buy" => Side::Sell,
                "Sell" => Side::Buy,
                other => {
                    return Err(format!(
                        "allLiquidation: unknown side {:?}",
                        crate::venue::parse::excerpt(other)
                    ));
                }
            };
            let price = decimal("allLiquidation p", &r.p)?;
            let size = decimal("allLiquidation v", &r.v)?;
            if price <= Decimal::ZERO || size <= Decimal::ZERO {
                return Err("allLiquidation: non-positive price or size".into());
            }
            if r.time < 0 {
                return Err("allLiquidation: negative time".into());
            }
            Ok(Liquidation {
                side,
                price,
                size,
                ts: Timestamp::from_millis(r.time),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::parse_decimal;

    fn data(text: &str) -> String {
        let frame = super::super::wire::Frame::parse(text).unwrap();
        frame.data.unwrap().raw().unwrap().to_string()
    }

    #[test]
    fn documented_liquidation_the_order_side_is_the_positions_opposite() {
        let text = include_str!("../../../test_data/bybit/ws_all_liquidation.json");
        let got = parse_liquidations(&data(text)).unwrap();
        assert_eq!(
            got,
            vec![Liquidation {
                side: Side::Buy,
                price: parse_decimal("0.04499").unwrap(),
                size: parse_decimal("20000").unwrap(),
                ts: Timestamp::from_millis(1_739_502_302_929),
            }],
            "S=Sell: a short was liquidated by a buy"
        );
    }

    /// One line per malformed field.
    #[test]
    fn malformed_liquidations_are_errors() {
        let text = data(include_str!(
            "../../../test_data/bybit/ws_all_liquidation.json"
        ));
        for bad in [
            text.replace("\"Sell\"", "\"Short\""),
            text.replace("\"20000\"", "\"0\""),
            text.replace("\"0.04499\"", "\"abc\""),
            text.replace("\"T\":1739502302929,", ""),
            "{}".to_string(),
        ] {
            assert!(parse_liquidations(&bad).is_err(), "{bad}");
        }
    }
}
