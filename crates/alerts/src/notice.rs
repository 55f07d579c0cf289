//! Operator notices: events that are not a rule's firing (today: the anomalies the security
//! layer detects) delivered through the same durable outbox and webhook worker as alerts, to
//! endpoints the operator names in config (`[auth.anomaly] webhook_endpoints`).
//!
//! A notice is stored as a firing of the pseudo-rule [`ANOMALY_RULE_ID`] with one pending
//! delivery per named endpoint, so it gets everything an alert delivery gets: signatures with
//! the endpoint's live secrets, retries with backoff, the endpoint's concurrency cap, the
//! delivery log (`GET /v1/webhooks/{id}/deliveries`) and redelivery. It never appears in a
//! principal's alert firings (`GET /v1/alerts/firings` lists rule firings only). Because the
//! outbox is in the store, a notice recorded by one gateway process is delivered once, by
//! whichever worker claims it.

use crate::AlertService;
use crate::error::AlertError;
use crate::service::blocking;
use model::Timestamp;
use protocol::alerts::{AnomalyNotice, AnomalyWebhookPayload};
use std::collections::BTreeMap;
use store::outbox::NewFiring;

/// The `rule_id` anomaly notices are stored under (never an `alr_…` id).
pub const ANOMALY_RULE_ID: &str = "anomaly";

/// What a batch of notices became.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoticeOutcome {
    /// Notices stored with at least one delivery.
    pub recorded: u64,
    /// Deliveries created.
    pub deliveries: u64,
    /// Named endpoints that no longer exist (their deliveries were skipped).
    pub missing_endpoints: u64,
}

/// The webhook body of a notice, serialized once (sent byte for byte on every attempt).
pub fn anomaly_payload(notice: &AnomalyNotice) -> String {
    let payload = AnomalyWebhookPayload {
        kind: format!("anomaly.{}", notice.kind),
        timestamp: Timestamp(notice.detected_at).format_rfc3339(),
        data: notice.clone(),
    };
    // Plain types and a JSON value: serializing cannot fail.
    serde_json::to_string(&payload).unwrap_or_default()
}

impl AlertService {
    /// The position of the first id that names no endpoint, if any (checked at start, so a
    /// typo in the config is refused instead of silently delivering nothing).
    pub async fn missing_notice_endpoint(
        &self,
        ids: &[String],
    ) -> Result<Option<usize>, AlertError> {
        let ids = ids.to_vec();
        blocking(self.store(), move |s| {
            for (i, id) in ids.iter().enumerate() {
                if s.get_endpoint(id)?.is_none() {
                    return Ok(Some(i));
                }
            }
            Ok(None)
        })
        .await
    }

    /// Stores `notices`, each with a pending delivery to every endpoint in `endpoints` that
    /// still exists, in one transaction, and wakes the delivery worker. A notice's firing
    /// belongs to the endpoint's owner (one firing per owner when endpoints of several
    /// principals are named), so the owner sees the deliveries in its delivery log.
    pub async fn record_anomaly_notices(
        &self,
        endpoints: &[String],
        notices: Vec<AnomalyNotice>,
    ) -> Result<NoticeOutcome, AlertError> {
        if notices.is_empty() || endpoints.is_empty() {
            return Ok(NoticeOutcome::default());
        }
        let endpoints = endpoints.to_vec();
        let outcome = blocking(self.store(), move |s| {
            let mut outcome = NoticeOutcome::default();
            // Read each time: an endpoint deleted since the start gets no new deliveries.
            let mut by_owner: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for id in &endpoints {
                match s.get_endpoint(id)? {
                    Some(e) => by_owner.entry(e.owner).or_default().push(e.id),
                    None => outcome.missing_endpoints += 1,
                }
            }
            let mut firings = Vec::new();
            for notice in &notices {
                let payload = anomaly_payload(notice);
                for (n, (owner, ids)) in by_owner.iter().enumerate() {
                    // Firing ids are primary keys: a second owner gets a derived id.
                    let id = if n == 0 {
                        notice.id.clone()
                    } else {
                        format!("{}_{n}", notice.id)
                    };
                    outcome.deliveries += ids.len() as u64;
                    firings.push(NewFiring {
                        id,
                        rule_id: ANOMALY_RULE_ID.to_string(),
                        owner: owner.clone(),
                        fired_at: notice.detected_at,
                        payload: payload.clone(),
                        endpoints: ids.clone(),
                    });
                }
                if !by_owner.is_empty() {
                    outcome.recorded += 1;
                }
            }
            s.record_firings(&firings)?;
            Ok(outcome)
        })
        .await?;
        if outcome.deliveries > 0 {
            self.wake_deliveries();
        }
        Ok(outcome)
    }
}
