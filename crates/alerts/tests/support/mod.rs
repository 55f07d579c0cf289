//! Store fixtures for the alert tests (the receiver is `alerts::testing`).

#![allow(dead_code)]

#[allow(unused_imports)]
pub use alerts::testing::{Receiver, closed_port};
use alerts::webhook::signature::{Scheme, WebhookSecret};
use auth::{KeyRing, MasterKey};
use std::sync::Arc;
use store::alerts::{AlertStore, EndpointRecord, RuleRecord, RuleStatus};
use store::alerts_sqlite::SqliteAlertStore;
use store::outbox::NewFiring;

pub const T0: i64 = 1_700_000_000_000_000;

pub fn ring() -> KeyRing {
    KeyRing::new(Some(MasterKey::random().unwrap()), vec![])
}

/// An endpoint sealed under `ring`, and its secret.
pub fn endpoint(
    ring: &KeyRing,
    id: &str,
    url: &str,
    max_in_flight: Option<u32>,
) -> (EndpointRecord, WebhookSecret) {
    let (secret, text) = WebhookSecret::generate(Scheme::V1).unwrap();
    let record = EndpointRecord {
        id: id.into(),
        owner: "acme".into(),
        url: url.into(),
        description: String::new(),
        enabled: true,
        scheme: "v1".into(),
        public_key: None,
        secret: ring.seal(id, text.as_bytes()).unwrap(),
        previous_secret: None,
        previous_until: None,
        max_in_flight,
        timeout_ms: Some(2000),
        created_at: T0,
        updated_at: T0,
        rev: 0,
        stats: Default::default(),
    };
    (record, secret)
}

pub fn rule(id: &str, endpoints: &[&str]) -> RuleRecord {
    RuleRecord {
        id: id.into(),
        owner: "acme".into(),
        name: id.into(),
        partition: "sim".into(),
        spec: serde_json::json!({}),
        endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
        status: RuleStatus::Active,
        expires_at: None,
        max_firings: None,
        firings: 0,
        last_fired_at: None,
        created_at: T0,
        updated_at: T0,
        rev: 0,
    }
}

pub fn firing(id: &str, rule: &str, at: i64, endpoints: &[&str]) -> NewFiring {
    NewFiring {
        id: id.into(),
        rule_id: rule.into(),
        owner: "acme".into(),
        fired_at: at,
        payload: format!("{{\"type\":\"alert.fired\",\"data\":{{\"id\":\"{id}\"}}}}"),
        endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
    }
}

pub fn store() -> Arc<SqliteAlertStore> {
    Arc::new(SqliteAlertStore::open_in_memory().unwrap())
}

/// Inserts what `store` needs for deliveries to `endpoint`.
pub fn seed(store: &SqliteAlertStore, endpoint: &EndpointRecord) {
    store.insert_endpoint(endpoint).unwrap();
    store.insert_rule(&rule("alr_1", &[&endpoint.id])).unwrap();
}
