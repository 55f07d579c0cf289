//! Security II over real connections: suspension (reversible, closes sessions), TOTP on
//! critical admin operations, the anomaly detectors and their automatic responses, and the
//! rule that failures an attacker can cause without a key's secret never act on that key.

use crate::auth_signed::{sealing_config, sealing_service};
use crate::auth_support::*;
use crate::support::*;
use protocol::ServerMessage;
use std::time::Duration;

const TICKER: &str = "/v1/ticker?venue=sim&symbol=BTC-USDT";

fn base32_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32"),
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

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
    let secret = base32_decode(
        uri.split("secret=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap(),
    );
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
