//! Keys and the audit log shared in PostgreSQL (`[cluster] postgres_url`): two gateways in one
//! process, each with its own data directory, on one schema. A key created through node A
//! works on node B; revoking it through A closes B's live session within 1 s, woken by NOTIFY
//! (B polls only every 900 ms, the slowest allowed); B's listener reconnects when its
//! connection is killed. A store that cannot be reached (or asks for TLS) stops the start
//! with an error naming `cluster.postgres_url`, never its password.
//!
//! Needs TICKGATE_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test); each test
//! works in its own schema, dropped afterwards.

use crate::auth_support::*;
use crate::support::*;
use protocol::ServerMessage;
use std::sync::Arc;
use std::time::Duration;
use store::keys::Environment;
use store::keys_postgres::PgKeyStore;

const TICKER: &str = "/v1/ticker?venue=sim&symbol=BTC-USDT";
const SUB: &str = r#"{"op":"subscribe","id":1,"channels":["ticker:sim:BTC-USDT"]}"#;

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
        let nonce = auth::httpsig::sign::random_nonce().unwrap().to_lowercase();
        let suffix: String = nonce.chars().filter(char::is_ascii_alphanumeric).collect();
        Some(Self {
            url,
            name: format!("tg_it_{tag}_{}", &suffix[..suffix.len().min(12)]),
        })
    }

    /// Runs `sql` on a connection of its own (blocking: call from `spawn_blocking`).
    fn exec(url: &str, sql: &str) {
        let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
        client.batch_execute(sql).unwrap();
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, sql) = (
            self.url.clone(),
            format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
        // Drop runs inside the test's runtime: the sync client needs its own thread.
        let _ = std::thread::spawn(move || Schema::exec(&url, &sql)).join();
    }
}

fn node_config(name: &str, schema: &Schema) -> server::Config {
    let mut config = auth_config(name);
    config.cluster.postgres_url = schema.url.clone();
    config.cluster.postgres_schema = schema.name.clone();
    // The slowest poll allowed: changes should arrive by NOTIFY, long before it (the
    // notification counter below shows they did).
    config.auth.poll_interval_ms = 900;
    config
}

/// An admin key made directly in the shared store, as `tickgate keys create` with the
/// cluster's config does.
async fn admin_signer(schema: &Schema) -> Signer {
    let (url, name) = (schema.url.clone(), schema.name.clone());
    tokio::task::spawn_blocking(move || {
        let store = PgKeyStore::open(&url, &name).unwrap();
        let service = auth::KeyService::new(
            Arc::new(store.clone()),
            Arc::new(store.audit_log()),
            auth::KeyRing::default(),
            Environment::Test,
        );
        offline_principal_signer(&service, "admin", &["keys:admin"], None)
    })
    .await
    .unwrap()
}

/// Waits (up to `limit`) until `/readyz` of `gateway` says key changes arrive by NOTIFY.
async fn wait_listening(gateway: &server::Gateway, limit: Duration) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let (status, body) = get_json(gateway, "/readyz").await;
        if status == 200 && body["key_store"]["changes"] == "notify" {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never listening: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn subscribed(ws: &mut Ws) {
    send(ws, SUB).await;
    recv_until(ws, |m| matches!(m, ServerMessage::Subscribed { .. })).await;
}

/// Revokes `id` through `http` (node A) and returns how long B's session took to close.
async fn revoke_and_time_close(http: &Http, admin: &Signer, id: &str, ws: &mut Ws) -> Duration {
    let started = tokio::time::Instant::now();
    let (status, body) = Http::json(
        http.post(
            &format!("/admin/v1/keys/{id}/revoke"),
            Some(admin),
            serde_json::json!({"reason": "cluster test"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (error, close, _) = until_error_and_close(ws, Duration::from_secs(3)).await;
    assert_eq!((error.as_str(), close), ("key_revoked", 4003));
    started.elapsed()
}

#[tokio::test]
async fn a_key_made_on_one_node_works_on_another_and_its_revocation_closes_sessions_there() {
    let Some(schema) = Schema::new("revoke") else {
        return;
    };
    let admin = admin_signer(&schema).await;
    let a = start(node_config("pg-a", &schema)).await;
    let b = start(node_config("pg-b", &schema)).await;
    let ready = wait_listening(&b, Duration::from_secs(3)).await;
    assert_eq!(ready["key_store"]["backend"], "postgres", "{ready}");
    assert_eq!(ready["key_store"]["status"], "ok", "{ready}");
    let (http_a, http_b) = (Http::new(&a), Http::new(&b));

    let (id, token) = http_a
        .create_key(
            &admin,
            serde_json::json!({"name": "roamer", "scopes": ["market:read"]}),
        )
        .await;
    // B learns of the new key by NOTIFY.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let (status, body) = Http::json(http_b.get(TICKER, Some(&token)).await).await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the key never worked on B: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ws = connect_with(&b, &token).await;
    subscribed(&mut ws).await;
    let took = revoke_and_time_close(&http_a, &admin, &id, &mut ws).await;
    eprintln!("revoked on A, session on B closed after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let (status, body) = Http::json(http_b.get(TICKER, Some(&token)).await).await;
    assert_eq!((status, code(&body)), (401, "key_revoked"));
    assert!(metric(&b, "tickgate_key_changes_notifications_total").await >= 2);
    assert_eq!(metric(&b, "tickgate_key_changes_listening").await, 1);

    // One audit chain for both nodes, intact.
    let (url, name) = (schema.url.clone(), schema.name.clone());
    let verified = tokio::task::spawn_blocking(move || {
        let store = PgKeyStore::open(&url, &name).unwrap();
        store::audit::verify_chain(&store.audit_log()).unwrap()
    })
    .await
    .unwrap();
    assert!(verified.as_ref().is_ok_and(|n| *n >= 3), "{verified:?}");
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn a_killed_listener_is_counted_and_reconnects() {
    let Some(schema) = Schema::new("relisten") else {
        return;
    };
    let admin = admin_signer(&schema).await;
    let a = start(node_config("pg-relisten-a", &schema)).await;
    let b = start(node_config("pg-relisten-b", &schema)).await;
    wait_listening(&b, Duration::from_secs(3)).await;
    assert_eq!(
        metric(&b, "tickgate_key_changes_listener_failures_total").await,
        0
    );
    // Kill both nodes' LISTEN connections, as a database restart or a network cut would.
    let (url, channel) = (schema.url.clone(), format!("tickgate_keys_{}", schema.name));
    tokio::task::spawn_blocking(move || {
        Schema::exec(
            &url,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE query LIKE 'LISTEN \"{channel}\"%'"
            ),
        )
    })
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while metric(&b, "tickgate_key_changes_listener_failures_total").await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the drop was never noticed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_listening(&b, Duration::from_secs(3)).await;
    wait_listening(&a, Duration::from_secs(3)).await;
    // And the wake-up works again.
    let (http_a, http_b) = (Http::new(&a), Http::new(&b));
    let (id, token) = http_a
        .create_key(
            &admin,
            serde_json::json!({"name": "after", "scopes": ["market:read"]}),
        )
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while Http::json(http_b.get(TICKER, Some(&token)).await).await.0 != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the key never worked on B"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ws = connect_with(&b, &token).await;
    subscribed(&mut ws).await;
    let took = revoke_and_time_close(&http_a, &admin, &id, &mut ws).await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_store_stops_the_start_naming_the_key_not_the_password() {
    // Needs no database: nothing listens on port 1.
    let mut config = auth_config("pg-unreachable");
    config.cluster.postgres_url = "postgres://tickgate:hunter2@127.0.0.1:1/tickgate".into();
    let Err(error) = server::Gateway::start(config.clone()).await else {
        panic!("the gateway must not start without its key store");
    };
    let error = error.to_string();
    assert!(error.contains("cluster.postgres_url"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
    // TLS is asked for but not built in: refused before connecting, clearly.
    config.cluster.postgres_url =
        "postgres://tickgate:hunter2@127.0.0.1:1/tickgate?sslmode=require".into();
    let Err(error) = server::Gateway::start(config).await else {
        panic!("sslmode=require is refused");
    };
    let error = error.to_string();
    assert!(error.contains("sslmode"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
}
