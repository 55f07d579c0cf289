//! Per-key rate limiting with GCRA (the generic cell rate algorithm: a token bucket kept as one
//! "theoretical arrival time"). One atomic per key, updated with compare-and-swap: no lock, no
//! allocation, and memory is bounded by the number of keys (no per-caller map to prune).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use store::keys::RateLimit;

/// GCRA state of one key: the theoretical arrival time, ns since the limiter's origin.
#[derive(Debug, Default)]
pub struct Gcra {
    tat: AtomicU64,
}

impl Gcra {
    /// Admits one request at `now_ns` under `limit`, or says how long to wait.
    pub fn check(&self, now_ns: u64, limit: RateLimit) -> Result<(), Duration> {
        let interval = 1_000_000_000 / u64::from(limit.per_sec.max(1));
        let tolerance = interval.saturating_mul(u64::from(limit.burst.max(1)));
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now_ns);
            let next = start + interval;
            if next - now_ns > tolerance {
                return Err(Duration::from_nanos(next - tolerance - now_ns));
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(actual) => tat = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate_with_retry_after() {
        let limit = RateLimit {
            per_sec: 10,
            burst: 5,
        };
        let g = Gcra::default();
        let t0 = 1_000_000_000;
        assert_eq!((0..20).filter(|_| g.check(t0, limit).is_ok()).count(), 5);
        let wait = g.check(t0, limit).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(g.check(t0 + 99_000_000, limit).is_err());
        assert!(g.check(t0 + 100_000_000, limit).is_ok());
        // Over a long run the rate is per_sec.
        let mut admitted = 0;
        for i in 0..10_000u64 {
            if g.check(t0 + 1_000_000_000 + i * 1_000_000, limit).is_ok() {
                admitted += 1;
            }
        }
        assert!((100..=106).contains(&admitted), "{admitted}");
    }
}
