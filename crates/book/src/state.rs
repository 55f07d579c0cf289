//! The lifecycle of a book: awaiting its first snapshot, live, or stale until re-snapshotted.

use std::fmt;

/// Where a book is in its lifecycle.
///
/// `AwaitingSnapshot --snapshot ok--> Live --terminal error or mark_stale--> Stale`; a snapshot
/// from any state either makes the book `Live` or leaves it `Stale`. Only a `Live` book holds
/// levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BookState {
    /// Created, no snapshot applied yet.
    AwaitingSnapshot,
    /// Built from a snapshot and every delta since; safe to read and publish.
    Live,
    /// Out of sync with the venue and emptied; needs a fresh snapshot.
    Stale(StaleReason),
}

/// Why a book went stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StaleReason {
    /// A delta started after the next expected update id: updates were lost.
    Gap,
    /// The best bid reached or passed the best ask.
    Crossed,
    /// The venue's checksum disagrees with the book.
    ChecksumMismatch,
    /// A level had a non-positive price or a negative size (or a zero size in a snapshot).
    InvalidLevel,
    /// The owner asked for it ([`OrderBook::mark_stale`](crate::OrderBook::mark_stale)), e.g. on
    /// a reconnect.
    Requested,
}

impl StaleReason {
    /// Stable label for logs, metrics and status messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gap => "gap",
            Self::Crossed => "crossed",
            Self::ChecksumMismatch => "checksum_mismatch",
            Self::InvalidLevel => "invalid_level",
            Self::Requested => "requested",
        }
    }
}

impl fmt::Display for StaleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
