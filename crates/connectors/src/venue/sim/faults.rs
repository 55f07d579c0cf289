//! Fault injection: turns the market's true deltas into what a misbehaving venue would send.
//!
//! Only book deltas are affected; trades and snapshots always go out as generated. Decisions come
//! from a random stream of their own (derived from the seed), so they are as deterministic as the
//! market, and the market's own stream and book never see them.

use super::SimFaults;
use super::market::SimMarket;
use super::rng::Rng;
use crate::FeedEvent;
use book::checksum::CHECKSUM_DEPTH;
use model::{Decimal, Level};

/// Applies [`SimFaults`] to each delta as it leaves the market.
#[derive(Debug, Clone)]
pub(crate) struct FaultInjector {
    faults: SimFaults,
    rng: Rng,
    /// Per symbol: a delta held back by `reorder` (with its number of copies) until the
    /// symbol's next sent delta.
    held: Vec<Option<(FeedEvent, u8)>>,
}

impl FaultInjector {
    pub(crate) fn new(faults: SimFaults, seed: u64, symbols: usize) -> Self {
        Self {
            faults,
            rng: Rng::derive(seed, "faults"),
            held: vec![None; symbols],
        }
    }

    /// Whether any fault can happen; when none can, the feed skips the injector entirely.
    pub(crate) fn is_active(&self) -> bool {
        let f = &self.faults;
        [f.drop, f.duplicate, f.reorder, f.corrupt]
            .iter()
            .any(|&p| p > 0.0)
    }

    /// Sends the delta `event` of symbol `index` (just generated, so `market` holds the book as
    /// of this delta) through the faults, appending what goes out to `out`.
    ///
    /// In order: `drop` (nothing is sent; a held delta keeps waiting), `corrupt`, `duplicate`,
    /// then `reorder`: if a delta of this symbol is held, it goes out right after this one;
    /// otherwise this one may be held.
    pub(crate) fn deliver(
        &mut self,
        market: &SimMarket,
        index: usize,
        mut event: FeedEvent,
        out: &mut Vec<FeedEvent>,
    ) {
        if self.rng.chance(self.faults.drop) {
            return;
        }
        if self.rng.chance(self.faults.corrupt) {
            corrupt(market, index, &mut event);
        }
        let copies = if self.rng.chance(self.faults.duplicate) {
            2
        } else {
            1
        };
        if let Some((held, held_copies)) = self.held[index].take() {
            push_copies(out, event, copies);
            push_copies(out, held, held_copies);
        } else if self.rng.chance(self.faults.reorder) {
            self.held[index] = Some((event, copies));
        } else {
            push_copies(out, event, copies);
        }
    }

    /// Forgets a delta held back for symbol `index`: a snapshot is about to supersede it.
    pub(crate) fn forget(&mut self, index: usize) {
        self.held[index] = None;
    }
}

fn push_copies(out: &mut Vec<FeedEvent>, event: FeedEvent, copies: u8) {
    if copies > 1 {
        out.push(event.clone());
    }
    out.push(event);
}

/// Gives one level of the delta a wrong size, leaving the published checksum alone.
///
/// With checksums on, the level must be one the checksum covers, or the receiver could not
/// notice: the first level of the delta within the top [`CHECKSUM_DEPTH`] of the true book gets
/// one lot more; if the delta touches none, it gains a restatement of the best bid with one lot
/// too many. With checksums off, the first level's size turns negative, which any receiver can
/// see is invalid.
fn corrupt(market: &SimMarket, index: usize, event: &mut FeedEvent) {
    let FeedEvent::BookDelta { delta, .. } = event else {
        return;
    };
    let lot = market.lot(index);
    if !market.checksum_enabled() {
        if let Some(level) = delta.bids.iter_mut().chain(delta.asks.iter_mut()).next() {
            level.size = if level.size > Decimal::ZERO {
                -level.size
            } else {
                -lot
            };
        }
        return;
    }
    for (bid, levels) in [(true, &mut delta.bids), (false, &mut delta.asks)] {
        for level in levels.iter_mut() {
            let covered = || {
                market
                    .levels(index, bid)
                    .take(CHECKSUM_DEPTH)
                    .any(|top| top.price == level.price)
            };
            if level.size > Decimal::ZERO && covered() {
                level.size += lot;
                return;
            }
        }
    }
    if let Some(best) = market.levels(index, true).next() {
        delta.bids.push(Level::new(best.price, best.size + lot));
    }
}
