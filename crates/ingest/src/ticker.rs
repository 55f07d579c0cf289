//! Ticker aggregation: top of book plus rolling 24 h statistics over per-minute buckets.

use model::{Decimal, Level, Ticker, TickerSource, Timestamp, VenueTicker};
use std::collections::VecDeque;

const BUCKET_MICROS: i64 = 60 * Timestamp::MICROS_PER_SECOND;
const WINDOW_MICROS: i64 = 24 * 60 * BUCKET_MICROS;

#[derive(Debug, Clone)]
struct Bucket {
    start: i64,
    open: Decimal,
    high: Decimal,
    low: Decimal,
    volume: Decimal,
}

/// Builds a [`Ticker`] for one instrument. Memory is bounded: at most 1,440 one-minute buckets.
///
/// Until the venue's own ticker arrives, `last` and the 24 h figures come from trades; from the
/// first [`on_venue`](Self::on_venue) on they are the venue's, and trades no longer touch them
/// (the buckets are still kept, so nothing is lost if the venue's ticker is only late). Best
/// bid/ask always come from the gateway's own book, so they agree with `book:` channels.
#[derive(Debug, Default)]
pub struct TickerAgg {
    ticker: Ticker,
    buckets: VecDeque<Bucket>,
    changed: bool,
}

impl TickerAgg {
    /// Updates the top of book; marks the ticker changed if anything differs.
    pub fn on_book(&mut self, best_bid: Option<Level>, best_ask: Option<Level>, ts: Timestamp) {
        let (bid, bid_size) = (best_bid.map(|l| l.price), best_bid.map(|l| l.size));
        let (ask, ask_size) = (best_ask.map(|l| l.price), best_ask.map(|l| l.size));
        let t = &mut self.ticker;
        if (t.bid, t.bid_size, t.ask, t.ask_size) != (bid, bid_size, ask, ask_size) {
            (t.bid, t.bid_size, t.ask, t.ask_size) = (bid, bid_size, ask, ask_size);
            t.ts = t.ts.max(ts);
            self.changed = true;
        }
    }

    /// Takes the venue's 24 h figures; a field the venue did not send keeps its last value.
    pub fn on_venue(&mut self, venue: &VenueTicker) {
        let t = &mut self.ticker;
        if t.source == TickerSource::Trades {
            // The first venue ticker: no trade-derived figure may survive under its name.
            (t.last, t.high_24h, t.low_24h, t.change_24h) = (None, None, None, None);
            t.volume_24h = Decimal::ZERO;
        }
        t.source = TickerSource::Venue;
        t.last = venue.last.or(t.last);
        t.volume_24h = venue.volume_24h.unwrap_or(t.volume_24h);
        t.high_24h = venue.high_24h.or(t.high_24h);
        t.low_24h = venue.low_24h.or(t.low_24h);
        t.change_24h = venue.change_24h.or(t.change_24h);
        t.ts = t.ts.max(venue.exchange_ts);
        self.changed = true;
    }

    fn native(&self) -> bool {
        self.ticker.source == TickerSource::Venue
    }

    pub fn on_trade(&mut self, price: Decimal, size: Decimal, ts: Timestamp) {
        let start = ts.0.div_euclid(BUCKET_MICROS) * BUCKET_MICROS;
        match self.buckets.back_mut() {
            Some(b) if b.start == start => {
                b.high = b.high.max(price);
                b.low = b.low.min(price);
                b.volume += size;
            }
            // A late trade for an older bucket is folded into the newest one: the 24 h figures
            // stay correct to within a minute, and buckets stay ordered.
            Some(b) if b.start > start => {
                b.high = b.high.max(price);
                b.low = b.low.min(price);
                b.volume += size;
            }
            _ => self.buckets.push_back(Bucket {
                start,
                open: price,
                high: price,
                low: price,
                volume: size,
            }),
        }
        self.expire(ts);
        if self.native() {
            return;
        }
        self.ticker.last = Some(price);
        self.ticker.ts = self.ticker.ts.max(ts);
        self.recompute();
        self.changed = true;
    }

    /// Drops buckets older than 24 h before `now`; returns whether the ticker changed.
    pub fn expire(&mut self, now: Timestamp) -> bool {
        let mut expired = false;
        while self
            .buckets
            .front()
            .is_some_and(|b| b.start + BUCKET_MICROS <= now.0 - WINDOW_MICROS)
        {
            self.buckets.pop_front();
            expired = true;
        }
        if expired && !self.native() {
            self.recompute();
            self.changed = true;
        }
        expired && !self.native()
    }

    fn recompute(&mut self) {
        let t = &mut self.ticker;
        t.volume_24h = self.buckets.iter().map(|b| b.volume).sum();
        t.high_24h = self.buckets.iter().map(|b| b.high).max();
        t.low_24h = self.buckets.iter().map(|b| b.low).min();
        t.change_24h = match (t.last, self.buckets.front()) {
            (Some(last), Some(first)) => Some(last - first.open),
            _ => None,
        };
    }

    /// The current ticker and whether it changed since the last call.
    pub fn take_changed(&mut self) -> Option<Ticker> {
        std::mem::take(&mut self.changed).then(|| self.ticker.clone())
    }

    pub fn ticker(&self) -> &Ticker {
        &self.ticker
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::parse_decimal;

    fn d(s: &str) -> Decimal {
        parse_decimal(s).unwrap()
    }

    #[test]
    fn rolling_window_statistics() {
        let mut agg = TickerAgg::default();
        let t0 = Timestamp(1_700_000_000_000_000);
        agg.on_trade(d("100"), d("1"), t0);
        agg.on_trade(d("110"), d("2"), Timestamp(t0.0 + 30 * 60 * 1_000_000));
        agg.on_trade(d("90"), d("0.5"), Timestamp(t0.0 + 2 * 3600 * 1_000_000));
        let t = agg.take_changed().unwrap();
        assert_eq!(t.volume_24h, d("3.5"));
        assert_eq!(
            (t.high_24h, t.low_24h, t.last),
            (Some(d("110")), Some(d("90")), Some(d("90")))
        );
        assert_eq!(t.change_24h, Some(d("-10")));
        assert!(agg.take_changed().is_none());

        // 25 h later only the newest trade is inside the window.
        agg.on_trade(d("95"), d("1"), Timestamp(t0.0 + 25 * 3600 * 1_000_000 + 1));
        let t = agg.take_changed().unwrap();
        assert_eq!(t.volume_24h, d("1.5"));
        assert_eq!((t.high_24h, t.low_24h), (Some(d("95")), Some(d("90"))));
        assert_eq!(t.change_24h, Some(d("5")));
        assert!(agg.buckets.len() <= 1440);
    }

    #[test]
    fn the_venue_ticker_replaces_trade_derived_figures() {
        let mut agg = TickerAgg::default();
        let t0 = Timestamp(1_700_000_000_000_000);
        agg.on_trade(d("100"), d("1"), t0);
        assert_eq!(agg.take_changed().unwrap().source, TickerSource::Trades);
        agg.on_venue(&VenueTicker {
            last: Some(d("101")),
            volume_24h: Some(d("5000")),
            high_24h: Some(d("120")),
            low_24h: Some(d("80")),
            change_24h: Some(d("-3")),
            exchange_ts: Timestamp(t0.0 + 1),
            recv_ts: Timestamp(t0.0 + 2),
        });
        let t = agg.take_changed().unwrap();
        assert_eq!(
            (t.source, t.last, t.volume_24h, t.change_24h),
            (
                TickerSource::Venue,
                Some(d("101")),
                d("5000"),
                Some(d("-3"))
            )
        );
        // Trades no longer move the venue's figures, nor does the window expiry.
        agg.on_trade(d("150"), d("9"), Timestamp(t0.0 + 10));
        assert!(agg.take_changed().is_none());
        assert!(!agg.expire(Timestamp(t0.0 + 48 * 3600 * 1_000_000)));
        assert_eq!(agg.ticker().volume_24h, d("5000"));
        // A partial venue ticker keeps the venue's other fields; the book still sets bid/ask.
        agg.on_venue(&VenueTicker {
            last: Some(d("102")),
            ..VenueTicker::default()
        });
        agg.on_book(
            Some(Level::new(d("101.5"), d("1"))),
            None,
            Timestamp(t0.0 + 20),
        );
        let t = agg.take_changed().unwrap();
        assert_eq!(
            (t.last, t.high_24h, t.bid),
            (Some(d("102")), Some(d("120")), Some(d("101.5")))
        );
    }

    /// A venue ticker without some figure never shows the trade-derived one under its name.
    #[test]
    fn a_partial_first_venue_ticker_drops_trade_derived_figures() {
        let mut agg = TickerAgg::default();
        agg.on_trade(d("100"), d("1"), Timestamp(1));
        agg.on_trade(d("90"), d("1"), Timestamp(2));
        agg.on_venue(&VenueTicker {
            last: Some(d("95")),
            ..VenueTicker::default()
        });
        let t = agg.take_changed().unwrap();
        assert_eq!(
            (t.last, t.volume_24h, t.high_24h, t.change_24h),
            (Some(d("95")), Decimal::ZERO, None, None)
        );
    }

    #[test]
    fn book_changes_mark_changed_only_when_different() {
        let mut agg = TickerAgg::default();
        let bid = Some(Level::new(d("99"), d("1")));
        let ask = Some(Level::new(d("101"), d("2")));
        agg.on_book(bid, ask, Timestamp(1));
        assert_eq!(agg.take_changed().unwrap().ask_size, Some(d("2")));
        agg.on_book(bid, ask, Timestamp(2));
        assert!(agg.take_changed().is_none());
    }
}
