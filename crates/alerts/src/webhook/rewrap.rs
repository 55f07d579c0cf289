//! Re-wrapping endpoint secrets under the current master key.
//!
//! Webhook signing secrets are sealed like HMAC key secrets (`auth::envelope`): a data key per
//! secret, wrapped by a master key. After a master key rotation `tickgate keys rewrap` (and
//! `POST /admin/v1/keys/rewrap`) moves every key secret to the current master key; this does the
//! same for every endpoint's secret and, during a rotation overlap, its previous secret, so the
//! old master key can be retired without breaking webhook signing.

use crate::error::AlertError;
use auth::KeyRing;
use auth::envelope::EnvelopeError;
use store::StoreError;
use store::alerts::{AlertStore, EndpointRecord};
use store::audit::{AuditLog, NewAuditEvent};

/// How often one endpoint is retried when a concurrent change wins the revision race.
const ATTEMPTS: usize = 5;

/// Re-wraps the sealed secrets of every endpoint not under `ring`'s current master key, then
/// appends one `webhooks.secrets_rewrapped` audit entry (with the count and the master key id)
/// for `actor`. Returns how many endpoints were rewritten (one already current is left alone).
pub fn rewrap_endpoint_secrets(
    store: &dyn AlertStore,
    ring: &KeyRing,
    audit: &dyn AuditLog,
    actor: &str,
    now: i64,
) -> Result<usize, AlertError> {
    let master = ring
        .current()
        .ok_or(EnvelopeError::NoMasterKey)?
        .id()
        .to_string();
    let mut count = 0;
    for endpoint in store.list_all_endpoints()? {
        if rewrap_one(store, ring, endpoint)? {
            count += 1;
        }
    }
    audit.append(&[NewAuditEvent {
        at: now,
        actor: actor.into(),
        action: "webhooks.secrets_rewrapped".into(),
        key_id: None,
        detail: serde_json::json!({ "count": count, "master_key_id": master }),
    }])?;
    Ok(count)
}

/// Re-wraps one endpoint, re-reading it when another writer changed it meanwhile.
fn rewrap_one(
    store: &dyn AlertStore,
    ring: &KeyRing,
    mut endpoint: EndpointRecord,
) -> Result<bool, AlertError> {
    for _ in 0..ATTEMPTS {
        let Some(updated) = rewrapped(ring, &endpoint)? else {
            return Ok(false);
        };
        match store.update_endpoint(&updated, endpoint.rev) {
            Ok(_) => return Ok(true),
            Err(StoreError::Conflict(_)) => match store.get_endpoint(&endpoint.id)? {
                Some(fresh) => endpoint = fresh,
                // Deleted meanwhile: nothing left to re-wrap.
                None => return Ok(false),
            },
            // Deleted between the listing and the write.
            Err(StoreError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    Err(AlertError::Store(StoreError::Conflict(format!(
        "endpoint {} kept changing while its secret was re-wrapped; run rewrap again",
        endpoint.id
    ))))
}

/// The endpoint with both secrets under the current master key, or `None` if they already are.
fn rewrapped(
    ring: &KeyRing,
    endpoint: &EndpointRecord,
) -> Result<Option<EndpointRecord>, AlertError> {
    let secret = ring.rewrap(&endpoint.id, &endpoint.secret)?;
    let previous = match &endpoint.previous_secret {
        Some(sealed) => ring.rewrap(&endpoint.id, sealed)?,
        None => None,
    };
    if secret.is_none() && previous.is_none() {
        return Ok(None);
    }
    let mut updated = endpoint.clone();
    if let Some(s) = secret {
        updated.secret = s;
    }
    if let Some(p) = previous {
        updated.previous_secret = Some(p);
    }
    Ok(Some(updated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth::envelope::MasterKey;
    use store::alerts::EndpointStats;
    use store::alerts_sqlite::SqliteAlertStore;
    use store::audit_sqlite::SqliteAuditLog;
    use store::keys_sqlite::SqliteKeyStore;

    fn rewrap(
        store: &SqliteAlertStore,
        ring: &KeyRing,
        audit: &SqliteAuditLog,
    ) -> Result<usize, AlertError> {
        rewrap_endpoint_secrets(store, ring, audit, "cli:test", 7)
    }

    fn endpoint(id: &str, ring: &KeyRing, secret: &str) -> EndpointRecord {
        EndpointRecord {
            id: id.into(),
            owner: "acme".into(),
            url: "https://hooks.example.com/x".into(),
            description: String::new(),
            enabled: true,
            scheme: "v1".into(),
            public_key: None,
            secret: ring.seal(id, secret.as_bytes()).unwrap(),
            previous_secret: None,
            previous_until: None,
            max_in_flight: None,
            timeout_ms: None,
            created_at: 1,
            updated_at: 1,
            rev: 0,
            stats: EndpointStats::default(),
        }
    }

    #[test]
    fn secrets_move_to_the_current_master_key_and_still_open() {
        let old = MasterKey::random().unwrap();
        let new = MasterKey::random().unwrap();
        let before = KeyRing::new(Some(old.clone()), vec![]);
        let store = SqliteAlertStore::open_in_memory().unwrap();
        store
            .insert_endpoint(&endpoint("whe_a", &before, "whsec_a"))
            .unwrap();
        let mut rotating = endpoint("whe_b", &before, "whsec_b2");
        rotating.previous_secret = Some(before.seal("whe_b", b"whsec_b1").unwrap());
        rotating.previous_until = Some(10);
        store.insert_endpoint(&rotating).unwrap();

        let audit = SqliteKeyStore::open_in_memory().unwrap().audit_log();
        let after = KeyRing::new(Some(new.clone()), vec![old]);
        assert_eq!(rewrap(&store, &after, &audit).unwrap(), 2);
        let entries = audit.read(0, 10).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].action, "webhooks.secrets_rewrapped");
        assert!(
            entries[0].detail.contains(r#""count":2"#),
            "{}",
            entries[0].detail
        );
        let a = store.get_endpoint("whe_a").unwrap().unwrap();
        let b = store.get_endpoint("whe_b").unwrap().unwrap();
        for sealed in [&a.secret, &b.secret, b.previous_secret.as_ref().unwrap()] {
            assert_eq!(sealed.master_key_id, new.id());
        }
        // Only the new master key is needed from now on.
        let only_new = KeyRing::new(Some(new), vec![]);
        let open = |id: &str, s: &store::keys::SealedSecret| only_new.open(id, s).unwrap().to_vec();
        assert_eq!(open("whe_a", &a.secret), b"whsec_a");
        assert_eq!(open("whe_b", &b.secret), b"whsec_b2");
        assert_eq!(
            open("whe_b", b.previous_secret.as_ref().unwrap()),
            b"whsec_b1"
        );
        // A second run has nothing left to do.
        assert_eq!(rewrap(&store, &only_new, &audit).unwrap(), 0);
        assert_eq!(store.get_endpoint("whe_a").unwrap().unwrap().rev, a.rev);
    }

    #[test]
    fn without_a_current_master_key_nothing_is_written() {
        let old = MasterKey::random().unwrap();
        let ring = KeyRing::new(Some(old.clone()), vec![]);
        let store = SqliteAlertStore::open_in_memory().unwrap();
        store
            .insert_endpoint(&endpoint("whe_a", &ring, "whsec_a"))
            .unwrap();
        let none = KeyRing::new(None, vec![old]);
        let audit = SqliteKeyStore::open_in_memory().unwrap().audit_log();
        assert!(rewrap(&store, &none, &audit).is_err());
        assert!(audit.read(0, 10).unwrap().is_empty());
        assert_eq!(store.get_endpoint("whe_a").unwrap().unwrap().rev, 1);
    }
}
