//! What the application receives, in order, from [`Client::next_event`](crate::Client::next_event).

use model::{Funding, Level, Liquidation, MarkPrice, OpenInterest, Ticker, VenueFunding};
use protocol::{CandleBody, ErrorBody, StatusBody, WireTrade};
use std::sync::Arc;
use std::time::Duration;

/// Where a data message sits in its channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub channel: Arc<str>,
    /// The channel's epoch: changes when the gateway restarts (seqs start over).
    pub epoch: Arc<str>,
    /// Per-channel sequence number; each seq reaches the application at most once.
    pub seq: u64,
    /// Exchange time of the newest input, µs since the Unix epoch.
    pub ts: i64,
    /// Gateway receive time, µs since the Unix epoch.
    pub recv_ts: i64,
}

/// A book snapshot or update (levels as sent: in an update, size 0 removes the price).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookMessage {
    pub meta: Meta,
    /// On a snapshot: it replaces a book the client had (after a resync or a lost resume).
    pub resync: bool,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
    /// The gateway's checksum of the book after this message (already verified when the book
    /// is mirrored).
    pub checksum: Option<u32>,
}

/// A batch of trades published as one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradesMessage {
    pub meta: Meta,
    pub trades: Vec<WireTrade>,
}

/// The liquidations of one venue message (`liquidations:{venue}:{symbol}`), oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiquidationsMessage {
    pub meta: Meta,
    pub liquidations: Vec<Liquidation>,
}

/// A batch of on-chain items (`onchain.blocks:{chain}` or `onchain.logs:{chain}:{contract}`):
/// each block or log carries its status; every `pending` one is later sent again as
/// `confirmed` or `retracted` (docs/onchain.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainMessage {
    pub meta: Meta,
    pub blocks: Vec<model::onchain::ChainBlock>,
    pub logs: Vec<model::onchain::ChainLog>,
}

/// A value of a latest-value channel (ticker, candles, status, funding, mark, oi). `snapshot` is true for the
/// value delivered on (re)subscribe rather than a live change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest<T> {
    pub meta: Meta,
    pub snapshot: bool,
    pub value: T,
}

/// A deprecation signal for the key in use: fetch a new key and call
/// [`Client::set_credentials`](crate::ClientHandle::set_credentials) before `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyExpiring {
    /// The key's public id, if the gateway sends it.
    pub key_id: Option<String>,
    /// When the key stops working, µs since the Unix epoch, if known.
    pub expires_at: Option<i64>,
    pub message: String,
}

/// One event. Data events of a channel arrive in `seq` order, each seq at most once; whenever
/// something could not be delivered the application is told by a `Resync` or `Gap` event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A full book (the first on a book channel, and after every `Resync`).
    Snapshot(BookMessage),
    /// A book change following the previous book message without a gap.
    Update(BookMessage),
    Trade(TradesMessage),
    /// Blocks or logs of an EVM chain.
    Chain(ChainMessage),
    Ticker(Latest<Ticker>),
    Candle(Latest<CandleBody>),
    Status(Latest<StatusBody>),
    Funding(Latest<Funding>),
    /// `funding:all:{SYM}`: every member venue's latest funding, by venue name.
    FundingAll(Latest<Vec<VenueFunding>>),
    Mark(Latest<MarkPrice>),
    OpenInterest(Latest<OpenInterest>),
    Liquidations(LiquidationsMessage),
    /// The book of `channel` is being replaced: a `Snapshot` follows. `reason`: the gateway's
    /// (`gap`, `checksum_mismatch`, `venue_disconnected`, …), `not_recovered` (a resume
    /// failed), or the client's own check (`client_checksum_mismatch`, `client_invalid_book`).
    Resync {
        channel: Arc<str>,
        seq: u64,
        reason: String,
    },
    /// Messages `from_seq..=to_seq` of `channel` will never be delivered. `reason`:
    /// `slow_consumer`, `history_expired`, `epoch_changed` (then the range covers only the new
    /// epoch and may be empty), `position_ahead`, or `client_buffer_full`.
    Gap {
        channel: Arc<str>,
        from_seq: u64,
        to_seq: u64,
        reason: String,
    },
    /// The connection dropped; the client waits `delay` and reconnects (attempt `attempt` in a
    /// row) to `url` (the REST base URL of the gateway tried: with several URLs, the next one
    /// in turn).
    Reconnecting {
        attempt: u32,
        delay: Duration,
        reason: String,
        url: String,
    },
    /// After a reconnect (or a client-side recovery), which channels were resumed without loss
    /// and which started over (each of those also gets a `Resync`, `Gap` or fresh value).
    Recovered {
        recovered: Vec<Arc<str>>,
        lost: Vec<Arc<str>>,
    },
    KeyExpiring(KeyExpiring),
    /// An error the gateway sent that no pending request was waiting for.
    ServerError(ErrorBody),
    /// The client stopped (closed, or gave up reconnecting). The last event.
    Closed {
        reason: String,
    },
}

impl Event {
    /// The channel a data, resync or gap event is about.
    pub fn channel(&self) -> Option<&str> {
        match self {
            Self::Snapshot(b) | Self::Update(b) => Some(&b.meta.channel),
            Self::Trade(t) => Some(&t.meta.channel),
            Self::Ticker(l) => Some(&l.meta.channel),
            Self::Candle(l) => Some(&l.meta.channel),
            Self::Status(l) => Some(&l.meta.channel),
            Self::Funding(l) => Some(&l.meta.channel),
            Self::FundingAll(l) => Some(&l.meta.channel),
            Self::Mark(l) => Some(&l.meta.channel),
            Self::OpenInterest(l) => Some(&l.meta.channel),
            Self::Liquidations(l) => Some(&l.meta.channel),
            Self::Resync { channel, .. } | Self::Gap { channel, .. } => Some(channel),
            _ => None,
        }
    }

    /// The position of a data event.
    pub fn meta(&self) -> Option<&Meta> {
        match self {
            Self::Snapshot(b) | Self::Update(b) => Some(&b.meta),
            Self::Trade(t) => Some(&t.meta),
            Self::Ticker(l) => Some(&l.meta),
            Self::Candle(l) => Some(&l.meta),
            Self::Status(l) => Some(&l.meta),
            Self::Funding(l) => Some(&l.meta),
            Self::FundingAll(l) => Some(&l.meta),
            Self::Mark(l) => Some(&l.meta),
            Self::OpenInterest(l) => Some(&l.meta),
            Self::Liquidations(l) => Some(&l.meta),
            _ => None,
        }
    }

    /// Whether this is a data event (may be dropped under [`Overflow::DropData`]).
    ///
    /// [`Overflow::DropData`]: crate::Overflow::DropData
    pub fn is_data(&self) -> bool {
        self.meta().is_some()
    }
}
