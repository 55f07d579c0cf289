//! Test harness: start a gateway, talk to it.

use futures_util::{SinkExt, StreamExt};
use model::{Decimal, Level};
use protocol::{DataMessage, ServerMessage, WireLevel};
use server::{Config, Gateway};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Held by tests that load the machine (high simulator rates, latency assertions), so that two
/// of them never run at once on a 2-core machine.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A fresh, empty data directory (each gateway gets its own history database).
pub fn temp_data_dir() -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tickgate-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A config for tests: port 0, a fresh data dir, the sim at `rate` events/s per symbol.
pub fn config(rate: f64) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = temp_data_dir();
    config.server.shutdown_grace_secs = 2;
    config.venues[0].sim.rate = rate;
    config
}

pub async fn start(config: Config) -> Gateway {
    let gateway = Gateway::start(config).await.expect("gateway starts");
    // Wait until every book is live.
    let url = format!("http://{}/readyz", gateway.local_addr());
    for _ in 0..200 {
        if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
            return gateway;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gateway never became ready");
}

pub async fn connect(gateway: &Gateway) -> Ws {
    let url = format!("ws://{}/v1/ws", gateway.local_addr());
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects");
    ws
}

pub async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.expect("send");
}

/// The next text message, parsed; panics after 30 s (a failure detector, not a latency check:
/// CI machines are shared and a debug gateway can be starved for seconds).
pub async fn recv(ws: &mut Ws) -> ServerMessage {
    recv_within(ws, Duration::from_secs(30))
        .await
        .expect("a message within 30 s")
}

pub async fn recv_within(ws: &mut Ws, limit: Duration) -> Option<ServerMessage> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next()).await.ok()?;
        match next {
            Some(Ok(Message::Text(text))) => {
                return Some(
                    serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("unparseable {text}: {e}")),
                );
            }
            Some(Ok(Message::Close(frame))) => panic!("connection closed: {frame:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("websocket error: {e}"),
            None => panic!("connection ended"),
        }
    }
}

/// Skips messages until the server's close frame; returns its code and reason. Panics if the
/// connection is not closed within `limit`.
pub async fn wait_close(ws: &mut Ws, limit: Duration) -> Option<(u16, String)> {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(frame))) => {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// Skips messages until one matches.
pub async fn recv_until(
    ws: &mut Ws,
    mut pred: impl FnMut(&ServerMessage) -> bool,
) -> ServerMessage {
    for _ in 0..100_000 {
        let msg = recv(ws).await;
        if pred(&msg) {
            return msg;
        }
    }
    panic!("no matching message");
}

pub fn data(msg: &ServerMessage) -> Option<&DataMessage> {
    match msg {
        ServerMessage::Snapshot(d) | ServerMessage::Update(d) => Some(d),
        _ => None,
    }
}

/// A client-side book mirror, built only from what the protocol documents.
#[derive(Debug, Default, Clone)]
pub struct Mirror {
    pub bids: BTreeMap<Decimal, Level>,
    pub asks: BTreeMap<Decimal, Level>,
    pub seq: u64,
}

impl Mirror {
    pub fn reset(&mut self, d: &DataMessage) {
        self.bids.clear();
        self.asks.clear();
        self.apply_levels(d);
        self.seq = d.seq;
    }

    /// Applies an update; panics if `seq` does not follow.
    pub fn update(&mut self, d: &DataMessage) {
        assert_eq!(
            d.seq,
            self.seq + 1,
            "book update seq must follow the previous message"
        );
        self.apply_levels(d);
        self.seq = d.seq;
    }

    fn apply_levels(&mut self, d: &DataMessage) {
        for (side, levels) in [(&mut self.bids, &d.bids), (&mut self.asks, &d.asks)] {
            for WireLevel(price, size) in levels.as_deref().unwrap_or_default() {
                if size.is_zero() {
                    side.remove(price);
                } else {
                    side.insert(*price, Level::new(*price, *size));
                }
            }
        }
    }

    pub fn bids_best_first(&self) -> Vec<Level> {
        self.bids.values().rev().copied().collect()
    }

    pub fn asks_best_first(&self) -> Vec<Level> {
        self.asks.values().copied().collect()
    }

    pub fn checksum(&self) -> u32 {
        book::checksum::tickgate_checksum(&self.bids_best_first(), &self.asks_best_first())
    }

    pub fn is_crossed(&self) -> bool {
        matches!((self.bids.keys().next_back(), self.asks.keys().next()), (Some(b), Some(a)) if b >= a)
    }
}

/// GET `path`; the status and the body as JSON (or as a JSON string if it is not JSON).
pub async fn get_json(gateway: &Gateway, path: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(format!("http://{}{path}", gateway.local_addr()))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// Reads `/metrics` and returns the value of one sample line (exact name with labels).
pub async fn metric(gateway: &Gateway, sample: &str) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", gateway.local_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("metric {sample} not found in:\n{text}"))
}
