//! The perpetual-swap channels: `funding-rate`, `mark-price`, `index-tickers`,
//! `open-interest` and `liquidation-orders` (subscribed with `instType` SWAP, for every swap).
//!
//! Each parser reads a whole push and returns every element or an error (nothing half
//! applied); sizes are returned as OKX sent them (contracts where OKX counts contracts) and
//! converted by the session, which knows each swap's `ctVal`.
//!
//! - funding: `fundingRate` is the rate paid at `fundingTime`; `nextFundingRate` (the
//!   predicted rate of the following period) is `""` when OKX does not forecast it (its
//!   `current_period` method).
//! - mark: `markPx` (`mark-price`) and the index price `idxPx` (`index-tickers`, keyed by the
//!   index name: `BTC-USDT` for `BTC-USDT-SWAP`).
//! - open interest: `oiCcy` is in the coin (the base currency, for linear and inverse swaps
//!   alike), `oi` in contracts, `oiUsd` in USD.
//! - liquidations: each element names the swap (`instId`) and carries `details`, each with
//!   `side` (the liquidation order's side: `buy` closes a short), `bkPx` (the bankruptcy
//!   price, the one OKX publishes) and `sz` (contracts).

use crate::venue::parse::{Text, decimal, excerpt};
use model::{Decimal, Funding, Side, Timestamp};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Frame<T> {
    data: Vec<T>,
}

fn frame<'a, T: Deserialize<'a>>(channel: &str, text: &'a str) -> Result<Vec<T>, String> {
    serde_json::from_str::<Frame<T>>(text)
        .map(|f| f.data)
        .map_err(|e| format!("{channel}: {e}"))
}

/// OKX's millisecond times, as text.
fn millis(field: &str, text: &str) -> Result<Timestamp, String> {
    text.parse::<i64>()
        .ok()
        .filter(|ms| *ms >= 0)
        .map(Timestamp::from_millis)
        .ok_or_else(|| format!("{field}: not a millisecond time: {:?}", excerpt(text)))
}

/// A figure OKX may leave `""`.
fn optional(field: &str, text: Option<&str>) -> Result<Option<Decimal>, String> {
    match text {
        None | Some("") => Ok(None),
        Some(t) => decimal(field, t).map(Some),
    }
}

fn positive(field: &str, text: &str) -> Result<Decimal, String> {
    let value = decimal(field, text)?;
    if value <= Decimal::ZERO {
        return Err(format!("{field}: must be positive, got {value}"));
    }
    Ok(value)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFunding<'a> {
    #[serde(borrow)]
    inst_id: Text<'a>,
    #[serde(borrow)]
    funding_rate: Text<'a>,
    #[serde(borrow)]
    funding_time: Text<'a>,
    #[serde(borrow, default)]
    next_funding_rate: Option<Text<'a>>,
    #[serde(borrow)]
    ts: Text<'a>,
}

/// A `funding-rate` push: `(instId, funding)`s.
pub fn parse_funding(text: &str) -> Result<Vec<(String, Funding)>, String> {
    frame::<RawFunding>("funding-rate", text)?
        .iter()
        .map(|r| {
            Ok((
                r.inst_id.to_string(),
                Funding {
                    rate: decimal("funding-rate fundingRate", &r.funding_rate)?,
                    predicted_rate: optional(
                        "funding-rate nextFundingRate",
                        r.next_funding_rate.as_deref(),
                    )?,
                    next_funding_ts: Some(millis("funding-rate fundingTime", &r.funding_time)?),
                    ts: millis("funding-rate ts", &r.ts)?,
                },
            ))
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMark<'a> {
    #[serde(borrow)]
    inst_id: Text<'a>,
    #[serde(borrow)]
    mark_px: Text<'a>,
    #[serde(borrow)]
    ts: Text<'a>,
}

/// A `mark-price` push: `(instId, mark price, time)`s.
pub fn parse_mark_price(text: &str) -> Result<Vec<(String, Decimal, Timestamp)>, String> {
    frame::<RawMark>("mark-price", text)?
        .iter()
        .map(|r| {
            Ok((
                r.inst_id.to_string(),
                positive("mark-price markPx", &r.mark_px)?,
                millis("mark-price ts", &r.ts)?,
            ))
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIndex<'a> {
    #[serde(borrow)]
    inst_id: Text<'a>,
    #[serde(borrow)]
    idx_px: Text<'a>,
    #[serde(borrow)]
    ts: Text<'a>,
}

/// An `index-tickers` push: `(index name, index price, time)`s.
pub fn parse_index_tickers(text: &str) -> Result<Vec<(String, Decimal, Timestamp)>, String> {
    frame::<RawIndex>("index-tickers", text)?
        .iter()
        .map(|r| {
            Ok((
                r.inst_id.to_string(),
                positive("index-tickers idxPx", &r.idx_px)?,
                millis("index-tickers ts", &r.ts)?,
            ))
        })
        .collect()
}

/// One `open-interest` element, as OKX counts it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawOpenInterest {
    pub inst_id: String,
    /// Contracts.
    pub oi: Decimal,
    /// The coin (base currency); `None` when OKX left it empty.
    pub oi_ccy: Option<Decimal>,
    pub oi_usd: Option<Decimal>,
    pub ts: Timestamp,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOi<'a> {
    #[serde(borrow)]
    inst_id: Text<'a>,
    #[serde(borrow)]
    oi: Text<'a>,
    #[serde(borrow, default)]
    oi_ccy: Option<Text<'a>>,
    #[serde(borrow, default)]
    oi_usd: Option<Text<'a>>,
    #[serde(borrow)]
    ts: Text<'a>,
}

/// An `open-interest` push.
pub fn parse_open_interest(text: &str) -> Result<Vec<RawOpenInterest>, String> {
    frame::<RawOi>("open-interest", text)?
        .iter()
        .map(|r| {
            let oi = decimal("open-interest oi", &r.oi)?;
            let oi_ccy = optional("open-interest oiCcy", r.oi_ccy.as_deref())?;
            let oi_usd = optional("open-interest oiUsd", r.oi_usd.as_deref())?;
            if [Some(oi), oi_ccy, oi_usd]
                .iter()
                .flatten()
                .any(|v| *v < Decimal::ZERO)
            {
                return Err("open-interest: negative figure".into());
            }
            Ok(RawOpenInterest {
                inst_id: r.inst_id.to_string(),
                oi,
                oi_ccy,
                oi_usd,
                ts: millis("open-interest ts", &r.ts)?,
            })
        })
        .collect()
}

/// One liquidation as OKX sends it (size in contracts for a swap).
#[derive(Debug, Clone, PartialEq)]
pub struct RawLiquidation {
    pub side: Side,
    pub price: Decimal,
    pub size: Decimal,
    pub ts: Timestamp,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLiquidations<'a> {
    #[serde(borrow)]
    inst_id: Text<'a>,
    #[serde(borrow)]
    details: Vec<RawDetail<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDetail<'a> {
    #[serde(borrow)]
    side: Text<'a>,
    #[serde(borrow)]
    bk_px: Text<'a>,
    #[serde(borrow)]
    sz: Text<'a>,
    #[serde(borrow)]
    ts: Text<'a>,
}

/// A `liquidation-orders` push: `(instId, liquidations oldest first)`s.
pub fn parse_liquidations(text: &str) -> Result<Vec<(String, Vec<RawLiquidation>)>, String> {
    frame::<RawLiquidations>("liquidation-orders", text)?
        .iter()
        .map(|r| {
            let list = r
                .details
                .iter()
                .map(|d| {
                    let side = match d.side.as_str() {
                        "buy" => Side::Buy,
                        "sell" => Side::Sell,
                        other => {
                            return Err(format!(
                                "liquidation-orders: unknown side {:?}",
                                excerpt(other)
                            ));
                        }
                    };
                    Ok(RawLiquidation {
                        side,
                        price: positive("liquidation-orders bkPx", &d.bk_px)?,
                        size: positive("liquidation-orders sz", &d.sz)?,
                        ts: millis("liquidation-orders ts", &d.ts)?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok((r.inst_id.to_string(), list))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::parse::escaped;
    use model::parse_decimal;

    fn d(s: &str) -> Decimal {
        parse_decimal(s).unwrap()
    }

    const FUNDING: &str = include_str!("../../../test_data/okx/ws_funding_rate_update.json");
    const MARK: &str = include_str!("../../../test_data/okx/ws_mark_price_update.json");
    const INDEX: &str = include_str!("../../../test_data/okx/ws_index_tickers_update.json");
    const OI: &str = include_str!("../../../test_data/okx/ws_open_interest_update.json");
    const LIQUIDATIONS: &str =
        include_str!("../../../test_data/okx/ws_liquidation_orders_update.json");

    #[test]
    fn documented_perpetual_pushes_parse_exactly() {
        let (inst, f) = &parse_funding(FUNDING).unwrap()[0];
        assert_eq!(inst, "BTC-USD-SWAP");
        assert_eq!(
            *f,
            Funding {
                rate: d("0.0001875391284828"),
                predicted_rate: None,
                next_funding_ts: Some(Timestamp::from_millis(1_700_726_400_000)),
                ts: Timestamp::from_millis(1_700_724_675_402),
            },
            "nextFundingRate \"\": no forecast; fundingTime is when the rate is paid"
        );
        let forecast = FUNDING.replace(r#""nextFundingRate":"""#, r#""nextFundingRate":"0.00017""#);
        assert_eq!(
            parse_funding(&forecast).unwrap()[0].1.predicted_rate,
            Some(d("0.00017"))
        );
        assert_eq!(
            parse_mark_price(MARK).unwrap(),
            [(
                "BTC-USDT".to_string(),
                d("42310.6"),
                Timestamp::from_millis(1_630_049_139_746)
            )]
        );
        assert_eq!(
            parse_index_tickers(INDEX).unwrap(),
            [(
                "BTC-USDT".to_string(),
                d("0.1"),
                Timestamp::from_millis(1_597_026_383_085)
            )]
        );
        assert_eq!(
            parse_open_interest(OI).unwrap(),
            [RawOpenInterest {
                inst_id: "LTC-USD-SWAP".into(),
                oi: d("5000"),
                oi_ccy: Some(d("555.55")),
                oi_usd: Some(d("50000")),
                ts: Timestamp::from_millis(1_597_026_383_085),
            }]
        );
        assert_eq!(
            parse_liquidations(LIQUIDATIONS).unwrap(),
            [(
                "IOST-USDT-SWAP".to_string(),
                vec![RawLiquidation {
                    side: Side::Buy,
                    price: d("0.007831"),
                    size: d("13"),
                    ts: Timestamp::from_millis(1_692_266_434_010),
                }]
            )],
            "posSide short liquidated by a buy: the order's side, as Bybit's is normalized"
        );
        type Shown = fn(&str) -> String;
        let cases: [(&str, Shown); 5] = [
            (FUNDING, |t| format!("{:?}", parse_funding(t).unwrap())),
            (MARK, |t| format!("{:?}", parse_mark_price(t).unwrap())),
            (INDEX, |t| format!("{:?}", parse_index_tickers(t).unwrap())),
            (OI, |t| format!("{:?}", parse_open_interest(t).unwrap())),
            (LIQUIDATIONS, |t| {
                format!("{:?}", parse_liquidations(t).unwrap())
            }),
        ];
        for (text, shown) in cases {
            assert_eq!(
                shown(&escaped(text)),
                shown(text),
                "escaped strings parse alike"
            );
        }
    }

    /// One line per malformed field: every one is an error, never a partial result.
    #[test]
    fn malformed_perpetual_pushes_are_errors() {
        type Parse = fn(&str) -> bool;
        let funding: Parse = |t| parse_funding(t).is_err();
        let mark: Parse = |t| parse_mark_price(t).is_err();
        let index: Parse = |t| parse_index_tickers(t).is_err();
        let oi: Parse = |t| parse_open_interest(t).is_err();
        let liquidations: Parse = |t| parse_liquidations(t).is_err();
        let cases: &[(Parse, String)] = &[
            (funding, FUNDING.replace("\"0.0001875391284828\"", "\"x\"")),
            (funding, FUNDING.replace("\"1700726400000\"", "\"soon\"")),
            (funding, FUNDING.replace("\"fundingRate\"", "\"rate\"")),
            (
                funding,
                FUNDING.replace(r#""nextFundingRate":"""#, r#""nextFundingRate":"1e-4""#),
            ),
            (funding, FUNDING.replace("\"1700724675402\"", "\"-1\"")),
            (mark, MARK.replace("\"42310.6\"", "\"0\"")),
            (mark, MARK.replace("\"42310.6\"", "\"4x\"")),
            (mark, MARK.replace("\"markPx\"", "\"px\"")),
            (
                index,
                INDEX.replace("\"idxPx\":\"0.1\"", "\"idxPx\":\"-0.1\""),
            ),
            (index, INDEX.replace("\"1597026383085\"", "\"now\"")),
            (oi, OI.replace("\"5000\"", "\"-5\"")),
            (oi, OI.replace("\"555.55\"", "\"5x\"")),
            (oi, OI.replace("\"oi\":\"5000\",", "")),
            (liquidations, LIQUIDATIONS.replace("\"buy\"", "\"long\"")),
            (liquidations, LIQUIDATIONS.replace("\"13\"", "\"0\"")),
            (liquidations, LIQUIDATIONS.replace("\"0.007831\"", "\"\"")),
            (
                liquidations,
                LIQUIDATIONS.replace("\"details\"", "\"items\""),
            ),
            (funding, "{\"data\":".to_string()),
        ];
        for (fails, text) in cases {
            assert!(fails(text), "{text}");
        }
    }
}
