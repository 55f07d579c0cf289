//! Tickers: top of book plus rolling 24 h statistics, derived from trades or as a venue
//! publishes them.

use crate::{Decimal, Timestamp};
use serde::{Deserialize, Serialize};

/// Where a ticker's last price and 24 h statistics come from. Closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TickerSource {
    /// Computed by the gateway from the trades it received (no native ticker, or none yet).
    #[default]
    Trades,
    /// The venue's own 24 h ticker: `last`, `volume_24h`, `high_24h`, `low_24h` and
    /// `change_24h` are the venue's figures.
    Venue,
}

/// Best bid/ask with sizes, last trade price and rolling 24 h statistics for one instrument.
/// Fields the gateway has not observed yet are `None` (e.g. no trade seen since start).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ticker {
    pub bid: Option<Decimal>,
    pub bid_size: Option<Decimal>,
    pub ask: Option<Decimal>,
    pub ask_size: Option<Decimal>,
    pub last: Option<Decimal>,
    /// Base-asset volume traded in the last 24 h.
    pub volume_24h: Decimal,
    pub high_24h: Option<Decimal>,
    pub low_24h: Option<Decimal>,
    /// `last` minus the price 24 h ago: the first trade price inside the window (`trades`), or
    /// the venue's own reference price (`venue`).
    pub change_24h: Option<Decimal>,
    /// Exchange time of the newest input this ticker reflects, µs since the epoch.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub ts: Timestamp,
    /// What `last` and the 24 h figures are computed from.
    #[serde(default)]
    pub source: TickerSource,
}

/// A venue's own 24 h ticker for one instrument, as parsed from its feed. Fields the venue
/// did not send are `None`; sizes are in the base asset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VenueTicker {
    pub last: Option<Decimal>,
    pub volume_24h: Option<Decimal>,
    pub high_24h: Option<Decimal>,
    pub low_24h: Option<Decimal>,
    /// `last` minus the venue's price 24 h ago.
    pub change_24h: Option<Decimal>,
    pub exchange_ts: Timestamp,
    pub recv_ts: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_is_snake_case_and_defaults_to_trades() {
        let t = Ticker::default();
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.ends_with(r#""source":"trades"}"#), "{json}");
        let older = json.replace(r#","source":"trades""#, "");
        let back: Ticker = serde_json::from_str(&older).unwrap();
        assert_eq!(back.source, TickerSource::Trades, "older producers omit it");
        let venue = Ticker {
            source: TickerSource::Venue,
            ..Ticker::default()
        };
        assert!(
            serde_json::to_string(&venue)
                .unwrap()
                .contains(r#""source":"venue""#)
        );
    }
}
