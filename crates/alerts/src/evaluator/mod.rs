//! The evaluator task: one per partition (a venue, where its data is ingested, or `cross`
//! for rules reading several venues or the consolidated `all` venue).
//!
//! It keeps its partition's active rules in an [`Engine`] (loaded from the store, then kept in
//! step by polling the store's rule change feed every `alerts.poll_interval_ms`, and at once
//! when this gateway changes a rule), reads the market from the hub channels those rules need
//! ([`feed`]), and for each batch of firings, in order:
//!
//! 1. writes them to the outbox, with a pending delivery per endpoint and the rules' counters,
//!    in one transaction (a firing is durable before it is sent anywhere);
//! 2. publishes each on its owner's private `alerts` channel (seq, resume, like any channel);
//! 3. wakes the delivery worker.
//!
//! If the write fails the firings wait in memory and are written again, a second later, before
//! any new ones (counted in `tickgate_alert_store_errors_total`); the market is read meanwhile. At most [`MAX_UNWRITTEN`] wait: while the
//! store stays down, the oldest beyond that are dropped, logged and counted in
//! `tickgate_alert_firings_dropped_total` (memory stays bounded; the newest crossings survive). Nothing here ever waits on ingest, and
//! ingest never waits on it: the evaluator reads the channels' broadcast rings like a client.

mod feed;

use crate::Store;
use crate::clock::Clock;
use crate::engine::{Engine, EngineStats, Output};
use crate::firing;
use crate::metrics::AlertMetrics;
use crate::rule::Rule;
use feed::Feed;
use futures_util::FutureExt;
use hub::Bus;
use protocol::alerts::AlertBody;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use store::alerts::{RuleRecord, RuleStatus};
use store::outbox::NewFiring;
use tokio::sync::Notify;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

/// Frames handled between two looks at the clock, the rule feed and the outbox.
const MAX_BATCH: usize = 1024;
/// Most firings kept in memory while the store refuses writes (see the module docs).
pub const MAX_UNWRITTEN: usize = 10_000;
/// After a failed write of firings, the next attempt waits this long.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Time-based rules (feed health, sliding volume) and expiries are checked this often.
pub const TICK: Duration = Duration::from_secs(1);

/// Shared by every evaluator of a gateway.
#[derive(Debug, Clone)]
pub struct Context {
    pub store: Arc<dyn Store>,
    pub hub: Arc<dyn Bus>,
    pub metrics: Arc<AlertMetrics>,
    /// Woken when this gateway changed a rule (evaluators then read the change feed at once).
    pub rules_changed: Arc<Notify>,
    /// Woken after firings are written (the delivery worker).
    pub deliveries: Arc<Notify>,
    pub clock: Clock,
    pub poll: Duration,
}

/// One partition's evaluator. See the module docs.
#[derive(Debug)]
pub struct Evaluator {
    partition: String,
    cx: Context,
    engine: Engine,
    feed: Feed,
    change_seq: u64,
    /// Channels the rules need that the hub does not serve yet.
    missing: usize,
    /// Firings not yet written (a failed write), oldest first; at most `max_unwritten`.
    unwritten: Vec<(NewFiring, AlertBody)>,
    max_unwritten: usize,
    /// After a failed write, the next is not tried before this (the market keeps being read).
    retry_at: Option<tokio::time::Instant>,
    /// Rules that expired and are not yet marked so in the store.
    expired: Vec<String>,
    reported: EngineStats,
}

async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    op: impl FnOnce(&dyn Store) -> Result<T, store::StoreError> + Send + 'static,
) -> Result<T, store::StoreError> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || op(&*store)).await {
        Ok(result) => result,
        Err(e) => Err(store::StoreError::Corrupt(format!(
            "store task failed: {e}"
        ))),
    }
}

impl Evaluator {
    pub fn new(partition: impl Into<String>, cx: Context) -> Self {
        Self {
            partition: partition.into(),
            feed: Feed::new(cx.hub.clone(), cx.metrics.clone()),
            cx,
            engine: Engine::new(),
            change_seq: 0,
            missing: 0,
            unwritten: Vec::new(),
            max_unwritten: MAX_UNWRITTEN,
            retry_at: None,
            expired: Vec::new(),
            reported: EngineStats::default(),
        }
    }

    /// Keeps at most `n` (at least 1) unwritten firings instead of [`MAX_UNWRITTEN`].
    pub fn with_max_unwritten(mut self, n: usize) -> Self {
        self.max_unwritten = n.max(1);
        self
    }

    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut poll = tokio::time::interval(self.cx.poll);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let rules_changed = self.cx.rules_changed.clone();
        let mut out = Vec::new();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    self.engine.on_tick(self.cx.clock.now(), &mut out);
                }
                () = rules_changed.notified() => self.read_changes(&mut out).await,
                _ = poll.tick() => self.read_changes(&mut out).await,
                Some((slot, item)) = self.feed.streams().next(), if !self.feed.is_empty() => {
                    let now = self.cx.clock.now();
                    self.feed.apply(slot, item, &mut self.engine, now, &mut out);
                    for _ in 1..MAX_BATCH {
                        match self.feed.streams().next().now_or_never() {
                            Some(Some((slot, item))) => {
                                self.feed.apply(slot, item, &mut self.engine, now, &mut out);
                            }
                            _ => break,
                        }
                    }
                }
            }
            self.settle(std::mem::take(&mut out)).await;
        }
    }

    /// Applies the rule changes written since the last read, and follows the channels the
    /// rules now need.
    async fn read_changes(&mut self, out: &mut Vec<Output>) {
        let (partition, since) = (self.partition.clone(), self.change_seq);
        let (newest, changed) = match blocking(&self.cx.store, move |s| {
            s.rule_changes_since(&partition, since)
        })
        .await
        {
            Ok(changes) => changes,
            Err(error) => {
                tracing::warn!(error = %error, partition = %self.partition, "cannot read rule changes");
                return;
            }
        };
        self.change_seq = newest;
        if changed.is_empty() && self.missing == 0 {
            return;
        }
        let now = self.cx.clock.now();
        for record in &changed {
            self.apply_record(record, now);
        }
        self.missing = self
            .feed
            .sync(&self.engine.channels(), &mut self.engine, now, out);
        self.cx
            .metrics
            .set_rules(&self.partition, self.engine.len());
    }

    fn apply_record(&mut self, record: &RuleRecord, now: i64) {
        if record.status != RuleStatus::Active {
            self.engine.remove(&record.id);
            return;
        }
        match Rule::from_record(record) {
            Ok(rule) => {
                let expired = rule.expires_at.is_some_and(|t| t <= now);
                if !self.engine.upsert(rule, now) && expired {
                    self.expired.push(record.id.clone());
                }
            }
            Err(error) => {
                tracing::error!(error = %error, rule = %record.id, "stored rule does not validate; skipped");
            }
        }
    }

    /// Writes, publishes and announces what the engine produced.
    async fn settle(&mut self, out: Vec<Output>) {
        for output in out {
            match output {
                Output::Fired(fired) => {
                    let Ok(id) = firing::new_id() else {
                        tracing::error!("the OS random number generator failed; firing lost");
                        continue;
                    };
                    let body = firing::body(id, &fired);
                    let record = firing::record(&body, &fired.rule.owner, &fired.rule.endpoints);
                    tracing::debug!(rule = %fired.rule.id, firing = %body.id, value = %body.value, "alert fired");
                    self.unwritten.push((record, body));
                }
                Output::Expired(rule) => {
                    tracing::info!(rule = %rule.id, "alert rule expired");
                    self.expired.push(rule.id.clone());
                }
            }
        }
        self.report();
        if !self.expired.is_empty() {
            let (ids, now) = (std::mem::take(&mut self.expired), self.cx.clock.now());
            let result = blocking(&self.cx.store, move |s| {
                for id in &ids {
                    s.set_rule_status(id, RuleStatus::Expired, now)?;
                }
                Ok(())
            })
            .await;
            if let Err(error) = result {
                tracing::warn!(error = %error, "cannot mark expired rules; they stay expired in memory");
            }
        }
        if self.unwritten.is_empty() {
            return;
        }
        if self.unwritten.len() > self.max_unwritten {
            let excess = self.unwritten.len() - self.max_unwritten;
            let dropped: Vec<_> = self.unwritten.drain(..excess).collect();
            self.cx
                .metrics
                .count(&self.cx.metrics.firings_dropped, excess as u64);
            tracing::error!(
                dropped = excess,
                oldest_rule = %dropped[0].0.rule_id,
                "the store has refused firings for too long; dropped the oldest"
            );
        }
        // A failed write (a busy or broken store) is retried once RETRY_AFTER has passed, not on
        // every frame: each attempt may block for the store's busy timeout.
        if self
            .retry_at
            .is_some_and(|at| tokio::time::Instant::now() < at)
        {
            return;
        }
        let records: Vec<NewFiring> = self.unwritten.iter().map(|(r, _)| r.clone()).collect();
        match blocking(&self.cx.store, move |s| s.record_firings(&records)).await {
            Ok(()) => {
                self.retry_at = None;
                let n = self.unwritten.len() as u64;
                for (record, body) in std::mem::take(&mut self.unwritten) {
                    self.cx
                        .hub
                        .private_publisher(&record.owner)
                        .publish(firing::update(body));
                }
                self.cx.metrics.firings.fetch_add(n, Ordering::Relaxed);
                self.cx.deliveries.notify_one();
            }
            Err(error) => {
                self.retry_at = Some(tokio::time::Instant::now() + RETRY_AFTER);
                self.cx.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %error, waiting = self.unwritten.len(), "cannot write firings; retrying");
            }
        }
    }

    fn report(&mut self) {
        let now = self.engine.stats();
        let m = &self.cx.metrics;
        m.evaluations.fetch_add(
            now.evaluations - self.reported.evaluations,
            Ordering::Relaxed,
        );
        m.suppressed
            .fetch_add(now.suppressed - self.reported.suppressed, Ordering::Relaxed);
        m.expired
            .fetch_add(now.expired - self.reported.expired, Ordering::Relaxed);
        self.reported = now;
        if now.expired > 0 {
            m.set_rules(&self.partition, self.engine.len());
        }
    }
}
