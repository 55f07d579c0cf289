//! The reconnect schedule, in virtual time: every wait is the announced jittered delay, below
//! the exponential ceiling, and the ceilings double up to the cap.

use crate::support::*;
use connectors::conn::WsConnector;
use connectors::settings::VenueSpec;
use connectors::venue;
use connectors::{ConnectionState, Connector, ConnectorContext, FeedEvent};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// "…; reconnecting in 123 ms" → 123.
fn announced(detail: &str) -> Option<u64> {
    detail
        .rsplit_once("reconnecting in ")?
        .1
        .strip_suffix(" ms")?
        .parse()
        .ok()
}

#[tokio::test(start_paused = true)]
async fn backoff_waits_follow_the_full_jitter_schedule() {
    // A port nobody listens on: every attempt fails.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut spec = VenueSpec::new(vec![sym("BTC-USD")]);
    spec.ws_url = Some(format!("ws://127.0.0.1:{port}"));
    spec.rest_url = Some(format!("http://127.0.0.1:{port}"));
    spec.feed.backoff_base_ms = 1000;
    spec.feed.backoff_cap_ms = 8000;
    let connector = WsConnector::new(venue::protocol("kraken", spec).unwrap());
    let (tx, mut rx) = mpsc::channel(64);
    let (_cmd_tx, cmd_rx) = mpsc::channel(8);
    let shutdown = CancellationToken::new();
    let ctx = ConnectorContext {
        events: tx,
        commands: cmd_rx,
        shutdown: shutdown.clone(),
    };
    let task = tokio::spawn(Box::new(connector).run(ctx));

    let mut waits: Vec<(u64, Duration)> = Vec::new();
    let mut pending: Option<(u64, Instant)> = None;
    while waits.len() < 8 {
        let batch = rx.recv().await.expect("connector running");
        for event in batch {
            let FeedEvent::Status { state, detail } = event else {
                continue;
            };
            if let Some(ms) = announced(&detail) {
                pending = Some((ms, Instant::now()));
            } else if state == ConnectionState::Connecting
                && let Some((ms, since)) = pending.take()
            {
                waits.push((ms, Instant::now() - since));
            }
        }
    }
    shutdown.cancel();
    let _ = task.await;
    let ceilings = [1000, 2000, 4000, 8000, 8000, 8000, 8000, 8000];
    for (n, ((ms, waited), ceiling)) in waits.iter().zip(ceilings).enumerate() {
        assert!(
            *ms <= ceiling,
            "attempt {n}: {ms} ms above the ceiling {ceiling} ms"
        );
        // Announced in whole ms (truncated); the timer wheel has 1 ms resolution.
        let waited = waited.as_millis() as u64;
        assert!(
            (*ms..=ms + 2).contains(&waited),
            "attempt {n}: waited {waited} ms, announced {ms} ms"
        );
    }
    // Full jitter: the waits are not a fixed ladder.
    let distinct: std::collections::HashSet<u64> = waits.iter().map(|(ms, _)| *ms).collect();
    assert!(distinct.len() > 4, "{waits:?}");
}
