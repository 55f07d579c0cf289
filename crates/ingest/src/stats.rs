//! Counters of the ingest stage, per venue, read by `/metrics`. Each counter is bumped in the
//! same function that logs the event, so the log and the metric cannot disagree.

use model::Venue;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a book was rebuilt; index into [`VenueStats::resyncs`]. Each is the real cause:
/// `gap`, `checksum_mismatch`, `invalid_level` and `crossed` come from the book engine or from
/// the connector's own checks (`connectors::InvalidCause`), `invalid_message` from a venue
/// message that did not parse, `stale` from the staleness watchdog, `overflow` from a
/// connector that dropped its backlog, `disconnected` from a lost connection, and `requested`
/// from anything else that asked for a snapshot (an update for a book awaiting one).
pub const RESYNC_REASONS: [&str; 9] = [
    "gap",
    "crossed",
    "checksum_mismatch",
    "invalid_level",
    "requested",
    "disconnected",
    "invalid_message",
    "stale",
    "overflow",
];

/// Counters for one venue.
#[derive(Debug)]
pub struct VenueStats {
    pub venue: Venue,
    /// Events received, by kind: book snapshot, book delta, trade.
    pub snapshots: AtomicU64,
    pub deltas: AtomicU64,
    pub trades: AtomicU64,
    /// Deltas ignored as older than the book (duplicates, late messages).
    pub deltas_ignored: AtomicU64,
    /// Messages the connector reported as unparseable or invalid.
    pub invalid_messages: AtomicU64,
    /// Book rebuilds, by reason (see [`RESYNC_REASONS`]).
    pub resyncs: [AtomicU64; RESYNC_REASONS.len()],
}

impl VenueStats {
    pub fn new(venue: Venue) -> Self {
        Self {
            venue,
            snapshots: AtomicU64::new(0),
            deltas: AtomicU64::new(0),
            trades: AtomicU64::new(0),
            deltas_ignored: AtomicU64::new(0),
            invalid_messages: AtomicU64::new(0),
            resyncs: Default::default(),
        }
    }

    pub(crate) fn count_resync(&self, reason: &str) {
        let index = RESYNC_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(4);
        self.resyncs[index].fetch_add(1, Ordering::Relaxed);
    }

    pub fn resyncs_total(&self) -> u64 {
        self.resyncs.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}
