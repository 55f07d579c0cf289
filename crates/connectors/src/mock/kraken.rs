//! Mock Kraken WebSocket v2: `/v2` (`subscribe`/`unsubscribe` with `req_id`, `book` snapshots
//! and updates with CRC32 checksums over the subscribed depth, `trade`, `ticker`, `heartbeat`) and
//! `GET /0/public/AssetPairs`.

use super::{Control, MockBook, OpenGuard, Shared, lock, rng};
use crate::conn::backoff::Rng;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use book::checksum::kraken_checksum;
use model::Level;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// What the mock broadcasts: a pair's book update (`None` for other traffic), the frame, and
/// the pair's book version after it.
type Outgoing = (Option<String>, String, u64);

#[derive(Debug, Default)]
struct MessageFaults {
    skip: HashSet<String>,
    wrong_checksum: HashSet<String>,
    corrupt: HashSet<String>,
}

#[derive(Debug)]
struct Market {
    books: BTreeMap<String, MockBook>,
    versions: BTreeMap<String, u64>,
    depth: usize,
    trade_id: u64,
    rng: Rng,
    faults: MessageFaults,
}

/// A running mock Kraken.
#[derive(Debug, Clone)]
pub struct MockKraken {
    pub addr: SocketAddr,
    pub control: Arc<Control>,
    market: Arc<Mutex<Market>>,
    tx: broadcast::Sender<Outgoing>,
}

type AppState = Shared<Market, Outgoing>;

/// `BTC-USD` → `BTC/USD`.
fn pair(symbol: &str) -> String {
    symbol.replace('-', "/")
}

fn level_json(out: &mut String, l: &Level) {
    // Numbers written with their exact scale, as Kraken does.
    let _ = write!(out, "{{\"price\":{},\"qty\":{}}}", l.price, l.size);
}

fn levels_json(levels: &[Level]) -> String {
    let mut out = String::from("[");
    for (i, l) in levels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        level_json(&mut out, l);
    }
    out.push(']');
    out
}

fn book_frame(kind: &str, pair: &str, bids: &[Level], asks: &[Level], checksum: u32) -> String {
    format!(
        "{{\"channel\":\"book\",\"type\":\"{kind}\",\"data\":[{{\"symbol\":\"{pair}\",\"bids\":{},\"asks\":{},\"checksum\":{checksum},\"timestamp\":\"2023-10-06T17:35:55.440295Z\"}}]}}",
        levels_json(bids),
        levels_json(asks)
    )
}

impl MockKraken {
    /// Starts a mock for `symbols` (normalized) publishing books `depth` deep.
    pub async fn start(symbols: &[&str], depth: usize) -> std::io::Result<Self> {
        let mut rng = rng(23);
        let books = symbols
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    pair(s),
                    MockBook::new(452_000 + i as i64 * 100, 1, 8, 40, &mut rng),
                )
            })
            .collect();
        let versions = symbols.iter().map(|s| (pair(s), 0)).collect();
        let market = Market {
            books,
            versions,
            depth,
            trade_id: 1,
            rng,
            faults: MessageFaults::default(),
        };
        let router = axum::Router::new()
            .route("/v2", get(upgrade))
            .route("/0/public/AssetPairs", get(asset_pairs));
        let (addr, state) = Shared::serve(market, router).await?;
        Ok(Self {
            addr,
            control: state.control,
            market: state.market,
            tx: state.tx,
        })
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn rest_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Moves every market `n` times; each move is one `book` update (what changed within the
    /// published depth, as Kraken sends it) and one trade.
    pub fn step(&self, n: usize) {
        let mut m = lock(&self.market);
        let pairs: Vec<String> = m.books.keys().cloned().collect();
        for _ in 0..n {
            for p in &pairs {
                let depth = m.depth;
                let Market { books, rng, .. } = &mut *m;
                let book = books.get_mut(p).expect("known pair");
                let (old_bids, old_asks) = book.top(depth);
                for _ in 0..2 {
                    book.change(rng);
                }
                let (new_bids, new_asks) = book.top(depth);
                let diff = |old: &[Level],
                            new: &[Level],
                            full: &BTreeMap<model::Decimal, Level>| {
                    let mut out = Vec::new();
                    for l in old {
                        // Deleted levels are sent with qty 0; levels pushed out by truncation are not.
                        if !new.iter().any(|n| n.price == l.price) && !full.contains_key(&l.price) {
                            out.push(Level::new(l.price, model::Decimal::new(0, 8)));
                        }
                    }
                    for l in new {
                        if !old.contains(l) {
                            out.push(*l);
                        }
                    }
                    out
                };
                let bids = diff(&old_bids, &new_bids, &book.bids);
                let asks = diff(&old_asks, &new_asks, &book.asks);
                // Faults apply to the next update that is actually sent.
                if !bids.is_empty() || !asks.is_empty() {
                    let mut checksum = kraken_checksum(&new_bids, &new_asks);
                    if m.faults.wrong_checksum.remove(p) {
                        checksum = checksum.wrapping_add(1);
                    }
                    let mut frame = book_frame("update", p, &bids, &asks, checksum);
                    if m.faults.corrupt.remove(p) {
                        frame = frame.replacen("\"price\":", "\"price\":\"12a\",\"x\":", 1);
                    }
                    let version = m.versions.get_mut(p).map_or(0, |v| {
                        *v += 1;
                        *v
                    });
                    if !m.faults.skip.remove(p) {
                        let _ = self.tx.send((Some(p.clone()), frame, version));
                    }
                }
                m.trade_id += 1;
                let trade = format!(
                    "{{\"channel\":\"trade\",\"type\":\"update\",\"data\":[{{\"symbol\":\"{p}\",\"side\":\"sell\",\"price\":45283.5,\"qty\":0.10000000,\"ord_type\":\"market\",\"trade_id\":{},\"timestamp\":\"2023-09-25T07:48:36.925533Z\"}}]}}",
                    m.trade_id
                );
                let _ = self.tx.send((None, trade, 0));
                let _ = self
                    .tx
                    .send((None, ticker_frame(p, m.trade_id, "update"), 0));
            }
        }
    }

    /// A `ticker` update for `symbol` with an unparseable `last`, to its subscribers.
    pub fn bad_ticker(&self, symbol: &str) {
        let frame = ticker_frame(&pair(symbol), 0, "update").replacen(
            "\"last\":45283.5",
            "\"last\":\"4x\"",
            1,
        );
        let _ = self.tx.send((None, frame, 0));
    }

    /// The published book of a symbol (truncated to the depth).
    pub fn truth(&self, symbol: &str) -> (Vec<Level>, Vec<Level>) {
        let m = lock(&self.market);
        m.books[&pair(symbol)].top(m.depth)
    }

    /// The next update of `symbol` is applied but not sent.
    pub fn skip_next(&self, symbol: &str) {
        lock(&self.market).faults.skip.insert(pair(symbol));
    }

    /// The next update of `symbol` carries a wrong checksum.
    pub fn wrong_checksum_next(&self, symbol: &str) {
        lock(&self.market)
            .faults
            .wrong_checksum
            .insert(pair(symbol));
    }

    /// The next update of `symbol` has an unparseable price.
    pub fn corrupt_next(&self, symbol: &str) {
        lock(&self.market).faults.corrupt.insert(pair(symbol));
    }

    pub fn send_garbage(&self) {
        let _ = self.tx.send((None, "{\"channel\":".into(), 0));
    }
}

/// A snapshot of `p` and the version it is at.
fn snapshot_frame(market: &Mutex<Market>, p: &str) -> Option<(String, u64)> {
    let m = lock(market);
    let (bids, asks) = m.books.get(p)?.top(m.depth);
    let frame = book_frame("snapshot", p, &bids, &asks, kraken_checksum(&bids, &asks));
    Some((frame, m.versions[p]))
}

async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    match state.control.admit() {
        Some(conn) => ws.on_upgrade(move |socket| session(state, socket, conn)),
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// A `ticker` message as Kraken documents it; the volume grows with `n`, so a test can tell
/// the venue's figures from trade-derived ones.
fn ticker_frame(p: &str, n: u64, kind: &str) -> String {
    format!(
        "{{\"channel\":\"ticker\",\"type\":\"{kind}\",\"data\":[{{\"symbol\":\"{p}\",\"bid\":45283.4,\"bid_qty\":1.5,\"ask\":45283.6,\"ask_qty\":2.0,\"last\":45283.5,\"volume\":{}.25,\"vwap\":45100.1,\"low\":44000.0,\"high\":46000.0,\"change\":-216.5,\"change_pct\":-0.48}}]}}",
        1_000 + n % 1_000_000
    )
}

async fn session(state: AppState, mut socket: WebSocket, conn: usize) {
    let _open = OpenGuard::new(&state.control.open);
    let mut data = state.tx.subscribe();
    let mut kicked = state.control.kicked();
    let (reply_tx, mut reply_rx) = mpsc::channel::<String>(256);
    // Pairs whose book is streamed, with the version of the snapshot sent.
    let mut books: HashMap<String, u64> = HashMap::new();
    let mut trades: HashSet<String> = HashSet::new();
    let mut tickers: HashSet<String> = HashSet::new();
    let mut heartbeat = tokio::time::interval(Duration::from_millis(500));
    let status = r#"{"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":1,"system":"online","version":"2.0.0"}]}"#;
    if socket.send(Message::Text(status.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            _ = kicked.recv() => return,
            _ = heartbeat.tick() => {
                if !state.control.silent() && socket.send(Message::Text(r#"{"channel":"heartbeat"}"#.into())).await.is_err() { return }
            }
            incoming = socket.recv() => {
                let Some(Ok(msg)) = incoming else { return };
                let Message::Text(text) = msg else { continue };
                state.control.record_in(conn, text.as_str());
                let Ok(request) = serde_json::from_str::<serde_json::Value>(text.as_str()) else { continue };
                let method = request["method"].as_str().unwrap_or_default().to_string();
                let req_id = request["req_id"].clone();
                let channel = request["params"]["channel"].as_str().unwrap_or_default().to_string();
                let pairs: Vec<String> = request["params"]["symbol"].as_array().into_iter().flatten().filter_map(|p| p.as_str().map(String::from)).collect();
                let mut replies = Vec::new();
                for p in &pairs {
                    let known = lock(&state.market).books.contains_key(p);
                    if !known {
                        replies.push(serde_json::json!({"error": "Currency pair not supported", "method": method, "req_id": req_id, "success": false, "symbol": p}).to_string());
                        continue;
                    }
                    match (method.as_str(), channel.as_str()) {
                        ("subscribe", "trade") => { trades.insert(p.clone()); }
                        ("unsubscribe", "trade") => { trades.remove(p); }
                        ("subscribe", "ticker") => {
                            tickers.insert(p.clone());
                            replies.push(ticker_frame(p, 0, "snapshot"));
                        }
                        ("unsubscribe", "ticker") => { tickers.remove(p); }
                        ("unsubscribe", "book") => { books.remove(p); }
                        _ => {}
                    }
                    replies.push(serde_json::json!({"method": method, "req_id": req_id, "result": {"channel": channel, "symbol": p}, "success": true}).to_string());
                    if method == "subscribe" && channel == "book" {
                        // The snapshot is taken when it is sent (see `reply_rx`).
                        replies.push(format!("snapshot:{p}"));
                    }
                }
                let tx = reply_tx.clone();
                let delay = state.control.ack_delay();
                tokio::spawn(async move {
                    let Some(delay) = delay else { return };
                    tokio::time::sleep(delay).await;
                    for reply in replies {
                        let _ = tx.send(reply).await;
                    }
                });
            }
            Some(reply) = reply_rx.recv() => {
                let reply = match reply.strip_prefix("snapshot:") {
                    Some(p) => match snapshot_frame(&state.market, p) {
                        Some((frame, version)) => {
                            books.insert(p.to_string(), version);
                            frame
                        }
                        None => continue,
                    },
                    None => reply,
                };
                if !state.control.silent() && socket.send(Message::Text(reply.into())).await.is_err() { return }
            }
            item = data.recv() => {
                let Ok((book_pair, frame, version)) = item else { return };
                if state.control.silent() {
                    continue;
                }
                let wanted = match &book_pair {
                    Some(p) => books.get(p).is_some_and(|from| version > *from),
                    None if frame.contains("\"channel\":\"trade\"") => trades.iter().any(|p| frame.contains(p.as_str())),
                    None if frame.contains("\"channel\":\"ticker\"") => tickers.iter().any(|p| frame.contains(&format!("\"symbol\":\"{p}\""))),
                    None => true,
                };
                if wanted && socket.send(Message::Text(frame.into())).await.is_err() { return }
            }
        }
    }
}

async fn asset_pairs(State(state): State<AppState>) -> Response {
    let m = lock(&state.market);
    let result: HashMap<String, serde_json::Value> = m
        .books
        .keys()
        .map(|p| {
            let ws = p.replace("BTC/", "XBT/");
            (ws.replace('/', ""), serde_json::json!({"altname": ws.replace('/', ""), "wsname": ws, "pair_decimals": 1, "lot_decimals": 8, "tick_size": "0.1", "status": "online"}))
        })
        .collect();
    serde_json::json!({"error": [], "result": result})
        .to_string()
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn frames_keep_exact_number_text() {
        let l = super::Level::new(
            model::parse_decimal("45283.5").unwrap(),
            model::parse_decimal("0.10000000").unwrap(),
        );
        let f = super::book_frame("snapshot", "BTC/USD", &[l], &[], 1);
        assert!(f.contains(r#"{"price":45283.5,"qty":0.10000000}"#), "{f}");
    }
}
