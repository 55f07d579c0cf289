//! Key lifecycle: create, rotate (with grace), cancel a rotation, revoke, update, expire,
//! rewrap. One implementation used by the CLI offline (on a data directory) and by the admin
//! API, so both behave alike. Every change is written with its audit entry in one store
//! transaction, and with optimistic concurrency: two admins acting on one key at once cannot
//! both win. Calls block (they write SQLite); async callers use `spawn_blocking`.

use crate::envelope::{EnvelopeError, KeyRing};
use crate::index::token_hash;
use crate::input;
use crate::scope::ScopeSet;
use crate::secret::SecretString;
use crate::token;
use protocol::ErrorCode;
use std::sync::Arc;
use store::StoreError;
use store::audit::{AuditLog, NewAuditEvent};
use store::keys::{Environment, KeyKind, KeyRecord, KeyStatus, KeyStore, KeyWrite, RateLimit};

/// Why a lifecycle operation failed. Messages are safe to show; none contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Invalid(String),
    #[error("no key {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("store: {0}")]
    Store(StoreError),
    /// Refused with its own code (second factor: `totp_required`, `totp_invalid`).
    #[error("{1}")]
    Refused(ErrorCode, String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Self::Conflict(m),
            StoreError::NotFound(m) => Self::NotFound(m),
            other => Self::Store(other),
        }
    }
}

impl ServiceError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::BadRequest,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::Envelope(EnvelopeError::NoMasterKey) => ErrorCode::BadRequest,
            Self::Refused(code, _) => *code,
            Self::Envelope(_) | Self::Store(_) => ErrorCode::Internal,
        }
    }
}

/// A request to create a key.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub name: String,
    /// Defaults to one derived from the name.
    pub principal: Option<String>,
    pub scopes: Vec<String>,
    pub kind: Option<KeyKind>,
    pub public_key_pem: Option<String>,
    pub expires_in_secs: Option<u64>,
    pub metadata: Option<serde_json::Value>,
    pub rate_limit: Option<RateLimit>,
    pub max_age_secs: Option<u64>,
}

/// Changes to a key's settings; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct KeyUpdate {
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub metadata: Option<serde_json::Value>,
    pub rate_limit: Option<RateLimit>,
    pub max_age_secs: Option<u64>,
}

/// A key as issued: the record and, exactly once, its token (bearer) or secret (hmac).
#[derive(Debug)]
pub struct Issued {
    pub record: KeyRecord,
    pub secret: Option<SecretString>,
}

#[derive(Debug, Clone)]
pub struct KeyService {
    store: Arc<dyn KeyStore>,
    audit: Arc<dyn AuditLog>,
    ring: KeyRing,
    environment: Environment,
}

pub(crate) fn invalid(message: String) -> ServiceError {
    ServiceError::Invalid(message)
}

pub(crate) fn event(
    now: i64,
    actor: &str,
    action: &str,
    key: &str,
    detail: serde_json::Value,
) -> NewAuditEvent {
    NewAuditEvent {
        at: now,
        actor: actor.into(),
        action: action.into(),
        key_id: Some(key.into()),
        detail,
    }
}

fn random(e: getrandom::Error) -> ServiceError {
    ServiceError::Envelope(EnvelopeError::Random(e))
}

impl KeyService {
    pub fn new(
        store: Arc<dyn KeyStore>,
        audit: Arc<dyn AuditLog>,
        ring: KeyRing,
        environment: Environment,
    ) -> Self {
        Self {
            store,
            audit,
            ring,
            environment,
        }
    }

    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.store
    }

    pub fn audit(&self) -> &Arc<dyn AuditLog> {
        &self.audit
    }

    pub fn ring(&self) -> &KeyRing {
        &self.ring
    }

    pub fn environment(&self) -> Environment {
        self.environment
    }

    pub fn get(&self, id: &str) -> Result<KeyRecord, ServiceError> {
        self.store
            .get(id)?
            .ok_or_else(|| ServiceError::NotFound(id.chars().take(64).collect()))
    }

    /// Mints the credential of a new record `r` (token, sealed secret or public key).
    pub(crate) fn mint(
        &self,
        r: &mut KeyRecord,
        public_key_pem: Option<&str>,
    ) -> Result<Option<SecretString>, ServiceError> {
        match r.kind {
            KeyKind::Bearer | KeyKind::Hmac => {
                if public_key_pem.is_some() {
                    return Err(invalid(format!("{} keys take no public key", r.kind)));
                }
                if r.kind == KeyKind::Hmac && self.ring.current().is_none() {
                    return Err(EnvelopeError::NoMasterKey.into());
                }
                let secret = token::generate(self.environment).map_err(random)?;
                r.token_hash = Some(token_hash(secret.expose()));
                if r.kind == KeyKind::Hmac {
                    r.sealed = Some(self.ring.seal(&r.id, secret.expose().as_bytes())?);
                }
                Ok(Some(secret))
            }
            KeyKind::Ed25519 => {
                let pem = public_key_pem.ok_or_else(|| {
                    invalid("ed25519 keys need the client's public key (PEM)".into())
                })?;
                r.public_key = Some(input::ed25519_public_key_pem(pem).map_err(invalid)?);
                Ok(None)
            }
        }
    }

    pub(crate) fn new_id() -> Result<String, ServiceError> {
        Ok(format!("key_{}", token::random_base62(16).map_err(random)?))
    }

    pub fn create(&self, req: NewKey, actor: &str, now: i64) -> Result<Issued, ServiceError> {
        let name = input::name(&req.name).map_err(invalid)?;
        let principal = match &req.principal {
            Some(p) => input::principal(p).map_err(invalid)?,
            None => input::principal_from_name(&name),
        };
        let scopes = ScopeSet::parse(&req.scopes).map_err(invalid)?;
        let expires_at = match req.expires_in_secs {
            Some(secs) => Some(
                now + 1_000_000
                    * input::seconds(secs, false, "expires_in").map_err(invalid)? as i64,
            ),
            None => None,
        };
        let max_age_secs = match req.max_age_secs {
            Some(secs) => Some(input::seconds(secs, false, "max_age").map_err(invalid)?),
            None => None,
        };
        let mut record = KeyRecord {
            id: Self::new_id()?,
            principal,
            kind: req.kind.unwrap_or(KeyKind::Bearer),
            environment: self.environment,
            name,
            scopes: scopes.names(),
            status: KeyStatus::Active,
            grace_until: None,
            version: 1,
            replaces: None,
            replaced_by: None,
            metadata: input::metadata(req.metadata).map_err(invalid)?,
            created_at: now,
            created_by: actor.into(),
            expires_at,
            revoked_at: None,
            revoked_reason: None,
            token_hash: None,
            public_key: None,
            sealed: None,
            rate_limit: req
                .rate_limit
                .map(input::rate_limit)
                .transpose()
                .map_err(invalid)?,
            max_age_secs,
            rotated_at: None,
            last_used_at: None,
            last_used_addr: None,
            rev: 0,
        };
        let secret = self.mint(&mut record, req.public_key_pem.as_deref())?;
        let audit = event(
            now,
            actor,
            "key.created",
            &record.id,
            serde_json::json!({
                "name": record.name, "principal": record.principal, "type": record.kind,
                "scopes": record.scopes, "expires_at": record.expires_at,
            }),
        );
        self.store
            .apply(&[KeyWrite::Insert(record.clone())], &[audit])?;
        record.rev = 1;
        Ok(Issued { record, secret })
    }

    pub fn revoke(
        &self,
        id: &str,
        reason: &str,
        actor: &str,
        now: i64,
    ) -> Result<KeyRecord, ServiceError> {
        let reason = input::reason(reason).map_err(invalid)?;
        let old = self.get(id)?;
        if old.status == KeyStatus::Revoked {
            return Err(ServiceError::Conflict(format!(
                "key {id} is already revoked"
            )));
        }
        let mut r = old.clone();
        r.status = KeyStatus::Revoked;
        r.revoked_at = Some(now);
        r.revoked_reason = Some(reason.clone());
        let audit = event(
            now,
            actor,
            "key.revoked",
            id,
            serde_json::json!({"reason": reason}),
        );
        self.store.apply(
            &[KeyWrite::Update {
                record: r.clone(),
                expected_rev: old.rev,
            }],
            &[audit],
        )?;
        r.rev += 1;
        Ok(r)
    }

    /// Suspends `id` (active or in grace): refused with `key_suspended` until [`Self::resume`],
    /// its live sessions closed. `actor` is an admin or `anomaly` (the automatic response).
    pub fn suspend(
        &self,
        id: &str,
        reason: &str,
        actor: &str,
        now: i64,
    ) -> Result<KeyRecord, ServiceError> {
        let reason = input::reason(reason).map_err(invalid)?;
        let old = self.get(id)?;
        let effective = crate::info::KeyInfo::new(&old, now).status;
        if !matches!(effective, KeyStatus::Active | KeyStatus::Grace) {
            return Err(ServiceError::Conflict(format!(
                "key {id} is {effective}; only active keys (or keys in grace) can be suspended"
            )));
        }
        let mut r = old.clone();
        r.status = KeyStatus::Suspended;
        let audit = event(
            now,
            actor,
            "key.suspended",
            id,
            serde_json::json!({"reason": reason, "from": old.status}),
        );
        self.store().apply(
            &[KeyWrite::Update {
                record: r.clone(),
                expected_rev: old.rev,
            }],
            &[audit],
        )?;
        r.rev += 1;
        Ok(r)
    }

    /// Resumes a suspended key: active again, or back in its rotation grace if it was
    /// rotating out (a grace that ended meanwhile makes it expire at the next sweep).
    pub fn resume(&self, id: &str, actor: &str, now: i64) -> Result<KeyRecord, ServiceError> {
        let old = self.get(id)?;
        if old.status != KeyStatus::Suspended {
            return Err(ServiceError::Conflict(format!(
                "key {id} is {}, not suspended",
                old.status
            )));
        }
        let mut r = old.clone();
        r.status = if r.grace_until.is_some() && r.replaced_by.is_some() {
            KeyStatus::Grace
        } else {
            KeyStatus::Active
        };
        let audit = event(
            now,
            actor,
            "key.resumed",
            id,
            serde_json::json!({"to": r.status}),
        );
        self.store().apply(
            &[KeyWrite::Update {
                record: r.clone(),
                expected_rev: old.rev,
            }],
            &[audit],
        )?;
        r.rev += 1;
        Ok(r)
    }

    pub fn update(
        &self,
        id: &str,
        change: KeyUpdate,
        actor: &str,
        now: i64,
    ) -> Result<KeyRecord, ServiceError> {
        let old = self.get(id)?;
        if matches!(old.status, KeyStatus::Revoked | KeyStatus::Expired) {
            return Err(ServiceError::Conflict(format!(
                "key {id} is {}",
                old.status
            )));
        }
        let mut r = old.clone();
        let mut audit = Vec::new();
        if let Some(scopes) = &change.scopes {
            r.scopes = ScopeSet::parse(scopes).map_err(invalid)?.names();
            if r.scopes != old.scopes {
                audit.push(event(
                    now,
                    actor,
                    "key.scopes_changed",
                    id,
                    serde_json::json!({"from": old.scopes, "to": r.scopes}),
                ));
            }
        }
        if let Some(name) = &change.name {
            r.name = input::name(name).map_err(invalid)?;
        }
        if change.metadata.is_some() {
            r.metadata = input::metadata(change.metadata).map_err(invalid)?;
        }
        if let Some(limit) = change.rate_limit {
            r.rate_limit = Some(input::rate_limit(limit).map_err(invalid)?);
        }
        if let Some(secs) = change.max_age_secs {
            r.max_age_secs = Some(input::seconds(secs, false, "max_age").map_err(invalid)?);
        }
        if r == old {
            return Ok(old);
        }
        if r.name != old.name
            || r.metadata != old.metadata
            || r.rate_limit != old.rate_limit
            || r.max_age_secs != old.max_age_secs
        {
            audit.push(event(
                now,
                actor,
                "key.updated",
                id,
                serde_json::json!({
                    "name": r.name, "rate_limit": r.rate_limit, "max_age_secs": r.max_age_secs,
                }),
            ));
        }
        self.store.apply(
            &[KeyWrite::Update {
                record: r.clone(),
                expected_rev: old.rev,
            }],
            &audit,
        )?;
        r.rev += 1;
        Ok(r)
    }
}
