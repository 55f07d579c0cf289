//! Mock Binance Spot: `/stream` (combined streams, `SUBSCRIBE`/`UNSUBSCRIBE` with ids and
//! acks), `GET /api/v3/depth`, `GET /api/v3/exchangeInfo`.

use super::{Control, MockBook, OpenGuard, Shared, lock, rng};
use crate::conn::backoff::Rng;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use model::Symbol;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Per-symbol message faults, each applied to the next depth update of that symbol.
#[derive(Debug, Default)]
struct MessageFaults {
    /// Apply the update to the truth but do not send it (a gap).
    skip: HashSet<String>,
    /// Send the update twice.
    duplicate: HashSet<String>,
    /// Send the update after the following one.
    reorder: HashSet<String>,
    /// Send the update with an unparseable price.
    corrupt: HashSet<String>,
    /// REST snapshots still to answer with an id older than the stream.
    stale_snapshots: usize,
}

#[derive(Debug)]
struct Market {
    books: BTreeMap<String, MockBook>,
    ids: BTreeMap<String, u64>,
    trade_id: u64,
    rng: Rng,
    faults: MessageFaults,
    held: HashMap<String, String>,
}

/// A running mock Binance.
#[derive(Debug, Clone)]
pub struct MockBinance {
    pub addr: SocketAddr,
    pub control: Arc<Control>,
    market: Arc<Mutex<Market>>,
    tx: broadcast::Sender<(String, String)>,
}

type AppState = Shared<Market, (String, String)>;

impl MockBinance {
    /// Starts a mock serving `symbols` (normalized), each with a 40-level book.
    pub async fn start(symbols: &[&str]) -> std::io::Result<Self> {
        let mut rng = rng(11);
        let mut books = BTreeMap::new();
        let mut ids = BTreeMap::new();
        for (i, s) in symbols.iter().enumerate() {
            let native = native(s);
            books.insert(
                native.clone(),
                MockBook::new(6_500_000 + i as i64 * 1000, 2, 5, 40, &mut rng),
            );
            ids.insert(native, 1_000 + i as u64 * 10_000);
        }
        let market = Market {
            books,
            ids,
            trade_id: 100,
            rng,
            faults: MessageFaults::default(),
            held: HashMap::new(),
        };
        let router = axum::Router::new()
            .route("/stream", get(upgrade))
            .route("/api/v3/depth", get(depth))
            .route("/api/v3/exchangeInfo", get(exchange_info));
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

    /// Moves every market `n` times: each move is a depth update of 1–3 changes (covering 1–2
    /// update ids) and a trade.
    pub fn step(&self, n: usize) {
        let natives: Vec<String> = lock(&self.market).books.keys().cloned().collect();
        self.step_natives(&natives, n);
    }

    /// Moves only the given (normalized) symbols.
    pub fn step_only(&self, symbols: &[&str], n: usize) {
        let natives: Vec<String> = symbols.iter().map(|s| native(s)).collect();
        self.step_natives(&natives, n);
    }

    fn step_natives(&self, natives: &[String], n: usize) {
        let mut m = lock(&self.market);
        for _ in 0..n {
            for native in natives {
                let changes = 1 + m.rng.below(3) as usize;
                let (mut bids, mut asks) = (Vec::new(), Vec::new());
                let Market { books, rng, .. } = &mut *m;
                let book = books.get_mut(native).expect("known symbol");
                for _ in 0..changes {
                    let (is_bid, level) = book.change(rng);
                    let pair = [level.price.to_string(), level.size.to_string()];
                    if is_bid {
                        bids.push(pair)
                    } else {
                        asks.push(pair)
                    }
                }
                let span = 1 + m.rng.below(2);
                let id = m.ids.get_mut(native).expect("known symbol");
                let (first, last) = (*id + 1, *id + span);
                *id = last;
                let lower = native.to_lowercase();
                let stream = format!("{lower}@depth@100ms");
                let mut data = serde_json::json!({"e":"depthUpdate","E":now_ms(),"s":native,"U":first,"u":last,"b":bids,"a":asks});
                if m.faults.corrupt.remove(native) {
                    data["b"] = serde_json::json!([["12a.5", "1"]]);
                }
                let frame = serde_json::json!({"stream": stream, "data": data}).to_string();
                if m.faults.skip.remove(native) {
                    // the truth moved, the client never hears of it
                } else if m.faults.reorder.remove(native) {
                    m.held.insert(native.clone(), frame);
                } else {
                    let copies = if m.faults.duplicate.remove(native) {
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        let _ = self.tx.send((stream.clone(), frame.clone()));
                    }
                    if let Some(held) = m.held.remove(native) {
                        let _ = self.tx.send((stream.clone(), held));
                    }
                }
                m.trade_id += 1;
                let maker = m.rng.below(2) == 0;
                let trade = serde_json::json!({"stream": format!("{lower}@trade"), "data": {"e":"trade","E":now_ms(),"s":native,"t":m.trade_id,"p":"65000.10","q":"0.01000","T":now_ms(),"m":maker,"M":true}}).to_string();
                let _ = self.tx.send((format!("{lower}@trade"), trade));
                let ticker = ticker_frame(&lower, native, m.trade_id);
                let _ = self.tx.send((format!("{lower}@ticker"), ticker));
            }
        }
    }

    /// The ground truth: `(last update id, book)` of a normalized symbol.
    pub fn truth(&self, symbol: &str) -> (u64, MockBook) {
        let m = lock(&self.market);
        let native = native(symbol);
        (m.ids[&native], m.books[&native].clone())
    }

    /// The next depth update of `symbol` is not sent (the client sees a gap).
    pub fn skip_next(&self, symbol: &str) {
        lock(&self.market).faults.skip.insert(native(symbol));
    }

    pub fn duplicate_next(&self, symbol: &str) {
        lock(&self.market).faults.duplicate.insert(native(symbol));
    }

    pub fn reorder_next(&self, symbol: &str) {
        lock(&self.market).faults.reorder.insert(native(symbol));
    }

    /// The next depth update of `symbol` carries an unparseable price.
    pub fn corrupt_next(&self, symbol: &str) {
        lock(&self.market).faults.corrupt.insert(native(symbol));
    }

    /// The next `n` REST depth snapshots report a `lastUpdateId` older than every diff sent
    /// (a REST replica lagging the stream): the client must refuse them and retry.
    pub fn stale_snapshots(&self, n: usize) {
        lock(&self.market).faults.stale_snapshots = n;
    }

    /// A `@ticker` event for `symbol` with an unparseable last price, to its subscribers.
    pub fn bad_ticker(&self, symbol: &str) {
        let native = native(symbol);
        let lower = native.to_lowercase();
        let frame =
            ticker_frame(&lower, &native, 0).replacen("\"c\":\"65000.10\"", "\"c\":\"6x\"", 1);
        let _ = self.tx.send((format!("{lower}@ticker"), frame));
    }

    /// Sends a frame of a stream kind no client subscribed (`bookTicker`) to every client.
    pub fn send_book_ticker(&self, symbol: &str) {
        let native = native(symbol);
        let frame = serde_json::json!({"stream": format!("{}@bookTicker", native.to_lowercase()), "data": {"u":400900217,"s":native,"b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}}).to_string();
        let _ = self.tx.send(("*".into(), frame));
    }

    /// Sends a frame that is not JSON to every client.
    pub fn send_garbage(&self) {
        let _ = self.tx.send(("*".into(), "{\"stream\": oops".into()));
    }

    /// Announces `serverShutdown` on every connection (they keep working until dropped).
    pub fn server_shutdown(&self) {
        let frame = serde_json::json!({"stream":"!serverShutdown","data":{"e":"serverShutdown","E":now_ms()}}).to_string();
        let _ = self.tx.send(("*".into(), frame));
    }
}

/// A `24hrTicker` event as Binance documents it; the volume grows with `n`, so a test can tell
/// the venue's figures from trade-derived ones.
fn ticker_frame(lower: &str, native: &str, n: u64) -> String {
    serde_json::json!({"stream": format!("{lower}@ticker"), "data": {
        "e":"24hrTicker","E":now_ms(),"s":native,"p":"-216.50","P":"-0.332","w":"65100.00",
        "x":"65216.60","c":"65000.10","Q":"0.01000","b":"64999.90","B":"1.5","a":"65000.20",
        "A":"2.0","o":"65216.60","h":"66000.00","l":"64000.00",
        "v":format!("{}.25", 1_000 + n % 1_000_000),"q":"65100000.00","O":0,"C":86_400_000,
        "F":0,"L":n,"n":n + 1}})
    .to_string()
}

fn native(symbol: &str) -> String {
    Symbol::new(symbol).map_or_else(
        |_| symbol.replace('-', ""),
        |s| format!("{}{}", s.base(), s.quote()),
    )
}

fn now_ms() -> i64 {
    model::Timestamp::now().0 / 1000
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
    let (ack_tx, mut ack_rx) = mpsc::channel::<String>(64);
    let mut subscribed: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            _ = kicked.recv() => return,
            incoming = socket.recv() => {
                let Some(Ok(msg)) = incoming else { return };
                let Message::Text(text) = msg else { continue };
                state.control.record_in(conn, text.as_str());
                let Ok(request) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
                    let _ = socket.send(Message::Text(r#"{"code":2,"msg":"Invalid JSON"}"#.into())).await;
                    continue;
                };
                let id = request["id"].clone();
                let params: Vec<String> = request["params"].as_array().into_iter().flatten().filter_map(|p| p.as_str().map(String::from)).collect();
                let reply = match request["method"].as_str() {
                    Some("SUBSCRIBE") => { subscribed.extend(params); serde_json::json!({"result": null, "id": id}) }
                    Some("UNSUBSCRIBE") => { for p in &params { subscribed.remove(p); } serde_json::json!({"result": null, "id": id}) }
                    _ => serde_json::json!({"code": 2, "msg": "Invalid request: unknown method", "id": id}),
                };
                let tx = ack_tx.clone();
                let delay = state.control.ack_delay();
                tokio::spawn(async move {
                    let Some(delay) = delay else { return };
                    tokio::time::sleep(delay).await;
                    let _ = tx.send(reply.to_string()).await;
                });
            }
            Some(ack) = ack_rx.recv() => {
                if !state.control.silent() && socket.send(Message::Text(ack.into())).await.is_err() { return }
            }
            item = data.recv() => {
                let (stream, frame) = match item {
                    Ok(item) => item,
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if state.control.silent() || (stream != "*" && !subscribed.contains(&stream)) {
                    continue;
                }
                if socket.send(Message::Text(frame.into())).await.is_err() { return }
            }
        }
    }
}

async fn depth(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let body = match depth_body(&state, &q) {
        Ok(body) => body,
        Err(error) => return (StatusCode::BAD_REQUEST, error).into_response(),
    };
    // A short delay so diffs are buffered before the snapshot arrives, as on the real venue.
    tokio::time::sleep(Duration::from_millis(20)).await;
    body.into_response()
}

fn depth_body(state: &AppState, q: &HashMap<String, String>) -> Result<String, &'static str> {
    let mut m = lock(&state.market);
    let native = q
        .get("symbol")
        .ok_or(r#"{"code":-1102,"msg":"Mandatory parameter 'symbol' was not sent"}"#)?;
    let book = m
        .books
        .get(native)
        .ok_or(r#"{"code":-1121,"msg":"Invalid symbol."}"#)?;
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
    let (bids, asks) = book.top(limit);
    let pairs = |levels: Vec<model::Level>| {
        levels
            .iter()
            .map(|l| [l.price.to_string(), l.size.to_string()])
            .collect::<Vec<_>>()
    };
    let mut id = m.ids[native];
    if m.faults.stale_snapshots > 0 {
        m.faults.stale_snapshots -= 1;
        id = id.saturating_sub(1_000);
    }
    Ok(
        serde_json::json!({"lastUpdateId": id, "bids": pairs(bids), "asks": pairs(asks)})
            .to_string(),
    )
}

async fn exchange_info(State(state): State<AppState>) -> Response {
    let m = lock(&state.market);
    let symbols: Vec<serde_json::Value> = m.books.keys().map(|native| serde_json::json!({
        "symbol": native, "status": "TRADING",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"}
        ]
    })).collect();
    serde_json::json!({"timezone": "UTC", "symbols": symbols})
        .to_string()
        .into_response()
}
