//! Time windows over the trade stream, in one-second buckets (so memory is bounded by the
//! window's length in seconds, not by the trade rate).
//!
//! - [`ChangeWindow`]: percent change of the last trade price against the last price of the
//!   latest second at least `window` seconds before the current one.
//! - [`VolumeWindow`]: volume traded in the current `window` seconds over the average volume
//!   of the `trailing` windows before it.
//!
//! Times are exchange times in µs; a trade stamped earlier than one already seen counts in
//! the newest second (venue clocks are not monotonic across messages). Neither window gives a
//! value until it has observed its whole span, so a gateway that just started does not see a
//! spike in its first minute.

use model::Decimal;
use std::collections::VecDeque;

const MICROS: i64 = 1_000_000;

fn second(ts: i64) -> i64 {
    ts.div_euclid(MICROS)
}

#[derive(Debug)]
pub(crate) struct ChangeWindow {
    window: i64,
    /// (second, last price in it), oldest first; the front is the reference once it is at
    /// least `window` seconds old.
    seconds: VecDeque<(i64, Decimal)>,
}

impl ChangeWindow {
    pub(crate) fn new(window_secs: u32) -> Self {
        Self {
            window: i64::from(window_secs),
            seconds: VecDeque::new(),
        }
    }

    /// Adds a trade; returns the percent change it makes, once the window is filled.
    pub(crate) fn push(&mut self, ts: i64, price: Decimal) -> Option<Decimal> {
        let newest = self.seconds.back().map_or(i64::MIN, |(s, _)| *s);
        let sec = second(ts).max(newest);
        match self.seconds.back_mut() {
            Some((s, p)) if *s == sec => *p = price,
            _ => self.seconds.push_back((sec, price)),
        }
        let target = sec - self.window;
        while self.seconds.len() >= 2 && self.seconds[1].0 <= target {
            self.seconds.pop_front();
        }
        let &(ref_sec, reference) = self.seconds.front()?;
        if ref_sec > target || reference.is_zero() {
            return None;
        }
        let change = (price - reference).checked_mul(Decimal::ONE_HUNDRED)?;
        change.checked_div(reference)
    }
}

#[derive(Debug)]
pub(crate) struct VolumeWindow {
    window: i64,
    trailing: i64,
    /// Seconds in the current window, oldest first, and their sum.
    current: VecDeque<(i64, Decimal)>,
    current_sum: Decimal,
    /// Seconds in the trailing windows, oldest first, and their sum.
    past: VecDeque<(i64, Decimal)>,
    past_sum: Decimal,
    /// The second of the first trade seen (the start of observation).
    since: Option<i64>,
}

impl VolumeWindow {
    pub(crate) fn new(window_secs: u32, trailing: u32) -> Self {
        Self {
            window: i64::from(window_secs),
            trailing: i64::from(trailing),
            current: VecDeque::new(),
            current_sum: Decimal::ZERO,
            past: VecDeque::new(),
            past_sum: Decimal::ZERO,
            since: None,
        }
    }

    /// Moves buckets from the current window to the trailing ones, and out, as time passes.
    fn advance(&mut self, now_sec: i64) {
        let current_start = now_sec - self.window;
        while let Some(&(sec, volume)) = self.current.front() {
            if sec > current_start {
                break;
            }
            self.current.pop_front();
            self.current_sum -= volume;
            self.past.push_back((sec, volume));
            self.past_sum += volume;
        }
        let past_start = now_sec - self.window * (self.trailing + 1);
        while let Some(&(sec, volume)) = self.past.front() {
            if sec > past_start {
                break;
            }
            self.past.pop_front();
            self.past_sum -= volume;
        }
    }

    pub(crate) fn push(&mut self, ts: i64, size: Decimal) {
        let newest = self.current.back().map_or(i64::MIN, |(s, _)| *s);
        let sec = second(ts).max(newest);
        self.since.get_or_insert(sec);
        self.advance(sec);
        match self.current.back_mut() {
            Some((s, v)) if *s == sec => *v += size,
            _ => self.current.push_back((sec, size)),
        }
        self.current_sum += size;
    }

    /// The current window's volume as a multiple of the trailing average, at `now`, once the
    /// whole span has been observed and the trailing windows traded something.
    pub(crate) fn value(&mut self, now: i64) -> Option<Decimal> {
        let now_sec = second(now);
        let since = self.since?;
        if now_sec < since {
            return None;
        }
        self.advance(now_sec);
        if now_sec - since < self.window * (self.trailing + 1) || self.past_sum.is_zero() {
            return None;
        }
        self.current_sum
            .checked_mul(Decimal::from(self.trailing))?
            .checked_div(self.past_sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        model::parse_decimal(s).unwrap()
    }

    #[test]
    fn change_is_against_the_price_a_window_ago() {
        let mut w = ChangeWindow::new(10);
        assert_eq!(w.push(0, d("100")), None, "window not filled");
        assert_eq!(w.push(5 * MICROS, d("101")), None);
        assert_eq!(
            w.push(9_999_999, d("102")),
            None,
            "9.99 s: still not a whole window"
        );
        assert_eq!(w.push(10 * MICROS, d("102")), Some(d("2")));
        // At 16 s the reference is the last price of second 6 or earlier: 101 (second 5).
        assert_eq!(w.push(16 * MICROS, d("99.99")), Some(d("-1")));
        // An earlier timestamp counts in the newest second.
        assert_eq!(w.push(3 * MICROS, d("98.98")), Some(d("-2")));
    }

    #[test]
    fn volume_multiple_of_the_trailing_average() {
        // 2-second windows, 2 trailing windows: needs 6 s of observation.
        let mut w = VolumeWindow::new(2, 2);
        for (sec, size) in [(0, "1"), (1, "1"), (2, "1"), (3, "1")] {
            w.push(sec * MICROS, d(size));
        }
        assert_eq!(w.value(5 * MICROS), None, "5 s observed");
        // At 6 s: current = seconds 5..6 (nothing yet), trailing = seconds 1..4 (3 lots in 2
        // windows: average 1.5).
        assert_eq!(w.value(6 * MICROS), Some(d("0")));
        w.push(6 * MICROS, d("6"));
        assert_eq!(w.value(6 * MICROS), Some(d("4")));
        // At 8 s second 6 has moved to the trailing windows (seconds 3..6: 7 lots).
        assert_eq!(w.value(8 * MICROS), Some(d("0")));
        assert_eq!(
            w.value(20 * MICROS),
            None,
            "nothing traded in the trailing windows"
        );
    }
}
