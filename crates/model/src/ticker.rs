//! Tickers: top of book plus rolling 24 h statistics.

use crate::{Decimal, Timestamp};
use serde::{Deserialize, Serialize};

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
    /// `last` minus the first trade price inside the 24 h window.
    pub change_24h: Option<Decimal>,
    /// Exchange time of the newest input this ticker reflects, µs since the epoch.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub ts: Timestamp,
}
