//! Candle aggregation for every interval, from trades.

use model::{Candle, Decimal, Interval, Timestamp};
use std::collections::VecDeque;

/// Closed candles kept in memory per interval for `GET /v1/candles`.
pub const RECENT_CANDLES: usize = 1000;

/// Builds candles for one instrument at every [`Interval`].
///
/// A candle is `complete` only if the feed was observed continuously from before its bucket
/// started until it closed; the first bucket after start-up or after a feed loss is partial.
#[derive(Debug, Default)]
pub struct CandleAgg {
    slots: [Slot; 6],
}

#[derive(Debug, Default)]
struct Slot {
    current: Option<Candle>,
    changed: bool,
    /// Candles closed since the last `take_updates`, oldest first.
    just_closed: Vec<Candle>,
    recent: VecDeque<Candle>,
}

impl CandleAgg {
    /// Folds a trade into every interval. `observed_since` is when the feed last became
    /// continuously observed (start-up or reconnect).
    pub fn on_trade(
        &mut self,
        price: Decimal,
        size: Decimal,
        ts: Timestamp,
        observed_since: Timestamp,
    ) {
        for (slot, interval) in self.slots.iter_mut().zip(Interval::ALL) {
            let start = interval.bucket_start(ts);
            match &mut slot.current {
                Some(c) if c.start == start => {
                    c.high = c.high.max(price);
                    c.low = c.low.min(price);
                    c.close = price;
                    c.volume += size;
                    c.trades += 1;
                }
                // A late trade for a bucket that is already closed (by a newer trade or by the
                // timer) never re-opens it or opens a second candle for it: closed candles are
                // final. It is skipped.
                Some(c) if c.start > start => continue,
                None if slot.recent.back().is_some_and(|c| c.start >= start) => continue,
                _ => {
                    slot.close_current();
                    slot.current = Some(Candle {
                        interval,
                        start,
                        open: price,
                        high: price,
                        low: price,
                        close: price,
                        volume: size,
                        trades: 1,
                        closed: false,
                        complete: observed_since <= start,
                    });
                }
            }
            slot.changed = true;
        }
    }

    /// Closes every candle whose bucket ended before `now - grace`.
    pub fn close_due(&mut self, now: Timestamp, grace_micros: i64) {
        for (slot, interval) in self.slots.iter_mut().zip(Interval::ALL) {
            if slot
                .current
                .as_ref()
                .is_some_and(|c| c.start.0 + interval.micros() + grace_micros <= now.0)
            {
                slot.close_current();
            }
        }
    }

    /// The feed was lost: the open candles can no longer be complete.
    pub fn mark_incomplete(&mut self) {
        for slot in &mut self.slots {
            if let Some(c) = &mut slot.current
                && c.complete
            {
                c.complete = false;
                slot.changed = true;
            }
        }
    }

    /// Candles to publish, per interval: the ones closed since the last call, then the open
    /// one if it changed.
    pub fn take_updates(&mut self, mut emit: impl FnMut(Interval, &Candle)) {
        for (slot, interval) in self.slots.iter_mut().zip(Interval::ALL) {
            for c in slot.just_closed.drain(..) {
                emit(interval, &c);
            }
            if std::mem::take(&mut slot.changed)
                && let Some(c) = &slot.current
            {
                emit(interval, c);
            }
        }
    }

    /// Recent candles of one interval, oldest first, ending with the open one.
    pub fn recent(&self, interval: Interval) -> Vec<Candle> {
        let slot = &self.slots[Interval::ALL
            .iter()
            .position(|i| *i == interval)
            .unwrap_or(0)];
        slot.recent
            .iter()
            .chain(slot.current.iter())
            .cloned()
            .collect()
    }
}

impl Slot {
    fn close_current(&mut self) {
        if let Some(mut c) = self.current.take() {
            c.closed = true;
            if self.recent.len() == RECENT_CANDLES {
                self.recent.pop_front();
            }
            self.recent.push_back(c.clone());
            self.just_closed.push(c);
            self.changed = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::parse_decimal;

    fn d(s: &str) -> Decimal {
        parse_decimal(s).unwrap()
    }

    const MIN: i64 = 60_000_000;

    #[test]
    fn ohlcv_and_completeness() {
        let mut agg = CandleAgg::default();
        let t0 = Timestamp(1_700_000_050_000_000); // 10 s into a minute
        let since = t0;
        agg.on_trade(d("10"), d("1"), t0, since);
        agg.on_trade(d("12"), d("2"), Timestamp(t0.0 + 5_000_000), since);
        agg.on_trade(d("9"), d("1"), Timestamp(t0.0 + 10_000_000), since);
        let m1: Vec<Candle> = agg.recent(Interval::M1);
        assert_eq!(m1.len(), 1);
        let c = &m1[0];
        assert_eq!(
            (c.open, c.high, c.low, c.close, c.volume, c.trades),
            (d("10"), d("12"), d("9"), d("9"), d("4"), 3)
        );
        assert!(!c.complete, "gateway started mid-minute");
        assert!(!c.closed);

        // Next minute: the first candle closes, the new one is complete.
        let next = Timestamp(Interval::M1.bucket_start(t0).0 + MIN + 1);
        agg.on_trade(d("11"), d("1"), next, since);
        let mut emitted = Vec::new();
        agg.take_updates(|i, c| {
            if i == Interval::M1 {
                emitted.push(c.clone())
            }
        });
        assert_eq!(emitted.len(), 2);
        assert!(emitted[0].closed && !emitted[0].complete);
        assert!(!emitted[1].closed && emitted[1].complete);

        agg.mark_incomplete();
        assert!(!agg.recent(Interval::M1)[1].complete);

        agg.close_due(Timestamp(next.0 + 2 * MIN), 0);
        let all = agg.recent(Interval::M1);
        assert!(all.iter().all(|c| c.closed));

        // Regression: a late trade for a bucket the timer closed opens no second candle for it.
        agg.on_trade(d("50"), d("1"), next, since);
        assert_eq!(agg.recent(Interval::M1), all);
    }
}
