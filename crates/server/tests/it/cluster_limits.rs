//! Shared limits of a cluster (`[cluster] redis_url`): two gateways in one process on one key
//! store and one Redis spend one rate budget per key, and count one set of WebSocket
//! connections and subscriptions per key; a gateway that loses Redis refuses keyed requests
//! and sessions `unavailable` and is not ready (fail closed, no local fallback).
//!
//! Needs TICKGATE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379); each test uses its own key
//! prefix.

use crate::auth_support::{
    Http, auth_config, code, connect_outcome, offline_service, offline_signer,
};
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
    key_and_id(config, name, rate).1
}

/// [`key`], and its id.
fn key_and_id(config: &Config, name: &str, rate: Option<RateLimit>) -> (String, String) {
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
    let token = issued.secret.unwrap().expose().to_string();
    (issued.record.id, token)
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
    let started = std::time::Instant::now();
    for i in 0..6 {
        let node = if i % 2 == 0 { &a } else { &b };
        assert_eq!(ticker(node, &token).await.0, 200, "request {i}");
    }
    // Then each node refuses, with the same code and Retry-After as one node's. Only the
    // refill (1/s) may admit more meanwhile; per-node budgets would admit 12 in all.
    let mut admitted = 6;
    let mut refused = [false, false];
    while refused != [true, true] && admitted < 12 {
        for (i, node) in [&a, &b].into_iter().enumerate() {
            match ticker(node, &token).await {
                (200, _, _) => admitted += 1,
                (status, code, retry) => {
                    assert_eq!((status, code.as_str()), (429, "rate_limited"));
                    assert_eq!(retry.as_deref(), Some("1"));
                    refused[i] = true;
                }
            }
        }
    }
    let refill = started.elapsed().as_secs() + 1;
    assert!(admitted <= 6 + refill, "{admitted} admitted in {refill} s");
    assert_eq!(refused, [true, true]);
    let (status, ready) = get_json(&a, "/readyz").await;
    assert_eq!(ready["shared_limits"], "ok", "{status} {ready}");
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn a_signed_keys_rate_limit_is_one_budget_across_nodes() {
    let Some(url) = redis_url() else { return };
    let mut config = cluster_config("cluster-rate-signed", url);
    // The key has no limit of its own: the default applies, shared all the same.
    config.auth.rate_limit = RateLimit {
        per_sec: 1,
        burst: 4,
    };
    let signer = offline_signer(&config.server.data_dir, "signed-budget", &["market:read"]);
    let a = start(config.clone()).await;
    let b = start(config).await;
    let (http_a, http_b) = (Http::new(&a), Http::new(&b));
    let started = std::time::Instant::now();
    for i in 0..4 {
        let http = if i % 2 == 0 { &http_a } else { &http_b };
        let (status, body) = Http::json(http.get(TICKER, Some(&signer)).await).await;
        assert_eq!(status, 200, "request {i}: {body}");
    }
    // As for bearer tokens: only the refill may admit more; per-node budgets would admit 8.
    let mut admitted = 4;
    let mut refused = [false, false];
    while refused != [true, true] && admitted < 8 {
        for (i, http) in [&http_a, &http_b].into_iter().enumerate() {
            let (status, body) = Http::json(http.get(TICKER, Some(&signer)).await).await;
            match status {
                200 => admitted += 1,
                _ => {
                    assert_eq!((status, code(&body)), (429, "rate_limited"));
                    refused[i] = true;
                }
            }
        }
    }
    let refill = started.elapsed().as_secs() + 1;
    assert!(admitted <= 4 + refill, "{admitted} admitted in {refill} s");
    assert_eq!(refused, [true, true]);
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
    let on_a = open(&a, &token).await.unwrap();
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
    let mut sub_a = reopened.expect("the slot of a closed session is given back");
    drop(on_a);
    // Subscriptions: two per key across both nodes' sessions (one session on each).
    let mut sub_b = None;
    for _ in 0..50 {
        sub_b = open(&b, &token).await.ok();
        if sub_b.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut sub_b = sub_b.expect("the slot of a closed session is given back");
    send(
        &mut sub_a,
        r#"{"op":"subscribe","id":1,"channels":["ticker:sim:BTC-USDT","ticker:sim:ETH-USDT"]}"#,
    )
    .await;
    assert!(matches!(
        recv(&mut sub_a).await,
        ServerMessage::Subscribed { .. }
    ));
    send(
        &mut sub_b,
        r#"{"op":"subscribe","id":2,"channels":["ticker:sim:SOL-USDT"]}"#,
    )
    .await;
    match recv(&mut sub_b).await {
        ServerMessage::Error(e) => assert_eq!(e.code.as_str(), "too_many_channels"),
        other => panic!("expected too_many_channels, got {other:?}"),
    }
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

/// A node that dies without a word (kill -9: no give-back, no heartbeat) holds a key's
/// connection slots only until its lease runs out. The dead node is a real instance on the
/// same Redis and prefix, with a short lease, that takes slots and is then dropped.
#[tokio::test]
async fn a_dead_nodes_sessions_stop_counting_after_its_lease() {
    use auth::wscaps_redis::{Cap, RedisWsCaps};
    let Some(url) = redis_url() else { return };
    let mut config = cluster_config("cluster-ws-dead-node", url.clone());
    config.auth.ws_max_connections_per_key = 2;
    let (key_id, token) = key_and_id(&config, "orphaned", None);
    let gateway = start(config.clone()).await;
    let lease = Duration::from_millis(1_500);
    let dead = RedisWsCaps::connect(
        &url,
        &config.cluster.redis_prefix,
        "doomed",
        lease,
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    dead.heartbeat(&[]).await.unwrap();
    assert!(dead.acquire(&key_id, Cap::Connections, 2, 2).await.unwrap());
    drop(dead);
    assert_eq!(
        open(&gateway, &token).await.err(),
        Some((429, "rate_limited".into()))
    );
    tokio::time::sleep(lease + Duration::from_millis(300)).await;
    let ws = open(&gateway, &token).await;
    assert!(ws.is_ok(), "{:?}", ws.err());
    gateway.stop().await.unwrap();
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
