//! One Bybit connection (one category): subscriptions acked by `req_id`, per-symbol update id
//! continuity, trades, the `ping` heartbeat.

use super::depth::DepthView;
use super::liquidation::parse_liquidations;
use super::ticker::{TickerState, TickerUpdate, apply_ticker};
use super::wire::{Frame, build_orderbook, build_trades};
use super::{BybitProtocol, native_symbol};
use crate::conn::{Io, Protocol, Session};
use crate::venue::parse::excerpt;
use crate::{FeedEvent, InvalidCause};
use model::{BookDelta, BookSnapshot, Symbol, Timestamp};
use std::collections::{BTreeMap, HashMap};

/// Topics per subscribe request (Bybit's spot endpoint takes at most 10).
const ARGS_PER_FRAME: usize = 10;

#[derive(Debug, Clone, Copy, Default)]
struct SymbolBook {
    live: bool,
    /// `u` of the last message applied.
    last_u: u64,
    /// Synthetic gap-free sequence of the events forwarded (a snapshot may restart `u`).
    seq: u64,
}

#[derive(Debug)]
pub(crate) struct BybitSession {
    depth: usize,
    ack_timeout_us: i64,
    ping_every_us: i64,
    symbols: Vec<Symbol>,
    natives: Vec<String>,
    /// `orderbook.{depth}.{native}` of each symbol.
    book_topics: Vec<String>,
    by_native: HashMap<String, usize>,
    books: Vec<SymbolBook>,
    /// The prices of each book as Bybit publishes it, to drop levels pushed beyond the depth.
    views: Vec<DepthView>,
    /// Trades: the cross sequence last forwarded and the ids forwarded at it.
    last_trade: Vec<(u64, Vec<String>)>,
    /// The venue tickers' last known figures (linear deltas merge into them).
    tickers: Vec<TickerState>,
    /// `req_id` → (sent, what).
    pending: BTreeMap<u64, (Timestamp, String)>,
    next_req: u64,
    last_ping: Timestamp,
}

impl BybitSession {
    pub(crate) fn new(protocol: &BybitProtocol, shard: &[Symbol]) -> Self {
        let natives: Vec<String> = shard.iter().map(native_symbol).collect();
        let feed = &protocol.spec().feed;
        Self {
            depth: protocol.depth(),
            ack_timeout_us: feed.ack_timeout_secs as i64 * Timestamp::MICROS_PER_SECOND,
            // Bybit asks for a ping every 20 s; sooner when our own silence watchdog is shorter.
            ping_every_us: (feed.silence_secs / 2).clamp(1, 20) as i64
                * Timestamp::MICROS_PER_SECOND,
            symbols: shard.to_vec(),
            by_native: natives
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect(),
            book_topics: natives
                .iter()
                .map(|n| format!("orderbook.{}.{n}", protocol.depth()))
                .collect(),
            natives,
            books: vec![SymbolBook::default(); shard.len()],
            views: vec![DepthView::default(); shard.len()],
            last_trade: vec![(0, Vec::new()); shard.len()],
            tickers: vec![TickerState::default(); shard.len()],
            pending: BTreeMap::new(),
            next_req: 0,
            last_ping: Timestamp(0),
        }
    }

    fn book_topic(&self, index: usize) -> String {
        self.book_topics[index].clone()
    }

    fn request(&mut self, op: &str, topics: &[String], io: &mut Io) {
        for chunk in topics.chunks(ARGS_PER_FRAME) {
            self.next_req += 1;
            let id = self.next_req;
            self.pending
                .insert(id, (io.recv_ts, format!("{op} {}", chunk.join(","))));
            io.send.push(
                serde_json::json!({"op": op, "args": chunk, "req_id": id.to_string()}).to_string(),
            );
        }
    }

    /// Unsubscribes and resubscribes `index`'s book: Bybit answers with a fresh snapshot.
    fn resubscribe_book(&mut self, index: usize, io: &mut Io) {
        self.books[index].live = false;
        let topic = [self.book_topic(index)];
        self.request("unsubscribe", &topic, io);
        self.request("subscribe", &topic, io);
    }

    fn on_orderbook(&mut self, index: usize, frame: Frame, io: &mut Io) {
        let symbol = self.symbols[index].clone();
        io.touch(&symbol);
        let mut update = match build_orderbook(frame) {
            Ok(update) => update,
            Err(reason) => {
                io.invalid(Some(symbol), reason);
                self.resubscribe_book(index, io);
                return;
            }
        };
        let book = &mut self.books[index];
        if update.snapshot {
            // The subscription's first message, or Bybit resetting the book (after a service
            // restart `u` is 1): it replaces the book either way.
            self.views[index].load(self.depth, &mut update.bids, &mut update.asks);
            book.live = true;
            book.last_u = update.u;
            book.seq += 1;
            io.events.push(FeedEvent::BookSnapshot {
                symbol,
                snapshot: BookSnapshot {
                    seq: book.seq,
                    bids: update.bids,
                    asks: update.asks,
                    exchange_ts: update.ts,
                    recv_ts: io.recv_ts,
                    checksum: None,
                },
            });
            return;
        }
        if !book.live || update.u <= book.last_u {
            return; // before the new snapshot, or a duplicate / late message already covered
        }
        if update.u != book.last_u + 1 {
            let reason = format!("update id gap: u {} after {}", update.u, book.last_u);
            tracing::warn!(%symbol, %reason, "Bybit orderbook gap; resubscribing this symbol");
            io.fault(Some(symbol), InvalidCause::Gap, reason);
            self.resubscribe_book(index, io);
            return;
        }
        book.last_u = update.u;
        book.seq += 1;
        // Levels the delta pushed out of Bybit's top `depth` leave our book too.
        self.views[index].apply(self.depth, &mut update.bids, &mut update.asks);
        let book = &self.books[index];
        io.events.push(FeedEvent::BookDelta {
            symbol,
            delta: BookDelta {
                first_seq: book.seq,
                last_seq: book.seq,
                bids: update.bids,
                asks: update.asks,
                exchange_ts: update.ts,
                recv_ts: io.recv_ts,
                checksum: None,
            },
        });
    }

    fn on_trades(&mut self, index: usize, frame: Frame, io: &mut Io) {
        let symbol = self.symbols[index].clone();
        io.touch(&symbol);
        match build_trades(frame.data, io.recv_ts) {
            Ok(trades) => {
                for (seq, trade) in trades {
                    let (last_seq, ids) = &mut self.last_trade[index];
                    if seq < *last_seq || (seq == *last_seq && ids.contains(&trade.id)) {
                        continue; // already forwarded
                    }
                    if seq > *last_seq {
                        *last_seq = seq;
                        ids.clear();
                    }
                    ids.push(trade.id.clone());
                    io.events.push(FeedEvent::Trade {
                        symbol: symbol.clone(),
                        trade,
                    });
                }
            }
            Err(reason) => io.invalid(None, reason),
        }
    }

    /// A ticker is not book data: a bad one is counted, never a reason to rebuild the book.
    fn on_ticker(&mut self, index: usize, frame: &Frame, io: &mut Io) {
        let data = frame.data.as_ref().and_then(|d| d.raw()).unwrap_or("{}");
        let state = &mut self.tickers[index];
        match apply_ticker(state, frame.kind.as_deref(), frame.ts, data, io.recv_ts) {
            Ok(Some(update)) if update.symbol != self.natives[index] => io.invalid(
                None,
                format!(
                    "tickers: symbol {} on another topic",
                    excerpt(&update.symbol)
                ),
            ),
            Ok(Some(TickerUpdate {
                ticker,
                funding,
                mark,
                oi,
                ..
            })) => {
                let symbol = &self.symbols[index];
                let recv_ts = io.recv_ts;
                io.events.push(FeedEvent::Ticker {
                    symbol: symbol.clone(),
                    ticker,
                });
                if let Some(funding) = funding {
                    io.events.push(FeedEvent::Funding {
                        symbol: symbol.clone(),
                        funding,
                        recv_ts,
                    });
                }
                if let Some(mark) = mark {
                    io.events.push(FeedEvent::Mark {
                        symbol: symbol.clone(),
                        mark,
                        recv_ts,
                    });
                }
                if let Some(oi) = oi {
                    io.events.push(FeedEvent::OpenInterest {
                        symbol: symbol.clone(),
                        oi,
                        recv_ts,
                    });
                }
            }
            Ok(None) => {}
            Err(reason) => io.invalid(None, reason),
        }
    }

    /// Liquidations are not book data either: a bad push is counted, the book untouched.
    fn on_liquidations(&mut self, index: usize, frame: &Frame, io: &mut Io) {
        let data = frame.data.as_ref().and_then(|d| d.raw()).unwrap_or("[]");
        match parse_liquidations(data) {
            Ok(list) => {
                let recv_ts = io.recv_ts;
                for liquidation in list {
                    io.events.push(FeedEvent::Liquidation {
                        symbol: self.symbols[index].clone(),
                        liquidation,
                        recv_ts,
                    });
                }
            }
            Err(reason) => io.invalid(None, reason),
        }
    }

    fn on_answer(&mut self, frame: &Frame, text: &str, io: &mut Io) {
        match frame.op.as_deref() {
            Some("subscribe" | "unsubscribe") => {
                let id = frame.req_id.as_deref().and_then(|r| r.parse::<u64>().ok());
                let what = id.and_then(|id| self.pending.remove(&id)).map(|(_, w)| w);
                if frame.success != Some(true) {
                    let msg = excerpt(frame.ret_msg.as_deref().unwrap_or_default());
                    let what = what.unwrap_or_else(|| "a request".into());
                    io.invalid(None, format!("Bybit rejected {what}: {msg}"));
                    io.reconnect = Some(format!("venue rejected a request ({msg})"));
                }
            }
            Some("ping" | "pong") => {}
            _ => io.invalid(None, format!("unexpected frame: {}", excerpt(text))),
        }
    }
}

impl Session for BybitSession {
    fn open(&mut self, io: &mut Io) {
        self.last_ping = io.recv_ts;
        let topics: Vec<String> = (0..self.symbols.len())
            .flat_map(|i| {
                let native = &self.natives[i];
                let liquidations = self.symbols[i]
                    .is_perpetual()
                    .then(|| format!("allLiquidation.{native}"));
                [
                    self.book_topic(i),
                    format!("publicTrade.{native}"),
                    format!("tickers.{native}"),
                ]
                .into_iter()
                .chain(liquidations)
            })
            .collect();
        self.request("subscribe", &topics, io);
    }

    fn on_text(&mut self, text: &str, io: &mut Io) {
        let frame = match Frame::parse(text) {
            Ok(frame) => frame,
            Err(error) => {
                return io.invalid(
                    None,
                    format!("unparseable frame ({error}): {}", excerpt(text)),
                );
            }
        };
        let Some(topic) = frame.topic.as_deref() else {
            return self.on_answer(&frame, text, io);
        };
        let (kind, native) = match topic.split_once('.') {
            Some(("orderbook", rest)) => ("orderbook", rest.split_once('.').map_or("", |(_, s)| s)),
            Some(("publicTrade", s)) => ("publicTrade", s),
            Some(("tickers", s)) => ("tickers", s),
            Some(("allLiquidation", s)) => ("allLiquidation", s),
            _ => ("", ""),
        };
        let index = self.by_native.get(native).copied();
        let (index, kind) = match (index, kind) {
            (Some(index), "orderbook") if topic == self.book_topics[index] => (index, kind),
            (Some(index), "publicTrade" | "tickers") => (index, kind),
            (Some(index), "allLiquidation") if self.symbols[index].is_perpetual() => (index, kind),
            _ => {
                tracing::debug!(topic = %excerpt(topic), "topic not subscribed; ignored");
                io.ignored += 1;
                return;
            }
        };
        match kind {
            "orderbook" => self.on_orderbook(index, frame, io),
            "publicTrade" => self.on_trades(index, frame, io),
            "tickers" => self.on_ticker(index, &frame, io),
            _ => self.on_liquidations(index, &frame, io),
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
        if let Some((_, what)) = self
            .pending
            .values()
            .find(|(sent, _)| now.micros_since(*sent) > self.ack_timeout_us)
        {
            io.reconnect = Some(format!("no acknowledgement for {what}"));
            return;
        }
        if now.micros_since(self.last_ping) >= self.ping_every_us {
            self.last_ping = now;
            io.send.push(r#"{"op":"ping","req_id":"ping"}"#.into());
        }
    }

    fn syncing(&self) -> usize {
        self.books.iter().filter(|b| !b.live).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::VenueSpec;

    fn session() -> BybitSession {
        let spec = VenueSpec::new(vec![Symbol::new("BTC-USDT").unwrap()]);
        let protocol = BybitProtocol::new(spec).unwrap();
        BybitSession::new(&protocol, &protocol.spec().symbols.clone())
    }

    fn book(kind: &str, u: u64) -> String {
        format!(
            r#"{{"topic":"orderbook.50.BTCUSDT","type":"{kind}","ts":1672304484978,"data":{{"s":"BTCUSDT","b":[["100.0","1"]],"a":[["101.0","1"]],"u":{u},"seq":7961638724}},"cts":1672304484976}}"#
        )
    }

    fn feed(s: &mut BybitSession, text: &str) -> Io {
        let mut io = Io::new(Timestamp(1_000_000));
        s.on_text(text, &mut io);
        io
    }

    fn kinds(io: &Io) -> Vec<&'static str> {
        io.events
            .iter()
            .map(|e| match e {
                FeedEvent::BookSnapshot { .. } => "snapshot",
                FeedEvent::BookDelta { .. } => "delta",
                FeedEvent::Trade { .. } => "trade",
                FeedEvent::Invalid { cause, .. } => cause.as_str(),
                _ => "other",
            })
            .collect()
    }

    /// One line per case, after a snapshot at u = 10: the update id rule, and that a new
    /// snapshot (Bybit's restart sends u = 1) resets.
    #[test]
    fn update_ids_must_be_consecutive_and_snapshots_reset() {
        let cases: &[(&str, &str, u64, &[&str], bool)] = &[
            ("next", "delta", 11, &["delta"], false),
            ("duplicate", "delta", 10, &[], false),
            ("late", "delta", 9, &[], false),
            ("gap", "delta", 12, &["gap"], true),
            (
                "snapshot again mid-stream",
                "snapshot",
                57,
                &["snapshot"],
                false,
            ),
            ("service restart", "snapshot", 1, &["snapshot"], false),
        ];
        for (name, kind, u, expected, resubscribed) in cases {
            let mut s = session();
            feed(&mut s, &book("snapshot", 10));
            let io = feed(&mut s, &book(kind, *u));
            assert_eq!(kinds(&io), *expected, "{name}");
            assert_eq!(
                io.send.iter().any(|f| f.contains("unsubscribe")),
                *resubscribed,
                "{name}"
            );
        }
        let mut s = session();
        feed(&mut s, &book("snapshot", 10));
        feed(&mut s, &book("snapshot", 1));
        assert_eq!(
            kinds(&feed(&mut s, &book("delta", 2))),
            ["delta"],
            "continues from the restart"
        );
    }

    /// Regression: a delta that pushes a level out of the subscribed depth forwards its
    /// removal, so the gateway's book keeps Bybit's `depth` levels, not more.
    #[test]
    fn a_delta_pushing_levels_beyond_the_depth_removes_them() {
        let mut spec = VenueSpec::new(vec![Symbol::new("BTC-USDT").unwrap()]);
        spec.feed.depth = 1;
        let protocol = BybitProtocol::new(spec).unwrap();
        let mut s = BybitSession::new(&protocol, &protocol.spec().symbols.clone());
        let frame = |kind: &str, u: u64, bids: &str, asks: &str| {
            format!(
                r#"{{"topic":"orderbook.1.BTCUSDT","type":"{kind}","ts":1,"data":{{"s":"BTCUSDT","b":{bids},"a":{asks},"u":{u}}}}}"#
            )
        };
        feed(
            &mut s,
            &frame("snapshot", 10, r#"[["100.0","1"]]"#, r#"[["101.0","1"]]"#),
        );
        let io = feed(
            &mut s,
            &frame("delta", 11, r#"[["100.5","2"]]"#, r#"[["100.9","3"]]"#),
        );
        let [FeedEvent::BookDelta { delta, .. }] = io.events.as_slice() else {
            panic!("{:?}", io.events)
        };
        let show = |l: &[model::Level]| -> Vec<String> {
            l.iter()
                .map(|l| format!("{}:{}", l.price, l.size))
                .collect()
        };
        assert_eq!(show(&delta.bids), ["100.5:2", "100.0:0"]);
        assert_eq!(show(&delta.asks), ["100.9:3", "101.0:0"]);
        let io = feed(
            &mut s,
            &frame("delta", 12, r#"[["100.5","0"],["99.0","1"]]"#, "[]"),
        );
        let [FeedEvent::BookDelta { delta, .. }] = io.events.as_slice() else {
            panic!("{:?}", io.events)
        };
        assert_eq!(
            show(&delta.bids),
            ["100.5:0", "99.0:1"],
            "room for 99 again"
        );
    }

    #[test]
    fn acks_pings_trades_and_unsubscribed_topics() {
        let mut s = session();
        let mut io = Io::new(Timestamp(0));
        s.open(&mut io);
        assert_eq!(
            io.send,
            [
                r#"{"args":["orderbook.50.BTCUSDT","publicTrade.BTCUSDT","tickers.BTCUSDT"],"op":"subscribe","req_id":"1"}"#
            ]
        );
        let mut io = Io::new(Timestamp(0));
        s.on_tick(Timestamp(11 * Timestamp::MICROS_PER_SECOND), &mut io);
        assert!(io.reconnect.unwrap().contains("no acknowledgement"));
        let ack =
            include_str!("../../../test_data/bybit/ws_subscribe_ack.json").replace("10001", "1");
        assert!(feed(&mut s, &ack).events.is_empty());
        let mut io = Io::new(Timestamp(0));
        s.on_tick(Timestamp(16 * Timestamp::MICROS_PER_SECOND), &mut io);
        assert!(io.reconnect.is_none());
        assert_eq!(
            io.send,
            [r#"{"op":"ping","req_id":"ping"}"#],
            "every 15 s by default"
        );
        assert!(
            feed(
                &mut s,
                include_str!("../../../test_data/bybit/ws_pong_update.json")
            )
            .events
            .is_empty()
        );
        let io = feed(
            &mut s,
            include_str!("../../../test_data/bybit/ws_subscribe_error.json"),
        );
        assert_eq!(kinds(&io), ["invalid_message"]);
        assert!(io.reconnect.unwrap().contains("handler not found"));
        let trade = include_str!("../../../test_data/bybit/ws_publictrade_update.json");
        assert_eq!(kinds(&feed(&mut s, trade)), ["trade"]);
        assert!(feed(&mut s, trade).events.is_empty(), "duplicate dropped");
        let other = trade.replace("20f43950", "30f43950");
        assert_eq!(
            kinds(&feed(&mut s, &other)),
            ["trade"],
            "same seq, another id"
        );
        let io = feed(&mut s, &trade.replace("BTCUSDT", "ETHUSDT"));
        assert!(io.events.is_empty() && io.ignored == 1);
        let io = feed(
            &mut s,
            &book("snapshot", 1).replace("orderbook.50", "orderbook.200"),
        );
        assert!(
            io.events.is_empty() && io.ignored == 1,
            "another depth was not subscribed"
        );
        assert_eq!(kinds(&feed(&mut s, "{x")), ["invalid_message"]);
    }
}
