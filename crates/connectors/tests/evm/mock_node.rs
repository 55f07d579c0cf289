//! The EVM source against a mock JSON-RPC node that sends what a test tells it: malformed
//! answers are rejected with their code (and the connection replaced), `removed` logs are
//! retracted.

use crate::support::Running;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::{any, post};
use connectors::ConnectionState;
use connectors::venue::evm::{ContractSpec, EvmSpec};
use model::onchain::{Address, ChainStatus};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc};

const CONTRACT: &str = "0x1111111111111111111111111111111111111111";

fn hash(n: u64) -> String {
    format!("0x{n:064x}")
}

/// A header whose hash is `hash(n + 1000 * fork)` and parent `hash(parent)`.
fn header(n: u64, hash_id: u64, parent_id: u64) -> Value {
    json!({"number": format!("0x{n:x}"), "hash": hash(hash_id), "parentHash": hash(parent_id), "timestamp": "0x10"})
}

fn log(block: u64, block_hash_id: u64, index: u64, removed: bool) -> Value {
    json!({
        "address": CONTRACT,
        "topics": [hash(77)],
        "data": "0x",
        "blockNumber": format!("0x{block:x}"),
        "blockHash": hash(block_hash_id),
        "transactionHash": hash(5000 + index),
        "transactionIndex": "0x0",
        "logIndex": format!("0x{index:x}"),
        "removed": removed
    })
}

fn notification(subscription: &str, result: Value) -> String {
    json!({"jsonrpc": "2.0", "method": "eth_subscription", "params": {"subscription": subscription, "result": result}}).to_string()
}

#[derive(Clone)]
struct Node {
    /// Frames the test wants sent on the current WebSocket connection.
    frames: Arc<Mutex<mpsc::Receiver<String>>>,
}

async fn http(State(_): State<Node>, body: String) -> impl IntoResponse {
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let answer = |r: &Value| {
        let result = match r["method"].as_str().unwrap_or("") {
            "eth_chainId" => json!("0x7a69"),
            "eth_blockNumber" => json!("0x0"),
            "eth_getBlockByNumber" | "eth_getBlockByHash" => header(0, 0, 999_999),
            "eth_getLogs" => json!([]),
            "eth_call" => json!("0x"),
            _ => Value::Null,
        };
        json!({"jsonrpc": "2.0", "id": r["id"], "result": result})
    };
    match &request {
        Value::Array(list) => Value::Array(list.iter().map(answer).collect()).to_string(),
        one => answer(one).to_string(),
    }
}

async fn ws(State(node): State<Node>, upgrade: WebSocketUpgrade) -> impl IntoResponse {
    upgrade.on_upgrade(move |socket| serve(socket, node))
}

async fn serve(mut socket: WebSocket, node: Node) {
    let mut next_sub = 1;
    let mut frames = node.frames.lock().await;
    loop {
        tokio::select! {
            msg = socket.recv() => {
                let Some(Ok(Message::Text(text))) = msg else { return };
                let request: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                let answer = json!({"jsonrpc": "2.0", "id": request["id"], "result": format!("0x{next_sub}")});
                next_sub += 1;
                if socket.send(Message::text(answer.to_string())).await.is_err() {
                    return;
                }
            }
            frame = frames.recv() => {
                let Some(frame) = frame else { return };
                if socket.send(Message::text(frame)).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn start() -> (EvmSpec, mpsc::Sender<String>) {
    let (tx, rx) = mpsc::channel(64);
    let node = Node {
        frames: Arc::new(Mutex::new(rx)),
    };
    let app = axum::Router::new()
        .route("/", post(http))
        .route("/ws", any(ws))
        .with_state(node);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let spec = EvmSpec {
        chain: "mock".into(),
        chain_id: 31337,
        ws_url: format!("ws://127.0.0.1:{port}/ws"),
        http_url: format!("http://127.0.0.1:{port}/"),
        finality_depth: 3,
        backoff_base_ms: 10,
        backoff_cap_ms: 50,
        silence_secs: 0,
        contracts: vec![ContractSpec {
            address: Address::parse(CONTRACT).unwrap(),
            events: vec![],
        }],
        ..EvmSpec::default()
    };
    (spec, tx)
}

fn connections(s: &crate::support::Seen) -> usize {
    s.statuses
        .iter()
        .filter(|(state, _)| *state == ConnectionState::Connected)
        .count()
}

#[tokio::test]
async fn malformed_answers_are_rejected_with_a_code_and_the_connection_replaced() {
    let (spec, frames) = start().await;
    let run = Running::start(spec);
    run.wait_for("the first connection", |s| connections(s) == 1)
        .await;
    // Subscriptions on every connection: 0x1 = newHeads, 0x2 = the contract's logs.
    let mut other_address = log(1, 1, 0, false);
    other_address["address"] = json!("0x2222222222222222222222222222222222222222");
    let mut bad_header = header(1, 1, 0);
    bad_header["hash"] = json!("0x12");
    // One line per case: (frame, expected code).
    let cases = [
        ("{not json".to_string(), "rpc_malformed"),
        (
            r#"{"jsonrpc":"1.0","method":"eth_subscription"}"#.to_string(),
            "rpc_malformed",
        ),
        (notification("0x1", bad_header), "rpc_malformed"),
        (notification("0x1", json!(null)), "rpc_malformed"),
        (
            notification("0x2", json!({"address": CONTRACT})),
            "rpc_malformed",
        ),
        (notification("0x9", header(1, 1, 0)), "rpc_unexpected"),
        (notification("0x2", other_address), "rpc_unexpected"),
        (
            r#"{"jsonrpc":"2.0","id":99,"result":"0x1"}"#.to_string(),
            "rpc_unexpected",
        ),
        (notification("0x1", header(5, 5, 0)), "chain_inconsistent"),
    ];
    for (i, (frame, code)) in cases.iter().enumerate() {
        frames.send(frame.clone()).await.unwrap();
        run.wait_for(code, |s| connections(s) == i + 2).await;
        let seen = run.seen.lock();
        let detail = seen
            .statuses
            .iter()
            .rev()
            .find(|(state, _)| *state == ConnectionState::Disconnected)
            .map(|(_, d)| d.clone())
            .unwrap_or_default();
        assert!(detail.starts_with(code), "case {i} ({frame}): {detail}");
    }
    // Nothing was emitted from a bad frame.
    let seen = run.stop().await;
    assert!(seen.logs.is_empty(), "{:?}", seen.logs);
}

#[tokio::test]
async fn removed_logs_are_retracted() {
    let (spec, frames) = start().await;
    let run = Running::start(spec);
    run.wait_for("the first connection", |s| {
        connections(s) == 1 && !s.blocks.is_empty()
    })
    .await;
    frames
        .send(notification("0x1", header(1, 1, 0)))
        .await
        .unwrap();
    frames
        .send(notification("0x2", log(1, 1, 0, false)))
        .await
        .unwrap();
    frames
        .send(notification("0x2", log(1, 1, 1, false)))
        .await
        .unwrap();
    run.wait_for("two pending logs", |s| s.logs.len() == 2)
        .await;
    frames
        .send(notification("0x2", log(1, 1, 1, true)))
        .await
        .unwrap();
    run.wait_for("the retraction", |s| s.logs.len() == 3).await;
    // Later blocks confirm the log that stayed, and only it.
    for n in 2..=4 {
        frames
            .send(notification("0x1", header(n, n, n - 1)))
            .await
            .unwrap();
    }
    run.wait_for("the confirmation", |s| {
        s.logs_with(ChainStatus::Confirmed).len() == 1
    })
    .await;
    let seen = run.stop().await;
    seen.check_story();
    let statuses: Vec<(u64, ChainStatus)> =
        seen.logs.iter().map(|l| (l.log_index, l.status)).collect();
    assert_eq!(
        statuses,
        [
            (0, ChainStatus::Pending),
            (1, ChainStatus::Pending),
            (1, ChainStatus::Retracted),
            (0, ChainStatus::Confirmed)
        ]
    );
}
