//! Mock Coinbase Advanced Trade: the market-data WebSocket (one channel per `subscribe`,
//! `subscriptions` confirmations, `l2_data` snapshot/updates, `ticker`, `market_trades` with the maker's
//! side, `heartbeats`, a `sequence_num` per connection) and
//! `GET /api/v3/brokerage/market/products`.

use super::{Control, MockBook, OpenGuard, Shared, lock, rng};
use crate::conn::backoff::Rng;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use model::Level;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// How a connection treats one logical message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Normal,
    /// Lost in transit: the connection's `sequence_num` advances, nothing is sent.
    Lost,
    Duplicate,
    /// Held and sent after the next message (so it arrives with a lower `sequence_num`).
    Late,
}

/// (channel, product, events JSON, delivery, product version after this message).
type Logical = (String, String, String, Delivery, u64);

#[derive(Debug, Default)]
struct MessageFaults {
    lose: HashSet<String>,
    duplicate: HashSet<String>,
    late: HashSet<String>,
    corrupt: HashSet<String>,
}

#[derive(Debug)]
struct Market {
    books: BTreeMap<String, MockBook>,
    /// Per product: how many updates were published (a snapshot is at a version).
    versions: BTreeMap<String, u64>,
    trade_id: u64,
    rng: Rng,
    faults: MessageFaults,
}

/// A running mock Coinbase.
#[derive(Debug, Clone)]
pub struct MockCoinbase {
    pub addr: SocketAddr,
    pub control: Arc<Control>,
    market: Arc<Mutex<Market>>,
    tx: broadcast::Sender<Logical>,
}

type AppState = Shared<Market, Logical>;

fn updates_json(side: &str, levels: &[Level], out: &mut Vec<serde_json::Value>) {
    for l in levels {
        out.push(serde_json::json!({"side": side, "event_time": "2023-02-09T20:32:50.714964855Z", "price_level": l.price.to_string(), "new_quantity": l.size.to_string()}));
    }
}

fn snapshot_events(book: &MockBook, product: &str) -> String {
    let (bids, asks) = book.top(usize::MAX);
    let mut updates = Vec::new();
    updates_json("bid", &bids, &mut updates);
    updates_json("offer", &asks, &mut updates);
    serde_json::json!([{"type": "snapshot", "product_id": product, "updates": updates}]).to_string()
}

fn envelope(channel: &str, seq: u64, events: &str) -> String {
    format!(
        "{{\"channel\":\"{channel}\",\"client_id\":\"\",\"timestamp\":\"2023-02-09T20:32:50.714964855Z\",\"sequence_num\":{seq},\"events\":{events}}}"
    )
}

impl MockCoinbase {
    pub async fn start(products: &[&str]) -> std::io::Result<Self> {
        let mut rng = rng(37);
        let books = products
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    p.to_string(),
                    MockBook::new(2_192_100 + i as i64 * 500, 2, 8, 40, &mut rng),
                )
            })
            .collect();
        let versions = products.iter().map(|p| (p.to_string(), 0)).collect();
        let market = Market {
            books,
            versions,
            trade_id: 0,
            rng,
            faults: MessageFaults::default(),
        };
        let router = axum::Router::new()
            .route("/", get(upgrade))
            .route("/api/v3/brokerage/market/products", get(products_handler));
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

    /// Moves every market `n` times: an `l2_data` update of 1–3 changes and a trade each.
    pub fn step(&self, n: usize) {
        let mut m = lock(&self.market);
        let products: Vec<String> = m.books.keys().cloned().collect();
        for _ in 0..n {
            for p in &products {
                let Market { books, rng, .. } = &mut *m;
                let book = books.get_mut(p).expect("known product");
                let changes = 1 + rng.below(3);
                let (mut bids, mut asks) = (Vec::new(), Vec::new());
                for _ in 0..changes {
                    let (is_bid, level) = book.change(rng);
                    if is_bid {
                        bids.push(level)
                    } else {
                        asks.push(level)
                    }
                }
                let mut updates = Vec::new();
                updates_json("bid", &bids, &mut updates);
                updates_json("offer", &asks, &mut updates);
                if m.faults.corrupt.remove(p) {
                    updates[0]["price_level"] = "12a.5".into();
                }
                let events =
                    serde_json::json!([{"type": "update", "product_id": p, "updates": updates}])
                        .to_string();
                let delivery = if m.faults.lose.remove(p) {
                    Delivery::Lost
                } else if m.faults.duplicate.remove(p) {
                    Delivery::Duplicate
                } else if m.faults.late.remove(p) {
                    Delivery::Late
                } else {
                    Delivery::Normal
                };
                let version = m.versions.get_mut(p).map_or(0, |v| {
                    *v += 1;
                    *v
                });
                let _ = self
                    .tx
                    .send(("l2_data".into(), p.clone(), events, delivery, version));
                m.trade_id += 1;
                // The aggressor bought; Coinbase reports the maker's side.
                let trade = serde_json::json!([{"type": "update", "trades": [{"trade_id": format!("{:09}", m.trade_id), "product_id": p, "price": "21921.74", "size": "0.01000000", "side": "SELL", "time": "2019-08-14T20:42:27.265Z"}]}]).to_string();
                let _ = self.tx.send((
                    "market_trades".into(),
                    p.clone(),
                    trade,
                    Delivery::Normal,
                    0,
                ));
                let ticker = ticker_events(p, m.trade_id, "update");
                let _ = self
                    .tx
                    .send(("ticker".into(), p.clone(), ticker, Delivery::Normal, 0));
            }
        }
    }

    /// A `ticker` update for `product` with an unparseable `price`, to its subscribers.
    pub fn bad_ticker(&self, product: &str) {
        let events = ticker_events(product, 0, "update").replacen("21921.74", "2x", 1);
        let _ = self
            .tx
            .send(("ticker".into(), product.into(), events, Delivery::Normal, 0));
    }

    /// The ground truth book of a product.
    pub fn truth(&self, product: &str) -> MockBook {
        lock(&self.market).books[product].clone()
    }

    /// The next update of `product` is lost in transit (a `sequence_num` gap).
    pub fn lose_next(&self, product: &str) {
        lock(&self.market).faults.lose.insert(product.into());
    }

    pub fn duplicate_next(&self, product: &str) {
        lock(&self.market).faults.duplicate.insert(product.into());
    }

    pub fn delay_next(&self, product: &str) {
        lock(&self.market).faults.late.insert(product.into());
    }

    pub fn corrupt_next(&self, product: &str) {
        lock(&self.market).faults.corrupt.insert(product.into());
    }
}

/// `ticker` events as Coinbase documents them; the volume grows with `n`, so a test can tell
/// the venue's figures from trade-derived ones. -2 % implies a change of 447.38 at 21921.74.
fn ticker_events(product: &str, n: u64, kind: &str) -> String {
    let volume = format!("{}.125", 1_000 + n % 1_000_000);
    serde_json::json!([{"type": kind, "tickers": [{"type": "ticker", "product_id": product, "price": "21921.74", "volume_24_h": volume, "low_24_h": "21000.00", "high_24_h": "23000.00", "low_52_w": "15460", "high_52_w": "48240", "price_percent_chg_24_h": "-2"}]}]).to_string()
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
    let (reply_tx, mut reply_rx) = mpsc::channel::<(String, String)>(256);
    let mut level2: HashSet<String> = HashSet::new();
    // Per product: the version of the snapshot sent; older updates are not forwarded.
    let mut level2_from: std::collections::HashMap<String, u64> = Default::default();
    let mut trades: HashSet<String> = HashSet::new();
    let mut tickers: HashSet<String> = HashSet::new();
    let mut heartbeats = false;
    let mut seq: u64 = 0;
    let mut counter: u64 = 0;
    let mut held: Option<String> = None;
    let mut beat = tokio::time::interval(Duration::from_millis(300));
    // The venue closes connections that do not subscribe within 5 s.
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    let mut subscribed_any = false;
    loop {
        let mut out: Vec<String> = Vec::new();
        tokio::select! {
            _ = kicked.recv() => return,
            () = &mut deadline, if !subscribed_any => return,
            _ = beat.tick() => {
                if heartbeats {
                    counter += 1;
                    let events = format!("[{{\"current_time\":\"2023-06-23 20:31:56.121961769 +0000 UTC\",\"heartbeat_counter\":\"{counter}\"}}]");
                    seq += 1;
                    out.push(envelope("heartbeats", seq, &events));
                }
            }
            incoming = socket.recv() => {
                let Some(Ok(msg)) = incoming else { return };
                let Message::Text(text) = msg else { continue };
                state.control.record_in(conn, text.as_str());
                let Ok(request) = serde_json::from_str::<serde_json::Value>(text.as_str()) else { continue };
                subscribed_any = true;
                let kind = request["type"].as_str().unwrap_or_default().to_string();
                let channel = request["channel"].as_str().unwrap_or_default().to_string();
                let products: Vec<String> = request["product_ids"].as_array().into_iter().flatten().filter_map(|p| p.as_str().map(String::from)).collect();
                let mut replies = Vec::new();
                match (kind.as_str(), channel.as_str()) {
                    ("subscribe", "heartbeats") => heartbeats = true,
                    ("subscribe", "level2") => {
                        for p in &products {
                            // The snapshot is taken when it is sent (see `reply_rx`).
                            replies.push(("snapshot".to_string(), p.clone()));
                        }
                    }
                    ("unsubscribe", "level2") => { for p in &products { level2.remove(p); level2_from.remove(p); } }
                    ("subscribe", "market_trades") => trades.extend(products.iter().cloned()),
                    ("unsubscribe", "market_trades") => { for p in &products { trades.remove(p); } }
                    ("subscribe", "ticker") => {
                        tickers.extend(products.iter().cloned());
                        for p in &products {
                            replies.push(("ticker".to_string(), ticker_events(p, 0, "snapshot")));
                        }
                    }
                    ("unsubscribe", "ticker") => { for p in &products { tickers.remove(p); } }
                    _ => {
                        let _ = socket.send(Message::Text(r#"{"type":"error","message":"failure to subscribe"}"#.into())).await;
                        continue;
                    }
                }
                let mut subs = serde_json::Map::new();
                if heartbeats { subs.insert("heartbeats".into(), serde_json::json!(["heartbeats"])); }
                if !level2.is_empty() { subs.insert("level2".into(), serde_json::json!(level2.iter().collect::<Vec<_>>())); }
                if !trades.is_empty() { subs.insert("market_trades".into(), serde_json::json!(trades.iter().collect::<Vec<_>>())); }
                if !tickers.is_empty() { subs.insert("ticker".into(), serde_json::json!(tickers.iter().collect::<Vec<_>>())); }
                let ack = serde_json::json!([{"subscriptions": subs}]).to_string();
                replies.insert(0, ("subscriptions".to_string(), ack));
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
            Some((channel, events)) = reply_rx.recv() => {
                if channel == "snapshot" {
                    let product = events;
                    let m = lock(&state.market);
                    if let (Some(book), Some(version)) = (m.books.get(&product), m.versions.get(&product)) {
                        seq += 1;
                        out.push(envelope("l2_data", seq, &snapshot_events(book, &product)));
                        level2.insert(product.clone());
                        level2_from.insert(product, *version);
                    }
                } else {
                    seq += 1;
                    out.push(envelope(&channel, seq, &events));
                }
            }
            item = data.recv() => {
                let Ok((channel, product, events, delivery, version)) = item else { return };
                let wanted = match channel.as_str() {
                    "l2_data" => level2.contains(&product) && level2_from.get(&product).is_some_and(|from| version > *from),
                    "ticker" => tickers.contains(&product),
                    _ => trades.contains(&product),
                };
                if !wanted {
                    continue;
                }
                seq += 1;
                let frame = envelope(&channel, seq, &events);
                match delivery {
                    Delivery::Lost => {}
                    Delivery::Normal => out.push(frame),
                    Delivery::Duplicate => { out.push(frame.clone()); out.push(frame); }
                    Delivery::Late => held = Some(frame),
                }
                if delivery != Delivery::Late && let Some(late) = held.take() {
                    out.push(late);
                }
            }
        }
        if state.control.silent() {
            continue;
        }
        for frame in out {
            if socket.send(Message::Text(frame.into())).await.is_err() {
                return;
            }
        }
    }
}

async fn products_handler(State(state): State<AppState>) -> Response {
    let m = lock(&state.market);
    let products: Vec<serde_json::Value> = m.books.keys().map(|p| serde_json::json!({
        "product_id": p, "base_increment": "0.00000001", "quote_increment": "0.01", "price_increment": "0.01", "status": "online"
    })).collect();
    serde_json::json!({"products": products, "num_products": products.len()})
        .to_string()
        .into_response()
}
