//! History shared in PostgreSQL (`[cluster] postgres_url`): the ingest writes trades and
//! candles, an edge (no venue, no writer) serves `/v1/trades` and `/v1/candles` from the same
//! store with the same answers; and a node whose database goes away answers 503 `unavailable`
//! on the history endpoints, says so in `/readyz` and `/metrics`, and recovers.
//!
//! Needs TICKGATE_TEST_POSTGRES_URL (and, for the edge, TICKGATE_TEST_NATS_URL and
//! TICKGATE_TEST_REDIS_URL); each test works in its own schema and prefixes.

use crate::cluster_nonces::Cuttable;
use crate::support::*;
use serde_json::Value;
use server::cluster_config::ClusterRole;
use std::time::Duration;

/// A schema of its own, dropped on drop.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn new(tag: &str) -> Option<Self> {
        let Ok(url) = std::env::var("TICKGATE_TEST_POSTGRES_URL") else {
            eprintln!("skipped: TICKGATE_TEST_POSTGRES_URL not set");
            return None;
        };
        let stamp = format!("{:x}", model::Timestamp::now().0);
        Some(Self {
            url,
            name: format!("tg_it_{tag}_{}_{stamp}", std::process::id()),
        })
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, sql) = (
            self.url.clone(),
            format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
        // Drop runs inside the test's runtime: the sync client needs its own thread.
        let _ = std::thread::spawn(move || {
            if let Ok(mut client) = postgres::Client::connect(&url, postgres::NoTls) {
                let _ = client.batch_execute(&sql);
            }
        })
        .join();
    }
}

fn env(name: &str) -> Option<String> {
    let value = std::env::var(name).ok();
    if value.is_none() {
        eprintln!("skipped: {name} not set");
    }
    value
}

fn now_ms() -> i64 {
    model::Timestamp::now().0 / 1000
}

/// Polls `path` until its `key` array has at least `min` rows.
async fn wait_for_rows(gateway: &server::Gateway, path: &str, key: &str, min: usize) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get_json(gateway, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        if body[key].as_array().map_or(0, Vec::len) >= min {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path}: fewer than {min} rows: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_edge_serves_the_history_the_ingest_wrote() {
    let Some(schema) = Schema::new("hist_edge") else {
        return;
    };
    let (Some(nats), Some(redis)) = (
        env("TICKGATE_TEST_NATS_URL"),
        env("TICKGATE_TEST_REDIS_URL"),
    ) else {
        return;
    };
    let prefix = format!("tih{:x}", model::Timestamp::now().0);
    let node = |role: ClusterRole, id: &str| {
        let mut config = config(200.0);
        config.cluster.role = role;
        config.cluster.nats_url = nats.clone();
        config.cluster.nats_prefix = prefix.clone();
        config.cluster.redis_url = redis.clone();
        config.cluster.redis_prefix = format!("{prefix}:");
        config.cluster.postgres_url = schema.url.clone();
        config.cluster.postgres_schema = schema.name.clone();
        config.cluster.node_id = id.into();
        config.history.flush_interval_ms = 50;
        config
    };
    let ingest = start(node(ClusterRole::Ingest, "ingest-1")).await;
    let edge = start(node(ClusterRole::Edge, "edge-1")).await;

    // Nothing runs on the edge that could write: what it serves comes from the ingest.
    assert!(edge.state().market().instruments().is_empty());
    let (status, ready) = get_json(&edge, "/readyz").await;
    assert_eq!(
        (status, &ready["history_store"]),
        (200, &"ok".into()),
        "{ready}"
    );

    wait_for_rows(
        &edge,
        "/v1/trades?venue=sim&symbol=BTC-USDT&limit=5000",
        "trades",
        50,
    )
    .await;
    // A fixed range in the past, once the writer has flushed it: both nodes, same rows.
    let to = now_ms() - 200;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let path = format!("/v1/trades?venue=sim&symbol=BTC-USDT&from=0&to={to}&limit=5000");
    let (status, on_edge) = get_json(&edge, &path).await;
    assert_eq!(status, 200, "{on_edge}");
    let (_, on_ingest) = get_json(&ingest, &path).await;
    assert!(
        on_edge["trades"].as_array().unwrap().len() >= 10,
        "{path}: {on_edge}"
    );
    assert_eq!(on_edge, on_ingest, "the same store, the same answer");
    // Paging on the edge with its cursors returns the same rows.
    let small = path.replace("limit=5000", "limit=7");
    let mut paged = Vec::new();
    let mut url = small.clone();
    loop {
        let (status, page) = get_json(&edge, &url).await;
        assert_eq!(status, 200, "{url}: {page}");
        paged.extend(page["trades"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => url = format!("{small}&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(&paged, on_edge["trades"].as_array().unwrap());

    // Closed 1 s candles written by the ingest's aggregator.
    let candles = wait_for_rows(
        &edge,
        "/v1/candles?venue=sim&symbol=BTC-USDT&interval=1s&order=desc&limit=5",
        "candles",
        1,
    )
    .await;
    let newest = &candles["candles"][0];
    // `start` is in µs, the query takes ms.
    let start = newest["start"].as_i64().expect("start") / 1000;
    let one = format!(
        "/v1/candles?venue=sim&symbol=BTC-USDT&interval=1s&from={start}&to={}",
        start + 1
    );
    let (_, on_ingest) = get_json(&ingest, &one).await;
    let (_, on_edge) = get_json(&edge, &one).await;
    assert_eq!(on_edge["candles"].as_array().unwrap().len(), 1, "{on_edge}");
    assert_eq!(on_edge, on_ingest);
    // Unknown to the store and not served: still a clear 400 on the edge.
    let (status, body) = get_json(&edge, "/v1/trades?venue=sim&symbol=NOPE-USDT").await;
    assert_eq!(
        (status, &body["code"]),
        (400, &"unknown_symbol".into()),
        "{body}"
    );
    assert_eq!(
        metric(&edge, "tickgate_history_batches_total").await,
        0,
        "the edge writes nothing"
    );
    assert!(metric(&ingest, "tickgate_history_batches_total").await > 0);
    edge.stop().await.unwrap();
    ingest.stop().await.unwrap();
}

// Several threads: the forwarder runs on the test's runtime, and must keep forwarding while
// the gateway's own blocking calls wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_loses_postgres_answers_unavailable_and_recovers() {
    let Some(schema) = Schema::new("hist_lost") else {
        return;
    };
    let rest = schema.url.split_once("://").unwrap().1;
    let (user, rest) = rest.split_once('@').unwrap_or(("", rest));
    let target = rest.split(['/', '?']).next().unwrap().to_string();
    let path = &rest[target.len()..];
    let mut link = Cuttable::to(target.clone()).await;
    let via = |addr: &str| {
        let user = if user.is_empty() {
            String::new()
        } else {
            format!("{user}@")
        };
        format!("postgres://{user}{addr}{path}")
    };
    let mut config = config(200.0);
    config.cluster.postgres_url = via(&link.addr);
    config.cluster.postgres_schema = schema.name.clone();
    config.history.flush_interval_ms = 50;
    let gateway = start(config).await;
    let trades = "/v1/trades?venue=sim&symbol=BTC-USDT&limit=10";
    wait_for_rows(&gateway, trades, "trades", 5).await;
    let (status, ready) = get_json(&gateway, "/readyz").await;
    assert_eq!((status, &ready["history_store"]), (200, &"ok".into()));

    link.cut();
    let (status, body) = get_json(&gateway, trades).await;
    assert_eq!(
        (status, &body["code"]),
        (503, &"unavailable".into()),
        "{body}"
    );
    assert!(
        !body["message"].as_str().unwrap().contains(&target),
        "no connection detail in the answer: {body}"
    );
    let (status, body) = get_json(
        &gateway,
        "/v1/candles?venue=sim&symbol=BTC-USDT&interval=1s",
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (503, &"unavailable".into()),
        "{body}"
    );
    let (status, ready) = get_json(&gateway, "/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["history_store"], "unavailable");
    assert_eq!(ready["ready"], false);
    assert_eq!(
        metric(&gateway, "tickgate_history_store_unavailable").await,
        1
    );
    // The writer holds its batch meanwhile (its window is 30 s): nothing dropped yet.
    assert_eq!(
        metric(
            &gateway,
            "tickgate_history_dropped_rows_total{kind=\"trades\"}"
        )
        .await,
        0
    );

    // The database comes back (on the same address): history is served again and the rows
    // written during the outage are there.
    let addr = link.addr.clone();
    drop(link);
    let _back = Cuttable::to_at(target, &addr).await;
    let before = now_ms();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get_json(&gateway, trades).await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never recovered: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_rows(
        &gateway,
        &format!("/v1/trades?venue=sim&symbol=BTC-USDT&from={before}&limit=10"),
        "trades",
        1,
    )
    .await;
    let (status, ready) = get_json(&gateway, "/readyz").await;
    assert_eq!(
        (status, &ready["history_store"]),
        (200, &"ok".into()),
        "{ready}"
    );
    assert_eq!(
        metric(
            &gateway,
            "tickgate_history_dropped_rows_total{kind=\"trades\"}"
        )
        .await,
        0,
        "the outage was shorter than the writer's window"
    );
    gateway.stop().await.unwrap();
}
