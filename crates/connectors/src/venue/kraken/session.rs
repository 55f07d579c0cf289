//! One Kraken v2 connection: subscriptions, per-symbol books with checksum verification on
//! every message, trades.

use super::book::{BookMessage, KrakenBook};
use super::subscription::Requests;
use super::ticker::parse_tickers;
use super::trade::parse_trades;
use super::{KrakenProtocol, canonical, native_symbol};
use crate::conn::{Io, Protocol, Session};
use crate::venue::parse::Text;
use crate::venue::parse::excerpt;
use crate::{FeedEvent, InvalidCause};
use model::{BookDelta, BookSnapshot, Symbol, Timestamp};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    channel: Option<Text<'a>>,
    #[serde(borrow)]
    method: Option<Text<'a>>,
    req_id: Option<u64>,
    success: Option<bool>,
    error: Option<String>,
    symbol: Option<String>,
}

#[derive(Debug)]
struct SymbolBook {
    mirror: KrakenBook,
    live: bool,
    /// Synthetic sequence: Kraken v2 books carry no ids, so each message gets the next number
    /// (continuity is guaranteed by the checksum instead).
    seq: u64,
}

#[derive(Debug)]
pub(crate) struct KrakenSession {
    depth: usize,
    ack_timeout_us: i64,
    symbols: Vec<Symbol>,
    natives: Vec<String>,
    by_native: HashMap<String, usize>,
    books: Vec<SymbolBook>,
    last_trade: Vec<u64>,
    requests: Requests,
}

impl KrakenSession {
    pub(crate) fn new(protocol: &KrakenProtocol, shard: &[Symbol]) -> Self {
        let natives: Vec<String> = shard.iter().map(native_symbol).collect();
        Self {
            depth: protocol.depth(),
            ack_timeout_us: protocol.spec().feed.ack_timeout_secs as i64
                * Timestamp::MICROS_PER_SECOND,
            symbols: shard.to_vec(),
            by_native: natives
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect(),
            natives,
            books: shard
                .iter()
                .map(|_| SymbolBook {
                    mirror: KrakenBook::new(protocol.depth()),
                    live: false,
                    seq: 0,
                })
                .collect(),
            last_trade: vec![0; shard.len()],
            requests: Requests::default(),
        }
    }

    fn index(&self, native: &str) -> Option<usize> {
        self.by_native.get(&canonical(native)).copied()
    }

    /// Unsubscribes and resubscribes `index`'s book: Kraken answers with a fresh snapshot.
    fn resubscribe_book(&mut self, index: usize, io: &mut Io) {
        self.books[index].live = false;
        let native = [self.natives[index].clone()];
        io.send.push(self.requests.frame(
            "unsubscribe",
            "book",
            &native,
            Some(self.depth),
            io.recv_ts,
        ));
        io.send.push(self.requests.frame(
            "subscribe",
            "book",
            &native,
            Some(self.depth),
            io.recv_ts,
        ));
    }

    fn on_book(&mut self, text: &str, io: &mut Io) {
        let msg = match BookMessage::parse(text) {
            Ok(msg) => msg,
            Err((native, reason)) => {
                let index = native.as_deref().and_then(|n| self.index(n));
                io.invalid(index.map(|i| self.symbols[i].clone()), reason);
                if let Some(index) = index {
                    self.resubscribe_book(index, io);
                }
                return;
            }
        };
        for entry in msg.entries {
            let Some(index) = self.index(&entry.symbol) else {
                io.invalid(
                    None,
                    format!("book for an unsubscribed pair {}", excerpt(&entry.symbol)),
                );
                continue;
            };
            let symbol = self.symbols[index].clone();
            io.touch(&symbol);
            let book = &mut self.books[index];
            if !msg.snapshot && !book.live {
                continue; // updates before the new snapshot belong to the old subscription
            }
            let removed = if msg.snapshot {
                book.mirror
                    .load(&entry.bids, &entry.asks)
                    .map(|()| (Vec::new(), Vec::new()))
            } else {
                book.mirror.apply(&entry.bids, &entry.asks)
            };
            let removed = match removed {
                Ok(removed) => removed,
                Err(reason) => {
                    io.fault(Some(symbol), InvalidCause::InvalidLevel, reason);
                    self.resubscribe_book(index, io);
                    continue;
                }
            };
            let computed = book.mirror.checksum();
            if computed != entry.checksum {
                io.fault(
                    Some(symbol),
                    InvalidCause::ChecksumMismatch,
                    format!(
                        "checksum mismatch: Kraken sent {}, book computes {computed}",
                        entry.checksum
                    ),
                );
                self.resubscribe_book(index, io);
                continue;
            }
            book.seq += 1;
            let seq = book.seq;
            if msg.snapshot {
                book.live = true;
                let (bids, asks) = book.mirror.levels();
                io.events.push(FeedEvent::BookSnapshot {
                    symbol,
                    snapshot: BookSnapshot {
                        seq,
                        bids,
                        asks,
                        exchange_ts: entry.ts,
                        recv_ts: io.recv_ts,
                        checksum: Some(entry.checksum),
                    },
                });
            } else {
                let (mut bids, mut asks) = (entry.bids, entry.asks);
                bids.extend(removed.0);
                asks.extend(removed.1);
                io.events.push(FeedEvent::BookDelta {
                    symbol,
                    delta: BookDelta {
                        first_seq: seq,
                        last_seq: seq,
                        bids,
                        asks,
                        exchange_ts: entry.ts,
                        recv_ts: io.recv_ts,
                        checksum: Some(entry.checksum),
                    },
                });
            }
        }
    }

    fn on_trades(&mut self, text: &str, io: &mut Io) {
        match parse_trades(text, io.recv_ts) {
            Ok(trades) => {
                for (native, id, trade) in trades {
                    let Some(index) = self.index(&native) else {
                        continue;
                    };
                    let symbol = self.symbols[index].clone();
                    io.touch(&symbol);
                    if id > self.last_trade[index] {
                        self.last_trade[index] = id;
                        io.events.push(FeedEvent::Trade { symbol, trade });
                    }
                }
            }
            Err(reason) => io.invalid(None, reason),
        }
    }
}

impl KrakenSession {
    /// A ticker is not book data: a bad one is counted, never a reason to rebuild the book.
    fn on_tickers(&mut self, text: &str, io: &mut Io) {
        match parse_tickers(text, io.recv_ts) {
            Ok(tickers) => {
                for (native, ticker) in tickers {
                    if let Some(index) = self.index(&native) {
                        io.events.push(FeedEvent::Ticker {
                            symbol: self.symbols[index].clone(),
                            ticker,
                        });
                    }
                }
            }
            Err(reason) => io.invalid(None, reason),
        }
    }
}

impl Session for KrakenSession {
    fn open(&mut self, io: &mut Io) {
        let natives = self.natives.clone();
        io.send.push(self.requests.frame(
            "subscribe",
            "book",
            &natives,
            Some(self.depth),
            io.recv_ts,
        ));
        io.send.push(
            self.requests
                .frame("subscribe", "trade", &natives, None, io.recv_ts),
        );
        io.send.push(
            self.requests
                .frame("subscribe", "ticker", &natives, None, io.recv_ts),
        );
    }

    fn on_text(&mut self, text: &str, io: &mut Io) {
        let envelope: Envelope = match serde_json::from_str(text) {
            Ok(envelope) => envelope,
            Err(error) => {
                return io.invalid(
                    None,
                    format!("unparseable frame ({error}): {}", excerpt(text)),
                );
            }
        };
        if let Some(method) = envelope.method {
            let id = envelope.req_id.unwrap_or(0);
            match (method.as_str(), envelope.success) {
                ("subscribe" | "unsubscribe", Some(true)) => self.requests.acknowledge(id),
                ("subscribe" | "unsubscribe", _) => {
                    let what = self.requests.what(id).unwrap_or("request").to_string();
                    let symbol = envelope
                        .symbol
                        .as_deref()
                        .and_then(|n| self.index(n))
                        .map(|i| self.symbols[i].clone());
                    io.invalid(
                        symbol,
                        format!(
                            "Kraken rejected {what}: {}",
                            envelope.error.unwrap_or_default()
                        ),
                    );
                    self.requests.acknowledge(id);
                }
                ("pong", _) => {}
                (other, _) => io.invalid(None, format!("unexpected method {}", excerpt(other))),
            }
            return;
        }
        match envelope.channel.as_deref() {
            Some("book") => self.on_book(text, io),
            Some("trade") => self.on_trades(text, io),
            Some("ticker") => self.on_tickers(text, io),
            Some("heartbeat" | "status") => {}
            _ => io.invalid(None, format!("unexpected frame: {}", excerpt(text))),
        }
    }

    fn resync(&mut self, symbol: &Symbol, io: &mut Io) {
        if let Some(index) = self.symbols.iter().position(|s| s == symbol)
            && self.books[index].live
        {
            self.resubscribe_book(index, io);
        }
    }

    fn resubscribe(&mut self, symbol: &Symbol, io: &mut Io) {
        if let Some(index) = self.symbols.iter().position(|s| s == symbol) {
            io.unsynced(symbol, "stale");
            self.resubscribe_book(index, io);
        }
    }

    fn on_tick(&mut self, now: Timestamp, io: &mut Io) {
        if let Some(what) = self.requests.overdue(now, self.ack_timeout_us) {
            io.reconnect = Some(format!("no acknowledgement for {what}"));
        }
    }

    fn syncing(&self) -> usize {
        self.books.iter().filter(|b| !b.live).count()
    }
}
