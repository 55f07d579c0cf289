//! Forwarder throughput against a real NATS JetStream (an `#[ignore]`d benchmark, not a
//! check): a burst of frames on one channel of an ingest hub, timed until the forwarder has
//! stored them all and until an edge's replica serves the last one.
//!
//! ```text
//! TICKGATE_TEST_NATS_URL=nats://127.0.0.1:4222 cargo test --release -p cluster \
//!     --test forwarder_throughput -- --ignored --nocapture
//! ```
//!
//! `TICKGATE_BENCH_FRAMES` sets the burst (default 20,000 frames) and `TICKGATE_BENCH_CHANNELS`
//! the number of channels bursting at once (default 1). Figures: docs/benchmarks.md
//! ("Cluster").

use cluster::forwarder::Open;
use cluster::{ClusterOptions, feeder};
use hub::{CacheMode, Hub, HubConfig};
use model::{Channel, Timestamp};
use protocol::DataMessage;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture and TICKGATE_TEST_NATS_URL"]
async fn forwarder_burst_throughput() {
    let Ok(url) = std::env::var("TICKGATE_TEST_NATS_URL") else {
        eprintln!("skipped: TICKGATE_TEST_NATS_URL not set");
        return;
    };
    let frames = env_number("TICKGATE_BENCH_FRAMES", 20_000);
    let channels = env_number("TICKGATE_BENCH_CHANNELS", 1).max(1);
    let unique = format!("{:x}", Timestamp::now().0);
    let options = ClusterOptions {
        prefix: format!("tbench{}", &unique[unique.len() - 9..]),
        node: "bench".into(),
        // Large enough that the whole burst fits in the stream: the edge must see every frame.
        history_size: frames + 16,
        history_ttl: Duration::from_secs(60),
        scan_interval: Duration::from_millis(20),
        ..Default::default()
    };
    // A ring that holds the whole burst, so the forwarder never lags: this measures its rate.
    let hub = Arc::new(Hub::new(HubConfig {
        channel_capacity: (frames + 16).min(1_048_576),
        history_size: 0,
        ..Default::default()
    }));
    let handles: Vec<_> = (0..channels)
        .map(|i| {
            let channel: Channel = format!("trades:sim:S{i}-USDT").parse().expect("channel");
            hub.register(channel, CacheMode::None)
        })
        .collect();

    let stop = CancellationToken::new();
    let client = cluster::connect(&url).await.expect("nats");
    let stats = cluster::forwarder::start(
        client,
        hub.clone(),
        options.clone(),
        Arc::new(Open::default()),
        stop.clone(),
    )
    .await
    .expect("forwarder");
    let (edge_client, connected) = cluster::connect_watched(&url).await.expect("nats");
    let edge = Arc::new(Hub::new(HubConfig::default()));
    feeder::start(
        edge_client,
        connected,
        edge.clone(),
        options.clone(),
        stop.clone(),
    )
    .await
    .expect("feeder");
    let wait = |what: &'static str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(300);
        while !done() {
            assert!(Instant::now() < deadline, "{what} not done within 300 s");
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let synced = || {
        handles.iter().all(|h| {
            edge.get_by_name(h.name())
                .is_some_and(|r| r.replica_synced())
        })
    };
    tokio::task::block_in_place(|| wait("edge sync", &synced));

    // A trade-sized frame (about 200 bytes of JSON).
    let message = |n: u64| DataMessage {
        ts: 1_700_000_000_000_000 + n as i64,
        recv_ts: Timestamp::now().0,
        ..Default::default()
    };
    let started = Instant::now();
    for n in 0..frames as u64 {
        for handle in &handles {
            handle.publish(message(n));
        }
    }
    let published = started.elapsed();
    let total = (frames * channels) as u64;
    let stored = || stats.frames.load(Ordering::Relaxed) >= total;
    tokio::task::block_in_place(|| wait("forwarding", &stored));
    let forwarded = started.elapsed();
    let served = || {
        handles.iter().all(|h| {
            edge.get_by_name(h.name())
                .is_some_and(|r| r.seq() == h.seq())
        })
    };
    tokio::task::block_in_place(|| wait("edge catch-up", &served));
    let at_edge = started.elapsed();
    assert_eq!(
        stats.lags.load(Ordering::Relaxed),
        0,
        "the ring held the burst"
    );
    assert_eq!(stats.fenced.load(Ordering::Relaxed), 0);
    assert_eq!(stats.errors.load(Ordering::Relaxed), 0);

    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    println!(
        "forwarder burst: {channels} channel(s) x {frames} frames; hub publish {published:?}; {} JetStream messages",
        stats.batches.load(Ordering::Relaxed)
    );
    println!(
        "  stored in JetStream after {forwarded:?}: {:.0} frames/s ({:.0} per channel)",
        rate(forwarded),
        rate(forwarded) / channels as f64
    );
    println!(
        "  served by the edge after {at_edge:?}: {:.0} frames/s",
        rate(at_edge)
    );
    stop.cancel();
    let js = async_nats::jetstream::new(cluster::connect(&url).await.expect("nats"));
    let names = options.names().expect("names");
    for stream in [names.frames_stream(), names.snapshots_stream()] {
        let _ = js.delete_stream(stream).await;
    }
}
