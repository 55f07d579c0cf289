//! Ingest throughput: venue messages (Binance, OKX) parsed, normalized and applied to order
//! books on one core, plus the replay speed of a capture at `speed = "max"`.
//!
//! ```text
//! cargo run --release -p connectors --example ingest_bench -- [MESSAGES] [SCENARIO-PREFIX]
//! ```
//!
//! Scenarios (8 symbols, messages generated up front with a fixed seed):
//! - `mix`: half trades, half depth diffs of 1–5 levels a side (a realistic feed);
//! - `depth10`: depth diffs of 10 bids + 10 asks (bytes-heavy);
//! - `replay`: the `mix` messages written as a capture in each format (`r/…` rows: gzip JSON
//!   lines; `t/…` rows: the framed `tgcap` default), then read back and replayed through the
//!   same session code, events applied to books: the old path (`replay_all`: everything
//!   decoded into memory first), decompression alone, the decoder thread's work alone
//!   (`CaptureReader`), the streaming player (`replay::play`) and the gateway's replay venue;
//!   `replay` as the second argument runs only this scenario;
//! - `okx-mix`: the `mix` shape in OKX v5 frames (`books` updates chained by
//!   `prevSeqId`/`seqId`, 4-field levels, checksum 0 as OKX sends it today; `trades`)
//!   through `OkxSession::on_text`;
//! - `okxswap`, `swap-1+1`: the same for `-SWAP` instruments (`ctVal` 0.01): sizes converted
//!   from contracts and each book also kept in contracts for OKX's checksum;
//! - `bybit-mix`: the same in Bybit v5 frames (`orderbook.50` deltas with consecutive `u`,
//!   `publicTrade`) through `BybitSession::on_text`;
//! - `hl-book`: Hyperliquid `l2Book` messages (the whole top 20 a side, one or two levels
//!   changed each time) diffed into deltas by `HyperliquidSession::on_text`; `hl-trades`:
//!   its `trades` messages (one trade each, with the hash and both users); `hlmove/p`: books
//!   whose prices all move by a tick every message (nothing reusable from the last one);
//!   `hlgen/p`: the `hl-book` messages with one space added, so the general parser takes them.
//!
//! Each scenario goes through `BinanceSession::on_text` (envelope parse, event parse, exact
//! decimals, sequencing) and `OrderBook::apply_delta` (gap/crossed checks), like the gateway's
//! connector + ingest path minus the hub fan-out.

use book::{ChecksumAlgo, OrderBook};
use connectors::FeedEvent;
use connectors::conn::Io;
use connectors::conn::backoff::Rng;
use connectors::conn::record::RecordKind;
use connectors::settings::VenueSpec;
use connectors::venue::{self, replay};
use model::{Symbol, Timestamp};
use std::collections::HashMap;
use std::fmt::Write;
use std::time::Instant;

const SYMBOLS: [&str; 8] = [
    "BTC-USDT",
    "ETH-USDT",
    "SOL-USDT",
    "BNB-USDT",
    "XRP-USDT",
    "ADA-USDT",
    "DOGE-USDT",
    "TRX-USDT",
];
const MID: i64 = 6_500_000;

fn native(s: &str) -> String {
    s.replace('-', "")
}

fn level(out: &mut String, rng: &mut Rng, bid: bool) {
    let distance = 1 + rng.below(50) as i64;
    let ticks = if bid { MID - distance } else { MID + distance };
    let lots = if rng.below(5) == 0 {
        0
    } else {
        1 + rng.below(900_000)
    };
    let _ = write!(
        out,
        "[\"{}.{:02}\",\"{}.{:08}\"]",
        ticks / 100,
        ticks % 100,
        lots / 100_000_000,
        lots % 100_000_000
    );
}

fn depth(
    ids: &mut [u64],
    rng: &mut Rng,
    index: usize,
    per_side: std::ops::RangeInclusive<u64>,
) -> String {
    let first = ids[index] + 1;
    ids[index] += 1;
    let n = SYMBOLS[index];
    let mut s = format!(
        "{{\"stream\":\"{}@depth@100ms\",\"data\":{{\"e\":\"depthUpdate\",\"E\":1672515782136,\"s\":\"{}\",\"U\":{first},\"u\":{first},\"b\":[",
        native(n).to_lowercase(),
        native(n)
    );
    for side in [true, false] {
        let count = per_side.start() + rng.below(per_side.end() - per_side.start() + 1);
        for i in 0..count {
            if i > 0 {
                s.push(',');
            }
            level(&mut s, rng, side);
        }
        s.push_str(if side { "],\"a\":[" } else { "]}}" });
    }
    s
}

fn trade(rng: &mut Rng, index: usize, id: u64) -> String {
    let n = SYMBOLS[index];
    format!(
        "{{\"stream\":\"{}@trade\",\"data\":{{\"e\":\"trade\",\"E\":1672515782136,\"s\":\"{}\",\"t\":{id},\"p\":\"65000.{:02}\",\"q\":\"0.{:08}\",\"T\":1672515782136,\"m\":{},\"M\":true}}}}",
        native(n).to_lowercase(),
        native(n),
        rng.below(100),
        1 + rng.below(99_999_999),
        rng.below(2) == 0
    )
}

/// `count` messages; `trades` in [0,1] of them trades, diffs with `per_side` levels a side.
fn generate(count: usize, trades: u64, per_side: std::ops::RangeInclusive<u64>) -> Vec<String> {
    let mut rng = Rng::new(7);
    let mut ids = vec![1u64; SYMBOLS.len()];
    let mut trade_id = 0;
    (0..count)
        .map(|i| {
            let index = i % SYMBOLS.len();
            if rng.below(100) < trades {
                trade_id += 1;
                trade(&mut rng, index, trade_id)
            } else {
                depth(&mut ids, &mut rng, index, per_side.clone())
            }
        })
        .collect()
}

fn snapshot_body() -> String {
    let mut s = String::from("{\"lastUpdateId\":1,\"bids\":[");
    for side in [true, false] {
        for i in 1..=50i64 {
            if i > 1 {
                s.push(',');
            }
            let ticks = if side { MID - i } else { MID + i };
            let _ = write!(s, "[\"{}.{:02}\",\"1.00000000\"]", ticks / 100, ticks % 100);
        }
        s.push_str(if side { "],\"asks\":[" } else { "]}" });
    }
    s
}

fn spec() -> VenueSpec {
    VenueSpec::new(SYMBOLS.iter().map(|s| Symbol::new(s).unwrap()).collect())
}

/// The OKX instrument of a bench symbol: the spot pair, or (`swap`) its `-SWAP`.
fn okx_inst(symbol: &str, swap: bool) -> String {
    if swap {
        format!("{symbol}-SWAP")
    } else {
        symbol.to_string()
    }
}

/// The OKX spec: the spot pairs, or (`swap`) their perpetuals with `ctVal` 0.01 configured,
/// so sizes go through the contract conversion (and the contract book kept for the checksum).
fn okx_spec(swap: bool) -> VenueSpec {
    if !swap {
        return spec();
    }
    let mut spec = VenueSpec::new(
        SYMBOLS
            .iter()
            .map(|s| Symbol::new(&format!("{s}-PERP")).unwrap())
            .collect(),
    );
    for s in SYMBOLS {
        spec.feed.instruments.insert(
            format!("{s}-PERP"),
            connectors::settings::InstrumentOverride {
                tick_size: model::Decimal::new(1, 2),
                lot_size: model::Decimal::new(1, 8),
                contract_size: Some(model::Decimal::new(1, 2)),
            },
        );
    }
    spec
}

/// `count` OKX v5 frames: `trades`% `trades` pushes, the rest `books` updates of `per_side`
/// levels a side, each chained on its instrument's previous `seqId`; `swap`: of the
/// `-SWAP` instruments (sizes in contracts).
fn generate_okx(
    count: usize,
    trades: u64,
    per_side: std::ops::RangeInclusive<u64>,
    swap: bool,
) -> Vec<String> {
    let mut rng = Rng::new(7);
    let mut seq_ids = vec![10i64; SYMBOLS.len()];
    let mut trade_id = 0u64;
    (0..count)
        .map(|i| {
            let index = i % SYMBOLS.len();
            let inst = okx_inst(SYMBOLS[index], swap);
            let inst = inst.as_str();
            if rng.below(100) < trades {
                trade_id += 1;
                return format!(
                    "{{\"arg\":{{\"channel\":\"trades\",\"instId\":\"{inst}\"}},\"data\":[{{\"instId\":\"{inst}\",\"tradeId\":\"{trade_id}\",\"px\":\"65000.{:02}\",\"sz\":\"0.{:08}\",\"side\":\"{}\",\"ts\":\"1630048897897\",\"count\":\"1\",\"source\":\"0\",\"seqId\":{trade_id}}}]}}",
                    rng.below(100),
                    1 + rng.below(99_999_999),
                    if rng.below(2) == 0 { "buy" } else { "sell" }
                );
            }
            let prev = seq_ids[index];
            seq_ids[index] += 1 + rng.below(20) as i64;
            let mut s = String::from("{\"arg\":{\"channel\":\"books\",\"instId\":\"");
            s.push_str(inst);
            s.push_str("\"},\"action\":\"update\",\"data\":[{\"asks\":[");
            for side in [false, true] {
                let count = per_side.start() + rng.below(per_side.end() - per_side.start() + 1);
                for i in 0..count {
                    if i > 0 {
                        s.push(',');
                    }
                    let mut one = String::new();
                    level(&mut one, &mut rng, side);
                    // ["p","s"] → ["p","s","0","n"], OKX's level shape.
                    one.pop();
                    s.push_str(&one);
                    s.push_str(",\"0\",\"1\"]");
                }
                s.push_str(if side { "]," } else { "],\"bids\":[" });
            }
            let _ = write!(
                s,
                "\"ts\":\"1597026383085\",\"checksum\":0,\"prevSeqId\":{prev},\"seqId\":{}}}]}}",
                seq_ids[index]
            );
            s
        })
        .collect()
}

/// `count` Bybit v5 frames, like [`generate_okx`]: `orderbook.50` deltas (consecutive `u`)
/// and `publicTrade` pushes.
fn generate_bybit(
    count: usize,
    trades: u64,
    per_side: std::ops::RangeInclusive<u64>,
) -> Vec<String> {
    let mut rng = Rng::new(7);
    let mut ids = vec![10u64; SYMBOLS.len()];
    let mut trade_seq = 0u64;
    (0..count)
        .map(|i| {
            let index = i % SYMBOLS.len();
            let n = native(SYMBOLS[index]);
            if rng.below(100) < trades {
                trade_seq += 1;
                return format!(
                    "{{\"topic\":\"publicTrade.{n}\",\"type\":\"snapshot\",\"ts\":1672304486868,\"data\":[{{\"T\":1672304486865,\"s\":\"{n}\",\"S\":\"{}\",\"v\":\"0.{:08}\",\"p\":\"65000.{:02}\",\"L\":\"PlusTick\",\"i\":\"{trade_seq}\",\"BT\":false,\"seq\":{trade_seq}}}]}}",
                    if rng.below(2) == 0 { "Buy" } else { "Sell" },
                    1 + rng.below(99_999_999),
                    rng.below(100)
                );
            }
            ids[index] += 1;
            let mut s = format!("{{\"topic\":\"orderbook.50.{n}\",\"type\":\"delta\",\"ts\":1687940967466,\"data\":{{\"s\":\"{n}\",\"b\":[");
            for side in [true, false] {
                let count = per_side.start() + rng.below(per_side.end() - per_side.start() + 1);
                for i in 0..count {
                    if i > 0 {
                        s.push(',');
                    }
                    level(&mut s, &mut rng, side);
                }
                s.push_str(if side { "],\"a\":[" } else { "]," });
            }
            let _ = write!(s, "\"u\":{},\"seq\":66544703342}},\"cts\":1687940967464}}", ids[index]);
            s
        })
        .collect()
}

/// A live Bybit session: one snapshot per symbol (`u` 10).
fn primed_bybit() -> Primed {
    let protocol = venue::protocol("bybit", spec()).unwrap();
    let symbols = spec().symbols;
    let mut session = protocol.session(&symbols);
    let mut io = Io::new(Timestamp(1));
    session.open(&mut io);
    let side = |bid: bool| -> String {
        (1..=50i64)
            .map(|i| {
                let t = if bid { MID - i } else { MID + i };
                format!("[\"{}.{:02}\",\"1.00000000\"]", t / 100, t % 100)
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    for s in SYMBOLS {
        let n = native(s);
        let text = format!(
            "{{\"topic\":\"orderbook.50.{n}\",\"type\":\"snapshot\",\"ts\":1,\"data\":{{\"s\":\"{n}\",\"b\":[{}],\"a\":[{}],\"u\":10,\"seq\":1}},\"cts\":1}}",
            side(true),
            side(false)
        );
        session.on_text(&text, &mut io);
    }
    assert_eq!(session.syncing(), 0, "every Bybit book live");
    Primed {
        session,
        inputs: Vec::new(),
        events: io.events,
    }
}

const HL_COINS: [&str; 8] = ["BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "DOGE", "TRX"];

fn hl_spec() -> VenueSpec {
    VenueSpec::new(
        HL_COINS
            .iter()
            .map(|c| Symbol::new(&format!("{c}-USDC-PERP")).unwrap())
            .collect(),
    )
}

/// `count` Hyperliquid `l2Book` messages: each coin's top 20 a side, one or two levels
/// resized from the previous message of that coin.
fn generate_hl(count: usize) -> Vec<String> {
    generate_hl_moving(count, false)
}

/// Like [`generate_hl`]; with `moving`, every message of a coin also moves its whole book by
/// one tick (every price changes: the fast path's worst case, nothing reusable).
fn generate_hl_moving(count: usize, moving: bool) -> Vec<String> {
    let mut rng = Rng::new(7);
    let mut books: Vec<[Vec<u64>; 2]> = (0..HL_COINS.len())
        .map(|_| [vec![100_000; 20], vec![100_000; 20]])
        .collect();
    (0..count)
        .map(|i| {
            let index = i % HL_COINS.len();
            for _ in 0..1 + rng.below(2) {
                let side = rng.below(2) as usize;
                let at = rng.below(20) as usize;
                books[index][side][at] = 1 + rng.below(900_000);
            }
            let mut s = format!(
                "{{\"channel\":\"l2Book\",\"data\":{{\"coin\":\"{}\",\"time\":{},\"levels\":[[",
                HL_COINS[index],
                1_710_131_872_708u64 + i as u64
            );
            let shift = if moving {
                (i / HL_COINS.len()) as i64
            } else {
                0
            };
            for (side, levels) in books[index].iter().enumerate() {
                for (k, lots) in levels.iter().enumerate() {
                    if k > 0 {
                        s.push(',');
                    }
                    let t = shift
                        + if side == 0 {
                            MID - 1 - k as i64
                        } else {
                            MID + 1 + k as i64
                        };
                    let _ = write!(
                        s,
                        "{{\"px\":\"{}.{:02}\",\"sz\":\"{}.{:05}\",\"n\":3}}",
                        t / 100,
                        t % 100,
                        lots / 100_000,
                        lots % 100_000
                    );
                }
                s.push_str(if side == 0 { "],[" } else { "]]}}" });
            }
            s
        })
        .collect()
}

/// `count` Hyperliquid `trades` messages of one trade each (the documented shape, with the
/// hash and both users), unique `tid`s, round-robin over the coins.
fn generate_hl_trades(count: usize) -> Vec<String> {
    let mut rng = Rng::new(11);
    (0..count)
        .map(|i| {
            let t = MID - 50 + rng.below(100) as i64;
            let lots = 1 + rng.below(900_000);
            format!(
                concat!(
                    r#"{{"channel":"trades","data":[{{"coin":"{}","side":"{}","px":"{}.{:02}","#,
                    r#""sz":"{}.{:05}","time":{},"hash":"0x{:064x}","tid":{},"#,
                    r#""users":["0x0d3b14d4f3b9b8a9c7bd13f9ca1a3b5f3c8d0a01","#,
                    r#""0x13558be785661958932ceac35ba20de187275e42"]}}]}}"#
                ),
                HL_COINS[i % HL_COINS.len()],
                if rng.below(2) == 0 { "B" } else { "A" },
                t / 100,
                t % 100,
                lots / 100_000,
                lots % 100_000,
                1_710_125_266_669u64 + i as u64,
                rng.below(u64::MAX),
                981_894_269_203_506u64 + i as u64,
            )
        })
        .collect()
}

/// A live Hyperliquid session: the first message of each coin was its snapshot.
fn primed_hl() -> Primed {
    let protocol = venue::protocol("hyperliquid", hl_spec()).unwrap();
    let symbols = hl_spec().symbols;
    let mut session = protocol.session(&symbols);
    let mut io = Io::new(Timestamp(1));
    session.open(&mut io);
    for m in generate_hl(HL_COINS.len()) {
        session.on_text(&m, &mut io);
    }
    assert_eq!(session.syncing(), 0, "every Hyperliquid book live");
    Primed {
        session,
        inputs: Vec::new(),
        events: io.events,
    }
}

/// A live OKX spot session: one snapshot per instrument (`seqId` 10).
fn primed_okx() -> Primed {
    primed_okx_for(false)
}

/// A live OKX swap session (`ctVal` 0.01): one snapshot per swap.
fn primed_okx_swap() -> Primed {
    primed_okx_for(true)
}

fn primed_okx_for(swap: bool) -> Primed {
    let protocol = venue::protocol("okx", okx_spec(swap)).unwrap();
    let symbols = okx_spec(swap).symbols;
    let mut session = protocol.session(&symbols);
    let mut io = Io::new(Timestamp(1));
    session.open(&mut io);
    let book: Vec<String> = (1..=50i64)
        .map(|i| {
            format!(
                "[\"{}.{:02}\",\"1.00000000\",\"0\",\"1\"]",
                (MID - i) / 100,
                (MID - i) % 100
            )
        })
        .collect();
    let asks: Vec<String> = (1..=50i64)
        .map(|i| {
            format!(
                "[\"{}.{:02}\",\"1.00000000\",\"0\",\"1\"]",
                (MID + i) / 100,
                (MID + i) % 100
            )
        })
        .collect();
    for s in SYMBOLS {
        let s = okx_inst(s, swap);
        let text = format!(
            "{{\"arg\":{{\"channel\":\"books\",\"instId\":\"{s}\"}},\"action\":\"snapshot\",\"data\":[{{\"asks\":[{}],\"bids\":[{}],\"ts\":\"1597026383085\",\"checksum\":0,\"prevSeqId\":-1,\"seqId\":10}}]}}",
            asks.join(","),
            book.join(",")
        );
        session.on_text(&text, &mut io);
    }
    assert_eq!(session.syncing(), 0, "every OKX book live");
    Primed {
        session,
        inputs: Vec::new(),
        events: io.events,
    }
}

/// A live session, the inputs that made it live, and the snapshots it emitted.
struct Primed {
    session: Box<dyn connectors::conn::Session>,
    inputs: Vec<RecordKind>,
    events: Vec<FeedEvent>,
}

/// Opens a live session: one diff per symbol (buffered), then the REST snapshot.
fn primed() -> Primed {
    let protocol = venue::protocol("binance", spec()).unwrap();
    let symbols = spec().symbols;
    let mut session = protocol.session(&symbols);
    let mut inputs = vec![RecordKind::Open {
        symbols: symbols.clone(),
        standby: false,
    }];
    let mut io = Io::new(Timestamp(1));
    session.open(&mut io);
    for s in SYMBOLS {
        let first = format!(
            "{{\"stream\":\"{}@depth@100ms\",\"data\":{{\"e\":\"depthUpdate\",\"E\":1,\"s\":\"{}\",\"U\":1,\"u\":1,\"b\":[],\"a\":[]}}}}",
            native(s).to_lowercase(),
            native(s)
        );
        session.on_text(&first, &mut io);
        inputs.push(RecordKind::Ws { text: first });
    }
    for s in SYMBOLS {
        let key = format!("depth:{}", native(s));
        session.on_rest(&key, Ok(&snapshot_body()), &mut io);
        inputs.push(RecordKind::Rest {
            key,
            body: Some(snapshot_body()),
            error: None,
        });
    }
    Primed {
        session,
        inputs,
        events: io.events,
    }
}

#[derive(Default)]
struct Books {
    books: HashMap<Symbol, OrderBook>,
    trades: u64,
    deltas: u64,
    errors: u64,
}

impl Books {
    fn apply(&mut self, event: FeedEvent) {
        match event {
            FeedEvent::BookSnapshot { symbol, snapshot } => {
                let book = self
                    .books
                    .entry(symbol)
                    .or_insert_with(|| OrderBook::new(ChecksumAlgo::None));
                if book.apply_snapshot(&snapshot).is_err() {
                    self.errors += 1;
                }
            }
            FeedEvent::BookDelta { symbol, delta } => {
                self.deltas += 1;
                match self.books.get_mut(&symbol).map(|b| b.apply_delta(&delta)) {
                    Some(Ok(_)) => {}
                    _ => self.errors += 1,
                }
            }
            FeedEvent::Trade { .. } => self.trades += 1,
            _ => {}
        }
    }
}

fn report(name: &str, messages: usize, bytes: usize, seconds: f64, books: &Books) {
    println!(
        "{name:8} {messages:>9} msgs {:>8.1} MB  {:>6.3} s  {:>10.0} msg/s  {:>7.1} MB/s  {:>6.0} ns/msg  (trades {}, deltas {}, book errors {})",
        bytes as f64 / 1e6,
        seconds,
        messages as f64 / seconds,
        bytes as f64 / 1e6 / seconds,
        seconds * 1e9 / messages as f64,
        books.trades,
        books.deltas,
        books.errors
    );
}

/// Parse and normalize only (no book): the connector's share of the cost.
fn run_parse(name: &str, messages: &[String], primed: fn() -> Primed) {
    let Primed { mut session, .. } = primed();
    let mut io = Io::new(Timestamp(1));
    let bytes: usize = messages.iter().map(String::len).sum();
    let mut books = Books::default();
    let start = Instant::now();
    for m in messages {
        session.on_text(m, &mut io);
        books.deltas += io.events.len() as u64;
        io.events.clear();
    }
    report(
        name,
        messages.len(),
        bytes,
        start.elapsed().as_secs_f64(),
        &books,
    );
}

fn run(name: &str, messages: &[String], primed: fn() -> Primed) {
    let Primed {
        mut session,
        events: snapshots,
        ..
    } = primed();
    let mut books = Books::default();
    for e in snapshots {
        books.apply(e);
    }
    let mut io = Io::new(Timestamp(1));
    let bytes: usize = messages.iter().map(String::len).sum();
    let start = Instant::now();
    for m in messages {
        io.recv_ts = Timestamp(2);
        session.on_text(m, &mut io);
        for e in io.events.drain(..) {
            books.apply(e);
        }
    }
    report(
        name,
        messages.len(),
        bytes,
        start.elapsed().as_secs_f64(),
        &books,
    );
}

fn run_replay(messages: &[String]) {
    use connectors::conn::record::{CaptureFormat, CaptureRecord, CaptureWriter};
    // The same records in both formats: the first (gzip JSON lines) and the framed default.
    let mut records = vec![CaptureRecord {
        t: 0,
        v: "binance".into(),
        c: 0,
        kind: RecordKind::venue(&spec()),
    }];
    let record = |c: u64, t: i64, kind: RecordKind| CaptureRecord {
        t,
        v: "binance".into(),
        c,
        kind,
    };
    records.extend(primed().inputs.into_iter().map(|kind| record(1, 1, kind)));
    records.extend(
        messages
            .iter()
            .enumerate()
            .map(|(i, m)| record(1, 2 + i as i64, RecordKind::Ws { text: m.clone() })),
    );
    // `INGEST_BENCH_CAPTURE=FILE` keeps the captures there, FILE.jsonl.gz and FILE.tgcap
    // (e.g. to time `tickgate replay FILE` on the same input); by default they are temporary
    // files, removed at the end.
    let kept = std::env::var_os("INGEST_BENCH_CAPTURE").map(std::path::PathBuf::from);
    let base = kept.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("tickgate-bench-{}", std::process::id()))
    });
    for (format, prefix) in [(CaptureFormat::JsonlGz, "r"), (CaptureFormat::Tgcap, "t")] {
        let mut path = base.clone().into_os_string();
        path.push(match format {
            CaptureFormat::JsonlGz => ".jsonl.gz",
            CaptureFormat::Tgcap => ".tgcap",
        });
        let path = std::path::PathBuf::from(path);
        // Written directly (the live recorder drops records rather than block a connection).
        let start = Instant::now();
        let mut writer = CaptureWriter::create(&path, format).unwrap();
        for r in &records {
            writer.write(r).unwrap();
        }
        let lines = writer.finish().unwrap();
        let written = start.elapsed().as_secs_f64();
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        replay_rows(&path, format, prefix, lines as usize);
        println!(
            "         capture: {} {lines} records, {:.1} MB on disk, written in {written:.3} s",
            format.name(),
            size as f64 / 1e6
        );
        if kept.is_none() {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The replay rows of one capture file (row names start with `prefix`: `r` for the
/// `jsonl-gz` capture, `t` for the `tgcap` one).
fn replay_rows(
    path: &std::path::Path,
    format: connectors::conn::record::CaptureFormat,
    prefix: &str,
    lines: usize,
) {
    use connectors::conn::record::CaptureFormat;
    // Old path (the baseline): the whole capture decoded into memory, then stepped.
    let start = Instant::now();
    let events = replay::replay_all(path).unwrap();
    let mut books = Books::default();
    for (_, e) in events {
        books.apply(e);
    }
    let seconds = start.elapsed().as_secs_f64();
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    report(
        &format!("{prefix}/all"),
        lines,
        size as usize,
        seconds,
        &books,
    );
    // Where the time goes: decompression alone, then decompression + record decoding (the
    // decoder thread's work), then the streaming player into books.
    let start = Instant::now();
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let raw = match format {
        CaptureFormat::JsonlGz => std::io::copy(
            &mut flate2::read::GzDecoder::new(file),
            &mut std::io::sink(),
        ),
        CaptureFormat::Tgcap => std::io::copy(
            &mut lz4_flex::frame::FrameDecoder::new(file),
            &mut std::io::sink(),
        ),
    }
    .unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let inflate = match format {
        CaptureFormat::JsonlGz => "gunzip",
        CaptureFormat::Tgcap => "unlz4",
    };
    report(
        &format!("{prefix}/{inflate}"),
        lines,
        raw as usize,
        seconds,
        &Books::default(),
    );
    let start = Instant::now();
    let mut reader = connectors::conn::record::CaptureReader::open(path).unwrap();
    let mut decoded = 0usize;
    while let Some(batch) = reader.next_batch() {
        let batch = batch.unwrap();
        decoded += batch.len();
        reader.recycle(batch);
    }
    let seconds = start.elapsed().as_secs_f64();
    report(
        &format!("{prefix}/decode"),
        decoded,
        raw as usize,
        seconds,
        &Books::default(),
    );
    let start = Instant::now();
    let mut books = Books::default();
    let stats = replay::play(path, None, |_, batch| {
        for e in batch.drain(..) {
            books.apply(e);
        }
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    let seconds = start.elapsed().as_secs_f64();
    report(
        &format!("{prefix}/play"),
        stats.records as usize,
        raw as usize,
        seconds,
        &books,
    );
    // The gateway's replay venue at `speed = "max"`: the Connector seam (a tokio task sending
    // batches over the bounded channel ingest reads) into the same books, from `open` (which
    // reads the capture once to find its venues) to the "finished" status.
    let start = Instant::now();
    let mut books = Books::default();
    run_replay_venue(path, &mut books);
    let seconds = start.elapsed().as_secs_f64();
    report(
        &format!("{prefix}/venue"),
        stats.records as usize,
        raw as usize,
        seconds,
        &books,
    );
}

/// Runs the replay venue over `path` into `books` until its "finished" status.
fn run_replay_venue(path: &std::path::Path, books: &mut Books) {
    use connectors::{ConnectionState, Connector, ConnectorContext};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let connector = replay::open(path, None).unwrap().remove(0);
        let (events, mut rx) = tokio::sync::mpsc::channel(64);
        let (_commands_tx, commands) = tokio::sync::mpsc::channel(16);
        let shutdown = tokio_util::sync::CancellationToken::new();
        let ctx = ConnectorContext {
            events,
            commands,
            shutdown: shutdown.clone(),
        };
        let task = tokio::spawn(Box::new(connector).run(ctx));
        'outer: while let Some(batch) = rx.recv().await {
            for event in batch {
                let finished = matches!(&event, FeedEvent::Status { state: ConnectionState::Connected, detail } if detail.starts_with("replay of"));
                books.apply(event);
                if finished {
                    break 'outer;
                }
            }
        }
        shutdown.cancel();
        let _ = task.await;
    })
}

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    println!(
        "ingest_bench: {count} messages per scenario, {} symbols, 1 thread",
        SYMBOLS.len()
    );
    // A second argument keeps only the scenarios whose name starts with it (`replay`,
    // `bybit`, `okx`, …), so one venue can be profiled alone.
    let only = std::env::args().nth(2).unwrap_or_default();
    let wanted = |name: &str| name.starts_with(only.as_str());
    let mix = generate(count, 50, 1..=5);
    if wanted("mix") {
        run("mix", &mix, primed);
        run_parse("mix/pars", &mix, primed);
    }
    if wanted("depth10") {
        let deep = generate(count / 2, 0, 10..=10);
        run("depth10", &deep, primed);
        run_parse("d10/pars", &deep, primed);
    }
    if wanted("replay") {
        run_replay(&mix[..count.min(300_000)]);
    }
    if wanted("okx") {
        let okx = generate_okx(count, 50, 1..=5, false);
        run("okx-mix", &okx, primed_okx);
        run_parse("okx/pars", &okx, primed_okx);
        let okx_small = generate_okx(count, 0, 1..=1, false);
        run("okx-1+1", &okx_small, primed_okx);
        run_parse("okx1/par", &okx_small, primed_okx);
    }
    if wanted("swap") {
        let swap = generate_okx(count, 50, 1..=5, true);
        run("okxswap", &swap, primed_okx_swap);
        run_parse("swap/par", &swap, primed_okx_swap);
        let swap_small = generate_okx(count, 0, 1..=1, true);
        run("swap-1+1", &swap_small, primed_okx_swap);
        run_parse("swap1/pa", &swap_small, primed_okx_swap);
    }
    if wanted("bybit") {
        let bybit = generate_bybit(count, 50, 1..=5);
        run("bybit-mix", &bybit, primed_bybit);
        run_parse("bybit/par", &bybit, primed_bybit);
        let bybit_small = generate_bybit(count, 0, 1..=1);
        run("bybit-1+1", &bybit_small, primed_bybit);
        run_parse("bybit1/pa", &bybit_small, primed_bybit);
    }
    if wanted("hl") {
        // After the priming messages, so the first measured one already diffs.
        let hl: Vec<String> = generate_hl(count / 2 + HL_COINS.len()).split_off(HL_COINS.len());
        run("hl-book", &hl, primed_hl);
        run_parse("hl/pars", &hl, primed_hl);
        let moving: Vec<String> =
            generate_hl_moving(count / 2 + HL_COINS.len(), true).split_off(HL_COINS.len());
        run_parse("hlmove/p", &moving, primed_hl);
        // The same books with one space after `"levels":`: not the venue's form, so every
        // message takes the general parser (the floor, in the same run).
        let general: Vec<String> = hl
            .iter()
            .map(|m| m.replace("\"levels\":", "\"levels\": "))
            .collect();
        run_parse("hlgen/p", &general, primed_hl);
        let trades = generate_hl_trades(count);
        run("hl-trades", &trades, primed_hl);
        run_parse("hlt/pars", &trades, primed_hl);
    }
}
