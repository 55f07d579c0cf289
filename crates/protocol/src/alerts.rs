//! Alerts on the wire: rule and webhook-endpoint bodies of `/v1/alerts` and `/v1/webhooks`,
//! and the alert an `alerts` channel update or a webhook delivery carries.
//!
//! Thresholds travel as decimal strings (`"70000.50"`, never JSON numbers, which would lose
//! digits) and are parsed exactly by the gateway. A condition names the channel(s) whose data
//! it reads with the usual `{kind}:{venue}:{symbol}` names.

use model::Decimal;
use serde::{Deserialize, Serialize};

/// Which side of the threshold fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Fires when the value reaches the threshold from below (`>=`).
    Above,
    /// Fires when the value reaches the threshold from above (`<=`).
    Below,
}

/// Which price a `price` rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PriceField {
    /// Each trade's price (`trades:` channels).
    Last,
    /// (best bid + best ask) / 2 (`book:` channels).
    Mid,
    Bid,
    Ask,
}

/// Which way a `change` rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Movement {
    Up,
    Down,
}

/// The unit of a `spread` threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SpreadUnit {
    /// Quote currency: best ask − best bid.
    Abs,
    /// Basis points of the mid price.
    Bps,
}

/// What a rule watches (`kind` selects the variant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConditionBody {
    /// A price crosses `level`: `trades:` channels watch each trade (`price` = `last`), `book:`
    /// channels (including `book:all:…`) the `mid` (default), `bid` or `ask`.
    Price {
        channel: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        price: Option<PriceField>,
        direction: Direction,
        level: String,
    },
    /// The last trade price moved by `percent` or more since `window_secs` ago (`trades:`).
    Change {
        channel: String,
        window_secs: u64,
        direction: Movement,
        percent: String,
    },
    /// The volume traded in the last `window_secs` is at least `multiple` × its average over
    /// the `trailing_windows` windows before it (default 12) (`trades:`).
    VolumeSpike {
        channel: String,
        window_secs: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trailing_windows: Option<u32>,
        multiple: String,
    },
    /// Best ask − best bid is at least `above` (`abs`) or that many bps of the mid (`book:`).
    Spread {
        channel: String,
        unit: SpreadUnit,
        above: String,
    },
    /// The size of the top `depth` bid levels divided by that of the top `depth` ask levels
    /// is at least (`above`) or at most (`below`) `ratio` (`book:`).
    Imbalance {
        channel: String,
        depth: u32,
        direction: Direction,
        ratio: String,
    },
    /// Two venues' prices of one instrument are `bps` or more apart: both `book:` (mid) or
    /// both `trades:` (last trade) channels, of different venues.
    Divergence { channels: Vec<String>, bps: String },
    /// A venue (`status:{venue}`: not connected) or a book (`book:…`: rebuilding, or no
    /// update) has been unhealthy for `secs` seconds or more.
    Feed { channel: String, secs: u64 },
}

/// `POST /v1/alerts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewRuleBody {
    pub name: String,
    pub condition: ConditionBody,
    /// The value must come back past the threshold by this much (in the threshold's unit)
    /// before the rule can fire again (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hysteresis: Option<String>,
    /// Minimum seconds between two firings (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_secs: Option<u64>,
    /// The rule stops after this long: `7d`, `12h`, `30m`, `45s` or seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
    /// The rule completes after firing this many times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_firings: Option<u64>,
    /// Webhook endpoints (ids) each firing is delivered to, besides the `alerts` channel.
    #[serde(default)]
    pub endpoints: Vec<String>,
}

/// `PATCH /v1/alerts/{id}`: every field optional; the condition cannot change (create a new
/// rule instead).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RulePatchBody {
    #[serde(default)]
    pub name: Option<String>,
    /// `false` pauses the rule, `true` resumes it.
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub hysteresis: Option<String>,
    #[serde(default)]
    pub cooldown_secs: Option<u64>,
    /// From now; `0` removes the expiry.
    #[serde(default)]
    pub expires_in: Option<String>,
    /// `0` removes the limit.
    #[serde(default)]
    pub max_firings: Option<u64>,
    #[serde(default)]
    pub endpoints: Option<Vec<String>>,
}

/// A rule as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleBody {
    pub id: String,
    pub name: String,
    pub condition: ConditionBody,
    pub hysteresis: Decimal,
    pub cooldown_secs: u64,
    /// µs since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_firings: Option<u64>,
    pub endpoints: Vec<String>,
    /// `active`, `paused`, `expired` or `completed`.
    pub status: String,
    pub firings: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fired_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One firing of a rule: the body of an `alerts` channel update (`alert`) and the `data` of a
/// webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertBody {
    /// The firing's id: the `webhook-id` of its deliveries (the same on every retry and
    /// redelivery).
    pub id: String,
    pub rule_id: String,
    pub rule_name: String,
    pub condition: ConditionBody,
    /// The value that reached the threshold (a price, percent, multiple, spread, ratio, bps
    /// or seconds, by kind).
    pub value: Decimal,
    pub threshold: Decimal,
    /// When the gateway fired, µs since the epoch.
    pub fired_at: i64,
    /// Exchange time of the event that made it fire, µs (the firing time for feed rules).
    pub ts: i64,
    /// 1 for the rule's first firing, then 2, 3, ...
    pub firing: u64,
}

/// The JSON body of a webhook delivery (the Standard Webhooks payload shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookPayload {
    /// Always `alert.fired`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The firing time, RFC 3339 with microseconds.
    pub timestamp: String,
    pub data: AlertBody,
}

/// An anomaly the security layer detected (docs/security.md §Anomaly detection): the `data`
/// of the webhook delivered to the operator's endpoints (`[auth.anomaly] webhook_endpoints`).
/// Never carries a credential: key ids, addresses, counts and thresholds only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnomalyNotice {
    /// The notice's id: the `webhook-id` of its deliveries.
    pub id: String,
    /// `auth_failures`, `replay_burst`, `rate_limit_saturation`, `usage_spike`,
    /// `new_network` or `used_after_rotation`.
    pub kind: String,
    /// The key it is about (absent for failures that prove no key, counted per address).
    pub key_id: Option<String>,
    /// The client address, as the gateway saw it (after trusted proxies).
    pub ip: Option<String>,
    /// The automatic response carried out: `none`, `suspend` or `block_ip`.
    pub action: String,
    /// The detector's figures: counts, window, threshold, baseline.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub detail: serde_json::Value,
    /// When it was detected, µs since the epoch.
    pub detected_at: i64,
}

/// The webhook body of an anomaly (Standard Webhooks shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnomalyWebhookPayload {
    /// `anomaly.<kind>`, e.g. `anomaly.auth_failures`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The detection time, RFC 3339 with microseconds.
    pub timestamp: String,
    pub data: AnomalyNotice,
}

/// `POST /v1/webhooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewEndpointBody {
    /// `https://…` (or `http://…`); its host must resolve to public addresses unless the
    /// operator allow-lists them (`[alerts.delivery] allow_addresses`).
    pub url: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Concurrent deliveries to this endpoint (default `[alerts.delivery] max_in_flight`).
    #[serde(default)]
    pub max_in_flight: Option<u32>,
    /// Seconds to wait for an answer (default `[alerts.delivery] timeout_secs`).
    #[serde(default)]
    pub timeout_secs: Option<u32>,
    /// `v1` (HMAC-SHA256 with a `whsec_` secret, default) or `v1a` (Ed25519: the gateway
    /// signs, receivers verify with the `whpk_` public key).
    #[serde(default)]
    pub signature: Option<String>,
}

/// `PATCH /v1/webhooks/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EndpointPatchBody {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub max_in_flight: Option<u32>,
    #[serde(default)]
    pub timeout_secs: Option<u32>,
}

/// `POST /v1/webhooks/{id}/rotate-secret`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateSecretBody {
    /// How long deliveries stay signed with the old secret too (default `24h`; `0`: not at
    /// all).
    #[serde(default)]
    pub overlap: Option<String>,
}

/// Delivery statistics of an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointStatsBody {
    pub attempts: u64,
    pub delivered: u64,
    pub failures: u64,
    pub dead: u64,
    pub consecutive_failures: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_latency_us: Option<i64>,
}

/// A webhook endpoint as the API shows it (never its secret, except `secret` in the one
/// response that creates or rotates it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointBody {
    pub id: String,
    pub url: String,
    pub description: String,
    pub enabled: bool,
    /// `v1` or `v1a`.
    pub signature: String,
    /// For `v1a`: the `whpk_` public key receivers verify with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    pub max_in_flight: u32,
    pub timeout_secs: u32,
    /// While a rotation overlaps: until when the previous secret also signs (µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub stats: EndpointStatsBody,
    /// Only in the response that creates the endpoint or rotates its secret: the `whsec_`
    /// (or `whsk_`) secret, shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// One delivery as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryBody {
    pub id: String,
    /// The firing, and the `webhook-id` header.
    pub firing_id: String,
    pub endpoint_id: String,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_latency_us: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<i64>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptBody {
    /// 1, 2, ... (numbering starts over after a redelivery).
    pub attempt: u32,
    pub started_at: i64,
    pub finished_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it failed: `http_status: …`, `timeout: …`, `connect: …`, `address_refused: …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub latency_us: i64,
    /// After a failure: when the next attempt was scheduled (absent: none, the delivery is
    /// dead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<i64>,
}

/// `GET /v1/alerts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleList {
    pub rules: Vec<RuleBody>,
}

/// `GET /v1/alerts/firings`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FiringList {
    pub firings: Vec<AlertBody>,
}

/// `GET /v1/webhooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EndpointList {
    pub endpoints: Vec<EndpointBody>,
}

/// `GET /v1/webhooks/{id}/deliveries`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryBody>,
}

/// `GET /v1/webhooks/{id}/deliveries/{delivery}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryDetail {
    pub delivery: DeliveryBody,
    pub attempts: Vec<AttemptBody>,
}

/// `POST …/redeliver`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Redelivered {
    /// Deliveries made pending again.
    pub redelivered: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_tagged_by_kind_and_strict() {
        let body: NewRuleBody = serde_json::from_str(
            r#"{"name":"btc","condition":{"kind":"price","channel":"book:sim:BTC-USDT",
                "direction":"above","level":"70000.50"},"cooldown_secs":60}"#,
        )
        .unwrap();
        assert_eq!(
            body.condition,
            ConditionBody::Price {
                channel: "book:sim:BTC-USDT".into(),
                price: None,
                direction: Direction::Above,
                level: "70000.50".into(),
            }
        );
        for bad in [
            r#"{"name":"x","condition":{"kind":"moon","channel":"book:sim:BTC-USDT"}}"#,
            r#"{"name":"x","condition":{"kind":"spread","channel":"book:sim:BTC-USDT","unit":"abs","above":"1","extra":1}}"#,
            r#"{"name":"x","condition":{"kind":"spread","channel":"book:sim:BTC-USDT","unit":"pct","above":"1"}}"#,
            r#"{"name":"x","condition":{"kind":"feed","channel":"status:sim","secs":5},"colour":"red"}"#,
        ] {
            assert!(serde_json::from_str::<NewRuleBody>(bad).is_err(), "{bad}");
        }
    }
}
