//! Bodies of the public market REST responses (`/v1/instruments`, `/v1/ticker`, `/v1/book`);
//! the history pages (`/v1/trades`, `/v1/candles`) are in [`crate::history`]. Errors are
//! [`ErrorBody`](crate::ErrorBody) with the HTTP status of their code.

use crate::WireLevel;
use model::{Instrument, Symbol, Ticker, Venue};
use serde::{Deserialize, Serialize};

/// `GET /v1/instruments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstrumentsResponse {
    pub instruments: Vec<Instrument>,
}

/// `GET /v1/ticker?venue=&symbol=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TickerResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "binance"))]
    pub venue: Venue,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "BTC-USDT"))]
    pub symbol: Symbol,
    pub ticker: Ticker,
}

/// `GET /v1/book?venue=&symbol=&depth=`: the book after message `seq` of channel `channel`
/// (same `seq` and `epoch` space as the WebSocket stream, so the two reconcile). `checksum` is
/// of the whole book, not of the truncated view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BookResponse {
    pub channel: String,
    pub seq: u64,
    pub epoch: String,
    pub ts: i64,
    pub recv_ts: i64,
    pub checksum: u32,
    pub bids: Vec<WireLevel>,
    pub asks: Vec<WireLevel>,
}

/// `GET /v1/funding|mark|oi?venue=&symbol=`: the latest value of a perpetual's channel, at
/// `seq` of `channel` (the value a WebSocket subscriber gets as its snapshot). Exactly one of
/// `funding`, `mark` and `oi` is set, after the route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PerpLatestResponse {
    #[cfg_attr(feature = "openapi", schema(example = "funding:bybit:BTC-USDT-PERP"))]
    pub channel: String,
    pub seq: u64,
    pub epoch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funding: Option<model::Funding>,
    /// `venue=all`: each member venue's latest funding (see `funding:all` in protocol.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funding_all: Option<Vec<model::VenueFunding>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<model::MarkPrice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oi: Option<model::OpenInterest>,
}
