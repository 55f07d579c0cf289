//! Test harness: a gateway, a client, event collection and REST comparison.

use client::{BackoffConfig, BookHandle, Client, ClientOptions, Event, HeartbeatConfig};
use server::{Config, Gateway};
use std::time::Duration;

/// Tests that load the machine take this so that two never run at once on 2 cores.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn config(rate: f64) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    // One data directory per gateway: each opens its own history and key databases.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tickgate-client-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    config.server.data_dir = dir;
    config.server.shutdown_grace_secs = 2;
    config.venues[0].sim.rate = rate;
    config
}

pub async fn start(config: Config) -> Gateway {
    let gateway = Gateway::start(config).await.expect("gateway starts");
    wait_ready(&gateway).await;
    // The readiness probes' sockets count against server.max_connections until the gateway
    // sees them close; a test with a tiny limit must not race them.
    for _ in 0..200 {
        if gateway.state().sockets().open() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gateway
}

pub async fn wait_ready(gateway: &Gateway) {
    let url = format!("http://{}/readyz", gateway.local_addr());
    for _ in 0..500 {
        if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gateway never became ready");
}

/// Options for tests: fast reconnects, a quick heartbeat, a fixed jitter seed.
pub fn options() -> ClientOptions {
    ClientOptions {
        backoff: BackoffConfig {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(400),
            seed: Some(1),
            ..BackoffConfig::default()
        },
        heartbeat: HeartbeatConfig {
            interval: Duration::from_millis(250),
            timeout: Duration::from_secs(2),
        },
        ..ClientOptions::default()
    }
}

/// Events for `window` (or until `stop` says so).
pub async fn collect(
    client: &mut Client,
    window: Duration,
    mut stop: impl FnMut(&Event) -> bool,
) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + window;
    let mut events = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, client.next_event()).await {
        let done = stop(&event);
        events.push(event);
        if done {
            break;
        }
    }
    events
}

/// Checks that per channel every data seq is exactly the previous + 1 (snapshots may restart
/// the count only where `allowed_restarts` says so). Returns the number of data events.
pub fn assert_exactly_once(events: &[Event]) -> usize {
    let mut last = std::collections::HashMap::<String, u64>::new();
    let mut count = 0;
    for event in events {
        let Some(meta) = event.meta() else { continue };
        count += 1;
        if let Some(prev) = last.insert(meta.channel.to_string(), meta.seq)
            && !matches!(event, Event::Snapshot(_))
        {
            assert_eq!(
                meta.seq,
                prev + 1,
                "{}: seq {} after {prev}",
                meta.channel,
                meta.seq
            );
        }
    }
    count
}

/// Compares the mirror with `GET /v1/book` at the same seq; retries until the two reads land
/// on the same seq `matches` times. Panics on any difference.
pub async fn assert_mirror_equals_rest(client: &Client, book: &BookHandle, matches: usize) {
    let channel: model::Channel = book.channel().parse().unwrap();
    let (venue, symbol) = (
        channel.venue.to_string(),
        channel.symbol.unwrap().to_string(),
    );
    let mut matched = 0;
    for _ in 0..2000 {
        let before = book.view(5000);
        let rest = client
            .rest()
            .book(&venue, &symbol, Some(5000))
            .await
            .unwrap();
        let after = book.view(5000);
        if !(before.seq == rest.seq && after.seq == rest.seq && after.live) {
            tokio::time::sleep(Duration::from_millis(3)).await;
            continue;
        }
        let levels =
            |l: &[client::WireLevel]| l.iter().map(|w| model::Level::from(*w)).collect::<Vec<_>>();
        assert_eq!(
            after.bids,
            levels(&rest.bids),
            "bids differ at seq {}",
            rest.seq
        );
        assert_eq!(
            after.asks,
            levels(&rest.asks),
            "asks differ at seq {}",
            rest.seq
        );
        assert_eq!(after.checksum, rest.checksum);
        assert_eq!(after.epoch.as_deref(), Some(rest.epoch.as_str()));
        matched += 1;
        if matched == matches {
            return;
        }
    }
    panic!("mirror and REST never met at the same seq ({matched} matches)");
}

pub fn count<F: Fn(&Event) -> bool>(events: &[Event], f: F) -> usize {
    events.iter().filter(|e| f(e)).count()
}

/// The key lifecycle service on a gateway's data directory, as `tickgate keys --data-dir` uses
/// it (the gateway picks offline changes up within its poll interval).
pub fn key_service(dir: &std::path::Path) -> auth::KeyService {
    let store = store::keys_sqlite::SqliteKeyStore::open_dir(dir).unwrap();
    auth::KeyService::new(
        std::sync::Arc::new(store.clone()),
        std::sync::Arc::new(store.audit_log()),
        auth::KeyRing::default(),
        store::keys::Environment::Test,
    )
}

/// Creates a key offline; returns (id, token).
pub fn create_key(dir: &std::path::Path, name: &str, scopes: &[&str]) -> (String, String) {
    std::fs::create_dir_all(dir).unwrap();
    let new = auth::NewKey {
        name: name.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let issued = key_service(dir)
        .create(new, "test", model::Timestamp::now().0)
        .unwrap();
    (
        issued.record.id,
        issued.secret.unwrap().expose().to_string(),
    )
}
