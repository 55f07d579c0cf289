//! What one instrument hands to the history writer: its trades, once per batch, its closed
//! candles, and a perpetual's funding and open interest, sampled. Everything goes through
//! [`HistorySink`], which never waits.

use model::{Candle, Funding, Interval, Liquidation, OpenInterest, Symbol, Trade, Venue};
use store::{HistoryKind, HistorySink};

/// The history side of one instrument. Without a sink (history disabled) it does nothing and
/// collects nothing.
#[derive(Debug, Default)]
pub(crate) struct InstrumentHistory {
    sink: Option<HistorySink>,
    venue: Option<Venue>,
    symbol: Option<Symbol>,
    /// Whether trades, and candles of each interval (in [`Interval::ALL`] order), are stored.
    trades: bool,
    candles: [bool; 6],
    /// Trades of the current batch, handed over in one record.
    pending: Vec<Trade>,
    funding: Sampled<Funding>,
    oi: Sampled<OpenInterest>,
    liquidations: bool,
}

/// A perpetual's figure as last stored, for sampling: a new value is stored when it differs
/// from the stored one and at least `every` µs (exchange time) passed since, or at once when
/// `urgent` says so (a funding interval rolled over). A row holds from its `ts` until the next
/// row, so unchanged pushes store nothing.
#[derive(Debug)]
struct Sampled<T> {
    wanted: bool,
    every: i64,
    stored: Option<T>,
}

impl<T> Default for Sampled<T> {
    fn default() -> Self {
        Self {
            wanted: false,
            every: 0,
            stored: None,
        }
    }
}

impl<T: Clone> Sampled<T> {
    fn new(wanted: bool, every: i64) -> Self {
        Self {
            wanted,
            every,
            stored: None,
        }
    }

    /// Whether `value` is to be stored now (it then becomes the stored one).
    fn offer(
        &mut self,
        value: &T,
        ts: impl Fn(&T) -> i64,
        same: impl Fn(&T, &T) -> bool,
        urgent: impl Fn(&T, &T) -> bool,
    ) -> bool {
        if !self.wanted {
            return false;
        }
        let store = match &self.stored {
            None => true,
            Some(stored) => {
                urgent(stored, value)
                    || (!same(stored, value) && ts(value).saturating_sub(ts(stored)) >= self.every)
            }
        };
        if store {
            self.stored = Some(value.clone());
        }
        store
    }
}

impl InstrumentHistory {
    pub(crate) fn new(sink: Option<&HistorySink>, venue: &Venue, symbol: &Symbol) -> Self {
        let Some(sink) = sink else {
            return Self::default();
        };
        let wants = |kind| sink.wants(kind, venue, symbol);
        let every = sink.perp_sample_micros();
        Self {
            trades: wants(HistoryKind::Trades),
            candles: Interval::ALL.map(|i| wants(HistoryKind::Candles(i))),
            funding: Sampled::new(wants(HistoryKind::Funding), every),
            oi: Sampled::new(wants(HistoryKind::OpenInterest), every),
            liquidations: wants(HistoryKind::Liquidations),
            sink: Some(sink.clone()),
            venue: Some(venue.clone()),
            symbol: Some(symbol.clone()),
            pending: Vec::new(),
        }
    }

    /// A perpetual's funding as published: stored when it changed (sampled), and at once when
    /// the next funding time moved (a new interval's rate).
    pub(crate) fn on_funding(&mut self, funding: &Funding) {
        let store = self.funding.offer(
            funding,
            |f| f.ts.0,
            |a, b| {
                a.rate == b.rate
                    && a.predicted_rate == b.predicted_rate
                    && a.next_funding_ts == b.next_funding_ts
            },
            |stored, new| stored.next_funding_ts != new.next_funding_ts,
        );
        if let (true, Some(sink), Some(venue), Some(symbol)) =
            (store, &self.sink, &self.venue, &self.symbol)
        {
            sink.record_funding(venue, symbol, funding);
        }
    }

    /// A perpetual's liquidations of one batch: every one is stored.
    pub(crate) fn on_liquidations(&self, liquidations: &[Liquidation]) {
        if !self.liquidations || liquidations.is_empty() {
            return;
        }
        if let (Some(sink), Some(venue), Some(symbol)) = (&self.sink, &self.venue, &self.symbol) {
            sink.record_liquidations(venue, symbol, liquidations.to_vec());
        }
    }

    /// A perpetual's open interest as published: stored when it changed (sampled).
    pub(crate) fn on_open_interest(&mut self, oi: &OpenInterest) {
        let store = self.oi.offer(
            oi,
            |o| o.ts.0,
            |a, b| a.oi == b.oi && a.oi_value == b.oi_value,
            |_, _| false,
        );
        if let (true, Some(sink), Some(venue), Some(symbol)) =
            (store, &self.sink, &self.venue, &self.symbol)
        {
            sink.record_open_interest(venue, symbol, oi);
        }
    }

    pub(crate) fn on_trade(&mut self, trade: &Trade) {
        if self.trades {
            self.pending.push(trade.clone());
        }
    }

    /// Hands the batch's trades to the writer.
    pub(crate) fn flush_trades(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let trades = std::mem::take(&mut self.pending);
        if let (Some(sink), Some(venue), Some(symbol)) = (&self.sink, &self.venue, &self.symbol) {
            sink.record_trades(venue, symbol, trades);
        }
    }

    /// Stores a candle if it is closed and its interval is stored.
    pub(crate) fn on_candle(&self, candle: &Candle) {
        if candle.closed {
            self.record_candle(candle);
        }
    }

    /// At shutdown: stores a still-open candle as observed so far, marked incomplete, so a
    /// restart inside the interval merges into it instead of losing the first part.
    pub(crate) fn on_shutdown(&self, open: &Candle) {
        let mut candle = open.clone();
        candle.closed = true;
        candle.complete = false;
        self.record_candle(&candle);
    }

    fn record_candle(&self, candle: &Candle) {
        let index = Interval::ALL
            .iter()
            .position(|i| *i == candle.interval)
            .unwrap_or(0);
        if !self.candles[index] {
            return;
        }
        if let (Some(sink), Some(venue), Some(symbol)) = (&self.sink, &self.venue, &self.symbol) {
            sink.record_candle(venue, symbol, candle);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Decimal, Timestamp};

    fn funding(rate: &str, next: i64, ts: i64) -> Funding {
        Funding {
            rate: Decimal::from_str_exact(rate).unwrap(),
            predicted_rate: None,
            next_funding_ts: Some(Timestamp(next)),
            ts: Timestamp(ts),
        }
    }

    fn offer(s: &mut Sampled<Funding>, f: &Funding) -> bool {
        s.offer(
            f,
            |f| f.ts.0,
            |a, b| a.rate == b.rate && a.next_funding_ts == b.next_funding_ts,
            |a, b| a.next_funding_ts != b.next_funding_ts,
        )
    }

    #[test]
    fn funding_is_sampled_on_change_and_stored_at_once_on_a_new_interval() {
        let mut s = Sampled::new(true, 60_000_000);
        assert!(
            offer(&mut s, &funding("0.0001", 8, 0)),
            "the first value is stored"
        );
        assert!(
            !offer(&mut s, &funding("0.0001", 8, 90_000_000)),
            "unchanged: nothing"
        );
        assert!(
            !offer(&mut s, &funding("0.0002", 8, 30_000_000)),
            "changed within 60 s"
        );
        assert!(
            offer(&mut s, &funding("0.0002", 8, 60_000_000)),
            "changed, 60 s later"
        );
        assert!(
            offer(&mut s, &funding("0.0002", 16, 60_000_001)),
            "a new interval at once"
        );
        assert_eq!(
            s.stored.as_ref().unwrap().next_funding_ts,
            Some(Timestamp(16))
        );
        let mut off = Sampled::new(false, 0);
        assert!(
            !offer(&mut off, &funding("0.0001", 8, 0)),
            "not wanted: never stored"
        );
    }
}
