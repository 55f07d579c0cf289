//! Credentials travel as a bearer header; swapping them while streaming replaces the
//! connection make-before-break without losing or repeating a message.

use crate::proxy::Proxy;
use crate::support::*;
use client::{Client, ClientOptions, Credentials, Event};
use std::time::Duration;

fn authorization(head: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("authorization")
            .then(|| value.trim().to_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_swap_while_streaming_loses_nothing() {
    let _heavy = HEAVY.lock().await;
    let mut config = config(100.0);
    config.auth.required = Some(true);
    config.auth.poll_interval_ms = 100;
    let dir = config.server.data_dir.clone();
    let (old_id, old_key) = create_key(&dir, "old", &["market:read"]);
    let (_, new_key) = create_key(&dir, "new", &["market:read"]);
    let gateway = start(config).await;
    let proxy = Proxy::start(gateway.local_addr()).await;
    let options = ClientOptions {
        credentials: Credentials::bearer(&old_key).unwrap(),
        ..options()
    };
    let mut client = Client::connect(&proxy.url(), options).await.unwrap();
    client
        .subscribe(["book:sim:BTC-USDT", "trades:sim:BTC-USDT"])
        .await
        .unwrap();
    let mut events = collect(&mut client, Duration::from_millis(600), |_| false).await;
    let handle = client.handle();
    let swap_key = new_key.clone();
    let swap = tokio::spawn(async move {
        let new = Credentials::bearer(&swap_key).unwrap();
        handle.set_credentials(new).await
    });
    events.extend(collect(&mut client, Duration::from_millis(1500), |_| false).await);
    swap.await.unwrap().unwrap();
    // Retire the old key: the stream, now on the new key, must not notice.
    key_service(&dir)
        .revoke(&old_id, "rotated out", "test", model::Timestamp::now().0)
        .unwrap();
    events.extend(collect(&mut client, Duration::from_millis(1200), |_| false).await);
    assert_eq!(
        count(&events, |e| matches!(e, Event::Reconnecting { .. })),
        0
    );
    assert!(
        count(
            &events,
            |e| matches!(e, Event::Recovered { lost, .. } if lost.is_empty())
        ) >= 1
    );
    assert_eq!(
        count(&events, |e| matches!(
            e,
            Event::Resync { .. } | Event::Gap { .. }
        )),
        0
    );
    assert!(assert_exactly_once(&events) > 100);
    client.rest().instruments().await.unwrap();
    let heads = proxy.heads();
    let keys: Vec<_> = heads.iter().map(|h| authorization(h)).collect();
    assert_eq!(
        keys,
        [
            Some(format!("Bearer {old_key}")),
            Some(format!("Bearer {new_key}")),
            Some(format!("Bearer {new_key}")),
        ],
        "upgrade with the old key, upgrade with the new key, REST with the new key"
    );
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_refused_upgrade_returns_the_gateways_code() {
    let mut config = config(5.0);
    config.server.max_connections = 1;
    let gateway = start(config).await;
    let url = format!("http://{}", gateway.local_addr());
    let _first = Client::connect(&url, options()).await.unwrap();
    let error = Client::connect(&url, options()).await.unwrap_err();
    assert_eq!(error.code(), "unavailable", "{error}");
    assert!(error.is_retryable());
    assert!(matches!(
        error,
        client::ClientError::Api {
            status: Some(503),
            ..
        }
    ));
    gateway.stop().await.unwrap();
}
