//! The evaluator fed by a real hub: rules from the store's change feed, firings written to
//! the outbox before they appear on the owner's private `alerts` channel, expiry, and a lag
//! counted (never waited for).

mod support;

use alerts::clock::Clock;
use alerts::evaluator::{Context, Evaluator};
use alerts::metrics::AlertMetrics;
use alerts::rule::Spec;
use book::ChecksumAlgo;
use hub::{CacheMode, Hub, HubConfig};
use model::{BookSnapshot, Channel, Decimal, Level, parse_decimal};
use protocol::alerts::{ConditionBody, Direction};
use protocol::{DataMessage, ServerMessage, WireTrade};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use store::alerts::{AlertStore, RuleStatus};
use store::outbox::{DeliveryFilter, Outbox};
use support::*;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

fn d(s: &str) -> Decimal {
    parse_decimal(s).unwrap()
}

fn price_rule(
    id: &str,
    channel: &str,
    direction: Direction,
    level: &str,
    endpoints: &[&str],
) -> store::alerts::RuleRecord {
    let mut r = rule(id, endpoints);
    r.spec = serde_json::to_value(Spec {
        condition: ConditionBody::Price {
            channel: channel.into(),
            price: None,
            direction,
            level: level.into(),
        },
        hysteresis: Decimal::ZERO,
        cooldown_secs: 0,
    })
    .unwrap();
    r
}

fn trade(price: &str, n: u64) -> WireTrade {
    WireTrade {
        id: format!("t{n}"),
        price: d(price),
        size: d("1"),
        side: model::Side::Buy,
        ts: 1_700_000_000_000_000 + n as i64,
    }
}

fn publish_trades(hub: &Hub, prices: &[&str]) {
    let channel: Channel = "trades:sim:BTC-USDT".parse().unwrap();
    let handle = hub.get(&channel).unwrap();
    for (n, p) in prices.iter().enumerate() {
        handle.publish(DataMessage {
            trades: Some(vec![trade(p, n as u64)]),
            ..Default::default()
        });
    }
}

struct Setup {
    hub: Arc<Hub>,
    store: Arc<store::alerts_sqlite::SqliteAlertStore>,
    metrics: Arc<AlertMetrics>,
    changed: Arc<Notify>,
    deliveries: Arc<Notify>,
    shutdown: CancellationToken,
}

fn setup(capacity: usize) -> Setup {
    let hub = Arc::new(Hub::new(HubConfig {
        channel_capacity: capacity,
        ..HubConfig::default()
    }));
    hub.register("trades:sim:BTC-USDT".parse().unwrap(), CacheMode::None);
    hub.register(
        "book:sim:BTC-USDT".parse().unwrap(),
        CacheMode::Book(ChecksumAlgo::None),
    );
    Setup {
        hub,
        store: store(),
        metrics: Arc::new(AlertMetrics::default()),
        changed: Arc::new(Notify::new()),
        deliveries: Arc::new(Notify::new()),
        shutdown: CancellationToken::new(),
    }
}

impl Setup {
    fn start(&self, partition: &str) -> tokio::task::JoinHandle<()> {
        self.start_with(partition, alerts::evaluator::MAX_UNWRITTEN)
    }

    /// Starts an evaluator that keeps at most `max_unwritten` firings while the store refuses.
    fn start_with(&self, partition: &str, max_unwritten: usize) -> tokio::task::JoinHandle<()> {
        let cx = Context {
            store: self.store.clone(),
            hub: self.hub.clone(),
            metrics: self.metrics.clone(),
            rules_changed: self.changed.clone(),
            deliveries: self.deliveries.clone(),
            clock: Clock::new(),
            poll: Duration::from_millis(50),
        };
        let evaluator = Evaluator::new(partition, cx).with_max_unwritten(max_unwritten);
        tokio::spawn(evaluator.run(self.shutdown.clone()))
    }

    /// Waits until the evaluator follows `n` channels and has `rules` rules.
    async fn ready(&self, rules: u64) {
        for _ in 0..200 {
            let mut text = String::new();
            self.metrics.render(&mut text);
            if text.contains(&format!(
                "tickgate_alert_rules{{partition=\"sim\"}} {rules}"
            )) {
                // One more poll so the subscription is in place.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("evaluator never loaded {rules} rules");
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn firings_are_written_before_they_reach_the_alerts_channel() {
    let s = setup(1024);
    let (endpoint, _) = endpoint(&ring(), "whe_1", "https://hooks.example.com/x", None);
    s.store.insert_endpoint(&endpoint).unwrap();
    let task = s.start("sim");
    // A rule created after the evaluator started: picked up from the change feed.
    s.store
        .insert_rule(&price_rule(
            "alr_up",
            "trades:sim:BTC-USDT",
            Direction::Above,
            "100",
            &["whe_1"],
        ))
        .unwrap();
    s.store
        .insert_rule(&price_rule(
            "alr_other",
            "trades:sim:BTC-USDT",
            Direction::Below,
            "50",
            &[],
        ))
        .unwrap();
    s.changed.notify_waiters();
    s.ready(2).await;
    let mut alerts = s.hub.private("acme").subscribe(false);
    publish_trades(&s.hub, &["99", "100.5", "101", "99", "100"]);
    let mut values = Vec::new();
    for _ in 0..2 {
        let frame = tokio::time::timeout(Duration::from_secs(5), alerts.rx.recv())
            .await
            .unwrap()
            .unwrap();
        let ServerMessage::Update(update) = serde_json::from_str(frame.as_str()).unwrap() else {
            panic!("{}", frame.as_str())
        };
        let alert = update.alert.unwrap();
        // Durable first: the firing and its delivery are in the store when the update arrives.
        let stored = s
            .store
            .get_firing(&alert.id)
            .unwrap()
            .expect("stored before it was sent");
        assert!(stored.payload.contains(&alert.id));
        let deliveries = s
            .store
            .list_deliveries(&DeliveryFilter {
                firing_id: Some(alert.id.clone()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(deliveries.len(), 1);
        assert_eq!(
            (update.channel.as_str(), alert.rule_id.as_str()),
            ("alerts", "alr_up")
        );
        values.push((
            alert.value.to_string(),
            alert.threshold.to_string(),
            alert.firing,
        ));
    }
    assert_eq!(
        values,
        [
            ("100.5".into(), "100".into(), 1),
            ("100".into(), "100".into(), 2)
        ]
    );
    assert_eq!(s.store.get_rule("alr_up").unwrap().unwrap().firings, 2);
    assert_eq!(s.metrics.firings.load(Ordering::Relaxed), 2);
    // Another principal's channel saw nothing.
    assert_eq!(s.hub.private("other").seq(), 0);

    // Paused in the store: no more firings.
    s.store
        .set_rule_status("alr_up", RuleStatus::Paused, T0)
        .unwrap();
    s.ready(1).await;
    publish_trades(&s.hub, &["99", "101"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(alerts.rx.try_recv().is_err());
    s.shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn book_rules_read_a_local_copy_of_the_book() {
    let s = setup(1024);
    s.store
        .insert_rule(&price_rule(
            "alr_mid",
            "book:sim:BTC-USDT",
            Direction::Below,
            "99.5",
            &[],
        ))
        .unwrap();
    let book = s.hub.get(&"book:sim:BTC-USDT".parse().unwrap()).unwrap();
    let level = |p: &str, q: &str| Level::new(d(p), d(q));
    book.book_snapshot(&BookSnapshot {
        seq: 1,
        bids: vec![level("100", "1"), level("98", "1")],
        asks: vec![level("101", "1")],
        ..Default::default()
    })
    .unwrap();
    let task = s.start("sim");
    s.ready(1).await;
    let mut alerts = s.hub.private("acme").subscribe(false);
    // Remove the 100 bid: the mid goes from 100.5 to 99.5.
    book.book_delta(&model::BookDelta {
        first_seq: 2,
        last_seq: 2,
        bids: vec![level("100", "0")],
        ..Default::default()
    })
    .unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(5), alerts.rx.recv())
        .await
        .unwrap()
        .unwrap();
    let ServerMessage::Update(update) = serde_json::from_str(frame.as_str()).unwrap() else {
        panic!()
    };
    assert_eq!(update.alert.unwrap().value.to_string(), "99.5");
    s.shutdown.cancel();
    task.await.unwrap();
}

/// A burst larger than the channel ring while the evaluator cannot run: the publisher never
/// waits, the evaluator counts what it missed and rejoins.
#[tokio::test(flavor = "current_thread")]
async fn a_lagging_evaluator_counts_drops_and_never_blocks_the_publisher() {
    let s = setup(16);
    s.store
        .insert_rule(&price_rule(
            "alr_x",
            "trades:sim:BTC-USDT",
            Direction::Above,
            "1000000",
            &[],
        ))
        .unwrap();
    let task = s.start("sim");
    s.ready(1).await;
    let prices: Vec<String> = (0..200).map(|i| format!("{}", 100 + i)).collect();
    let refs: Vec<&str> = prices.iter().map(String::as_str).collect();
    // On a current-thread runtime nothing else runs during this loop.
    publish_trades(&s.hub, &refs);
    until("the drops", || {
        s.metrics.events_dropped.load(Ordering::Relaxed) > 0
    })
    .await;
    assert!(s.metrics.events_dropped.load(Ordering::Relaxed) >= 200 - 16);
    s.shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn expired_rules_are_marked_in_the_store() {
    let s = setup(1024);
    let mut r = price_rule("alr_exp", "trades:sim:BTC-USDT", Direction::Above, "1", &[]);
    r.expires_at = Some(Clock::new().now() + 500_000);
    s.store.insert_rule(&r).unwrap();
    let task = s.start("sim");
    until("the expiry", || {
        s.store.get_rule("alr_exp").unwrap().unwrap().status == RuleStatus::Expired
    })
    .await;
    assert_eq!(s.metrics.expired.load(Ordering::Relaxed), 1);
    s.shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firings_wait_while_the_store_is_locked_bounded_then_are_written() {
    // A real database file, write-locked by another connection: the store's writes fail
    // (after its busy timeout) while reads go on (WAL).
    let dir = std::env::temp_dir().join(format!("tickgate-alerts-locked-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut s = setup(1024);
    s.store = Arc::new(store::alerts_sqlite::SqliteAlertStore::open_dir(&dir).unwrap());
    s.store
        .insert_rule(&price_rule(
            "alr_flip",
            "trades:sim:BTC-USDT",
            Direction::Above,
            "100",
            &[],
        ))
        .unwrap();
    let task = s.start_with("sim", 3);
    s.ready(1).await;
    let mut alerts = s.hub.private("acme").subscribe(false);

    let lock = rusqlite::Connection::open(dir.join("tickgate.db")).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    // Five crossings above 100 while nothing can be written.
    publish_trades(
        &s.hub,
        &[
            "99", "101", "99", "102", "99", "103", "99", "104", "99", "105",
        ],
    );
    // Every trade evaluated, then one more refused write (the queue is capped before each
    // write), so exactly the capped queue is waiting when the lock goes.
    until("all ten trades evaluated", || {
        s.metrics.events.load(Ordering::Relaxed) >= 10
    })
    .await;
    let refused = s.metrics.store_errors.load(Ordering::Relaxed);
    until("a refused write after the last trade", || {
        s.metrics.store_errors.load(Ordering::Relaxed) > refused
    })
    .await;
    // Nothing reached the channel before it was durable.
    assert!(alerts.rx.try_recv().is_err());
    assert_eq!(s.store.get_rule("alr_flip").unwrap().unwrap().firings, 0);
    lock.execute_batch("COMMIT").unwrap();

    // The newest three are written, then published, in order; the two oldest were dropped.
    let mut values = Vec::new();
    for _ in 0..3 {
        let frame = tokio::time::timeout(Duration::from_secs(20), alerts.rx.recv())
            .await
            .unwrap()
            .unwrap();
        let ServerMessage::Update(update) = serde_json::from_str(frame.as_str()).unwrap() else {
            panic!("{}", frame.as_str())
        };
        values.push(update.alert.unwrap().value.to_string());
    }
    assert_eq!(values, ["103", "104", "105"]);
    assert_eq!(s.metrics.firings_dropped.load(Ordering::Relaxed), 2);
    // (Counted just after the publish.)
    until("the firings counter", || {
        s.metrics.firings.load(Ordering::Relaxed) == 3
    })
    .await;
    assert_eq!(s.store.get_rule("alr_flip").unwrap().unwrap().firings, 3);
    let mut text = String::new();
    s.metrics.render(&mut text);
    assert!(
        text.contains("tickgate_alert_firings_dropped_total 2"),
        "{text}"
    );
    s.shutdown.cancel();
    task.await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
