//! Client-side overhead: how many messages per second one SDK client can consume (and mirror),
//! next to a bare WebSocket reader that only parses JSON, in the same run on the same stream.
//!
//! ```sh
//! cargo test -p client --release --test overhead -- --ignored --nocapture
//! ```
//!
//! A local feeder speaks the gateway protocol and sends a book snapshot then `UPDATES` book
//! updates (one to three levels each, with valid checksums), pre-serialized so that the
//! feeder costs only framing and writes. Results go to `docs/benchmarks.md (Client SDK)`.

use book::{ChecksumAlgo, OrderBook};
use client::{Client, ClientOptions, Event};
use futures_util::{SinkExt, StreamExt};
use model::{BookDelta, BookSnapshot, Decimal, Level};
use protocol::{DataMessage, ResumeFrom, ServerMessage, WireLevel};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const UPDATES: u64 = 200_000;
const CHANNEL: &str = "book:bench:BTC-USDT";
const LEVELS: i64 = 50;
const ROUNDS: usize = 5;

fn dec(units: i64, scale: u32) -> Decimal {
    Decimal::new(units, scale)
}

/// The snapshot and the updates, as JSON text, with checksums computed by the book engine.
fn stream() -> Vec<String> {
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let bids: Vec<Level> = (0..LEVELS)
        .map(|i| Level::new(dec(100_000 - i, 2), dec(100 + i, 2)))
        .collect();
    let asks: Vec<Level> = (0..LEVELS)
        .map(|i| Level::new(dec(100_001 + i, 2), dec(100 + i, 2)))
        .collect();
    let mut book = OrderBook::new(ChecksumAlgo::None);
    let snap = BookSnapshot {
        seq: 1,
        bids: bids.clone(),
        asks: asks.clone(),
        ..Default::default()
    };
    book.apply_snapshot(&snap).unwrap();
    let message = |seq, bids: &[Level], asks: &[Level], checksum| DataMessage {
        channel: CHANNEL.into(),
        seq,
        epoch: "bench-1".into(),
        ts: 1,
        recv_ts: 1,
        bids: Some(bids.iter().map(|l| WireLevel::from(*l)).collect()),
        asks: Some(asks.iter().map(|l| WireLevel::from(*l)).collect()),
        checksum: Some(checksum),
        ..Default::default()
    };
    let mut out =
        vec![ServerMessage::Snapshot(message(1, &bids, &asks, book.checksum())).to_json()];
    for seq in 2..=UPDATES + 1 {
        let changes = 1 + next() % 3;
        let (mut b, mut a) = (Vec::new(), Vec::new());
        for _ in 0..changes {
            let i = (next() % LEVELS as u64) as i64;
            let size = dec(1 + (next() % 100_000) as i64, 4);
            if next() % 2 == 0 {
                b.push(Level::new(dec(100_000 - i, 2), size));
            } else {
                a.push(Level::new(dec(100_001 + i, 2), size));
            }
        }
        let delta = BookDelta {
            first_seq: seq,
            last_seq: seq,
            bids: b.clone(),
            asks: a.clone(),
            ..Default::default()
        };
        book.apply_delta(&delta).unwrap();
        out.push(ServerMessage::Update(message(seq, &b, &a, book.checksum())).to_json());
    }
    out
}

/// Serves `frames` to one client after its subscribe, then waits for it to go away.
async fn feeder(frames: Vec<String>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        socket.set_nodelay(true).unwrap();
        let mut ws = tokio_tungstenite::accept_async(socket).await.unwrap();
        // Wait for the subscribe; ack it with the join position.
        let id = loop {
            if let Some(Ok(Message::Text(text))) = ws.next().await
                && let Ok(protocol::ClientOp::Subscribe { id, .. }) =
                    protocol::parse_client_op(text.as_str())
            {
                break id;
            }
        };
        let ack = ServerMessage::Subscribed {
            id,
            channels: vec![CHANNEL.into()],
            recovered: Default::default(),
            positions: [(
                CHANNEL.to_string(),
                ResumeFrom {
                    epoch: "bench-1".into(),
                    seq: 1,
                },
            )]
            .into(),
        };
        ws.send(Message::Text(ack.to_json().into())).await.unwrap();
        for (i, frame) in frames.into_iter().enumerate() {
            if ws.feed(Message::Text(frame.into())).await.is_err() {
                return;
            }
            if i.is_multiple_of(256) && ws.flush().await.is_err() {
                return;
            }
        }
        let _ = ws.flush().await;
        // Stay up (and answer pings) until the client leaves.
        while let Some(Ok(_)) = ws.next().await {}
    });
    addr
}

/// A bare reader: WebSocket + `serde_json` into `ServerMessage`, nothing else.
async fn bare(frames: Vec<String>) -> Duration {
    let addr = feeder(frames).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/ws"))
        .await
        .unwrap();
    let sub = format!(r#"{{"op":"subscribe","id":1,"channels":["{CHANNEL}"]}}"#);
    ws.send(Message::Text(sub.into())).await.unwrap();
    let mut start = None;
    let mut seen = 0;
    while let Some(Ok(Message::Text(text))) = ws.next().await {
        let msg: ServerMessage = serde_json::from_str(text.as_str()).unwrap();
        if let ServerMessage::Update(d) = msg {
            start.get_or_insert_with(Instant::now);
            seen += 1;
            if d.seq == UPDATES + 1 {
                break;
            }
        }
    }
    assert_eq!(seen, UPDATES);
    start.unwrap().elapsed()
}

/// The SDK: typed events, seq checks, and (if `mirror`) the local book with checksums.
async fn sdk(frames: Vec<String>, mirror: bool) -> Duration {
    let addr = feeder(frames).await;
    let options = ClientOptions {
        mirror_books: mirror,
        ..ClientOptions::default()
    };
    let mut client = Client::connect(&format!("ws://{addr}/v1/ws"), options)
        .await
        .unwrap();
    client.subscribe([CHANNEL]).await.unwrap();
    let mut start = None;
    let mut seen = 0;
    while let Some(event) = client.next_event().await {
        match event {
            Event::Update(u) => {
                start.get_or_insert_with(Instant::now);
                seen += 1;
                if u.meta.seq == UPDATES + 1 {
                    break;
                }
            }
            Event::Snapshot(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, UPDATES);
    if mirror {
        let book = client.book(CHANNEL).unwrap();
        assert!(book.is_live());
        assert_eq!(book.seq(), UPDATES + 1);
    }
    start.unwrap().elapsed()
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn client_overhead() {
    let frames = stream();
    let bytes: usize = frames.iter().map(String::len).sum();
    println!(
        "stream: {UPDATES} book updates, {:.0} bytes each on average",
        bytes as f64 / frames.len() as f64
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rate = |d: Duration| UPDATES as f64 / d.as_secs_f64();
    let (mut bares, mut plains, mut mirrors) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let bare = rate(runtime.block_on(bare(frames.clone())));
        let plain = rate(runtime.block_on(sdk(frames.clone(), false)));
        let mirrored = rate(runtime.block_on(sdk(frames.clone(), true)));
        println!(
            "round {round}: bare reader {bare:>9.0} msg/s | SDK events {plain:>9.0} msg/s | SDK + mirror {mirrored:>9.0} msg/s"
        );
        bares.push(bare);
        plains.push(plain);
        mirrors.push(mirrored);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (bare, plain, mirrored) = (
        median(&mut bares),
        median(&mut plains),
        median(&mut mirrors),
    );
    println!(
        "median of {ROUNDS}: bare reader {bare:.0} msg/s ({:.2} µs/msg) | SDK events {plain:.0} msg/s ({:.2} µs/msg) | SDK + mirror {mirrored:.0} msg/s ({:.2} µs/msg)",
        1e6 / bare,
        1e6 / plain,
        1e6 / mirrored
    );
}
