//! Exclusive tasks against a real NATS JetStream (the alert evaluators' gate): of two nodes
//! competing for one task, exactly one runs it; when the holder is cut off from NATS it stops
//! the task **before** the other node starts it (never two at once), and the other takes over
//! within the lease TTL.
//!
//! Needs TICKGATE_TEST_NATS_URL (e.g. nats://127.0.0.1:4222); the test uses its own prefix.

use cluster::ClusterOptions;
use cluster::exclusive::Exclusive;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Who runs the task now, and the most that ever ran it at once.
#[derive(Debug, Default)]
struct Runs {
    running: Vec<&'static str>,
    most_at_once: usize,
    starts: Vec<(&'static str, Instant)>,
    stops: Vec<(&'static str, Instant)>,
}

/// A node competing for task `name`: its task records itself in `runs` while it runs.
async fn node(
    url: &str,
    options: &ClusterOptions,
    who: &'static str,
    runs: &Arc<Mutex<Runs>>,
    shutdown: &CancellationToken,
) -> (Arc<Exclusive>, async_nats::Client) {
    let client = cluster::connect(url).await.expect("nats");
    let mut options = options.clone();
    options.node = who.into();
    let exclusive = Exclusive::start(client.clone(), &options)
        .await
        .expect("lease bucket");
    let runs = runs.clone();
    exclusive.spawn(
        "alerts-sim",
        move |stop: CancellationToken| {
            let runs = runs.clone();
            async move {
                {
                    let mut r = runs.lock();
                    r.running.push(who);
                    r.most_at_once = r.most_at_once.max(r.running.len());
                    r.starts.push((who, Instant::now()));
                }
                stop.cancelled().await;
                let mut r = runs.lock();
                r.running.retain(|w| *w != who);
                r.stops.push((who, Instant::now()));
            }
        },
        shutdown.clone(),
    );
    (exclusive, client)
}

async fn until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_runs_the_task_and_a_cut_off_holder_stops_before_the_other_starts() {
    let Ok(url) = std::env::var("TICKGATE_TEST_NATS_URL") else {
        eprintln!("skipped: TICKGATE_TEST_NATS_URL not set");
        return;
    };
    let unique = format!("{:x}", model::Timestamp::now().0);
    let options = ClusterOptions {
        prefix: format!("tx{}", &unique[unique.len() - 9..]),
        lease_ttl: Duration::from_secs(1),
        ..Default::default()
    };
    let runs = Arc::new(Mutex::new(Runs::default()));
    let (stop_a, stop_b) = (CancellationToken::new(), CancellationToken::new());
    let (a, a_client) = node(&url, &options, "a", &runs, &stop_a).await;
    let (b, b_client) = node(&url, &options, "b", &runs, &stop_b).await;

    until(Duration::from_secs(3), "one node runs the task", || {
        runs.lock().running.len() == 1
    })
    .await;
    // Both keep competing for a while: still exactly one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let holder = {
        let r = runs.lock();
        assert_eq!((r.running.len(), r.most_at_once), (1, 1), "{r:?}");
        r.running[0]
    };
    let (held, standby, held_client) = if holder == "a" {
        (&a, &b, &a_client)
    } else {
        (&b, &a, &b_client)
    };
    assert_eq!(held.running(), ["alerts-sim"]);
    assert!(standby.running().is_empty());

    // Cut the holder off from NATS (its renewals fail; it cannot release the lease).
    let cut = Instant::now();
    held_client.drain().await.expect("drain");
    let took = until(Duration::from_secs(3), "the other node takes over", || {
        runs.lock().starts.iter().any(|(w, _)| *w != holder)
    })
    .await;
    eprintln!("taken over {took:?} after the holder ({holder}) was cut off");
    {
        let r = runs.lock();
        assert_eq!(r.most_at_once, 1, "two nodes ran the task at once: {r:?}");
        let stopped = r
            .stops
            .iter()
            .find(|(w, _)| *w == holder)
            .expect("stopped")
            .1;
        let started = r
            .starts
            .iter()
            .find(|(w, _)| *w != holder)
            .expect("started")
            .1;
        assert!(stopped < started, "{r:?}");
        // A holder that cannot renew stops half a TTL after its last renewal, before the
        // lease (a whole TTL after it) can pass.
        assert!(stopped - cut < Duration::from_millis(900), "{r:?}");
        assert!(
            took >= Duration::from_millis(400),
            "taken over before the lease expired"
        );
    }
    assert!(held.running().is_empty());
    stop_a.cancel();
    stop_b.cancel();
    let js = async_nats::jetstream::new(cluster::connect(&url).await.expect("nats"));
    let _ = js
        .delete_key_value(options.names().expect("names").lease_bucket())
        .await;
}
