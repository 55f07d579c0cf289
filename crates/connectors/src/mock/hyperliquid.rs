//! Mock Hyperliquid: `/ws` (`subscribe`/`unsubscribe` of `l2Book`, `trades` and
//! `activeAssetCtx` per coin, answered by `subscriptionResponse`; an `l2Book` with the whole
//! top-20 book on every change and right after subscribing; an `activeAssetCtx` with the
//! coin's whole context on every step and right after subscribing; `ping` → `pong`).

use super::{Control, MockBook, OpenGuard, Shared, lock, rng};
use crate::conn::backoff::Rng;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use model::Level;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc};

/// Levels a side Hyperliquid publishes.
const DEPTH: usize = 20;

/// What the mock broadcasts: `(coin, channel, frame)`; coin `*` goes to every connection.
type Outgoing = (String, &'static str, String);

#[derive(Debug, Default)]
struct MessageFaults {
    skip: HashSet<String>,
    duplicate: HashSet<String>,
    reorder: HashSet<String>,
    corrupt: HashSet<String>,
}

#[derive(Debug)]
struct Market {
    books: BTreeMap<String, MockBook>,
    /// The `time` of the next book (ms, strictly increasing per coin).
    time: i64,
    held: HashMap<String, String>,
    tid: u64,
    /// Steps taken (drives the `activeAssetCtx` figures).
    steps: u64,
    rng: Rng,
    faults: MessageFaults,
}

/// A running mock Hyperliquid.
#[derive(Debug, Clone)]
pub struct MockHyperliquid {
    pub addr: SocketAddr,
    pub control: Arc<Control>,
    market: Arc<Mutex<Market>>,
    tx: broadcast::Sender<Outgoing>,
}

type AppState = Shared<Market, Outgoing>;

/// `BTC-USDC-PERP` → `BTC`.
fn coin(symbol: &str) -> String {
    symbol.split('-').next().unwrap_or_default().to_string()
}

/// An `l2Book` frame written as Hyperliquid writes it: keys in its order (`coin`, `time`,
/// `levels`; `px`, `sz`, `n`), no whitespace, so the session's fast path sees what it sees on
/// the real feed (a JSON map would sort the keys).
fn book_frame(coin: &str, book: &MockBook, time: i64) -> String {
    let (bids, asks) = book.top(DEPTH);
    let side = |levels: &[Level]| -> String {
        levels
            .iter()
            .map(|l| format!(r#"{{"px":"{}","sz":"{}","n":1}}"#, l.price, l.size))
            .collect::<Vec<_>>()
            .join(",")
    };
    let coin = serde_json::Value::from(coin);
    format!(
        r#"{{"channel":"l2Book","data":{{"coin":{coin},"time":{time},"levels":[[{}],[{}]]}}}}"#,
        side(&bids),
        side(&asks)
    )
}

impl MockHyperliquid {
    /// Starts a mock serving `symbols` (`BASE-USDC-PERP`), 40-level books published 20 deep.
    pub async fn start(symbols: &[&str]) -> std::io::Result<Self> {
        let mut rng = rng(53);
        let books = symbols
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    coin(s),
                    MockBook::new(686_740 + i as i64 * 1000, 1, 5, 40, &mut rng),
                )
            })
            .collect();
        let market = Market {
            books,
            time: 1_710_131_872_708,
            held: HashMap::new(),
            tid: 981_894_269_203_000,
            steps: 0,
            rng,
            faults: MessageFaults::default(),
        };
        let router = axum::Router::new().route("/ws", get(upgrade));
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

    /// Moves every market `n` times: one `l2Book` (if the top 20 changed) and one trade each.
    pub fn step(&self, n: usize) {
        let mut m = lock(&self.market);
        let coins: Vec<String> = m.books.keys().cloned().collect();
        for _ in 0..n {
            for c in &coins {
                let Market { books, rng, .. } = &mut *m;
                let book = books.get_mut(c).expect("known coin");
                let before = book.top(DEPTH);
                for _ in 0..2 {
                    book.change(rng);
                }
                if book.top(DEPTH) != before {
                    m.time += 1;
                    let mut frame = book_frame(c, &m.books[c], m.time);
                    if m.faults.corrupt.remove(c) {
                        frame = frame.replacen("\"sz\":\"", "\"sz\":\"-", 1);
                    }
                    if m.faults.skip.remove(c) {
                        // never sent: the next book carries the change anyway
                    } else if m.faults.reorder.remove(c) {
                        m.held.insert(c.clone(), frame);
                    } else {
                        let copies = if m.faults.duplicate.remove(c) { 2 } else { 1 };
                        for _ in 0..copies {
                            let _ = self.tx.send((c.clone(), "l2Book", frame.clone()));
                        }
                        if let Some(held) = m.held.remove(c) {
                            let _ = self.tx.send((c.clone(), "l2Book", held));
                        }
                    }
                }
                m.tid += 1 + m.rng.below(7);
                let side = if m.rng.below(2) == 0 { "B" } else { "A" };
                let trade = serde_json::json!({"channel": "trades", "data": [{"coin": c, "side": side, "px": "68517.0", "sz": "0.005", "time": m.time, "hash": "0x00", "tid": m.tid, "users": ["0x01", "0x02"]}]}).to_string();
                let _ = self.tx.send((c.clone(), "trades", trade));
                let _ = self
                    .tx
                    .send((c.clone(), "activeAssetCtx", ctx_frame(c, m.steps)));
            }
            m.steps += 1;
        }
    }

    /// An `activeAssetCtx` push for `symbol` with an unparseable `openInterest`, to its
    /// subscribers.
    pub fn bad_ctx(&self, symbol: &str) {
        let c = coin(symbol);
        let frame = ctx_frame(&c, lock(&self.market).steps);
        let bad = frame.replacen("\"openInterest\":\"", "\"openInterest\":\"x", 1);
        let _ = self.tx.send((c, "activeAssetCtx", bad));
    }

    /// The published (top 20) book of a symbol.
    pub fn truth(&self, symbol: &str) -> (Vec<Level>, Vec<Level>) {
        lock(&self.market).books[&coin(symbol)].top(DEPTH)
    }

    pub fn skip_next(&self, symbol: &str) {
        lock(&self.market).faults.skip.insert(coin(symbol));
    }

    pub fn duplicate_next(&self, symbol: &str) {
        lock(&self.market).faults.duplicate.insert(coin(symbol));
    }

    /// The next book is sent after the following one (older `time` arriving last).
    pub fn reorder_next(&self, symbol: &str) {
        lock(&self.market).faults.reorder.insert(coin(symbol));
    }

    /// The next book carries a negative size.
    pub fn corrupt_next(&self, symbol: &str) {
        lock(&self.market).faults.corrupt.insert(coin(symbol));
    }

    pub fn send_garbage(&self) {
        let _ = self.tx.send(("*".into(), "*", "{\"channel\":".into()));
    }
}

/// The price 24 h ago every coin's context reports.
pub const PREV_DAY_PX: &str = "68000.0";

/// A coin's `activeAssetCtx` at step `n`, shaped as Hyperliquid documents it: mark
/// `68674.{n % 10}`, mid `68675.{n % 10}`, oracle `68673.{n % 10}`, funding `0.0000125`
/// (`0.0000130` every other 5 steps), open interest `{1000 + n}.5` coins, base volume
/// `{5000 + n}.25`, prevDayPx [`PREV_DAY_PX`].
fn ctx_frame(coin: &str, n: u64) -> String {
    let d = n % 10;
    let funding = if (n / 5).is_multiple_of(2) {
        "0.0000125"
    } else {
        "0.0000130"
    };
    serde_json::json!({"channel": "activeAssetCtx", "data": {"coin": coin, "ctx": {
        "dayNtlVlm": "1169046.29406",
        "prevDayPx": PREV_DAY_PX,
        "markPx": format!("68674.{d}"),
        "midPx": format!("68675.{d}"),
        "funding": funding,
        "openInterest": format!("{}.5", 1000 + n),
        "oraclePx": format!("68673.{d}"),
        "premium": "0.00031774",
        "impactPxs": ["68674.0", "68676.0"],
        "dayBaseVlm": format!("{}.25", 5000 + n),
    }}})
    .to_string()
}

async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    match state.control.admit() {
        Some(conn) => ws.on_upgrade(move |socket| session(state, socket, conn)),
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

async fn session(state: AppState, mut socket: WebSocket, conn: usize) {
    let _open = OpenGuard::new(&state.control.open);
    let mut data = state.tx.subscribe();
    let mut kicked = state.control.kicked();
    let (reply_tx, mut reply_rx) = mpsc::channel::<String>(1024);
    let mut books: HashSet<String> = HashSet::new();
    let mut trades: HashSet<String> = HashSet::new();
    let mut ctxs: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            _ = kicked.recv() => return,
            incoming = socket.recv() => {
                let Some(Ok(msg)) = incoming else { return };
                let Message::Text(text) = msg else { continue };
                state.control.record_in(conn, text.as_str());
                let Ok(request) = serde_json::from_str::<serde_json::Value>(text.as_str()) else { continue };
                let method = request["method"].as_str().unwrap_or_default().to_string();
                if method == "ping" {
                    if !state.control.silent() && socket.send(Message::Text(r#"{"channel":"pong"}"#.into())).await.is_err() { return }
                    continue;
                }
                let subscription = request["subscription"].clone();
                let kind = subscription["type"].as_str().unwrap_or_default().to_string();
                let c = subscription["coin"].as_str().unwrap_or_default().to_string();
                let known = lock(&state.market).books.contains_key(&c);
                let mut replies = Vec::new();
                if !known || !matches!(kind.as_str(), "l2Book" | "trades" | "activeAssetCtx") {
                    replies.push(serde_json::json!({"channel": "error", "data": format!("Invalid subscription {subscription}")}).to_string());
                } else {
                    match (method.as_str(), kind.as_str()) {
                        ("subscribe", "trades") => { trades.insert(c.clone()); }
                        ("unsubscribe", "trades") => { trades.remove(&c); }
                        ("unsubscribe", "l2Book") => { books.remove(&c); }
                        ("unsubscribe", "activeAssetCtx") => { ctxs.remove(&c); }
                        _ => {}
                    }
                    replies.push(serde_json::json!({"channel": "subscriptionResponse", "data": {"method": method, "subscription": subscription}}).to_string());
                    if method == "subscribe" && kind == "l2Book" {
                        replies.push(format!("book:{c}"));
                    }
                    if method == "subscribe" && kind == "activeAssetCtx" {
                        // The current context follows the subscription (taken when sent).
                        replies.push(format!("ctx:{c}"));
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
                let reply = if let Some(c) = reply.strip_prefix("book:") {
                    let m = lock(&state.market);
                    books.insert(c.to_string());
                    book_frame(c, &m.books[c], m.time)
                } else if let Some(c) = reply.strip_prefix("ctx:") {
                    ctxs.insert(c.to_string());
                    ctx_frame(c, lock(&state.market).steps)
                } else {
                    reply
                };
                if !state.control.silent() && socket.send(Message::Text(reply.into())).await.is_err() { return }
            }
            item = data.recv() => {
                let Ok((c, channel, frame)) = item else { return };
                if state.control.silent() {
                    continue;
                }
                let wanted = match channel {
                    "l2Book" => books.contains(&c),
                    "trades" => trades.contains(&c),
                    "activeAssetCtx" => ctxs.contains(&c),
                    _ => c == "*",
                };
                if wanted && socket.send(Message::Text(frame.into())).await.is_err() { return }
            }
        }
    }
}
