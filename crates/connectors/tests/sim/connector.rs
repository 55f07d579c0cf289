//! The connector in virtual time: start-up sequence, pacing, resync and stopping.

use crate::reference::{symbol, symbol_of};
use connectors::venue::sim::{SimConfig, SimConnector};
use connectors::{
    Command, ConnectionState, Connector, ConnectorContext, ConnectorError, FeedBatch, FeedEvent,
};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

struct Running {
    events: mpsc::Receiver<FeedBatch>,
    commands: mpsc::Sender<Command>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ConnectorError>>,
}

fn start(config: SimConfig, capacity: usize) -> Running {
    let (events_tx, events) = mpsc::channel(capacity);
    let (commands, commands_rx) = mpsc::channel(8);
    let shutdown = CancellationToken::new();
    let connector: Box<dyn Connector> = Box::new(SimConnector::new(config).unwrap());
    let task = tokio::spawn(connector.run(ConnectorContext {
        events: events_tx,
        commands: commands_rx,
        shutdown: shutdown.clone(),
    }));
    Running {
        events,
        commands,
        shutdown,
        task,
    }
}

impl Running {
    /// Every event received during the next `duration` of (virtual) time.
    async fn collect_for(&mut self, duration: Duration) -> Vec<FeedEvent> {
        let deadline = Instant::now() + duration;
        let mut events = Vec::new();
        while let Ok(Some(batch)) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            events.extend(batch);
        }
        events
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn count_deltas(events: &[FeedEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, FeedEvent::BookDelta { .. }))
        .count()
}

#[tokio::test(start_paused = true)]
async fn starts_with_status_instruments_and_snapshots_then_streams_at_the_rate() {
    let mut sim = start(SimConfig::default(), 64);
    let hello = sim.events.recv().await.unwrap();
    assert!(matches!(
        &hello[0],
        FeedEvent::Status {
            state: ConnectionState::Connected,
            ..
        }
    ));
    let FeedEvent::Instruments(instruments) = &hello[1] else {
        panic!("instruments second, got {:?}", hello[1]);
    };
    let names: Vec<&str> = instruments
        .iter()
        .map(|i| i.native_symbol.as_str())
        .collect();
    assert_eq!(names, ["BTCUSDT", "ETHUSDT", "SOLUSDT"]);
    let snapshots: Vec<&str> = hello[2..]
        .iter()
        .map(|event| match event {
            FeedEvent::BookSnapshot { symbol, snapshot } => {
                assert!(snapshot.exchange_ts.as_micros() > 0);
                symbol.as_str()
            }
            other => panic!("expected snapshots, got {other:?}"),
        })
        .collect();
    assert_eq!(snapshots, ["BTC-USDT", "ETH-USDT", "SOL-USDT"]);

    // 5 market events per second per symbol, one batch each at this rate.
    let events = sim.collect_for(Duration::from_secs(10)).await;
    let deltas = count_deltas(&events);
    assert!((145..=150).contains(&deltas), "{deltas} deltas in 10 s");
    assert!(events.iter().all(|e| symbol_of(e).is_some()));
    sim.stop().await;
}

#[tokio::test(start_paused = true)]
async fn high_rates_arrive_in_batches() {
    let config = SimConfig {
        rate: 100_000.0,
        checksum: false,
        levels: 10,
        ..SimConfig::default()
    };
    let mut sim = start(config, 64);
    sim.events.recv().await.unwrap();
    let deadline = Instant::now() + Duration::from_millis(20);
    let (mut batches, mut deltas) = (0, 0);
    while let Ok(Some(batch)) = tokio::time::timeout_at(deadline, sim.events.recv()).await {
        batches += 1;
        deltas += count_deltas(&batch);
    }
    assert!(
        (5_700..=6_000).contains(&deltas),
        "{deltas} deltas in 20 ms"
    );
    assert!((15..=25).contains(&batches), "{batches} batches in 20 ms");
    sim.stop().await;
}

#[tokio::test(start_paused = true)]
async fn resync_sends_one_snapshot_of_that_symbol_at_its_current_seq() {
    let mut sim = start(SimConfig::default(), 64);
    sim.events.recv().await.unwrap();
    let mut events = sim.collect_for(Duration::from_secs(2)).await;
    let eth = symbol("ETH-USDT");
    sim.commands
        .send(Command::Resync(eth.clone()))
        .await
        .unwrap();
    sim.commands
        .send(Command::Resync(symbol("XRP-USDT")))
        .await
        .unwrap();
    events.extend(sim.collect_for(Duration::from_secs(2)).await);

    let snapshots: Vec<usize> = (0..events.len())
        .filter(|&i| matches!(events[i], FeedEvent::BookSnapshot { .. }))
        .collect();
    assert_eq!(
        snapshots.len(),
        1,
        "exactly one snapshot, unknown symbols ignored"
    );
    let FeedEvent::BookSnapshot { symbol, snapshot } = &events[snapshots[0]] else {
        unreachable!()
    };
    assert_eq!(symbol, &eth);
    let eth_seqs = |events: &[FeedEvent]| -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| match e {
                FeedEvent::BookDelta { symbol, delta } if *symbol == eth => Some(delta.last_seq),
                _ => None,
            })
            .collect()
    };
    let before = eth_seqs(&events[..snapshots[0]]);
    let after = eth_seqs(&events[snapshots[0]..]);
    assert_eq!(before.last(), Some(&snapshot.seq), "at the current seq");
    assert_eq!(
        after.first(),
        Some(&(snapshot.seq + 1)),
        "the stream goes on"
    );
    sim.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stops_on_shutdown_even_while_ingest_is_full() {
    let sim = start(SimConfig::default(), 1);
    // Nobody reads: the connector is stuck sending when shutdown comes.
    tokio::time::sleep(Duration::from_secs(5)).await;
    sim.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stops_with_sink_closed_when_ingest_goes_away() {
    let mut sim = start(SimConfig::default(), 64);
    sim.events.recv().await.unwrap();
    drop(sim.events);
    let result = tokio::time::timeout(Duration::from_secs(60), sim.task).await;
    let error = result.expect("stops promptly").unwrap().unwrap_err();
    assert!(matches!(error, ConnectorError::SinkClosed), "{error}");
    drop(sim.commands);
}

/// End-to-end speed in real time, in release mode:
/// `cargo test -p connectors --release --test sim -- --ignored --nocapture connector_speed`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run in release mode with --nocapture"]
async fn connector_speed() {
    for (rate, checksum) in [
        (1_000_000.0, false),
        (3_000_000.0, false),
        (1_000_000.0, true),
    ] {
        let config = SimConfig {
            rate: rate / 3.0,
            checksum,
            ..SimConfig::default()
        };
        let mut sim = start(config, 256);
        sim.events.recv().await.unwrap();
        let begin = Instant::now();
        let (mut events, mut batches) = (0usize, 0usize);
        while begin.elapsed() < Duration::from_secs(3) {
            let batch = sim.events.recv().await.unwrap();
            events += batch.len();
            batches += 1;
        }
        let seconds = begin.elapsed().as_secs_f64();
        println!(
            "target {rate} market events/s, checksum={checksum}: received {:.2} M FeedEvents/s in {:.0} batches/s",
            events as f64 / seconds / 1e6,
            batches as f64 / seconds
        );
        sim.stop().await;
    }
}
