//! What a firing becomes: the alert body (the `alerts` channel update and the webhook's
//! `data`), the exact webhook payload, and the outbox record.

use crate::engine::Fired;
use model::Timestamp;
use protocol::DataMessage;
use protocol::alerts::{AlertBody, WebhookPayload};
use store::outbox::NewFiring;

/// The webhook `type` of a firing.
pub const EVENT_TYPE: &str = "alert.fired";

/// A new firing id (`msg_` + 24 base62 characters, about 143 random bits): the
/// `webhook-id` of its deliveries.
pub fn new_id() -> Result<String, getrandom::Error> {
    Ok(format!("msg_{}", auth::token::random_base62(24)?))
}

/// The alert body of a firing.
pub fn body(id: String, fired: &Fired) -> AlertBody {
    let rule = &fired.rule;
    // Derived values (percentages, ratios, bps) can have 28 digits; 12 decimals are plenty.
    let value = fired.value.round_dp(12).normalize();
    AlertBody {
        id,
        rule_id: rule.id.clone(),
        rule_name: rule.name.clone(),
        condition: rule.condition.clone(),
        value,
        threshold: rule.trigger.threshold.normalize(),
        fired_at: fired.fired_at,
        ts: fired.ts,
        firing: fired.firing,
    }
}

/// The outbox record: the payload is serialized once here and sent byte for byte on every
/// attempt.
pub fn record(body: &AlertBody, owner: &str, endpoints: &[String]) -> NewFiring {
    let payload = WebhookPayload {
        kind: EVENT_TYPE.to_string(),
        timestamp: Timestamp(body.fired_at).format_rfc3339(),
        data: body.clone(),
    };
    NewFiring {
        id: body.id.clone(),
        rule_id: body.rule_id.clone(),
        owner: owner.to_string(),
        fired_at: body.fired_at,
        // Serializing these plain types cannot fail.
        payload: serde_json::to_string(&payload).unwrap_or_default(),
        endpoints: endpoints.to_vec(),
    }
}

/// The `alerts` channel update of a firing.
pub fn update(body: AlertBody) -> DataMessage {
    DataMessage {
        ts: body.ts,
        recv_ts: body.fired_at,
        alert: Some(Box::new(body)),
        ..Default::default()
    }
}
