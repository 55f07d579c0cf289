//! What becomes of an anomaly (`auth::anomaly` detects them): each [`AnomalyEvent`] is counted
//! (`tickgate_anomalies_total{kind}`), written to the audit log (`anomaly.<kind>`), logged
//! (WARN), and answered with its rule's action: `suspend` suspends the key through the
//! lifecycle service (actor `anomaly`; the index is updated, so its sessions close), `block_ip`
//! refuses the address for `block_secs`, stored in the keys database (`ip_blocks`, so a block
//! survives a restart and is seen by every node sharing the store) and cached here.
//!
//! The cache is refreshed from the store every few seconds ([`run_block_refresh`]), which is
//! how blocks made by another node arrive; a request checks it with one atomic load while no
//! address is blocked.
//!
//! With `webhook_endpoints` configured, each anomaly is also queued (bounded, never blocking
//! the request) for [`run_notifier`], which stores it in the alerts outbox as an operator
//! notice: the delivery worker sends it to those endpoints as a signed Standard Webhook
//! (`type` `anomaly.<kind>`), with the alerts' retries and delivery log.

use auth::KeyIndex;
use auth::anomaly::{Action, AnomalyDetector, AnomalyEvent, AnomalyKind, AnomalySettings};
use auth::{KeyService, Rejection};
use parking_lot::RwLock;
use protocol::ErrorCode;
use protocol::alerts::AnomalyNotice;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use store::audit::NewAuditEvent;
use store::security::IpBlock;
use tokio::sync::mpsc;

/// The detectors, the block cache and the counters of their outcomes.
#[derive(Debug)]
pub struct Anomalies {
    pub detector: AnomalyDetector,
    /// Anomalies by kind (index: position in [`AnomalyKind::ALL`]).
    counts: [AtomicU64; 6],
    /// Responses carried out: suspensions, IP blocks.
    suspended: AtomicU64,
    blocked: AtomicU64,
    /// Requests refused because their address is blocked.
    refused: AtomicU64,
    blocks: RwLock<HashMap<IpAddr, i64>>,
    any_block: AtomicBool,
    /// The operator notifier's queue, when `webhook_endpoints` are configured.
    notices: OnceLock<mpsc::Sender<AnomalyNotice>>,
    /// Notices queued, dropped (queue full), stored with deliveries, and failed to store.
    notice_counts: [AtomicU64; 4],
}

/// Capacity of the notifier's queue: a burst beyond it is dropped and counted (the metric,
/// audit entry and log line of each anomaly are not affected).
const NOTICE_QUEUE: usize = 1024;

impl Anomalies {
    pub fn new(settings: AnomalySettings) -> Self {
        Self {
            detector: AnomalyDetector::new(settings),
            counts: Default::default(),
            suspended: AtomicU64::new(0),
            blocked: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            blocks: RwLock::default(),
            any_block: AtomicBool::new(false),
            notices: OnceLock::new(),
            notice_counts: Default::default(),
        }
    }

    /// Starts queueing notices for the operator's endpoints; returns the queue's receiving
    /// end for [`run_notifier`] (`None` if already started).
    pub fn enable_notices(&self) -> Option<mpsc::Receiver<AnomalyNotice>> {
        let (tx, rx) = mpsc::channel(NOTICE_QUEUE);
        self.notices.set(tx).ok().map(|()| rx)
    }

    fn queue_notice(&self, notice: AnomalyNotice) {
        let Some(tx) = self.notices.get() else { return };
        let slot = match tx.try_send(notice) {
            Ok(()) => NOTICE_QUEUED,
            Err(_) => NOTICE_DROPPED,
        };
        self.notice_counts[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// `ip_blocked` if `addr` is blocked at `now` (µs).
    pub fn check_blocked(&self, addr: Option<IpAddr>, now: i64) -> Result<(), Rejection> {
        if !self.any_block.load(Ordering::Relaxed) {
            return Ok(());
        }
        let Some(ip) = addr else { return Ok(()) };
        let until = self.blocks.read().get(&ip).copied();
        match until {
            Some(until) if until > now => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                let secs = (until - now).div_euclid(1_000_000) + 1;
                let mut rejection = Rejection::new(
                    ErrorCode::IpBlocked,
                    format!("requests from {ip} are refused for {secs} s (anomaly response)"),
                );
                rejection.retry_after = Some(Duration::from_secs(secs as u64));
                Err(rejection)
            }
            _ => Ok(()),
        }
    }

    fn cache_block(&self, ip: IpAddr, until: i64) {
        let mut blocks = self.blocks.write();
        let slot = blocks.entry(ip).or_insert(until);
        *slot = (*slot).max(until);
        self.any_block.store(true, Ordering::Relaxed);
    }

    /// Replaces the cache with the blocks in force in the store.
    pub fn replace_blocks(&self, blocks: &[IpBlock]) {
        let map: HashMap<IpAddr, i64> = blocks
            .iter()
            .filter_map(|b| Some((b.ip.parse().ok()?, b.until)))
            .collect();
        self.any_block.store(!map.is_empty(), Ordering::Relaxed);
        *self.blocks.write() = map;
    }

    /// `(kind, count)` for every kind, evictions, responses and refusals: for `/metrics`.
    pub fn figures(&self) -> AnomalyFigures {
        AnomalyFigures {
            by_kind: AnomalyKind::ALL
                .iter()
                .zip(&self.counts)
                .map(|(k, c)| (k.as_str(), c.load(Ordering::Relaxed)))
                .collect(),
            evictions: self.detector.evictions(),
            suspended: self.suspended.load(Ordering::Relaxed),
            blocked: self.blocked.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            blocked_now: self.blocks.read().len() as u64,
            notices: self.notices.get().map(|_| {
                let c = |i: usize| self.notice_counts[i].load(Ordering::Relaxed);
                [
                    ("queued", c(NOTICE_QUEUED)),
                    ("dropped", c(NOTICE_DROPPED)),
                    ("stored", c(NOTICE_STORED)),
                    ("failed", c(NOTICE_FAILED)),
                ]
            }),
        }
    }
}

/// The counters `/metrics` renders (see `metrics::render_anomalies`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnomalyFigures {
    pub by_kind: Vec<(&'static str, u64)>,
    pub evictions: u64,
    pub suspended: u64,
    pub blocked: u64,
    pub refused: u64,
    pub blocked_now: u64,
    /// Operator notices by outcome, when `webhook_endpoints` are configured.
    pub notices: Option<[(&'static str, u64); 4]>,
}

const NOTICE_QUEUED: usize = 0;
const NOTICE_DROPPED: usize = 1;
const NOTICE_STORED: usize = 2;
const NOTICE_FAILED: usize = 3;

/// Acts on detected anomalies: counts, audits, logs and responds. Called from the request
/// path; store writes go to the blocking pool.
pub(crate) fn handle(
    anomalies: &Anomalies,
    events: Vec<AnomalyEvent>,
    service: &KeyService,
    index: &Arc<KeyIndex>,
    audit: &mpsc::Sender<NewAuditEvent>,
) {
    for event in events {
        let kind = event.kind.as_str();
        anomalies.counts[AnomalyKind::ALL
            .iter()
            .position(|k| *k == event.kind)
            .unwrap_or(0)]
        .fetch_add(1, Ordering::Relaxed);
        let ip = event.ip.map(|ip| ip.to_string());
        tracing::warn!(
            kind,
            key_id = event.key_id.as_deref().unwrap_or("none"),
            ip = ip.as_deref().unwrap_or("unknown"),
            action = ?event.action,
            detail = %event.detail,
            "anomaly detected"
        );
        let now = model::Timestamp::now().0;
        if anomalies.notices.get().is_some() {
            match ::alerts::firing::new_id() {
                Ok(id) => anomalies.queue_notice(AnomalyNotice {
                    id,
                    kind: kind.to_string(),
                    key_id: event.key_id.clone(),
                    ip: ip.clone(),
                    action: event.action.as_str().to_string(),
                    detail: event.detail.clone(),
                    detected_at: now,
                }),
                Err(error) => tracing::warn!(error = %error, "no notice id: OS random failed"),
            }
        }
        let mut detail = event.detail.clone();
        detail["ip"] = ip.clone().into();
        detail["action"] = event.action.as_str().into();
        let entry = NewAuditEvent {
            at: now,
            actor: "anomaly".into(),
            action: format!("anomaly.{kind}"),
            key_id: event.key_id.clone(),
            detail,
        };
        if audit.try_send(entry).is_err() {
            tracing::warn!(kind, "audit queue full: an anomaly was not recorded");
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            continue;
        };
        match (event.action, &event.key_id, event.ip) {
            (Action::Suspend, Some(key_id), _) => {
                let (service, index, key_id) = (service.clone(), index.clone(), key_id.clone());
                anomalies.suspended.fetch_add(1, Ordering::Relaxed);
                let reason = format!("anomaly: {kind}");
                runtime.spawn_blocking(move || {
                    match service.suspend(&key_id, &reason, "anomaly", model::Timestamp::now().0) {
                        Ok(record) => index.upsert(&record),
                        // Already suspended or no longer usable: nothing to do.
                        Err(auth::ServiceError::Conflict(_)) => {}
                        Err(error) => {
                            tracing::warn!(key_id, error = %error, "anomaly response: cannot suspend")
                        }
                    }
                });
            }
            (Action::BlockIp, _, Some(ip)) => {
                let now = model::Timestamp::now().0;
                let secs = anomalies.detector.settings().block_secs;
                let until = now + i64::try_from(secs).unwrap_or(i64::MAX / 2_000_000) * 1_000_000;
                anomalies.cache_block(ip, until);
                anomalies.blocked.fetch_add(1, Ordering::Relaxed);
                let block = IpBlock {
                    ip: ip.to_string(),
                    until,
                    reason: format!("anomaly: {kind}"),
                    created_at: now,
                };
                let audit_entry = NewAuditEvent {
                    at: now,
                    actor: "anomaly".into(),
                    action: "anomaly.ip_blocked".into(),
                    key_id: event.key_id.clone(),
                    detail: serde_json::json!({"ip": block.ip, "until": until, "kind": kind}),
                };
                let store = service.store().clone();
                runtime.spawn_blocking(move || {
                    if let Err(error) = store.ip_block(&block, &[audit_entry]) {
                        tracing::warn!(error = %error, "anomaly response: cannot store an IP block");
                    }
                });
            }
            _ => {}
        }
    }
}

/// Most notices stored in one outbox transaction.
const NOTICE_BATCH: usize = 100;

/// Stores queued anomaly notices in the alerts outbox, with a delivery to each of `endpoints`
/// (the delivery worker sends them), until `shutdown` or the queue closes. Notices that
/// arrive together are stored in one transaction. A store failure is logged and counted; the
/// batch is not retried (the anomaly is still in the audit log and the metrics).
pub async fn run_notifier(
    anomalies: Arc<Anomalies>,
    mut queue: mpsc::Receiver<AnomalyNotice>,
    alerts: ::alerts::AlertService,
    endpoints: Vec<String>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut batch = Vec::with_capacity(NOTICE_BATCH);
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => 0,
            n = queue.recv_many(&mut batch, NOTICE_BATCH) => n,
        };
        if received == 0 {
            break;
        }
        let notices = std::mem::take(&mut batch);
        let count = notices.len() as u64;
        match alerts.record_anomaly_notices(&endpoints, notices).await {
            Ok(outcome) => {
                anomalies.notice_counts[NOTICE_STORED]
                    .fetch_add(outcome.recorded, Ordering::Relaxed);
                if outcome.missing_endpoints > 0 {
                    tracing::warn!(
                        missing = outcome.missing_endpoints,
                        "anomaly notices: a configured webhook endpoint no longer exists"
                    );
                }
            }
            Err(error) => {
                anomalies.notice_counts[NOTICE_FAILED].fetch_add(count, Ordering::Relaxed);
                tracing::warn!(error = %error, count, "anomaly notices not stored");
            }
        }
    }
}

/// Reloads the blocks in force from the store every `every` (blocks by other nodes, ends of
/// blocks) until `shutdown`.
pub async fn run_block_refresh(
    service: KeyService,
    anomalies: Arc<Anomalies>,
    every: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let store = service.store().clone();
        let now = model::Timestamp::now().0;
        match tokio::task::spawn_blocking(move || store.ip_blocks(now)).await {
            Ok(Ok(blocks)) => anomalies.replace_blocks(&blocks),
            Ok(Err(error)) => tracing::warn!(error = %error, "cannot read IP blocks"),
            Err(error) => tracing::error!(error = %error, "IP block refresh panicked"),
        }
    }
}
