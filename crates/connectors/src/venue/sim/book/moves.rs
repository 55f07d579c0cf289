//! The market model: the moves that change a [`SimBook`] in one step.
//!
//! Each `SimBook::step` is one market event, chosen at random:
//!
//! - 50 % a book update: 1 to 3 levels change size, disappear or appear (in a gap, beyond the
//!   worst level, or inside the spread);
//! - 25 % a trade: a taker takes part or all of the best level on the other side;
//! - 25 % a mid move: the best 1 to 3 levels of one side are lifted and their prices become the
//!   other side's best, so the book shifts; the depleted side is refilled at its far end and
//!   the grown side trimmed there. Moves mostly follow a trend that flips now and then.
//!
//! After each event, market makers quote inside the spread until it is at most
//! `max(1, level_gap / 4)` ticks wide (1 tick for ETH and SOL, up to 16 for BTC).
//!
//! Invariants after every step: each side holds at least `min_depth` levels (and about
//! `max_depth` at most), the book is uncrossed, prices stay within 0.1x to 10x of the start
//! price (the trend turns at those bounds), and every size is at least one lot.
//!
//! Every change goes through `SimBook::record`, so the delta and the checksum follow.

use super::{SimBook, price_ticks};
use crate::FeedEvent;
use book::checksum::CHECKSUM_DEPTH;
use model::{Side, Timestamp, Trade};

impl SimBook {
    /// A fresh size for a level `distance` from the best: about `base_lots` at the top, growing
    /// to 6x deep in the book, times noise of 0.05x to 2x, and now and then a large order.
    pub(super) fn new_lots(&mut self, distance: usize) -> i64 {
        let depth_factor = 20 + distance.min(100) as i64;
        let noise = 5 + self.rng.below_i64(196);
        let large = if self.rng.below(50) == 0 { 8 } else { 1 };
        (self.base_lots * depth_factor / 20 * noise / 100 * large).max(1)
    }

    /// A level to touch: half the time among the top ten, otherwise anywhere.
    fn pick_distance(&mut self, len: usize) -> usize {
        let range = if self.rng.below(2) == 0 {
            len.min(CHECKSUM_DEPTH)
        } else {
            len
        };
        self.rng.below_usize(range)
    }

    pub(super) fn update_levels(&mut self) {
        for _ in 0..1 + self.rng.below(3) {
            let bid = self.rng.below(2) == 0;
            let len = self.side(bid).len();
            match self.rng.below(10) {
                0..6 => self.resize(bid),
                6..8 if len > self.min_depth => self.remove(bid),
                6..8 => self.add(bid),
                _ if len < self.max_depth => self.add(bid),
                _ => self.remove(bid),
            }
        }
    }

    fn resize(&mut self, bid: bool) {
        let len = self.side(bid).len();
        let distance = self.pick_distance(len);
        let index = len - 1 - distance;
        let (key, old) = self.side(bid)[index];
        let mut lots = self.new_lots(distance);
        if lots == old {
            lots += 1;
        }
        self.side_mut(bid)[index].1 = lots;
        self.record(bid, key, lots, distance);
    }

    fn remove(&mut self, bid: bool) {
        let len = self.side(bid).len();
        let distance = self.pick_distance(len);
        let (key, _) = self.side_mut(bid).remove(len - 1 - distance);
        self.record(bid, key, 0, distance);
    }

    /// Adds a level: sometimes inside the spread (if it is wider than a tick), otherwise in the
    /// larger of two random gaps between levels (which keeps the book from thinning out), or
    /// beyond the worst level when that gap is closed.
    fn add(&mut self, bid: bool) {
        if self.spread_room() > 0 && self.rng.below(4) == 0 {
            self.add_inside_spread(bid);
            return;
        }
        let len = self.side(bid).len();
        let mut index = 1 + self.rng.below_usize(len - 1);
        let other = 1 + self.rng.below_usize(len - 1);
        if self.free_below(bid, other) > self.free_below(bid, index) {
            index = other;
        }
        let free = self.free_below(bid, index);
        if free > 0 {
            let key = self.side(bid)[index - 1].0 + 1 + self.rng.below_i64(free);
            let distance = len - index;
            let lots = self.new_lots(distance);
            self.side_mut(bid).insert(index, (key, lots));
            self.record(bid, key, lots, distance);
        } else {
            self.add_beyond_worst(bid);
        }
    }

    /// Free ticks between the level at `index` and the next worse one (`index >= 1`).
    fn free_below(&self, bid: bool, index: usize) -> i64 {
        let side = self.side(bid);
        side[index].0 - side[index - 1].0 - 1
    }

    /// Free ticks strictly between the best bid and the best ask.
    fn spread_room(&self) -> i64 {
        -self.best_key(false) - self.best_key(true) - 1
    }

    /// A new best level inside the spread, which must be wider than one tick. Returns the side
    /// it went to: a price this step emptied on `bid`'s side is quoted on the other side
    /// instead, so that the delta still shows the removal (a trade's delta must show the
    /// liquidity it took).
    fn add_inside_spread(&mut self, bid: bool) -> bool {
        let room = self.spread_room();
        let key = self.best_key(bid) + 1 + self.rng.below_i64(room.min(self.gap));
        let emptied = self
            .changes
            .iter()
            .any(|c| c.bid == bid && c.key == key && c.lots == 0);
        let (bid, key) = if emptied { (!bid, -key) } else { (bid, key) };
        let lots = self.new_lots(0);
        self.side_mut(bid).push((key, lots));
        self.record(bid, key, lots, 0);
        bid
    }

    /// What market makers do: whenever the spread is wider than `max_spread` ticks (after a
    /// trade took the best level, say), quote inside it until it is not.
    pub(super) fn tighten_spread(&mut self) {
        while self.spread_room() >= self.max_spread {
            let side = self.rng.below(2) == 0;
            let bid = self.add_inside_spread(side);
            if self.side(bid).len() > self.max_depth {
                self.remove_worst(bid);
            }
        }
    }

    fn add_beyond_worst(&mut self, bid: bool) {
        let key = self.side(bid)[0].0 - 1 - self.rng.below_i64(self.gap);
        let distance = self.side(bid).len();
        let lots = self.new_lots(distance);
        self.side_mut(bid).insert(0, (key, lots));
        self.record(bid, key, lots, distance);
    }

    fn remove_worst(&mut self, bid: bool) {
        let distance = self.side(bid).len() - 1;
        let (key, _) = self.side_mut(bid).remove(0);
        self.record(bid, key, 0, distance);
    }

    /// A taker takes part or all of the best level: a buy lifts the best ask, a sell hits the
    /// best bid.
    pub(super) fn trade(&mut self, now: Timestamp, out: &mut Vec<FeedEvent>) {
        let side = if self.rng.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let bid = side == Side::Sell;
        let (key, lots) = self.side(bid)[self.side(bid).len() - 1];
        let taken = if lots == 1 || self.rng.below(4) == 0 {
            lots
        } else {
            1 + self.rng.below_i64(lots - 1)
        };
        let left = lots - taken;
        if left == 0 {
            self.side_mut(bid).pop();
        } else if let Some(best) = self.side_mut(bid).last_mut() {
            best.1 = left;
        }
        self.record(bid, key, left, 0);
        if self.side(bid).len() < self.min_depth {
            self.add_beyond_worst(bid);
        }
        self.last_trade_id += 1;
        out.push(FeedEvent::Trade {
            symbol: self.symbol.clone(),
            trade: Trade {
                id: self.last_trade_id.to_string(),
                price: self.spec.price(price_ticks(bid, key)),
                size: self.spec.size(taken),
                side,
                exchange_ts: now,
                recv_ts: now,
            },
        });
    }

    /// Shifts the book up (best asks become bids) or down (best bids become asks) by 1 to 3
    /// levels; the new best on the growing side is the old best of the other side, so the book
    /// stays uncrossed. Three moves in four follow the current trend, which flips about every
    /// 40 moves: a plain random walk at a few events per second would look flat on a chart.
    pub(super) fn move_mid(&mut self) {
        if self.rng.below(40) == 0 {
            self.trend_up = !self.trend_up;
        }
        if self.best_key(true) < self.floor_ticks {
            self.trend_up = true;
        } else if -self.best_key(false) > self.ceiling_ticks {
            self.trend_up = false;
        }
        let up = if self.rng.below(4) < 3 {
            self.trend_up
        } else {
            !self.trend_up
        };
        let (from, to) = (!up, up);
        for _ in 0..1 + self.rng.below(3) {
            let Some((key, _)) = self.side_mut(from).pop() else {
                break;
            };
            self.record(from, key, 0, 0);
            let lots = self.new_lots(0);
            self.side_mut(to).push((-key, lots));
            self.record(to, -key, lots, 0);
        }
        while self.side(from).len() < self.min_depth {
            self.add_beyond_worst(from);
        }
        while self.side(to).len() > self.max_depth {
            self.remove_worst(to);
        }
    }
}
