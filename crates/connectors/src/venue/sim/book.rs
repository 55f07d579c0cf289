//! One symbol's true book: its levels, sequence number and checksum, and the events that
//! publish them. The market model that moves it is in `moves`.
//!
//! Prices are kept as whole ticks and sizes as whole lots, and only become decimals in events.

mod moves;

use super::rng::Rng;
use super::spec::Spec;
use crate::FeedEvent;
use book::checksum::{CHECKSUM_DEPTH, tickgate_checksum};
use model::{BookDelta, BookSnapshot, Decimal, Level, Symbol, Timestamp};

/// One side of the book as `(key, lots)`, ascending by key, best level last.
///
/// The key is the price in ticks for bids and minus the price in ticks for asks, so on both
/// sides a better level has a greater key and the best level is at the end, where popping and
/// pushing are cheap.
type Ladder = Vec<(i64, i64)>;

/// A level change made by the current step; `lots == 0` removes the level.
#[derive(Debug, Clone, Copy)]
struct Change {
    bid: bool,
    key: i64,
    lots: i64,
}

fn price_ticks(bid: bool, key: i64) -> i64 {
    if bid { key } else { -key }
}

#[derive(Debug, Clone)]
pub(crate) struct SimBook {
    symbol: Symbol,
    spec: Spec,
    rng: Rng,
    bids: Ladder,
    asks: Ladder,
    seq: u64,
    last_trade_id: u64,
    min_depth: usize,
    max_depth: usize,
    /// Largest distance between neighbouring new levels, in ticks.
    gap: i64,
    /// Widest spread left standing after a step, in ticks.
    max_spread: i64,
    base_lots: i64,
    floor_ticks: i64,
    ceiling_ticks: i64,
    /// Direction most mid moves take, until it flips.
    trend_up: bool,
    /// Checksum of the current book, valid unless `checksum_stale`. Changes deeper than
    /// [`CHECKSUM_DEPTH`] leave it valid, which saves most of its cost.
    checksum: u32,
    checksum_stale: bool,
    /// Scratch buffer of the current step's changes, reused so a step allocates only the
    /// event it emits.
    changes: Vec<Change>,
}

impl SimBook {
    pub(crate) fn new(symbol: Symbol, seed: u64, min_depth: usize) -> Self {
        let spec = Spec::for_symbol(&symbol);
        let max_depth = min_depth + (min_depth / 5).max(4);
        let start = spec.start_ticks;
        let mut book = Self {
            rng: Rng::derive(seed, symbol.as_str()),
            symbol,
            bids: Vec::with_capacity(max_depth + 2),
            asks: Vec::with_capacity(max_depth + 2),
            seq: 1,
            last_trade_id: 0,
            min_depth,
            max_depth,
            gap: spec.level_gap(),
            max_spread: (spec.level_gap() / 4).max(1),
            base_lots: spec.base_lots(),
            floor_ticks: start / 10,
            ceiling_ticks: start.saturating_mul(10),
            trend_up: true,
            checksum: 0,
            checksum_stale: true,
            changes: Vec::with_capacity(16),
            spec,
        };
        // A one-tick spread at the start price; built best first, then reversed to best last.
        let depth = (min_depth + max_depth) / 2;
        for (bid, best_key) in [(true, start), (false, -(start + 1))] {
            let mut key = best_key;
            for distance in 0..depth {
                let lots = book.new_lots(distance);
                book.side_mut(bid).push((key, lots));
                key -= 1 + book.rng.below_i64(book.gap);
            }
            book.side_mut(bid).reverse();
        }
        book
    }

    pub(crate) fn symbol(&self) -> &Symbol {
        &self.symbol
    }

    pub(crate) fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Advances the market by one event, appending a `Trade` (for trades) and the `BookDelta`.
    pub(crate) fn step(&mut self, now: Timestamp, checksum: bool, out: &mut Vec<FeedEvent>) {
        self.changes.clear();
        match self.rng.below(100) {
            0..50 => self.update_levels(),
            50..75 => self.trade(now, out),
            _ => self.move_mid(),
        }
        self.tighten_spread();
        self.seq += 1;
        let checksum = checksum.then(|| {
            if self.checksum_stale {
                self.checksum = self.compute_checksum();
                self.checksum_stale = false;
            }
            self.checksum
        });
        let bid_count = self.changes.iter().filter(|c| c.bid).count();
        let mut bids = Vec::with_capacity(bid_count);
        let mut asks = Vec::with_capacity(self.changes.len() - bid_count);
        for change in &self.changes {
            let level = self.level(change.bid, change.key, change.lots);
            if change.bid {
                bids.push(level);
            } else {
                asks.push(level);
            }
        }
        out.push(FeedEvent::BookDelta {
            symbol: self.symbol.clone(),
            delta: BookDelta {
                first_seq: self.seq,
                last_seq: self.seq,
                bids,
                asks,
                exchange_ts: now,
                recv_ts: now,
                checksum,
            },
        });
    }

    /// The full true book at its current sequence number.
    pub(crate) fn snapshot(&self, now: Timestamp, checksum: bool) -> BookSnapshot {
        BookSnapshot {
            seq: self.seq,
            bids: self.levels(true).collect(),
            asks: self.levels(false).collect(),
            exchange_ts: now,
            recv_ts: now,
            checksum: checksum.then(|| {
                if self.checksum_stale {
                    self.compute_checksum()
                } else {
                    self.checksum
                }
            }),
        }
    }

    /// One side's levels, best first.
    pub(crate) fn levels(&self, bid: bool) -> impl Iterator<Item = Level> + '_ {
        self.side(bid)
            .iter()
            .rev()
            .map(move |&(key, lots)| self.level(bid, key, lots))
    }

    fn level(&self, bid: bool, key: i64, lots: i64) -> Level {
        Level::new(self.spec.price(price_ticks(bid, key)), self.spec.size(lots))
    }

    fn compute_checksum(&self) -> u32 {
        let empty = Level::new(Decimal::ZERO, Decimal::ZERO);
        let mut top = [[empty; CHECKSUM_DEPTH]; 2];
        let mut counts = [0; 2];
        for (i, bid) in [true, false].into_iter().enumerate() {
            for (slot, level) in top[i].iter_mut().zip(self.levels(bid)) {
                *slot = level;
                counts[i] += 1;
            }
        }
        tickgate_checksum(&top[0][..counts[0]], &top[1][..counts[1]])
    }

    fn side(&self, bid: bool) -> &Ladder {
        if bid { &self.bids } else { &self.asks }
    }

    fn side_mut(&mut self, bid: bool) -> &mut Ladder {
        if bid { &mut self.bids } else { &mut self.asks }
    }

    /// Key of a side's best level. Both sides always hold at least `min_depth` (>= 10) levels.
    fn best_key(&self, bid: bool) -> i64 {
        self.side(bid).last().map_or(0, |&(key, _)| key)
    }

    /// Notes a change for the delta; a change within the checksum depth invalidates the
    /// checksum. `distance` counts levels from the best (0 = best) at the time of the change.
    fn record(&mut self, bid: bool, key: i64, lots: i64, distance: usize) {
        if distance < CHECKSUM_DEPTH {
            self.checksum_stale = true;
        }
        match self
            .changes
            .iter_mut()
            .find(|c| c.bid == bid && c.key == key)
        {
            Some(change) => change.lots = lots,
            None => self.changes.push(Change { bid, key, lots }),
        }
    }
}
