//! The key lifecycle over real HTTP and WebSocket: create → use → rotate with grace → both
//! keys work → the old key gets Sunset → grace ends → old key rejected and its session closed;
//! cancel a rotation; revoke closes a live session within 1 s (admin API and offline CLI).

use crate::auth_support::*;
use crate::support::*;
use protocol::ServerMessage;
use std::time::Duration;

const TICKER: &str = "/v1/ticker?venue=sim&symbol=BTC-USDT";
const SUB: &str = r#"{"op":"subscribe","id":1,"channels":["ticker:sim:BTC-USDT"]}"#;

async fn subscribed(ws: &mut Ws) {
    send(ws, SUB).await;
    recv_until(ws, |m| matches!(m, ServerMessage::Subscribed { .. })).await;
}

#[tokio::test]
async fn create_use_rotate_grace_ends_and_old_session_closes() {
    let config = auth_config("rotate");
    let admin = offline_signer(&config.server.data_dir, "admin", &["keys:admin"]);
    let gateway = start(config).await;
    let http = Http::new(&gateway);
    let (old_id, old) = http
        .create_key(
            &admin,
            serde_json::json!({"name": "bot", "scopes": ["market:read"], "metadata": {"team": "quant"}}),
        )
        .await;
    let response = http.get(TICKER, Some(&old)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("sunset").is_none());

    // A live session on the old key, authenticated on the upgrade request.
    let mut ws = connect_with(&gateway, &old).await;
    match next(&mut ws, Duration::from_secs(5)).await {
        Next::Msg(m) => match *m {
            ServerMessage::Authenticated { key_id, scopes, .. } => {
                assert_eq!(key_id, old_id);
                assert_eq!(scopes, ["market:read"]);
            }
            other => panic!("expected authenticated, got {other:?}"),
        },
        other => panic!("expected authenticated, got {other:?}"),
    }
    subscribed(&mut ws).await;

    // Rotate with a 3 s grace period.
    let (status, rotated) = Http::json(
        http.post(
            &format!("/admin/v1/keys/{old_id}/rotate"),
            Some(&admin),
            serde_json::json!({"grace_seconds": 3}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["token"].as_str().unwrap().to_string();
    let new_id = rotated["id"].as_str().unwrap().to_string();
    assert_eq!(rotated["key"]["replaces"], old_id.as_str());
    assert_eq!(rotated["key"]["version"], 2);
    assert_eq!(rotated["key"]["metadata"]["team"], "quant");
    assert_eq!(rotated["previous"]["status"], "grace");
    let sunset_at = rotated["previous"]["grace_until"].as_i64().unwrap();

    // The old session is told when its key stops working.
    let notice = recv_until(&mut ws, |m| matches!(m, ServerMessage::KeyExpiring { .. })).await;
    let ServerMessage::KeyExpiring { at, key_id, .. } = notice else {
        unreachable!()
    };
    assert_eq!((at, key_id.as_str()), (sunset_at, old_id.as_str()));

    // Both keys work; the old one carries Sunset and Deprecation.
    let response = http.get(TICKER, Some(&old)).await;
    assert_eq!(response.status(), 200);
    let sunset = response.headers()["sunset"].to_str().unwrap().to_string();
    assert!(sunset.ends_with(" GMT"), "{sunset}");
    assert_eq!(sunset, server::auth::http_date(sunset_at));
    assert!(
        response.headers()["deprecation"]
            .to_str()
            .unwrap()
            .starts_with('@')
    );
    let response = http.get(TICKER, Some(&new)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("sunset").is_none());
    let mut ws_new = connect_with(&gateway, &new).await;
    subscribed(&mut ws_new).await;

    // Grace ends: the old session is closed with key_expired within a second of the end.
    let (error, close, _) = until_error_and_close(&mut ws, Duration::from_secs(8)).await;
    let late_us = model::Timestamp::now().0 - sunset_at;
    assert_eq!((error.as_str(), close), ("key_expired", 4004));
    assert!(
        late_us < 1_000_000,
        "closed {late_us} µs after the end of grace"
    );
    let (status, body) = Http::json(http.get(TICKER, Some(&old)).await).await;
    assert_eq!((status, code(&body)), (401, "key_expired"));
    // The successor keeps streaming.
    let msg = recv_until(&mut ws_new, |m| data(m).is_some()).await;
    assert!(data(&msg).is_some());
    assert_eq!(http.get(TICKER, Some(&new)).await.status(), 200);

    // The operator sees the old key's traffic and when it stopped.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, usage) = Http::json(
        http.get(&format!("/admin/v1/keys/{old_id}/usage"), Some(&admin))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{usage}");
    let requests: u64 = usage["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["requests"].as_u64().unwrap())
        .sum();
    assert!(requests >= 2, "{usage}");
    let messages: u64 = usage["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["messages"].as_u64().unwrap())
        .sum();
    assert!(messages >= 1, "WebSocket deliveries are counted: {usage}");
    assert!(usage["last_used_at"].as_i64().is_some());
    assert_eq!(usage["last_used_addr"], "127.0.0.1");
    let (_, shown) = Http::json(
        http.get(&format!("/admin/v1/keys/{old_id}"), Some(&admin))
            .await,
    )
    .await;
    assert_eq!(shown["status"], "expired");
    assert_eq!(shown["replaced_by"], new_id.as_str());

    // The audit log tells the story, and verifies.
    let (_, audit) = Http::json(http.get("/admin/v1/audit", Some(&admin)).await).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in ["key.created", "key.rotated", "key.expired"] {
        assert!(actions.contains(&action), "{actions:?}");
    }
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn cancelled_rotation_restores_the_old_key_and_revokes_the_successor() {
    let config = auth_config("cancel");
    let admin = offline_signer(&config.server.data_dir, "admin", &["keys:admin"]);
    let gateway = start(config).await;
    let http = Http::new(&gateway);
    let (id, old) = http
        .create_key(
            &admin,
            serde_json::json!({"name": "bot", "scopes": ["market:read"]}),
        )
        .await;
    let (_, rotated) = Http::json(
        http.post(
            &format!("/admin/v1/keys/{id}/rotate"),
            Some(&admin),
            serde_json::json!({"grace_seconds": 600}),
        )
        .await,
    )
    .await;
    let new = rotated["token"].as_str().unwrap().to_string();
    assert_eq!(http.get(TICKER, Some(&new)).await.status(), 200);
    let (status, body) = Http::json(
        http.post(
            &format!("/admin/v1/keys/{id}/rotate/cancel"),
            Some(&admin),
            serde_json::json!({}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["key"]["status"], "active");
    assert_eq!(body["revoked_successor"]["status"], "revoked");
    let response = http.get(TICKER, Some(&old)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("sunset").is_none());
    let (status, body) = Http::json(http.get(TICKER, Some(&new)).await).await;
    assert_eq!((status, code(&body)), (401, "key_revoked"));
    // Nothing to cancel any more.
    let (status, body) = Http::json(
        http.post(
            &format!("/admin/v1/keys/{id}/rotate/cancel"),
            Some(&admin),
            serde_json::json!({}),
        )
        .await,
    )
    .await;
    assert_eq!((status, code(&body)), (409, "conflict"));
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn revocation_closes_live_sessions_within_one_second() {
    let config = auth_config("revoke");
    let dir = config.server.data_dir.clone();
    let admin = offline_signer(&dir, "admin", &["keys:admin"]);
    let gateway = start(config).await;
    let http = Http::new(&gateway);

    // Through the admin API.
    let (id, token) = http
        .create_key(
            &admin,
            serde_json::json!({"name": "a", "scopes": ["market:read"]}),
        )
        .await;
    let mut ws = connect(&gateway).await;
    send(
        &mut ws,
        &format!(r#"{{"op":"auth","id":"hello","token":"{token}"}}"#),
    )
    .await;
    assert!(matches!(
        recv(&mut ws).await,
        ServerMessage::Authenticated { .. }
    ));
    subscribed(&mut ws).await;
    let (status, body) = Http::json(
        http.post(
            &format!("/admin/v1/keys/{id}/revoke"),
            Some(&admin),
            serde_json::json!({"reason": "leaked in a paste"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked_reason"], "leaked in a paste");
    let (error, close, took) = until_error_and_close(&mut ws, Duration::from_secs(2)).await;
    assert_eq!((error.as_str(), close), ("key_revoked", 4003));
    assert!(took < Duration::from_secs(1), "{took:?}");
    let (status, body) = Http::json(http.get(TICKER, Some(&token)).await).await;
    assert_eq!((status, code(&body)), (401, "key_revoked"));

    // Offline, as `tickgate keys revoke --data-dir` does while the server runs: the server
    // learns it from the store's change feed.
    let (id, token) = http
        .create_key(
            &admin,
            serde_json::json!({"name": "b", "scopes": ["market:read"]}),
        )
        .await;
    let mut ws = connect_with(&gateway, &token).await;
    subscribed(&mut ws).await;
    let start = tokio::time::Instant::now();
    let dir2 = dir.clone();
    tokio::task::spawn_blocking(move || {
        offline_service(&dir2)
            .revoke(&id, "incident 42", "cli:test", model::Timestamp::now().0)
            .unwrap()
    })
    .await
    .unwrap();
    let (error, close, _) = until_error_and_close(&mut ws, Duration::from_secs(2)).await;
    let took = start.elapsed();
    assert_eq!((error.as_str(), close), ("key_revoked", 4003));
    assert!(took < Duration::from_secs(1), "{took:?}");
    let (status, body) = Http::json(http.get(TICKER, Some(&token)).await).await;
    assert_eq!((status, code(&body)), (401, "key_revoked"));
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn removing_alerts_write_closes_a_session_on_the_alerts_channel() {
    let config = auth_config("scopes-alerts");
    let admin = offline_signer(&config.server.data_dir, "admin", &["keys:admin"]);
    let gateway = start(config).await;
    let http = Http::new(&gateway);
    let (id, token) = http
        .create_key(
            &admin,
            serde_json::json!({"name": "bot", "scopes": ["market:read", "alerts:write", "history:read"]}),
        )
        .await;
    let mut ws = connect_with(&gateway, &token).await;
    send(
        &mut ws,
        r#"{"op":"subscribe","id":1,"channels":["alerts","ticker:sim:BTC-USDT"]}"#,
    )
    .await;
    recv_until(&mut ws, |m| matches!(m, ServerMessage::Subscribed { .. })).await;
    let patch = |scopes: serde_json::Value| {
        let (http, admin, id) = (&http, &admin, &id);
        async move {
            Http::json(
                http.send(
                    reqwest::Method::PATCH,
                    &format!("/admin/v1/keys/{id}"),
                    Some(admin),
                    serde_json::json!({ "scopes": scopes }),
                )
                .await,
            )
            .await
        }
    };
    // Removing a scope no subscription needs changes nothing.
    let (status, body) = patch(serde_json::json!(["market:read", "alerts:write"])).await;
    assert_eq!(status, 200, "{body}");
    assert!(data(&recv_until(&mut ws, |m| data(m).is_some()).await).is_some());
    // Removing alerts:write, which the alerts subscription needs, closes the session.
    let (status, body) = patch(serde_json::json!(["market:read"])).await;
    assert_eq!(status, 200, "{body}");
    let (error, close, took) = until_error_and_close(&mut ws, Duration::from_secs(2)).await;
    assert_eq!((error.as_str(), close), ("insufficient_scope", 4002));
    assert!(took < Duration::from_secs(1));
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn removing_a_scope_takes_effect_on_live_sessions() {
    let config = auth_config("scopes");
    let admin = offline_signer(&config.server.data_dir, "admin", &["keys:admin"]);
    let gateway = start(config).await;
    let http = Http::new(&gateway);
    let (id, token) = http
        .create_key(
            &admin,
            serde_json::json!({"name": "bot", "scopes": ["market:read", "history:read"]}),
        )
        .await;
    let mut ws = connect_with(&gateway, &token).await;
    subscribed(&mut ws).await;
    // Adding a scope changes nothing for the session.
    let (status, _) = Http::json(
        http.send(
            reqwest::Method::PATCH,
            &format!("/admin/v1/keys/{id}"),
            Some(&admin),
            serde_json::json!({"scopes": ["market:read", "history:read", "alerts:write"]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert!(data(&recv_until(&mut ws, |m| data(m).is_some()).await).is_some());
    // Removing market:read closes it.
    let (status, body) = Http::json(
        http.send(
            reqwest::Method::PATCH,
            &format!("/admin/v1/keys/{id}"),
            Some(&admin),
            serde_json::json!({"scopes": ["history:read"]}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (error, close, took) = until_error_and_close(&mut ws, Duration::from_secs(2)).await;
    assert_eq!((error.as_str(), close), ("insufficient_scope", 4002));
    assert!(took < Duration::from_secs(1));
    let (status, body) = Http::json(http.get(TICKER, Some(&token)).await).await;
    assert_eq!((status, code(&body)), (403, "insufficient_scope"));
    let (_, audit) = Http::json(http.get("/admin/v1/audit", Some(&admin)).await).await;
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "key.scopes_changed")
    );
    gateway.stop().await.unwrap();
}
