//! The accept loop's limits over real sockets (issue 14: silent and slowloris sockets from one
//! address had taken every file descriptor).

use crate::support::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A TCP connection to the gateway from `source` (any 127.x.y.z works on Linux loopback).
async fn open_from(gateway: &server::Gateway, source: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    socket.connect(gateway.local_addr()).await.unwrap()
}

/// Sends one request and reads the answer's status and JSON body (the connection closes).
async fn request(mut stream: TcpStream, path: &str) -> (u16, serde_json::Value) {
    let head = format!("GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    read_answer(stream).await
}

async fn read_answer(mut stream: TcpStream) -> (u16, serde_json::Value) {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or_default())
}

/// Waits until the server closes `stream` (EOF or reset), returning how long it took.
async fn closed_within(mut stream: TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), stream.read(&mut buf))
            .await
        {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn one_address_is_capped_and_the_others_still_get_in() {
    let mut config = config(5.0);
    config.server.max_connections_per_ip = 20;
    let gateway = start(config).await;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(open_from(&gateway, "127.0.0.3").await);
    }
    // The 21st from that address is answered 429 and closed at once.
    let (status, body) = read_answer(open_from(&gateway, "127.0.0.3").await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    // Another address is not affected.
    let (status, _) = request(open_from(&gateway, "127.0.0.4").await, "/healthz").await;
    assert_eq!(status, 200);
    let open = gateway.state().sockets().open();
    assert!(open >= 20, "{open} sockets counted");
    assert!(gateway.state().sockets().refused() >= 1);
    assert!(metric(&gateway, "tickgate_sockets_refused_total").await >= 1);
    assert!(metric(&gateway, "tickgate_sockets_open").await >= 20);
    drop(silent);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn silent_and_slowloris_sockets_are_closed_after_the_header_timeout() {
    let mut config = config(5.0);
    config.server.header_read_timeout_secs = 1;
    let gateway = start(config).await;
    let silent = open_from(&gateway, "127.0.0.5").await;
    let mut trickle = open_from(&gateway, "127.0.0.5").await;
    let drip = tokio::spawn(async move {
        // A byte every 200 ms of a request head that never ends.
        for byte in b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaa" {
            if trickle.write_all(&[*byte]).await.is_err() {
                return Some(trickle);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Some(trickle)
    });
    let took = closed_within(silent, Duration::from_secs(8)).await;
    assert!(took.is_some(), "a silent socket stayed open");
    let trickle = drip.await.unwrap().unwrap();
    let took = closed_within(trickle, Duration::from_secs(8)).await;
    assert!(took.is_some(), "a slowloris socket stayed open");
    assert!(gateway.state().sockets().timed_out() >= 1);
    // A normal client still gets its answer.
    let (status, _) = request(open_from(&gateway, "127.0.0.6").await, "/healthz").await;
    assert_eq!(status, 200);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_full_gateway_keeps_a_reserve_for_health_and_admin() {
    let mut config = config(5.0);
    config.server.max_connections = 25;
    config.server.connection_reserve = 5;
    config.server.max_connections_per_ip = 1_000;
    let gateway = start(config).await;
    let mut silent = Vec::new();
    for _ in 0..25 {
        silent.push(open_from(&gateway, "127.0.0.7").await);
    }
    // Wait until the gateway has accepted them all.
    for _ in 0..100 {
        if gateway.state().sockets().open() >= 25 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gateway.state().sockets().open(), 25);
    // In the reserve: market data is refused, health and admin answer.
    let (status, body) = request(open_from(&gateway, "127.0.0.8").await, "/v1/instruments").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    let (status, _) = request(open_from(&gateway, "127.0.0.8").await, "/healthz").await;
    assert_eq!(status, 200);
    let (status, body) = request(open_from(&gateway, "127.0.0.8").await, "/admin/v1/keys").await;
    assert_ne!(status, 503, "{body}");
    // Beyond max_connections and the reserve: refused at accept with 503.
    for _ in 0..5 {
        silent.push(open_from(&gateway, "127.0.0.7").await);
    }
    let (status, body) = read_answer(open_from(&gateway, "127.0.0.9").await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    drop(silent);
    gateway.stop().await.unwrap();
}
