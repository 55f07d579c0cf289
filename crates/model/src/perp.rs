//! Perpetual-swap figures a venue publishes: funding, mark and index prices, open interest
//! and liquidations. Each is whole (a venue that sends partial changes has them merged by its
//! session) and carries the venue's exchange time.

use crate::{Decimal, Side, Symbol, Timestamp, Venue};
use serde::{Deserialize, Serialize};

/// The funding of a perpetual: the rate of the current interval and when it is paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Funding {
    /// The rate paid at `next_funding_ts` (longs pay shorts when positive), as a fraction
    /// (`0.0001` is 0.01 %).
    pub rate: Decimal,
    /// The venue's forecast of the following interval's rate, where it publishes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_rate: Option<Decimal>,
    /// When the current rate is paid, µs since the epoch; `None` where the venue pays
    /// continuously or does not say (Hyperliquid pays every hour on the hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub next_funding_ts: Option<Timestamp>,
    /// Exchange time of the figures, µs since the epoch.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub ts: Timestamp,
}

/// One venue's funding in a consolidated `funding:all:{SYM}` message.
///
/// Venues pay at different intervals (Hyperliquid every hour, Bybit and OKX usually every
/// 8 hours): `funding.rate` is the venue's rate for its own interval, compared as published,
/// never rescaled; `next_funding_ts` says when each is paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VenueFunding {
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "bybit"))]
    pub venue: Venue,
    /// The venue instrument's own normalized symbol (a group may merge several).
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "BTC-USDT-PERP"))]
    pub symbol: Symbol,
    pub funding: Funding,
}

/// Mark price (what positions are valued and liquidated at) and index price (the spot
/// reference). Either may be missing when the venue has not sent it yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MarkPrice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Decimal>,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub ts: Timestamp,
}

/// Open interest: the size of all open positions (one side counted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OpenInterest {
    /// In the base asset (contracts are converted with the contract size).
    pub oi: Decimal,
    /// In the quote (settlement) currency, where the venue publishes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oi_value: Option<Decimal>,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub ts: Timestamp,
}

/// One forced close of a position by the venue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Liquidation {
    /// The side of the liquidation order: `sell` when a long position was liquidated, `buy`
    /// when a short was (venues that name the position's side are converted).
    pub side: Side,
    pub price: Decimal,
    /// In the base asset (contracts are converted with the contract size).
    pub size: Decimal,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub ts: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_decimal;

    #[test]
    fn optional_fields_are_omitted_and_default_on_read() {
        let f = Funding {
            rate: parse_decimal("0.0001").unwrap(),
            predicted_rate: None,
            next_funding_ts: None,
            ts: Timestamp(5),
        };
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json, r#"{"rate":"0.0001","ts":5}"#);
        assert_eq!(serde_json::from_str::<Funding>(&json).unwrap(), f);
        let l = Liquidation {
            side: Side::Sell,
            price: parse_decimal("100").unwrap(),
            size: parse_decimal("0.5").unwrap(),
            ts: Timestamp(7),
        };
        let json = serde_json::to_string(&l).unwrap();
        assert!(json.contains(r#""side":"sell""#), "{json}");
    }
}
