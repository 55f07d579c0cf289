//! A client that stops reading is conflated or dropped; a fast client on the same channels is
//! not slowed down.

use crate::support::*;
use futures_util::StreamExt;
use protocol::ServerMessage;
use server::config::SlowConsumerPolicy;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const CHANNELS: &str =
    r#"{"op":"subscribe","channels":["book:sim:BTC-USDT","trades:sim:BTC-USDT"]}"#;

fn busy_config(policy: SlowConsumerPolicy) -> server::Config {
    let mut config = config(300.0);
    config.hub.channel_capacity = 128;
    // A small kernel send buffer makes the stalled client fall behind within a second.
    config.server.socket_send_buffer = 8 * 1024;
    config.ws.slow_consumer = policy;
    config.ws.write_timeout_secs = 60;
    config.ws.max_lags_per_minute = 1000;
    config
}

/// A client whose kernel receive buffer is tiny, so that when it stops reading the server's
/// writes to it stall within a second instead of after megabytes of loopback buffering.
async fn connect_slow(gateway: &server::Gateway) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(gateway.local_addr()).await.unwrap();
    let url = format!("ws://{}/v1/ws", gateway.local_addr());
    let (ws, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    ws
}

/// Reads for `window` and checks the client is never held back: every channel's seq is
/// continuous and no gap or resync is ever needed. Returns the 99th percentile of (receive
/// time − gateway receive time) in µs, and the number of data messages.
///
/// Absolute latency is asserted only loosely: the machine is shared and tests run in debug
/// builds; `tickgate bench fanout` measures latency properly.
async fn fast_client_p99(ws: &mut Ws, window: Duration) -> (i64, usize) {
    let mut latencies = Vec::new();
    let mut last = std::collections::HashMap::<String, u64>::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout_at(deadline, ws.next()).await
    {
        // A full serde parse per message is too slow for a debug-build client on a busy
        // machine; the fields the check needs are read directly (they are at fixed places in
        // the server's output, asserted against a full parse on the first message).
        let text = text.as_str();
        let field = |name: &str| -> Option<&str> {
            let start = text.find(name)? + name.len();
            let rest = &text[start..];
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            Some(rest[..end].trim_matches('"'))
        };
        let kind = field("\"type\":").unwrap_or_default();
        if kind == "subscribed" {
            continue;
        }
        let channel = field("\"channel\":").unwrap_or_default().to_string();
        let seq: u64 = field("\"seq\":").and_then(|v| v.parse().ok()).unwrap_or(0);
        if last.is_empty() {
            let full: ServerMessage = serde_json::from_str(text).unwrap();
            let d = data(&full).expect("a data message");
            assert_eq!((d.channel.as_str(), d.seq), (channel.as_str(), seq));
        }
        match kind {
            "snapshot" => {
                assert!(
                    !text.contains("\"resync\":true"),
                    "the fast client was conflated"
                );
                last.insert(channel, seq);
            }
            "update" => {
                if let Some(prev) = last.insert(channel.clone(), seq) {
                    assert_eq!(seq, prev + 1, "fast client missed messages on {channel}");
                }
                let recv_ts: i64 = field("\"recv_ts\":")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                latencies.push(model::Timestamp::now().0 - recv_ts);
            }
            other => panic!("fast client got {other}: {text}"),
        }
    }
    latencies.sort_unstable();
    let p99 = latencies
        .get(latencies.len() * 99 / 100)
        .copied()
        .unwrap_or(i64::MAX);
    (p99, latencies.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_is_conflated_while_fast_client_keeps_up() {
    let _heavy = HEAVY.lock().await;
    let gateway = start(busy_config(SlowConsumerPolicy::Conflate)).await;
    let mut fast = connect(&gateway).await;
    let mut slow = connect_slow(&gateway).await;
    send(&mut fast, CHANNELS).await;
    send(&mut slow, CHANNELS).await;
    recv(&mut slow).await;
    let ServerMessage::Snapshot(first) =
        recv_until(&mut slow, |m| matches!(m, ServerMessage::Snapshot(_))).await
    else {
        unreachable!()
    };
    let mut mirror = Mirror::default();
    mirror.reset(&first);
    // The slow client stops reading; the fast one reads for the whole window.
    let (p99, delivered) = fast_client_p99(&mut fast, Duration::from_secs(4)).await;
    assert!(
        delivered > 500,
        "fast client got {delivered} messages, p99 {p99}"
    );
    assert!(
        p99 < 2_000_000,
        "fast client p99 {p99} µs while another client stalls"
    );
    // The slow client resumes: it must be told, and its book must be right afterwards.
    let (mut conflated, mut gaps) = (false, false);
    let mut book_seq_ok_after_resync = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        match recv(&mut slow).await {
            ServerMessage::Snapshot(s) if s.channel.starts_with("book") => {
                assert!(s.resync, "a later book snapshot is a resync");
                mirror.reset(&s);
                assert_eq!(Some(mirror.checksum()), s.checksum);
                conflated = true;
            }
            ServerMessage::Update(u) if u.channel.starts_with("book") => {
                if conflated {
                    mirror.update(&u);
                    assert_eq!(Some(mirror.checksum()), u.checksum);
                    book_seq_ok_after_resync += 1;
                } else if u.seq == mirror.seq + 1 {
                    mirror.update(&u);
                }
            }
            ServerMessage::Gap {
                channel,
                from_seq,
                to_seq,
                ..
            } => {
                assert_eq!(channel, "trades:sim:BTC-USDT");
                assert!(to_seq >= from_seq);
                gaps = true;
            }
            ServerMessage::Resync { .. } | ServerMessage::Update(_) => {}
            other => panic!("unexpected {other:?}"),
        }
        if conflated && gaps && book_seq_ok_after_resync > 100 {
            break;
        }
    }
    assert!(
        conflated && gaps,
        "conflated {conflated}, gap notice {gaps}"
    );
    assert!(metric(&gateway, "tickgate_conflations_total").await >= 1);
    assert!(metric(&gateway, "tickgate_gaps_total").await >= 1);
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_is_disconnected_under_the_disconnect_policy() {
    let _heavy = HEAVY.lock().await;
    let gateway = start(busy_config(SlowConsumerPolicy::Disconnect)).await;
    let mut fast = connect(&gateway).await;
    let mut slow = connect_slow(&gateway).await;
    send(&mut fast, CHANNELS).await;
    send(&mut slow, CHANNELS).await;
    let (_, delivered) = fast_client_p99(&mut fast, Duration::from_secs(4)).await;
    assert!(delivered > 500, "fast client got {delivered}");
    let code = wait_close(&mut slow, Duration::from_secs(10)).await;
    assert_eq!(code, Some((4001, "slow_consumer".to_string())));
    assert_eq!(
        metric(&gateway, "tickgate_slow_consumer_disconnects_total").await,
        1
    );
    gateway.stop().await.unwrap();
}
