//! Lifecycle and verification against a real (in-memory SQLite) store.

use auth::{
    AuthSettings, KeyEventKind, KeyIndex, KeyRing, KeyService, MasterKey, NewKey, Scope,
    ServiceError, maintenance,
};
use protocol::ErrorCode;
use std::collections::HashMap;
use std::sync::Arc;
use store::audit::{AuditLog, verify_chain};
use store::keys::{Environment, KeyKind, KeyStatus, RateLimit};
use store::keys_sqlite::SqliteKeyStore;

const NOW: i64 = 1_700_000_000_000_000;
const SEC: i64 = 1_000_000;

fn settings() -> AuthSettings {
    AuthSettings {
        environment: Environment::Test,
        default_rate: RateLimit {
            per_sec: 1000,
            burst: 1000,
        },
        principal_rates: HashMap::new(),
        scope_rates: HashMap::new(),
        failure_burst: 3,
    }
}

fn service(ring: KeyRing) -> (KeyService, SqliteKeyStore) {
    let store = SqliteKeyStore::open_in_memory().unwrap();
    let service = KeyService::new(
        Arc::new(store.clone()),
        Arc::new(store.audit_log()),
        ring,
        Environment::Test,
    );
    (service, store)
}

fn bearer(name: &str, scopes: &[&str]) -> NewKey {
    NewKey {
        name: name.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn code(r: Result<auth::KeyPrincipal, auth::Rejection>) -> ErrorCode {
    r.map(|_| ()).unwrap_err().code
}

#[test]
fn create_rotate_cancel_revoke_expire() {
    let (svc, store) = service(KeyRing::default());
    let index = KeyIndex::new(settings());
    let mut events = index.subscribe();
    let issued = svc
        .create(bearer("bot", &["market:read"]), "cli", NOW)
        .unwrap();
    let token = issued.secret.unwrap();
    index.upsert(&issued.record);
    let ok = index
        .authenticate_bearer(token.expose(), Some(Scope::MarketRead), None, NOW)
        .unwrap();
    assert_eq!(ok.view.id, issued.record.id);
    assert_eq!(
        code(index.authenticate_bearer(token.expose(), Some(Scope::KeysAdmin), None, NOW)),
        ErrorCode::InsufficientScope
    );

    // Rotate with a 60 s grace: both work, the old one carries its sunset.
    let (old, next) = svc
        .rotate(&issued.record.id, 60, None, "cli", NOW + SEC)
        .unwrap();
    assert_eq!(old.status, KeyStatus::Grace);
    assert_eq!(old.grace_until, Some(NOW + 61 * SEC));
    assert_eq!(next.record.version, 2);
    assert_eq!(
        next.record.replaces.as_deref(),
        Some(issued.record.id.as_str())
    );
    assert_eq!(next.record.scopes, issued.record.scopes);
    index.upsert(&old);
    index.upsert(&next.record);
    assert_eq!(
        events.try_recv().unwrap().kind,
        KeyEventKind::Expiring { at: NOW + 61 * SEC }
    );
    let new_token = next.secret.unwrap();
    let during = index
        .authenticate_bearer(
            token.expose(),
            Some(Scope::MarketRead),
            None,
            NOW + 30 * SEC,
        )
        .unwrap();
    assert_eq!(during.view.sunset(), Some(NOW + 61 * SEC));
    assert!(
        index
            .authenticate_bearer(
                new_token.expose(),
                Some(Scope::MarketRead),
                None,
                NOW + 30 * SEC
            )
            .is_ok()
    );
    // A second rotation while in grace is refused.
    assert!(matches!(
        svc.rotate(&issued.record.id, 60, None, "cli", NOW + 2 * SEC),
        Err(ServiceError::Conflict(_))
    ));

    // Cancel (named by the successor): the old key is active again, the successor revoked.
    let (restored, cancelled) = svc
        .cancel_rotation(&next.record.id, "cli", NOW + 3 * SEC)
        .unwrap();
    assert_eq!(restored.status, KeyStatus::Active);
    assert_eq!(cancelled.status, KeyStatus::Revoked);
    index.upsert(&restored);
    index.upsert(&cancelled);
    assert_eq!(events.try_recv().unwrap().kind, KeyEventKind::Reinstated);
    assert_eq!(events.try_recv().unwrap().kind, KeyEventKind::Revoked);
    assert_eq!(
        code(index.authenticate_bearer(new_token.expose(), None, None, NOW + 4 * SEC)),
        ErrorCode::KeyRevoked
    );
    assert!(matches!(
        svc.cancel_rotation(&issued.record.id, "cli", NOW + 4 * SEC),
        Err(ServiceError::Conflict(_))
    ));

    // Rotate again, let grace end: the old key is rejected at once, then swept to expired.
    let (_, third) = svc
        .rotate(&issued.record.id, 10, None, "cli", NOW + 5 * SEC)
        .unwrap();
    let seq = maintenance::load(&svc, &index).unwrap();
    let after = NOW + 16 * SEC;
    assert_eq!(
        code(index.authenticate_bearer(token.expose(), None, None, after)),
        ErrorCode::KeyExpired
    );
    maintenance::poll_once(&svc, &index, seq, after).unwrap();
    assert_eq!(
        svc.get(&issued.record.id).unwrap().status,
        KeyStatus::Expired
    );
    let third_token = third.secret.unwrap();
    assert!(
        index
            .authenticate_bearer(third_token.expose(), None, None, after)
            .is_ok()
    );

    // Revoke with a reason.
    let revoked = svc
        .revoke(&third.record.id, "leaked in a CI log", "cli", after)
        .unwrap();
    index.upsert(&revoked);
    assert_eq!(
        code(index.authenticate_bearer(third_token.expose(), None, None, after)),
        ErrorCode::KeyRevoked
    );
    assert!(matches!(
        svc.revoke(&third.record.id, "again", "cli", after),
        Err(ServiceError::Conflict(_))
    ));

    let actions: Vec<String> = store
        .audit_log()
        .read(0, 100)
        .map(|v| v.into_iter().map(|e| e.action).collect())
        .unwrap();
    assert_eq!(
        actions,
        [
            "key.created",
            "key.rotated",
            "key.rotation_cancelled",
            "key.rotated",
            "key.expired",
            "key.revoked"
        ]
    );
    assert_eq!(verify_chain(&store.audit_log()).unwrap(), Ok(6));
}

#[test]
fn every_rejection_code() {
    let (svc, _) = service(KeyRing::default());
    let index = KeyIndex::new(settings());
    let make = |name: &str, expires: Option<u64>| {
        let mut req = bearer(name, &["market:read"]);
        req.expires_in_secs = expires;
        let issued = svc.create(req, "cli", NOW).unwrap();
        index.upsert(&issued.record);
        issued
    };
    let good = make("good", None);
    let expiring = make("short", Some(5));
    let good_token = good.secret.as_ref().unwrap().expose().to_string();
    let mut typo = good_token.clone().into_bytes();
    typo[20] = if typo[20] == b'A' { b'B' } else { b'A' };
    let typo = String::from_utf8(typo).unwrap();
    let live = auth::token::generate(Environment::Live).unwrap();
    let stranger = auth::token::generate(Environment::Test).unwrap();
    let cases = [
        ("not-a-key", ErrorCode::MalformedKey),
        (typo.as_str(), ErrorCode::MalformedKey),
        (live.expose(), ErrorCode::WrongEnvironment),
        (stranger.expose(), ErrorCode::UnknownKey),
        (
            expiring.secret.as_ref().unwrap().expose(),
            ErrorCode::KeyExpired,
        ),
    ];
    for (token, want) in cases {
        assert_eq!(
            code(index.authenticate_bearer(token, Some(Scope::MarketRead), None, NOW + 10 * SEC)),
            want
        );
    }
    let revoked = svc.revoke(&good.record.id, "test", "cli", NOW).unwrap();
    index.upsert(&revoked);
    assert_eq!(
        code(index.authenticate_bearer(&good_token, None, None, NOW)),
        ErrorCode::KeyRevoked
    );
    // Messages never contain the token.
    let rejection = index
        .authenticate_bearer(&good_token, None, None, NOW)
        .unwrap_err();
    assert!(!rejection.message.contains(&good_token[8..]));
    // Failures are counted: bursts become audit events.
    let (deltas, bursts) = index.drain_usage(NOW);
    assert!(deltas.iter().any(|d| d.auth_failures >= 2));
    assert!(bursts.iter().any(|b| b.key_id.is_none()), "{bursts:?}");
}

#[test]
fn rate_limit_per_key_with_retry_after() {
    let (svc, _) = service(KeyRing::default());
    let index = KeyIndex::new(settings());
    let mut req = bearer("slow", &["market:read"]);
    req.rate_limit = Some(RateLimit {
        per_sec: 2,
        burst: 3,
    });
    let issued = svc.create(req, "cli", NOW).unwrap();
    index.upsert(&issued.record);
    let token = issued.secret.unwrap();
    let results: Vec<_> = (0..5)
        .map(|_| index.authenticate_bearer(token.expose(), Some(Scope::MarketRead), None, NOW))
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
    let limited = results.into_iter().find_map(Result::err).unwrap();
    assert_eq!(limited.code, ErrorCode::RateLimited);
    let wait = limited.retry_after.unwrap();
    assert!(wait.as_millis() > 0 && wait.as_millis() <= 500, "{wait:?}");
}

#[test]
fn hmac_secrets_are_sealed_and_rewrapped_and_ed25519_keeps_only_the_public_key() {
    let old = MasterKey::random().unwrap();
    let (svc, store) = service(KeyRing::new(Some(old.clone()), vec![]));
    let issued = svc
        .create(
            NewKey {
                kind: Some(KeyKind::Hmac),
                ..bearer("signer", &["market:read", "alerts:write"])
            },
            "cli",
            NOW,
        )
        .unwrap();
    let secret = issued.secret.unwrap();
    let sealed = issued.record.sealed.clone().unwrap();
    assert_eq!(
        &*svc.ring().open(&issued.record.id, &sealed).unwrap(),
        secret.expose().as_bytes()
    );
    // An hmac secret is not a bearer token: the key must sign.
    let index = KeyIndex::new(settings());
    index.upsert(&issued.record);
    assert_eq!(
        code(index.authenticate_bearer(secret.expose(), None, None, NOW)),
        ErrorCode::SignatureMissing
    );
    // Master key rotation: new current, old previous, rewrap, then the old key can go.
    let new = MasterKey::random().unwrap();
    let rotated = KeyService::new(
        Arc::new(store.clone()),
        Arc::new(store.audit_log()),
        KeyRing::new(Some(new.clone()), vec![old]),
        Environment::Test,
    );
    assert_eq!(rotated.rewrap("cli", NOW).unwrap(), 1);
    assert_eq!(rotated.rewrap("cli", NOW).unwrap(), 0);
    let stored = rotated.get(&issued.record.id).unwrap();
    let only_new = KeyRing::new(Some(new), vec![]);
    assert_eq!(
        &*only_new
            .open(&stored.id, stored.sealed.as_ref().unwrap())
            .unwrap(),
        secret.expose().as_bytes()
    );
    // Without a master key, hmac keys cannot be created.
    let (plain, _) = service(KeyRing::default());
    let err = plain
        .create(
            NewKey {
                kind: Some(KeyKind::Hmac),
                ..bearer("x", &["market:read"])
            },
            "cli",
            NOW,
        )
        .unwrap_err();
    assert!(err.to_string().contains("TICKGATE_MASTER_KEY"), "{err}");
    let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----";
    let ed = plain
        .create(
            NewKey {
                kind: Some(KeyKind::Ed25519),
                public_key_pem: Some(pem.into()),
                ..bearer("ed", &["market:read"])
            },
            "cli",
            NOW,
        )
        .unwrap();
    assert!(ed.secret.is_none() && ed.record.token_hash.is_none());
    assert_eq!(ed.record.public_key.as_ref().unwrap().len(), 32);
}

#[test]
fn bad_input_is_rejected_with_a_clear_message() {
    let (svc, _) = service(KeyRing::default());
    let cases: Vec<(NewKey, &str)> = vec![
        (bearer("", &["market:read"]), "name"),
        (bearer("x", &[]), "scope"),
        (bearer("x", &["market:write"]), "unknown scope"),
        (
            NewKey {
                principal: Some("a b".into()),
                ..bearer("x", &["market:read"])
            },
            "principal",
        ),
        (
            NewKey {
                metadata: Some(serde_json::json!("text")),
                ..bearer("x", &["market:read"])
            },
            "metadata",
        ),
        (
            NewKey {
                kind: Some(KeyKind::Ed25519),
                ..bearer("x", &["market:read"])
            },
            "public key",
        ),
        (
            NewKey {
                expires_in_secs: Some(0),
                ..bearer("x", &["market:read"])
            },
            "expires_in",
        ),
    ];
    for (req, needle) in cases {
        let err = svc.create(req, "cli", NOW).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadRequest, "{err}");
        assert!(
            err.to_string().contains(needle),
            "{err} should mention {needle}"
        );
    }
}

#[test]
fn grace_never_outlives_the_key_and_scope_changes_are_audited() {
    let (svc, store) = service(KeyRing::default());
    let mut req = bearer("short", &["market:read"]);
    req.expires_in_secs = Some(10);
    let issued = svc.create(req, "cli", NOW).unwrap();
    let (old, next) = svc
        .rotate(&issued.record.id, 3600, None, "cli", NOW)
        .unwrap();
    assert_eq!(
        old.grace_until,
        Some(NOW + 10 * SEC),
        "capped at the key's own expiry"
    );
    assert_eq!(
        next.record.expires_at,
        Some(NOW + 10 * SEC),
        "same lifetime from now"
    );
    // Immediate rotation: the old key is retired at once.
    let other = svc
        .create(bearer("other", &["market:read"]), "cli", NOW)
        .unwrap();
    let (retired, _) = svc.rotate(&other.record.id, 0, None, "cli", NOW).unwrap();
    assert_eq!(retired.status, KeyStatus::Expired);
    // Scope changes are audited with from/to; a no-op update writes nothing.
    let update = auth::KeyUpdate {
        scopes: Some(vec!["market:read".into(), "history:read".into()]),
        ..Default::default()
    };
    let updated = svc
        .update(&next.record.id, update.clone(), "cli", NOW)
        .unwrap();
    assert_eq!(updated.scopes, ["market:read", "history:read"]);
    let before = store.audit_log().head().unwrap().unwrap().0;
    svc.update(&next.record.id, update, "cli", NOW).unwrap();
    assert_eq!(store.audit_log().head().unwrap().unwrap().0, before);
    let last = store.audit_log().read(before - 1, 10).unwrap();
    assert_eq!(last[0].action, "key.scopes_changed");
    assert!(last[0].detail.contains("history:read"));
    // Ed25519 keys rotate to a new public key, which the rotation must name.
    let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----";
    let ed = svc
        .create(
            NewKey {
                kind: Some(KeyKind::Ed25519),
                public_key_pem: Some(pem.into()),
                ..bearer("ed", &["market:read"])
            },
            "cli",
            NOW,
        )
        .unwrap();
    let err = svc.rotate(&ed.record.id, 60, None, "cli", NOW).unwrap_err();
    assert!(err.to_string().contains("public key"), "{err}");
    let (_, rotated) = svc
        .rotate(&ed.record.id, 60, Some(pem), "cli", NOW)
        .unwrap();
    assert!(rotated.secret.is_none() && rotated.record.public_key.is_some());
}

/// The secret inside an `otpauth://` URI (base32, as an authenticator app reads it).
fn otp_secret(uri: &str) -> Vec<u8> {
    auth::totp::secret_from_uri(uri).expect("a secret in the URI")
}

#[test]
fn totp_codes_are_current_single_use_and_refusals_are_audited() {
    use auth::totp::{TotpAlgorithm, TotpCheck, code_at};
    let (svc, store) = service(KeyRing::new(Some(MasterKey::random().unwrap()), vec![]));
    let admin = svc
        .create(bearer("ops", &["keys:admin"]), "cli", NOW)
        .unwrap()
        .record;
    let reader = svc
        .create(bearer("bot", &["market:read"]), "cli", NOW)
        .unwrap()
        .record;
    // Only admin principals enroll.
    assert!(matches!(
        svc.totp_enroll(&reader.id, TotpAlgorithm::Sha1, false, "cli", NOW),
        Err(ServiceError::Invalid(_))
    ));
    // Not enrolled: nothing to check.
    assert_eq!(
        svc.totp_check(&admin.principal, &admin.id, None, "key.revoke", "t", NOW)
            .unwrap(),
        TotpCheck::NotEnrolled
    );
    let (enrollment, uri) = svc
        .totp_enroll(&admin.id, TotpAlgorithm::Sha1, false, "cli", NOW)
        .unwrap();
    assert!(uri.expose().starts_with("otpauth://totp/tickgate:"));
    // Stored sealed: the secret is not in the record.
    let secret = otp_secret(uri.expose());
    assert_eq!(secret.len(), 20);
    assert!(
        !enrollment
            .sealed
            .ciphertext
            .windows(secret.len())
            .any(|w| w == secret)
    );
    // Enrolling again needs `replace`.
    assert!(matches!(
        svc.totp_enroll(&admin.id, TotpAlgorithm::Sha1, false, "cli", NOW),
        Err(ServiceError::Conflict(_))
    ));

    let refused = |r: Result<TotpCheck, ServiceError>| match r {
        Err(ServiceError::Refused(code, _)) => code,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let check = |code: Option<&str>, at: i64| {
        svc.totp_check(&admin.principal, &admin.id, code, "key.revoke", "t", at)
    };
    // The clock is a parameter: codes at fixed times.
    let t = NOW + 3600 * SEC;
    let unix = t / SEC;
    let current = code_at(TotpAlgorithm::Sha1, &secret, unix, 30, 6);
    assert_eq!(refused(check(None, t)), ErrorCode::TotpRequired);
    let wrong = if current == "000000" {
        "000001"
    } else {
        "000000"
    };
    assert_eq!(refused(check(Some(wrong), t)), ErrorCode::TotpInvalid);
    assert_eq!(refused(check(Some("12345"), t)), ErrorCode::TotpInvalid);
    assert_eq!(check(Some(&current), t).unwrap(), TotpCheck::Passed);
    // Each code once.
    assert_eq!(refused(check(Some(&current), t)), ErrorCode::TotpInvalid);
    // One step of skew either way: the previous step's code is older than the last used one
    // now, so it is refused; the next step's code is accepted early.
    let previous = code_at(TotpAlgorithm::Sha1, &secret, unix - 30, 30, 6);
    assert_eq!(refused(check(Some(&previous), t)), ErrorCode::TotpInvalid);
    let next = code_at(TotpAlgorithm::Sha1, &secret, unix + 30, 30, 6);
    assert_eq!(check(Some(&next), t).unwrap(), TotpCheck::Passed);
    // Two steps away: refused.
    let far = code_at(TotpAlgorithm::Sha1, &secret, unix + 120, 30, 6);
    assert_eq!(refused(check(Some(&far), t)), ErrorCode::TotpInvalid);

    let actions: Vec<(String, String)> = store
        .audit_log()
        .read(0, 1000)
        .unwrap()
        .into_iter()
        .map(|e| {
            let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap();
            (e.action, detail["code"].as_str().unwrap_or("").to_string())
        })
        .collect();
    assert!(actions.contains(&("totp.enrolled".into(), String::new())));
    assert!(actions.contains(&("admin.totp_refused".into(), "totp_required".into())));
    assert!(actions.contains(&("admin.totp_refused".into(), "totp_invalid".into())));
    assert_eq!(
        actions
            .iter()
            .filter(|(a, _)| a == "admin.totp_used")
            .count(),
        2
    );
    assert!(verify_chain(&store.audit_log()).unwrap().is_ok());
}

#[test]
fn totp_secrets_are_rewrapped_with_the_keys() {
    use auth::totp::{TotpAlgorithm, TotpCheck, code_at};
    let old = MasterKey::random().unwrap();
    let (svc, store) = service(KeyRing::new(Some(old.clone()), vec![]));
    let admin = svc
        .create(bearer("ops", &["keys:admin"]), "cli", NOW)
        .unwrap()
        .record;
    let (_, uri) = svc
        .totp_enroll(&admin.id, TotpAlgorithm::Sha256, false, "cli", NOW)
        .unwrap();
    let secret = otp_secret(uri.expose());
    let new = MasterKey::random().unwrap();
    let rotated = KeyService::new(
        Arc::new(store.clone()),
        Arc::new(store.audit_log()),
        KeyRing::new(Some(new.clone()), vec![old]),
        Environment::Test,
    );
    rotated.rewrap("cli", NOW).unwrap();
    // Only the new master key now: the enrollment still opens.
    let only_new = KeyService::new(
        Arc::new(store.clone()),
        Arc::new(store.audit_log()),
        KeyRing::new(Some(new), vec![]),
        Environment::Test,
    );
    let code = code_at(TotpAlgorithm::Sha256, &secret, NOW / SEC, 30, 6);
    assert_eq!(
        only_new
            .totp_check(&admin.principal, &admin.id, Some(&code), "op", "t", NOW)
            .unwrap(),
        TotpCheck::Passed
    );
}

#[test]
fn suspend_refuses_the_key_and_resume_restores_it() {
    let (svc, _store) = service(KeyRing::default());
    let index = KeyIndex::new(settings());
    let mut events = index.subscribe();
    let issued = svc
        .create(bearer("bot", &["market:read"]), "cli", NOW)
        .unwrap();
    let token = issued.secret.unwrap();
    let id = issued.record.id.clone();
    index.upsert(&issued.record);
    let suspended = svc
        .suspend(&id, "anomaly: replay burst", "anomaly", NOW)
        .unwrap();
    assert_eq!(suspended.status, KeyStatus::Suspended);
    index.upsert(&suspended);
    assert_eq!(events.try_recv().unwrap().kind, KeyEventKind::Suspended);
    assert_eq!(
        code(index.authenticate_bearer(token.expose(), Some(Scope::MarketRead), None, NOW)),
        ErrorCode::KeySuspended
    );
    assert_eq!(ErrorCode::KeySuspended.http_status(), 403);
    // Suspending twice, or rotating a suspended key: conflicts.
    assert!(matches!(
        svc.suspend(&id, "again", "cli", NOW),
        Err(ServiceError::Conflict(_))
    ));
    assert!(matches!(
        svc.rotate(&id, 60, None, "cli", NOW),
        Err(ServiceError::Conflict(_))
    ));
    let resumed = svc.resume(&id, "cli", NOW + SEC).unwrap();
    assert_eq!(resumed.status, KeyStatus::Active);
    index.upsert(&resumed);
    assert!(
        index
            .authenticate_bearer(token.expose(), Some(Scope::MarketRead), None, NOW + SEC)
            .is_ok()
    );
    assert!(matches!(
        svc.resume(&id, "cli", NOW),
        Err(ServiceError::Conflict(_))
    ));
    // A key in grace goes back to grace.
    let (old, _next) = svc.rotate(&id, 600, None, "cli", NOW + 2 * SEC).unwrap();
    let s = svc.suspend(&old.id, "x", "cli", NOW + 3 * SEC).unwrap();
    assert_eq!(
        svc.resume(&s.id, "cli", NOW + 4 * SEC).unwrap().status,
        KeyStatus::Grace
    );
}
