//! Every rejection code over real HTTP and WebSocket, scope checks per route and per channel,
//! rate limits, and anonymous read-only mode.

use crate::auth_support::*;
use crate::support::*;
use protocol::ServerMessage;
use std::time::Duration;

const TICKER: &str = "/v1/ticker?venue=sim&symbol=BTC-USDT";

fn typo(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[20] = if bytes[20] == b'x' { b'y' } else { b'x' };
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn every_rejection_has_its_code_over_http() {
    let config = auth_config("codes");
    let dir = config.server.data_dir.clone();
    let admin = offline_signer(&dir, "admin", &["keys:admin"]);
    let (_, market) = offline_key(&dir, "market", &["market:read"]);
    let (_, history) = offline_key(&dir, "history", &["history:read"]);
    let (_, both) = offline_key(&dir, "both", &["market:read", "history:read"]);
    let (revoked_id, revoked) = offline_key(&dir, "gone", &["market:read"]);
    offline_service(&dir)
        .revoke(&revoked_id, "test", "test", model::Timestamp::now().0)
        .unwrap();
    let gateway = start(config).await;
    let http = Http::new(&gateway);
    let (_, expiring) = http
        .create_key(
            &admin,
            serde_json::json!({"name": "short", "scopes": ["market:read"], "expires_in": "1s"}),
        )
        .await;
    let (_, limited) = http
        .create_key(
            &admin,
            serde_json::json!({"name": "slow", "scopes": ["market:read"],
                               "rate_limit": {"per_sec": 1, "burst": 2}}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let live_key = auth::token::generate(store::keys::Environment::Live).unwrap();
    let live = live_key.expose().to_string();
    let unknown = auth::token::generate(store::keys::Environment::Test).unwrap();
    let mistyped = typo(&market);
    let cases: Vec<(&str, Option<&str>, u16, &str)> = vec![
        (TICKER, None, 401, "missing_credentials"),
        (TICKER, Some(&mistyped), 401, "malformed_key"),
        (TICKER, Some("hunter2"), 401, "malformed_key"),
        (TICKER, Some(unknown.expose()), 401, "unknown_key"),
        (TICKER, Some(&revoked), 401, "key_revoked"),
        (TICKER, Some(&expiring), 401, "key_expired"),
        (TICKER, Some(&history), 403, "insufficient_scope"),
        (TICKER, Some(&live), 401, "wrong_environment"),
        // A bearer key without the scope of a signature-only route gets insufficient_scope
        // (one with the scope gets signature_required: every_route_checks_its_scope).
        ("/admin/v1/keys", Some(&market), 403, "insufficient_scope"),
        ("/admin/v1/audit", None, 401, "missing_credentials"),
        (TICKER, Some(&market), 200, ""),
        // A range on /v1/funding reads history: market:read alone is not enough; with both
        // scopes the request reaches the instrument check (sim's BTC-USDT is spot).
        (
            "/v1/funding?venue=sim&symbol=BTC-USDT&from=0",
            Some(&market),
            403,
            "insufficient_scope",
        ),
        (
            "/v1/oi/history?venue=sim&symbol=BTC-USDT",
            Some(&market),
            403,
            "insufficient_scope",
        ),
        (
            "/v1/funding?venue=sim&symbol=BTC-USDT&limit=5",
            Some(&both),
            404,
            "unknown_instrument",
        ),
        (
            "/v1/funding?venue=sim&symbol=BTC-USDT",
            Some(&market),
            404,
            "unknown_instrument",
        ),
        ("/healthz", None, 200, ""),
        ("/metrics", None, 200, ""),
    ];
    for (path, token, status, want) in cases {
        let response = http.get(path, token).await;
        let got_status = response.status().as_u16();
        let www = response.headers().get("www-authenticate").is_some();
        let text = response.text().await.unwrap();
        assert_eq!(got_status, status, "{path} {want}: {text}");
        if status != 200 {
            let body: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(code(&body), want, "{path}: {text}");
            assert_eq!(www, status == 401, "{path} {want}");
        }
        // No error message ever carries the presented key's secret part.
        if let Some(token) = token.filter(|t| t.len() > 20) {
            assert!(!text.contains(&token[8..]), "{text}");
        }
    }
    // Rate limit: burst of 2, then 429 with Retry-After.
    let statuses: Vec<u16> =
        futures_util::future::join_all((0..4).map(|_| http.get(TICKER, Some(&limited))))
            .await
            .iter()
            .map(|r| r.status().as_u16())
            .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    let response = http.get(TICKER, Some(&limited)).await;
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(code(&body), "rate_limited");
    assert!(metric(&gateway, "tickgate_errors_total{code=\"rate_limited\"}").await >= 1);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn websocket_rejections_and_channel_scopes() {
    let config = auth_config("ws");
    let dir = config.server.data_dir.clone();
    let (_, market) = offline_key(&dir, "market", &["market:read"]);
    let (_, history) = offline_key(&dir, "history", &["history:read"]);
    let gateway = start(config).await;
    let sub = r#"{"op":"subscribe","id":7,"channels":["book:sim:BTC-USDT"]}"#;

    // Auth required: a first message other than auth is refused and the socket closed.
    let mut ws = connect(&gateway).await;
    send(&mut ws, sub).await;
    let (error, close, _) = until_error_and_close(&mut ws, Duration::from_secs(3)).await;
    assert_eq!((error.as_str(), close), ("missing_credentials", 4002));

    // A bad token in the auth message.
    for (token, want) in [
        (typo(&market), "malformed_key"),
        (
            auth::token::generate(store::keys::Environment::Live)
                .unwrap()
                .expose()
                .to_string(),
            "wrong_environment",
        ),
    ] {
        let mut ws = connect(&gateway).await;
        send(&mut ws, &format!(r#"{{"op":"auth","token":"{token}"}}"#)).await;
        let (error, close, _) = until_error_and_close(&mut ws, Duration::from_secs(3)).await;
        assert_eq!((error.as_str(), close), (want, 4002));
    }

    // Silence past ws_auth_timeout_secs closes too.
    let mut config_short = auth_config("ws-timeout");
    config_short.auth.ws_auth_timeout_secs = 1;
    let quick = start(config_short).await;
    let mut ws = connect(&quick).await;
    let (error, close, took) = until_error_and_close(&mut ws, Duration::from_secs(3)).await;
    assert_eq!((error.as_str(), close), ("missing_credentials", 4002));
    assert!(took >= Duration::from_millis(900), "{took:?}");
    quick.stop().await.unwrap();

    // A bad key on the upgrade request is refused before upgrading.
    let url = format!("ws://{}/v1/ws", gateway.local_addr());
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", typo(&market)).parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
        }
        other => panic!("expected a 401, got {:?}", other.map(|_| ())),
    }

    // A key without market:read cannot subscribe to a market channel; the session stays.
    let mut ws = connect_with(&gateway, &history).await;
    assert!(matches!(
        recv(&mut ws).await,
        ServerMessage::Authenticated { .. }
    ));
    send(&mut ws, sub).await;
    match recv(&mut ws).await {
        ServerMessage::Error(e) => {
            assert_eq!(e.code.as_str(), "insufficient_scope");
            assert_eq!(e.channel.as_deref(), Some("book:sim:BTC-USDT"));
        }
        other => panic!("expected insufficient_scope, got {other:?}"),
    }
    send(&mut ws, r#"{"op":"ping","id":1}"#).await;
    assert!(matches!(recv(&mut ws).await, ServerMessage::Pong { .. }));
    // A key with it can, and a second auth on the same session is refused.
    let mut ws = connect_with(&gateway, &market).await;
    recv(&mut ws).await;
    send(&mut ws, sub).await;
    assert!(matches!(
        recv(&mut ws).await,
        ServerMessage::Subscribed { .. }
    ));
    send(
        &mut ws,
        &format!(r#"{{"op":"auth","id":2,"token":"{market}"}}"#),
    )
    .await;
    let reply = recv_until(&mut ws, |m| matches!(m, ServerMessage::Error(_))).await;
    assert!(matches!(reply, ServerMessage::Error(e) if e.code.as_str() == "bad_request"));
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn per_key_websocket_limits() {
    let mut config = auth_config("ws-limits");
    config.auth.ws_max_connections_per_key = 2;
    config.auth.ws_max_subscriptions_per_key = 2;
    let (_, key) = offline_key(&config.server.data_dir, "k", &["market:read"]);
    let gateway = start(config).await;
    let mut a = connect_with(&gateway, &key).await;
    let _b = connect_with(&gateway, &key).await;
    let url = format!("ws://{}/v1/ws", gateway.local_addr());
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }
    recv(&mut a).await;
    send(
        &mut a,
        r#"{"op":"subscribe","id":1,"channels":["ticker:sim:BTC-USDT","ticker:sim:ETH-USDT","ticker:sim:SOL-USDT"]}"#,
    )
    .await;
    match recv(&mut a).await {
        ServerMessage::Error(e) => assert_eq!(e.code.as_str(), "too_many_channels"),
        other => panic!("expected too_many_channels, got {other:?}"),
    }
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn anonymous_mode_reads_market_data_only_and_never_downgrades_a_bad_key() {
    let mut config = config(5.0);
    let dir = std::env::temp_dir().join(format!("tickgate-auth-{}-anon", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    config.server.data_dir = dir.clone();
    assert!(!config.auth.is_required());
    let (_, market) = offline_key(&dir, "m", &["market:read"]);
    let gateway = start(config).await;
    let http = Http::new(&gateway);
    assert_eq!(http.get(TICKER, NO_KEY).await.status(), 200);
    assert_eq!(http.get(TICKER, Some(&market)).await.status(), 200);
    let (status, body) = Http::json(http.get(TICKER, Some(&typo(&market))).await).await;
    assert_eq!((status, code(&body)), (401, "malformed_key"));
    let (status, body) = Http::json(http.get("/admin/v1/keys", NO_KEY).await).await;
    assert_eq!((status, code(&body)), (401, "missing_credentials"));
    let (status, body) = Http::json(
        http.post("/admin/v1/keys", Some(&market), serde_json::json!({}))
            .await,
    )
    .await;
    // A reader key on an admin route lacks the scope: it is told so, not told to sign a
    // request that would still be refused (issue 14).
    assert_eq!((status, code(&body)), (403, "insufficient_scope"));
    let mut ws = connect(&gateway).await;
    send(
        &mut ws,
        r#"{"op":"subscribe","id":1,"channels":["book:sim:BTC-USDT"]}"#,
    )
    .await;
    assert!(matches!(
        recv(&mut ws).await,
        ServerMessage::Subscribed { .. }
    ));
    // Authenticating after subscribing anonymously is refused (scopes are checked at subscribe).
    send(
        &mut ws,
        &format!(r#"{{"op":"auth","id":9,"token":"{market}"}}"#),
    )
    .await;
    let reply = recv_until(&mut ws, |m| matches!(m, ServerMessage::Error(_))).await;
    assert!(matches!(reply, ServerMessage::Error(e) if e.code.as_str() == "bad_request"));
    // An anonymous session may authenticate first, then subscribe.
    let mut ws = connect(&gateway).await;
    send(
        &mut ws,
        &format!(r#"{{"op":"auth","id":1,"token":"{market}"}}"#),
    )
    .await;
    assert!(matches!(
        recv(&mut ws).await,
        ServerMessage::Authenticated { .. }
    ));
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn live_mode_refuses_to_start_without_a_master_key() {
    let mut config = auth_config("live");
    config.auth.environment = store::keys::Environment::Live;
    config.auth.required = None;
    assert!(config.auth.is_required());
    let error = server::Gateway::start(config)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("master key"), "{error}");
}

#[tokio::test]
async fn failed_admin_authentications_are_audited_in_aggregate() {
    let config = auth_config("admin-fail");
    let admin = offline_signer(&config.server.data_dir, "admin", &["keys:admin"]);
    // Signed, so the refusal is for the scope (a bearer token would get signature_required).
    let market = offline_signer(&config.server.data_dir, "m", &["market:read"]);
    let gateway = start(config).await;
    let http = Http::new(&gateway);
    for _ in 0..5 {
        assert_eq!(
            http.get("/admin/v1/keys", Some(&market)).await.status(),
            403
        );
    }
    assert_eq!(http.get("/admin/v1/keys", NO_KEY).await.status(), 401);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, audit) = Http::json(http.get("/admin/v1/audit", Some(&admin)).await).await;
    let failures: Vec<&serde_json::Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "admin.auth_failed")
        .collect();
    let detail = |e: &serde_json::Value| -> serde_json::Value {
        serde_json::from_str(e["detail"].as_str().unwrap()).unwrap()
    };
    let scope_failures: u64 = failures
        .iter()
        .map(|e| detail(e))
        .filter(|d| d["code"] == "insufficient_scope")
        .map(|d| d["count"].as_u64().unwrap())
        .sum();
    assert_eq!(scope_failures, 5, "{audit}");
    assert!(
        failures.len() <= 3,
        "merged, not one row per failure: {audit}"
    );
    assert!(
        failures
            .iter()
            .any(|e| detail(e)["code"] == "missing_credentials")
    );
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn every_route_checks_its_scope() {
    let mut config = auth_config("routes");
    config.auth.public_metrics = Some(false);
    let dir = config.server.data_dir.clone();
    let (id, market) = offline_key(&dir, "market", &["market:read"]);
    let admin = offline_signer(&dir, "admin", &["keys:admin"]);
    let (_, metrics) = offline_key(&dir, "metrics", &["metrics:read"]);
    let (_, admin_bearer) = offline_key(&dir, "admin-bearer", &["keys:admin"]);
    let (_, history) = offline_key(&dir, "history", &["history:read"]);
    // Admin routes refuse bearer tokens: their scope check is seen with signed keys.
    let market_signed = offline_signer(&dir, "market-signed", &["market:read"]);
    let metrics_signed = offline_signer(&dir, "metrics-signed", &["metrics:read"]);
    let gateway = start(config).await;
    let http = Http::new(&gateway);
    use reqwest::Method;
    let q = "venue=sim&symbol=BTC-USDT";
    let market_routes = [
        "/v1/instruments".to_string(),
        format!("/v1/ticker?{q}"),
        format!("/v1/book?{q}"),
    ];
    let history_routes = [format!("/v1/candles?{q}"), format!("/v1/trades?{q}")];
    let admin_routes = [
        (Method::POST, "/admin/v1/keys".to_string()),
        (Method::GET, "/admin/v1/keys".to_string()),
        (Method::GET, format!("/admin/v1/keys/{id}")),
        (Method::PATCH, format!("/admin/v1/keys/{id}")),
        (Method::POST, format!("/admin/v1/keys/{id}/rotate")),
        (Method::POST, format!("/admin/v1/keys/{id}/rotate/cancel")),
        (Method::POST, format!("/admin/v1/keys/{id}/revoke")),
        (Method::GET, format!("/admin/v1/keys/{id}/usage")),
        (Method::POST, "/admin/v1/keys/rewrap".to_string()),
        (Method::GET, "/admin/v1/audit".to_string()),
    ];
    for path in &market_routes {
        let who: [(&dyn Credential, u16); 4] = [
            (&admin, 403),
            (&metrics, 403),
            (&history, 403),
            (&market, 200),
        ];
        for (token, status) in who {
            let got = http.get(path, Some(token)).await.status().as_u16();
            assert_eq!(got, status, "{path}");
        }
    }
    for path in &history_routes {
        let who: [(&dyn Credential, u16); 3] = [(&admin, 403), (&market, 403), (&history, 200)];
        for (token, status) in who {
            let got = http.get(path, Some(token)).await.status().as_u16();
            assert_eq!(got, status, "{path}");
        }
    }
    for (method, path) in &admin_routes {
        for token in [&market_signed, &metrics_signed] {
            let response = http
                .send(method.clone(), path, Some(token), serde_json::json!({}))
                .await;
            let (status, body) = Http::json(response).await;
            assert_eq!(
                (status, code(&body)),
                (403, "insufficient_scope"),
                "{method} {path}"
            );
        }
        let response = http
            .send(method.clone(), path, Some(&market), serde_json::json!({}))
            .await;
        let (status, body) = Http::json(response).await;
        assert_eq!(
            (status, code(&body)),
            (403, "insufficient_scope"),
            "{method} {path}: a bearer key lacking the scope is told so"
        );
        let response = http
            .send(
                method.clone(),
                path,
                Some(&admin_bearer),
                serde_json::json!({}),
            )
            .await;
        let (status, body) = Http::json(response).await;
        assert_eq!(
            (status, code(&body)),
            (403, "signature_required"),
            "{method} {path}: a bearer key with the scope must sign"
        );
        // With the admin key the guard lets it through (the handler may still refuse the
        // empty body, but never for want of a scope).
        let response = http
            .send(method.clone(), path, Some(&admin), serde_json::json!({}))
            .await;
        assert!(
            ![401, 403].contains(&response.status().as_u16()),
            "{method} {path}"
        );
    }
    for (token, status) in [(None, 401), (Some(&market), 403), (Some(&metrics), 200)] {
        let got = http
            .get("/metrics", token.map(String::as_str))
            .await
            .status();
        assert_eq!(got.as_u16(), status);
    }
    gateway.stop().await.unwrap();
}

/// `/metrics` lists key ids with their rejection codes: where keys are required it is not
/// public unless configured so (issue 14); a test deployment keeps it public.
#[tokio::test]
async fn metrics_follow_required_by_default() {
    let mut config = auth_config("metrics-default");
    config.auth.public_metrics = None;
    let gateway = start(config).await;
    let (status, body) = get_json(&gateway, "/metrics").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "missing_credentials");
    gateway.stop().await.unwrap();

    let mut config = auth_config("metrics-explicit");
    config.auth.public_metrics = Some(true);
    let gateway = start(config).await;
    let text = reqwest::get(format!("http://{}/metrics", gateway.local_addr()))
        .await
        .unwrap();
    assert_eq!(text.status(), 200);
    gateway.stop().await.unwrap();

    let open = crate::support::config(5.0); // a test deployment: required = false
    assert!(open.auth.is_metrics_public());
    let gateway = start(open).await;
    assert!(metric(&gateway, "tickgate_connections_open").await < 1_000_000);
    gateway.stop().await.unwrap();
}

/// A key with `metadata.allowed_ips` works only from those addresses: REST and the WebSocket
/// upgrade refuse it elsewhere with 403 `ip_not_allowed`, audited as `auth.ip_refused`; a bad
/// list is refused when the key is created (issue 14).
#[tokio::test]
async fn a_key_with_an_ip_allow_list_works_only_from_its_addresses() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let config = auth_config("ip-allow");
    let dir = config.server.data_dir.clone();
    let service = offline_service(&dir);
    let make = |name: &str, ips: serde_json::Value| {
        service.create(
            auth::NewKey {
                name: name.into(),
                scopes: vec!["market:read".into()],
                metadata: Some(serde_json::json!({ "allowed_ips": ips })),
                ..Default::default()
            },
            "test",
            model::Timestamp::now().0,
        )
    };
    let token = |issued: auth::Issued| issued.secret.unwrap().expose().to_string();
    let inside = token(make("inside", serde_json::json!(["127.0.0.0/8"])).unwrap());
    let outside_issued = make(
        "outside",
        serde_json::json!(["10.0.0.0/8", "2001:db8::/32"]),
    );
    let outside_issued = outside_issued.unwrap();
    let outside_id = outside_issued.record.id.clone();
    let outside = token(outside_issued);
    let error = make("bad", serde_json::json!(["10.0.0.1/8"])).unwrap_err();
    assert!(error.to_string().contains("host bits"), "{error}");
    let admin = offline_signer(&dir, "admin", &["keys:admin"]);
    let gateway = start(config).await;
    let http = Http::new(&gateway);

    assert_eq!(http.get(TICKER, Some(&inside)).await.status(), 200);
    let (status, body) = Http::json(http.get(TICKER, Some(&outside)).await).await;
    assert_eq!((status, code(&body)), (403, "ip_not_allowed"), "{body}");
    let mut request = format!("ws://{}/v1/ws", gateway.local_addr())
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {outside}").parse().unwrap(),
    );
    let refused = connect_outcome(request).await.err();
    assert_eq!(refused, Some((403, "ip_not_allowed".to_string())));

    let mut audited = false;
    for _ in 0..50 {
        let (_, audit) = Http::json(http.get("/admin/v1/audit", Some(&admin)).await).await;
        audited = audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "auth.ip_refused" && e["key_id"] == outside_id.as_str());
        if audited {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(audited, "no auth.ip_refused entry");
    gateway.stop().await.unwrap();
}
