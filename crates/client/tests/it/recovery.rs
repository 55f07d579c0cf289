//! Through a faulty network: short cuts are recovered exactly, long ones resync, dropped
//! frames are repaired, and the mirror always equals the gateway's book.

use crate::proxy::Proxy;
use crate::support::*;
use client::{Client, Event};
use std::time::Duration;

const BOOK: &str = "book:sim:BTC-USDT";
const TRADES: &str = "trades:sim:BTC-USDT";

async fn subscribed_client(proxy: &Proxy) -> Client {
    let client = Client::connect(&proxy.url(), options()).await.unwrap();
    client.subscribe([BOOK, TRADES]).await.unwrap();
    client
}

fn is_loss(event: &Event) -> bool {
    matches!(event, Event::Resync { .. } | Event::Gap { .. })
        || matches!(event, Event::Snapshot(s) if s.resync)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_cut_is_recovered_and_every_seq_arrives_exactly_once() {
    let _heavy = HEAVY.lock().await;
    let gateway = start(config(100.0)).await;
    let proxy = Proxy::start(gateway.local_addr()).await;
    let mut client = subscribed_client(&proxy).await;
    let mut events = collect(&mut client, Duration::from_millis(800), |_| false).await;
    proxy.cut();
    let mut recovered = false;
    events.extend(
        collect(&mut client, Duration::from_secs(10), |e| {
            if let Event::Recovered {
                recovered: ok,
                lost,
            } = e
            {
                assert!(lost.is_empty(), "lost {lost:?}");
                assert_eq!(ok.len(), 2);
                recovered = true;
            }
            false
        })
        .await
        .into_iter()
        .take_while(|_| true),
    );
    assert!(recovered, "no Recovered event");
    assert!(count(&events, |e| matches!(e, Event::Reconnecting { .. })) >= 1);
    assert_eq!(
        count(&events, is_loss),
        0,
        "nothing may be lost on a short cut"
    );
    assert_eq!(
        count(&events, |e| matches!(e, Event::Snapshot(_))),
        1,
        "the book continues from the replay, no second snapshot"
    );
    let data = assert_exactly_once(&events);
    assert!(data > 200, "only {data} data events");
    let book = client.book(BOOK).unwrap();
    assert_mirror_equals_rest(&client, &book, 3).await;
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_cut_resyncs_the_book_and_reports_the_trades_gap() {
    let _heavy = HEAVY.lock().await;
    let mut config = config(100.0);
    config.hub.history_size = 16;
    let gateway = start(config).await;
    let proxy = Proxy::start(gateway.local_addr()).await;
    let mut client = subscribed_client(&proxy).await;
    let before = collect(&mut client, Duration::from_millis(500), |_| false).await;
    assert_exactly_once(&before);
    proxy.refuse(true);
    proxy.cut();
    // Far more than 16 messages per channel are published meanwhile.
    let during = collect(&mut client, Duration::from_millis(1500), |_| false).await;
    assert!(count(&during, |e| matches!(e, Event::Reconnecting { .. })) >= 2);
    proxy.refuse(false);
    let (mut resync, mut snapshot, mut gap, mut lost) = (false, false, false, 0);
    let after = collect(&mut client, Duration::from_secs(10), |e| {
        match e {
            Event::Recovered { lost: l, .. } => lost = l.len(),
            Event::Resync { reason, .. } => {
                assert_eq!(reason, "not_recovered");
                resync = true;
            }
            Event::Snapshot(s) => {
                assert!(resync && s.resync, "a resync snapshot, announced");
                snapshot = true;
            }
            Event::Gap {
                reason,
                from_seq,
                to_seq,
                ..
            } => {
                assert_eq!(reason, "history_expired");
                assert!(to_seq >= from_seq);
                gap = true;
            }
            _ => {}
        }
        snapshot && gap
    })
    .await;
    assert_eq!(lost, 2, "both channels reported lost");
    assert!(resync && snapshot && gap, "{after:?}");
    assert_exactly_once(&after);
    let book = client.book(BOOK).unwrap();
    assert_mirror_equals_rest(&client, &book, 3).await;
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_frames_are_detected_and_replayed_from_the_history() {
    let _heavy = HEAVY.lock().await;
    let gateway = start(config(100.0)).await;
    let proxy = Proxy::start(gateway.local_addr()).await;
    let mut client = subscribed_client(&proxy).await;
    let mut events = collect(&mut client, Duration::from_millis(300), |_| false).await;
    proxy.drop_updates(2, TRADES);
    events.extend(collect(&mut client, Duration::from_millis(800), |_| false).await);
    proxy.drop_updates(2, BOOK);
    events.extend(collect(&mut client, Duration::from_millis(1500), |_| false).await);
    assert_eq!(proxy.dropped(), 4);
    assert_eq!(proxy.connections(), 1, "repaired on the same connection");
    assert_eq!(
        count(&events, is_loss),
        0,
        "every dropped message was replayed"
    );
    assert!(count(&events, |e| matches!(e, Event::Recovered { .. })) >= 2);
    assert_exactly_once(&events);
    let book = client.book(BOOK).unwrap();
    assert_mirror_equals_rest(&client, &book, 3).await;
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_connection_is_declared_dead_and_replaced_without_loss() {
    let _heavy = HEAVY.lock().await;
    let gateway = start(config(50.0)).await;
    let proxy = Proxy::start(gateway.local_addr()).await;
    let mut client = subscribed_client(&proxy).await;
    let mut events = collect(&mut client, Duration::from_millis(300), |_| false).await;
    proxy.stall_open_connections();
    let mut reason = String::new();
    events.extend(
        collect(&mut client, Duration::from_secs(10), |e| {
            if let Event::Reconnecting { reason: r, .. } = e {
                reason = r.clone();
            }
            matches!(e, Event::Recovered { .. })
        })
        .await,
    );
    assert!(reason.contains("heartbeat timeout"), "{reason}");
    events.extend(collect(&mut client, Duration::from_millis(500), |_| false).await);
    assert_eq!(count(&events, is_loss), 0);
    assert_exactly_once(&events);
    gateway.stop().await.unwrap();
}
