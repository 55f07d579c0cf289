//! Bodies of the public REST responses (`/v1/instruments`, `/v1/ticker`, `/v1/book`,
//! `/v1/candles`). Errors are [`ErrorBody`](crate::ErrorBody) with the HTTP status of their code.

use crate::{CandleBody, WireLevel};
use model::{Instrument, Interval, Symbol, Ticker, Venue};
use serde::{Deserialize, Serialize};

/// `GET /v1/instruments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstrumentsResponse {
    pub instruments: Vec<Instrument>,
}

/// `GET /v1/ticker?venue=&symbol=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickerResponse {
    pub venue: Venue,
    pub symbol: Symbol,
    pub ticker: Ticker,
}

/// `GET /v1/book?venue=&symbol=&depth=`: the book after message `seq` of channel `channel`
/// (same `seq` and `epoch` space as the WebSocket stream, so the two reconcile). `checksum` is
/// of the whole book, not of the truncated view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// `GET /v1/candles?venue=&symbol=&interval=&limit=`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandlesResponse {
    pub venue: Venue,
    pub symbol: Symbol,
    pub interval: Interval,
    pub candles: Vec<CandleBody>,
}
