//! Normalized market-data types shared by every stage of the gateway.
//!
//! # Layout
//!
//! - [`decimal`]: exact decimal prices and sizes parsed from (and printed back as) venue strings.
//! - [`time`]: timestamps in microseconds since the Unix epoch.
//! - [`instrument`]: venues, normalized `BASE-QUOTE` symbols and instrument metadata.
//! - [`trade`]: trades with their aggressor side.
//! - [`book`]: price levels, full snapshots and deltas of an L2 order book.
//! - [`ticker`]: best bid/ask plus 24 h statistics, derived from trades or the venue's own.
//! - [`candle`]: OHLCV candles and their intervals.
//! - [`perp`]: perpetual-swap figures: funding, mark/index price, open interest, liquidations.
//! - [`channel`]: channel names (`{kind}:{venue}:{symbol}`) clients subscribe to.
//! - [`onchain`]: EVM blocks, logs and decoded events (addresses, hashes, exact amounts).
//!
//! Nothing here does I/O; every type is plain data with validation at construction.

pub mod book;
pub mod candle;
pub mod channel;
pub mod decimal;
pub mod instrument;
pub mod onchain;
pub mod perp;
pub mod ticker;
pub mod time;
pub mod trade;

pub use book::{BookDelta, BookSnapshot, Level};
pub use candle::{Candle, Interval};
pub use channel::{Channel, ChannelKind};
pub use decimal::{Decimal, DecimalBuf, parse_decimal, parse_plain_decimal, write_decimal};
pub use instrument::{Instrument, PERP_SUFFIX, Symbol, Venue};
pub use perp::{Funding, Liquidation, MarkPrice, OpenInterest, VenueFunding};
pub use ticker::{Ticker, TickerSource, VenueTicker};
pub use time::Timestamp;
pub use trade::{Side, Trade};

/// Why a value could not be accepted as a model type. Each variant has a stable [`code`](Self::code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("invalid decimal {value:?}: {reason}")]
    InvalidDecimal { value: String, reason: &'static str },
    #[error("invalid symbol {0:?}: expected BASE-QUOTE, e.g. BTC-USDT")]
    InvalidSymbol(String),
    #[error(
        "invalid venue {0:?}: expected a lowercase name of 1 to 32 letters, digits, '_' or inner '-'"
    )]
    InvalidVenue(String),
    #[error("invalid channel {0:?}: expected kind:venue:symbol, e.g. book:sim:BTC-USDT")]
    InvalidChannel(String),
    #[error(
        "unknown channel kind {0:?}: expected trades, ticker, book, candles.<interval>, funding, mark, oi, liquidations, status, onchain.logs, onchain.blocks or alerts"
    )]
    UnknownKind(String),
    #[error("unknown interval {0:?}: expected 1s, 1m, 5m, 15m, 1h or 1d")]
    UnknownInterval(String),
    #[error("invalid {what} {value:?}: expected 0x followed by hex digits")]
    InvalidHex { what: &'static str, value: String },
}

impl ModelError {
    /// Stable machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidDecimal { .. } => "invalid_decimal",
            Self::InvalidSymbol(_) => "invalid_symbol",
            Self::InvalidVenue(_) => "invalid_venue",
            Self::InvalidChannel(_) => "invalid_channel",
            Self::UnknownKind(_) => "unknown_channel_kind",
            Self::UnknownInterval(_) => "unknown_interval",
            Self::InvalidHex { .. } => "invalid_hex",
        }
    }
}
