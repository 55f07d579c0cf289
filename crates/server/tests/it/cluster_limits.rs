//! Shared limits of a cluster (`[cluster] redis_url`): two gateways in one process on one key
//! store and one Redis spend one rate budget per key, and count one set of WebSocket
//! connections and subscriptions per key; a gateway that loses Redis refuses keyed requests
//! and sessions `unavailable` and is not ready (fail closed, no local fallback).
//!
//! Needs TICKGATE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379); each test uses its own key
//! prefix.

use crate::auth_support::{auth_config, code, connect_outcome, offline_service};
use crate::cluster_nonces::{Cuttable, prefix, redis_url};
use crate::support::{Ws, get_json, metric, recv, send, start};
use auth::NewKey;
use protocol::ServerMessage;
use server::{Config, Gateway};
use std::time::Duration;
use store::keys::RateLimit;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const TICKER: &str = "/v1/ticker?venue=sim&symbol=BTC-USDT";

/// A config on its own data directory sharing Redis under a fresh prefix.
fn cluster_config(name: &str, redis: String) -> Config {
    let mut config = auth_config(name);
    config.cluster.redis_url = redis;
    config.cluster.redis_prefix = prefix();
    config
}

/// A bearer key with `market:read` and `rate`, made offline; its token.
fn key(config: &Config, name: &str, rate: Option<RateLimit>) -> String {
    let issued = offline_service(&config.server.data_dir)
        .create(
            NewKey {
                name: name.into(),
                scopes: vec!["market:read".into()],
                rate_limit: rate,
                ..Default::default()
            },
            "test",
            model::Timestamp::now().0,
        )
        .unwrap();
    issued.secret.unwrap().expose().to_string()
}

/// GET [`TICKER`] with `token`: (status, code, Retry-After).
async fn ticker(gateway: &Gateway, token: &str) -> (u16, String, Option<String>) {
    let response = reqwest::Client::new()
        .get(format!("http://{}{TICKER}", gateway.local_addr()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let json: serde_json::Value = response.json().await.unwrap_or_default();
    (status, code(&json).to_string(), retry)
}

/// Opens a WebSocket with `token`: Ok(socket after `authenticated`) or Err((status, code)).
async fn open(gateway: &Gateway, token: &str) -> Result<Ws, (u16, String)> {
    let mut request = format!("ws://{}/v1/ws", gateway.local_addr())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    connect_outcome(request).await.map(|(ws, first)| {
        assert!(
            matches!(first, ServerMessage::Authenticated { .. }),
            "{first:?}"
        );
        ws
    })
}

#[tokio::test]
async fn a_keys_rate_limit_is_one_budget_across_nodes() {
    let Some(url) = redis_url() else { return };
    let config = cluster_config("cluster-rate", url);
    // Burst 6 at 1/s: the two nodes together admit 6, not 12.
    let limit = RateLimit {
        per_sec: 1,
        burst: 6,
    };
    let token = key(&config, "shared-budget", Some(limit));
    let a = start(config.clone()).await;
    let b = start(config).await;
    for i in 0..6 {
        let node = if i % 2 == 0 { &a } else { &b };
        assert_eq!(ticker(node, &token).await.0, 200, "request {i}");
    }
    // The 7th is refused on either node, with the same code and Retry-After as one node's.
    for node in [&a, &b] {
        let (status, code, retry) = ticker(node, &token).await;
        assert_eq!((status, code.as_str()), (429, "rate_limited"));
        assert_eq!(retry.as_deref(), Some("1"));
    }
    let (status, ready) = get_json(&a, "/readyz").await;
    assert_eq!(ready["shared_limits"], "ok", "{status} {ready}");
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn websocket_connection_and_subscription_caps_hold_across_nodes() {
    let Some(url) = redis_url() else { return };
    let mut config = cluster_config("cluster-ws-caps", url);
    config.auth.ws_max_connections_per_key = 2;
    config.auth.ws_max_subscriptions_per_key = 2;
    let token = key(&config, "capped", None);
    let a = start(config.clone()).await;
    let b = start(config).await;
    let mut on_a = open(&a, &token).await.unwrap();
    let on_b = open(&b, &token).await.unwrap();
    // Each node holds one; the cluster holds two: the third is refused on both.
    assert_eq!(
        open(&a, &token).await.err(),
        Some((429, "rate_limited".into()))
    );
    assert_eq!(
        open(&b, &token).await.err(),
        Some((429, "rate_limited".into()))
    );
    // A closed session gives its slot back to the cluster (in the background: poll).
    drop(on_b);
    let mut reopened = None;
    for _ in 0..50 {
        match open(&a, &token).await {
            Ok(ws) => {
                reopened = Some(ws);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let mut second = reopened.expect("the slot of a closed session is given back");
    // Subscriptions: two per key across both sessions (here on one node, counted in Redis).
    send(
        &mut on_a,
        r#"{"op":"subscribe","id":1,"channels":["ticker:sim:BTC-USDT","ticker:sim:ETH-USDT"]}"#,
    )
    .await;
    assert!(matches!(
        recv(&mut on_a).await,
        ServerMessage::Subscribed { .. }
    ));
    send(
        &mut second,
        r#"{"op":"subscribe","id":2,"channels":["ticker:sim:SOL-USDT"]}"#,
    )
    .await;
    match recv(&mut second).await {
        ServerMessage::Error(e) => assert_eq!(e.code.as_str(), "too_many_channels"),
        other => panic!("expected too_many_channels, got {other:?}"),
    }
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn a_node_that_loses_redis_refuses_keyed_requests_and_sessions() {
    let Some(url) = redis_url() else { return };
    let target = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut link = Cuttable::to(target).await;
    let mut config = cluster_config("cluster-limits-lost", format!("redis://{}", link.addr));
    config.cluster.redis_timeout_ms = 200;
    let token = key(&config, "partitioned-limits", None);
    let gateway = start(config).await;
    assert_eq!(ticker(&gateway, &token).await.0, 200);
    let held = open(&gateway, &token).await.unwrap();
    link.cut();
    // A bearer request (no nonce) needs the shared budget: refused, never admitted locally.
    let (status, code, retry) = ticker(&gateway, &token).await;
    assert_eq!((status, code.as_str()), (503, "unavailable"));
    assert_eq!(retry.as_deref(), Some("1"));
    // A new session cannot be counted against the key's cap: refused.
    assert_eq!(
        open(&gateway, &token).await.err(),
        Some((503, "unavailable".into()))
    );
    let (status, ready) = get_json(&gateway, "/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["shared_limits"], "unavailable");
    assert_eq!(ready["ready"], false);
    assert!(
        metric(
            &gateway,
            "tickgate_cluster_redis_failures_total{use=\"rate_limits\"}"
        )
        .await
            >= 1
    );
    assert!(
        metric(
            &gateway,
            "tickgate_cluster_redis_failures_total{use=\"ws_caps\"}"
        )
        .await
            >= 1
    );
    drop(held);
    gateway.stop().await.unwrap();
}
