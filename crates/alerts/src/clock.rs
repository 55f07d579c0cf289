//! The alerts' clock: wall-clock microseconds that advance with tokio's clock.
//!
//! Stored times (firings, `next_attempt_at`, expiries) are wall-clock µs, but the tasks sleep
//! on tokio timers. Deriving one from the other (the wall time at start plus the tokio time
//! elapsed since) keeps them consistent, so tests with a paused tokio clock see retries and
//! expiries happen exactly on schedule. Over a long uptime it drifts from the system clock
//! only by the monotonic clock's drift (parts per million).

use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: i64,
    start: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        Self {
            wall: model::Timestamp::now().0,
            start: Instant::now(),
        }
    }

    /// Now, µs since the Unix epoch.
    pub fn now(&self) -> i64 {
        let elapsed = i64::try_from(self.start.elapsed().as_micros()).unwrap_or(i64::MAX);
        self.wall.saturating_add(elapsed)
    }

    /// The tokio instant at wall time `at` (now if `at` has passed).
    pub fn instant_at(&self, at: i64) -> Instant {
        let ahead = at.saturating_sub(self.now()).max(0);
        Instant::now() + Duration::from_micros(ahead as u64)
    }
}
