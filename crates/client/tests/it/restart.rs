//! The gateway is stopped and started again on the same port: the client reconnects with
//! backoff, sees the new epoch and starts every channel over, saying so.

use crate::support::*;
use client::{Client, Event};
use std::time::Duration;

const BOOK: &str = "book:sim:ETH-USDT";
const TRADES: &str = "trades:sim:ETH-USDT";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gateway_is_detected_by_its_new_epoch() {
    let _heavy = HEAVY.lock().await;
    let gateway = start(config(50.0)).await;
    let addr = gateway.local_addr();
    let mut options = options();
    options.backoff.stable_after = Duration::from_millis(300);
    let mut client = Client::connect(&format!("http://{addr}"), options)
        .await
        .unwrap();
    client.subscribe([BOOK, TRADES]).await.unwrap();
    let mut old_epoch = None;
    collect(&mut client, Duration::from_secs(5), |e| {
        if let Event::Snapshot(s) = e {
            old_epoch = Some(s.meta.epoch.clone());
        }
        old_epoch.is_some()
    })
    .await;
    let old_epoch = old_epoch.expect("a first snapshot");

    // Stay connected past `stable_after` so that the next failures count from 1.
    tokio::time::sleep(Duration::from_millis(400)).await;
    gateway.stop().await.unwrap();
    // Down for a while: several attempts fail, each delay within the backoff bounds.
    let down = collect(&mut client, Duration::from_millis(700), |_| false).await;
    let attempts: Vec<u32> = down
        .iter()
        .filter_map(|e| match e {
            Event::Reconnecting { attempt, delay, .. } => {
                assert!(*delay <= Duration::from_millis(400), "capped");
                Some(*attempt)
            }
            _ => None,
        })
        .collect();
    assert!(attempts.len() >= 2, "{down:?}");
    assert_eq!(
        attempts[0], 1,
        "a stable connection resets the attempt count"
    );
    assert!(attempts.windows(2).all(|w| w[1] == w[0] + 1));

    let mut config = config(50.0);
    config.server.listen = addr;
    let gateway = start_on_same_port(config).await;
    let (mut lost, mut resync, mut new_epoch, mut gap) = (0, false, None, None);
    collect(&mut client, Duration::from_secs(15), |e| {
        match e {
            Event::Recovered { lost: l, .. } => lost = l.len(),
            Event::Resync { reason, .. } => resync = reason == "not_recovered",
            Event::Snapshot(s) if resync => new_epoch = Some(s.meta.epoch.clone()),
            Event::Gap { reason, .. } => gap = Some(reason.clone()),
            _ => {}
        }
        new_epoch.is_some() && gap.is_some()
    })
    .await;
    assert_eq!(lost, 2);
    let new_epoch = new_epoch.expect("a resync snapshot after the restart");
    assert_ne!(new_epoch, old_epoch);
    assert_eq!(gap.as_deref(), Some("epoch_changed"));
    let book = client.book(BOOK).unwrap();
    assert_mirror_equals_rest(&client, &book, 2).await;
    gateway.stop().await.unwrap();
}

/// Binds the same port again (the old listener may take a moment to go away).
async fn start_on_same_port(config: server::Config) -> server::Gateway {
    for _ in 0..100 {
        match server::Gateway::start(config.clone()).await {
            Ok(gateway) => {
                wait_ready(&gateway).await;
                return gateway;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("could not bind the same port again");
}
