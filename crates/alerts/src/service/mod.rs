//! Managing rules, endpoints and deliveries for a principal: what the REST routes call.
//!
//! Every operation is scoped to an owner (the authenticated key's principal): another
//! principal's rule, endpoint or delivery answers exactly like one that does not exist.
//! Writes go to the store first; then the evaluators are told (they also poll the store's
//! change feed, so a change made by another gateway process is seen too).
//!
//! Rules and firings are here; webhook endpoints and deliveries are in `endpoints`.

use crate::Store;
use crate::clock::Clock;
use crate::config::AlertsConfig;
use crate::error::AlertError;
use crate::rule::{self, Spec, is_id, validate_condition};
use crate::webhook::address::AddressPolicy;
use auth::KeyRing;
use model::Channel;
use protocol::alerts::{
    AlertBody, DeliveryBody, NewRuleBody, RuleBody, RulePatchBody, WebhookPayload,
};
use std::sync::Arc;
use store::alerts::{RuleFilter, RuleRecord, RuleStatus};
use store::outbox::{DeliveryRecord, DeliveryState};
use tokio::sync::Notify;

mod endpoints;

/// Default overlap of a secret rotation.
pub const DEFAULT_OVERLAP_SECS: u64 = 86_400;
/// Most items a list returns.
pub const MAX_LIST: usize = 1000;
const MICROS: i64 = 1_000_000;

/// Whether the gateway serves a channel (rules may only watch served ones).
pub type Served<'a> = &'a (dyn Fn(&Channel) -> bool + Sync);

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    ring: KeyRing,
    config: AlertsConfig,
    policy: AddressPolicy,
    rules_changed: Arc<Notify>,
    deliveries: Arc<Notify>,
    clock: Clock,
}

/// The alert operations. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AlertService {
    inner: Arc<Inner>,
}

pub(crate) async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    op: impl FnOnce(&dyn Store) -> Result<T, AlertError> + Send + 'static,
) -> Result<T, AlertError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || op(&*store))
        .await
        .map_err(|e| {
            AlertError::Store(store::StoreError::Corrupt(format!(
                "store task failed: {e}"
            )))
        })?
}

fn random_id(prefix: &str) -> Result<String, AlertError> {
    auth::token::random_base62(16)
        .map(|r| format!("{prefix}_{r}"))
        .map_err(|e| AlertError::BadRequest(format!("the OS random number generator failed: {e}")))
}

fn expiry(text: &str, now: i64) -> Result<Option<i64>, AlertError> {
    let secs = auth::input::duration_secs(text, true)
        .map_err(|e| AlertError::InvalidRule(format!("expires_in: {e}")))?;
    Ok((secs > 0).then(|| now + secs as i64 * MICROS))
}

fn rule_body(r: &RuleRecord) -> Result<RuleBody, AlertError> {
    let spec: Spec = serde_json::from_value(r.spec.clone()).map_err(|e| {
        AlertError::Store(store::StoreError::Corrupt(format!("rule {}: {e}", r.id)))
    })?;
    Ok(RuleBody {
        id: r.id.clone(),
        name: r.name.clone(),
        condition: spec.condition,
        hysteresis: spec.hysteresis,
        cooldown_secs: spec.cooldown_secs,
        expires_at: r.expires_at,
        max_firings: r.max_firings,
        endpoints: r.endpoints.clone(),
        status: r.status.as_str().to_string(),
        firings: r.firings,
        last_fired_at: r.last_fired_at,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

pub fn delivery_body(d: &DeliveryRecord) -> DeliveryBody {
    DeliveryBody {
        id: d.id.clone(),
        firing_id: d.firing_id.clone(),
        endpoint_id: d.endpoint_id.clone(),
        state: d.state.as_str().to_string(),
        attempts: d.attempts,
        next_attempt_at: (d.state == DeliveryState::Pending).then_some(d.next_attempt_at),
        created_at: d.created_at,
        updated_at: d.updated_at,
        last_status: d.last_status,
        last_error: d.last_error.clone(),
        last_latency_us: d.last_latency_us,
        delivered_at: d.delivered_at,
    }
}

impl AlertService {
    pub fn new(
        store: Arc<dyn Store>,
        ring: KeyRing,
        config: AlertsConfig,
        rules_changed: Arc<Notify>,
        deliveries: Arc<Notify>,
        clock: Clock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                policy: config.delivery.policy(),
                store,
                ring,
                config,
                rules_changed,
                deliveries,
                clock,
            }),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    fn changed(&self) {
        self.inner.rules_changed.notify_waiters();
    }

    /// Tells the delivery worker that deliveries are due.
    pub(crate) fn wake_deliveries(&self) {
        self.inner.deliveries.notify_one();
    }

    /// The caller's rule `id` (not deleted).
    async fn own_rule(&self, owner: &str, id: &str) -> Result<RuleRecord, AlertError> {
        if !is_id(id, "alr") {
            return Err(AlertError::UnknownRule(id.chars().take(64).collect()));
        }
        let (owner, id) = (owner.to_string(), id.to_string());
        blocking(&self.inner.store, move |s| match s.get_rule(&id)? {
            Some(r) if r.owner == owner && r.status != RuleStatus::Deleted => Ok(r),
            _ => Err(AlertError::UnknownRule(id)),
        })
        .await
    }

    /// Checks that every endpoint exists and belongs to `owner`.
    async fn own_endpoints(
        &self,
        owner: &str,
        ids: Vec<String>,
    ) -> Result<Vec<String>, AlertError> {
        let ids = rule::endpoint_list(&ids)?;
        let owner = owner.to_string();
        blocking(&self.inner.store, move |s| {
            for id in &ids {
                match s.get_endpoint(id)? {
                    Some(e) if e.owner == owner => {}
                    _ => return Err(AlertError::UnknownEndpoint(id.clone())),
                }
            }
            Ok(ids)
        })
        .await
    }

    pub async fn create_rule(
        &self,
        owner: &str,
        body: NewRuleBody,
        served: Served<'_>,
    ) -> Result<RuleBody, AlertError> {
        let name = rule::name(&body.name)?;
        let validated = validate_condition(&body.condition)?;
        for channel in validated.metric.channels() {
            if !served(&channel) {
                return Err(AlertError::UnknownChannel(format!(
                    "channel {channel} is not served by this gateway; see GET /v1/instruments"
                )));
            }
        }
        let spec = Spec {
            condition: validated.condition.clone(),
            hysteresis: rule::hysteresis(body.hysteresis.as_deref())?,
            cooldown_secs: rule::cooldown(body.cooldown_secs)?,
        };
        let max_firings = rule::max_firings(body.max_firings)?;
        let now = self.now();
        let expires_at = match &body.expires_in {
            Some(text) => expiry(text, now)?,
            None => None,
        };
        let endpoints = self.own_endpoints(owner, body.endpoints).await?;
        let record = RuleRecord {
            id: random_id("alr")?,
            owner: owner.to_string(),
            name,
            partition: validated.metric.partition(),
            spec: serde_json::to_value(&spec)
                .map_err(|e| AlertError::InvalidRule(e.to_string()))?,
            endpoints,
            status: RuleStatus::Active,
            expires_at,
            max_firings,
            firings: 0,
            last_fired_at: None,
            created_at: now,
            updated_at: now,
            rev: 0,
        };
        let max = self.inner.config.max_rules_per_principal;
        let stored = blocking(&self.inner.store, move |s| {
            if s.count_rules(&record.owner)? >= max {
                return Err(AlertError::TooManyRules(max));
            }
            Ok(s.insert_rule(&record)?)
        })
        .await?;
        self.changed();
        rule_body(&stored)
    }

    pub async fn list_rules(&self, owner: &str) -> Result<Vec<RuleBody>, AlertError> {
        let filter = RuleFilter {
            owner: Some(owner.to_string()),
            limit: MAX_LIST,
            ..Default::default()
        };
        let rules = blocking(&self.inner.store, move |s| Ok(s.list_rules(&filter)?)).await?;
        rules.iter().map(rule_body).collect()
    }

    pub async fn get_rule(&self, owner: &str, id: &str) -> Result<RuleBody, AlertError> {
        rule_body(&self.own_rule(owner, id).await?)
    }

    pub async fn update_rule(
        &self,
        owner: &str,
        id: &str,
        patch: RulePatchBody,
    ) -> Result<RuleBody, AlertError> {
        if patch == RulePatchBody::default() {
            return Err(AlertError::BadRequest("nothing to change".into()));
        }
        let mut record = self.own_rule(owner, id).await?;
        if record.status.is_final() {
            return Err(AlertError::Conflict(format!(
                "rule {} is {}; create a new rule instead",
                record.id, record.status
            )));
        }
        let mut spec: Spec = serde_json::from_value(record.spec.clone())
            .map_err(|e| AlertError::Store(store::StoreError::Corrupt(e.to_string())))?;
        let now = self.now();
        if let Some(name) = &patch.name {
            record.name = rule::name(name)?;
        }
        if let Some(enabled) = patch.enabled {
            record.status = if enabled {
                RuleStatus::Active
            } else {
                RuleStatus::Paused
            };
        }
        if patch.hysteresis.is_some() {
            spec.hysteresis = rule::hysteresis(patch.hysteresis.as_deref())?;
        }
        if patch.cooldown_secs.is_some() {
            spec.cooldown_secs = rule::cooldown(patch.cooldown_secs)?;
        }
        if let Some(text) = &patch.expires_in {
            record.expires_at = expiry(text, now)?;
        }
        if patch.max_firings.is_some() {
            record.max_firings = rule::max_firings(patch.max_firings)?;
            if record.max_firings.is_some_and(|max| record.firings >= max) {
                return Err(AlertError::InvalidRule(format!(
                    "max_firings must be above the {} firings the rule already had",
                    record.firings
                )));
            }
        }
        if let Some(endpoints) = patch.endpoints {
            record.endpoints = self.own_endpoints(owner, endpoints).await?;
        }
        record.spec =
            serde_json::to_value(&spec).map_err(|e| AlertError::InvalidRule(e.to_string()))?;
        record.updated_at = now;
        let rev = record.rev;
        let stored = blocking(&self.inner.store, move |s| Ok(s.update_rule(&record, rev)?)).await?;
        self.changed();
        rule_body(&stored)
    }

    pub async fn delete_rule(&self, owner: &str, id: &str) -> Result<(), AlertError> {
        let record = self.own_rule(owner, id).await?;
        let now = self.now();
        blocking(&self.inner.store, move |s| {
            Ok(s.set_rule_status(&record.id, RuleStatus::Deleted, now)?)
        })
        .await?;
        self.changed();
        Ok(())
    }

    /// The caller's firings, newest first (of one rule when given).
    pub async fn list_firings(
        &self,
        owner: &str,
        rule_id: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AlertBody>, AlertError> {
        if let Some(id) = rule_id {
            self.own_rule(owner, id).await?;
        }
        let (owner, rule_id) = (owner.to_string(), rule_id.map(str::to_string));
        let limit = limit.clamp(1, MAX_LIST);
        let firings = blocking(&self.inner.store, move |s| {
            Ok(s.list_firings(&owner, rule_id.as_deref(), before, limit)?)
        })
        .await?;
        firings
            .iter()
            .map(|f| {
                serde_json::from_str::<WebhookPayload>(&f.payload)
                    .map(|p| p.data)
                    .map_err(|e| {
                        AlertError::Store(store::StoreError::Corrupt(format!(
                            "firing {}: {e}",
                            f.id
                        )))
                    })
            })
            .collect()
    }
}
