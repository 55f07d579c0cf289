//! One side of a book: levels in a `BTreeMap` whose key order is best price first.

use model::{Decimal, Level};
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

/// Bid key: highest price first.
pub(crate) type BidKey = Reverse<Decimal>;
/// Ask key: lowest price first.
pub(crate) type AskKey = Decimal;

/// A map key built from a price, ordered best first for its side.
pub(crate) trait PriceKey: Ord + Copy {
    fn from_price(price: Decimal) -> Self;
}

impl PriceKey for AskKey {
    fn from_price(price: Decimal) -> Self {
        price
    }
}

impl PriceKey for BidKey {
    fn from_price(price: Decimal) -> Self {
        Reverse(price)
    }
}

/// The levels of one side, best first.
///
/// The value is the whole [`Level`] exactly as the venue sent it. Keys compare prices ignoring
/// scale (`100.0 == 100.00`) and `BTreeMap::insert` keeps the old key, so the price text always
/// comes from the value, which is replaced on every set; that keeps the checksum faithful.
#[derive(Debug, Clone)]
pub(crate) struct Ladder<K> {
    levels: BTreeMap<K, Level>,
}

impl<K: PriceKey> Ladder<K> {
    pub(crate) fn new() -> Self {
        Self {
            levels: BTreeMap::new(),
        }
    }

    /// Applies a delta level: a zero size removes the price (absent is fine), any other size
    /// replaces the level. The caller has validated the level.
    pub(crate) fn apply(&mut self, level: Level) {
        if level.size.is_zero() {
            self.levels.remove(&K::from_price(level.price));
        } else {
            self.levels.insert(K::from_price(level.price), level);
        }
    }

    /// Inserts a snapshot level; returns false, leaving the ladder unchanged, if the price is
    /// already present.
    pub(crate) fn insert_new(&mut self, level: Level) -> bool {
        match self.levels.entry(K::from_price(level.price)) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(level);
                true
            }
        }
    }

    /// Drops the worst levels until at most `depth` remain.
    pub(crate) fn truncate(&mut self, depth: usize) {
        while self.levels.len() > depth {
            self.levels.pop_last();
        }
    }

    pub(crate) fn best(&self) -> Option<&Level> {
        self.levels.values().next()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Level> {
        self.levels.values()
    }

    pub(crate) fn len(&self) -> usize {
        self.levels.len()
    }

    pub(crate) fn clear(&mut self) {
        self.levels.clear();
    }
}
