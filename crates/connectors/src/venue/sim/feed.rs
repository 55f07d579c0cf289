//! [`SimFeed`]: the market plus fault injection, i.e. exactly what the sim venue sends.

use super::SimConfig;
use super::faults::FaultInjector;
use super::market::SimMarket;
use crate::{ConnectorError, FeedEvent};
use model::{Instrument, Symbol, Timestamp};

/// What the simulated venue sends, without any notion of time: [`SimMarket`]'s events after
/// the configured faults. [`SimConnector`](super::SimConnector) only paces this in time, so
/// tests can check the whole feed synchronously.
#[derive(Debug, Clone)]
pub struct SimFeed {
    market: SimMarket,
    faults: FaultInjector,
    /// The current market event before faults (reused, so it never reallocates).
    scratch: Vec<FeedEvent>,
}

impl SimFeed {
    /// Validates `config` and builds the market and the fault injector.
    pub fn new(config: &SimConfig) -> Result<Self, ConnectorError> {
        let market = SimMarket::new(config)?;
        let faults = FaultInjector::new(config.faults.clone(), config.seed, market.symbol_count());
        Ok(Self {
            market,
            faults,
            scratch: Vec::with_capacity(4),
        })
    }

    /// The true market behind the feed (faults never change it).
    pub fn market(&self) -> &SimMarket {
        &self.market
    }

    pub fn instruments(&self) -> Vec<Instrument> {
        self.market.instruments()
    }

    /// Generates `count` market events (symbols taking turns) and appends what the venue sends
    /// for them to `out`. With faults on, a delta may be missing, doubled, held back until the
    /// symbol's next delta, or wrong.
    pub fn generate(&mut self, count: usize, now: Timestamp, out: &mut Vec<FeedEvent>) {
        if !self.faults.is_active() {
            for _ in 0..count {
                self.market.step(now, out);
            }
            return;
        }
        for _ in 0..count {
            let index = self.market.step(now, &mut self.scratch);
            for event in self.scratch.drain(..) {
                if matches!(event, FeedEvent::BookDelta { .. }) {
                    self.faults.deliver(&self.market, index, event, out);
                } else {
                    out.push(event);
                }
            }
        }
    }

    /// A `BookSnapshot` event of `symbol`'s true book at its current sequence number, or
    /// `None` if the symbol is not simulated. A delta of that symbol held back by the reorder
    /// fault is discarded: the snapshot already includes it.
    pub fn snapshot(&mut self, symbol: &Symbol, now: Timestamp) -> Option<FeedEvent> {
        let index = self.market.index_of(symbol)?;
        Some(self.snapshot_at(index, now))
    }

    /// [`Self::snapshot`] by index in [`SimMarket::symbols`]. Panics if out of range.
    pub fn snapshot_at(&mut self, index: usize, now: Timestamp) -> FeedEvent {
        self.faults.forget(index);
        FeedEvent::BookSnapshot {
            symbol: self.market.symbol_at(index).clone(),
            snapshot: self.market.snapshot_at(index, now),
        }
    }
}
