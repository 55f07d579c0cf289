//! Mock OKX v5 public: `/ws/v5/public` (`subscribe`/`unsubscribe` with one ack per argument,
//! `books` snapshots and `prevSeqId`/`seqId`-chained updates with the CRC32 checksum of the top
//! 25 levels, `trades`, `tickers`, for swaps `funding-rate`, `mark-price`, `index-tickers`,
//! `open-interest` and `liquidation-orders` (by `instType` SWAP), text `ping` → `pong`) and
//! `GET /api/v5/public/instruments`.

use super::{Control, MockBook, OpenGuard, Shared, lock, rng};
use crate::conn::backoff::Rng;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use book::checksum::okx_checksum;
use model::Level;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc};

/// The contract size of every swap the mock lists (`ctVal`, in the base currency), as OKX's
/// `BTC-USDT-SWAP`: book and trade sizes on the wire are contracts of this many base units.
pub const SWAP_CT_VAL: &str = "0.01";

/// What the mock broadcasts: `(instId, channel, frame, book version after it)`; instId `*`
/// goes to every connection.
type Outgoing = (String, &'static str, String, u64);

/// Per-instrument faults, each applied to the next `books` update actually produced.
#[derive(Debug, Default)]
struct MessageFaults {
    /// The truth moves, the update is not sent (the chain breaks).
    skip: HashSet<String>,
    duplicate: HashSet<String>,
    /// Sent after the following update.
    reorder: HashSet<String>,
    /// An unparseable price.
    corrupt: HashSet<String>,
    wrong_checksum: HashSet<String>,
}

/// Channels only swaps have (`index-tickers` is keyed by the swap's index name).
const PERP_STREAMS: [&str; 4] = [
    "funding-rate",
    "mark-price",
    "index-tickers",
    "open-interest",
];

#[derive(Debug)]
struct Market {
    books: BTreeMap<String, MockBook>,
    /// Steps taken (drives the perpetual figures).
    steps: u64,
    seq_ids: BTreeMap<String, i64>,
    versions: BTreeMap<String, u64>,
    held: HashMap<String, (String, u64)>,
    trade_id: u64,
    rng: Rng,
    faults: MessageFaults,
}

/// A running mock OKX.
#[derive(Debug, Clone)]
pub struct MockOkx {
    pub addr: SocketAddr,
    pub control: Arc<Control>,
    market: Arc<Mutex<Market>>,
    tx: broadcast::Sender<Outgoing>,
}

type AppState = Shared<Market, Outgoing>;

/// `BTC-USDT` → `BTC-USDT`, `BTC-USDT-PERP` → `BTC-USDT-SWAP`.
fn inst(symbol: &str) -> String {
    match symbol.strip_suffix("-PERP") {
        Some(pair) => format!("{pair}-SWAP"),
        None => symbol.to_string(),
    }
}

fn levels_json(levels: &[Level]) -> serde_json::Value {
    levels
        .iter()
        .map(|l| serde_json::json!([l.price.to_string(), l.size.to_string(), "0", "1"]))
        .collect()
}

fn signed(checksum: u32) -> i64 {
    i64::from(checksum as i32)
}

fn book_frame(
    action: &str,
    inst: &str,
    bids: &[Level],
    asks: &[Level],
    prev: i64,
    seq: i64,
    checksum: i64,
) -> String {
    serde_json::json!({
        "arg": {"channel": "books", "instId": inst},
        "action": action,
        "data": [{"asks": levels_json(asks), "bids": levels_json(bids), "ts": now_ms().to_string(), "checksum": checksum, "prevSeqId": prev, "seqId": seq}],
    })
    .to_string()
}

fn now_ms() -> i64 {
    model::Timestamp::now().0 / 1000
}

impl MockOkx {
    /// Starts a mock serving `symbols` (normalized, spot or `-PERP`), each with a 40-level book.
    pub async fn start(symbols: &[&str]) -> std::io::Result<Self> {
        let mut rng = rng(31);
        let mut books = BTreeMap::new();
        for (i, s) in symbols.iter().enumerate() {
            books.insert(
                inst(s),
                MockBook::new(4_221_990 + i as i64 * 1000, 1, 8, 40, &mut rng),
            );
        }
        let seq_ids = books.keys().map(|k| (k.clone(), 1_000)).collect();
        let versions = books.keys().map(|k| (k.clone(), 0)).collect();
        let market = Market {
            books,
            steps: 0,
            seq_ids,
            versions,
            held: HashMap::new(),
            trade_id: 130_639_000,
            rng,
            faults: MessageFaults::default(),
        };
        let router = axum::Router::new()
            .route("/ws/v5/public", get(upgrade))
            .route("/api/v5/public/instruments", get(instruments));
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

    /// Moves every market `n` times: each move is one `books` update of 1–3 changes (its
    /// `seqId` jumps by 1–5, as OKX's do) and one trade.
    pub fn step(&self, n: usize) {
        let mut m = lock(&self.market);
        let insts: Vec<String> = m.books.keys().cloned().collect();
        for _ in 0..n {
            for i in &insts {
                let changes = 1 + m.rng.below(3) as usize;
                let jump = 1 + m.rng.below(5) as i64;
                let Market { books, rng, .. } = &mut *m;
                let book = books.get_mut(i).expect("known instrument");
                let (mut bids, mut asks) = (Vec::new(), Vec::new());
                for _ in 0..changes {
                    let (is_bid, level) = book.change(rng);
                    if is_bid {
                        bids.push(level)
                    } else {
                        asks.push(level)
                    }
                }
                let (top_bids, top_asks) = book.top(25);
                let mut checksum = signed(okx_checksum(&top_bids, &top_asks));
                let prev = m.seq_ids[i];
                let seq = prev + jump;
                m.seq_ids.insert(i.clone(), seq);
                if m.faults.wrong_checksum.remove(i) {
                    checksum += 1;
                }
                let mut frame = book_frame("update", i, &bids, &asks, prev, seq, checksum);
                if m.faults.corrupt.remove(i) {
                    frame = frame.replacen("\"ts\":\"", "\"ts\":\"soon", 1);
                }
                let version = m.versions.get_mut(i).map_or(0, |v| {
                    *v += 1;
                    *v
                });
                if m.faults.skip.remove(i) {
                    // the truth moved, nobody hears of it
                } else if m.faults.reorder.remove(i) {
                    m.held.insert(i.clone(), (frame, version));
                } else {
                    let copies = if m.faults.duplicate.remove(i) { 2 } else { 1 };
                    for _ in 0..copies {
                        let _ = self.tx.send((i.clone(), "books", frame.clone(), version));
                    }
                    if let Some((held, v)) = m.held.remove(i) {
                        let _ = self.tx.send((i.clone(), "books", held, v));
                    }
                }
                m.trade_id += 1;
                let side = if m.rng.below(2) == 0 { "buy" } else { "sell" };
                let trade = serde_json::json!({"arg": {"channel": "trades", "instId": i}, "data": [{"instId": i, "tradeId": m.trade_id.to_string(), "px": "42219.9", "sz": "0.12060306", "side": side, "ts": now_ms().to_string(), "count": "1", "source": "0", "seqId": m.trade_id}]}).to_string();
                let _ = self.tx.send((i.clone(), "trades", trade, 0));
                let _ = self
                    .tx
                    .send((i.clone(), "tickers", ticker_frame(i, m.trade_id), 0));
                if i.ends_with("-SWAP") {
                    for (key, channel, frame) in perp_frames(i, m.steps) {
                        let _ = self.tx.send((key, channel, frame, 0));
                    }
                }
            }
            m.steps += 1;
        }
    }

    /// A push of `channel` (`funding-rate`, `mark-price`, `index-tickers`, `open-interest` or
    /// `liquidation-orders`) for the swap `symbol` with one field OKX would never send, to
    /// its subscribers.
    pub fn bad_perp(&self, symbol: &str, channel: &str) {
        let i = inst(symbol);
        let step = lock(&self.market).steps;
        for (key, c, frame) in perp_frames(&i, step.next_multiple_of(LIQUIDATION_EVERY)) {
            if c == channel {
                let bad = match c {
                    "funding-rate" => {
                        frame.replacen("\"fundingRate\":\"", "\"fundingRate\":\"x", 1)
                    }
                    "mark-price" => frame.replacen("\"markPx\":\"", "\"markPx\":\"-", 1),
                    "index-tickers" => frame.replacen("\"idxPx\":\"", "\"idxPx\":\"-", 1),
                    "open-interest" => frame.replacen("\"oiCcy\":\"", "\"oiCcy\":\"-", 1),
                    _ => frame.replacen("\"side\":\"", "\"side\":\"up", 1),
                };
                let _ = self.tx.send((key, c, bad, 0));
            }
        }
    }

    /// The ground truth of a normalized symbol: bids and asks, best first, sizes in base
    /// units (a swap's contracts × [`SWAP_CT_VAL`]), as the gateway must publish them.
    pub fn truth(&self, symbol: &str) -> (Vec<Level>, Vec<Level>) {
        let (mut bids, mut asks) = lock(&self.market).books[&inst(symbol)].top(usize::MAX);
        if symbol.ends_with("-PERP") {
            let ct_val = model::parse_decimal(SWAP_CT_VAL).expect("a decimal");
            for level in bids.iter_mut().chain(asks.iter_mut()) {
                level.size *= ct_val;
            }
        }
        (bids, asks)
    }

    pub fn skip_next(&self, symbol: &str) {
        lock(&self.market).faults.skip.insert(inst(symbol));
    }

    pub fn duplicate_next(&self, symbol: &str) {
        lock(&self.market).faults.duplicate.insert(inst(symbol));
    }

    pub fn reorder_next(&self, symbol: &str) {
        lock(&self.market).faults.reorder.insert(inst(symbol));
    }

    pub fn corrupt_next(&self, symbol: &str) {
        lock(&self.market).faults.corrupt.insert(inst(symbol));
    }

    pub fn wrong_checksum_next(&self, symbol: &str) {
        lock(&self.market)
            .faults
            .wrong_checksum
            .insert(inst(symbol));
    }

    /// OKX resets `symbol`'s book mid-stream: a new `snapshot` on every subscribed connection.
    pub fn resnapshot(&self, symbol: &str) {
        let i = inst(symbol);
        if let Some((frame, version)) = snapshot_frame(&self.market, &i) {
            let _ = self.tx.send((i, "books", frame, version));
        }
    }

    /// A `tickers` push for `symbol` with an unparseable `last`, to its subscribers.
    pub fn bad_ticker(&self, symbol: &str) {
        let i = inst(symbol);
        let frame = ticker_frame(&i, 0).replacen("\"last\":\"42219.9\"", "\"last\":\"4x\"", 1);
        let _ = self.tx.send((i, "tickers", frame, 0));
    }

    /// A frame that is not JSON, to every connection.
    pub fn send_garbage(&self) {
        let _ = self.tx.send(("*".into(), "*", "{\"arg\":".into(), 0));
    }
}

/// A `tickers` push as OKX documents it; the 24 h volume grows with every step (`n`), so a
/// test can tell the venue's figures from trade-derived ones. SWAP volumes in contracts
/// (`vol24h`, `ctVal` 0.01) and base currency (`volCcy24h`).
fn ticker_frame(i: &str, n: u64) -> String {
    let swap = i.ends_with("-SWAP");
    let base = format!("{}.5", 1_000 + n % 1_000_000);
    let contracts = format!("{}50", 1_000 + n % 1_000_000);
    let (kind, vol, vol_ccy) = if swap {
        ("SWAP", contracts.as_str(), base.as_str())
    } else {
        ("SPOT", base.as_str(), "4221990000")
    };
    serde_json::json!({"arg": {"channel": "tickers", "instId": i}, "data": [{"instType": kind, "instId": i, "last": "42219.9", "lastSz": "0.1", "askPx": "42220", "askSz": "1", "bidPx": "42219.8", "bidSz": "2", "open24h": "42000", "high24h": "43000", "low24h": "41000", "volCcy24h": vol_ccy, "vol24h": vol, "sodUtc0": "42100", "sodUtc8": "42150", "ts": now_ms().to_string()}]}).to_string()
}

/// A liquidation is pushed every this many steps.
pub const LIQUIDATION_EVERY: u64 = 3;

/// The swap `i`'s perpetual pushes at step `n`, as OKX documents them: `(key, channel,
/// frame)` where the key is the `instId` (the index name for `index-tickers`, `SWAP` for
/// `liquidation-orders`). Funding `0.0001` paid at 1700726400000 with a predicted `0.00015`;
/// mark `42219.{n % 10}` and index `42218.{n % 10}`; open interest `100000 + n` contracts
/// (`oiCcy` = contracts × [`SWAP_CT_VAL`]); every [`LIQUIDATION_EVERY`] steps a liquidation
/// of 13 contracts at bankruptcy price 42000.1 (a short closed by a `buy` on even rounds, a
/// long by a `sell` on odd ones), with one of an unserved swap in the same push.
fn perp_frames(i: &str, n: u64) -> Vec<(String, &'static str, String)> {
    let ts = now_ms().to_string();
    let index = i.strip_suffix("-SWAP").unwrap_or(i).to_string();
    let contracts = 100_000 + n;
    let ct_val = model::parse_decimal(SWAP_CT_VAL).expect("a decimal");
    let coins = (model::Decimal::from(contracts) * ct_val).normalize();
    let mut frames = vec![
        (
            i.to_string(),
            "funding-rate",
            serde_json::json!({"arg": {"channel": "funding-rate", "instId": i}, "data": [{"formulaType": "noRate", "fundingRate": "0.0001", "fundingTime": "1700726400000", "impactValue": "", "instId": i, "instType": "SWAP", "interestRate": "", "maxFundingRate": "0.00375", "method": "next_period", "minFundingRate": "-0.00375", "nextFundingRate": "0.00015", "nextFundingTime": "1700755200000", "premium": "0.0001", "settFundingRate": "0.0001", "settState": "settled", "sign": "", "ts": ts}]}).to_string(),
        ),
        (
            i.to_string(),
            "mark-price",
            serde_json::json!({"arg": {"channel": "mark-price", "instId": i}, "data": [{"instType": "SWAP", "instId": i, "markPx": format!("42219.{}", n % 10), "ts": ts}]}).to_string(),
        ),
        (
            index.clone(),
            "index-tickers",
            serde_json::json!({"arg": {"channel": "index-tickers", "instId": index}, "data": [{"instId": index, "idxPx": format!("42218.{}", n % 10), "high24h": "43000", "low24h": "41000", "open24h": "42000", "sodUtc0": "42100", "sodUtc8": "42150", "ts": ts}]}).to_string(),
        ),
        (
            i.to_string(),
            "open-interest",
            serde_json::json!({"arg": {"channel": "open-interest", "instId": i}, "data": [{"instType": "SWAP", "instId": i, "oi": contracts.to_string(), "oiCcy": coins.to_string(), "oiUsd": "4221990000", "ts": ts}]}).to_string(),
        ),
    ];
    if n.is_multiple_of(LIQUIDATION_EVERY) {
        let (side, pos) = if (n / LIQUIDATION_EVERY).is_multiple_of(2) {
            ("buy", "short")
        } else {
            ("sell", "long")
        };
        let detail = serde_json::json!({"bkLoss": "0", "bkPx": "42000.1", "ccy": "", "posSide": pos, "side": side, "sz": "13", "ts": ts});
        let family = index.clone();
        frames.push((
            "SWAP".into(),
            "liquidation-orders",
            serde_json::json!({"arg": {"channel": "liquidation-orders", "instType": "SWAP"}, "data": [
                {"details": [detail.clone()], "instFamily": family, "instId": i, "instType": "SWAP", "uly": family},
                {"details": [detail], "instFamily": "IOST-USDT", "instId": "IOST-USDT-SWAP", "instType": "SWAP", "uly": "IOST-USDT"},
            ]}).to_string(),
        ));
    }
    frames
}

/// A snapshot of `i` (the whole book, 40 levels here, 400 on OKX) and its version.
fn snapshot_frame(market: &Mutex<Market>, i: &str) -> Option<(String, u64)> {
    let m = lock(market);
    let (bids, asks) = m.books.get(i)?.top(usize::MAX);
    let (top_bids, top_asks) = m.books[i].top(25);
    let checksum = signed(okx_checksum(&top_bids, &top_asks));
    let frame = book_frame("snapshot", i, &bids, &asks, -1, m.seq_ids[i], checksum);
    Some((frame, m.versions[i]))
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
    // Instruments whose book is streamed, with the version of the snapshot sent.
    let mut books: HashMap<String, u64> = HashMap::new();
    // (channel, instId / index name / instType) of every other subscription.
    let mut streams: HashSet<(String, String)> = HashSet::new();
    loop {
        tokio::select! {
            _ = kicked.recv() => return,
            incoming = socket.recv() => {
                let Some(Ok(msg)) = incoming else { return };
                let Message::Text(text) = msg else { continue };
                state.control.record_in(conn, text.as_str());
                if text.as_str() == "ping" {
                    if !state.control.silent() && socket.send(Message::Text("pong".into())).await.is_err() { return }
                    continue;
                }
                let Ok(request) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
                    let error = serde_json::json!({"event": "error", "code": "60012", "msg": format!("Invalid request: {text}"), "connId": "mock"});
                    let _ = reply_tx.send(error.to_string()).await;
                    continue;
                };
                let op = request["op"].as_str().unwrap_or_default().to_string();
                let mut replies = Vec::new();
                for arg in request["args"].as_array().into_iter().flatten() {
                    let channel = arg["channel"].as_str().unwrap_or_default().to_string();
                    let by_type = channel == "liquidation-orders";
                    let key_name = if by_type { "instType" } else { "instId" };
                    let i = arg[key_name].as_str().unwrap_or_default().to_string();
                    let known = {
                        let m = lock(&state.market);
                        let swap = |k: &String| k.ends_with("-SWAP");
                        match channel.as_str() {
                            "books" | "trades" | "tickers" => m.books.contains_key(&i),
                            "index-tickers" => m.books.keys().any(|k| swap(k) && k.strip_suffix("-SWAP") == Some(i.as_str())),
                            "liquidation-orders" => i == "SWAP",
                            c if PERP_STREAMS.contains(&c) => m.books.contains_key(&i) && i.ends_with("-SWAP"),
                            _ => false,
                        }
                    };
                    if !known || !matches!(op.as_str(), "subscribe" | "unsubscribe") {
                        replies.push(serde_json::json!({"event": "error", "code": "60018", "msg": format!("Wrong URL or channel:{channel},{key_name}:{i} doesn't exist."), "connId": "mock"}).to_string());
                        continue;
                    }
                    match (op.as_str(), channel.as_str()) {
                        ("unsubscribe", "books") => { books.remove(&i); }
                        ("subscribe", "books") => {}
                        ("subscribe", _) => { streams.insert((channel.clone(), i.clone())); }
                        ("unsubscribe", _) => { streams.remove(&(channel.clone(), i.clone())); }
                        _ => {}
                    }
                    replies.push(serde_json::json!({"event": op, "arg": {"channel": channel, key_name: i}, "connId": "mock"}).to_string());
                    if op == "subscribe" && channel == "books" {
                        // The snapshot is taken when it is sent (see `reply_rx`).
                        replies.push(format!("snapshot:{i}"));
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
                    Some(i) => match snapshot_frame(&state.market, i) {
                        Some((frame, version)) => {
                            books.insert(i.to_string(), version);
                            frame
                        }
                        None => continue,
                    },
                    None => reply,
                };
                if !state.control.silent() && socket.send(Message::Text(reply.into())).await.is_err() { return }
            }
            item = data.recv() => {
                let Ok((i, channel, frame, version)) = item else { return };
                if state.control.silent() {
                    continue;
                }
                let wanted = match channel {
                    "books" => match books.get_mut(&i) {
                        // A re-snapshot (`action: snapshot`) restarts the connection's chain.
                        Some(from) if frame.contains("\"action\":\"snapshot\"") => { *from = version; true }
                        Some(from) => version > *from,
                        None => false,
                    },
                    "*" => i == "*",
                    c => streams.contains(&(c.to_string(), i.clone())),
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
    let kind = q.get("instType").map(String::as_str).unwrap_or_default();
    if !matches!(kind, "SPOT" | "SWAP") {
        return serde_json::json!({"code": "51000", "msg": "Parameter instType error", "data": []})
            .to_string()
            .into_response();
    }
    let m = lock(&state.market);
    let data: Vec<serde_json::Value> = m
        .books
        .keys()
        .filter(|i| i.ends_with("-SWAP") == (kind == "SWAP"))
        .map(|i| match kind {
            "SWAP" => serde_json::json!({"instId": i, "instType": "SWAP", "ctVal": SWAP_CT_VAL, "ctValCcy": i.split('-').next().unwrap_or_default(), "ctType": "linear", "settleCcy": "USDT", "tickSz": "0.1", "lotSz": "0.01", "minSz": "0.01", "state": "live"}),
            _ => serde_json::json!({"instId": i, "instType": "SPOT", "tickSz": "0.1", "lotSz": "0.00000001", "minSz": "0.00001", "state": "live"}),
        })
        .collect();
    serde_json::json!({"code": "0", "msg": "", "data": data})
        .to_string()
        .into_response()
}
