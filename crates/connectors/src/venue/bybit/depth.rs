//! The prices of one symbol's book as Bybit publishes it: the best `depth` levels a side.
//!
//! `orderbook.{depth}.{symbol}` is the top `depth` of Bybit's book. When a new level enters
//! that window the worst one leaves it, and Bybit's delta does not always carry a removal for
//! it; a client that only applies deltas ends up with more than `depth` levels, some of them
//! long gone from the venue. So after each delta the session drops every level beyond the
//! depth and adds an explicit removal (size 0) for it to the delta it forwards: the
//! gateway's book then equals Bybit's view, level for level.

use model::{Decimal, Level};

/// Prices best first: bids descending, asks ascending. At most `depth` (≤ 1,000) a side,
/// so a sorted vector beats a tree: one binary search and a short move per level.
#[derive(Debug, Clone, Default)]
pub(crate) struct DepthView {
    bids: Vec<Decimal>,
    asks: Vec<Decimal>,
}

/// Inserts or removes `price` in `side`, kept sorted best first (`bid`: descending).
fn update(side: &mut Vec<Decimal>, bid: bool, price: Decimal, remove: bool) {
    let found = if bid {
        side.binary_search_by(|p| price.cmp(p))
    } else {
        side.binary_search(&price)
    };
    match (found, remove) {
        (Ok(at), true) => {
            side.remove(at);
        }
        (Err(at), false) => side.insert(at, price),
        _ => {}
    }
}

impl DepthView {
    /// Replaces the view with a snapshot's prices; levels beyond `depth` (never sent by
    /// Bybit, but not trusted either) are dropped from the snapshot too.
    pub(crate) fn load(&mut self, depth: usize, bids: &mut Vec<Level>, asks: &mut Vec<Level>) {
        self.bids.clear();
        self.asks.clear();
        for l in bids.iter() {
            update(&mut self.bids, true, l.price, l.size.is_zero());
        }
        for l in asks.iter() {
            update(&mut self.asks, false, l.price, l.size.is_zero());
        }
        let (cut_bids, cut_asks) = self.truncate(depth);
        bids.retain(|l| !cut_bids.iter().any(|c| c.price == l.price));
        asks.retain(|l| !cut_asks.iter().any(|c| c.price == l.price));
    }

    /// Applies a delta's levels in order (size 0 removes), then truncates to `depth`,
    /// appending a removal to `bids`/`asks` for each level truncated.
    pub(crate) fn apply(&mut self, depth: usize, bids: &mut Vec<Level>, asks: &mut Vec<Level>) {
        for l in bids.iter() {
            update(&mut self.bids, true, l.price, l.size.is_zero());
        }
        for l in asks.iter() {
            update(&mut self.asks, false, l.price, l.size.is_zero());
        }
        let (cut_bids, cut_asks) = self.truncate(depth);
        bids.extend(cut_bids);
        asks.extend(cut_asks);
    }

    /// Removals (size 0) for every level beyond `depth`, worst first.
    fn truncate(&mut self, depth: usize) -> (Vec<Level>, Vec<Level>) {
        let cut = |side: &mut Vec<Decimal>| -> Vec<Level> {
            if side.len() <= depth {
                return Vec::new();
            }
            side.drain(depth..)
                .rev()
                .map(|price| Level::new(price, Decimal::ZERO))
                .collect()
        };
        (cut(&mut self.bids), cut(&mut self.asks))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> (usize, usize) {
        (self.bids.len(), self.asks.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(price: i64, size: i64) -> Level {
        Level::new(Decimal::from(price), Decimal::from(size))
    }

    /// One line per delta, applied in turn to a top-3 view of bids 100/99/98, asks
    /// 101/102/103: what the session forwards (the delta plus its truncation removals).
    #[test]
    fn levels_pushed_beyond_the_depth_get_an_explicit_removal() {
        let mut view = DepthView::default();
        let (mut bids, mut asks) = (
            vec![l(100, 1), l(99, 1), l(98, 1)],
            vec![l(101, 1), l(102, 1), l(103, 1)],
        );
        view.load(3, &mut bids, &mut asks);
        assert_eq!((bids.len(), asks.len()), (3, 3));
        type Case = (&'static str, Vec<Level>, Vec<Level>, Vec<Level>, Vec<Level>);
        let cases: Vec<Case> = vec![
            (
                "ask 100 enters: 103 leaves Bybit's top 3 without a removal",
                vec![l(100, 2)],
                vec![l(100, 7)],
                vec![l(100, 2)],
                vec![l(100, 7), l(103, 0)],
            ),
            (
                "room again: 97 fits",
                vec![l(100, 0), l(97, 1)],
                vec![],
                vec![l(100, 0), l(97, 1)],
                vec![],
            ),
            (
                "two pushed out, worst first",
                vec![l(100, 4), l(99, 0), l(101, 9), l(96, 1)],
                vec![],
                vec![l(100, 4), l(99, 0), l(101, 9), l(96, 1), l(96, 0), l(97, 0)],
                vec![],
            ),
        ];
        for (name, mut bids, mut asks, want_bids, want_asks) in cases {
            view.apply(3, &mut bids, &mut asks);
            assert_eq!((bids, asks), (want_bids, want_asks), "{name}");
            assert_eq!(view.len(), (3, 3), "{name}");
        }
        // A snapshot deeper than the depth is cut too.
        let (mut bids, mut asks) = (
            vec![l(100, 1), l(99, 1), l(98, 1), l(97, 1)],
            vec![l(101, 1)],
        );
        view.load(2, &mut bids, &mut asks);
        assert_eq!(bids, [l(100, 1), l(99, 1)]);
        assert_eq!(view.len(), (2, 1));
    }
}
