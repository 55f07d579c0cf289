//! The replay guard of signed requests: the timestamp window, `expires`, and the per-key
//! nonce store. Order of use (see `docs/security.md`):
//!
//! 1. [`ReplayGuard::check_time`] before verifying the signature (cheap, and a stale request
//!    is refused with its own code whether or not its signature is good);
//! 2. the signature is verified;
//! 3. [`ReplayGuard::check_unused`]: a replay is refused here, before it can spend the key's
//!    rate limit;
//! 4. the key's scope and rate limit;
//! 5. [`ReplayGuard::record`] only then, so a forged request cannot burn a victim's nonce, and a
//!    request the rate limit refused takes no room in the store (atomic: of two concurrent
//!    requests with one nonce, one is refused here).
//!
//! Times are whole seconds since the epoch, passed in by the caller (tests pause the clock by
//! passing their own).
//!
//! The nonce store is in this process ([`NonceStore`], answered inline) or shared by several
//! ([`SharedNonceStore`], e.g. Redis, awaited): steps 3 and 5 are async for that reason. A
//! shared store that cannot answer refuses the request with `unavailable` (fail closed).

pub mod nonce;
pub mod nonce_redis;
pub mod shared;

pub use nonce::{MemoryNonceStore, NonceStore, Recorded};
pub use nonce_redis::RedisNonceStore;
pub use shared::{Immediate, SharedNonceStore, Unavailable};

use crate::rejection::Rejection;
use protocol::ErrorCode;
use std::sync::Arc;

/// The largest accepted window on either side.
pub const MAX_WINDOW_SECS: u32 = 120;
/// Longest accepted nonce, in bytes.
pub const MAX_NONCE_LEN: usize = 128;

/// How far `created` may be from the server's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Seconds in the past (default 30).
    pub past: u32,
    /// Seconds in the future, for clock skew (default 5).
    pub future: u32,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            past: 30,
            future: 5,
        }
    }
}

impl Window {
    pub fn new(past: u32, future: u32) -> Result<Self, String> {
        if past == 0 || past > MAX_WINDOW_SECS || future > MAX_WINDOW_SECS {
            return Err(format!(
                "the signature window must be 1..={MAX_WINDOW_SECS} s in the past and \
                 0..={MAX_WINDOW_SECS} s in the future"
            ));
        }
        Ok(Self { past, future })
    }
}

/// Nonce handling of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonceMode {
    /// Each nonce accepted once within the window (the default).
    #[default]
    Unique,
    /// The nonce is an integer greater than the last accepted one (O(1) state per key).
    Monotonic,
}

/// Where the guard keeps nonces.
#[derive(Debug, Clone)]
pub enum Nonces {
    /// In this process: answered inline, nothing awaited (the single-node default).
    Local(Arc<dyn NonceStore>),
    /// Shared by several gateway processes (Redis): awaited, and may be unavailable.
    Shared(Arc<dyn SharedNonceStore>),
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    window: Window,
    store: Nonces,
}

impl ReplayGuard {
    /// A guard over an in-process store.
    pub fn new(window: Window, store: Arc<dyn NonceStore>) -> Self {
        Self {
            window,
            store: Nonces::Local(store),
        }
    }

    /// A guard over a store shared by several processes.
    pub fn shared(window: Window, store: Arc<dyn SharedNonceStore>) -> Self {
        Self {
            window,
            store: Nonces::Shared(store),
        }
    }

    pub fn window(&self) -> Window {
        self.window
    }

    pub fn store(&self) -> &Nonces {
        &self.store
    }

    /// Whether the nonce store answers now: always for a local one; a shared one is pinged.
    pub async fn ready(&self) -> Result<(), Unavailable> {
        match &self.store {
            Nonces::Local(_) => Ok(()),
            Nonces::Shared(store) => store.ping().await,
        }
    }

    /// Checks `created` against the window and `expires` against `now`.
    pub fn check_time(
        &self,
        created: i64,
        expires: Option<i64>,
        now: i64,
    ) -> Result<(), Rejection> {
        if created < now - i64::from(self.window.past) {
            return Err(Rejection::new(
                ErrorCode::TimestampStale,
                format!(
                    "the signature was created {} s ago; at most {} s is accepted",
                    now - created,
                    self.window.past
                ),
            ));
        }
        if created > now + i64::from(self.window.future) {
            return Err(Rejection::new(
                ErrorCode::TimestampFuture,
                format!(
                    "the signature was created {} s in the future; at most {} s of clock skew \
                     is accepted",
                    created - now,
                    self.window.future
                ),
            ));
        }
        if expires.is_some_and(|e| e <= now) {
            return Err(Rejection::new(
                ErrorCode::SignatureExpired,
                "the signature's expires has passed",
            ));
        }
        Ok(())
    }

    /// Refuses a nonce already recorded (a replay) without recording anything.
    pub async fn check_unused(
        &self,
        key: &str,
        nonce: &str,
        mode: NonceMode,
        now: i64,
    ) -> Result<(), Rejection> {
        let used = match mode {
            NonceMode::Unique => match &self.store {
                Nonces::Local(store) => store.seen(key, nonce, now),
                Nonces::Shared(store) => store.seen(key, nonce, now).await.map_err(refused)?,
            },
            NonceMode::Monotonic => {
                let last = match &self.store {
                    Nonces::Local(store) => store.last_increasing(key),
                    Nonces::Shared(store) => store.last_increasing(key).await.map_err(refused)?,
                };
                match (nonce.parse::<u64>(), last) {
                    (Ok(value), Some(last)) => value <= last,
                    _ => false, // malformed or first: decided by `record`
                }
            }
        };
        if !used {
            return Ok(());
        }
        Err(match mode {
            NonceMode::Unique => reused(key),
            NonceMode::Monotonic => not_increasing(key),
        })
    }

    /// Records the nonce of a request whose signature verified.
    pub async fn record(
        &self,
        key: &str,
        nonce: &str,
        mode: NonceMode,
        created: i64,
        now: i64,
    ) -> Result<(), Rejection> {
        if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN {
            return Err(Rejection::new(
                ErrorCode::SignatureInvalid,
                format!("the nonce must be 1 to {MAX_NONCE_LEN} characters"),
            ));
        }
        let expires_at = created + i64::from(self.window.past);
        let outcome = match (mode, &self.store) {
            (NonceMode::Unique, Nonces::Local(store)) => store.record(key, nonce, expires_at, now),
            (NonceMode::Unique, Nonces::Shared(store)) => store
                .record(key, nonce, expires_at, now)
                .await
                .map_err(refused)?,
            (NonceMode::Monotonic, store) => match nonce.parse::<u64>() {
                Ok(value) if nonce.bytes().all(|b| b.is_ascii_digit()) => match store {
                    Nonces::Local(store) => store.record_increasing(key, value),
                    Nonces::Shared(store) => {
                        store.record_increasing(key, value).await.map_err(refused)?
                    }
                },
                _ => Recorded::NotIncreasing,
            },
        };
        match outcome {
            Recorded::Fresh => Ok(()),
            Recorded::Reused => Err(reused(key)),
            Recorded::NotIncreasing => Err(not_increasing(key)),
            Recorded::KeyFull => {
                let mut r = Rejection::new(
                    ErrorCode::RateLimited,
                    format!("key {key} holds its whole share of the nonce store; retry shortly"),
                );
                r.retry_after = Some(std::time::Duration::from_secs(1));
                Err(r)
            }
            Recorded::Full => {
                let mut r = Rejection::new(
                    ErrorCode::RateLimited,
                    "too many signed requests in the window; retry shortly",
                );
                r.retry_after = Some(std::time::Duration::from_secs(1));
                Err(r)
            }
        }
    }
}

/// A shared store that cannot answer: refused, never accepted (it may be a replay).
fn refused(error: Unavailable) -> Rejection {
    tracing::warn!(error = %error, "signed request refused: the nonce store is unavailable");
    let mut r = Rejection::new(
        ErrorCode::Unavailable,
        "the replay guard's store cannot be reached, so signed requests are refused; retry \
         shortly",
    );
    r.retry_after = Some(std::time::Duration::from_secs(1));
    r
}

fn reused(key: &str) -> Rejection {
    Rejection::new(
        ErrorCode::NonceReused,
        format!("key {key} already used this nonce: the request is a replay"),
    )
}

fn not_increasing(key: &str) -> Rejection {
    Rejection::new(
        ErrorCode::NonceNotIncreasing,
        format!(
            "key {key} is in monotonic mode: the nonce must be an integer greater than the last \
             accepted one"
        ),
    )
}

#[cfg(test)]
mod tests;
