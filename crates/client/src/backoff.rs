//! Exponential backoff with full jitter (the delay is uniform in `[0, min(cap, base·2ⁿ)]`), so
//! that many clients cut off at once do not come back in lockstep.

use crate::options::BackoffConfig;
use std::time::Duration;

/// Delay generator for consecutive failed attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    rng: SplitMix64,
}

impl Backoff {
    pub fn new(config: BackoffConfig) -> Self {
        let seed = config.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9E37_79B9, |d| d.as_nanos() as u64)
        });
        Self {
            config,
            rng: SplitMix64(seed),
        }
    }

    /// The ceiling of attempt `attempt` (1-based): `min(cap, base × 2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.config
            .base
            .checked_mul(factor)
            .map_or(self.config.cap, |d| d.min(self.config.cap))
    }

    /// A random delay for attempt `attempt` (1-based), uniform in `[0, ceiling]`.
    pub fn delay(&mut self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt).as_micros() as u64;
        Duration::from_micros(self.rng.next() % (ceiling + 1))
    }

    /// Whether attempt `attempt` (1-based) is still allowed.
    pub fn allows(&self, attempt: u32) -> bool {
        self.config.max_attempts.is_none_or(|max| attempt <= max)
    }

    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }
}

/// A tiny, well-distributed PRNG; jitter needs no cryptographic quality.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff::new(BackoffConfig {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            max_attempts: Some(6),
            seed: Some(7),
            ..BackoffConfig::default()
        })
    }

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let b = backoff();
        let ms: Vec<u128> = (1..=7).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(b.ceiling(200), Duration::from_secs(2), "no overflow");
        assert!(b.allows(6) && !b.allows(7));
    }

    #[test]
    fn delays_are_spread_over_the_whole_range() {
        let mut b = backoff();
        let delays: Vec<Duration> = (0..2000).map(|_| b.delay(4)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(800)));
        let low = delays
            .iter()
            .filter(|d| **d < Duration::from_millis(200))
            .count();
        let high = delays
            .iter()
            .filter(|d| **d > Duration::from_millis(600))
            .count();
        // Uniform: about a quarter in each of these ranges.
        assert!((400..600).contains(&low), "{low}");
        assert!((400..600).contains(&high), "{high}");
    }
}
