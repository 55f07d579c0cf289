//! What flows out of (and into) a connector.

use model::onchain::{ChainBlock, ChainLog};
use model::{
    BookDelta, BookSnapshot, Funding, Instrument, Liquidation, MarkPrice, OpenInterest, Symbol,
    Trade, Venue, VenueTicker,
};

/// One normalized event from a venue, about one instrument unless noted.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent {
    /// The venue's instrument metadata; sent once per (re)connection before any market data.
    Instruments(Vec<Instrument>),
    /// A full book for `symbol`. Replaces whatever the book was (never merged into it).
    BookSnapshot {
        symbol: Symbol,
        snapshot: BookSnapshot,
    },
    /// A change to `symbol`'s book.
    BookDelta {
        symbol: Symbol,
        delta: BookDelta,
    },
    Trade {
        symbol: Symbol,
        trade: Trade,
    },
    /// The venue's own 24 h ticker for `symbol` (the whole ticker, never a partial change:
    /// a venue that sends deltas has them merged by its session). From the first one on,
    /// the instrument's `ticker` channel carries the venue's figures instead of trade-derived
    /// ones.
    Ticker {
        symbol: Symbol,
        ticker: VenueTicker,
    },
    /// A perpetual's funding (whole), served on `funding:{venue}:{symbol}`.
    Funding {
        symbol: Symbol,
        funding: Funding,
        recv_ts: model::Timestamp,
    },
    /// A perpetual's mark and index price (whole), served on `mark:{venue}:{symbol}`.
    Mark {
        symbol: Symbol,
        mark: MarkPrice,
        recv_ts: model::Timestamp,
    },
    /// A perpetual's open interest, in the base asset, served on `oi:{venue}:{symbol}`.
    OpenInterest {
        symbol: Symbol,
        oi: OpenInterest,
        recv_ts: model::Timestamp,
    },
    /// A forced close on a perpetual, served on `liquidations:{venue}:{symbol}`.
    Liquidation {
        symbol: Symbol,
        liquidation: Liquidation,
        recv_ts: model::Timestamp,
    },
    /// A message the connector could not parse or that broke the venue's own rules.
    /// With a symbol, that instrument's book must be treated as corrupt and rebuilt; `cause`
    /// labels the rebuild (`tickgate_book_resyncs_total{reason}`).
    Invalid {
        symbol: Option<Symbol>,
        reason: String,
        cause: InvalidCause,
    },
    /// The connector knows `symbol`'s book is no longer in sync (its connection dropped, it is
    /// being resubscribed) and is already rebuilding it: ingest marks the book stale (its
    /// subscribers get a resync notice) and waits for the snapshot that follows. No
    /// [`Command::Resync`] is needed.
    Unsynced {
        symbol: Symbol,
        reason: String,
    },
    /// The connection's state changed.
    Status {
        state: ConnectionState,
        detail: String,
    },
    /// What an EVM source decided after one input, in order: blocks and logs with their
    /// status (`pending`, `confirmed`, `retracted`), and trades of DEX pools (confirmed swaps).
    Chain(Vec<ChainItem>),
}

/// Why a venue message was unusable: the label of the book rebuild it causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidCause {
    /// It did not parse, or named something it should not (unknown type, side, pair).
    Malformed,
    /// It parsed, but a level broke the book's rules (non-positive price, negative size).
    InvalidLevel,
    /// The venue's checksum disagrees with the book the connector keeps.
    ChecksumMismatch,
    /// The venue's sequence numbers show lost updates.
    Gap,
}

impl InvalidCause {
    /// The `reason` label of `tickgate_book_resyncs_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "invalid_message",
            Self::InvalidLevel => "invalid_level",
            Self::ChecksumMismatch => "checksum_mismatch",
            Self::Gap => "gap",
        }
    }
}

/// One item of an EVM source's output.
// Logs are most of the items: boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ChainItem {
    Block(ChainBlock),
    Log(ChainLog),
    /// A trade on a DEX venue (`uniswap-v3-{chain}`), not on the chain's own venue.
    Trade {
        venue: Venue,
        symbol: Symbol,
        trade: Trade,
    },
}

/// Events are sent in batches: one venue message often carries several, and batching keeps the
/// channel cost per event low at simulator rates of millions per second.
pub type FeedBatch = Vec<FeedEvent>;

/// Lifecycle of a venue connection, reported on `status:{venue}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    Connecting,
    Connected,
    /// Connected, but at least one book is being rebuilt.
    Resyncing,
    Disconnected,
    Stopped,
}

impl ConnectionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Resyncing => "resyncing",
            Self::Disconnected => "disconnected",
            Self::Stopped => "stopped",
        }
    }
}

/// Requests from the ingest stage to a connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The book for this symbol is corrupt (gap, checksum mismatch, crossed): deliver a fresh
    /// [`FeedEvent::BookSnapshot`] for it. Other symbols must not be disturbed.
    Resync(Symbol),
}
