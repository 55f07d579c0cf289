//! Rotation (with grace, and its cancellation), expiry and master key rewrap: the parts of the
//! key lifecycle that retire a credential while keeping clients working.

use crate::envelope::EnvelopeError;
use crate::input;
use crate::service::{Issued, KeyService, ServiceError, event, invalid};
use store::audit::NewAuditEvent;
use store::keys::{KeyRecord, KeyStatus, KeyWrite};

/// What `keys leaked` did and what the key did before.
#[derive(Debug)]
pub struct Leaked {
    /// The leaked key, now revoked.
    pub revoked: KeyRecord,
    /// Its successor (none for an ed25519 key without a new public key, or when the key was
    /// already rotating: its successor stays).
    pub successor: Option<Issued>,
    /// Usage of the last 24 h and the addresses it came from, from the store.
    pub report: serde_json::Value,
}

impl Leaked {
    /// The answer of `keys leaked` (API and CLI): the successor's id and credential (shown
    /// once) as `create` shows them, the revoked key, and the report.
    pub fn json(self, now: i64) -> serde_json::Value {
        let mut json = match self.successor {
            Some(issued) => crate::info::issued_json(&issued.record, issued.secret, now),
            None => serde_json::json!({}),
        };
        json["revoked"] =
            serde_json::to_value(crate::info::KeyInfo::new(&self.revoked, now)).unwrap_or_default();
        json["last_24h"] = self.report;
        json
    }
}

impl KeyService {
    /// A successor of `old` (same principal, scopes, limits, metadata), with a new credential.
    fn successor_of(
        &self,
        old: &KeyRecord,
        public_key_pem: Option<&str>,
        actor: &str,
        now: i64,
    ) -> Result<(KeyRecord, Option<crate::SecretString>), ServiceError> {
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
        successor.status = KeyStatus::Active;
        successor.grace_until = None;
        let secret = self.mint(&mut successor, public_key_pem)?;
        Ok((successor, secret))
    }

    /// The leak playbook: the key's old secret is revoked now (zero grace), a successor is
    /// issued (rotation with zero grace; an ed25519 key only with a new public key), one
    /// transaction audited as `key.leaked` (+ `key.rotated`, `key.revoked`), and a report of
    /// what the key did in the last 24 h (usage buckets and addresses as flushed to the store).
    pub fn leaked(
        &self,
        id: &str,
        public_key_pem: Option<&str>,
        actor: &str,
        now: i64,
    ) -> Result<Leaked, ServiceError> {
        let old = self.get(id)?;
        let effective = crate::info::KeyInfo::new(&old, now).status;
        if matches!(effective, KeyStatus::Revoked | KeyStatus::Expired) {
            return Err(ServiceError::Conflict(format!(
                "key {id} is {effective} already; `keys usage {id}` shows what it did"
            )));
        }
        let rotating = old.status == KeyStatus::Grace && old.replaced_by.is_some();
        let successor = match (rotating, old.kind, public_key_pem) {
            (true, _, _) => None,
            (false, store::keys::KeyKind::Ed25519, None) => None,
            (false, _, pem) => Some(self.successor_of(&old, pem, actor, now)?),
        };
        let mut revoked = old.clone();
        revoked.status = KeyStatus::Revoked;
        revoked.revoked_at = Some(now);
        revoked.revoked_reason = Some("leaked".into());
        let mut audit = Vec::new();
        let mut writes = Vec::new();
        if let Some((s, _)) = &successor {
            revoked.replaced_by = Some(s.id.clone());
            revoked.rotated_at = Some(now);
            revoked.grace_until = Some(now);
            audit.push(event(
                now,
                actor,
                "key.rotated",
                id,
                serde_json::json!({"successor": s.id, "grace_until": now}),
            ));
        }
        audit.push(event(
            now,
            actor,
            "key.revoked",
            id,
            serde_json::json!({"reason": "leaked"}),
        ));
        audit.push(event(
            now,
            actor,
            "key.leaked",
            id,
            serde_json::json!({
                "successor": successor.as_ref().map(|(s, _)| s.id.clone()).or(old.replaced_by.clone()),
                "previous_status": old.status,
            }),
        ));
        writes.push(KeyWrite::Update {
            record: revoked.clone(),
            expected_rev: old.rev,
        });
        if let Some((s, _)) = &successor {
            writes.push(KeyWrite::Insert(s.clone()));
        }
        self.store().apply(&writes, &audit)?;
        revoked.rev = old.rev + 1;
        let since = now - 24 * 3_600_000_000;
        let buckets =
            self.store()
                .usage(id, store::keys::Granularity::Hour, since - 3_600_000_000)?;
        let sum = |f: fn(&store::keys::UsageBucket) -> u64| -> u64 {
            buckets
                .iter()
                .filter(|b| b.start + 3_600_000_000 > since)
                .map(f)
                .sum()
        };
        let addresses = self.store().key_addresses(id, since)?;
        let report = serde_json::json!({
            "since": since,
            "requests": sum(|b| b.requests),
            "messages": sum(|b| b.messages),
            "bytes": sum(|b| b.bytes),
            "auth_failures": sum(|b| b.auth_failures),
            "hours": buckets.iter().filter(|b| b.start + 3_600_000_000 > since).collect::<Vec<_>>(),
            "addresses": addresses,
            "last_used_at": old.last_used_at,
            "last_used_addr": old.last_used_addr,
        });
        Ok(Leaked {
            revoked,
            successor: successor.map(|(mut record, secret)| {
                record.rev = 1;
                Issued { record, secret }
            }),
            report,
        })
    }

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
        let (mut successor, secret) = self.successor_of(&old, public_key_pem, actor, now)?;
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
