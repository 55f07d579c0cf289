//! A token bucket: `rate` requests per second with a burst of `rate`; and the cap on
//! WebSocket upgrades in progress (`server.max_pending_upgrades`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// WebSocket upgrades in progress: from the upgrade request until the session is running
/// and, when keys are required, has authenticated (so a flood of sockets that upgrade and
/// never log in is bounded as a whole, besides each one's `ws_auth_timeout_secs`).
#[derive(Debug, Default)]
pub struct PendingUpgrades {
    open: AtomicUsize,
    refused: AtomicU64,
}

/// One upgrade in progress; its slot is given back on drop.
#[derive(Debug)]
pub struct PendingUpgrade {
    pending: Arc<PendingUpgrades>,
}

impl PendingUpgrades {
    /// Takes a slot, or `None` when `max` are in progress.
    pub fn try_start(self: &Arc<Self>, max: usize) -> Option<PendingUpgrade> {
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if !taken {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(PendingUpgrade {
            pending: self.clone(),
        })
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Appends this cap's families to a Prometheus text body.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        for (name, kind, help, value) in [
            (
                "tickgate_ws_pending_upgrades",
                "gauge",
                "WebSocket upgrades in progress (not yet running, or not yet authenticated when \
                 keys are required).",
                self.open() as u64,
            ),
            (
                "tickgate_ws_pending_upgrades_refused_total",
                "counter",
                "WebSocket upgrades refused because server.max_pending_upgrades were in progress.",
                self.refused.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
    }
}

impl Drop for PendingUpgrade {
    fn drop(&mut self) {
        self.pending.open.fetch_sub(1, Ordering::AcqRel);
    }
}

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
    fn pending_upgrades_are_capped_and_given_back() {
        let pending = Arc::new(PendingUpgrades::default());
        let a = pending.try_start(2).unwrap();
        let b = pending.try_start(2).unwrap();
        assert!(pending.try_start(2).is_none());
        drop(a);
        let c = pending.try_start(2).unwrap();
        assert_eq!(pending.open(), 2);
        drop((b, c));
        assert_eq!(pending.open(), 0);
        let mut text = String::new();
        pending.render(&mut text);
        assert!(
            text.contains("tickgate_ws_pending_upgrades_refused_total 1"),
            "{text}"
        );
    }

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
