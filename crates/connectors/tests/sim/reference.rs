//! A deliberately naive reference book and helpers shared by the sim tests.

use book::checksum::tickgate_checksum;
use connectors::FeedEvent;
use model::{BookDelta, BookSnapshot, Decimal, Level, Symbol, Timestamp};
use std::collections::BTreeMap;

/// An L2 book in two ordered maps; levels keep their original decimal strings.
#[derive(Debug, Clone, PartialEq)]
pub struct RefBook {
    pub seq: u64,
    bids: BTreeMap<Decimal, Level>,
    asks: BTreeMap<Decimal, Level>,
}

impl RefBook {
    pub fn from_snapshot(snapshot: &BookSnapshot) -> Self {
        let map = |levels: &[Level]| levels.iter().map(|l| (l.price, *l)).collect();
        Self {
            seq: snapshot.seq,
            bids: map(&snapshot.bids),
            asks: map(&snapshot.asks),
        }
    }

    /// Applies the delta's levels in order; a zero size removes the level.
    pub fn apply(&mut self, delta: &BookDelta) {
        for (side, levels) in [(&mut self.bids, &delta.bids), (&mut self.asks, &delta.asks)] {
            for level in levels {
                if level.size.is_zero() {
                    side.remove(&level.price);
                } else {
                    side.insert(level.price, *level);
                }
            }
        }
        self.seq = delta.last_seq;
    }

    /// Bids best (highest) first.
    pub fn bids(&self) -> Vec<Level> {
        self.bids.values().rev().copied().collect()
    }

    /// Asks best (lowest) first.
    pub fn asks(&self) -> Vec<Level> {
        self.asks.values().copied().collect()
    }

    pub fn best_bid(&self) -> Option<Level> {
        self.bids.values().next_back().copied()
    }

    pub fn best_ask(&self) -> Option<Level> {
        self.asks.values().next().copied()
    }

    pub fn checksum(&self) -> u32 {
        tickgate_checksum(self.bids.values().rev(), self.asks.values())
    }

    pub fn depth(&self) -> (usize, usize) {
        (self.bids.len(), self.asks.len())
    }

    /// Same levels (strings included) as `snapshot`, at the same seq.
    pub fn matches(&self, snapshot: &BookSnapshot) -> bool {
        self.seq == snapshot.seq && self.bids() == snapshot.bids && self.asks() == snapshot.asks
    }
}

pub fn symbol(text: &str) -> Symbol {
    Symbol::new(text).unwrap()
}

/// The event's symbol, if it is about one.
pub fn symbol_of(event: &FeedEvent) -> Option<&Symbol> {
    match event {
        FeedEvent::BookSnapshot { symbol, .. }
        | FeedEvent::BookDelta { symbol, .. }
        | FeedEvent::Trade { symbol, .. }
        | FeedEvent::Unsynced { symbol, .. } => Some(symbol),
        FeedEvent::Invalid { symbol, .. } => symbol.as_ref(),
        FeedEvent::Instruments(_)
        | FeedEvent::Status { .. }
        | FeedEvent::Ticker { .. }
        | FeedEvent::Funding { .. }
        | FeedEvent::Mark { .. }
        | FeedEvent::OpenInterest { .. }
        | FeedEvent::Liquidation { .. }
        | FeedEvent::Chain(_) => None,
    }
}

/// `(symbol, delta)` for every delta, in order.
pub fn deltas(events: &[FeedEvent]) -> impl Iterator<Item = (&Symbol, &BookDelta)> {
    events.iter().filter_map(|event| match event {
        FeedEvent::BookDelta { symbol, delta } => Some((symbol, delta)),
        _ => None,
    })
}

/// Delta seqs of one symbol, in the order sent.
pub fn seqs_of(events: &[FeedEvent], wanted: &Symbol) -> Vec<u64> {
    deltas(events)
        .filter(|(symbol, _)| *symbol == wanted)
        .map(|(_, delta)| delta.first_seq)
        .collect()
}

/// Zeroes every wall-clock timestamp, leaving what the seed determines.
pub fn zero_timestamps(events: &mut [FeedEvent]) {
    for event in events {
        match event {
            FeedEvent::BookSnapshot { snapshot, .. } => {
                snapshot.exchange_ts = Timestamp(0);
                snapshot.recv_ts = Timestamp(0);
            }
            FeedEvent::BookDelta { delta, .. } => {
                delta.exchange_ts = Timestamp(0);
                delta.recv_ts = Timestamp(0);
            }
            FeedEvent::Trade { trade, .. } => {
                trade.exchange_ts = Timestamp(0);
                trade.recv_ts = Timestamp(0);
            }
            _ => {}
        }
    }
}
