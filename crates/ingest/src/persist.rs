//! What one instrument hands to the history writer: its trades, once per batch, and its
//! closed candles. Everything goes through [`HistorySink`], which never waits.

use model::{Candle, Interval, Symbol, Trade, Venue};
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
}

impl InstrumentHistory {
    pub(crate) fn new(sink: Option<&HistorySink>, venue: &Venue, symbol: &Symbol) -> Self {
        let Some(sink) = sink else {
            return Self::default();
        };
        let wants = |kind| sink.wants(kind, venue, symbol);
        Self {
            trades: wants(HistoryKind::Trades),
            candles: Interval::ALL.map(|i| wants(HistoryKind::Candles(i))),
            sink: Some(sink.clone()),
            venue: Some(venue.clone()),
            symbol: Some(symbol.clone()),
            pending: Vec::new(),
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
