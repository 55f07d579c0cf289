//! One Coinbase connection: subscriptions, per-connection `sequence_num`, level2 books,
//! market trades.

use super::CoinbaseProtocol;
use super::book::parse_level2;
use super::subscription::{Pending, frame};
use super::trade::parse_market_trades;
use crate::FeedEvent;
use crate::conn::{Io, Protocol, Session};
use crate::venue::parse::Text;
use crate::venue::parse::excerpt;
use model::{BookDelta, BookSnapshot, Symbol, Timestamp};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashMap;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    channel: Option<Text<'a>>,
    #[serde(borrow)]
    timestamp: Option<Text<'a>>,
    sequence_num: Option<u64>,
    #[serde(borrow)]
    events: Option<&'a RawValue>,
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    message: Option<String>,
}

#[derive(Debug, Clone, Copy, Default)]
struct ProductBook {
    live: bool,
    /// Synthetic sequence of the messages forwarded for this product (Coinbase has none per
    /// product; continuity is checked on the connection's `sequence_num`).
    seq: u64,
}

#[derive(Debug)]
pub(crate) struct CoinbaseSession {
    ack_timeout_us: i64,
    symbols: Vec<Symbol>,
    ids: Vec<String>,
    by_id: HashMap<String, usize>,
    books: Vec<ProductBook>,
    last_trade: Vec<u64>,
    last_seq: Option<u64>,
    pending: Pending,
}

impl CoinbaseSession {
    pub(crate) fn new(protocol: &CoinbaseProtocol, shard: &[Symbol]) -> Self {
        let ids: Vec<String> = shard.iter().map(Symbol::to_string).collect();
        Self {
            ack_timeout_us: protocol.spec().feed.ack_timeout_secs as i64
                * Timestamp::MICROS_PER_SECOND,
            symbols: shard.to_vec(),
            by_id: ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.clone(), i))
                .collect(),
            ids,
            books: vec![ProductBook::default(); shard.len()],
            last_trade: vec![0; shard.len()],
            last_seq: None,
            pending: Pending::default(),
        }
    }

    /// Unsubscribes and resubscribes `level2` for `indices`: Coinbase answers with snapshots.
    fn resubscribe_books(&mut self, indices: &[usize], io: &mut Io) {
        if indices.is_empty() {
            return;
        }
        let products: Vec<String> = indices.iter().map(|&i| self.ids[i].clone()).collect();
        for &i in indices {
            self.books[i].live = false;
        }
        io.send.push(frame("unsubscribe", "level2", &products));
        io.send.push(frame("subscribe", "level2", &products));
        self.pending.expect("level2", io.recv_ts);
    }

    fn on_level2(&mut self, events: &str, ts: Timestamp, io: &mut Io) {
        let events = match parse_level2(events) {
            Ok(events) => events,
            Err((product, reason)) => {
                let index = product.as_deref().and_then(|p| self.by_id.get(p).copied());
                io.invalid(index.map(|i| self.symbols[i].clone()), reason);
                if let Some(index) = index {
                    self.resubscribe_books(&[index], io);
                }
                return;
            }
        };
        for event in events {
            let Some(&index) = self.by_id.get(&event.product) else {
                io.invalid(
                    None,
                    format!(
                        "level2 for an unsubscribed product {}",
                        excerpt(&event.product)
                    ),
                );
                continue;
            };
            let symbol = self.symbols[index].clone();
            io.touch(&symbol);
            let book = &mut self.books[index];
            if event.snapshot {
                book.live = true;
                book.seq += 1;
                let (mut bids, mut asks) = (event.bids, event.asks);
                bids.retain(|l| !l.size.is_zero());
                asks.retain(|l| !l.size.is_zero());
                io.events.push(FeedEvent::BookSnapshot {
                    symbol,
                    snapshot: BookSnapshot {
                        seq: book.seq,
                        bids,
                        asks,
                        exchange_ts: ts,
                        recv_ts: io.recv_ts,
                        checksum: None,
                    },
                });
            } else if book.live {
                book.seq += 1;
                io.events.push(FeedEvent::BookDelta {
                    symbol,
                    delta: BookDelta {
                        first_seq: book.seq,
                        last_seq: book.seq,
                        bids: event.bids,
                        asks: event.asks,
                        exchange_ts: ts,
                        recv_ts: io.recv_ts,
                        checksum: None,
                    },
                });
            }
        }
    }

    fn on_trades(&mut self, events: &str, io: &mut Io) {
        match parse_market_trades(events, io.recv_ts) {
            Ok(trades) => {
                for (snapshot, product, trade) in trades {
                    let Some(&index) = self.by_id.get(&product) else {
                        continue;
                    };
                    let symbol = self.symbols[index].clone();
                    io.touch(&symbol);
                    // The snapshot is recent history, already published before a reconnect.
                    if snapshot {
                        if let Ok(id) = trade.id.parse::<u64>() {
                            self.last_trade[index] = self.last_trade[index].max(id);
                        }
                        continue;
                    }
                    match trade.id.parse::<u64>() {
                        Ok(id) if id <= self.last_trade[index] => continue,
                        Ok(id) => self.last_trade[index] = id,
                        Err(_) => {}
                    }
                    io.events.push(FeedEvent::Trade { symbol, trade });
                }
            }
            Err(reason) => io.invalid(None, reason),
        }
    }
}

impl CoinbaseSession {
    /// A ticker is not book data: a bad one is counted, never a reason to rebuild the book.
    fn on_tickers(&mut self, events: &str, ts: Timestamp, io: &mut Io) {
        match super::ticker::parse_tickers(events, ts, io.recv_ts) {
            Ok(tickers) => {
                for (product, ticker) in tickers {
                    if let Some(&index) = self.by_id.get(&product) {
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

impl Session for CoinbaseSession {
    fn open(&mut self, io: &mut Io) {
        let ids = self.ids.clone();
        for channel in ["level2", "market_trades", "ticker"] {
            io.send.push(frame("subscribe", channel, &ids));
            self.pending.expect(channel, io.recv_ts);
        }
        io.send.push(frame("subscribe", "heartbeats", &[]));
        self.pending.expect("heartbeats", io.recv_ts);
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
        if envelope.kind.as_deref() == Some("error") {
            let message = envelope.message.unwrap_or_default();
            io.invalid(None, format!("venue error: {}", excerpt(&message)));
            io.reconnect = Some(format!("venue error: {}", excerpt(&message)));
            return;
        }
        let (Some(channel), Some(seq), Some(events)) =
            (envelope.channel, envelope.sequence_num, envelope.events)
        else {
            return io.invalid(None, format!("unexpected frame: {}", excerpt(text)));
        };
        match self.last_seq {
            Some(last) if seq <= last => return, // duplicate or late: already superseded
            Some(last) if seq > last + 1 => {
                io.gaps += 1;
                let live: Vec<usize> = (0..self.books.len())
                    .filter(|&i| self.books[i].live)
                    .collect();
                tracing::warn!(expected = last + 1, got = seq, products = ?live.iter().map(|&i| self.ids[i].as_str()).collect::<Vec<_>>(), "sequence_num gap; resubscribing this connection's level2 products");
                for &i in &live {
                    io.unsynced(&self.symbols[i], "gap");
                }
                self.resubscribe_books(&live, io);
            }
            _ => {}
        }
        self.last_seq = Some(seq);
        let ts = envelope
            .timestamp
            .as_deref()
            .and_then(Timestamp::parse_rfc3339)
            .unwrap_or(io.recv_ts);
        match channel.as_str() {
            "l2_data" => self.on_level2(events.get(), ts, io),
            "market_trades" => self.on_trades(events.get(), io),
            "ticker" => self.on_tickers(events.get(), ts, io),
            "subscriptions" => {
                if let Err(reason) = self.pending.confirm(events.get()) {
                    io.invalid(None, reason);
                }
            }
            "heartbeats" => {}
            other => io.invalid(None, format!("unexpected channel {}", excerpt(other))),
        }
    }

    fn resync(&mut self, symbol: &Symbol, io: &mut Io) {
        if let Some(index) = self.symbols.iter().position(|s| s == symbol)
            && self.books[index].live
        {
            self.resubscribe_books(&[index], io);
        }
    }

    fn resubscribe(&mut self, symbol: &Symbol, io: &mut Io) {
        if let Some(index) = self.symbols.iter().position(|s| s == symbol) {
            io.unsynced(symbol, "stale");
            self.resubscribe_books(&[index], io);
        }
    }

    fn on_tick(&mut self, now: Timestamp, io: &mut Io) {
        if let Some(channel) = self.pending.overdue(now, self.ack_timeout_us) {
            io.reconnect = Some(format!("no subscriptions confirmation for {channel}"));
        }
    }

    fn syncing(&self) -> usize {
        self.books.iter().filter(|b| !b.live).count()
    }
}
