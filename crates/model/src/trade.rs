//! Trades.

use crate::{Decimal, Timestamp};
use serde::{Deserialize, Serialize};

/// Which side of the book a trade's aggressor (taker) was on. A `Buy` lifted an ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "buy",
            Self::Sell => "sell",
        }
    }

    pub fn opposite(self) -> Self {
        match self {
            Self::Buy => Self::Sell,
            Self::Sell => Self::Buy,
        }
    }
}

/// One executed trade, normalized. `side` is always the aggressor's side, whatever the venue's
/// own convention (Binance's `m` flag, Coinbase's maker side) — connectors convert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    /// The venue's trade id, as text (some venues use strings).
    pub id: String,
    pub price: Decimal,
    pub size: Decimal,
    pub side: Side,
    /// When the venue says the trade happened.
    pub exchange_ts: Timestamp,
    /// When the gateway received it.
    pub recv_ts: Timestamp,
}
