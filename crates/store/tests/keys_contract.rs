//! Contract tests for the `KeyStore` and `AuditLog` seams. Every backend runs the same suite,
//! [`run_all`]: SQLite (in memory and on disk) always, PostgreSQL when
//! TICKGATE_TEST_POSTGRES_URL is set (each run in a fresh schema, dropped afterwards).

#[cfg(feature = "postgres")]
mod support;

use store::StoreError;
use store::audit::{AuditLog, NewAuditEvent, verify_chain};
use store::keys::{
    Environment, Granularity, KeyFilter, KeyKind, KeyRecord, KeyStatus, KeyStore, KeyWrite,
    RateLimit, SealedSecret, UsageDelta,
};
use store::keys_sqlite::SqliteKeyStore;

const T0: i64 = 1_700_000_000_000_000;

fn record(id: &str, principal: &str, hash: u8) -> KeyRecord {
    KeyRecord {
        id: id.into(),
        principal: principal.into(),
        kind: KeyKind::Bearer,
        environment: Environment::Test,
        name: format!("{id} name"),
        scopes: vec!["market:read".into(), "history:read".into()],
        status: KeyStatus::Active,
        grace_until: None,
        version: 1,
        replaces: None,
        replaced_by: None,
        metadata: serde_json::json!({"team": "quant", "n": 1}),
        created_at: T0 + i64::from(hash),
        created_by: "test".into(),
        expires_at: Some(T0 + 86_400_000_000),
        revoked_at: None,
        revoked_reason: None,
        token_hash: Some([hash; 32]),
        public_key: None,
        sealed: None,
        rate_limit: Some(RateLimit {
            per_sec: 5,
            burst: 10,
        }),
        max_age_secs: Some(90 * 86_400),
        rotated_at: Some(T0 + 5),
        last_used_at: None,
        last_used_addr: None,
        rev: 0,
    }
}

fn event(action: &str, key: &str) -> NewAuditEvent {
    NewAuditEvent {
        at: T0,
        actor: "test".into(),
        action: action.into(),
        key_id: Some(key.into()),
        detail: serde_json::json!({"why": "contract"}),
    }
}

fn round_trips_every_field(keys: &dyn KeyStore) {
    let mut hmac = record("key_hmac", "acme", 2);
    hmac.kind = KeyKind::Hmac;
    hmac.sealed = Some(SealedSecret {
        master_key_id: "mk1".into(),
        wrapped_dek: vec![1, 2, 3],
        ciphertext: vec![4, 5, 6, 7],
    });
    let mut ed = record("key_ed", "acme", 3);
    ed.kind = KeyKind::Ed25519;
    ed.token_hash = None;
    ed.public_key = Some(vec![9; 32]);
    ed.expires_at = None;
    ed.rate_limit = None;
    ed.max_age_secs = None;
    let bearer = record("key_bearer", "other", 1);
    keys.apply(
        &[
            KeyWrite::Insert(bearer.clone()),
            KeyWrite::Insert(hmac.clone()),
            KeyWrite::Insert(ed.clone()),
        ],
        &[event("key.created", "key_bearer")],
    )
    .unwrap();
    for mut expected in [bearer, hmac, ed] {
        expected.rev = 1;
        assert_eq!(keys.get(&expected.id).unwrap(), Some(expected));
    }
    assert_eq!(keys.get("key_missing").unwrap(), None);
}

fn lists_with_filters(keys: &dyn KeyStore) {
    let all = keys.list(&KeyFilter::default()).unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].created_at >= w[1].created_at));
    let acme = keys
        .list(&KeyFilter {
            principal: Some("acme".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(acme.len(), 2);
    let by_hash = keys
        .list(&KeyFilter {
            token_hash: Some([1; 32]),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_hash.len(), 1);
    assert_eq!(by_hash[0].id, "key_bearer");
    let hmac = keys
        .list(&KeyFilter {
            kind: Some(KeyKind::Hmac),
            status: Some(KeyStatus::Active),
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(hmac.len(), 1);
}

fn updates_are_optimistic_and_atomic(keys: &dyn KeyStore, audit: &dyn AuditLog) {
    let (seq0, _) = keys.changes_since(0).unwrap();
    let mut current = keys.get("key_bearer").unwrap().unwrap();
    let stale_rev = current.rev;
    current.status = KeyStatus::Revoked;
    current.revoked_reason = Some("leaked".into());
    keys.apply(
        &[KeyWrite::Update {
            record: current.clone(),
            expected_rev: stale_rev,
        }],
        &[event("key.revoked", "key_bearer")],
    )
    .unwrap();
    let stored = keys.get("key_bearer").unwrap().unwrap();
    assert_eq!(stored.status, KeyStatus::Revoked);
    assert_eq!(stored.rev, stale_rev + 1);
    // A second writer that read the old revision loses.
    let entries_before = audit.head().unwrap().map_or(0, |(seq, _)| seq);
    let err = keys
        .apply(
            &[KeyWrite::Update {
                record: current.clone(),
                expected_rev: stale_rev,
            }],
            &[event("key.revoked", "key_bearer")],
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    // Nothing of a failed batch is stored: not the first write, not the audit entry.
    let mut fresh = record("key_new", "acme", 4);
    fresh.name = "never stored".into();
    let err = keys
        .apply(
            &[
                KeyWrite::Insert(fresh),
                KeyWrite::Insert(record("key_bearer", "x", 5)),
            ],
            &[event("key.created", "key_new")],
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(keys.get("key_new").unwrap(), None);
    assert_eq!(
        audit.head().unwrap().map_or(0, |(seq, _)| seq),
        entries_before
    );
    // Duplicate token hashes are refused.
    let err = keys
        .apply(&[KeyWrite::Insert(record("key_dup", "x", 1))], &[])
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let missing = keys
        .apply(
            &[KeyWrite::Update {
                record: record("key_nobody", "x", 6),
                expected_rev: 1,
            }],
            &[],
        )
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing:?}");
    // The change feed names exactly what changed.
    let (seq1, changed) = keys.changes_since(seq0).unwrap();
    assert!(seq1 > seq0);
    assert_eq!(
        changed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["key_bearer"]
    );
    assert!(keys.changes_since(seq1).unwrap().1.is_empty());
    assert_eq!(keys.changes_since(0).unwrap().1.len(), 3);
}

fn usage_is_bucketed_and_not_a_change(keys: &dyn KeyStore) {
    let (seq, _) = keys.changes_since(0).unwrap();
    let rev = keys.get("key_hmac").unwrap().unwrap().rev;
    let minute = 60_000_000;
    let delta = |at: i64, requests: u64, addr: &str| UsageDelta {
        key_id: "key_hmac".into(),
        at,
        requests,
        messages: 2,
        bytes: 100,
        auth_failures: 1,
        last_used: Some((at, addr.into())),
    };
    keys.add_usage(&[delta(T0, 3, "10.0.0.1"), delta(T0 + 1, 4, "10.0.0.2")])
        .unwrap();
    keys.add_usage(&[
        delta(T0 + minute, 5, "10.0.0.3"),
        delta(T0 - minute, 1, "old"),
    ])
    .unwrap();
    let minutes = keys
        .usage("key_hmac", Granularity::Minute, T0 - 10 * minute)
        .unwrap();
    assert_eq!(
        minutes.iter().map(|b| b.requests).collect::<Vec<_>>(),
        [1, 7, 5]
    );
    assert_eq!(minutes[1].messages, 4);
    assert_eq!(minutes[1].bytes, 200);
    assert_eq!(minutes[1].auth_failures, 2);
    let hours = keys.usage("key_hmac", Granularity::Hour, 0).unwrap();
    assert_eq!(hours.iter().map(|b| b.requests).sum::<u64>(), 13);
    let since = store::keys::bucket_start(T0 + minute, Granularity::Minute);
    let after = keys.usage("key_hmac", Granularity::Minute, since).unwrap();
    assert_eq!(after.len(), 1);
    let stored = keys.get("key_hmac").unwrap().unwrap();
    // last used only moves forward.
    assert_eq!(stored.last_used_at, Some(T0 + minute));
    assert_eq!(stored.last_used_addr.as_deref(), Some("10.0.0.3"));
    assert_eq!(stored.rev, rev);
    assert!(keys.changes_since(seq).unwrap().1.is_empty());
    // An update does not roll last-used back.
    let mut update = stored.clone();
    update.last_used_at = None;
    update.name = "renamed".into();
    keys.apply(
        &[KeyWrite::Update {
            record: update,
            expected_rev: stored.rev,
        }],
        &[],
    )
    .unwrap();
    assert_eq!(
        keys.get("key_hmac").unwrap().unwrap().last_used_at,
        Some(T0 + minute)
    );
}

fn audit_chain_verifies(audit: &dyn AuditLog) {
    let appended = audit
        .append(&[
            event("key.rewrapped", "key_hmac"),
            event("admin.auth_failed", "x"),
        ])
        .unwrap();
    assert_eq!(appended.len(), 2);
    assert_eq!(appended[1].prev_hash, appended[0].hash);
    let all = audit.read(0, 1000).unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(audit.read(2, 1).unwrap()[0].seq, 3);
    assert_eq!(verify_chain(audit).unwrap(), Ok(4));
    assert_eq!(audit.head().unwrap().unwrap().1, all[3].hash);
}

fn security_state(keys: &dyn KeyStore) {
    use store::security::{AddressDelta, IpBlock, TotpEnrollment};
    assert_eq!(keys.totp_get("ops").unwrap(), None);
    let enrollment = TotpEnrollment {
        principal: "ops".into(),
        sealed: SealedSecret {
            master_key_id: "mk_1".into(),
            wrapped_dek: vec![1; 40],
            ciphertext: vec![2; 36],
        },
        algorithm: "SHA1".into(),
        digits: 6,
        period: 30,
        last_step: 0,
        created_at: T0,
        created_by: "cli".into(),
    };
    keys.totp_put(&enrollment, &[]).unwrap();
    assert_eq!(keys.totp_get("ops").unwrap().as_ref(), Some(&enrollment));
    // Each step once, and never an older one.
    assert!(keys.totp_use_step("ops", 100, &[]).unwrap());
    assert!(!keys.totp_use_step("ops", 100, &[]).unwrap());
    assert!(!keys.totp_use_step("ops", 99, &[]).unwrap());
    assert!(keys.totp_use_step("ops", 101, &[]).unwrap());
    assert!(!keys.totp_use_step("nobody", 5, &[]).unwrap());
    let resealed = SealedSecret {
        master_key_id: "mk_2".into(),
        wrapped_dek: vec![3; 40],
        ciphertext: vec![2; 36],
    };
    keys.totp_reseal("ops", &resealed).unwrap();
    let stored = keys.totp_get("ops").unwrap().unwrap();
    assert_eq!((stored.sealed, stored.last_step), (resealed, 101));
    assert_eq!(keys.totp_all().unwrap().len(), 1);

    let block = |ip: &str, until: i64| IpBlock {
        ip: ip.into(),
        until,
        reason: "anomaly".into(),
        created_at: T0,
    };
    keys.ip_block(&block("203.0.113.7", T0 + 10), &[]).unwrap();
    keys.ip_block(&block("2001:db8::1", T0 + 20), &[]).unwrap();
    // Extending never shortens.
    keys.ip_block(&block("203.0.113.7", T0 + 5), &[]).unwrap();
    let active = keys.ip_blocks(T0).unwrap();
    assert_eq!(active.len(), 2);
    assert_eq!(
        active.iter().find(|b| b.ip == "203.0.113.7").unwrap().until,
        T0 + 10
    );
    assert_eq!(keys.ip_blocks(T0 + 15).unwrap().len(), 1);
    assert!(keys.ip_unblock("2001:db8::1", &[]).unwrap());
    assert!(!keys.ip_unblock("2001:db8::1", &[]).unwrap());
    assert!(keys.ip_blocks(T0).unwrap().is_empty());

    let seen = |addr: &str, requests: u64, at: i64| AddressDelta {
        key_id: "key_a".into(),
        addr: addr.into(),
        requests,
        at,
    };
    keys.add_addresses(&[seen("198.51.100.1", 5, T0), seen("198.51.100.2", 1, T0)])
        .unwrap();
    keys.add_addresses(&[seen("198.51.100.1", 7, T0 + 60)])
        .unwrap();
    let addresses = keys.key_addresses("key_a", T0).unwrap();
    assert_eq!(addresses.len(), 2);
    assert_eq!(
        (addresses[0].addr.as_str(), addresses[0].requests),
        ("198.51.100.1", 12)
    );
    assert_eq!(
        (addresses[0].first_seen, addresses[0].last_seen),
        (T0, T0 + 60)
    );
    assert_eq!(keys.key_addresses("key_a", T0 + 30).unwrap().len(), 1);
    assert!(keys.key_addresses("key_b", 0).unwrap().is_empty());
}

/// The whole suite, in order, on an empty store.
pub fn run_all(keys: &dyn KeyStore, audit: &dyn AuditLog) {
    round_trips_every_field(keys);
    lists_with_filters(keys);
    updates_are_optimistic_and_atomic(keys, audit);
    usage_is_bucketed_and_not_a_change(keys);
    audit_chain_verifies(audit);
    security_state(keys);
}

#[test]
fn sqlite_in_memory_passes_the_contract() {
    let store = SqliteKeyStore::open_in_memory().unwrap();
    run_all(&store, &store.audit_log());
}

#[test]
fn sqlite_file_passes_the_contract_and_persists() {
    let dir = std::env::temp_dir().join(format!("tickgate-keys-contract-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let store = SqliteKeyStore::open_dir(&dir).unwrap();
        run_all(&store, &store.audit_log());
    }
    let reopened = SqliteKeyStore::open_dir(&dir).unwrap();
    assert_eq!(reopened.list(&KeyFilter::default()).unwrap().len(), 3);
    assert_eq!(verify_chain(&reopened.audit_log()).unwrap(), Ok(4));
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_passes_the_contract_and_persists() {
    use store::keys_postgres::PgKeyStore;
    let Some(schema) = support::pg::Schema::new("keys_contract") else {
        return;
    };
    {
        let store = PgKeyStore::open(&schema.url, &schema.name).unwrap();
        run_all(&store, &store.audit_log());
    }
    // Another node (a new pool) opening the same schema migrates nothing twice and sees it all.
    let reopened = PgKeyStore::open(&schema.url, &schema.name).unwrap();
    assert_eq!(reopened.list(&KeyFilter::default()).unwrap().len(), 3);
    assert_eq!(verify_chain(&reopened.audit_log()).unwrap(), Ok(4));
}
