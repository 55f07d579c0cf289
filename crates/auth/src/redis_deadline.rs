//! The one deadline rule of every Redis-backed store (nonces, rate limits, WebSocket caps):
//! a call that errs or does not answer within the store's timeout is [`Unavailable`] and is
//! counted, so the caller fails closed and `/metrics` shows it.

use crate::replay::Unavailable;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Runs `call` for at most `timeout`; an error or a deadline miss adds one to `failures`.
/// The error text names the failure (connection refused, timeout), never the URL.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    failures: &AtomicU64,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, Unavailable> {
    let result = match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(|e| Unavailable(e.to_string())),
        Err(_) => Err(Unavailable(format!(
            "no answer within {} ms",
            timeout.as_millis()
        ))),
    };
    if result.is_err() {
        failures.fetch_add(1, Ordering::Relaxed);
    }
    result
}
