//! Book channels: the live order book, from which joiners get a snapshot at the channel's seq,
//! and the pending `resync` notice while it is being rebuilt.

use super::state::{ChannelState, Joiner, Meta};
use crate::frame::Frame;
use book::{ChecksumAlgo, OrderBook};
use protocol::{DataMessage, WireLevel};

#[derive(Debug)]
pub(crate) struct BookState {
    pub(crate) book: OrderBook,
    /// Whether the book was ever live: later snapshots are then resyncs.
    pub(crate) was_live: bool,
    /// The `resync` notice published when the book went stale, replayed to joiners until the
    /// next snapshot.
    pub(crate) stale_notice: Option<Frame>,
    pub(crate) ts: i64,
    pub(crate) recv_ts: i64,
}

impl BookState {
    /// A venue book verified with `algo`, or (`merged`) a cross-venue book that may cross.
    pub(crate) fn new(algo: ChecksumAlgo, merged: bool) -> Self {
        Self {
            book: if merged {
                OrderBook::new(ChecksumAlgo::None).allow_crossed()
            } else {
                OrderBook::new(algo)
            },
            was_live: false,
            stale_notice: None,
            ts: 0,
            recv_ts: 0,
        }
    }

    /// The whole book as a `snapshot` message at `seq`.
    pub(crate) fn message(&self, meta: Meta<'_>, seq: u64, resync: bool) -> DataMessage {
        DataMessage {
            channel: meta.name.to_string(),
            seq,
            epoch: meta.epoch.to_string(),
            ts: self.ts,
            recv_ts: self.recv_ts,
            resync,
            bids: Some(self.book.bids().map(|l| WireLevel::from(*l)).collect()),
            asks: Some(self.book.asks().map(|l| WireLevel::from(*l)).collect()),
            checksum: Some(self.book.checksum()),
            ..Default::default()
        }
    }
}

impl ChannelState for BookState {
    fn joiner(&self, meta: Meta<'_>, seq: u64, resync: bool) -> Joiner {
        if let Some(notice) = &self.stale_notice {
            return Joiner::Published(notice.clone());
        }
        if !self.book.is_live() {
            return Joiner::Nothing;
        }
        Joiner::Snapshot(Box::new(self.message(meta, seq, resync)))
    }

    fn book(&self) -> Option<&BookState> {
        Some(self)
    }

    fn book_mut(&mut self) -> Option<&mut BookState> {
        Some(self)
    }
}
