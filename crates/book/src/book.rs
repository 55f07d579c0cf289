//! [`OrderBook`]: one instrument's L2 book, its snapshot and delta rules and its read views.

use crate::checksum::{CachedChecksum, tickgate_checksum};
use crate::ladder::{AskKey, BidKey, Ladder, PriceKey};
use crate::{BookError, BookState, ChecksumAlgo, StaleReason};
use model::{BookDelta, BookSnapshot, Decimal, Level};

/// What [`OrderBook::apply_delta`] did with a delta it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeltaOutcome {
    /// The delta was applied; the book is at `delta.last_seq`.
    Applied,
    /// The delta is entirely at or before the book's update id (a duplicate or a late message
    /// buffered before the snapshot): nothing changed. Not an error.
    Ignored,
}

/// One instrument's L2 order book.
///
/// Guarantees:
/// - Only a [`Live`](BookState::Live) book holds levels; on every terminal error, and on
///   [`mark_stale`](Self::mark_stale), the book is emptied and stays empty until a snapshot
///   succeeds.
/// - A live book is never crossed (best bid < best ask) and never holds a level with a
///   non-positive price or size.
/// - Each level is stored exactly as the venue last sent it, scale included, so
///   [`checksum`](Self::checksum) matches a client that mirrors the same messages.
///
/// Cost: a delta costs one `BTreeMap` operation per level and no other allocation; the checksum
/// is computed (one `String`) only when the delta carries one and the algorithm verifies it.
#[derive(Debug, Clone)]
pub struct OrderBook {
    bids: Ladder<BidKey>,
    asks: Ladder<AskKey>,
    seq: u64,
    state: BookState,
    algo: ChecksumAlgo,
    max_depth: Option<usize>,
    allow_crossed: bool,
    /// The top levels' checksum text from the last [`checksum_cached`](Self::checksum_cached).
    checksum_texts: CachedChecksum<BidKey, AskKey>,
    /// The last [`checksum_cached`](Self::checksum_cached) value while no change since could
    /// have altered the top levels; `None` once one may have.
    checksum_memo: Option<u32>,
}

impl OrderBook {
    /// An empty book awaiting its first snapshot; `algo` verifies the venue's checksum field.
    pub fn new(algo: ChecksumAlgo) -> Self {
        Self {
            bids: Ladder::new(),
            asks: Ladder::new(),
            seq: 0,
            state: BookState::AwaitingSnapshot,
            algo,
            max_depth: None,
            allow_crossed: false,
            checksum_texts: CachedChecksum::default(),
            checksum_memo: None,
        }
    }

    /// Accepts a best bid at or above the best ask. Only for books that merge several venues
    /// (a consolidated book legitimately crosses when venues disagree); a single venue's
    /// crossed book is always an error.
    pub fn allow_crossed(mut self) -> Self {
        self.allow_crossed = true;
        self
    }

    /// Keeps at most `depth` levels per side, dropping the worst after every snapshot and delta
    /// (Kraken-style: a level pushed out is gone even if the better ones are later removed).
    /// The default is unlimited. Callers pass the depth they subscribed to; `0` keeps no levels.
    pub fn with_max_depth(mut self, depth: usize) -> Self {
        self.max_depth = Some(depth);
        self.checksum_memo = None;
        self.truncate();
        self
    }

    /// Replaces the whole book with `snap` (never merges) and sets the book to `snap.seq`.
    ///
    /// Rejects a level with a price or size that is not positive, a price given twice on one
    /// side, a crossed book and, when the snapshot carries a checksum and the algorithm
    /// verifies it, a checksum mismatch. On success the book is `Live`; on error it is `Stale`
    /// and empty.
    pub fn apply_snapshot(&mut self, snap: &BookSnapshot) -> Result<(), BookError> {
        self.bids.clear();
        self.asks.clear();
        self.checksum_memo = None;
        self.seq = snap.seq;
        match self.load(snap) {
            Ok(()) => {
                self.state = BookState::Live;
                Ok(())
            }
            Err(error) => Err(self.fail(error)),
        }
    }

    /// Applies a delta covering venue update ids `first_seq..=last_seq`.
    ///
    /// - Not live: `Err(NotLive)`, nothing changes (not terminal).
    /// - `last_seq <= seq`: `Ok(Ignored)`, nothing changes.
    /// - `first_seq > seq + 1`: a gap; `Err(Gap)`.
    /// - Otherwise (`first_seq <= seq + 1 <= last_seq`, Binance's rule) every level is applied:
    ///   size 0 removes the price (absent is fine), any other size sets it. A level with a
    ///   non-positive price or a negative size rejects the whole delta before any change. Then
    ///   the book moves to `last_seq`, is truncated to the max depth, and is checked for a
    ///   crossed book and, if the delta carries one, its checksum.
    ///
    /// Every error but `NotLive` leaves the book `Stale` and empty.
    pub fn apply_delta(&mut self, delta: &BookDelta) -> Result<DeltaOutcome, BookError> {
        if !self.is_live() {
            return Err(BookError::NotLive);
        }
        if delta.last_seq <= self.seq {
            return Ok(DeltaOutcome::Ignored);
        }
        // `seq < last_seq <= u64::MAX`, so this cannot overflow.
        let expected = self.seq + 1;
        if delta.first_seq > expected {
            let first = delta.first_seq;
            return Err(self.fail(BookError::Gap { expected, first }));
        }
        if let Some(error) = find_invalid(&delta.bids, &delta.asks) {
            return Err(self.fail(error));
        }
        // A level worse than the last of a full top (the checksum's depth) cannot change
        // the top: not by insertion, nor removal, nor a new size. Keys ascend best first.
        let (bid_edge, ask_edge) = self.checksum_texts.edges();
        let mut top_changed = false;
        for level in &delta.bids {
            let key = BidKey::from_price(level.price);
            top_changed |= bid_edge.is_none_or(|edge| key <= edge);
            self.bids.apply(key, *level);
        }
        for level in &delta.asks {
            let key = AskKey::from_price(level.price);
            top_changed |= ask_edge.is_none_or(|edge| key <= edge);
            self.asks.apply(key, *level);
        }
        if top_changed {
            self.checksum_memo = None;
        }
        self.seq = delta.last_seq;
        self.truncate();
        match self.verify(delta.checksum) {
            Ok(()) => Ok(DeltaOutcome::Applied),
            Err(error) => Err(self.fail(error)),
        }
    }

    /// Empties the book and marks it stale (e.g. the connection dropped); deltas return
    /// `NotLive` until the next snapshot.
    pub fn mark_stale(&mut self, reason: StaleReason) {
        self.bids.clear();
        self.asks.clear();
        self.checksum_memo = None;
        self.state = BookState::Stale(reason);
    }

    pub fn state(&self) -> &BookState {
        &self.state
    }

    pub fn is_live(&self) -> bool {
        self.state == BookState::Live
    }

    /// The venue update id of the last snapshot or delta the book consumed (0 before any).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn best_bid(&self) -> Option<Level> {
        self.bids.best().copied()
    }

    pub fn best_ask(&self) -> Option<Level> {
        self.asks.best().copied()
    }

    /// Bids, best (highest price) first.
    pub fn bids(&self) -> impl Iterator<Item = &Level> {
        self.bids.iter()
    }

    /// Asks, best (lowest price) first.
    pub fn asks(&self) -> impl Iterator<Item = &Level> {
        self.asks.iter()
    }

    /// The best `n` levels of each side: `(bids, asks)`, best first.
    pub fn top(&self, n: usize) -> (Vec<Level>, Vec<Level>) {
        (
            self.bids.iter().take(n).copied().collect(),
            self.asks.iter().take(n).copied().collect(),
        )
    }

    /// Number of levels per side: `(bids, asks)`.
    pub fn depth(&self) -> (usize, usize) {
        (self.bids.len(), self.asks.len())
    }

    /// The tickgate checksum of the current book (see [`crate::checksum`]), whatever the
    /// venue's algorithm: this is what the gateway publishes to its clients.
    pub fn checksum(&self) -> u32 {
        tickgate_checksum(self.bids.iter(), self.asks.iter())
    }

    /// [`checksum`](Self::checksum), formatting only the top levels that changed since the
    /// last call (the others' text is kept in the book): for a publisher that computes it
    /// after every delta. Always the same value as `checksum`.
    ///
    /// A delta whose levels all lie below both sides' top levels leaves the checksum as it
    /// was: the last value is returned without reading the book.
    pub fn checksum_cached(&mut self) -> u32 {
        if let Some(checksum) = self.checksum_memo {
            return checksum;
        }
        let checksum = self
            .checksum_texts
            .compute(self.bids.iter_keyed(), self.asks.iter_keyed());
        self.checksum_memo = Some(checksum);
        checksum
    }

    /// Fills the (empty) book from a snapshot and validates it.
    fn load(&mut self, snap: &BookSnapshot) -> Result<(), BookError> {
        fill(&mut self.bids, &snap.bids)?;
        fill(&mut self.asks, &snap.asks)?;
        self.truncate();
        self.verify(snap.checksum)
    }

    /// Checks a book that has just changed: not crossed, and matching the venue's checksum.
    fn verify(&self, published: Option<u32>) -> Result<(), BookError> {
        match (self.bids.best(), self.asks.best()) {
            (Some(bid), Some(ask)) if bid.price >= ask.price && !self.allow_crossed => {
                return Err(BookError::Crossed {
                    bid: bid.price,
                    ask: ask.price,
                });
            }
            _ => {}
        }
        let Some(expected) = published else {
            return Ok(());
        };
        match self.algo.compute(self.bids.iter(), self.asks.iter()) {
            Some(computed) if computed != expected => {
                Err(BookError::ChecksumMismatch { expected, computed })
            }
            _ => Ok(()),
        }
    }

    fn truncate(&mut self) {
        if let Some(depth) = self.max_depth {
            self.bids.truncate(depth);
            self.asks.truncate(depth);
        }
    }

    /// Makes the book stale for a terminal error and hands the error back.
    fn fail(&mut self, error: BookError) -> BookError {
        if let Some(reason) = error.stale_reason() {
            self.mark_stale(reason);
        }
        error
    }
}

fn invalid(level: &Level, reason: &'static str) -> BookError {
    BookError::InvalidLevel {
        price: level.price,
        size: level.size,
        reason,
    }
}

/// Inserts one side of a snapshot into an empty ladder, rejecting non-positive prices and
/// sizes and a price given twice.
fn fill<K: PriceKey>(ladder: &mut Ladder<K>, levels: &[Level]) -> Result<(), BookError> {
    for level in levels {
        if !is_positive(&level.price) {
            return Err(invalid(level, "price must be positive"));
        }
        if !is_positive(&level.size) {
            return Err(invalid(level, "size must be positive in a snapshot"));
        }
        if !ladder.insert_new(*level) {
            return Err(invalid(
                level,
                "price given twice on one side of a snapshot",
            ));
        }
    }
    Ok(())
}

/// The first level of a delta that cannot be applied, as an error.
fn find_invalid(bids: &[Level], asks: &[Level]) -> Option<BookError> {
    bids.iter().chain(asks).find_map(|level| {
        if !is_positive(&level.price) {
            Some(invalid(level, "price must be positive"))
        } else if is_negative(&level.size) {
            Some(invalid(level, "size must not be negative"))
        } else {
            None
        }
    })
}

/// `value > 0`, from the sign and the mantissa (a `Decimal` comparison aligns scales first;
/// this is checked for every level of every delta). `-0` is not positive.
fn is_positive(value: &Decimal) -> bool {
    !value.is_sign_negative() && !value.is_zero()
}

/// `value < 0` (`-0` is not negative).
fn is_negative(value: &Decimal) -> bool {
    value.is_sign_negative() && !value.is_zero()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// The sign checks are the comparisons with zero they replace, negative zero included.
    #[test]
    fn sign_checks_match_comparisons_with_zero() {
        let mut values: Vec<Decimal> = [
            "0",
            "0.000",
            "-0",
            "-0.00",
            "1",
            "-1",
            "0.00000001",
            "-0.00000001",
            "65000.01",
            "79228162514264337593543950335",
            "-79228162514264337593543950335",
        ]
        .iter()
        .map(|t| Decimal::from_str(t).unwrap())
        .collect();
        let mut negative_zero = Decimal::ZERO;
        negative_zero.set_sign_negative(true);
        values.push(negative_zero);
        for v in values {
            assert_eq!(is_positive(&v), v > Decimal::ZERO, "{v}");
            assert_eq!(is_negative(&v), v < Decimal::ZERO, "{v}");
        }
    }
}
