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

use auth::KeyIndex;
use auth::anomaly::{Action, AnomalyDetector, AnomalyEvent, AnomalyKind, AnomalySettings};
use auth::{KeyService, Rejection};
use parking_lot::RwLock;
use protocol::ErrorCode;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
}

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
        }
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
}

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
        let mut detail = event.detail.clone();
        detail["ip"] = ip.clone().into();
        detail["action"] = serde_json::to_value(event.action).unwrap_or_default();
        let entry = NewAuditEvent {
            at: model::Timestamp::now().0,
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
