//! Mock Bybit v5 public: `/v5/public/spot` and `/v5/public/linear` (`subscribe`/`unsubscribe`
//! acked by `req_id`, `orderbook.{depth}.{symbol}` snapshot + deltas with consecutive `u`,
//! `publicTrade`, `tickers` (linear as snapshot + deltas, with funding, mark and open interest),
//! `allLiquidation` (linear), `ping` → pong) and `GET /v5/market/instruments-info`.

use super::{Control, MockBook, OpenGuard, Shared, lock, rng};
use crate::conn::backoff::Rng;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use model::Level;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc};

/// The depth the mock publishes (`orderbook.50`): its books are deeper (60 levels), so, as on
/// Bybit, a level entering the top 50 pushes the 50th out without a removal, and a level
/// leaving it lets the 51st in (sent as an insert).
pub const DEPTH: usize = 50;

/// What the mock broadcasts: `(normalized symbol, topic kind, frame, book version)`; symbol
/// `*` goes to every connection.
type Outgoing = (String, &'static str, String, u64);

#[derive(Debug, Default)]
struct MessageFaults {
    skip: HashSet<String>,
    duplicate: HashSet<String>,
    reorder: HashSet<String>,
    corrupt: HashSet<String>,
}

#[derive(Debug)]
struct Market {
    /// By normalized symbol (`BTC-USDT`, `BTC-USDT-PERP`): Bybit's name is the same for both.
    books: BTreeMap<String, MockBook>,
    update_ids: BTreeMap<String, u64>,
    versions: BTreeMap<String, u64>,
    held: HashMap<String, (String, u64)>,
    /// Levels that left the published depth without a removal being sent.
    pushed_out: u64,
    trade_seq: u64,
    rng: Rng,
    faults: MessageFaults,
}

/// A running mock Bybit.
#[derive(Debug, Clone)]
pub struct MockBybit {
    pub addr: SocketAddr,
    pub control: Arc<Control>,
    market: Arc<Mutex<Market>>,
    tx: broadcast::Sender<Outgoing>,
}

type AppState = Shared<Market, Outgoing>;

fn native(symbol: &str) -> String {
    symbol.trim_end_matches("-PERP").replace('-', "")
}

fn category(symbol: &str) -> &'static str {
    if symbol.ends_with("-PERP") {
        "linear"
    } else {
        "spot"
    }
}

fn pairs(levels: &[Level]) -> serde_json::Value {
    levels
        .iter()
        .map(|l| serde_json::json!([l.price.to_string(), l.size.to_string()]))
        .collect()
}

fn book_frame(kind: &str, symbol: &str, bids: &[Level], asks: &[Level], u: u64) -> String {
    let n = native(symbol);
    serde_json::json!({
        "topic": format!("orderbook.50.{n}"), "type": kind, "ts": now_ms(),
        "data": {"s": n, "b": pairs(bids), "a": pairs(asks), "u": u, "seq": u * 7},
        "cts": now_ms(),
    })
    .to_string()
}

fn now_ms() -> i64 {
    model::Timestamp::now().0 / 1000
}

impl MockBybit {
    /// Starts a mock serving `symbols` (normalized, spot or `-PERP`), 60-level books
    /// published [`DEPTH`] deep.
    pub async fn start(symbols: &[&str]) -> std::io::Result<Self> {
        let mut rng = rng(41);
        let mut books = BTreeMap::new();
        for (i, s) in symbols.iter().enumerate() {
            books.insert(
                s.to_string(),
                MockBook::new(1_657_850 + i as i64 * 1000, 1, 3, 60, &mut rng),
            );
        }
        let market = Market {
            pushed_out: 0,
            update_ids: books.keys().map(|k| (k.clone(), 18_521_288)).collect(),
            versions: books.keys().map(|k| (k.clone(), 0)).collect(),
            books,
            held: HashMap::new(),
            trade_seq: 1_783_284_000,
            rng,
            faults: MessageFaults::default(),
        };
        let router = axum::Router::new()
            .route("/v5/public/{category}", get(upgrade))
            .route("/v5/market/instruments-info", get(instruments));
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

    /// Moves every market `n` times: one delta (1–3 changes, the next `u`) and one trade each.
    pub fn step(&self, n: usize) {
        let mut m = lock(&self.market);
        let symbols: Vec<String> = m.books.keys().cloned().collect();
        for _ in 0..n {
            for s in &symbols {
                let changes = 1 + m.rng.below(3) as usize;
                let Market { books, rng, .. } = &mut *m;
                let book = books.get_mut(s).expect("known symbol");
                let before = book.top(DEPTH);
                let (mut bids, mut asks) = (Vec::new(), Vec::new());
                for _ in 0..changes {
                    let (is_bid, level) = book.change(rng);
                    if is_bid {
                        bids.push(level)
                    } else {
                        asks.push(level)
                    }
                }
                let after = book.top(DEPTH);
                let (bids, out_b) = published(&before.0, &after.0, &bids);
                let (asks, out_a) = published(&before.1, &after.1, &asks);
                m.pushed_out += out_b + out_a;
                let u = m.update_ids.get_mut(s).map_or(0, |u| {
                    *u += 1;
                    *u
                });
                let mut frame = book_frame("delta", s, &bids, &asks, u);
                if m.faults.corrupt.remove(s) {
                    frame = frame.replacen("\"u\":", "\"u\":\"x\",\"_\":", 1);
                }
                let version = m.versions.get_mut(s).map_or(0, |v| {
                    *v += 1;
                    *v
                });
                if m.faults.skip.remove(s) {
                    // the truth moved, nobody hears of it
                } else if m.faults.reorder.remove(s) {
                    m.held.insert(s.clone(), (frame, version));
                } else {
                    let copies = if m.faults.duplicate.remove(s) { 2 } else { 1 };
                    for _ in 0..copies {
                        let _ = self
                            .tx
                            .send((s.clone(), "orderbook", frame.clone(), version));
                    }
                    if let Some((held, v)) = m.held.remove(s) {
                        let _ = self.tx.send((s.clone(), "orderbook", held, v));
                    }
                }
                m.trade_seq += 1;
                let side = if m.rng.below(2) == 0 { "Buy" } else { "Sell" };
                let n = native(s);
                let trade = serde_json::json!({"topic": format!("publicTrade.{n}"), "type": "snapshot", "ts": now_ms(), "data": [{"T": now_ms(), "s": n, "S": side, "v": "0.001", "p": "16578.50", "L": "PlusTick", "i": format!("t-{}", m.trade_seq), "BT": false, "seq": m.trade_seq}]}).to_string();
                let _ = self.tx.send((s.clone(), "publicTrade", trade, 0));
                // Spot pushes whole tickers; linear only the fields that changed.
                let whole = category(s) == "spot";
                let ticker = ticker_frame(s, m.trade_seq, whole);
                let _ = self.tx.send((s.clone(), "tickers", ticker, 0));
                if !whole {
                    let liq = serde_json::json!({"topic": format!("allLiquidation.{n}"), "type": "snapshot", "ts": now_ms(), "data": [{"T": now_ms(), "s": n, "S": "Buy", "v": "0.010", "p": "16570.00"}]}).to_string();
                    let _ = self.tx.send((s.clone(), "allLiquidation", liq, 0));
                }
            }
        }
    }

    /// A `tickers` push for `symbol` with an unparseable `lastPrice`, to its subscribers.
    pub fn bad_ticker(&self, symbol: &str) {
        let frame = ticker_frame(symbol, 0, true).replacen("16578.50", "1x", 1);
        let _ = self.tx.send((symbol.to_string(), "tickers", frame, 0));
    }

    /// The ground truth of a normalized symbol: Bybit's view, the top [`DEPTH`] levels.
    pub fn truth(&self, symbol: &str) -> (Vec<Level>, Vec<Level>) {
        lock(&self.market).books[symbol].top(DEPTH)
    }

    /// Levels pushed out of the published depth so far (no removal sent for them).
    pub fn pushed_out(&self) -> u64 {
        lock(&self.market).pushed_out
    }

    pub fn skip_next(&self, symbol: &str) {
        lock(&self.market).faults.skip.insert(symbol.into());
    }

    pub fn duplicate_next(&self, symbol: &str) {
        lock(&self.market).faults.duplicate.insert(symbol.into());
    }

    pub fn reorder_next(&self, symbol: &str) {
        lock(&self.market).faults.reorder.insert(symbol.into());
    }

    /// The next delta of `symbol` carries an `u` that is not a number.
    pub fn corrupt_next(&self, symbol: &str) {
        lock(&self.market).faults.corrupt.insert(symbol.into());
    }

    /// Bybit re-sends a snapshot mid-stream; with `restart` its service restarted and `u`
    /// starts again at 1.
    pub fn resnapshot(&self, symbol: &str, restart: bool) {
        if restart {
            lock(&self.market).update_ids.insert(symbol.into(), 1);
        }
        if let Some((frame, version)) = snapshot_frame(&self.market, symbol) {
            let _ = self.tx.send((symbol.into(), "orderbook", frame, version));
        }
    }

    pub fn send_garbage(&self) {
        let _ = self.tx.send(("*".into(), "*", "{\"topic\":".into(), 0));
    }
}

/// One side of a delta as Bybit publishes it, from that side's top [`DEPTH`] before and after
/// the `changes` (applied in order): each change inside the new view, each removal of a level
/// that was in view, and each level that entered the view from below; nothing for a level
/// that only fell out of the view. Also returns how many did.
fn published(before: &[Level], after: &[Level], changes: &[Level]) -> (Vec<Level>, u64) {
    let in_view = |levels: &[Level], l: &Level| levels.iter().any(|x| x.price == l.price);
    let mut out: Vec<Level> = Vec::new();
    for change in changes {
        let sent = if change.size.is_zero() {
            in_view(before, change)
        } else {
            in_view(after, change)
        };
        if sent {
            out.retain(|l| l.price != change.price);
            out.push(*change);
        }
    }
    for level in after {
        if !in_view(before, level) && !in_view(&out, level) {
            out.push(*level);
        }
    }
    let gone = before
        .iter()
        .filter(|l| !in_view(after, l) && !changes.iter().any(|c| c.price == l.price))
        .count();
    (out, gone as u64)
}

fn snapshot_frame(market: &Mutex<Market>, symbol: &str) -> Option<(String, u64)> {
    let m = lock(market);
    let (bids, asks) = m.books.get(symbol)?.top(DEPTH);
    Some((
        book_frame("snapshot", symbol, &bids, &asks, m.update_ids[symbol]),
        m.versions[symbol],
    ))
}

async fn upgrade(
    State(state): State<AppState>,
    Path(category): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    if !matches!(category.as_str(), "spot" | "linear") {
        return StatusCode::NOT_FOUND.into_response();
    }
    match state.control.admit() {
        Some(conn) => ws.on_upgrade(move |socket| session(state, socket, conn, category)),
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// A `tickers` push as Bybit documents it: a whole `snapshot`, or a linear `delta` with only
/// `lastPrice` and `volume24h` (so `prevPrice24h` must come from the snapshot). The 24 h volume
/// grows with `n`, so a test can tell the venue's figures from trade-derived ones.
fn ticker_frame(symbol: &str, n: u64, snapshot: bool) -> String {
    let volume = format!("{}.5", 1_000 + n % 1_000_000);
    let linear = category(symbol) == "linear";
    let mut data = if snapshot {
        serde_json::json!({"symbol": native(symbol), "lastPrice": "16578.50", "highPrice24h": "17000", "lowPrice24h": "16000", "prevPrice24h": "16500", "volume24h": volume, "turnover24h": "1000000", "price24hPcnt": "0.0047"})
    } else {
        serde_json::json!({"symbol": native(symbol), "lastPrice": "16578.50", "volume24h": volume})
    };
    // Linear: the perpetual's figures in the snapshot; deltas move the mark only.
    if linear && snapshot {
        for (k, v) in [
            ("fundingRate", "0.0001"),
            ("nextFundingTime", "1673280000000"),
            ("markPrice", "16579.00"),
            ("indexPrice", "16580.00"),
            ("openInterest", "1234.5"),
            ("openInterestValue", "20467305.5"),
        ] {
            data[k] = v.into();
        }
    } else if linear {
        data["markPrice"] = format!("16579.{:02}", n % 100).into();
    }
    let kind = if snapshot { "snapshot" } else { "delta" };
    serde_json::json!({"topic": format!("tickers.{}", native(symbol)), "type": kind, "ts": now_ms(), "cs": n, "data": data}).to_string()
}

async fn session(state: AppState, mut socket: WebSocket, conn: usize, category_name: String) {
    let _open = OpenGuard::new(&state.control.open);
    let mut data = state.tx.subscribe();
    let mut kicked = state.control.kicked();
    let (reply_tx, mut reply_rx) = mpsc::channel::<String>(1024);
    // Normalized symbols streamed on this connection, with the book version sent.
    let mut books: HashMap<String, u64> = HashMap::new();
    let mut trades: HashSet<String> = HashSet::new();
    let mut tickers: HashSet<String> = HashSet::new();
    let mut liquidations: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            _ = kicked.recv() => return,
            incoming = socket.recv() => {
                let Some(Ok(msg)) = incoming else { return };
                let Message::Text(text) = msg else { continue };
                state.control.record_in(conn, text.as_str());
                let Ok(request) = serde_json::from_str::<serde_json::Value>(text.as_str()) else { continue };
                let op = request["op"].as_str().unwrap_or_default().to_string();
                let req_id = request["req_id"].clone();
                if op == "ping" {
                    let pong = serde_json::json!({"success": true, "ret_msg": "pong", "conn_id": "mock", "req_id": req_id, "op": "ping"});
                    if !state.control.silent() && socket.send(Message::Text(pong.to_string().into())).await.is_err() { return }
                    continue;
                }
                let mut replies = Vec::new();
                let mut failed = None;
                for topic in request["args"].as_array().into_iter().flatten().filter_map(|t| t.as_str()) {
                    let (kind, name) = match topic.split('.').collect::<Vec<_>>()[..] {
                        ["orderbook", "50", name] => ("orderbook", name),
                        ["publicTrade", name] => ("publicTrade", name),
                        ["tickers", name] => ("tickers", name),
                        ["allLiquidation", name] if category_name == "linear" => ("allLiquidation", name),
                        _ => ("", ""),
                    };
                    let symbol = lock(&state.market).books.keys().find(|s| native(s) == name && category(s) == category_name).cloned();
                    let Some(symbol) = symbol.filter(|_| !kind.is_empty()) else {
                        failed = Some(format!("error:handler not found,topic:{topic}"));
                        continue;
                    };
                    match (op.as_str(), kind) {
                        ("subscribe", "publicTrade") => { trades.insert(symbol); }
                        ("unsubscribe", "publicTrade") => { trades.remove(&symbol); }
                        ("subscribe", "tickers") => {
                            tickers.insert(symbol.clone());
                            replies.push(ticker_frame(&symbol, 0, true));
                        }
                        ("unsubscribe", "tickers") => { tickers.remove(&symbol); }
                        ("subscribe", "allLiquidation") => { liquidations.insert(symbol); }
                        ("unsubscribe", "allLiquidation") => { liquidations.remove(&symbol); }
                        ("unsubscribe", "orderbook") => { books.remove(&symbol); }
                        ("subscribe", "orderbook") => replies.push(format!("snapshot:{symbol}")),
                        _ => {}
                    }
                }
                let answer = serde_json::json!({"success": failed.is_none(), "ret_msg": failed.unwrap_or_default(), "conn_id": "mock", "req_id": req_id, "op": op});
                replies.insert(0, answer.to_string());
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
                    Some(s) => match snapshot_frame(&state.market, s) {
                        Some((frame, version)) => { books.insert(s.to_string(), version); frame }
                        None => continue,
                    },
                    None => reply,
                };
                if !state.control.silent() && socket.send(Message::Text(reply.into())).await.is_err() { return }
            }
            item = data.recv() => {
                let Ok((s, kind, frame, version)) = item else { return };
                if state.control.silent() {
                    continue;
                }
                let wanted = match kind {
                    "orderbook" => match books.get_mut(&s) {
                        Some(from) if frame.contains("\"type\":\"snapshot\"") => { *from = version; true }
                        Some(from) => version > *from,
                        None => false,
                    },
                    "publicTrade" => trades.contains(&s),
                    "tickers" => tickers.contains(&s),
                    "allLiquidation" => liquidations.contains(&s),
                    _ => s == "*",
                };
                if wanted && socket.send(Message::Text(frame.into())).await.is_err() { return }
            }
        }
    }
}

async fn instruments(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let wanted = q
        .get("category")
        .map(String::as_str)
        .unwrap_or_default()
        .to_string();
    if !matches!(wanted.as_str(), "spot" | "linear") {
        return serde_json::json!({"retCode": 10001, "retMsg": "params error: category", "result": {}}).to_string().into_response();
    }
    let m = lock(&state.market);
    let list: Vec<serde_json::Value> = m
        .books
        .keys()
        .filter(|s| category(s) == wanted)
        .map(|s| match wanted.as_str() {
            "linear" => serde_json::json!({"symbol": native(s), "contractType": "LinearPerpetual", "status": "Trading", "priceFilter": {"tickSize": "0.10"}, "lotSizeFilter": {"qtyStep": "0.001", "minOrderQty": "0.001"}}),
            _ => serde_json::json!({"symbol": native(s), "status": "Trading", "priceFilter": {"tickSize": "0.01"}, "lotSizeFilter": {"basePrecision": "0.000001"}}),
        })
        .collect();
    serde_json::json!({"retCode": 0, "retMsg": "OK", "result": {"category": wanted, "list": list}})
        .to_string()
        .into_response()
}
