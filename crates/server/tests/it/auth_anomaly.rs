//! Security II over real connections: suspension (reversible, closes sessions), TOTP on
//! critical admin operations, the anomaly detectors and their automatic responses, and the
//! rule that failures an attacker can cause without a key's secret never act on that key.

use crate::auth_signed::{sealing_config, sealing_service};
use crate::auth_support::*;
use crate::support::*;
use protocol::ServerMessage;
use std::time::Duration;

const TICKER: &str = "/v1/ticker?venue=sim&symbol=BTC-USDT";

fn current_code(secret: &[u8]) -> String {
    let now = model::Timestamp::now().0.div_euclid(1_000_000);
    auth::totp::code_at(auth::totp::TotpAlgorithm::Sha1, secret, now, 30, 6)
}

async fn audit_actions(http: &Http, admin: &Signer) -> Vec<(String, serde_json::Value)> {
    let (status, body) =
        Http::json(http.get("/admin/v1/audit?limit=10000", Some(admin)).await).await;
    assert_eq!(status, 200, "{body}");
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let detail: serde_json::Value =
                serde_json::from_str(e["detail"].as_str().unwrap_or("null")).unwrap_or_default();
            (e["action"].as_str().unwrap().to_string(), detail)
        })
        .collect()
}

#[tokio::test]
async fn suspension_closes_live_sessions_and_resume_restores_the_key() {
    let config = auth_config("suspend");
    let admin = offline_signer(&config.server.data_dir, "admin", &["keys:admin"]);
    let gateway = start(config).await;
    let http = Http::new(&gateway);
    let (id, token) = http
        .create_key(
            &admin,
            serde_json::json!({"name": "bot", "scopes": ["market:read"]}),
        )
        .await;
    let mut ws = connect_with(&gateway, &token).await;
    assert!(matches!(
        recv(&mut ws).await,
        ServerMessage::Authenticated { .. }
    ));

    let (status, body) = Http::json(
        http.post(
            &format!("/admin/v1/keys/{id}/suspend"),
            Some(&admin),
            serde_json::json!({"reason": "investigating"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("suspended")),
        "{body}"
    );
    let (error, close, took) = until_error_and_close(&mut ws, Duration::from_secs(2)).await;
    assert_eq!((error.as_str(), close), ("key_suspended", 4002));
    assert!(took < Duration::from_secs(1), "{took:?}");
    let (status, body) = Http::json(http.get(TICKER, Some(&token)).await).await;
    assert_eq!((status, code(&body)), (403, "key_suspended"));
    // Suspending again: conflict; a bad body: bad_request.
    let (status, body) = Http::json(
        http.post(
            &format!("/admin/v1/keys/{id}/suspend"),
            Some(&admin),
            serde_json::json!({"reason": "again"}),
        )
        .await,
    )
    .await;
    assert_eq!((status, code(&body)), (409, "conflict"));
    let (status, body) = Http::json(
        http.post(
            &format!("/admin/v1/keys/{id}/suspend"),
            Some(&admin),
            serde_json::json!({"why": "x"}),
        )
        .await,
    )
    .await;
    assert_eq!((status, code(&body)), (400, "bad_request"));

    let (status, body) = Http::json(
        http.post(
            &format!("/admin/v1/keys/{id}/resume"),
            Some(&admin),
            serde_json::json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("active")),
        "{body}"
    );
    assert_eq!(http.get(TICKER, Some(&token)).await.status(), 200);
    let actions = audit_actions(&http, &admin).await;
    assert!(actions.iter().any(|(a, _)| a == "key.suspended"));
    assert!(actions.iter().any(|(a, _)| a == "key.resumed"));
    gateway.stop().await.unwrap();
}

async fn revoke_with(
    http: &Http,
    admin: &Signer,
    victim: &str,
    code: Option<WithTotp<'_>>,
) -> (u16, serde_json::Value) {
    let path = format!("/admin/v1/keys/{victim}/revoke");
    let body = serde_json::json!({"reason": "test"});
    let response = match &code {
        Some(c) => http.post(&path, Some(c), body).await,
        None => http.post(&path, Some(admin), body).await,
    };
    Http::json(response).await
}

#[tokio::test]
async fn totp_gates_critical_operations_once_enrolled() {
    let config = sealing_config("totp");
    let dir = config.server.data_dir.clone();
    let service = sealing_service(&dir);
    let admin = offline_principal_signer(&service, "ops", &["keys:admin"], None);
    drop(service);
    let gateway = start(config).await;
    let http = Http::new(&gateway);
    let (victim, _) = http
        .create_key(
            &admin,
            serde_json::json!({"name": "bot", "scopes": ["market:read"]}),
        )
        .await;
    let (other, _) = http
        .create_key(
            &admin,
            serde_json::json!({"name": "bot2", "scopes": ["market:read"]}),
        )
        .await;

    // Not enrolled yet: critical operations need no code.
    let (status, body) = Http::json(
        http.send(
            reqwest::Method::PATCH,
            &format!("/admin/v1/keys/{other}"),
            Some(&admin),
            serde_json::json!({"scopes": ["market:read", "history:read"]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Enroll: the URI is shown once, with the secret.
    let (status, enrolled) = Http::json(
        http.post(
            &format!("/admin/v1/keys/{}/totp", admin.id),
            Some(&admin),
            serde_json::json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 201, "{enrolled}");
    let uri = enrolled["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/tickgate:"), "{uri}");
    let secret = auth::totp::secret_from_uri(uri).expect("a secret in the URI");
    // Enrolling again without replace: conflict (and it would need a code).
    let (status, body) = Http::json(
        http.post(
            &format!("/admin/v1/keys/{}/totp", admin.id),
            Some(&WithTotp {
                signer: &admin,
                code: current_code(&secret),
                covered: true,
            }),
            serde_json::json!({}),
        )
        .await,
    )
    .await;
    assert_eq!((status, code(&body)), (409, "conflict"), "{body}");
    // A bad algorithm: bad_request.
    let (status, body) = Http::json(
        http.post(
            &format!("/admin/v1/keys/{}/totp", admin.id),
            Some(&admin),
            serde_json::json!({"algorithm": "md5", "replace": true}),
        )
        .await,
    )
    .await;
    assert_eq!((status, code(&body)), (400, "bad_request"));

    // No code: totp_required.
    let (status, body) = revoke_with(&http, &admin, &victim, None).await;
    assert_eq!((status, code(&body)), (403, "totp_required"), "{body}");
    // A code the signature does not cover counts as none.
    let (status, body) = revoke_with(
        &http,
        &admin,
        &victim,
        Some(WithTotp {
            signer: &admin,
            code: current_code(&secret),
            covered: false,
        }),
    )
    .await;
    assert_eq!((status, code(&body)), (403, "totp_required"), "{body}");
    // A wrong code: totp_invalid.
    let right = current_code(&secret);
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    let (status, body) = revoke_with(
        &http,
        &admin,
        &victim,
        Some(WithTotp {
            signer: &admin,
            code: wrong,
            covered: true,
        }),
    )
    .await;
    assert_eq!((status, code(&body)), (403, "totp_invalid"), "{body}");
    // The current code, covered: done.
    let used = current_code(&secret);
    let (status, body) = revoke_with(
        &http,
        &admin,
        &victim,
        Some(WithTotp {
            signer: &admin,
            code: used.clone(),
            covered: true,
        }),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("revoked")),
        "{body}"
    );
    // The same code again (on another critical operation): refused.
    let (status, body) = Http::json(
        http.post(
            &format!("/admin/v1/keys/{other}/suspend"),
            Some(&WithTotp {
                signer: &admin,
                code: used,
                covered: true,
            }),
            serde_json::json!({"reason": "x"}),
        )
        .await,
    )
    .await;
    assert_eq!((status, code(&body)), (403, "totp_invalid"), "{body}");
    // Scope changes need it; a name change does not.
    let (status, body) = Http::json(
        http.send(
            reqwest::Method::PATCH,
            &format!("/admin/v1/keys/{other}"),
            Some(&admin),
            serde_json::json!({"scopes": ["market:read"]}),
        )
        .await,
    )
    .await;
    assert_eq!((status, code(&body)), (403, "totp_required"), "{body}");
    let (status, body) = Http::json(
        http.send(
            reqwest::Method::PATCH,
            &format!("/admin/v1/keys/{other}"),
            Some(&admin),
            serde_json::json!({"metadata": {"allowed_ips": ["10.0.0.0/8"]}}),
        )
        .await,
    )
    .await;
    assert_eq!((status, code(&body)), (403, "totp_required"), "{body}");
    let (status, body) = Http::json(
        http.send(
            reqwest::Method::PATCH,
            &format!("/admin/v1/keys/{other}"),
            Some(&admin),
            serde_json::json!({"name": "renamed"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The master-key rewrap needs it.
    let (status, body) = Http::json(
        http.post("/admin/v1/keys/rewrap", Some(&admin), serde_json::json!({}))
            .await,
    )
    .await;
    assert_eq!((status, code(&body)), (403, "totp_required"), "{body}");

    let actions = audit_actions(&http, &admin).await;
    let refused: Vec<&str> = actions
        .iter()
        .filter(|(a, _)| a == "admin.totp_refused")
        .filter_map(|(_, d)| d["code"].as_str())
        .collect();
    assert!(refused.contains(&"totp_required"), "{refused:?}");
    assert!(refused.contains(&"totp_invalid"), "{refused:?}");
    assert!(actions.iter().any(|(a, _)| a == "totp.enrolled"));
    assert!(actions.iter().any(|(a, _)| a == "admin.totp_used"));
    // The secret is nowhere in the data directory.
    let b32 = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_slice()));
        assert!(!bytes.windows(b32.len()).any(|w| w == b32.as_bytes()));
    }
    gateway.stop().await.unwrap();
}

/// Signed `GET path` headers for `key` named `keyid`, created at `created` (Unix seconds).
fn signed_headers(
    key: &auth::httpsig::sign::SigningKey,
    keyid: &str,
    authority: &str,
    target: &str,
    created: i64,
) -> Vec<(&'static str, String)> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let unsigned = auth::httpsig::sign::Unsigned {
        method: "GET",
        authority,
        path,
        query,
        body: b"",
    };
    let nonce = auth::httpsig::sign::random_nonce().unwrap();
    let h = auth::httpsig::sign::sign(key, keyid, &unsigned, created, &nonce);
    vec![
        ("signature-input", h.signature_input),
        ("signature", h.signature),
    ]
}

async fn get_with(
    gateway: &server::Gateway,
    target: &str,
    headers: &[(&str, String)],
) -> (u16, serde_json::Value) {
    let mut request =
        reqwest::Client::new().get(format!("http://{}{target}", gateway.local_addr()));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    Http::json(request.send().await.unwrap()).await
}

fn unix_now() -> i64 {
    model::Timestamp::now().0.div_euclid(1_000_000)
}

async fn metric(gateway: &server::Gateway, line_prefix: &str) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", gateway.local_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Someone without the key's secret sends requests naming it: bad signatures, stale requests
/// signed with another key, unknown keys, wrong tokens. With `suspend` on the key rule and
/// `block_ip` on the address rule, the address is blocked and the key is never touched, even
/// after a restart (the block is in the store).
#[tokio::test]
async fn failures_without_the_secret_block_the_address_and_never_suspend_the_key() {
    let mut config = auth_config("anomaly-ip");
    config.auth.anomaly.auth_failures.threshold = 8;
    config.auth.anomaly.auth_failures.action = auth::anomaly::Action::BlockIp;
    config.auth.anomaly.block_secs = 600;
    config.auth.anomaly.replay_burst.threshold = 2;
    config.auth.anomaly.replay_burst.action = auth::anomaly::Action::Suspend;
    config.auth.anomaly.rate_limit_saturation.threshold = 2;
    config.auth.anomaly.rate_limit_saturation.action = auth::anomaly::Action::Suspend;
    let dir = config.server.data_dir.clone();
    let victim = offline_signer(&dir, "victim", &["market:read"]);
    let (_, bearer_token) = offline_key(&dir, "bearer", &["market:read"]);
    let gateway = start(config.clone()).await;
    let authority = gateway.local_addr().to_string();
    // The victim works.
    let (status, body) = get_with(
        &gateway,
        TICKER,
        &signed_headers(&victim.key, &victim.id, &authority, TICKER, unix_now()),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let forger = auth::httpsig::sign::SigningKey::ed25519(&[9u8; 32]);
    let mut codes = Vec::new();
    for i in 0..7 {
        let headers = match i % 4 {
            // The victim's key id, another key's signature.
            0 => signed_headers(&forger, &victim.id, &authority, TICKER, unix_now()),
            // The same, stale: a forged "replay".
            1 => signed_headers(&forger, &victim.id, &authority, TICKER, unix_now() - 600),
            // A key id that does not exist.
            2 => signed_headers(
                &forger,
                "key_doesnotexist0001",
                &authority,
                TICKER,
                unix_now(),
            ),
            // A wrong bearer token.
            _ => vec![(
                "authorization",
                format!("Bearer {}", wrong_token(&bearer_token)),
            )],
        };
        let (status, body) = get_with(&gateway, TICKER, &headers).await;
        assert_eq!(status, 401, "{body}");
        codes.push(code(&body).to_string());
    }
    assert!(
        codes.contains(&"signature_invalid".to_string()),
        "{codes:?}"
    );
    assert!(codes.contains(&"timestamp_stale".to_string()), "{codes:?}");
    assert!(codes.contains(&"unknown_key".to_string()), "{codes:?}");
    // The eighth failure crosses the threshold: the address is blocked, for everyone on it.
    let (status, _) = get_with(
        &gateway,
        TICKER,
        &signed_headers(&forger, &victim.id, &authority, TICKER, unix_now()),
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = get_with(
        &gateway,
        TICKER,
        &signed_headers(&victim.key, &victim.id, &authority, TICKER, unix_now()),
    )
    .await;
    assert_eq!((status, code(&body)), (403, "ip_blocked"), "{body}");
    // No WebSocket session either, not even an anonymous one.
    match tokio_tungstenite::connect_async(format!("ws://{authority}/v1/ws")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        Err(other) => panic!("expected 403, got {other}"),
        Ok(_) => panic!("a blocked address opened a WebSocket session"),
    }
    assert_eq!(
        metric(&gateway, "tickgate_anomalies_total{kind=\"auth_failures\"}").await,
        1
    );
    assert_eq!(
        metric(&gateway, "tickgate_anomalies_total{kind=\"replay_burst\"}").await,
        0
    );
    assert_eq!(
        metric(
            &gateway,
            "tickgate_anomaly_responses_total{action=\"suspend\"}"
        )
        .await,
        0
    );
    // The key itself was never suspended.
    let service = offline_service(&dir);
    assert_eq!(
        service.get(&victim.id).unwrap().status,
        store::keys::KeyStatus::Active
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    gateway.stop().await.unwrap();

    // Audited; and the block survives a restart.
    let entries = service.audit().read(0, 10_000).unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"anomaly.auth_failures"), "{actions:?}");
    assert!(actions.contains(&"anomaly.ip_blocked"), "{actions:?}");
    assert!(!actions.contains(&"key.suspended"), "{actions:?}");
    let gateway = start(config).await;
    let mut blocked = false;
    for _ in 0..50 {
        let (status, body) = get_with(
            &gateway,
            TICKER,
            &signed_headers(
                &victim.key,
                &victim.id,
                &authority_of(&gateway),
                TICKER,
                unix_now(),
            ),
        )
        .await;
        if status == 403 && code(&body) == "ip_blocked" {
            blocked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        blocked,
        "the block was not loaded from the store after a restart"
    );
    gateway.stop().await.unwrap();
}

fn authority_of(gateway: &server::Gateway) -> String {
    gateway.local_addr().to_string()
}

/// Replays of a request whose signature verified (the key's own traffic, captured) count
/// against the key: with `suspend`, the key is suspended and its live session closed.
#[tokio::test]
async fn a_burst_of_verified_replays_suspends_the_key_and_closes_its_session() {
    let mut config = auth_config("anomaly-replay");
    config.auth.anomaly.replay_burst.threshold = 3;
    config.auth.anomaly.replay_burst.action = auth::anomaly::Action::Suspend;
    let dir = config.server.data_dir.clone();
    let victim = offline_signer(&dir, "victim", &["market:read"]);
    let gateway = start(config).await;
    let authority = authority_of(&gateway);
    // A live session of the key, signed on the upgrade.
    let upgrade = signed_headers(&victim.key, &victim.id, &authority, "/v1/ws", unix_now());
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{authority}/v1/ws"
        ))
        .unwrap();
    for (name, value) in &upgrade {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert!(matches!(
        recv(&mut ws).await,
        ServerMessage::Authenticated { .. }
    ));

    let captured = signed_headers(&victim.key, &victim.id, &authority, TICKER, unix_now());
    assert_eq!(get_with(&gateway, TICKER, &captured).await.0, 200);
    for _ in 0..2 {
        let (status, body) = get_with(&gateway, TICKER, &captured).await;
        assert_eq!((status, code(&body)), (401, "nonce_reused"));
    }
    // A verified request from outside its window counts too.
    let late = signed_headers(
        &victim.key,
        &victim.id,
        &authority,
        TICKER,
        unix_now() - 600,
    );
    let (status, body) = get_with(&gateway, TICKER, &late).await;
    assert_eq!((status, code(&body)), (401, "timestamp_stale"));
    let (error, close, took) = until_error_and_close(&mut ws, Duration::from_secs(3)).await;
    assert_eq!((error.as_str(), close), ("key_suspended", 4002));
    assert!(took < Duration::from_secs(2), "{took:?}");
    let fresh = signed_headers(&victim.key, &victim.id, &authority, TICKER, unix_now());
    let (status, body) = get_with(&gateway, TICKER, &fresh).await;
    assert_eq!((status, code(&body)), (403, "key_suspended"), "{body}");
    assert_eq!(
        metric(&gateway, "tickgate_anomalies_total{kind=\"replay_burst\"}").await,
        1
    );
    assert_eq!(
        metric(
            &gateway,
            "tickgate_anomaly_responses_total{action=\"suspend\"}"
        )
        .await,
        1
    );
    let service = offline_service(&dir);
    let record = service.get(&victim.id).unwrap();
    assert_eq!(record.status, store::keys::KeyStatus::Suspended);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let entries = service.audit().read(0, 10_000).unwrap();
    let suspended = entries
        .iter()
        .find(|e| e.action == "key.suspended")
        .expect("suspension audited");
    assert_eq!(suspended.actor, "anomaly");
    assert!(entries.iter().any(|e| e.action == "anomaly.replay_burst"));
    // Reversible.
    service
        .resume(&victim.id, "test", model::Timestamp::now().0)
        .unwrap();
    let mut back = false;
    for _ in 0..30 {
        let fresh = signed_headers(&victim.key, &victim.id, &authority, TICKER, unix_now());
        if get_with(&gateway, TICKER, &fresh).await.0 == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "a resumed key works again");
    gateway.stop().await.unwrap();
}

/// `POST /admin/v1/keys/{id}/leaked` (what `tickgate keys leaked --url` calls): the leaked
/// token stops at once, a successor works, its session closes, the audit says `key.leaked`, and
/// the answer reports the last 24 h: requests and the addresses they came from.
#[tokio::test]
async fn the_leak_playbook_rotates_revokes_and_reports_the_last_day() {
    let config = auth_config("leaked");
    let admin = offline_signer(&config.server.data_dir, "admin", &["keys:admin"]);
    let gateway = start(config).await;
    let http = Http::new(&gateway);
    let (id, token) = http
        .create_key(
            &admin,
            serde_json::json!({"name": "bot", "scopes": ["market:read"]}),
        )
        .await;
    for _ in 0..5 {
        assert_eq!(http.get(TICKER, Some(&token)).await.status(), 200);
    }
    let mut ws = connect_with(&gateway, &token).await;
    assert!(matches!(
        recv(&mut ws).await,
        ServerMessage::Authenticated { .. }
    ));
    let (status, body) = Http::json(
        http.post(
            &format!("/admin/v1/keys/{id}/leaked"),
            Some(&admin),
            serde_json::json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"]["status"], "revoked");
    assert_eq!(body["revoked"]["revoked_reason"], "leaked");
    let successor = body["token"]
        .as_str()
        .expect("the successor's token, once")
        .to_string();
    let successor_id = body["id"].as_str().unwrap().to_string();
    assert_ne!(successor_id, id);
    let report = &body["last_24h"];
    // 5 REST requests and the WebSocket upgrade.
    assert!(report["requests"].as_u64().unwrap() >= 5, "{report}");
    let addresses = report["addresses"].as_array().unwrap();
    assert_eq!(addresses[0]["addr"], "127.0.0.1", "{report}");
    assert!(addresses[0]["requests"].as_u64().unwrap() >= 5);

    let (error, close, _) = until_error_and_close(&mut ws, Duration::from_secs(2)).await;
    assert_eq!((error.as_str(), close), ("key_revoked", 4003));
    let (status, body) = Http::json(http.get(TICKER, Some(&token)).await).await;
    assert_eq!((status, code(&body)), (401, "key_revoked"));
    assert_eq!(http.get(TICKER, Some(&successor)).await.status(), 200);
    // Twice: conflict.
    let (status, body) = Http::json(
        http.post(
            &format!("/admin/v1/keys/{id}/leaked"),
            Some(&admin),
            serde_json::json!({}),
        )
        .await,
    )
    .await;
    assert_eq!((status, code(&body)), (409, "conflict"));
    let actions = audit_actions(&http, &admin).await;
    let leaked = actions
        .iter()
        .find(|(a, _)| a == "key.leaked")
        .expect("key.leaked audited");
    assert_eq!(leaked.1["successor"], successor_id.as_str());
    assert!(actions.iter().any(|(a, _)| a == "key.revoked"));
    gateway.stop().await.unwrap();
}

/// The key detectors over real connections, with `action = "none"`: a new /24, use during a
/// rotation's grace and rate-limit saturation each become one metric and one audit entry, and
/// nothing else happens to the key.
#[tokio::test]
async fn new_networks_rotation_grace_use_and_rate_saturation_are_reported() {
    let mut config = auth_config("anomaly-kinds");
    config.auth.anomaly.rate_limit_saturation.threshold = 5;
    let admin = offline_signer(&config.server.data_dir, "admin", &["keys:admin"]);
    let gateway = start(config).await;
    let http = Http::new(&gateway);
    let (id, token) = http
        .create_key(
            &admin,
            serde_json::json!({"name": "bot", "scopes": ["market:read"],
                "rate_limit": {"per_sec": 1, "burst": 2}}),
        )
        .await;
    let url = format!("http://{}{TICKER}", gateway.local_addr());
    let from = |local: &str| {
        reqwest::Client::builder()
            .local_address(local.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    // Its first network is where it lives; another /24 is news (127.0.1.1 is loopback too).
    let home = from("127.0.0.1");
    assert_eq!(
        home.get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let away = from("127.0.1.1");
    assert_eq!(
        away.get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        metric(&gateway, "tickgate_anomalies_total{kind=\"new_network\"}").await,
        1
    );
    // Rate-limit saturation: a burst far over 1/s.
    let mut limited = 0;
    for _ in 0..12 {
        if home
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            == 429
        {
            limited += 1;
        }
    }
    assert!(limited >= 5, "{limited}");
    assert_eq!(
        metric(
            &gateway,
            "tickgate_anomalies_total{kind=\"rate_limit_saturation\"}"
        )
        .await,
        1
    );
    // Rotation: the old key used during its grace.
    let (status, body) = Http::json(
        http.post(
            &format!("/admin/v1/keys/{id}/rotate"),
            Some(&admin),
            serde_json::json!({"grace_seconds": 60}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _ = home.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(
        metric(
            &gateway,
            "tickgate_anomalies_total{kind=\"used_after_rotation\"}"
        )
        .await,
        1
    );
    assert_eq!(
        metric(
            &gateway,
            "tickgate_anomaly_responses_total{action=\"suspend\"}"
        )
        .await,
        0
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let actions = audit_actions(&http, &admin).await;
    for kind in [
        "new_network",
        "rate_limit_saturation",
        "used_after_rotation",
    ] {
        let entry = actions
            .iter()
            .find(|(a, _)| *a == format!("anomaly.{kind}"))
            .unwrap_or_else(|| panic!("anomaly.{kind} audited: {actions:?}"));
        assert_eq!(entry.1["action"], "none");
    }
    let new_network = actions
        .iter()
        .find(|(a, _)| a == "anomaly.new_network")
        .unwrap();
    assert_eq!(new_network.1["network"], "127.0.1.0/24");
    assert_eq!(new_network.1["ip"], "127.0.1.1");
    gateway.stop().await.unwrap();
}

/// `[auth.anomaly] webhook_endpoints`: each anomaly reaches the operator's endpoint as a
/// signed Standard Webhook (`anomaly.<kind>`), through the alerts outbox (so it is in the
/// endpoint's delivery log, not among the principal's alert firings); an endpoint id that
/// does not exist is refused at start, naming the key.
#[tokio::test]
async fn anomalies_reach_the_operators_webhook_signed_and_logged() {
    use alerts::testing::Receiver;
    use alerts::webhook::signature::{WebhookSecret, verify_v1};

    let mut config = crate::auth_signed::sealing_config("anomaly-webhook");
    config.alerts.delivery.allow_addresses = vec!["127.0.0.1".into()];
    config.auth.anomaly.auth_failures.threshold = 3;
    let dir = config.server.data_dir.clone();
    let ops = offline_principal_signer(
        &sealing_service(&dir),
        "ops",
        &["alerts:write"],
        Some("ops"),
    );
    let (_, token) = offline_key(&dir, "bot", &["market:read"]);

    // A typo in the config is refused at start.
    let mut typo = config.clone();
    typo.auth.anomaly.webhook_endpoints = vec!["whe_0000000000000000".into()];
    let Err(error) = server::Gateway::start(typo).await else {
        panic!("an unknown endpoint id was accepted");
    };
    let text = format!("{error}");
    assert!(
        text.contains("auth.anomaly.webhook_endpoints[0]") && text.contains("no webhook endpoint"),
        "{text}"
    );

    // The operator creates the endpoint through the API, then names it in the config.
    let receiver = Receiver::start(200, Duration::ZERO).await;
    let gateway = start(config.clone()).await;
    let http = Http::new(&gateway);
    let url = format!("http://127.0.0.1:{}/ops", receiver.port);
    let (status, endpoint) = Http::json(
        http.post("/v1/webhooks", Some(&ops), serde_json::json!({"url": url}))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{endpoint}");
    let endpoint_id = endpoint["id"].as_str().unwrap().to_string();
    let secret = WebhookSecret::parse(endpoint["secret"].as_str().unwrap()).unwrap();
    gateway.stop().await.unwrap();
    config.auth.anomaly.webhook_endpoints = vec![endpoint_id.clone()];
    let gateway = start(config).await;
    let http = Http::new(&gateway);

    // Three wrong tokens from one address: one `auth_failures` anomaly.
    let wrong = wrong_token(&token);
    for _ in 0..3 {
        let (status, body) = get_with(
            &gateway,
            TICKER,
            &[("authorization", format!("Bearer {wrong}"))],
        )
        .await;
        assert_eq!(status, 401, "{body}");
    }
    let mut delivered = None;
    for _ in 0..200 {
        delivered = receiver.received.lock().first().cloned();
        if delivered.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = delivered.expect("the anomaly webhook");
    let id = delivered.headers["webhook-id"].clone();
    let ts: i64 = delivered.headers["webhook-timestamp"].parse().unwrap();
    assert!(verify_v1(
        &secret,
        &id,
        ts,
        &delivered.body,
        &delivered.headers["webhook-signature"]
    ));
    let payload: protocol::alerts::AnomalyWebhookPayload =
        serde_json::from_slice(&delivered.body).unwrap();
    assert_eq!(payload.kind, "anomaly.auth_failures");
    let notice = &payload.data;
    assert_eq!(
        (
            notice.id.as_str(),
            notice.kind.as_str(),
            notice.action.as_str()
        ),
        (id.as_str(), "auth_failures", "none")
    );
    assert_eq!(notice.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(notice.key_id, None, "failures that prove no key name none");
    let body = String::from_utf8_lossy(&delivered.body);
    assert!(!body.contains(&token[8..]), "{body}");
    assert!(!body.contains(&wrong[8..]), "{body}");
    assert_eq!(receiver.count(), 1, "one anomaly, one delivery");
    assert_eq!(
        metric(
            &gateway,
            "tickgate_anomaly_notices_total{outcome=\"stored\"}"
        )
        .await,
        1
    );

    // In the endpoint's delivery log, delivered; not among the principal's alert firings.
    let mut state = String::new();
    for _ in 0..100 {
        let (status, log) = Http::json(
            http.get(
                &format!("/v1/webhooks/{endpoint_id}/deliveries"),
                Some(&ops),
            )
            .await,
        )
        .await;
        assert_eq!(status, 200, "{log}");
        let entries = log["deliveries"].as_array().unwrap().clone();
        assert_eq!(entries.len(), 1, "{log}");
        assert_eq!(entries[0]["firing_id"], id.as_str());
        state = entries[0]["state"].as_str().unwrap().to_string();
        if state == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, "delivered");
    let (status, firings) = Http::json(http.get("/v1/alerts/firings", Some(&ops)).await).await;
    assert_eq!(status, 200, "{firings}");
    assert_eq!(firings["firings"], serde_json::json!([]), "{firings}");
    gateway.stop().await.unwrap();
}

/// `token` with its last (checksum) character changed: never the token itself (replacing it
/// with a fixed character made a token that already ended in that character pass, a flake).
fn wrong_token(token: &str) -> String {
    let (body, last) = token.split_at(token.len() - 1);
    format!("{body}{}", if last == "x" { 'y' } else { 'x' })
}
