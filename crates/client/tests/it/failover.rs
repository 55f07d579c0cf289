//! Several gateway URLs: the client connects to the first that answers and, when its gateway
//! goes away, reconnects to the next URL in turn and resubscribes every channel there, with
//! REST following the stream. Two single-node gateways have different epochs, so the resume
//! on the second one starts over (`lost`, a resync snapshot); the exact resume across cluster
//! edges (`recovered`) is tested with real processes in `crates/tickgate/tests/cluster_procs.rs`.

use crate::support::*;
use client::{Client, Event};
use std::time::Duration;

const BOOK: &str = "book:sim:BTC-USDT";

/// A loopback port nothing listens on (bound, then released).
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

#[tokio::test]
async fn bad_url_lists_are_refused_before_connecting() {
    // No gateway runs in this test to install it, and the workspace builds reqwest without one.
    server::install_crypto_provider();
    let none: [&str; 0] = [];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (none.to_vec(), "invalid_url"),
        (vec!["http://127.0.0.1:1", "gopher://h:1"], "invalid_url"),
        (vec!["http://127.0.0.1:1", "127.0.0.1:2"], "invalid_url"),
        (
            vec!["http://127.0.0.1:1", "ws://127.0.0.1:1/v1/ws"],
            "invalid_argument",
        ),
    ];
    for (urls, code) in cases {
        let error = Client::connect_any(&urls, options()).await.unwrap_err();
        assert_eq!(error.code(), code, "{urls:?}: {error}");
    }
    // Every URL unreachable: the last one's error.
    let (a, b) = (dead_url(), dead_url());
    let error = Client::connect_any([&a, &b], options()).await.unwrap_err();
    assert_eq!(error.code(), "connect_failed", "{error}");
    assert!(error.to_string().contains(&b[7..]), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_two_urls_skips_a_dead_one_and_fails_over_to_the_next() {
    let _heavy = HEAVY.lock().await;
    let a = start(config(50.0)).await;
    let b = start(config(50.0)).await;
    let (url_a, url_b) = (
        format!("http://{}", a.local_addr()),
        format!("http://{}", b.local_addr()),
    );

    // A dead URL first: the client connects to the next one.
    let client = Client::connect_any([dead_url(), url_a.clone()], options())
        .await
        .unwrap();
    assert_eq!(client.endpoint().http, url_a);
    assert_eq!(client.endpoints().len(), 2);
    client.close().await;

    let mut client = Client::connect_any([url_a.clone(), url_b.clone()], options())
        .await
        .unwrap();
    assert_eq!(client.endpoint().http, url_a);
    client.subscribe([BOOK]).await.unwrap();
    let mut epoch_a = None;
    collect(&mut client, Duration::from_secs(5), |e| {
        if let Event::Snapshot(s) = e {
            epoch_a = Some(s.meta.epoch.clone());
        }
        epoch_a.is_some()
    })
    .await;
    let epoch_a = epoch_a.expect("a snapshot from A");

    a.stop().await.unwrap();
    let (mut to, mut lost, mut snapshot) = (Vec::new(), 0, None);
    let events = collect(&mut client, Duration::from_secs(10), |e| {
        match e {
            Event::Reconnecting { url, .. } => to.push(url.clone()),
            Event::Recovered { lost: l, .. } => lost = l.len(),
            Event::Snapshot(s) if lost > 0 => snapshot = Some(s.clone()),
            _ => {}
        }
        snapshot.is_some()
    })
    .await;
    assert_eq!(
        to.first(),
        Some(&url_b),
        "the first attempt goes to the next URL: {events:?}"
    );
    let snapshot = snapshot.expect("a fresh snapshot from B");
    assert!(snapshot.resync, "it replaces A's book");
    assert_ne!(snapshot.meta.epoch, epoch_a, "B's epoch: started over");
    assert_eq!(lost, 1);
    assert_eq!(client.endpoint().http, url_b, "REST follows the stream");
    let book = client.book(BOOK).unwrap();
    assert_mirror_equals_rest(&client, &book, 2).await;
    client.close().await;
    b.stop().await.unwrap();
}
