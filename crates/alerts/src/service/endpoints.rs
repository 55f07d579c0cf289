//! Webhook endpoints and their deliveries for a principal: create, list, update, delete,
//! rotate the signing secret, list and redeliver deliveries (the rules are in `service`).

use super::{
    AlertService, DEFAULT_OVERLAP_SECS, MAX_LIST, MICROS, blocking, delivery_body, random_id,
};
use crate::config::{MAX_IN_FLIGHT, MAX_TIMEOUT_SECS};
use crate::error::AlertError;
use crate::rule::is_id;
use crate::webhook::address::{self, ResolveError};
use crate::webhook::signature::{Scheme, WebhookSecret};
use crate::webhook::url;
use protocol::alerts::{
    DeliveryBody, EndpointBody, EndpointPatchBody, EndpointStatsBody, NewEndpointBody,
    RotateSecretBody,
};
use store::alerts::EndpointRecord;
use store::outbox::{AttemptRecord, DeliveryFilter, DeliveryState};

impl AlertService {
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
