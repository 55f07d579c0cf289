//! Managing rules, endpoints and deliveries for a principal: what the REST routes call.
//!
//! Every operation is scoped to an owner (the authenticated key's principal): another
//! principal's rule, endpoint or delivery answers exactly like one that does not exist.
//! Writes go to the store first; then the evaluators are told (they also poll the store's
//! change feed, so a change made by another gateway process is seen too).

use crate::Store;
use crate::clock::Clock;
use crate::config::{AlertsConfig, MAX_IN_FLIGHT, MAX_TIMEOUT_SECS};
use crate::error::AlertError;
use crate::rule::{self, Spec, is_id, validate_condition};
use crate::webhook::address::{self, AddressPolicy, ResolveError};
use crate::webhook::signature::{Scheme, WebhookSecret};
use crate::webhook::url;
use auth::KeyRing;
use model::Channel;
use protocol::alerts::{
    AlertBody, DeliveryBody, EndpointBody, EndpointPatchBody, EndpointStatsBody, NewEndpointBody,
    NewRuleBody, RotateSecretBody, RuleBody, RulePatchBody, WebhookPayload,
};
use std::sync::Arc;
use store::alerts::{EndpointRecord, RuleFilter, RuleRecord, RuleStatus};
use store::outbox::{AttemptRecord, DeliveryFilter, DeliveryRecord, DeliveryState};
use tokio::sync::Notify;

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

async fn blocking<T: Send + 'static>(
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

    /// Resolves the URL's host and checks every address (also done on every delivery).
    async fn check_url(&self, text: &str) -> Result<String, AlertError> {
        let parsed = url::parse(text)?;
        let host = parsed.host_str().unwrap_or_default().to_string();
        let port = parsed.port_or_known_default().unwrap_or(443);
        match address::resolve(&self.inner.policy, &host, port).await {
            Ok(_) => Ok(parsed.to_string()),
            Err(ResolveError::Refused(refused)) => {
                Err(AlertError::AddressRefused(refused.to_string()))
            }
            Err(e @ ResolveError::Unresolvable { .. }) => {
                Err(AlertError::UnresolvableHost(e.to_string()))
            }
        }
    }

    fn endpoint_body(&self, e: &EndpointRecord, secret: Option<String>) -> EndpointBody {
        let d = &self.inner.config.delivery;
        let s = &e.stats;
        EndpointBody {
            id: e.id.clone(),
            url: e.url.clone(),
            description: e.description.clone(),
            enabled: e.enabled,
            signature: e.scheme.clone(),
            public_key: e.public_key.clone(),
            max_in_flight: e.max_in_flight.unwrap_or(d.max_in_flight),
            timeout_secs: e.timeout_ms.map_or(d.timeout_secs, |ms| ms / 1000),
            previous_secret_until: e.previous_until.filter(|t| *t > self.now()),
            created_at: e.created_at,
            updated_at: e.updated_at,
            stats: EndpointStatsBody {
                attempts: s.attempts,
                delivered: s.delivered,
                failures: s.failures,
                dead: s.dead,
                consecutive_failures: s.consecutive_failures,
                last_attempt_at: s.last_attempt_at,
                last_success_at: s.last_success_at,
                last_status: s.last_status,
                last_error: s.last_error.clone(),
                last_latency_us: s.last_latency_us,
            },
            secret,
        }
    }

    /// A new secret for endpoint `id`, sealed; the text to show once (`v1` only).
    fn new_secret(
        &self,
        id: &str,
        scheme: Scheme,
    ) -> Result<(store::keys::SealedSecret, Option<String>, Option<String>), AlertError> {
        let (secret, text) = WebhookSecret::generate(scheme).map_err(|e| {
            AlertError::BadRequest(format!("the OS random number generator failed: {e}"))
        })?;
        let sealed = self.inner.ring.seal(id, text.as_bytes())?;
        let shown = (scheme == Scheme::V1).then(|| text.to_string());
        Ok((sealed, shown, secret.public_key()))
    }

    fn limits(
        max_in_flight: Option<u32>,
        timeout_secs: Option<u32>,
    ) -> Result<(Option<u32>, Option<u32>), AlertError> {
        if max_in_flight.is_some_and(|n| !(1..=MAX_IN_FLIGHT).contains(&n)) {
            return Err(AlertError::BadRequest(format!(
                "max_in_flight must be from 1 to {MAX_IN_FLIGHT}"
            )));
        }
        if timeout_secs.is_some_and(|n| !(1..=MAX_TIMEOUT_SECS).contains(&n)) {
            return Err(AlertError::BadRequest(format!(
                "timeout_secs must be from 1 to {MAX_TIMEOUT_SECS}"
            )));
        }
        Ok((max_in_flight, timeout_secs.map(|s| s * 1000)))
    }

    fn description(text: Option<&str>) -> Result<String, AlertError> {
        let text = text.unwrap_or("").trim();
        if text.chars().count() > 200 || text.chars().any(char::is_control) {
            return Err(AlertError::BadRequest(
                "description must be at most 200 characters, without control characters".into(),
            ));
        }
        Ok(text.to_string())
    }

    /// Creates an endpoint; the response carries its `whsec_` secret, shown this once.
    pub async fn create_endpoint(
        &self,
        owner: &str,
        body: NewEndpointBody,
    ) -> Result<EndpointBody, AlertError> {
        let scheme = match body.signature.as_deref() {
            None => Scheme::V1,
            Some(text) => Scheme::parse(text)
                .ok_or_else(|| AlertError::BadRequest("signature must be v1 or v1a".into()))?,
        };
        let (max_in_flight, timeout_ms) = Self::limits(body.max_in_flight, body.timeout_secs)?;
        let description = Self::description(body.description.as_deref())?;
        let url = self.check_url(&body.url).await?;
        let id = random_id("whe")?;
        let (secret, shown, public_key) = self.new_secret(&id, scheme)?;
        let now = self.now();
        let record = EndpointRecord {
            id,
            owner: owner.to_string(),
            url,
            description,
            enabled: true,
            scheme: scheme.as_str().to_string(),
            public_key,
            secret,
            previous_secret: None,
            previous_until: None,
            max_in_flight,
            timeout_ms,
            created_at: now,
            updated_at: now,
            rev: 0,
            stats: Default::default(),
        };
        let max = self.inner.config.max_endpoints_per_principal;
        let stored = blocking(&self.inner.store, move |s| {
            if s.list_endpoints(&record.owner)?.len() as u64 >= max {
                return Err(AlertError::TooManyEndpoints(max));
            }
            Ok(s.insert_endpoint(&record)?)
        })
        .await?;
        Ok(self.endpoint_body(&stored, shown))
    }

    async fn own_endpoint(&self, owner: &str, id: &str) -> Result<EndpointRecord, AlertError> {
        if !is_id(id, "whe") {
            return Err(AlertError::UnknownEndpoint(id.chars().take(64).collect()));
        }
        let (owner, id) = (owner.to_string(), id.to_string());
        blocking(&self.inner.store, move |s| match s.get_endpoint(&id)? {
            Some(e) if e.owner == owner => Ok(e),
            _ => Err(AlertError::UnknownEndpoint(id)),
        })
        .await
    }

    pub async fn list_endpoints(&self, owner: &str) -> Result<Vec<EndpointBody>, AlertError> {
        let owner = owner.to_string();
        let list = blocking(&self.inner.store, move |s| Ok(s.list_endpoints(&owner)?)).await?;
        Ok(list.iter().map(|e| self.endpoint_body(e, None)).collect())
    }

    pub async fn get_endpoint(&self, owner: &str, id: &str) -> Result<EndpointBody, AlertError> {
        Ok(self.endpoint_body(&self.own_endpoint(owner, id).await?, None))
    }

    pub async fn update_endpoint(
        &self,
        owner: &str,
        id: &str,
        patch: EndpointPatchBody,
    ) -> Result<EndpointBody, AlertError> {
        if patch == EndpointPatchBody::default() {
            return Err(AlertError::BadRequest("nothing to change".into()));
        }
        let mut e = self.own_endpoint(owner, id).await?;
        if let Some(url) = &patch.url {
            e.url = self.check_url(url).await?;
        }
        if patch.description.is_some() {
            e.description = Self::description(patch.description.as_deref())?;
        }
        if let Some(enabled) = patch.enabled {
            e.enabled = enabled;
        }
        let (max_in_flight, timeout_ms) = Self::limits(patch.max_in_flight, patch.timeout_secs)?;
        e.max_in_flight = max_in_flight.or(e.max_in_flight);
        e.timeout_ms = timeout_ms.or(e.timeout_ms);
        e.updated_at = self.now();
        let rev = e.rev;
        let stored = blocking(&self.inner.store, move |s| Ok(s.update_endpoint(&e, rev)?)).await?;
        if stored.enabled {
            self.inner.deliveries.notify_one();
        }
        Ok(self.endpoint_body(&stored, None))
    }

    pub async fn delete_endpoint(&self, owner: &str, id: &str) -> Result<(), AlertError> {
        let e = self.own_endpoint(owner, id).await?;
        let now = self.now();
        blocking(&self.inner.store, move |s| {
            Ok(s.delete_endpoint(&e.id, now)?)
        })
        .await
    }

    /// A new secret; the old one keeps signing (a second signature on every delivery) for
    /// `overlap` (default 24 h), so receivers can switch without losing a delivery.
    pub async fn rotate_secret(
        &self,
        owner: &str,
        id: &str,
        body: RotateSecretBody,
    ) -> Result<EndpointBody, AlertError> {
        let mut e = self.own_endpoint(owner, id).await?;
        let overlap = match body.overlap.as_deref() {
            Some(text) => auth::input::duration_secs(text, true)
                .map_err(|m| AlertError::BadRequest(format!("overlap: {m}")))?,
            None => DEFAULT_OVERLAP_SECS,
        };
        let scheme = Scheme::parse(&e.scheme).unwrap_or(Scheme::V1);
        let (secret, shown, public_key) = self.new_secret(&e.id, scheme)?;
        let now = self.now();
        let old = std::mem::replace(&mut e.secret, secret);
        (e.previous_secret, e.previous_until) = if overlap > 0 {
            (Some(old), Some(now + overlap as i64 * MICROS))
        } else {
            (None, None)
        };
        e.public_key = public_key;
        e.updated_at = now;
        let rev = e.rev;
        let stored = blocking(&self.inner.store, move |s| Ok(s.update_endpoint(&e, rev)?)).await?;
        Ok(self.endpoint_body(&stored, shown))
    }

    pub async fn list_deliveries(
        &self,
        owner: &str,
        endpoint: &str,
        state: Option<DeliveryState>,
        limit: usize,
    ) -> Result<Vec<DeliveryBody>, AlertError> {
        let e = self.own_endpoint(owner, endpoint).await?;
        let filter = DeliveryFilter {
            endpoint_id: Some(e.id),
            state,
            limit: limit.clamp(1, MAX_LIST),
            ..Default::default()
        };
        let list = blocking(&self.inner.store, move |s| Ok(s.list_deliveries(&filter)?)).await?;
        Ok(list.iter().map(delivery_body).collect())
    }

    /// One delivery and its attempts.
    pub async fn get_delivery(
        &self,
        owner: &str,
        endpoint: &str,
        delivery: &str,
    ) -> Result<(DeliveryBody, Vec<AttemptRecord>), AlertError> {
        let e = self.own_endpoint(owner, endpoint).await?;
        let id = delivery.to_string();
        blocking(&self.inner.store, move |s| match s.get_delivery(&id)? {
            Some(d) if d.endpoint_id == e.id => {
                let attempts = s.attempts(&d.id)?;
                Ok((delivery_body(&d), attempts))
            }
            _ => Err(AlertError::UnknownDelivery(id.chars().take(120).collect())),
        })
        .await
    }

    /// Sends a dead (or delivered) delivery again, or every dead one of the endpoint, with
    /// the same `webhook-id`. Returns how many.
    pub async fn redeliver(
        &self,
        owner: &str,
        endpoint: &str,
        delivery: Option<&str>,
    ) -> Result<u64, AlertError> {
        let e = self.own_endpoint(owner, endpoint).await?;
        let now = self.now();
        let id = delivery.map(str::to_string);
        let n = blocking(&self.inner.store, move |s| {
            if let Some(id) = &id {
                match s.get_delivery(id)? {
                    Some(d) if d.endpoint_id == e.id => {
                        if d.state == DeliveryState::Pending {
                            return Err(AlertError::Conflict(format!(
                                "delivery {id} is still pending"
                            )));
                        }
                    }
                    _ => return Err(AlertError::UnknownDelivery(id.chars().take(120).collect())),
                }
            }
            Ok(s.redeliver(&e.id, id.as_deref(), now)?)
        })
        .await?;
        if n > 0 {
            self.inner.deliveries.notify_one();
        }
        Ok(n)
    }
}
