//! Alerts in a cluster (`[cluster] postgres_url` and the NATS bus): an ingest running the
//! simulator and two edges, all in one process, sharing one PostgreSQL schema. A rule created
//! through edge A is listed through edge B; each alert partition is evaluated by exactly one
//! edge (its lease), so every firing is delivered once to a local webhook receiver although
//! three delivery workers share the outbox; when the evaluating edge shuts down, the other
//! takes its partitions over and new rules fire there.
//!
//! Needs TICKGATE_TEST_POSTGRES_URL, TICKGATE_TEST_NATS_URL and TICKGATE_TEST_REDIS_URL
//! (edges share nonces); each test uses its own schema, NATS prefix and Redis prefix.

use crate::auth_signed::sealing_config;
use crate::auth_support::*;
use crate::support::*;
use alerts::testing::Receiver;
use reqwest::Method;
use serde_json::{Value, json};
use server::cluster_config::ClusterRole;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use store::keys::Environment;
use store::keys_postgres::PgKeyStore;

const PARTITIONS: [&str; 2] = ["alerts-cross", "alerts-sim"];

/// The three services and this test's names in them; the schema is dropped on drop.
struct Env {
    postgres: String,
    nats: String,
    redis: String,
    schema: String,
    prefix: String,
}

impl Env {
    fn new(tag: &str) -> Option<Self> {
        let var = |name: &str| {
            let value = std::env::var(name).ok();
            if value.is_none() {
                eprintln!("skipped: {name} not set");
            }
            value
        };
        let (postgres, nats, redis) = (
            var("TICKGATE_TEST_POSTGRES_URL")?,
            var("TICKGATE_TEST_NATS_URL")?,
            var("TICKGATE_TEST_REDIS_URL")?,
        );
        let now = model::Timestamp::now().0;
        Some(Self {
            postgres,
            nats,
            redis,
            schema: format!("tg_it_{tag}_{:x}", now),
            prefix: format!("tal{:x}", now),
        })
    }

    /// A node of the cluster: keys and alerts in the shared schema, the same master key
    /// (webhook secrets are sealed under it, and any node's worker may send a delivery).
    fn node(&self, role: ClusterRole, name: &str) -> server::Config {
        let mut config = sealing_config(&format!("{name}-{}", self.prefix));
        config.venues[0].sim.rate = 50.0;
        config.cluster.role = role;
        config.cluster.node_id = name.into();
        config.cluster.nats_url = self.nats.clone();
        config.cluster.nats_prefix = self.prefix.clone();
        config.cluster.lease_ttl_ms = 1_000;
        config.cluster.postgres_url = self.postgres.clone();
        config.cluster.postgres_schema = self.schema.clone();
        if role == ClusterRole::Edge {
            config.cluster.redis_url = self.redis.clone();
            config.cluster.redis_prefix = format!("{}:", self.prefix);
        }
        config.alerts.enabled = true;
        config.alerts.delivery.allow_addresses = vec!["127.0.0.1".into()];
        config
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let (url, sql) = (
            self.postgres.clone(),
            format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
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

/// Keys of principal `acme` made directly in the shared store (as `tickgate keys create`
/// with the cluster's config does): a signer with `alerts:write` and a `market:read` bearer.
async fn keys(env: &Env) -> (Signer, String) {
    let (url, schema) = (env.postgres.clone(), env.schema.clone());
    tokio::task::spawn_blocking(move || {
        let store = PgKeyStore::open(&url, &schema).unwrap();
        let service = auth::KeyService::new(
            Arc::new(store.clone()),
            Arc::new(store.audit_log()),
            auth::KeyRing::default(),
            Environment::Test,
        );
        let signer = offline_principal_signer(&service, "acme", &["alerts:write"], Some("acme"));
        let issued = service
            .create(
                auth::NewKey {
                    name: "reader".into(),
                    scopes: vec!["market:read".into()],
                    ..Default::default()
                },
                "test",
                model::Timestamp::now().0,
            )
            .unwrap();
        (signer, issued.secret.unwrap().expose().to_string())
    })
    .await
    .unwrap()
}

async fn call(http: &Http, method: Method, path: &str, who: &Signer, body: Value) -> (u16, Value) {
    let response = if method == Method::GET {
        http.get(path, Some(who)).await
    } else {
        http.send(method, path, Some(who), body).await
    };
    Http::json(response).await
}

/// The exclusive tasks an edge runs, from its `/readyz`.
async fn tasks(edge: &server::Gateway) -> BTreeSet<String> {
    let (_, ready) = get_json(edge, "/readyz").await;
    ready["bus"]["tasks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `check` holds, at most `limit`, then returns how long it took.
async fn within<F: std::future::Future<Output = bool>>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> Duration {
    let started = tokio::time::Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

/// The ingest's last trade price of BTC-USDT.
async fn last_price(ingest: &Http, bearer: &str) -> String {
    for _ in 0..100 {
        let (status, t) = Http::json(
            ingest
                .get("/v1/ticker?venue=sim&symbol=BTC-USDT", Some(bearer))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{t}");
        if let Some(last) = t["ticker"]["last"].as_str() {
            return last.to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no trade yet");
}

/// Rules at the current price, both ways, each firing at most once: the sim walks around its
/// last price, so at least one fires soon.
async fn rules_at_the_price(
    edge: &Http,
    ingest: &Http,
    acme: &Signer,
    bearer: &str,
    endpoint: &str,
) -> Vec<String> {
    let level = last_price(ingest, bearer).await;
    let mut ids = Vec::new();
    for direction in ["above", "below"] {
        let rule = json!({"name": direction, "condition": {"kind": "price",
            "channel": "trades:sim:BTC-USDT", "direction": direction, "level": level},
            "endpoints": [endpoint], "max_firings": 1});
        let (status, created) = call(edge, Method::POST, "/v1/alerts", acme, rule).await;
        assert_eq!(status, 201, "{created}");
        ids.push(created["id"].as_str().unwrap().to_string());
    }
    ids
}

/// The firing ids of `rules`, as listed through `edge`. Each rule fires at most once
/// (`max_firings: 1`): a rule evaluated by two nodes would fire twice, once on each.
async fn firings(edge: &Http, acme: &Signer, rules: &[String]) -> BTreeSet<String> {
    let (status, body) = call(edge, Method::GET, "/v1/alerts/firings", acme, json!(null)).await;
    assert_eq!(status, 200, "{body}");
    let mut ids = BTreeSet::new();
    for rule in rules {
        let of_rule: Vec<&str> = body["firings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["rule_id"] == rule.as_str())
            .filter_map(|f| f["id"].as_str())
            .collect();
        assert!(
            of_rule.len() <= 1,
            "rule {rule} fired more than once: {body}"
        );
        ids.extend(of_rule.into_iter().map(String::from));
    }
    ids
}

/// Waits until at least one of `rules` fired and every firing of them reached the receiver,
/// then checks that each was received exactly once (a short while later, so a second
/// delivery by another node would have arrived).
async fn each_firing_delivered_once(
    edge: &Http,
    acme: &Signer,
    receiver: &Receiver,
    rules: &[String],
) -> BTreeSet<String> {
    let received = || -> Vec<String> {
        let received = receiver.received.lock();
        received
            .iter()
            .map(|r| r.headers["webhook-id"].clone())
            .collect()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let fired = loop {
        let fired = firings(edge, acme, rules).await;
        let got: BTreeSet<String> = received().into_iter().collect();
        if !fired.is_empty() && fired.is_subset(&got) {
            break fired;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "firings {fired:?}, received {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let fired_now = firings(edge, acme, rules).await;
    let got: Vec<String> = received()
        .into_iter()
        .filter(|id| fired_now.contains(id))
        .collect();
    let distinct: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(
        got.len(),
        distinct.len(),
        "a firing delivered twice: {got:?}"
    );
    assert!(fired.is_subset(&distinct));
    fired_now
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_shared_each_firing_is_delivered_once_and_a_standby_edge_takes_over() {
    let Some(env) = Env::new("alerts") else {
        return;
    };
    let _heavy = HEAVY.lock().await;
    let (acme, bearer) = keys(&env).await;
    let ingest = start(env.node(ClusterRole::Ingest, "ingest")).await;
    let a = start(env.node(ClusterRole::Edge, "edge-a")).await;
    let b = start(env.node(ClusterRole::Edge, "edge-b")).await;
    let (http_ingest, http_a, http_b) = (Http::new(&ingest), Http::new(&a), Http::new(&b));

    // Each partition is evaluated by exactly one edge.
    let (edge_a, edge_b) = (&a, &b);
    within(
        Duration::from_secs(5),
        "every partition leased",
        || async move {
            let (on_a, on_b) = (tasks(edge_a).await, tasks(edge_b).await);
            on_a.is_disjoint(&on_b)
                && on_a.union(&on_b).cloned().collect::<Vec<_>>() == PARTITIONS.map(String::from)
        },
    )
    .await;
    let (_, ready) = get_json(&ingest, "/readyz").await;
    assert!(
        ready["bus"].get("tasks").is_none(),
        "an ingest evaluates none: {ready}"
    );

    // An endpoint and rules made through A are B's too.
    let receiver = Receiver::start(200, Duration::ZERO).await;
    let url = format!("http://127.0.0.1:{}/hook", receiver.port);
    let (status, endpoint) = call(
        &http_a,
        Method::POST,
        "/v1/webhooks",
        &acme,
        json!({"url": url}),
    )
    .await;
    assert_eq!(status, 201, "{endpoint}");
    let endpoint = endpoint["id"].as_str().unwrap().to_string();
    let rules = rules_at_the_price(&http_a, &http_ingest, &acme, &bearer, &endpoint).await;
    let (status, listed) = call(&http_b, Method::GET, "/v1/alerts", &acme, json!(null)).await;
    assert_eq!(status, 200, "{listed}");
    let on_b: BTreeSet<&str> = listed["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(rules.iter().all(|r| on_b.contains(r.as_str())), "{listed}");
    let (status, shown) = call(
        &http_b,
        Method::GET,
        &format!("/v1/webhooks/{endpoint}"),
        &acme,
        json!(null),
    )
    .await;
    assert_eq!(status, 200, "{shown}");

    // Every firing is delivered once, though three workers share the outbox.
    let fired = each_firing_delivered_once(&http_b, &acme, &receiver, &rules).await;
    eprintln!(
        "first rules fired {} time(s), each delivered once",
        fired.len()
    );

    // The edge evaluating `sim` stops; the other takes the partition over.
    let (holder, survivor) = if tasks(&a).await.contains("alerts-sim") {
        (a, b)
    } else {
        (b, a)
    };
    let http_survivor = Http::new(&survivor);
    holder.stop().await.unwrap();
    let standby = &survivor;
    let took = within(
        Duration::from_secs(3),
        "the standby edge takes alerts-sim",
        || async move { tasks(standby).await.contains("alerts-sim") },
    )
    .await;
    eprintln!("alerts-sim taken over after {took:?}");
    within(
        Duration::from_secs(3),
        "the standby edge runs every partition",
        || async move { tasks(standby).await.len() == PARTITIONS.len() },
    )
    .await;
    let later = rules_at_the_price(&http_survivor, &http_ingest, &acme, &bearer, &endpoint).await;
    let fired_later = each_firing_delivered_once(&http_survivor, &acme, &receiver, &later).await;
    assert!(fired_later.is_disjoint(&fired));
    assert_eq!(
        metric(&survivor, "tickgate_bus_exclusive_tasks{role=\"edge\"}").await,
        2
    );
    survivor.stop().await.unwrap();
    ingest.stop().await.unwrap();
}

/// A node whose PostgreSQL goes away answers the alert routes `503 unavailable` (keys keep
/// verifying from memory), never naming the database, and serves them again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_loses_postgres_answers_unavailable_on_alert_routes_and_recovers() {
    let Some(env) = Env::new("alerts_lost") else {
        return;
    };
    let rest = env.postgres.split_once("://").unwrap().1;
    let (user, rest) = rest.split_once('@').map_or(("", rest), |(u, r)| (u, r));
    let target = rest.split(['/', '?']).next().unwrap().to_string();
    let path = &rest[target.len()..];
    let mut link = crate::cluster_nonces::Cuttable::to(target.clone()).await;
    let user = if user.is_empty() {
        String::new()
    } else {
        format!("{user}@")
    };
    let (acme, _) = keys(&env).await;
    let mut config = sealing_config(&format!("lost-{}", env.prefix));
    config.cluster.postgres_url = format!("postgres://{user}{}{path}", link.addr);
    config.cluster.postgres_schema = env.schema.clone();
    let gateway = start(config).await;
    let http = Http::new(&gateway);
    let (status, body) = call(&http, Method::GET, "/v1/alerts", &acme, json!(null)).await;
    assert_eq!(status, 200, "{body}");

    link.cut();
    for path in ["/v1/alerts", "/v1/webhooks", "/v1/alerts/firings"] {
        let (status, body) = call(&http, Method::GET, path, &acme, json!(null)).await;
        assert_eq!(
            (status, &body["code"]),
            (503, &"unavailable".into()),
            "{path}: {body}"
        );
        assert!(!body.to_string().contains(&target), "{body}");
    }

    let addr = link.addr.clone();
    drop(link);
    let _back = crate::cluster_nonces::Cuttable::to_at(target, &addr).await;
    within(Duration::from_secs(20), "alert routes served again", || {
        let (http, acme) = (&http, &acme);
        async move {
            call(http, Method::GET, "/v1/alerts", acme, json!(null))
                .await
                .0
                == 200
        }
    })
    .await;
    gateway.stop().await.unwrap();
}
