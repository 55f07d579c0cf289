//! A token bucket: `rate` requests per second with a burst of `rate`.

use std::time::Instant;

#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    tokens: f64,
    updated: Instant,
    /// Consecutive rejected requests; a client that ignores `rate_limited` for long is closed.
    pub rejected_in_a_row: u32,
}

impl TokenBucket {
    pub fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            rate,
            tokens: rate,
            updated: Instant::now(),
            rejected_in_a_row: 0,
        }
    }

    /// Takes a token if one is available.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.updated = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.rejected_in_a_row = 0;
            true
        } else {
            self.rejected_in_a_row = self.rejected_in_a_row.saturating_add(1);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_burst_then_refills() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(5);
        assert_eq!((0..10).filter(|_| bucket.try_take(start)).count(), 5);
        assert_eq!(bucket.rejected_in_a_row, 5);
        assert!(bucket.try_take(start + Duration::from_millis(250)));
        assert_eq!(bucket.rejected_in_a_row, 0);
        assert!(!bucket.try_take(start + Duration::from_millis(250)));
        assert_eq!(
            (0..10)
                .filter(|_| bucket.try_take(start + Duration::from_secs(5)))
                .count(),
            5
        );
    }
}
