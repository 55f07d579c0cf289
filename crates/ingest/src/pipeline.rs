//! The per-venue ingest task: connector events in, validated books and aggregates out to the hub.

use crate::market::{InstrumentEntry, Market};
use crate::persist::InstrumentHistory;
use crate::stats::VenueStats;
use book::{BookError, ChecksumAlgo, StaleReason};
use connectors::{Command, ConnectionState, FeedBatch, FeedEvent, InvalidCause};
use hub::{Bus, CacheMode, Publisher};
use model::{
    Channel, ChannelKind, Instrument, Interval, Liquidation, Symbol, Timestamp, Trade, Venue,
};
use protocol::{CandleBody, DataMessage, StatusBody, WireTrade};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use store::HistorySink;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Candles close this long after their bucket ends, to let late trades in.
const CANDLE_CLOSE_GRACE_MICROS: i64 = 500_000;

/// Channels and aggregates of one instrument.
#[derive(Debug)]
struct InstrumentChannels {
    entry: Arc<InstrumentEntry>,
    book: Arc<dyn Publisher>,
    trades: Arc<dyn Publisher>,
    ticker: Arc<dyn Publisher>,
    candles: [Arc<dyn Publisher>; 6],
    /// Funding, mark, open-interest and liquidation channels; perpetuals only.
    perp: Option<PerpChannels>,
    /// A resync was requested and its snapshot has not arrived yet.
    resync_pending: bool,
    /// When the feed for this instrument became continuously observed (start or reconnect).
    observed_since: Timestamp,
    /// Trades received in the current batch, published as one message.
    pending_trades: Vec<WireTrade>,
    newest: (Timestamp, Timestamp),
    book_changed: bool,
    /// Trades and closed candles handed to the history writer.
    history: InstrumentHistory,
}

/// The channels only a perpetual has. Funding, mark and open interest keep their last value
/// as the snapshot on join (like tickers); liquidations, like trades, have none.
#[derive(Debug)]
struct PerpChannels {
    funding: Arc<dyn Publisher>,
    mark: Arc<dyn Publisher>,
    oi: Arc<dyn Publisher>,
    liquidations: Arc<dyn Publisher>,
    /// Liquidations received in the current batch, published as one message.
    pending_liquidations: Vec<Liquidation>,
}

impl PerpChannels {
    fn new(hub: &dyn Bus, channel: impl Fn(ChannelKind) -> Channel) -> Self {
        Self {
            funding: hub.publisher(channel(ChannelKind::Funding), CacheMode::Latest),
            mark: hub.publisher(channel(ChannelKind::Mark), CacheMode::Latest),
            oi: hub.publisher(channel(ChannelKind::OpenInterest), CacheMode::Latest),
            liquidations: hub.publisher(channel(ChannelKind::Liquidations), CacheMode::None),
            pending_liquidations: Vec::new(),
        }
    }
}

/// Consumes one venue's events, maintains its books and aggregates, and publishes to the hub.
#[derive(Debug)]
pub struct VenueIngest {
    venue: Venue,
    hub: Arc<dyn Bus>,
    market: Arc<Market>,
    checksum: ChecksumAlgo,
    status: Arc<dyn Publisher>,
    commands: mpsc::Sender<Command>,
    stats: Arc<VenueStats>,
    instruments: HashMap<Symbol, InstrumentChannels>,
    /// Symbols touched by the batch being processed, in first-touch order.
    touched: Vec<Symbol>,
    /// Where trades and closed candles are persisted (none: history is off).
    history: Option<HistorySink>,
}

impl VenueIngest {
    /// Registers the venue's channels for the instruments known up front.
    pub fn new(
        venue: Venue,
        instruments: Vec<Instrument>,
        checksum: ChecksumAlgo,
        hub: Arc<dyn Bus>,
        market: Arc<Market>,
        commands: mpsc::Sender<Command>,
        stats: Arc<VenueStats>,
    ) -> Self {
        let status = hub.publisher(Channel::status(venue.clone()), CacheMode::Latest);
        let mut this = Self {
            venue,
            hub,
            market,
            checksum,
            status,
            commands,
            stats,
            instruments: HashMap::new(),
            touched: Vec::new(),
            history: None,
        };
        for instrument in instruments {
            this.register(instrument);
        }
        this
    }

    /// Persists this venue's trades and closed candles through `sink` (what is stored per
    /// instrument follows the sink's include/exclude lists).
    pub fn with_history(mut self, sink: HistorySink) -> Self {
        for (symbol, inst) in &mut self.instruments {
            inst.history = InstrumentHistory::new(Some(&sink), &self.venue, symbol);
        }
        self.history = Some(sink);
        self
    }

    /// Runs until shutdown or until the connector's event channel closes.
    pub async fn run(mut self, mut events: mpsc::Receiver<FeedBatch>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                batch = events.recv() => match batch {
                    Some(batch) => self.handle_batch(batch),
                    None => break,
                },
                _ = tick.tick() => self.on_tick(Timestamp::now()),
            }
        }
        self.persist_open_candles(Timestamp::now());
        self.publish_status(ConnectionState::Stopped, "ingest stopped");
    }

    /// At shutdown: closes the candles whose bucket has ended, and hands the still-open ones
    /// to the history writer marked incomplete (the rest of their interval goes unobserved).
    pub fn persist_open_candles(&mut self, now: Timestamp) {
        for inst in self.instruments.values_mut() {
            inst.entry.aggregates.lock().candles.close_due(now, 0);
            flush_instrument(inst, Some(now));
            let agg = inst.entry.aggregates.lock();
            for candle in agg.candles.open() {
                inst.history.on_shutdown(candle);
            }
        }
    }

    fn register(&mut self, instrument: Instrument) {
        if instrument.venue != self.venue {
            tracing::warn!(venue = %self.venue, other = %instrument.venue, "ignoring instrument of another venue");
            return;
        }
        let symbol = instrument.symbol.clone();
        let entry = self.market.upsert(instrument);
        if self.instruments.contains_key(&symbol) {
            return;
        }
        let channel = |kind| Channel::new(kind, self.venue.clone(), symbol.clone());
        let hub = &self.hub;
        let candles = Interval::ALL
            .map(|i| hub.publisher(channel(ChannelKind::Candles(i)), CacheMode::Latest));
        let book = hub.publisher(channel(ChannelKind::Book), CacheMode::Book(self.checksum));
        // A second registration of the instrument finds the same channel: keep the first.
        let _ = entry.book.set(book.clone());
        let channels = InstrumentChannels {
            entry,
            book,
            trades: hub.publisher(channel(ChannelKind::Trades), CacheMode::None),
            ticker: hub.publisher(channel(ChannelKind::Ticker), CacheMode::Latest),
            candles,
            perp: symbol
                .is_perpetual()
                .then(|| PerpChannels::new(hub.as_ref(), channel)),
            resync_pending: false,
            observed_since: Timestamp::now(),
            pending_trades: Vec::new(),
            newest: (Timestamp(0), Timestamp(0)),
            book_changed: false,
            history: InstrumentHistory::new(self.history.as_ref(), &self.venue, &symbol),
        };
        self.instruments.insert(symbol, channels);
    }

    /// Applies a batch, then publishes one trades message, one ticker and the changed candles
    /// per instrument the batch touched.
    pub fn handle_batch(&mut self, batch: FeedBatch) {
        for event in batch {
            self.handle_event(event);
        }
        for symbol in std::mem::take(&mut self.touched) {
            if let Some(inst) = self.instruments.get_mut(&symbol) {
                flush_instrument(inst, None);
            }
        }
    }

    fn handle_event(&mut self, event: FeedEvent) {
        match event {
            FeedEvent::Instruments(list) => list.into_iter().for_each(|i| self.register(i)),
            FeedEvent::BookSnapshot { symbol, snapshot } => {
                self.stats.snapshots.fetch_add(1, Ordering::Relaxed);
                let Some(inst) = self.instrument(&symbol) else {
                    return;
                };
                match inst.book.book_snapshot(&snapshot) {
                    Ok(_) => {
                        inst.resync_pending = false;
                        inst.book_changed = true;
                        inst.newest = (snapshot.exchange_ts, snapshot.recv_ts);
                    }
                    Err(error) => self.resync(&symbol, &error),
                }
            }
            FeedEvent::BookDelta { symbol, delta } => {
                self.stats.deltas.fetch_add(1, Ordering::Relaxed);
                let Some(inst) = self.instrument(&symbol) else {
                    return;
                };
                match inst.book.book_delta(&delta) {
                    Ok(Some(_)) => {
                        inst.book_changed = true;
                        inst.newest = (delta.exchange_ts, delta.recv_ts);
                    }
                    Ok(None) => {
                        self.stats.deltas_ignored.fetch_add(1, Ordering::Relaxed);
                    }
                    // Waiting for a snapshot: deltas until then are meaningless.
                    Err(BookError::NotLive) => {
                        if !inst.resync_pending {
                            self.resync(&symbol, &BookError::NotLive);
                        }
                    }
                    Err(error) => self.resync(&symbol, &error),
                }
            }
            FeedEvent::Trade { symbol, trade } => {
                self.stats.trades.fetch_add(1, Ordering::Relaxed);
                let Some(inst) = self.instrument(&symbol) else {
                    return;
                };
                on_trade(inst, &trade);
            }
            FeedEvent::Ticker { symbol, ticker } => {
                let Some(inst) = self.instrument(&symbol) else {
                    return;
                };
                inst.newest = (ticker.exchange_ts, ticker.recv_ts);
                inst.entry.aggregates.lock().ticker.on_venue(&ticker);
            }
            FeedEvent::Funding {
                symbol,
                funding,
                recv_ts,
            } => {
                let Some(perp) = self.perp(&symbol) else {
                    return;
                };
                perp.funding.publish(DataMessage {
                    ts: funding.ts.0,
                    recv_ts: recv_ts.0,
                    funding: Some(funding.clone()),
                    ..Default::default()
                });
                if let Some(inst) = self.instruments.get_mut(&symbol) {
                    inst.history.on_funding(&funding);
                    inst.entry.aggregates.lock().funding = Some((funding, recv_ts));
                }
            }
            FeedEvent::Mark {
                symbol,
                mark,
                recv_ts,
            } => {
                let Some(perp) = self.perp(&symbol) else {
                    return;
                };
                perp.mark.publish(DataMessage {
                    ts: mark.ts.0,
                    recv_ts: recv_ts.0,
                    mark: Some(mark),
                    ..Default::default()
                });
            }
            FeedEvent::OpenInterest {
                symbol,
                oi,
                recv_ts,
            } => {
                let Some(perp) = self.perp(&symbol) else {
                    return;
                };
                perp.oi.publish(DataMessage {
                    ts: oi.ts.0,
                    recv_ts: recv_ts.0,
                    oi: Some(oi.clone()),
                    ..Default::default()
                });
                if let Some(inst) = self.instruments.get_mut(&symbol) {
                    inst.history.on_open_interest(&oi);
                }
            }
            FeedEvent::Liquidation {
                symbol,
                liquidation,
                recv_ts,
            } => {
                let Some(inst) = self.instrument(&symbol) else {
                    return;
                };
                if let Some(perp) = &mut inst.perp {
                    inst.newest = (liquidation.ts, recv_ts);
                    perp.pending_liquidations.push(liquidation);
                }
            }
            FeedEvent::Invalid {
                symbol,
                reason,
                cause,
            } => {
                self.stats.invalid_messages.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(venue = %self.venue, symbol = ?symbol.as_ref().map(Symbol::as_str), cause = cause.as_str(), %reason, "invalid venue message");
                if let Some(symbol) = symbol
                    && let Some(inst) = self.instruments.get_mut(&symbol)
                {
                    inst.book.book_stale(match cause {
                        InvalidCause::ChecksumMismatch => StaleReason::ChecksumMismatch,
                        InvalidCause::InvalidLevel => StaleReason::InvalidLevel,
                        InvalidCause::Gap => StaleReason::Gap,
                        InvalidCause::Malformed => StaleReason::Requested,
                    });
                    self.request_snapshot(&symbol, cause.as_str(), &reason);
                }
            }
            FeedEvent::Unsynced { symbol, reason } => {
                let Some(inst) = self.instruments.get_mut(&symbol) else {
                    return;
                };
                if !inst.resync_pending {
                    tracing::info!(venue = %self.venue, symbol = %symbol, %reason, "book is being rebuilt by the connector");
                    // The connector's own rebuilds, by their cause (`conn::input`, the venues).
                    self.stats.count_resync(match reason.as_str() {
                        "disconnected" => "disconnected",
                        "overflow" => "overflow",
                        "stale" => "stale",
                        "gap" => "gap",
                        _ => "requested",
                    });
                }
                inst.book.book_stale(StaleReason::Requested);
                if reason == "disconnected" || reason == "overflow" {
                    // Trades may have been missed too.
                    inst.entry.aggregates.lock().candles.mark_incomplete();
                }
                inst.resync_pending = true;
            }
            FeedEvent::Status { state, detail } => self.on_status(state, &detail),
            // On-chain items are published by `onchain::ChainIngest`, which hands this type
            // only the DEX trades; a market venue never sends them.
            FeedEvent::Chain(_) => {
                tracing::debug!(venue = %self.venue, "on-chain items on a market venue ignored");
            }
        }
    }

    fn on_status(&mut self, state: ConnectionState, detail: &str) {
        tracing::info!(venue = %self.venue, state = state.as_str(), %detail, "venue connection state");
        if state == ConnectionState::Disconnected {
            for inst in self.instruments.values_mut() {
                inst.book.book_stale(StaleReason::Requested);
                inst.entry.aggregates.lock().candles.mark_incomplete();
                if !inst.resync_pending {
                    self.stats.count_resync("disconnected");
                }
                inst.resync_pending = true;
            }
        }
        if state == ConnectionState::Connected {
            let now = Timestamp::now();
            for inst in self.instruments.values_mut() {
                inst.observed_since = now;
            }
        }
        self.publish_status(state, detail);
    }

    fn publish_status(&self, state: ConnectionState, detail: &str) {
        self.status.publish(DataMessage {
            ts: Timestamp::now().0,
            recv_ts: Timestamp::now().0,
            status: Some(StatusBody {
                state: state.as_str().into(),
                detail: detail.into(),
            }),
            ..Default::default()
        });
    }

    /// Looks up an instrument and marks it touched by this batch.
    fn instrument(&mut self, symbol: &Symbol) -> Option<&mut InstrumentChannels> {
        match self.instruments.get_mut(symbol) {
            Some(inst) => {
                if !self.touched.contains(symbol) {
                    self.touched.push(symbol.clone());
                }
                Some(inst)
            }
            None => {
                self.stats.invalid_messages.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(venue = %self.venue, symbol = %symbol, "event for an unconfigured symbol");
                None
            }
        }
    }

    /// The perpetual channels of an instrument; `None` (counted) for an unknown symbol or one
    /// that is not a perpetual.
    fn perp(&mut self, symbol: &Symbol) -> Option<&mut PerpChannels> {
        let Some(inst) = self.instruments.get_mut(symbol) else {
            self.stats.invalid_messages.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(venue = %self.venue, symbol = %symbol, "event for an unconfigured symbol");
            return None;
        };
        if inst.perp.is_none() {
            self.stats.invalid_messages.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(venue = %self.venue, symbol = %symbol, "perpetual figures for a spot symbol");
        }
        inst.perp.as_mut()
    }

    /// Asks the connector for a fresh snapshot of one book; the others are not touched.
    fn resync(&mut self, symbol: &Symbol, error: &BookError) {
        let reason = error
            .stale_reason()
            .map_or("requested", StaleReason::as_str);
        self.request_snapshot(symbol, reason, error);
    }

    /// Asks the connector for a fresh snapshot of one book, counting and logging it once per
    /// rebuild under `reason`.
    fn request_snapshot(
        &mut self,
        symbol: &Symbol,
        reason: &'static str,
        error: &dyn std::fmt::Display,
    ) {
        let Some(inst) = self.instruments.get_mut(symbol) else {
            return;
        };
        if !inst.resync_pending {
            tracing::warn!(venue = %self.venue, symbol = %symbol, reason, error = %error, "book stale, requesting a fresh snapshot");
            self.stats.count_resync(reason);
        }
        inst.resync_pending = true;
        if let Err(mpsc::error::TrySendError::Closed(_)) =
            self.commands.try_send(Command::Resync(symbol.clone()))
        {
            tracing::warn!(venue = %self.venue, "connector command channel closed");
        }
        // A full command queue is retried from `on_tick` while `resync_pending` stays set.
    }

    /// Periodic work: close due candles, expire ticker windows, retry pending resyncs.
    pub fn on_tick(&mut self, now: Timestamp) {
        let mut retry = Vec::new();
        for (symbol, inst) in &mut self.instruments {
            {
                let mut agg = inst.entry.aggregates.lock();
                agg.candles.close_due(now, CANDLE_CLOSE_GRACE_MICROS);
                agg.ticker.expire(now);
            }
            // Whatever this publishes (candle closes, ticker expiry) was produced now, by the
            // timer, not by the last venue event.
            flush_instrument(inst, Some(now));
            if inst.resync_pending && !inst.book.book_live() {
                retry.push(symbol.clone());
            }
        }
        for symbol in retry {
            let _ = self.commands.try_send(Command::Resync(symbol));
        }
    }
}

fn on_trade(inst: &mut InstrumentChannels, trade: &Trade) {
    inst.pending_trades.push(WireTrade::from(trade));
    inst.history.on_trade(trade);
    inst.newest = (trade.exchange_ts, trade.recv_ts);
    let mut agg = inst.entry.aggregates.lock();
    agg.ticker
        .on_trade(trade.price, trade.size, trade.exchange_ts);
    agg.candles.on_trade(
        trade.price,
        trade.size,
        trade.exchange_ts,
        inst.observed_since,
    );
}

/// Publishes what changed for one instrument since the last flush.
/// `produced_at` overrides the receive time for output the timer generated.
fn flush_instrument(inst: &mut InstrumentChannels, produced_at: Option<Timestamp>) {
    let ts = inst.newest.0.0;
    let recv_ts = produced_at.unwrap_or(inst.newest.1).0;
    if !inst.pending_trades.is_empty() {
        let trades = std::mem::take(&mut inst.pending_trades);
        inst.trades.publish(DataMessage {
            ts,
            recv_ts,
            trades: Some(trades),
            ..Default::default()
        });
    }
    inst.history.flush_trades();
    if let Some(perp) = &mut inst.perp
        && !perp.pending_liquidations.is_empty()
    {
        inst.history.on_liquidations(&perp.pending_liquidations);
        perp.liquidations.publish(DataMessage {
            ts,
            recv_ts,
            liquidations: Some(std::mem::take(&mut perp.pending_liquidations)),
            ..Default::default()
        });
    }
    let mut agg = inst.entry.aggregates.lock();
    if std::mem::take(&mut inst.book_changed) {
        let (bid, ask) = inst.book.book_best();
        agg.ticker.on_book(bid, ask, inst.newest.0);
    }
    if let Some(ticker) = agg.ticker.take_changed() {
        inst.ticker.publish(DataMessage {
            ts: ticker.ts.0,
            recv_ts,
            ticker: Some(ticker),
            ..Default::default()
        });
    }
    let candles = &inst.candles;
    let history = &inst.history;
    agg.candles.take_updates(|interval, candle| {
        history.on_candle(candle);
        let index = Interval::ALL
            .iter()
            .position(|i| *i == interval)
            .unwrap_or(0);
        candles[index].publish(DataMessage {
            ts: candle.start.0,
            recv_ts,
            candle: Some(CandleBody::from(candle)),
            ..Default::default()
        });
    });
}
