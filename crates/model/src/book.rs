//! Level-2 order book data: levels, snapshots and deltas as a connector delivers them.

use crate::{Decimal, Timestamp};

/// One price level. In a delta, a `size` of zero removes the level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub price: Decimal,
    pub size: Decimal,
}

impl Level {
    pub fn new(price: Decimal, size: Decimal) -> Self {
        Self { price, size }
    }
}

/// A complete book as published by a venue. `seq` is the venue's update id the snapshot is at.
/// Bids are best (highest) first, asks best (lowest) first; the book engine does not rely on it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BookSnapshot {
    pub seq: u64,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
    pub exchange_ts: Timestamp,
    pub recv_ts: Timestamp,
    /// Checksum the venue published for this state, if it publishes one (see `book::checksum`).
    pub checksum: Option<u32>,
}

/// A change to a book, covering venue update ids `first_seq..=last_seq`.
///
/// Venues with one id per message set `first_seq == last_seq`. Sizes are absolute (the new size
/// at that price), never increments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BookDelta {
    pub first_seq: u64,
    pub last_seq: u64,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
    pub exchange_ts: Timestamp,
    pub recv_ts: Timestamp,
    /// Checksum of the book after applying this delta, if the venue publishes one.
    pub checksum: Option<u32>,
}
