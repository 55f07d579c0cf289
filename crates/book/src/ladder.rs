//! One side of a book: levels in a `BTreeMap` whose key order is best price first.

use model::{Decimal, Level};
use std::cmp::{Ordering, Reverse};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

/// A price as a map key, ordered exactly like the decimal. Every venue price (a mantissa
/// below 2^64, at most 18 decimals) is also held as one integer, the price × 10^18, and two
/// such keys compare as integers: a decimal comparison (scales aligned first) was the larger
/// part of a book update. Any other price compares as a decimal. Both comparisons give the
/// numeric order, so mixing them is still one total order, and `100.0 == 100.00` either way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Price {
    /// The price × 10^18, or [`Price::NOT_FIXED`].
    fixed: u128,
    exact: Decimal,
}

impl Price {
    /// Not a value of `fixed` (u128::MAX is odd, so no multiple of 10^18 and no mantissa
    /// below 2^64 times 1).
    const NOT_FIXED: u128 = u128::MAX;
    const FIXED_SCALE: u32 = 18;

    fn new(price: Decimal) -> Self {
        let mantissa = price.mantissa();
        let fixed = match (u64::try_from(mantissa), price.scale()) {
            (Ok(m), scale) if scale <= Self::FIXED_SCALE => {
                // One 64 × 64 → 128-bit multiply (`u128::pow` loops over 128-bit products).
                u128::from(m) * u128::from(POW10[(Self::FIXED_SCALE - scale) as usize])
            }
            _ => Self::NOT_FIXED,
        };
        Self {
            fixed,
            exact: price,
        }
    }
}

/// 10^0 ..= 10^18, all within `u64`.
const POW10: [u64; 19] = {
    let mut table = [1u64; 19];
    let mut i = 1;
    while i < table.len() {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

impl Ord for Price {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.fixed != Self::NOT_FIXED && other.fixed != Self::NOT_FIXED {
            self.fixed.cmp(&other.fixed)
        } else {
            self.exact.cmp(&other.exact)
        }
    }
}

impl PartialOrd for Price {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Price {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Price {}

/// Bid key: highest price first.
pub(crate) type BidKey = Reverse<Price>;
/// Ask key: lowest price first.
pub(crate) type AskKey = Price;

/// A map key built from a price, ordered best first for its side.
pub(crate) trait PriceKey: Ord + Copy {
    fn from_price(price: Decimal) -> Self;
}

impl PriceKey for AskKey {
    fn from_price(price: Decimal) -> Self {
        Price::new(price)
    }
}

impl PriceKey for BidKey {
    fn from_price(price: Decimal) -> Self {
        Reverse(Price::new(price))
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

    /// Applies a delta level at its key (`K::from_price(level.price)`, computed by the
    /// caller, which also compares it): a zero size removes the price (absent is fine), any
    /// other size replaces the level. The caller has validated the level.
    pub(crate) fn apply(&mut self, key: K, level: Level) {
        if level.size.is_zero() {
            self.levels.remove(&key);
        } else {
            self.levels.insert(key, level);
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

    /// Keys and levels, best first (keys ascend on both sides).
    pub(crate) fn iter_keyed(&self) -> impl Iterator<Item = (&K, &Level)> {
        self.levels.iter()
    }

    pub(crate) fn len(&self) -> usize {
        self.levels.len()
    }

    pub(crate) fn clear(&mut self) {
        self.levels.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    /// Integer and decimal comparisons, and the two mixed, give the decimal order.
    #[test]
    fn price_keys_order_like_their_decimals() {
        let texts = [
            "0",
            "0.000000000000000001",
            "0.0000000000000000001", // 19 decimals: not fixed
            "0.1",
            "0.10",
            "1",
            "1.0000000000000000000000000001",
            "18446744073709551615",
            "18446744073709551616", // mantissa 2^64: not fixed
            "65000.01",
            "65000.010",
            "65000.02",
            "-1",
            "-0.5",
            "79228162514264337593543950335",
        ];
        let fixed = texts
            .iter()
            .filter(|t| Price::new(d(t)).fixed != Price::NOT_FIXED)
            .count();
        assert!(
            fixed >= 9 && fixed < texts.len(),
            "both kinds are covered ({fixed})"
        );
        for a in texts {
            for b in texts {
                let (x, y) = (Price::new(d(a)), Price::new(d(b)));
                assert_eq!(x.cmp(&y), d(a).cmp(&d(b)), "{a} vs {b}");
                assert_eq!(x == y, d(a) == d(b), "{a} == {b}");
            }
        }
        // Scale does not matter: one level per price.
        let mut ladder = Ladder::<AskKey>::new();
        let apply = |ladder: &mut Ladder<AskKey>, level: Level| {
            ladder.apply(AskKey::from_price(level.price), level)
        };
        apply(&mut ladder, Level::new(d("100.0"), d("1")));
        apply(&mut ladder, Level::new(d("100.00"), d("2")));
        assert_eq!(ladder.len(), 1);
        assert_eq!(ladder.best().unwrap().size, d("2"));
        apply(&mut ladder, Level::new(d("100"), d("0")));
        assert_eq!(ladder.len(), 0);
    }
}
