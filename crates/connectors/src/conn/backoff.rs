//! Reconnect delays: exponential backoff with full jitter, reset after a stable period.

use std::time::Duration;

/// Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
/// Jitter"): the n-th consecutive failure waits a uniformly random time in
/// `[0, min(cap, base × 2^n)]`, so a fleet of gateways reconnecting after a venue outage spreads
/// out instead of stampeding. [`Backoff::reset`] (called after a connection stayed up for the
/// configured stable period) starts the schedule over.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    rng: Rng,
}

impl Backoff {
    /// `seed` makes the jitter reproducible (tests); production seeds from the clock.
    pub fn new(base: Duration, cap: Duration, seed: u64) -> Self {
        Self {
            base,
            cap: cap.max(base),
            attempt: 0,
            rng: Rng::new(seed),
        }
    }

    /// The upper bound of the next delay: `min(cap, base × 2^attempt)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before the next attempt; each call counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.below(nanos.saturating_add(1)))
    }

    /// Consecutive failures counted so far.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Forgets past failures (the connection has been stable).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A tiny splitmix64 generator: jitter needs spread, not cryptographic strength.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Seeded from the clock and an address, different per connection and per process.
    pub fn from_entropy(salt: u64) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self(nanos ^ salt.rotate_left(32) ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, bound)`; 0 when `bound` is 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_the_exponential_ceiling_and_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 7);
        let ceilings: Vec<u64> = (0..8)
            .map(|_| {
                let ceiling = b.ceiling();
                let delay = b.next_delay();
                assert!(delay <= ceiling, "{delay:?} > {ceiling:?}");
                ceiling.as_millis() as u64
            })
            .collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
        assert_eq!(b.attempt(), 0);
    }

    #[test]
    fn jitter_is_full_range_and_reproducible() {
        let mut a = Backoff::new(Duration::from_secs(1), Duration::from_secs(1), 1);
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1), 1);
        let delays: Vec<Duration> = (0..200).map(|_| a.next_delay()).collect();
        assert_eq!(delays, (0..200).map(|_| b.next_delay()).collect::<Vec<_>>());
        // Full jitter: both short and long waits occur.
        assert!(delays.iter().any(|d| *d < Duration::from_millis(200)));
        assert!(delays.iter().any(|d| *d > Duration::from_millis(800)));
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 3);
        for _ in 0..1000 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
    }
}
