//! An evaluator's view of the market: subscriptions to the hub channels its rules read, and
//! a local copy of each book, so the engine sees every event without touching ingest.
//!
//! The evaluator joins channels like a WebSocket session does (`Topic::subscribe`): a
//! snapshot first, then every frame after it from the channel's broadcast ring. Publishing
//! never waits for it; if it falls more than the ring's capacity behind, the missed frames are
//! counted (`tickgate_alert_events_dropped_total`) and the channel is joined again (a book
//! gets a fresh snapshot), exactly like a conflated client.

use crate::engine::{Engine, Output, TradeTick};
use crate::metrics::AlertMetrics;
use crate::rule::Market;
use book::{ChecksumAlgo, DeltaOutcome, OrderBook, StaleReason};
use hub::{Bus, Frame, Topic};
use model::{BookDelta, BookSnapshot, Channel, ChannelKind, Level, Timestamp, Venue};
use protocol::{DataMessage, ServerMessage, WireLevel};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio_stream::StreamMap;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

/// One subscribed channel.
#[derive(Debug)]
struct Source {
    channel: Channel,
    handle: Arc<dyn Topic>,
    market: Option<Market>,
    /// The local copy of a `book` channel.
    book: Option<OrderBook>,
}

/// The subscriptions. See the module docs.
#[derive(Debug)]
pub(crate) struct Feed {
    hub: Arc<dyn Bus>,
    metrics: Arc<AlertMetrics>,
    streams: StreamMap<u32, BroadcastStream<Frame>>,
    sources: HashMap<u32, Source>,
    by_channel: HashMap<Channel, u32>,
    next_slot: u32,
}

fn levels(wire: Option<Vec<WireLevel>>) -> Vec<Level> {
    wire.unwrap_or_default()
        .into_iter()
        .map(Level::from)
        .collect()
}

impl Feed {
    pub(crate) fn new(hub: Arc<dyn Bus>, metrics: Arc<AlertMetrics>) -> Self {
        Self {
            hub,
            metrics,
            streams: StreamMap::new(),
            sources: HashMap::new(),
            by_channel: HashMap::new(),
            next_slot: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    pub(crate) fn streams(&mut self) -> &mut StreamMap<u32, BroadcastStream<Frame>> {
        &mut self.streams
    }

    /// Subscribes to every channel of `wanted` the hub serves and drops the others; returns
    /// how many wanted channels the hub does not serve (yet: instruments may arrive later).
    pub(crate) fn sync(
        &mut self,
        wanted: &BTreeSet<Channel>,
        engine: &mut Engine,
        now: i64,
        out: &mut Vec<Output>,
    ) -> usize {
        let gone: Vec<Channel> = self
            .by_channel
            .keys()
            .filter(|c| !wanted.contains(*c))
            .cloned()
            .collect();
        for channel in gone {
            if let Some(slot) = self.by_channel.remove(&channel) {
                self.streams.remove(&slot);
                self.sources.remove(&slot);
            }
        }
        let mut missing = 0;
        for channel in wanted {
            if self.by_channel.contains_key(channel) {
                continue;
            }
            let Some(handle) = self.hub.topic(&channel.to_string()) else {
                missing += 1;
                continue;
            };
            let slot = self.next_slot;
            self.next_slot = self.next_slot.wrapping_add(1);
            let market = channel.symbol.clone().map(|symbol| Market {
                venue: channel.venue.clone(),
                symbol,
            });
            let book = (channel.kind == ChannelKind::Book).then(|| {
                let book = OrderBook::new(ChecksumAlgo::None);
                if channel.venue.as_str() == Venue::ALL {
                    book.allow_crossed()
                } else {
                    book
                }
            });
            self.by_channel.insert(channel.clone(), slot);
            self.sources.insert(
                slot,
                Source {
                    channel: channel.clone(),
                    handle,
                    market,
                    book,
                },
            );
            self.join(slot, false, engine, now, out);
        }
        missing
    }

    /// (Re)joins a channel and applies its snapshot, if it has one.
    fn join(
        &mut self,
        slot: u32,
        rejoin: bool,
        engine: &mut Engine,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        let Some(source) = self.sources.get_mut(&slot) else {
            return;
        };
        let joined = source.handle.subscribe(rejoin);
        if let Some(book) = &mut source.book {
            book.mark_stale(StaleReason::Requested);
        }
        self.streams.insert(slot, BroadcastStream::new(joined.rx));
        if let Some(frame) = joined.initial {
            self.apply(slot, Ok(frame), engine, now, out);
        }
    }

    /// Hands one frame (or a lag) of a subscription to the engine.
    pub(crate) fn apply(
        &mut self,
        slot: u32,
        item: Result<Frame, BroadcastStreamRecvError>,
        engine: &mut Engine,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        let frame = match item {
            Ok(frame) => frame,
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                self.metrics
                    .events_dropped
                    .fetch_add(missed, Ordering::Relaxed);
                tracing::debug!(missed, "alert evaluator fell behind a channel; rejoining");
                self.join(slot, true, engine, now, out);
                return;
            }
        };
        self.metrics.events.fetch_add(1, Ordering::Relaxed);
        let Some(source) = self.sources.get_mut(&slot) else {
            return;
        };
        let Ok(message) = serde_json::from_str::<ServerMessage>(frame.as_str()) else {
            return;
        };
        let mut rejoin = false;
        match (source.channel.kind, message) {
            (ChannelKind::Trades, ServerMessage::Update(d)) => {
                let (Some(market), Some(trades)) = (&source.market, d.trades) else {
                    return;
                };
                let ticks: Vec<TradeTick> = trades
                    .iter()
                    .map(|t| TradeTick {
                        price: t.price,
                        size: t.size,
                        ts: t.ts,
                    })
                    .collect();
                engine.on_trades(market, &ticks, now, out);
            }
            (ChannelKind::Book, message) => {
                let (Some(market), Some(book)) = (&source.market, &mut source.book) else {
                    return;
                };
                match message {
                    ServerMessage::Snapshot(d) => {
                        let ts = d.ts;
                        if book.apply_snapshot(&snapshot(d)).is_ok() {
                            engine.on_book(market, book, ts, now, out);
                        }
                    }
                    ServerMessage::Update(d) => {
                        let ts = d.ts;
                        match book.apply_delta(&delta(d)) {
                            Ok(DeltaOutcome::Applied) => engine.on_book(market, book, ts, now, out),
                            Ok(DeltaOutcome::Ignored) | Err(book::BookError::NotLive) => {}
                            // Frames are gap-free, so this means a frame was lost: rejoin.
                            Err(_) => rejoin = true,
                        }
                    }
                    ServerMessage::Resync { .. } => book.mark_stale(StaleReason::Requested),
                    _ => {}
                }
            }
            (ChannelKind::Status, ServerMessage::Snapshot(d) | ServerMessage::Update(d)) => {
                if let Some(status) = d.status {
                    let connected = status.state == "connected";
                    engine.on_status(&source.channel.venue, connected, now, out);
                }
            }
            _ => {}
        }
        if rejoin {
            self.join(slot, true, engine, now, out);
        }
    }
}

fn snapshot(d: DataMessage) -> BookSnapshot {
    BookSnapshot {
        seq: d.seq,
        bids: levels(d.bids),
        asks: levels(d.asks),
        exchange_ts: Timestamp(d.ts),
        recv_ts: Timestamp(d.recv_ts),
        checksum: None,
    }
}

fn delta(d: DataMessage) -> BookDelta {
    BookDelta {
        first_seq: d.seq,
        last_seq: d.seq,
        bids: levels(d.bids),
        asks: levels(d.asks),
        exchange_ts: Timestamp(d.ts),
        recv_ts: Timestamp(d.recv_ts),
        checksum: None,
    }
}
