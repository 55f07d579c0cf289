//! One Hyperliquid connection: subscriptions, each coin's last forwarded book (every `l2Book`
//! snapshot becomes the delta from it), trades, the `ping` keep-alive.

use super::ctx::{CtxFrame, CtxState, apply_ctx};
use super::fast::{self, LastLevels};
use super::wire::{Frame, build_l2book, build_trades};
use super::{HyperliquidProtocol, native_symbol};
use crate::FeedEvent;
use crate::conn::{Io, Protocol, Session};
use crate::venue::parse::excerpt;
use model::{BookDelta, BookSnapshot, Decimal, Level, Symbol, Timestamp};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// Trade ids remembered per coin to drop duplicates (Hyperliquid's `tid`s are not ordered).
const RECENT_TIDS: usize = 1024;

/// The last [`RECENT_TIDS`] trade ids of a coin: a set to look them up, a queue to forget the
/// oldest.
#[derive(Debug, Clone, Default)]
struct RecentIds {
    order: VecDeque<u64>,
    seen: HashSet<u64>,
}

impl RecentIds {
    /// Remembers `id`; `false` when it was already remembered (a duplicate).
    fn insert(&mut self, id: u64) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        if self.order.len() == RECENT_TIDS
            && let Some(oldest) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        self.order.push_back(id);
        true
    }
}

#[derive(Debug, Default)]
struct CoinBook {
    /// The last book forwarded is the subscribers' book (a snapshot was sent since the last
    /// reset).
    live: bool,
    time: i64,
    bids: Vec<Level>,
    asks: Vec<Level>,
    seq: u64,
    /// The last canonical `levels` text of the coin, for the fast path.
    raw: LastLevels,
}

#[derive(Deserialize)]
struct Ack {
    subscription: AckSubscription,
}

#[derive(Deserialize)]
struct AckSubscription {
    #[serde(rename = "type")]
    kind: String,
    coin: Option<String>,
}

#[derive(Debug)]
pub(crate) struct HyperliquidSession {
    ack_timeout_us: i64,
    ping_every_us: i64,
    symbols: Vec<Symbol>,
    coins: Vec<String>,
    by_coin: HashMap<String, usize>,
    books: Vec<CoinBook>,
    recent_tids: Vec<RecentIds>,
    ctx: Vec<CtxState>,
    /// `(type, coin)` → when the subscription was sent.
    pending: BTreeMap<(String, String), Timestamp>,
    last_rx: Timestamp,
    pinged: bool,
}

/// What changed from `old` to `new` (one side, both best first, `ahead(a, b)` when price `a`
/// comes before `b` on this side): new or resized levels, and the prices that left as size-0
/// levels. One merge pass over the two sorted lists.
fn side_diff(old: &[Level], new: &[Level], ahead: fn(&Decimal, &Decimal) -> bool) -> Vec<Level> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(o), Some(n)) if o.price == n.price => {
                if o.size != n.size {
                    out.push(*n);
                }
                i += 1;
                j += 1;
            }
            (Some(o), Some(n)) if ahead(&o.price, &n.price) => {
                out.push(Level::new(o.price, Decimal::ZERO));
                i += 1;
            }
            (Some(_), Some(n)) | (None, Some(n)) => {
                out.push(*n);
                j += 1;
            }
            (Some(o), None) => {
                out.push(Level::new(o.price, Decimal::ZERO));
                i += 1;
            }
            (None, None) => break,
        }
    }
    out
}

impl HyperliquidSession {
    pub(crate) fn new(protocol: &HyperliquidProtocol, shard: &[Symbol]) -> Self {
        let coins: Vec<String> = shard.iter().map(native_symbol).collect();
        let feed = &protocol.spec().feed;
        Self {
            ack_timeout_us: feed.ack_timeout_secs as i64 * Timestamp::MICROS_PER_SECOND,
            // Hyperliquid closes a connection silent for 60 s.
            ping_every_us: (feed.silence_secs / 2).clamp(1, 30) as i64
                * Timestamp::MICROS_PER_SECOND,
            symbols: shard.to_vec(),
            by_coin: coins
                .iter()
                .enumerate()
                .map(|(i, c)| (c.clone(), i))
                .collect(),
            coins,
            books: shard.iter().map(|_| CoinBook::default()).collect(),
            recent_tids: vec![RecentIds::default(); shard.len()],
            ctx: vec![CtxState::default(); shard.len()],
            pending: BTreeMap::new(),
            last_rx: Timestamp(0),
            pinged: false,
        }
    }

    fn subscription(&mut self, method: &str, kind: &str, index: usize, io: &mut Io) {
        let coin = &self.coins[index];
        if method == "subscribe" {
            self.pending.insert((kind.into(), coin.clone()), io.recv_ts);
        }
        io.send.push(
            serde_json::json!({"method": method, "subscription": {"type": kind, "coin": coin}})
                .to_string(),
        );
    }

    fn on_book(
        &mut self,
        index: usize,
        time: i64,
        bids: Vec<Level>,
        asks: Vec<Level>,
        io: &mut Io,
    ) {
        let symbol = self.symbols[index].clone();
        io.touch(&symbol);
        let state = &mut self.books[index];
        if state.live && time < state.time {
            return; // an older book than the one forwarded: out of order, superseded
        }
        state.seq += 1;
        if !state.live {
            state.live = true;
            io.events.push(FeedEvent::BookSnapshot {
                symbol,
                snapshot: BookSnapshot {
                    seq: state.seq,
                    bids: bids.clone(),
                    asks: asks.clone(),
                    exchange_ts: Timestamp::from_millis(time.max(0)),
                    recv_ts: io.recv_ts,
                    checksum: None,
                },
            });
        } else {
            let bid_changes = side_diff(&state.bids, &bids, |a, b| a > b);
            let ask_changes = side_diff(&state.asks, &asks, |a, b| a < b);
            if bid_changes.is_empty() && ask_changes.is_empty() {
                state.seq -= 1; // the same book again: nothing to forward
                state.time = time;
                return;
            }
            io.events.push(FeedEvent::BookDelta {
                symbol,
                delta: BookDelta {
                    first_seq: state.seq,
                    last_seq: state.seq,
                    bids: bid_changes,
                    asks: ask_changes,
                    exchange_ts: Timestamp::from_millis(time.max(0)),
                    recv_ts: io.recv_ts,
                    checksum: None,
                },
            });
        }
        state.time = time;
        state.bids = bids;
        state.asks = asks;
    }

    fn on_trades(&mut self, data: &str, io: &mut Io) {
        match build_trades(data, io.recv_ts) {
            Ok(trades) => {
                for (coin, tid, trade) in trades {
                    let Some(&index) = self.by_coin.get(&coin) else {
                        io.ignored += 1;
                        continue;
                    };
                    let symbol = self.symbols[index].clone();
                    io.touch(&symbol);
                    if !self.recent_tids[index].insert(tid) {
                        continue;
                    }
                    io.events.push(FeedEvent::Trade { symbol, trade });
                }
            }
            Err(reason) => io.invalid(None, reason),
        }
    }

    /// One parse per frame: the typed frame gives the coin to route by and the figures.
    fn on_ctx(&mut self, data: &str, io: &mut Io) {
        let frame = match CtxFrame::parse(data) {
            Ok(frame) => frame,
            Err(reason) => return io.invalid(None, reason),
        };
        let Some(&index) = self.by_coin.get(frame.coin()) else {
            return io.invalid(
                None,
                format!("activeAssetCtx: unknown coin: {}", excerpt(data)),
            );
        };
        let symbol = self.symbols[index].clone();
        let recv_ts = io.recv_ts;
        match apply_ctx(&mut self.ctx[index], &frame, recv_ts) {
            Ok(u) => {
                io.touch(&symbol);
                if let Some(ticker) = u.ticker {
                    io.events.push(FeedEvent::Ticker {
                        symbol: symbol.clone(),
                        ticker,
                    });
                }
                if let Some(funding) = u.funding {
                    io.events.push(FeedEvent::Funding {
                        symbol: symbol.clone(),
                        funding,
                        recv_ts,
                    });
                }
                if let Some(mark) = u.mark {
                    io.events.push(FeedEvent::Mark {
                        symbol: symbol.clone(),
                        mark,
                        recv_ts,
                    });
                }
                if let Some(oi) = u.oi {
                    io.events.push(FeedEvent::OpenInterest {
                        symbol,
                        oi,
                        recv_ts,
                    });
                }
            }
            // Not book data: counted, never a reason to rebuild the coin's book.
            Err(reason) => io.invalid(None, reason),
        }
    }

    fn index_of(&self, symbol: &Symbol) -> Option<usize> {
        self.symbols.iter().position(|s| s == symbol)
    }
}

impl Session for HyperliquidSession {
    fn open(&mut self, io: &mut Io) {
        self.last_rx = io.recv_ts;
        for index in 0..self.symbols.len() {
            self.subscription("subscribe", "l2Book", index, io);
            self.subscription("subscribe", "trades", index, io);
            self.subscription("subscribe", "activeAssetCtx", index, io);
        }
    }

    fn on_text(&mut self, text: &str, io: &mut Io) {
        self.last_rx = io.recv_ts;
        self.pinged = false;
        // Most frames are books of subscribed coins in the venue's own form: parse only the
        // levels that changed since the coin's last book (`fast`). Anything else, including
        // every bad book, takes the general path below, which names the error.
        if let Some((coin, time, levels)) = fast::split(text)
            && let Some(&index) = self.by_coin.get(coin)
            && let Some((bids, asks)) = fast::parse(levels, &mut self.books[index].raw)
        {
            return self.on_book(index, time, bids, asks, io);
        }
        let frame: Frame = match serde_json::from_str(text) {
            Ok(frame) => frame,
            Err(error) => {
                return io.invalid(
                    None,
                    format!("unparseable frame ({error}): {}", excerpt(text)),
                );
            }
        };
        let data = frame.data.map_or("null", |d| d.get());
        match frame.channel.as_str() {
            "l2Book" => match build_l2book(data) {
                Ok(book) => match self.by_coin.get(&book.coin) {
                    Some(&index) => self.on_book(index, book.time, book.bids, book.asks, io),
                    None => {
                        tracing::debug!(coin = %excerpt(&book.coin), "l2Book for a coin not subscribed; ignored");
                        io.ignored += 1;
                    }
                },
                Err((coin, reason)) => {
                    let index = coin.and_then(|c| self.by_coin.get(&c).copied());
                    if let Some(index) = index {
                        // The next snapshot rebuilds it: every l2Book is a whole book.
                        self.books[index].live = false;
                    }
                    io.invalid(index.map(|i| self.symbols[i].clone()), reason);
                }
            },
            "trades" => self.on_trades(data, io),
            "activeAssetCtx" => self.on_ctx(data, io),
            "subscriptionResponse" => match serde_json::from_str::<Ack>(data) {
                Ok(ack) => {
                    let key = (
                        ack.subscription.kind,
                        ack.subscription.coin.unwrap_or_default(),
                    );
                    self.pending.remove(&key);
                }
                Err(error) => io.invalid(None, format!("subscriptionResponse: {error}")),
            },
            "pong" => {}
            "error" => {
                let message = excerpt(data);
                io.invalid(None, format!("Hyperliquid error: {message}"));
                io.reconnect = Some(format!("venue rejected a request ({message})"));
            }
            other => {
                tracing::debug!(channel = %excerpt(other), "channel not subscribed; ignored");
                io.ignored += 1;
            }
        }
    }

    /// Every `l2Book` is a whole book: the next one is forwarded as a snapshot.
    fn resync(&mut self, symbol: &Symbol, _io: &mut Io) {
        if let Some(index) = self.index_of(symbol) {
            self.books[index].live = false;
        }
    }

    fn resubscribe(&mut self, symbol: &Symbol, io: &mut Io) {
        if let Some(index) = self.index_of(symbol) {
            io.unsynced(symbol, "stale");
            self.books[index].live = false;
            self.subscription("unsubscribe", "l2Book", index, io);
            self.subscription("subscribe", "l2Book", index, io);
        }
    }

    fn on_tick(&mut self, now: Timestamp, io: &mut Io) {
        if let Some(((kind, coin), _)) = self
            .pending
            .iter()
            .find(|(_, sent)| now.micros_since(**sent) > self.ack_timeout_us)
        {
            io.reconnect = Some(format!("no acknowledgement for {kind} {coin}"));
            return;
        }
        if !self.pinged && now.micros_since(self.last_rx) >= self.ping_every_us {
            io.send.push(r#"{"method":"ping"}"#.into());
            self.pinged = true;
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

    fn lv(p: &str, s: &str) -> Level {
        Level::new(
            model::parse_decimal(p).unwrap(),
            model::parse_decimal(s).unwrap(),
        )
    }

    fn session() -> HyperliquidSession {
        let spec = VenueSpec::new(vec![Symbol::new("BTC-USDC-PERP").unwrap()]);
        let protocol = HyperliquidProtocol::new(spec).unwrap();
        HyperliquidSession::new(&protocol, &protocol.spec().symbols.clone())
    }

    fn book(time: i64, bids: &[(&str, &str)], asks: &[(&str, &str)]) -> String {
        let side = |l: &[(&str, &str)]| {
            l.iter()
                .map(|(p, s)| format!(r#"{{"px":"{p}","sz":"{s}","n":1}}"#))
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            r#"{{"channel":"l2Book","data":{{"coin":"BTC","time":{time},"levels":[[{}],[{}]]}}}}"#,
            side(bids),
            side(asks)
        )
    }

    fn feed(s: &mut HyperliquidSession, text: &str) -> Io {
        let mut io = Io::new(Timestamp(1));
        s.on_text(text, &mut io);
        io
    }

    #[test]
    fn snapshots_become_deltas_with_removals() {
        let mut s = session();
        let io = feed(
            &mut s,
            &book(10, &[("100", "1"), ("99", "2")], &[("101", "1")]),
        );
        assert!(
            matches!(io.events[0], FeedEvent::BookSnapshot { ref snapshot, .. } if snapshot.seq == 1)
        );
        // 100 resized, 99 left the top, 98 entered; 101 unchanged, 102 entered.
        let io = feed(
            &mut s,
            &book(
                11,
                &[("100", "3"), ("98", "1")],
                &[("101", "1"), ("102", "5")],
            ),
        );
        let FeedEvent::BookDelta { delta, .. } = &io.events[0] else {
            panic!("{:?}", io.events)
        };
        assert_eq!((delta.first_seq, delta.last_seq), (2, 2));
        assert_eq!(delta.bids, [lv("100", "3"), lv("99", "0"), lv("98", "1")]);
        assert_eq!(delta.asks, [lv("102", "5")]);
        assert!(
            feed(
                &mut s,
                &book(
                    12,
                    &[("100", "3"), ("98", "1")],
                    &[("101", "1"), ("102", "5")]
                )
            )
            .events
            .is_empty(),
            "unchanged"
        );
        assert!(
            feed(&mut s, &book(5, &[("1", "1")], &[("2", "1")]))
                .events
                .is_empty(),
            "older: dropped"
        );
        let io = feed(&mut s, &book(13, &[("100", "3")], &[("101", "1")]));
        let FeedEvent::BookDelta { delta, .. } = &io.events[0] else {
            panic!()
        };
        assert_eq!(delta.first_seq, 3, "still gap-free");
        // A bad message marks the book; the next one is a snapshot again.
        let io = feed(&mut s, &book(14, &[("100", "-3")], &[]));
        assert!(matches!(
            &io.events[0],
            FeedEvent::Invalid {
                symbol: Some(_),
                ..
            }
        ));
        assert_eq!(s.syncing(), 1);
        let io = feed(&mut s, &book(15, &[("100", "3")], &[("101", "1")]));
        assert!(matches!(io.events[0], FeedEvent::BookSnapshot { .. }));
        s.resync(
            &Symbol::new("BTC-USDC-PERP").unwrap(),
            &mut Io::new(Timestamp(1)),
        );
        assert!(matches!(
            feed(&mut s, &book(16, &[("100", "3")], &[])).events[0],
            FeedEvent::BookSnapshot { .. }
        ));
    }

    #[test]
    fn recent_trade_ids_forget_the_oldest_past_the_window() {
        let mut recent = RecentIds::default();
        for id in 0..RECENT_TIDS as u64 {
            assert!(recent.insert(id));
        }
        assert!(!recent.insert(0) && !recent.insert(RECENT_TIDS as u64 - 1));
        assert!(
            recent.insert(RECENT_TIDS as u64),
            "a new id pushes out id 0"
        );
        assert!(recent.insert(0), "0 was forgotten");
        assert!(!recent.insert(2), "2 is still remembered");
        assert_eq!(
            (recent.order.len(), recent.seen.len()),
            (RECENT_TIDS, RECENT_TIDS)
        );
    }

    #[test]
    fn subscriptions_acks_pings_trades() {
        let mut s = session();
        let mut io = Io::new(Timestamp(0));
        s.open(&mut io);
        assert_eq!(
            io.send[0],
            r#"{"method":"subscribe","subscription":{"coin":"BTC","type":"l2Book"}}"#
        );
        assert_eq!(io.send.len(), 3);
        assert_eq!(
            io.send[2],
            r#"{"method":"subscribe","subscription":{"coin":"BTC","type":"activeAssetCtx"}}"#
        );
        let mut io = Io::new(Timestamp(0));
        s.on_tick(Timestamp(11 * Timestamp::MICROS_PER_SECOND), &mut io);
        assert!(io.reconnect.unwrap().contains("no acknowledgement"));
        feed(
            &mut s,
            include_str!("../../../test_data/hyperliquid/ws_subscription_ack.json"),
        );
        feed(
            &mut s,
            &include_str!("../../../test_data/hyperliquid/ws_subscription_ack.json")
                .replace("l2Book", "trades"),
        );
        feed(
            &mut s,
            &include_str!("../../../test_data/hyperliquid/ws_subscription_ack.json")
                .replace("l2Book", "activeAssetCtx"),
        );
        let ctx = include_str!("../../../test_data/hyperliquid/ws_active_asset_ctx.json");
        let events = feed(&mut s, ctx).events;
        assert!(
            matches!(
                events[..],
                [
                    FeedEvent::Ticker { .. },
                    FeedEvent::Funding { .. },
                    FeedEvent::Mark { .. },
                    FeedEvent::OpenInterest { .. }
                ]
            ),
            "{events:?}"
        );
        assert!(feed(&mut s, ctx).events.is_empty(), "unchanged: nothing");
        let bad = feed(&mut s, &ctx.replace("\"688.11\"", "\"x\"")).events;
        assert!(
            matches!(bad[..], [FeedEvent::Invalid { symbol: None, .. }]),
            "a bad context never rebuilds the book: {bad:?}"
        );
        let mut io = Io::new(Timestamp(0));
        s.on_tick(
            Timestamp(16 * Timestamp::MICROS_PER_SECOND + 1_000_000),
            &mut io,
        );
        assert!(io.reconnect.is_none());
        assert_eq!(io.send, [r#"{"method":"ping"}"#]);
        assert!(
            feed(
                &mut s,
                include_str!("../../../test_data/hyperliquid/ws_pong_update.json")
            )
            .events
            .is_empty()
        );
        let trades = include_str!("../../../test_data/hyperliquid/ws_trades_update.json");
        assert_eq!(feed(&mut s, trades).events.len(), 1);
        assert!(
            feed(&mut s, trades).events.is_empty(),
            "duplicate tid dropped"
        );
        let io = feed(&mut s, &trades.replace("\"BTC\"", "\"ETH\""));
        assert!(io.events.is_empty() && io.ignored == 1);
        let io = feed(
            &mut s,
            include_str!("../../../test_data/hyperliquid/ws_error_update.json"),
        );
        assert!(io.reconnect.unwrap().contains("Invalid subscription"));
        assert!(matches!(
            feed(&mut s, "{").events[0],
            FeedEvent::Invalid { symbol: None, .. }
        ));
    }
}
