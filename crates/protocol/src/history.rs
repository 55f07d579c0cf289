//! REST history responses: `GET /v1/trades`, `GET /v1/candles`, and a perpetual's stored
//! funding and open interest (`GET /v1/funding/history`, `GET /v1/oi/history`).
//!
//! Both are pages: the rows, then `next_cursor`, an opaque string to pass back as `cursor` for
//! the next page, or `null` when the range has no more rows. Trades look exactly as they do in
//! a WebSocket `trades` update.

use crate::WireTrade;
use model::{Candle, Decimal, Funding, Liquidation, OpenInterest};
use serde::{Deserialize, Serialize};

/// `GET /v1/trades`: trades in `(ts, arrival)` order, ascending or descending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TradesPage {
    pub trades: Vec<WireTrade>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// One stored candle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HistoryCandle {
    /// Bucket start, µs since the epoch (UTC-aligned).
    pub start: i64,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    /// Base-asset volume.
    pub volume: Decimal,
    /// Number of trades in the bucket.
    pub trades: u64,
    /// False when the gateway observed only part of the interval (it started, stopped or lost
    /// the feed inside it): the figures cover only what it saw.
    pub complete: bool,
}

impl From<&Candle> for HistoryCandle {
    fn from(c: &Candle) -> Self {
        Self {
            start: c.start.0,
            open: c.open,
            high: c.high,
            low: c.low,
            close: c.close,
            volume: c.volume,
            trades: c.trades,
            complete: c.complete,
        }
    }
}

/// `GET /v1/candles`: closed candles by `start`, ascending or descending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CandlesPage {
    pub candles: Vec<HistoryCandle>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Side, parse_decimal};

    #[test]
    fn pages_have_the_documented_shape() {
        let page = TradesPage {
            trades: vec![WireTrade {
                id: "7".into(),
                price: parse_decimal("100.50").unwrap(),
                size: parse_decimal("0.001").unwrap(),
                side: Side::Sell,
                ts: 1_700_000_000_000_000,
            }],
            next_cursor: None,
        };
        assert_eq!(
            serde_json::to_string(&page).unwrap(),
            r#"{"trades":[{"id":"7","price":"100.50","size":"0.001","side":"sell","ts":1700000000000000}],"next_cursor":null}"#
        );
        let candles = CandlesPage {
            candles: vec![HistoryCandle {
                start: 60_000_000,
                open: parse_decimal("1").unwrap(),
                high: parse_decimal("2").unwrap(),
                low: parse_decimal("0.5").unwrap(),
                close: parse_decimal("1.5").unwrap(),
                volume: parse_decimal("10").unwrap(),
                trades: 3,
                complete: false,
            }],
            next_cursor: Some("abc".into()),
        };
        assert_eq!(
            serde_json::to_string(&candles).unwrap(),
            r#"{"candles":[{"start":60000000,"open":"1","high":"2","low":"0.5","close":"1.5","volume":"10","trades":3,"complete":false}],"next_cursor":"abc"}"#
        );
    }
}

/// `GET /v1/funding/history` (or `/v1/funding` with a range): a perpetual's stored funding
/// by `ts`. A row holds from its `ts` until the next one (rows are stored when the venue's
/// figures change, sampled, and at once when a new funding interval starts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FundingPage {
    pub funding: Vec<Funding>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/oi/history` (or `/v1/oi` with a range): a perpetual's stored open interest by
/// `ts`, sampled like funding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OpenInterestPage {
    pub oi: Vec<OpenInterest>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/liquidations`: a perpetual's stored liquidations in `(ts, arrival)` order,
/// ascending or descending; each exactly as in a `liquidations` channel update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LiquidationsPage {
    pub liquidations: Vec<Liquidation>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}
