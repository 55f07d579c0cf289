//! Heartbeat supervision and backoff timing on a paused clock: a gateway that accepts and then
//! goes silent is declared dead after exactly the heartbeat timeout, and the reconnect delays
//! follow the configured backoff until the client gives up.

use client::{Backoff, BackoffConfig, Client, ClientOptions, Event, HeartbeatConfig};
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test(flavor = "current_thread")]
async fn a_silent_connection_times_out_and_reconnects_follow_the_backoff() {
    // A WebSocket server that completes one handshake, then never says anything.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(socket).await.unwrap();
        // Keep the socket open and silent; the listener closes, so reconnects are refused.
        let _ = held_tx.send(ws);
    });
    let backoff = BackoffConfig {
        base: Duration::from_millis(200),
        cap: Duration::from_secs(1),
        max_attempts: Some(4),
        seed: Some(42),
        ..BackoffConfig::default()
    };
    let heartbeat = HeartbeatConfig {
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(3),
    };
    let options = ClientOptions {
        backoff: backoff.clone(),
        heartbeat: heartbeat.clone(),
        ..ClientOptions::default()
    };
    let mut client = Client::connect(&format!("ws://{addr}/v1/ws"), options)
        .await
        .unwrap();
    let _held = held_rx.await.unwrap();
    tokio::time::pause();
    let start = Instant::now();

    let Some(Event::Reconnecting {
        attempt: 1,
        delay,
        reason,
        ..
    }) = client.next_event().await
    else {
        panic!("the silent connection must be replaced")
    };
    assert!(reason.contains("heartbeat timeout"), "{reason}");
    let waited = start.elapsed();
    assert!(
        // (timers have millisecond resolution)
        waited <= heartbeat.timeout + Duration::from_millis(5)
            && waited >= heartbeat.timeout - Duration::from_millis(500),
        "declared dead after {waited:?}"
    );

    // The same seed gives the same jittered delays.
    let mut expected = Backoff::new(backoff.clone());
    let mut delays = vec![delay];
    let mut last = Instant::now();
    let mut gaps = Vec::new();
    loop {
        match client.next_event().await {
            Some(Event::Reconnecting { attempt, delay, .. }) => {
                assert_eq!(attempt as usize, delays.len() + 1);
                gaps.push(last.elapsed());
                last = Instant::now();
                delays.push(delay);
            }
            Some(Event::Closed { reason }) => {
                assert!(reason.contains("gave up after 4 attempts"), "{reason}");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let want: Vec<Duration> = (1..=4).map(|n| expected.delay(n)).collect();
    assert_eq!(delays, want);
    for (n, d) in delays.iter().enumerate() {
        assert!(*d <= expected.ceiling(n as u32 + 1));
    }
    // Each attempt waited at least its delay.
    for (gap, delay) in gaps.iter().zip(&delays) {
        assert!(gap >= delay, "waited {gap:?} < delay {delay:?}");
    }
    assert_eq!(
        client.next_event().await,
        None,
        "the stream ends after Closed"
    );
}
