//! The delivery worker against real local receivers: signatures, the retry schedule under a
//! paused clock, dead letters and redelivery, the per-endpoint concurrency limit, SSRF
//! refusals at delivery time.

mod support;

use alerts::clock::Clock;
use alerts::config::DeliveryConfig;
use alerts::metrics::AlertMetrics;
use alerts::webhook::schedule::{Jitter, RetrySchedule};
use alerts::webhook::signature::verify_v1;
use alerts::webhook::worker::Worker;
use std::sync::Arc;
use std::time::Duration;
use store::alerts::AlertStore;
use store::outbox::{DeliveryState, Outbox};
use store::outbox_sqlite::delivery_id;
use support::*;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

fn settings(allow: &[&str]) -> DeliveryConfig {
    DeliveryConfig {
        allow_addresses: allow.iter().map(|a| a.to_string()).collect(),
        retry_base_secs: 5,
        retry_max_delay_secs: 60,
        max_attempts: 5,
        ..Default::default()
    }
}

struct Running {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    wake: Arc<Notify>,
    metrics: Arc<AlertMetrics>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

fn start(
    store: Arc<store::alerts_sqlite::SqliteAlertStore>,
    ring: auth::KeyRing,
    settings: DeliveryConfig,
    jitter: Jitter,
) -> Running {
    let wake = Arc::new(Notify::new());
    let metrics = Arc::new(AlertMetrics::default());
    let worker = Worker::new(
        store,
        ring,
        settings,
        metrics.clone(),
        wake.clone(),
        Clock::new(),
    )
    .unwrap()
    .with_jitter(jitter);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(worker.run(shutdown.clone()));
    Running {
        shutdown,
        task,
        wake,
        metrics,
    }
}

/// Waits (in tokio time, which may be paused) until `done` holds.
async fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn delivers_with_a_verifiable_standard_webhooks_signature() {
    let receiver = Receiver::start(200, Duration::ZERO).await;
    let (store, ring) = (store(), ring());
    let url = format!("http://127.0.0.1:{}/hook?token=t", receiver.port);
    let (endpoint, secret) = endpoint(&ring, "whe_a", &url, None);
    seed(&store, &endpoint);
    let now = Clock::new().now();
    store
        .record_firings(&[firing("msg_1", "alr_1", now, &["whe_a"])])
        .unwrap();
    let running = start(
        store.clone(),
        ring,
        settings(&["127.0.0.1"]),
        Jitter::Fixed(1.0),
    );
    running.wake.notify_one();
    until("the delivery", Duration::from_secs(10), || {
        receiver.count() == 1
    })
    .await;
    let got = receiver.received.lock()[0].clone();
    assert_eq!(got.headers["webhook-id"], "msg_1");
    assert_eq!(got.headers["content-type"], "application/json");
    let ts: i64 = got.headers["webhook-timestamp"].parse().unwrap();
    assert!((ts - now / 1_000_000).abs() <= 5);
    assert!(verify_v1(
        &secret,
        "msg_1",
        ts,
        &got.body,
        &got.headers["webhook-signature"]
    ));
    assert_eq!(
        got.body,
        store
            .get_firing("msg_1")
            .unwrap()
            .unwrap()
            .payload
            .as_bytes()
    );
    let id = delivery_id("msg_1", "whe_a");
    until("the record", Duration::from_secs(5), || {
        store.get_delivery(&id).unwrap().unwrap().state == DeliveryState::Delivered
    })
    .await;
    let attempts = store.attempts(&id).unwrap();
    assert_eq!((attempts.len(), attempts[0].status), (1, Some(200)));
    let metrics = running.metrics.clone();
    running.stop().await;
    let mut text = String::new();
    metrics.render(&mut text);
    assert!(
        text.contains(
            "tickgate_webhook_endpoint_attempts_total{endpoint=\"whe_a\",outcome=\"success\"} 1"
        ),
        "{text}"
    );
}

/// A receiver that is down gets its retries exactly on the schedule (jitter fixed at the
/// cap), then the delivery is dead; redelivery sends the same `webhook-id` again.
#[tokio::test(start_paused = true)]
async fn a_down_receiver_gets_retries_on_schedule_then_a_dead_letter_and_redelivery() {
    let port = closed_port().await;
    let (store, ring) = (store(), ring());
    let (endpoint, _) = endpoint(
        &ring,
        "whe_down",
        &format!("http://127.0.0.1:{port}/"),
        None,
    );
    seed(&store, &endpoint);
    let clock = Clock::new();
    store
        .record_firings(&[firing("msg_d", "alr_1", clock.now(), &["whe_down"])])
        .unwrap();
    let config = settings(&["127.0.0.1"]);
    let schedule: RetrySchedule = config.schedule();
    let running = start(
        store.clone(),
        ring.clone(),
        config.clone(),
        Jitter::Fixed(1.0),
    );
    let id = delivery_id("msg_d", "whe_down");
    until("the dead letter", Duration::from_secs(600), || {
        store.get_delivery(&id).unwrap().unwrap().state == DeliveryState::Dead
    })
    .await;
    let attempts = store.attempts(&id).unwrap();
    assert_eq!(attempts.len(), 5, "max_attempts");
    for (k, pair) in attempts.windows(2).enumerate() {
        let (a, b) = (&pair[0], &pair[1]);
        let failed = k as u32 + 1;
        let cap = schedule.cap(failed).as_micros() as i64;
        assert_eq!(
            a.next_attempt_at,
            Some(a.finished_at + cap),
            "attempt {failed}"
        );
        let late = b.started_at - a.next_attempt_at.unwrap();
        assert!(
            (0..=5_000).contains(&late),
            "attempt {} started {late} µs after its time",
            failed + 1
        );
        let error = a.error.as_deref().unwrap_or("");
        assert!(
            error.starts_with("connect") || error.starts_with("timeout"),
            "{error}"
        );
    }
    assert_eq!(
        attempts.last().unwrap().next_attempt_at,
        None,
        "dead: no next attempt"
    );
    let caps: Vec<u64> = attempts[..4]
        .iter()
        .map(|a| schedule.cap(a.attempt).as_secs())
        .collect();
    assert_eq!(caps, [5, 10, 20, 40]);
    let stats = store.get_endpoint("whe_down").unwrap().unwrap().stats;
    assert_eq!(
        (
            stats.attempts,
            stats.failures,
            stats.dead,
            stats.consecutive_failures
        ),
        (5, 5, 1, 5)
    );

    // The receiver comes back; a redelivery goes out with the same webhook-id.
    let receiver = Receiver::start_on(port, 200, Duration::ZERO).await;
    assert_eq!(
        store.redeliver("whe_down", Some(&id), clock.now()).unwrap(),
        1
    );
    running.wake.notify_one();
    until("the redelivery", Duration::from_secs(60), || {
        receiver.count() == 1
    })
    .await;
    assert_eq!(receiver.received.lock()[0].headers["webhook-id"], "msg_d");
    until("delivered", Duration::from_secs(60), || {
        store.get_delivery(&id).unwrap().unwrap().state == DeliveryState::Delivered
    })
    .await;
    assert_eq!(
        store.attempts(&id).unwrap().len(),
        6,
        "the old attempts stay on record"
    );
    running.stop().await;
}

#[tokio::test]
async fn at_most_max_in_flight_deliveries_per_endpoint() {
    let receiver = Receiver::start(200, Duration::from_millis(300)).await;
    let (store, ring) = (store(), ring());
    let url = format!("http://127.0.0.1:{}/", receiver.port);
    let (endpoint, _) = endpoint(&ring, "whe_c", &url, Some(2));
    seed(&store, &endpoint);
    let now = Clock::new().now();
    let firings: Vec<_> = (0..6)
        .map(|i| firing(&format!("msg_{i}"), "alr_1", now, &["whe_c"]))
        .collect();
    store.record_firings(&firings).unwrap();
    let running = start(
        store.clone(),
        ring,
        settings(&["127.0.0.1"]),
        Jitter::Fixed(1.0),
    );
    until("six deliveries", Duration::from_secs(20), || {
        receiver.count() == 6
    })
    .await;
    assert_eq!(
        receiver
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    running.stop().await;
}

/// With no allow-list, special addresses never get a request: IP literals (private, cloud
/// metadata, loopback in its IPv4-mapped IPv6 form) and a name that resolves to loopback.
#[tokio::test]
async fn refused_addresses_are_never_called() {
    let receiver = Receiver::start(200, Duration::ZERO).await;
    let (store, ring) = (store(), ring());
    let port = receiver.port;
    let urls = [
        ("whe_private", "http://10.255.255.1/hook".to_string()),
        (
            "whe_metadata",
            "http://169.254.169.254/latest/meta-data/".to_string(),
        ),
        ("whe_mapped", format!("http://[::ffff:127.0.0.1]:{port}/")),
        ("whe_name", format!("http://localhost:{port}/")),
    ];
    let now = Clock::new().now();
    store.insert_rule(&rule("alr_1", &[])).unwrap();
    for (id, url) in &urls {
        let (e, _) = endpoint(&ring, id, url, None);
        store.insert_endpoint(&e).unwrap();
        store
            .record_firings(&[firing(&format!("msg_{id}"), "alr_1", now, &[id])])
            .unwrap();
    }
    let running = start(store.clone(), ring, settings(&[]), Jitter::Fixed(1.0));
    let error = |id: &str| {
        let d = store
            .get_delivery(&delivery_id(&format!("msg_{id}"), id))
            .unwrap()
            .unwrap();
        (d.attempts > 0).then(|| d.last_error.unwrap_or_default())
    };
    until("the attempts", Duration::from_secs(15), || {
        urls.iter().all(|(id, _)| error(id).is_some())
    })
    .await;
    let expected = [
        (
            "whe_private",
            "address_refused: 10.255.255.1 resolves to 10.255.255.1, a private address",
        ),
        (
            "whe_metadata",
            "address_refused: 169.254.169.254 resolves to 169.254.169.254, a cloud metadata address",
        ),
        (
            "whe_mapped",
            "address_refused: ::ffff:127.0.0.1 resolves to 127.0.0.1, a loopback address",
        ),
        (
            "whe_name",
            "address_refused: localhost resolves to 127.0.0.1, a loopback address",
        ),
    ];
    for (id, start) in expected {
        let got = error(id).unwrap();
        assert!(got.starts_with(start), "{id}: {got}");
    }
    assert_eq!(receiver.count(), 0);
    running.stop().await;
}
