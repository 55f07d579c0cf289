//! Rotation (with grace, and its cancellation), expiry and master key rewrap: the parts of the
//! key lifecycle that retire a credential while keeping clients working.

use crate::envelope::EnvelopeError;
use crate::input;
use crate::service::{Issued, KeyService, ServiceError, event, invalid};
use store::audit::NewAuditEvent;
use store::keys::{KeyRecord, KeyStatus, KeyWrite};

impl KeyService {
    /// Rotates `id`: a successor with the same principal, scopes, limits and metadata; the old
    /// key works until `now + grace_secs` (never beyond its own expiry). Returns (old, new).
    pub fn rotate(
        &self,
        id: &str,
        grace_secs: u64,
        public_key_pem: Option<&str>,
        actor: &str,
        now: i64,
    ) -> Result<(KeyRecord, Issued), ServiceError> {
        let grace_secs = input::seconds(grace_secs, true, "grace_seconds").map_err(invalid)?;
        let old = self.get(id)?;
        let effective = crate::info::KeyInfo::new(&old, now).status;
        if effective != KeyStatus::Active {
            return Err(ServiceError::Conflict(format!(
                "key {} is {effective}; only active keys can be rotated{}",
                old.id,
                if effective == KeyStatus::Grace {
                    " (cancel the running rotation first)"
                } else {
                    ""
                }
            )));
        }
        let mut successor = old.clone();
        successor.id = Self::new_id()?;
        successor.version = old.version + 1;
        successor.replaces = Some(old.id.clone());
        successor.replaced_by = None;
        successor.created_at = now;
        successor.created_by = actor.into();
        successor.expires_at = old.expires_at.map(|e| now + (e - old.created_at).max(0));
        successor.token_hash = None;
        successor.sealed = None;
        successor.public_key = None;
        successor.last_used_at = None;
        successor.rotated_at = None;
        successor.last_used_addr = None;
        successor.rev = 0;
        let secret = self.mint(&mut successor, public_key_pem)?;
        let end = now + 1_000_000 * grace_secs as i64;
        let end = old.expires_at.map_or(end, |e| end.min(e));
        let mut retired = old.clone();
        retired.replaced_by = Some(successor.id.clone());
        retired.rotated_at = Some(now);
        if grace_secs == 0 {
            retired.status = KeyStatus::Expired;
            retired.grace_until = Some(now);
        } else {
            retired.status = KeyStatus::Grace;
            retired.grace_until = Some(end);
        }
        let audit = event(
            now,
            actor,
            "key.rotated",
            &old.id,
            serde_json::json!({"successor": successor.id, "grace_until": retired.grace_until}),
        );
        self.store().apply(
            &[
                KeyWrite::Update {
                    record: retired.clone(),
                    expected_rev: old.rev,
                },
                KeyWrite::Insert(successor.clone()),
            ],
            &[audit],
        )?;
        retired.rev = old.rev + 1;
        successor.rev = 1;
        Ok((
            retired,
            Issued {
                record: successor,
                secret,
            },
        ))
    }

    /// Cancels the running rotation of `id` (the old key, or its successor): the old key is
    /// active again with no end, the successor revoked. Returns (old, successor).
    pub fn cancel_rotation(
        &self,
        id: &str,
        actor: &str,
        now: i64,
    ) -> Result<(KeyRecord, KeyRecord), ServiceError> {
        let mut old = self.get(id)?;
        if old.status != KeyStatus::Grace
            && let Some(pred) = old.replaces.clone()
        {
            old = self.get(&pred)?;
        }
        let not_rotating =
            || ServiceError::Conflict(format!("key {id} is not in a rotation grace period"));
        if old.status != KeyStatus::Grace || old.grace_until.is_some_and(|t| t <= now) {
            return Err(not_rotating());
        }
        let successor_id = old.replaced_by.clone().ok_or_else(not_rotating)?;
        let successor = self.get(&successor_id)?;
        let mut restored = old.clone();
        restored.status = KeyStatus::Active;
        restored.grace_until = None;
        restored.replaced_by = None;
        restored.rotated_at = None;
        let mut cancelled = successor.clone();
        cancelled.status = KeyStatus::Revoked;
        cancelled.revoked_at = Some(now);
        cancelled.revoked_reason = Some("rotation cancelled".into());
        let audit = event(
            now,
            actor,
            "key.rotation_cancelled",
            &old.id,
            serde_json::json!({"successor_revoked": successor.id}),
        );
        self.store().apply(
            &[
                KeyWrite::Update {
                    record: restored.clone(),
                    expected_rev: old.rev,
                },
                KeyWrite::Update {
                    record: cancelled.clone(),
                    expected_rev: successor.rev,
                },
            ],
            &[audit],
        )?;
        restored.rev += 1;
        cancelled.rev += 1;
        Ok((restored, cancelled))
    }

    /// Marks `id` expired if its expiry or grace end has passed; `None` if it is not due.
    pub fn expire_if_due(&self, id: &str, now: i64) -> Result<Option<KeyRecord>, ServiceError> {
        let old = self.get(id)?;
        let info = crate::info::KeyInfo::new(&old, now);
        if info.status != KeyStatus::Expired || old.status == KeyStatus::Expired {
            return Ok(None);
        }
        let why = if old.status == KeyStatus::Grace {
            "grace_ended"
        } else {
            "expired"
        };
        let mut r = old.clone();
        r.status = KeyStatus::Expired;
        let audit = event(
            now,
            "system",
            "key.expired",
            id,
            serde_json::json!({"reason": why}),
        );
        self.store().apply(
            &[KeyWrite::Update {
                record: r.clone(),
                expected_rev: old.rev,
            }],
            &[audit],
        )?;
        r.rev += 1;
        Ok(Some(r))
    }

    /// Re-wraps every sealed secret not under the current master key. Returns how many.
    pub fn rewrap(&self, actor: &str, now: i64) -> Result<usize, ServiceError> {
        let current = self
            .ring()
            .current()
            .ok_or(EnvelopeError::NoMasterKey)?
            .id()
            .to_string();
        let mut writes = Vec::new();
        for r in self.store().list(&store::keys::KeyFilter::default())? {
            let Some(sealed) = &r.sealed else { continue };
            if let Some(new) = self.ring().rewrap(&r.id, sealed)? {
                let mut updated = r.clone();
                updated.sealed = Some(new);
                writes.push(KeyWrite::Update {
                    record: updated,
                    expected_rev: r.rev,
                });
            }
        }
        let count = writes.len();
        // TOTP secrets of admin principals are sealed under the same master keys.
        let mut totp = Vec::new();
        for e in self.store().totp_all()? {
            let id = format!("totp:{}", e.principal);
            if let Some(new) = self.ring().rewrap(&id, &e.sealed)? {
                totp.push((e.principal, new));
            }
        }
        let audit = NewAuditEvent {
            at: now,
            actor: actor.into(),
            action: "keys.rewrapped".into(),
            key_id: None,
            detail: serde_json::json!({
                "count": count, "totp_secrets": totp.len(), "master_key_id": current,
            }),
        };
        self.store().apply(&writes, &[audit])?;
        for (principal, sealed) in &totp {
            self.store().totp_reseal(principal, sealed)?;
        }
        Ok(count)
    }
}
