//! Bad client input gets its error code and the connection keeps working.

use crate::support::*;
use protocol::{ErrorCode, RequestId, ServerMessage};

fn error_code(msg: &ServerMessage) -> ErrorCode {
    match msg {
        ServerMessage::Error(e) => e.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn each_bad_message_gets_its_code_and_the_connection_keeps_working() {
    let mut config = config(5.0);
    config.ws.max_requests_per_sec = 1000;
    let gateway = start(config).await;
    let mut ws = connect(&gateway).await;
    let oversized = format!(r#"{{"op":"ping","pad":"{}"}}"#, "x".repeat(20_000));
    let channels_201: Vec<String> = (0..201)
        .map(|i| format!("\"trades:sim:A{i}-USDT\""))
        .collect();
    let too_many = format!(
        r#"{{"op":"subscribe","id":9,"channels":[{}]}}"#,
        channels_201.join(",")
    );
    let cases: Vec<(&str, ErrorCode)> = vec![
        ("this is not json", ErrorCode::BadJson),
        ("[1,2,3]", ErrorCode::BadJson),
        (r#"{"op":"fly","id":1}"#, ErrorCode::UnknownOp),
        // A key given twice: refused, never read as whichever came last.
        (
            r#"{"op":"ping","op":"subscribe","channels":["status:sim"]}"#,
            ErrorCode::BadJson,
        ),
        (r#"{"id":2}"#, ErrorCode::UnknownOp),
        (r#"{"op":"subscribe","id":3}"#, ErrorCode::BadRequest),
        (
            r#"{"op":"subscribe","id":4,"channels":[]}"#,
            ErrorCode::BadRequest,
        ),
        (
            r#"{"op":"subscribe","id":5,"channels":["book:sim:DOGE-USDT"]}"#,
            ErrorCode::UnknownChannel,
        ),
        (
            r#"{"op":"subscribe","id":6,"channels":["book:nowhere:BTC-USDT"]}"#,
            ErrorCode::UnknownChannel,
        ),
        (
            r#"{"op":"subscribe","id":7,"channels":["orders:sim:BTC-USDT"]}"#,
            ErrorCode::InvalidChannel,
        ),
        (
            r#"{"op":"subscribe","id":8,"channels":["book:sim:btcusdt"]}"#,
            ErrorCode::InvalidChannel,
        ),
        (&too_many, ErrorCode::TooManyChannels),
        (&oversized, ErrorCode::MessageTooLarge),
        (
            r#"{"op":"unsubscribe","id":10,"channels":["nonsense"]}"#,
            ErrorCode::InvalidChannel,
        ),
    ];
    for (text, code) in cases {
        send(&mut ws, text).await;
        let reply = recv(&mut ws).await;
        assert_eq!(
            error_code(&reply),
            code,
            "reply to {}",
            &text[..text.len().min(60)]
        );
        // Still alive and answering.
        send(&mut ws, r#"{"op":"ping","id":"alive"}"#).await;
        assert!(
            matches!(recv(&mut ws).await, ServerMessage::Pong { id: Some(RequestId::Text(ref s)), .. } if s == "alive")
        );
    }
    // Errors echo the request id.
    send(
        &mut ws,
        r#"{"op":"subscribe","id":42,"channels":["book:sim:NOPE-USDT"]}"#,
    )
    .await;
    let ServerMessage::Error(e) = recv(&mut ws).await else {
        panic!()
    };
    assert_eq!(
        (e.id, e.channel.as_deref()),
        (Some(RequestId::Num(42)), Some("book:sim:NOPE-USDT"))
    );
    // A failed subscribe is all or nothing: the valid channel in it was not subscribed.
    send(
        &mut ws,
        r#"{"op":"subscribe","id":43,"channels":["trades:sim:BTC-USDT","book:sim:NOPE-USDT"]}"#,
    )
    .await;
    assert_eq!(error_code(&recv(&mut ws).await), ErrorCode::UnknownChannel);
    assert!(
        recv_within(&mut ws, std::time::Duration::from_millis(500))
            .await
            .is_none(),
        "nothing subscribed"
    );
    // Binary frames are refused politely.
    futures_util::SinkExt::send(
        &mut ws,
        tokio_tungstenite::tungstenite::Message::Binary(vec![1, 2, 3].into()),
    )
    .await
    .unwrap();
    assert_eq!(error_code(&recv(&mut ws).await), ErrorCode::BadRequest);
    assert!(metric(&gateway, "tickgate_errors_total{code=\"bad_json\"}").await >= 2);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_hostile_client_does_not_affect_another_client() {
    let gateway = start(config(100.0)).await;
    let mut good = connect(&gateway).await;
    send(
        &mut good,
        r#"{"op":"subscribe","channels":["book:sim:BTC-USDT"]}"#,
    )
    .await;
    recv(&mut good).await;
    let ServerMessage::Snapshot(s) = recv(&mut good).await else {
        panic!()
    };
    let mut mirror = Mirror::default();
    mirror.reset(&s);
    let mut bad = connect(&gateway).await;
    for i in 0..50 {
        send(
            &mut bad,
            &format!(
                "{{\"op\":\"subscribe\",\"id\":{i},\"channels\":[\"\\u0000{}\"]}}",
                "\u{1F600}".repeat(i)
            ),
        )
        .await;
        send(&mut bad, "{\"op\":").await;
    }
    for _ in 0..50 {
        let ServerMessage::Update(u) = recv(&mut good).await else {
            panic!("good client keeps getting updates")
        };
        mirror.update(&u);
    }
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn request_flood_is_rate_limited() {
    let mut config = config(5.0);
    config.ws.max_requests_per_sec = 5;
    let gateway = start(config).await;
    let mut ws = connect(&gateway).await;
    for i in 0..20 {
        send(&mut ws, &format!(r#"{{"op":"ping","id":{i}}}"#)).await;
    }
    let mut limited = 0;
    for _ in 0..20 {
        match recv(&mut ws).await {
            ServerMessage::Pong { .. } => {}
            ServerMessage::Error(e) if e.code == ErrorCode::RateLimited => limited += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        (10..=15).contains(&limited),
        "limited {limited} of 20 (burst 5)"
    );
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_frame_over_the_hard_limit_closes_with_1009() {
    let gateway = start(config(5.0)).await;
    let mut ws = connect(&gateway).await;
    let huge = format!(r#"{{"op":"ping","pad":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    send(&mut ws, &huge).await;
    let closed = wait_close(&mut ws, std::time::Duration::from_secs(5)).await;
    assert_eq!(closed, Some((1009, "message_too_large".to_string())));
    gateway.stop().await.unwrap();
}

/// A key pasted into the wrong field never comes back in an error (issue 14): not in the
/// WebSocket error's message or `channel`, not in a REST `bad_param` message, whole or
/// truncated.
#[tokio::test]
async fn errors_never_echo_a_credential() {
    let gateway = start(config(5.0)).await;
    let key = "tg_live_4eC39HqLyjWDarjtT1zdp7dcQ1pBkV2HYyxW1fK5TiyPRbmA8Qx";
    let secret_part = &key[8..30];
    let mut ws = connect(&gateway).await;
    for channel in [
        format!("book:sim:{key}"),
        format!("trades:sim:{}", &key[..40]),
    ] {
        send(
            &mut ws,
            &format!(r#"{{"op":"subscribe","id":1,"channels":["{channel}"]}}"#),
        )
        .await;
        let ServerMessage::Error(e) = recv(&mut ws).await else {
            panic!("expected an error")
        };
        let shown = format!("{} {:?}", e.message, e.channel);
        assert!(!shown.contains(secret_part), "{shown}");
        assert!(shown.contains(protocol::redact::REDACTED), "{shown}");
    }
    for path in [
        format!("/v1/ticker?venue=sim&symbol={key}"),
        format!("/v1/book?venue=sim&symbol=BTC-USDT&{key}=1"),
    ] {
        let (status, body) = get_json(&gateway, &path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(!body.to_string().contains(secret_part), "{path}: {body}");
    }
    gateway.stop().await.unwrap();
}
