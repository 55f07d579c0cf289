//! Durability of the alert outbox across `kill -9`: the real binary fires alerts while the
//! webhook receiver refuses them, is killed with SIGKILL, and restarted with the receiver up.
//! Every firing stored before the kill is delivered, and every request the receiver ever got
//! is a stored firing: a duplicate is only ever a redelivery with the same `webhook-id` and
//! the same body.

use alerts::rule::Spec;
use alerts::testing::Receiver;
use alerts::webhook::signature::{Scheme, WebhookSecret};
use auth::{KeyRing, MasterKey};
use protocol::alerts::{ConditionBody, Direction};
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use store::alerts::{AlertStore, EndpointRecord, RuleFilter, RuleRecord, RuleStatus};
use store::alerts_sqlite::SqliteAlertStore;
use store::outbox::{DeliveryFilter, DeliveryState, Outbox};

const MASTER_HEX: &str = "3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c";

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &std::path::Path, config: &std::path::Path) -> Gateway {
    let child = Command::new(env!("CARGO_BIN_EXE_tickgate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(dir)
        .env("TICKGATE_MASTER_KEY", MASTER_HEX)
        .env("TICKGATE_LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Gateway(child)
}

fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kill_9_with_pending_deliveries_loses_none_and_duplicates_are_redeliveries() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = runtime.block_on(Receiver::start(503, Duration::ZERO));
    let dir = std::env::temp_dir().join(format!("tickgate-alerts-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("tickgate.toml");
    std::fs::write(
        &config,
        "[alerts.delivery]\nallow_addresses = [\"127.0.0.1\"]\nretry_base_secs = 1\n\
         retry_max_delay_secs = 1\nmax_attempts = 100\ntimeout_secs = 2\n\n\
         [[venues]]\nname = \"sim\"\nsymbols = [\"BTC-USDT\"]\n\n[venues.sim]\nrate = 200.0\n",
    )
    .unwrap();

    // An endpoint and rules every 2 units around the simulator's start, written offline.
    let store = SqliteAlertStore::open_dir(&dir).unwrap();
    let ring = KeyRing::new(
        Some(MasterKey::from_hex(MASTER_HEX, "test").unwrap()),
        vec![],
    );
    let (_, secret) = WebhookSecret::generate(Scheme::V1).unwrap();
    store
        .insert_endpoint(&EndpointRecord {
            id: "whe_kill".into(),
            owner: "acme".into(),
            url: format!("http://127.0.0.1:{}/hook", receiver.port),
            description: String::new(),
            enabled: true,
            scheme: "v1".into(),
            public_key: None,
            secret: ring.seal("whe_kill", secret.as_bytes()).unwrap(),
            previous_secret: None,
            previous_until: None,
            max_in_flight: Some(8),
            timeout_ms: Some(2000),
            created_at: 0,
            updated_at: 0,
            rev: 0,
            stats: Default::default(),
        })
        .unwrap();
    for i in 0..200 {
        let level = 64_800 + 2 * i;
        let spec = Spec {
            condition: ConditionBody::Price {
                channel: "trades:sim:BTC-USDT".into(),
                price: Some(protocol::alerts::PriceField::Last),
                direction: if i % 2 == 0 {
                    Direction::Above
                } else {
                    Direction::Below
                },
                level: level.to_string(),
            },
            hysteresis: Default::default(),
            cooldown_secs: 0,
        };
        store
            .insert_rule(&RuleRecord {
                id: format!("alr_k{i}"),
                owner: "acme".into(),
                name: format!("k{i}"),
                partition: "sim".into(),
                spec: serde_json::to_value(spec).unwrap(),
                endpoints: vec!["whe_kill".into()],
                status: RuleStatus::Active,
                expires_at: None,
                max_firings: None,
                firings: 0,
                last_fired_at: None,
                created_at: 0,
                updated_at: 0,
                rev: 0,
            })
            .unwrap();
    }

    let all = || store.list_deliveries(&DeliveryFilter::default()).unwrap();
    let mut gateway = start(&dir, &config);
    until(
        "firings with failed attempts",
        Duration::from_secs(60),
        || {
            let d = all();
            d.len() >= 30 && d.iter().any(|d| d.attempts > 0)
        },
    );
    gateway.0.kill().unwrap(); // SIGKILL: no shutdown at all
    gateway.0.wait().unwrap();
    let before: Vec<_> = all();
    let pending = before
        .iter()
        .filter(|d| d.state == DeliveryState::Pending)
        .count();
    assert!(pending > 0, "some deliveries were pending at the kill");
    // No new firings after the restart: pause every rule (the restarted gateway loads them so).
    for r in store.list_rules(&RuleFilter::default()).unwrap() {
        store.set_rule_status(&r.id, RuleStatus::Paused, 0).unwrap();
    }
    receiver
        .status
        .store(200, std::sync::atomic::Ordering::SeqCst);

    let _gateway = start(&dir, &config);
    until("every delivery delivered", Duration::from_secs(60), || {
        all().iter().all(|d| d.state == DeliveryState::Delivered)
    });
    let after = all();
    let stored: BTreeSet<String> = after.iter().map(|d| d.firing_id.clone()).collect();
    let killed: BTreeSet<String> = before.iter().map(|d| d.firing_id.clone()).collect();
    assert!(
        killed.is_subset(&stored),
        "every firing stored before the kill is still there"
    );
    // What the receiver got: only stored firings, each with one body whatever the attempt.
    let mut bodies: BTreeMap<String, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for request in receiver.received.lock().iter() {
        bodies
            .entry(request.headers["webhook-id"].clone())
            .or_default()
            .insert(request.body.clone());
    }
    let received: BTreeSet<String> = bodies.keys().cloned().collect();
    assert_eq!(
        received, stored,
        "every firing reached the receiver, nothing else did"
    );
    for (id, set) in &bodies {
        assert_eq!(set.len(), 1, "{id}: a redelivery carries the same body");
        let stored_payload = store.get_firing(id).unwrap().unwrap().payload;
        assert_eq!(set.iter().next().unwrap(), stored_payload.as_bytes());
    }
    let requests = receiver.count();
    assert!(
        requests > received.len(),
        "there were retries ({requests} requests for {} firings)",
        received.len()
    );
    drop(_gateway);
    let _ = std::fs::remove_dir_all(&dir);
}
