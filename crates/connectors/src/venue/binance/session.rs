//! One Binance connection: subscriptions, per-symbol book sync, trades, rotation handover.

use super::book::{self, Alignment, BookSync, DepthSnapshot, DepthUpdate, MAX_BUFFERED};
use super::fast::{self, Frame};
use super::subscription::{Acks, STREAMS_PER_FRAME, streams};
use super::ticker::parse_ticker;
use super::trade::{build_trade, parse_trade};
use super::{BinanceProtocol, DEFAULT_REST_URL, native_symbol};
use crate::FeedEvent;
use crate::conn::{Io, Protocol, RestRequest, Session};
use crate::venue::parse::excerpt;
use crate::venue::parse::{Levels, Text};
use model::{Symbol, Timestamp, Trade};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::{HashMap, VecDeque};

/// Delay before fetching a snapshot again after a failure or a too-old answer.
const RETRY_US: i64 = 1_000_000;

#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(borrow)]
    stream: Option<Text<'a>>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    id: Option<u64>,
    code: Option<i64>,
    msg: Option<String>,
    #[serde(borrow)]
    e: Option<Text<'a>>,
}

/// A combined-stream market data message, every field of both event kinds, for one pass
/// (also what the scanner's tests compare it with).
#[derive(Deserialize)]
pub(super) struct Combined<'a> {
    #[serde(borrow)]
    pub(super) stream: Text<'a>,
    #[serde(borrow)]
    pub(super) data: MarketData<'a>,
}

#[derive(Deserialize)]
pub(super) struct MarketData<'a> {
    #[serde(borrow)]
    pub(super) e: Text<'a>,
    #[serde(rename = "E")]
    pub(super) event_time: i64,
    /// Required, as the scanner requires it; the stream names the symbol.
    #[serde(borrow, rename = "s")]
    pub(super) _symbol: Text<'a>,
    #[serde(rename = "U")]
    pub(super) first: Option<u64>,
    #[serde(rename = "u")]
    pub(super) last: Option<u64>,
    #[serde(default)]
    pub(super) b: Levels,
    #[serde(default)]
    pub(super) a: Levels,
    pub(super) t: Option<u64>,
    #[serde(borrow)]
    pub(super) p: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) q: Option<Text<'a>>,
    #[serde(rename = "T")]
    pub(super) time: Option<i64>,
    pub(super) m: Option<bool>,
}

#[derive(Deserialize)]
struct EventType<'a> {
    #[serde(borrow)]
    e: Option<Text<'a>>,
}

#[derive(Debug)]
pub(crate) struct BinanceSession {
    rest_base: String,
    depth: usize,
    ack_timeout_us: i64,
    standby: bool,
    symbols: Vec<Symbol>,
    by_native: HashMap<String, usize>,
    /// Lowercase stream prefix (`btcusdt`) → index.
    by_stream: HashMap<String, usize>,
    books: Vec<BookSync>,
    last_trade: Vec<u64>,
    /// Standby only: trades received before the takeover.
    held_trades: Vec<VecDeque<(u64, Trade)>>,
    acks: Acks,
}

impl BinanceSession {
    pub(crate) fn new(protocol: &BinanceProtocol, shard: &[Symbol], standby: bool) -> Self {
        let spec = protocol.spec();
        Self {
            rest_base: spec.rest_base(DEFAULT_REST_URL).to_string(),
            depth: protocol.depth(),
            ack_timeout_us: spec.feed.ack_timeout_secs as i64 * Timestamp::MICROS_PER_SECOND,
            standby,
            symbols: shard.to_vec(),
            by_native: shard
                .iter()
                .enumerate()
                .map(|(i, s)| (native_symbol(s), i))
                .collect(),
            by_stream: shard
                .iter()
                .enumerate()
                .map(|(i, s)| (native_symbol(s).to_lowercase(), i))
                .collect(),
            books: shard.iter().map(|_| BookSync::subscribing()).collect(),
            last_trade: vec![0; shard.len()],
            held_trades: vec![VecDeque::new(); shard.len()],
            acks: Acks::default(),
        }
    }

    fn request_snapshot(&self, index: usize, io: &mut Io) {
        let native = native_symbol(&self.symbols[index]);
        io.rest.push(RestRequest {
            key: format!("depth:{native}"),
            url: format!(
                "{}/api/v3/depth?symbol={native}&limit={}",
                self.rest_base, self.depth
            ),
        });
    }

    /// Drops the book and fetches a new snapshot, buffering diffs meanwhile.
    fn begin_fetch(&mut self, index: usize, io: &mut Io) {
        self.books[index] = BookSync::fetching();
        self.request_snapshot(index, io);
    }

    fn subscribe_frames(&mut self, method: &str, indices: &[usize], io: &mut Io) {
        let names: Vec<String> = indices
            .iter()
            .flat_map(|&i| streams(&native_symbol(&self.symbols[i]).to_lowercase()))
            .collect();
        for chunk in names.chunks(STREAMS_PER_FRAME) {
            io.send.push(self.acks.request(method, chunk, io.recv_ts));
        }
    }

    fn on_depth(&mut self, index: usize, parsed: Result<DepthUpdate, String>, io: &mut Io) {
        let symbol = self.symbols[index].clone();
        io.touch(&symbol);
        let update = match parsed {
            Ok(update) => update,
            Err(reason) => {
                io.invalid(Some(symbol), reason);
                self.begin_fetch(index, io);
                return;
            }
        };
        match &mut self.books[index] {
            BookSync::Fetching {
                buffer,
                awaiting_first,
                requested,
                attempts,
                ..
            } => {
                if buffer.len() >= MAX_BUFFERED {
                    buffer.clear();
                    if !self.standby {
                        self.begin_fetch(index, io);
                    }
                    return;
                }
                buffer.push_back(update);
                if std::mem::take(awaiting_first) && !self.standby {
                    *requested = true;
                    *attempts = 1;
                    self.request_snapshot(index, io);
                }
            }
            BookSync::Live { last } => {
                *last = (*last).max(update.last);
                let delta = update.into_delta(io.recv_ts);
                io.events.push(FeedEvent::BookDelta { symbol, delta });
            }
        }
    }

    fn on_trade(&mut self, index: usize, parsed: Result<(u64, Trade), String>, io: &mut Io) {
        let symbol = self.symbols[index].clone();
        io.touch(&symbol);
        match parsed {
            Ok((id, trade)) if self.standby => {
                let held = &mut self.held_trades[index];
                if held.len() < MAX_BUFFERED {
                    held.push_back((id, trade));
                }
            }
            Ok((id, trade)) => {
                // Duplicates (a rotation overlap) are dropped; ids only grow.
                if id > self.last_trade[index] {
                    self.last_trade[index] = id;
                    io.events.push(FeedEvent::Trade { symbol, trade });
                }
            }
            Err(reason) => io.invalid(None, reason),
        }
    }

    fn on_snapshot(&mut self, index: usize, body: Result<&str, &str>, io: &mut Io) {
        let symbol = self.symbols[index].clone();
        let BookSync::Fetching {
            buffer,
            requested,
            retry_at,
            attempts,
            ..
        } = &mut self.books[index]
        else {
            return; // an answer for a book that meanwhile went live again
        };
        let snapshot = match body.map_err(str::to_string).and_then(DepthSnapshot::parse) {
            Ok(snapshot) => snapshot,
            Err(reason) => {
                tracing::warn!(%symbol, attempt = *attempts, %reason, "depth snapshot failed; retrying");
                *requested = false;
                *retry_at = Timestamp(io.recv_ts.0 + RETRY_US);
                return;
            }
        };
        io.touch(&symbol);
        match book::align(snapshot.last_update_id, buffer) {
            Alignment::TooOld { first_update } => {
                let BookSync::Fetching {
                    refused, refusal, ..
                } = &mut self.books[index]
                else {
                    return;
                };
                *refused += 1;
                let delay = book::refused_backoff_us(*refused);
                let why = format!(
                    "{symbol}: REST snapshot older than the stream (lastUpdateId {} < first U {first_update} - 1), refused {} time(s) in a row, retrying in {} ms",
                    snapshot.last_update_id,
                    *refused,
                    delay / 1000
                );
                tracing::warn!(%symbol, last_update_id = snapshot.last_update_id, first_update, refused = *refused, delay_ms = delay / 1000, "depth snapshot older than the stream; refused, retrying");
                *refusal = Some(why);
                io.refused_snapshots += 1;
                if let BookSync::Fetching {
                    requested,
                    retry_at,
                    ..
                } = &mut self.books[index]
                {
                    *requested = false;
                    *retry_at = Timestamp(io.recv_ts.0 + delay);
                }
            }
            Alignment::Apply { deltas, last } => {
                let recv_ts = io.recv_ts;
                io.events.push(FeedEvent::BookSnapshot {
                    symbol: symbol.clone(),
                    snapshot: book::snapshot_event(snapshot, recv_ts),
                });
                for d in deltas {
                    io.events.push(FeedEvent::BookDelta {
                        symbol: symbol.clone(),
                        delta: d.into_delta(recv_ts),
                    });
                }
                self.books[index] = BookSync::Live { last };
            }
        }
    }

    /// Market data (the hot path): a canonical frame through the byte scanner, else one serde
    /// pass. Anything else — acks, errors, shutdown notices, malformed data — falls through to
    /// the general path, which reports precisely.
    fn fast_path(&mut self, text: &str, io: &mut Io) -> bool {
        match fast::parse(text) {
            Some(Frame::Depth(d)) => {
                let Some(index) = self.stream_index(d.stream, "depthUpdate") else {
                    return false;
                };
                let parsed = DepthUpdate::build(d.first, d.last, d.bids, d.asks, d.event_time);
                self.on_depth(index, parsed, io);
                true
            }
            Some(Frame::Trade(t)) => {
                let Some(index) = self.stream_index(t.stream, "trade") else {
                    return false;
                };
                let parsed =
                    build_trade(t.id, t.price, t.qty, t.time, t.buyer_is_maker, io.recv_ts);
                self.on_trade(index, parsed, io);
                true
            }
            None => self.serde_path(text, io),
        }
    }

    /// The subscribed symbol of a stream carrying event `e` (`depthUpdate` on `…@depth` or
    /// `…@depth@100ms`, `trade` on `…@trade`).
    fn stream_index(&self, stream: &str, e: &str) -> Option<usize> {
        let (native, kind) = stream.split_once('@').unwrap_or((stream, ""));
        let index = *self.by_stream.get(native)?;
        match (kind, e) {
            ("depth@100ms" | "depth", "depthUpdate") | ("trade", "trade") => Some(index),
            _ => None,
        }
    }

    /// Market data in any valid layout, in one serde pass.
    fn serde_path(&mut self, text: &str, io: &mut Io) -> bool {
        let Ok(Combined { stream, data: d }) = serde_json::from_str::<Combined>(text) else {
            return false;
        };
        let Some(index) = self.stream_index(&stream, d.e.as_str()) else {
            return false;
        };
        if d.e.as_str() == "depthUpdate" {
            let (Some(first), Some(last)) = (d.first, d.last) else {
                return false;
            };
            let parsed = DepthUpdate::build(first, last, d.b.0, d.a.0, d.event_time);
            self.on_depth(index, parsed, io);
        } else {
            let (Some(id), Some(p), Some(q), Some(t), Some(m)) =
                (d.t, d.p.as_deref(), d.q.as_deref(), d.time, d.m)
            else {
                return false;
            };
            self.on_trade(index, build_trade(id, p, q, t, m, io.recv_ts), io);
        }
        true
    }

    /// A ticker is not book data: a bad one is counted, never a reason to rebuild the book.
    /// A standby connection drops its tickers (the active one serves them; the next one
    /// arrives within a second of the switch).
    /// It does not count as book activity either: the stale-stream check watches depth and
    /// trades only.
    fn on_ticker(&mut self, index: usize, data: &str, io: &mut Io) {
        let symbol = self.symbols[index].clone();
        match parse_ticker(data, io.recv_ts) {
            Ok(_) if self.standby => {}
            Ok((_, ticker)) => io.events.push(FeedEvent::Ticker { symbol, ticker }),
            Err(reason) => io.invalid(None, reason),
        }
    }

    fn index_of(&self, symbol: &Symbol) -> Option<usize> {
        self.symbols.iter().position(|s| s == symbol)
    }
}

impl Session for BinanceSession {
    fn open(&mut self, io: &mut Io) {
        let all: Vec<usize> = (0..self.symbols.len()).collect();
        // Snapshots are requested as each symbol's first diff arrives (`on_depth`).
        self.subscribe_frames("SUBSCRIBE", &all, io);
    }

    fn on_text(&mut self, text: &str, io: &mut Io) {
        if self.fast_path(text, io) {
            return;
        }
        let incoming: Incoming = match serde_json::from_str(text) {
            Ok(incoming) => incoming,
            Err(error) => {
                return io.invalid(
                    None,
                    format!("unparseable frame ({error}): {}", excerpt(text)),
                );
            }
        };
        if let (Some(stream), Some(data)) = (incoming.stream.as_deref(), incoming.data) {
            let (native, kind) = stream.split_once('@').unwrap_or((stream, ""));
            let index = self.by_stream.get(native).copied();
            // Only a stream we did not subscribe to can be the shutdown notice (whatever name
            // the venue gives it), so data streams are parsed once.
            let shutdown = index.is_none()
                && (native == "!serverShutdown"
                    || serde_json::from_str::<EventType>(data.get())
                        .is_ok_and(|t| t.e.as_deref() == Some("serverShutdown")));
            if shutdown {
                io.rotate = Some("the venue announced serverShutdown".into());
                return;
            }
            // Well-formed data of a stream this connection did not subscribe (another symbol,
            // or another kind such as `bookTicker`): ignored, not a parse error (issue 15).
            let Some(index) = index else {
                tracing::debug!(stream = %excerpt(stream), "data for an unsubscribed stream; ignored");
                io.ignored += 1;
                return;
            };
            match kind {
                "trade" => {
                    let parsed = parse_trade(data.get(), io.recv_ts).map(|(_, id, t)| (id, t));
                    self.on_trade(index, parsed, io);
                }
                "depth@100ms" | "depth" => self.on_depth(index, DepthUpdate::parse(data.get()), io),
                "ticker" => self.on_ticker(index, data.get(), io),
                other => {
                    tracing::debug!(stream = %excerpt(stream), kind = %excerpt(other), "stream kind not subscribed; ignored");
                    io.ignored += 1;
                }
            }
            return;
        }
        if incoming.e.as_deref() == Some("serverShutdown") {
            io.rotate = Some("the venue announced serverShutdown".into());
            return;
        }
        match (incoming.id, incoming.code) {
            (Some(id), None) => {
                if !self.acks.acknowledge(id) {
                    tracing::debug!(id, "ack for an unknown request");
                }
            }
            (id, Some(code)) => {
                let what = id.and_then(|id| self.acks.fail(id)).unwrap_or_default();
                let msg = incoming.msg.unwrap_or_default();
                io.invalid(
                    None,
                    format!("venue error {code} for {what}: {}", excerpt(&msg)),
                );
                io.reconnect = Some(format!(
                    "venue rejected a request ({code}: {})",
                    excerpt(&msg)
                ));
            }
            _ => io.invalid(None, format!("unexpected frame: {}", excerpt(text))),
        }
    }

    fn on_rest(&mut self, key: &str, body: Result<&str, &str>, io: &mut Io) {
        let Some(native) = key.strip_prefix("depth:") else {
            return;
        };
        if let Some(&index) = self.by_native.get(native) {
            self.on_snapshot(index, body, io);
        }
    }

    fn resync(&mut self, symbol: &Symbol, io: &mut Io) {
        if let Some(index) = self.index_of(symbol)
            && matches!(self.books[index], BookSync::Live { .. })
        {
            self.begin_fetch(index, io);
        }
    }

    fn resubscribe(&mut self, symbol: &Symbol, io: &mut Io) {
        let Some(index) = self.index_of(symbol) else {
            return;
        };
        self.subscribe_frames("UNSUBSCRIBE", &[index], io);
        self.subscribe_frames("SUBSCRIBE", &[index], io);
        io.unsynced(symbol, "stale");
        self.books[index] = BookSync::subscribing();
    }

    fn on_tick(&mut self, now: Timestamp, io: &mut Io) {
        if let Some(what) = self.acks.overdue(now, self.ack_timeout_us) {
            io.reconnect = Some(format!("no acknowledgement for {what}"));
            return;
        }
        for index in 0..self.books.len() {
            if let BookSync::Fetching {
                requested,
                retry_at,
                attempts,
                awaiting_first,
                ..
            } = &mut self.books[index]
                && !*requested
                && !*awaiting_first
                && now >= *retry_at
                && !self.standby
            {
                *requested = true;
                *attempts += 1;
                self.request_snapshot(index, io);
            }
        }
    }

    fn syncing(&self) -> usize {
        self.books
            .iter()
            .filter(|b| matches!(b, BookSync::Fetching { .. }))
            .count()
    }

    fn sync_note(&self) -> Option<String> {
        let notes: Vec<&str> = self
            .books
            .iter()
            .filter_map(|b| match b {
                BookSync::Fetching {
                    refusal: Some(why), ..
                } => Some(why.as_str()),
                _ => None,
            })
            .collect();
        (!notes.is_empty()).then(|| notes.join("; "))
    }

    fn handover(&self, symbol: &Symbol) -> Option<(u64, u64)> {
        let index = self.index_of(symbol)?;
        match self.books[index] {
            BookSync::Live { last } => Some((last, self.last_trade[index])),
            BookSync::Fetching { .. } => None,
        }
    }

    fn ready_to_take_over(&self, old: &dyn Session) -> bool {
        self.acks.outstanding() == 0
            && self
                .symbols
                .iter()
                .enumerate()
                .all(|(i, symbol)| match old.handover(symbol) {
                    None => true,
                    Some((last, _)) => match &self.books[i] {
                        BookSync::Fetching { buffer, .. } => {
                            buffer.front().is_some_and(|d| d.first <= last + 1)
                        }
                        BookSync::Live { .. } => true,
                    },
                })
    }

    fn take_over(&mut self, old: &dyn Session, io: &mut Io) {
        self.standby = false;
        for index in 0..self.symbols.len() {
            let symbol = self.symbols[index].clone();
            let held = std::mem::take(&mut self.held_trades[index]);
            match old.handover(&symbol) {
                Some((last, last_trade)) => {
                    self.last_trade[index] = last_trade;
                    for (id, trade) in held {
                        if id > self.last_trade[index] {
                            self.last_trade[index] = id;
                            io.events.push(FeedEvent::Trade {
                                symbol: symbol.clone(),
                                trade,
                            });
                        }
                    }
                    let BookSync::Fetching { buffer, .. } = &mut self.books[index] else {
                        continue;
                    };
                    let mut newest = last;
                    for d in buffer.drain(..).filter(|d| d.last > last) {
                        newest = newest.max(d.last);
                        io.events.push(FeedEvent::BookDelta {
                            symbol: symbol.clone(),
                            delta: d.into_delta(io.recv_ts),
                        });
                    }
                    self.books[index] = BookSync::Live { last: newest };
                }
                None => {
                    for (id, trade) in held {
                        self.last_trade[index] = self.last_trade[index].max(id);
                        io.events.push(FeedEvent::Trade {
                            symbol: symbol.clone(),
                            trade,
                        });
                    }
                    self.request_snapshot(index, io);
                }
            }
        }
    }
}
