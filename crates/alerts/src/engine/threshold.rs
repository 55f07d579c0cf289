//! The threshold index of one metric: its rules sorted by threshold, so a new value visits
//! only the rules whose state it changes.
//!
//! Each rule is in one of three places:
//!
//! - **armed**, sorted by threshold: an `above` rule fires when the value reaches its
//!   threshold from below, so on a value `v` the armed `above` rules that fire are exactly the
//!   lowest thresholds up to `v`: popped from the front until one is above `v` (the `below`
//!   side pops from the back). Rules the value did not reach are never looked at.
//! - **waiting**, sorted by re-arm point (`threshold ∓ hysteresis`): a rule that fired (or was
//!   created while its condition already held) re-arms once the value is strictly past that
//!   point, again popped from one end only.
//! - **fresh**: created before the metric had any value; placed by the first value (armed if
//!   its condition does not hold yet, waiting if it does: a rule fires on a crossing, not on
//!   a condition that was already true).
//!
//! So an update costs O(log n) plus O(log n) per rule that fires or re-arms: with 100,000
//! rules on one price, a tick that crosses none of them touches none of them.

use crate::rule::Trigger;
use model::Decimal;
use protocol::alerts::Direction;
use std::collections::{BTreeSet, HashMap, HashSet};

/// Index of a rule in the engine's slab.
pub(crate) type Slot = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Fresh,
    Armed,
    Waiting,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    trigger: Trigger,
    place: Place,
}

/// The rules on one metric. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct ThresholdIndex {
    entries: HashMap<Slot, Entry>,
    above_armed: BTreeSet<(Decimal, Slot)>,
    above_waiting: BTreeSet<(Decimal, Slot)>,
    below_armed: BTreeSet<(Decimal, Slot)>,
    below_waiting: BTreeSet<(Decimal, Slot)>,
    fresh: HashSet<Slot>,
    last: Option<Decimal>,
}

impl ThresholdIndex {
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a rule, placed relative to the latest value (fresh if there is none yet).
    pub(crate) fn insert(&mut self, slot: Slot, trigger: Trigger) {
        let place = match self.last {
            None => Place::Fresh,
            Some(value) if trigger.holds(value) => Place::Waiting,
            Some(_) => Place::Armed,
        };
        self.entries.insert(slot, Entry { trigger, place });
        self.put(slot);
    }

    pub(crate) fn remove(&mut self, slot: Slot) {
        if let Some(entry) = self.entries.get(&slot).copied() {
            self.take(slot, &entry);
            self.entries.remove(&slot);
        }
    }

    fn set_for(&mut self, direction: Direction, place: Place) -> &mut BTreeSet<(Decimal, Slot)> {
        match (direction, place) {
            (Direction::Above, Place::Waiting) => &mut self.above_waiting,
            (Direction::Below, Place::Waiting) => &mut self.below_waiting,
            (Direction::Above, _) => &mut self.above_armed,
            (Direction::Below, _) => &mut self.below_armed,
        }
    }

    fn key(entry: &Entry) -> Decimal {
        match entry.place {
            Place::Waiting => entry.trigger.rearm_point(),
            _ => entry.trigger.threshold,
        }
    }

    fn put(&mut self, slot: Slot) {
        let Some(entry) = self.entries.get(&slot).copied() else {
            return;
        };
        if entry.place == Place::Fresh {
            self.fresh.insert(slot);
        } else {
            let key = Self::key(&entry);
            self.set_for(entry.trigger.direction, entry.place)
                .insert((key, slot));
        }
    }

    fn take(&mut self, slot: Slot, entry: &Entry) {
        if entry.place == Place::Fresh {
            self.fresh.remove(&slot);
        } else {
            let key = Self::key(entry);
            self.set_for(entry.trigger.direction, entry.place)
                .remove(&(key, slot));
        }
    }

    fn move_to(&mut self, slot: Slot, place: Place) {
        if let Some(entry) = self.entries.get_mut(&slot) {
            entry.place = place;
        }
        self.put(slot);
    }

    /// Takes a new value: re-arms the rules it passes back over, and appends to `crossed` the
    /// armed rules it reaches (in threshold order), which move to waiting. Whether a crossed
    /// rule fires or is suppressed (cool-down) is the engine's decision.
    pub(crate) fn update(&mut self, value: Decimal, crossed: &mut Vec<Slot>) {
        self.last = Some(value);
        if !self.fresh.is_empty() {
            for slot in std::mem::take(&mut self.fresh) {
                if let Some(entry) = self.entries.get_mut(&slot) {
                    entry.place = if entry.trigger.holds(value) {
                        Place::Waiting
                    } else {
                        Place::Armed
                    };
                    self.put(slot);
                }
            }
        }
        // Re-arm: waiting `above` rules whose point is above the value, `below` ones below it.
        while let Some(&(point, slot)) = self.above_waiting.last() {
            if value >= point {
                break;
            }
            self.above_waiting.pop_last();
            self.move_to(slot, Place::Armed);
        }
        while let Some(&(point, slot)) = self.below_waiting.first() {
            if value <= point {
                break;
            }
            self.below_waiting.pop_first();
            self.move_to(slot, Place::Armed);
        }
        // Fire: armed `above` rules with threshold <= value, `below` ones with threshold >= it.
        while let Some(&(threshold, slot)) = self.above_armed.first() {
            if threshold > value {
                break;
            }
            self.above_armed.pop_first();
            self.move_to(slot, Place::Waiting);
            crossed.push(slot);
        }
        while let Some(&(threshold, slot)) = self.below_armed.last() {
            if threshold < value {
                break;
            }
            self.below_armed.pop_last();
            self.move_to(slot, Place::Waiting);
            crossed.push(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        model::parse_decimal(s).unwrap()
    }

    fn trigger(direction: Direction, threshold: &str, hysteresis: &str) -> Trigger {
        Trigger {
            direction,
            threshold: d(threshold),
            hysteresis: d(hysteresis),
        }
    }

    fn run(index: &mut ThresholdIndex, values: &[&str]) -> Vec<Vec<Slot>> {
        values
            .iter()
            .map(|v| {
                let mut out = Vec::new();
                index.update(d(v), &mut out);
                out
            })
            .collect()
    }

    #[test]
    fn fires_once_per_crossing_and_rearms_past_the_hysteresis() {
        let mut index = ThresholdIndex::default();
        index.insert(1, trigger(Direction::Above, "100", "0"));
        index.insert(2, trigger(Direction::Above, "100", "5"));
        index.insert(3, trigger(Direction::Below, "90", "0"));
        let fired = run(
            &mut index,
            &[
                "95", "100", "101", "99.99", "100", "96", "94.99", "100.00", "89", "90.5", "90",
            ],
        );
        let expected: Vec<Vec<Slot>> = vec![
            vec![],     // 95: all placed armed
            vec![1, 2], // 100 reaches 100 (>=)
            vec![],     // still above: no second firing
            vec![],     // 99.99 < 100 re-arms 1; 2 needs < 95
            vec![1],    // 100 again: only the re-armed one
            vec![],     // 96: re-arms 1
            vec![],     // 94.99 < 95 re-arms 2
            vec![1, 2], // 100.00 (scale ignored)
            vec![3],    // 89 <= 90
            vec![],     // 90.5 > 90 re-arms 3 (and 1, 2: below their points)
            vec![3],    // 90 again
        ];
        assert_eq!(fired, expected);
    }

    #[test]
    fn a_rule_created_while_its_condition_holds_waits_for_it_to_clear() {
        let mut index = ThresholdIndex::default();
        index.insert(1, trigger(Direction::Above, "10", "0"));
        assert_eq!(
            run(&mut index, &["11", "12"]),
            vec![Vec::<Slot>::new(), vec![]],
            "fresh, then placed waiting"
        );
        index.insert(2, trigger(Direction::Above, "11", "0"));
        assert_eq!(run(&mut index, &["9", "11"]), vec![vec![], vec![1, 2]]);
    }

    #[test]
    fn visits_only_the_crossed_range_and_removes_cleanly() {
        let mut index = ThresholdIndex::default();
        for i in 0..1000u32 {
            index.insert(i, trigger(Direction::Above, &format!("{}", 1000 + i), "0"));
        }
        let mut out = Vec::new();
        index.update(d("999"), &mut out);
        index.update(d("1004.5"), &mut out);
        assert_eq!(out, vec![0, 1, 2, 3, 4]);
        index.remove(2);
        index.remove(500);
        assert_eq!(index.len(), 998);
        out.clear();
        index.update(d("0"), &mut out);
        index.update(d("1005"), &mut out);
        assert_eq!(out, vec![0, 1, 3, 4, 5]);
    }
}
