//! Each venue's message parser and book logic, through the same sans-I/O `Session` seam the
//! live connector and `replay` use.
//!
//! Input layout: the first byte picks the venue; the rest is lines. `REST <body>` answers the
//! oldest REST request the session made (a book snapshot), `META <body>` is an instrument
//! metadata response, `TICK` advances the clock one second, `RESYNC` asks for a rebuild, and
//! any other line is a text frame from the venue.
//!
//! Oracle: no panic (debug assertions on: no overflow), and every book event, applied to the
//! book engine as ingest applies it, leaves a live book ordered (bids strictly descending,
//! asks strictly ascending, every size positive) and uncrossed. The engine refusing an event
//! is fine (the venue sent something wrong); a session that makes a live book inconsistent is
//! not.
//!
//! Second oracle, for the hand-written fast paths (Binance's byte scanner, Hyperliquid's
//! level reuse), which take only a venue's canonical form: a shadow session gets every text
//! frame with a space after its opening `{` (the same JSON, which no fast path takes, so it
//! goes through serde) and must emit the same events, error texts aside.
#![no_main]

use book::OrderBook;
use connectors::FeedEvent;
use connectors::conn::venue_protocol::Io;
use connectors::settings::VenueSpec;
use libfuzzer_sys::fuzz_target;
use model::{Symbol, Timestamp};
use std::collections::{HashMap, VecDeque};

/// Venues with a WebSocket parser (sim and replay have none; evm has its own target later).
const VENUES: [&str; 6] = ["binance", "kraken", "coinbase", "okx", "bybit", "hyperliquid"];

struct Books {
    algo: book::ChecksumAlgo,
    books: HashMap<Symbol, OrderBook>,
}

impl Books {
    fn apply(&mut self, events: &[FeedEvent]) {
        for event in events {
            let (symbol, book) = match event {
                FeedEvent::BookSnapshot { symbol, snapshot } => {
                    let book = self
                        .books
                        .entry(symbol.clone())
                        .or_insert_with(|| OrderBook::new(self.algo));
                    let _ = book.apply_snapshot(snapshot);
                    (symbol, book)
                }
                FeedEvent::BookDelta { symbol, delta } => {
                    let Some(book) = self.books.get_mut(symbol) else {
                        continue;
                    };
                    let _ = book.apply_delta(delta);
                    (symbol, book)
                }
                _ => continue,
            };
            if !book.is_live() {
                continue;
            }
            let bids: Vec<_> = book.bids().collect();
            let asks: Vec<_> = book.asks().collect();
            assert!(
                bids.windows(2).all(|w| w[0].price > w[1].price),
                "{symbol}: bids"
            );
            assert!(
                asks.windows(2).all(|w| w[0].price < w[1].price),
                "{symbol}: asks"
            );
            assert!(
                bids.iter()
                    .chain(asks.iter())
                    .all(|l| l.size.is_sign_positive() && !l.size.is_zero()),
                "{symbol}: a level without a positive size"
            );
            if let (Some(bid), Some(ask)) = (book.best_bid(), book.best_ask()) {
                assert!(bid.price < ask.price, "{symbol}: live book crossed");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let name = VENUES[usize::from(selector) % VENUES.len()];
    let text = String::from_utf8_lossy(rest);
    // The symbols of the venues' documented examples (crates/connectors/test_data), so the
    // seeds reach the book code.
    // Hyperliquid serves USDC perpetuals only; OKX and Bybit take these and `-PERP` ones.
    let names: &[&str] = match name {
        "hyperliquid" => &["BTC-USDC-PERP", "ETH-USDC-PERP"],
        "okx" | "bybit" => &["BTC-USDT", "BTC-USDT-PERP", "BTC-USD", "ETH-USD"],
        _ => &["BNB-BTC", "BTC-USD", "ETH-USD", "MATIC-USD", "ETH-BTC"],
    };
    let symbols: Vec<Symbol> = names
        .iter()
        .map(|s| Symbol::new(s).expect("valid symbol"))
        .collect();
    let Ok(protocol) = connectors::venue::protocol(name, VenueSpec::new(symbols.clone())) else {
        panic!("{name} has no protocol");
    };
    let mut now = Timestamp::from_millis(1_700_000_000_000);
    let mut session = protocol.session(&symbols);
    let mut pending: VecDeque<String> = VecDeque::new();
    let mut books = Books {
        algo: connectors::venue::checksum_algo(name),
        books: HashMap::new(),
    };
    let mut io = Io::new(now);
    let mut shadow = protocol.session(&symbols);
    let mut shadow_io = Io::new(now);
    session.open(&mut io);
    shadow.open(&mut shadow_io);
    for line in text.split('\n') {
        pending.extend(io.rest.drain(..).map(|r| r.key));
        books.apply(&io.events);
        io = Io::new(now);
        shadow_io = Io::new(now);
        if let Some(body) = line.strip_prefix("REST ") {
            if let Some(key) = pending.pop_front() {
                session.on_rest(&key, Ok(body), &mut io);
                shadow.on_rest(&key, Ok(body), &mut shadow_io);
            }
        } else if let Some(body) = line.strip_prefix("META ") {
            let _ = protocol.parse_instruments(body);
        } else if line == "TICK" {
            now = Timestamp(now.0 + 1_000_000);
            io.recv_ts = now;
            shadow_io.recv_ts = now;
            session.on_tick(now, &mut io);
            shadow.on_tick(now, &mut shadow_io);
        } else if line == "RESYNC" {
            session.resync(&symbols[0], &mut io);
            shadow.resync(&symbols[0], &mut shadow_io);
        } else {
            session.on_text(line, &mut io);
            match line.strip_prefix('{') {
                Some(rest) => shadow.on_text(&format!("{{ {rest}"), &mut shadow_io),
                None => shadow.on_text(line, &mut shadow_io),
            }
        }
        assert_eq!(
            comparable(&io.events),
            comparable(&shadow_io.events),
            "{name}: the fast path and serde disagree on {line:?}"
        );
        let _ = session.syncing();
    }
    books.apply(&io.events);
});

/// Events as compared between the session and its shadow: the reason texts of invalid
/// messages may quote the frame or name a column, so only their symbol and cause count.
fn comparable(events: &[FeedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|event| match event {
            FeedEvent::Invalid { symbol, cause, .. } => format!("invalid {symbol:?} {cause:?}"),
            other => format!("{other:?}"),
        })
        .collect()
}
