//! The retry schedule: exponential backoff with full jitter.
//!
//! After the n-th failed attempt (n = 1, 2, ...) the next one waits a uniformly random time in
//! `[0, cap(n)]`, `cap(n) = min(base × 2^(n−1), max_delay)`, until `max_attempts` attempts
//! have failed; then the delivery is dead. With the defaults (base 5 s, max delay 4 h, 14
//! attempts) the caps are 5 s, 10 s, 20 s, 40 s, 80 s, 160 s, 320 s, 640 s, 21 min, 43 min,
//! 85 min, 171 min and 4 h: at most 9 h 41 min from the first attempt to the last, 4 h 50 min
//! on average. Full jitter (AWS's "exponential backoff and jitter") spreads the retries of
//! many deliveries that failed together, so a receiver coming back is not hit by all of them
//! at once.

use std::time::Duration;

/// Retry timing (`[alerts.delivery]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    pub base: Duration,
    pub max_delay: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            max_delay: Duration::from_secs(4 * 3600),
            max_attempts: 14,
        }
    }
}

impl RetrySchedule {
    /// The longest wait after the `failed`-th failed attempt.
    pub fn cap(&self, failed: u32) -> Duration {
        let doubling = failed.saturating_sub(1).min(40);
        self.base
            .saturating_mul(2u32.saturating_pow(doubling.min(31)))
            .min(self.max_delay)
    }

    /// The wait after the `failed`-th failed attempt for a jitter draw in `[0, 1)`, or `None`
    /// when that was the last attempt.
    pub fn delay(&self, failed: u32, jitter: f64) -> Option<Duration> {
        if failed >= self.max_attempts {
            return None;
        }
        Some(self.cap(failed).mul_f64(jitter.clamp(0.0, 1.0)))
    }
}

/// Where jitter draws come from.
#[derive(Debug, Clone)]
pub enum Jitter {
    /// Uniform in `[0, 1)` from a generator seeded by the OS (not a secret: it only spreads
    /// retries).
    Random(u64),
    /// Always this fraction (tests, and operators who want the caps exactly).
    Fixed(f64),
}

impl Jitter {
    pub fn random() -> Self {
        let mut seed = [0u8; 8];
        // A failed OS RNG only makes the spread less random.
        let _ = getrandom::fill(&mut seed);
        Self::Random(u64::from_le_bytes(seed) | 1)
    }

    /// The next draw in `[0, 1)` (xorshift64*).
    pub fn draw(&mut self) -> f64 {
        match self {
            Self::Fixed(f) => *f,
            Self::Random(state) => {
                let mut x = *state;
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                *state = x;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_default_schedule() {
        let s = RetrySchedule::default();
        let caps: Vec<u64> = (1..s.max_attempts).map(|n| s.cap(n).as_secs()).collect();
        assert_eq!(
            caps,
            [
                5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 14400
            ]
        );
        let total: u64 = caps.iter().sum();
        assert_eq!(total, 9 * 3600 + 41 * 60 + 15, "9 h 41 min at most");
        assert_eq!(s.delay(13, 1.0), Some(Duration::from_secs(14400)));
        assert_eq!(s.delay(14, 0.5), None, "the 14th failure is the last");
        assert_eq!(s.delay(3, 0.25), Some(Duration::from_secs(5)));
        assert_eq!(s.cap(u32::MAX), s.max_delay);
    }

    #[test]
    fn draws_are_uniform_in_the_unit_interval() {
        let mut j = Jitter::Random(42);
        let draws: Vec<f64> = (0..10_000).map(|_| j.draw()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((0.45..0.55).contains(&mean), "{mean}");
        let low = draws.iter().filter(|d| **d < 0.1).count();
        assert!((800..1200).contains(&low), "{low}");
        assert_eq!(Jitter::Fixed(0.3).draw(), 0.3);
    }
}
