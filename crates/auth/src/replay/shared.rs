//! [`SharedNonceStore`]: a nonce store several gateway processes use at once, over the network
//! (Redis: `nonce_redis`). Its calls are async so a round trip never blocks a runtime worker;
//! every call can fail with [`Unavailable`], and the replay guard then refuses the request
//! (fail closed: a store that cannot answer cannot prove a nonce unused).
//!
//! [`Immediate`] wraps any in-process [`NonceStore`] as a shared one (answers at once), so one
//! async [`contract`] checks both kinds.

use super::nonce::{NonceStore, Recorded};
use std::future::Future;
use std::pin::Pin;

/// The shared store did not answer (unreachable, timed out, or refused the command).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the shared nonce store is unavailable: {0}")]
pub struct Unavailable(pub String);

/// What a [`SharedNonceStore`] call returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Unavailable>> + Send + 'a>>;

/// A nonce store shared by several processes. The same guarantees as [`NonceStore`], each
/// call atomic in the store itself (of two nodes recording one pair at once, one is `Fresh`).
/// It has no capacity of its own: the key rate limits bound what it holds.
pub trait SharedNonceStore: Send + Sync + std::fmt::Debug {
    /// See [`NonceStore::record`].
    fn record<'a>(
        &'a self,
        key: &'a str,
        nonce: &'a str,
        expires_at: i64,
        now: i64,
    ) -> StoreFuture<'a, Recorded>;
    /// See [`NonceStore::seen`].
    fn seen<'a>(&'a self, key: &'a str, nonce: &'a str, now: i64) -> StoreFuture<'a, bool>;
    /// See [`NonceStore::record_increasing`].
    fn record_increasing<'a>(&'a self, key: &'a str, value: u64) -> StoreFuture<'a, Recorded>;
    /// See [`NonceStore::last_increasing`].
    fn last_increasing<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<u64>>;
    /// Whether the store answers now (`/readyz`).
    fn ping(&self) -> StoreFuture<'_, ()>;
}

/// An in-process store seen through the shared interface (every future is ready at once).
#[derive(Debug)]
pub struct Immediate<S>(pub S);

impl<S: NonceStore> SharedNonceStore for Immediate<S> {
    fn record<'a>(
        &'a self,
        key: &'a str,
        nonce: &'a str,
        expires_at: i64,
        now: i64,
    ) -> StoreFuture<'a, Recorded> {
        Box::pin(std::future::ready(Ok(self
            .0
            .record(key, nonce, expires_at, now))))
    }

    fn seen<'a>(&'a self, key: &'a str, nonce: &'a str, now: i64) -> StoreFuture<'a, bool> {
        Box::pin(std::future::ready(Ok(self.0.seen(key, nonce, now))))
    }

    fn record_increasing<'a>(&'a self, key: &'a str, value: u64) -> StoreFuture<'a, Recorded> {
        Box::pin(std::future::ready(Ok(self.0.record_increasing(key, value))))
    }

    fn last_increasing<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<u64>> {
        Box::pin(std::future::ready(Ok(self.0.last_increasing(key))))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Contract tests every nonce store must pass, in-process ones through [`Immediate`] (a
/// fresh, empty store of capacity ≥ 100, or a fresh key prefix of a shared one).
pub async fn contract(store: &dyn SharedNonceStore) {
    let record = |key: &'static str, nonce: &'static str, expires_at: i64, now: i64| async move {
        store.record(key, nonce, expires_at, now).await.unwrap()
    };
    let seen = |key: &'static str, nonce: &'static str, now: i64| async move {
        store.seen(key, nonce, now).await.unwrap()
    };
    assert_eq!(record("k1", "n1", 130, 100).await, Recorded::Fresh);
    assert_eq!(record("k1", "n1", 130, 101).await, Recorded::Reused);
    assert_eq!(record("k1", "n1", 130, 130).await, Recorded::Reused);
    assert_eq!(
        record("k2", "n1", 130, 101).await,
        Recorded::Fresh,
        "nonces are per key"
    );
    assert_eq!(record("k1", "n2", 130, 101).await, Recorded::Fresh);
    // After its expiry a pair may be used again (a replay of it is stale by then).
    assert_eq!(record("k1", "n1", 161, 131).await, Recorded::Fresh);
    assert_eq!(record("k1", "n1", 161, 132).await, Recorded::Reused);
    // Keys and nonces that concatenate alike are still distinct.
    assert_eq!(record("a", "bc", 200, 140).await, Recorded::Fresh);
    assert_eq!(record("ab", "c", 200, 140).await, Recorded::Fresh);
    assert_eq!(record("a:b", "c", 200, 140).await, Recorded::Fresh);
    assert_eq!(record("a", "b:c", 200, 140).await, Recorded::Fresh);
    // Peeking records nothing.
    assert_eq!(record("k3", "p", 300, 140).await, Recorded::Fresh);
    assert!(seen("k3", "p", 141).await);
    assert!(!seen("k3", "never", 141).await);
    assert!(!seen("k3", "never", 141).await, "seen() does not record");
    assert_eq!(record("k3", "never", 300, 141).await, Recorded::Fresh);
    assert!(!seen("k3", "p", 301).await, "expired entries are not seen");
    let last = |key: &'static str| async move { store.last_increasing(key).await.unwrap() };
    let increasing =
        |key: &'static str, v: u64| async move { store.record_increasing(key, v).await.unwrap() };
    assert_eq!(last("k1").await, None);
    assert_eq!(increasing("k1", 5).await, Recorded::Fresh);
    assert_eq!(last("k1").await, Some(5));
    assert_eq!(increasing("k1", 5).await, Recorded::NotIncreasing);
    assert_eq!(increasing("k1", 4).await, Recorded::NotIncreasing);
    assert_eq!(increasing("k1", 6).await, Recorded::Fresh);
    assert_eq!(increasing("k2", 1).await, Recorded::Fresh);
    // Compared as numbers, not as text ("10" > "9"), up to u64::MAX.
    assert_eq!(increasing("k4", 9).await, Recorded::Fresh);
    assert_eq!(increasing("k4", 10).await, Recorded::Fresh);
    assert_eq!(increasing("k4", 9).await, Recorded::NotIncreasing);
    assert_eq!(increasing("k4", u64::MAX - 1).await, Recorded::Fresh);
    assert_eq!(increasing("k4", u64::MAX).await, Recorded::Fresh);
    assert_eq!(increasing("k4", u64::MAX).await, Recorded::NotIncreasing);
    assert_eq!(last("k4").await, Some(u64::MAX));
    store.ping().await.unwrap();
}
