//! Unsubscribe, heartbeats and shutdown.

use crate::support::*;
use protocol::ServerMessage;
use std::time::Duration;

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let gateway = start(config(200.0)).await;
    let mut ws = connect(&gateway).await;
    send(
        &mut ws,
        r#"{"op":"subscribe","id":1,"channels":["book:sim:BTC-USDT","trades:sim:BTC-USDT"]}"#,
    )
    .await;
    recv(&mut ws).await;
    recv_until(&mut ws, |m| {
        data(m).is_some_and(|d| d.channel == "trades:sim:BTC-USDT")
    })
    .await;
    send(
        &mut ws,
        r#"{"op":"unsubscribe","id":2,"channels":["book:sim:BTC-USDT"]}"#,
    )
    .await;
    recv_until(&mut ws, |m| matches!(m, ServerMessage::Unsubscribed { .. })).await;
    // After the ack, no more book messages; trades keep coming.
    let mut trades = 0;
    while trades < 5 {
        let msg = recv(&mut ws).await;
        let d = data(&msg).expect("data");
        assert_ne!(
            d.channel, "book:sim:BTC-USDT",
            "book message after unsubscribe"
        );
        trades += 1;
    }
    send(
        &mut ws,
        r#"{"op":"unsubscribe","id":3,"channels":["trades:sim:BTC-USDT"]}"#,
    )
    .await;
    recv_until(&mut ws, |m| matches!(m, ServerMessage::Unsubscribed { .. })).await;
    assert!(
        recv_within(&mut ws, Duration::from_millis(600))
            .await
            .is_none(),
        "no delivery after unsubscribing everything"
    );
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn resubscribing_is_idempotent() {
    let gateway = start(config(50.0)).await;
    let mut ws = connect(&gateway).await;
    send(
        &mut ws,
        r#"{"op":"subscribe","channels":["book:sim:BTC-USDT"]}"#,
    )
    .await;
    recv(&mut ws).await;
    let ServerMessage::Snapshot(s) = recv(&mut ws).await else {
        panic!()
    };
    let mut mirror = Mirror::default();
    mirror.reset(&s);
    send(
        &mut ws,
        r#"{"op":"subscribe","channels":["book:sim:BTC-USDT"]}"#,
    )
    .await;
    // The second subscribe is acked but sends no second snapshot; updates stay continuous.
    let mut acked = false;
    for _ in 0..30 {
        match recv(&mut ws).await {
            ServerMessage::Subscribed { .. } => acked = true,
            ServerMessage::Update(u) => mirror.update(&u),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(acked);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_sessions_with_going_away() {
    let gateway = start(config(50.0)).await;
    let mut a = connect(&gateway).await;
    let mut b = connect(&gateway).await;
    send(
        &mut a,
        r#"{"op":"subscribe","channels":["trades:sim:BTC-USDT"]}"#,
    )
    .await;
    recv(&mut a).await;
    let stopping = tokio::spawn(gateway.stop());
    for ws in [&mut a, &mut b] {
        let code = wait_close(ws, Duration::from_secs(5))
            .await
            .map(|(code, _)| code);
        assert_eq!(code, Some(1001));
    }
    stopping.await.unwrap().unwrap();
}

#[tokio::test]
async fn silent_clients_are_closed_after_the_idle_timeout() {
    let mut config = config(5.0);
    config.ws.ping_interval_secs = 1;
    config.ws.idle_timeout_secs = 2;
    let gateway = start(config).await;
    // A raw client that never reads never answers pings, so the server sees silence.
    let mut ws = connect(&gateway).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let code = wait_close(&mut ws, Duration::from_secs(5))
        .await
        .map(|(code, _)| code);
    assert_eq!(code, Some(4000));
    assert_eq!(metric(&gateway, "tickgate_idle_disconnects_total").await, 1);
    gateway.stop().await.unwrap();
}
