//! The background task that keeps the key index exact and the usage tables current.
//!
//! Every `poll` interval it (1) reads the store's change feed and applies it to the index, so
//! changes made by another process (the CLI on the same data directory) reach live sessions
//! within one interval, and (2) marks keys whose expiry or grace end has passed as `expired`
//! (with an audit entry), which closes their WebSocket sessions. Every `flush` interval it
//! writes the usage counted in memory as one batch, and an audit entry for each key whose
//! authentication failures in that interval reached the burst threshold. Store calls run on
//! the blocking pool; the request path never waits for them.

use crate::index::KeyIndex;
use crate::service::KeyService;
use std::sync::Arc;
use std::time::Duration;
use store::StoreError;
use tokio_util::sync::CancellationToken;

/// Loads every key into the index; returns the store's change number to poll from.
pub fn load(service: &KeyService, index: &KeyIndex) -> Result<u64, StoreError> {
    let (seq, records) = service.store().changes_since(0)?;
    for record in &records {
        index.upsert(record);
    }
    Ok(seq)
}

/// Intervals of the maintenance task.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    pub poll: Duration,
    pub flush: Duration,
}

/// One poll: change feed, then due expiries. Returns the new change number.
pub fn poll_once(
    service: &KeyService,
    index: &KeyIndex,
    since: u64,
    now: i64,
) -> Result<u64, StoreError> {
    let (seq, records) = service.store().changes_since(since)?;
    for record in &records {
        index.upsert(record);
    }
    for id in index.due_expiries(now) {
        match service.expire_if_due(&id, now) {
            Ok(Some(record)) => index.upsert(&record),
            Ok(None) => {}
            // Another writer changed it first; the next poll brings its version.
            Err(crate::ServiceError::Conflict(_)) => {}
            Err(error) => tracing::warn!(key_id = %id, error = %error, "cannot mark a key expired"),
        }
    }
    Ok(seq)
}

/// Writes the usage counted since the last flush, and failure-burst audit entries.
pub fn flush_once(service: &KeyService, index: &KeyIndex, now: i64) -> Result<(), StoreError> {
    let (deltas, bursts, addresses) = index.drain_usage_and_addresses(now);
    if !deltas.is_empty() {
        service.store().add_usage(&deltas)?;
    }
    if !addresses.is_empty() {
        service.store().add_addresses(&addresses)?;
    }
    if !bursts.is_empty() {
        service.audit().append(&bursts)?;
    }
    Ok(())
}

/// Runs until `shutdown`, then flushes usage one last time.
pub async fn run(
    service: KeyService,
    index: Arc<KeyIndex>,
    since: u64,
    intervals: Intervals,
    shutdown: CancellationToken,
) {
    let never = Arc::new(tokio::sync::Notify::new());
    run_with_wake(service, index, since, intervals, never, shutdown).await;
}

/// [`run`], polling at once whenever `wake` is notified (a shared store announcing a key
/// change, e.g. PostgreSQL `NOTIFY`), besides every `poll` interval: the interval stays the
/// fallback when the announcement path is down.
pub async fn run_with_wake(
    service: KeyService,
    index: Arc<KeyIndex>,
    mut since: u64,
    intervals: Intervals,
    wake: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    let mut poll = tokio::time::interval(intervals.poll);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flush = tokio::time::interval(intervals.flush);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    flush.tick().await;
    loop {
        let flushing = tokio::select! {
            () = shutdown.cancelled() => break,
            _ = poll.tick() => false,
            () = wake.notified() => false,
            _ = flush.tick() => true,
        };
        let (s, i) = (service.clone(), index.clone());
        let now = model::Timestamp::now().0;
        let result = tokio::task::spawn_blocking(move || {
            if flushing {
                flush_once(&s, &i, now).map(|()| since)
            } else {
                poll_once(&s, &i, since, now)
            }
        })
        .await;
        match result {
            Ok(Ok(seq)) => since = seq,
            Ok(Err(error)) => tracing::warn!(error = %error, "key maintenance failed; retrying"),
            Err(error) => tracing::error!(error = %error, "key maintenance task panicked"),
        }
    }
    let now = model::Timestamp::now().0;
    let result = tokio::task::spawn_blocking(move || flush_once(&service, &index, now)).await;
    if let Ok(Err(error)) = result {
        tracing::warn!(error = %error, "final usage flush failed");
    }
}
