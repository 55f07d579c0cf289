//! One OKX connection: subscriptions, per-instrument `seqId` chains, trades, keep-alive, and
//! the swaps' contract sizes converted to base units.

mod perp;

use super::contract::Units;
use super::subscription::{Acks, LIQUIDATIONS};
use super::ticker::parse_tickers;
use super::wire::{BookUpdate, Frame, Item, build_trade};
use super::{OkxProtocol, native_symbol};
use crate::conn::{Io, Protocol, Session};
use crate::venue::parse::excerpt;
use crate::{FeedEvent, InvalidCause};
use book::{BookError, ChecksumAlgo, OrderBook};
use model::{BookDelta, BookSnapshot, Symbol, Timestamp};
use perp::{MarkState, index_name};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, Default)]
struct InstrumentBook {
    /// A snapshot arrived on the current subscription and every update since chained on.
    live: bool,
    /// `seqId` of the last message applied.
    last_seq_id: i64,
    /// Synthetic sequence of the events forwarded (OKX's `seqId`s are not consecutive; the
    /// chain is checked here, and the gateway's book sees a gap-free sequence).
    seq: u64,
}

#[derive(Debug)]
pub(crate) struct OkxSession {
    ack_timeout_us: i64,
    ping_after_us: i64,
    symbols: Vec<Symbol>,
    natives: Vec<String>,
    by_native: HashMap<String, usize>,
    books: Vec<InstrumentBook>,
    /// What each instrument's sizes are counted in (swaps: contracts of `ctVal`).
    units: Vec<Units>,
    /// Swaps: the book in contracts, as OKX sends it, so OKX's checksum (over its own strings)
    /// can be verified before the sizes are converted; converted events carry no checksum.
    mirrors: Vec<Option<OrderBook>>,
    last_trade: Vec<u64>,
    /// Swaps: the last mark (`mark-price`) and index (`index-tickers`) price.
    marks: Vec<MarkState>,
    acks: Acks,
    /// When the last frame arrived, and whether a `ping` is out since.
    last_rx: Timestamp,
    pinged: bool,
}

impl OkxSession {
    pub(crate) fn new(protocol: &OkxProtocol, shard: &[Symbol]) -> Self {
        let natives: Vec<String> = shard.iter().map(native_symbol).collect();
        let units: Vec<Units> = shard.iter().map(|s| protocol.units(s)).collect();
        Self {
            ack_timeout_us: protocol.spec().feed.ack_timeout_secs as i64
                * Timestamp::MICROS_PER_SECOND,
            ping_after_us: protocol.ping_after().as_micros() as i64,
            symbols: shard.to_vec(),
            by_native: natives
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), i))
                .collect(),
            natives,
            books: vec![InstrumentBook::default(); shard.len()],
            mirrors: units
                .iter()
                .map(|u| {
                    matches!(u, Units::Contracts(_)).then(|| OrderBook::new(ChecksumAlgo::Okx))
                })
                .collect(),
            units,
            last_trade: vec![0; shard.len()],
            marks: vec![MarkState::default(); shard.len()],
            acks: Acks::default(),
            last_rx: Timestamp(0),
            pinged: false,
        }
    }

    fn subscribe(&mut self, op: &str, channels: &[&str], indices: &[usize], io: &mut Io) {
        let args: Vec<(&str, &str)> = indices
            .iter()
            .flat_map(|&i| channels.iter().map(move |c| (*c, i)))
            .map(|(c, i)| (c, self.natives[i].as_str()))
            .collect();
        let frames = self.acks.frames(op, &args, io.recv_ts);
        io.send.extend(frames);
    }

    /// Unsubscribes and resubscribes `index`'s book: OKX answers with a fresh snapshot.
    fn resubscribe_book(&mut self, index: usize, io: &mut Io) {
        self.books[index].live = false;
        if self.units[index] == Units::Unknown {
            return; // never subscribed: its sizes cannot be converted
        }
        self.subscribe("unsubscribe", &["books"], &[index], io);
        self.subscribe("subscribe", &["books"], &[index], io);
    }

    fn on_book(&mut self, index: usize, snapshot: bool, items: &[Item], io: &mut Io) {
        let symbol = self.symbols[index].clone();
        io.touch(&symbol);
        for item in items {
            let update = match BookUpdate::build(item) {
                Ok(update) => update,
                Err(reason) => {
                    io.invalid(Some(symbol.clone()), reason);
                    self.resubscribe_book(index, io);
                    return;
                }
            };
            let book = &mut self.books[index];
            if snapshot {
                // The first message of a subscription, or OKX resetting the book mid-stream:
                // either way it replaces the book.
                let snapshot = BookSnapshot {
                    seq: book.seq + 1,
                    bids: update.bids,
                    asks: update.asks,
                    exchange_ts: update.ts,
                    recv_ts: io.recv_ts,
                    checksum: update.checksum,
                };
                let Some(snapshot) = self.convert_snapshot(index, snapshot, io) else {
                    return;
                };
                let book = &mut self.books[index];
                book.live = true;
                book.last_seq_id = update.seq_id;
                book.seq += 1;
                io.events.push(FeedEvent::BookSnapshot {
                    symbol: symbol.clone(),
                    snapshot,
                });
                continue;
            }
            if !book.live {
                continue; // updates before the new snapshot belong to the old subscription
            }
            if update.prev_seq_id != book.last_seq_id {
                if update.seq_id == book.last_seq_id {
                    continue; // the same message again
                }
                let reason = format!(
                    "seqId chain broken: prevSeqId {} after seqId {}",
                    update.prev_seq_id, book.last_seq_id
                );
                tracing::warn!(%symbol, %reason, "OKX books gap; resubscribing this instrument");
                io.fault(Some(symbol.clone()), InvalidCause::Gap, reason);
                self.resubscribe_book(index, io);
                return;
            }
            // In order (a `seqId` below `prevSeqId` is OKX's documented sequence reset, still
            // chained). An update without changes (`seqId == prevSeqId`) only keeps the chain.
            book.last_seq_id = update.seq_id;
            if update.bids.is_empty() && update.asks.is_empty() {
                continue;
            }
            let delta = BookDelta {
                first_seq: book.seq + 1,
                last_seq: book.seq + 1,
                bids: update.bids,
                asks: update.asks,
                exchange_ts: update.ts,
                recv_ts: io.recv_ts,
                checksum: update.checksum,
            };
            let Some(delta) = self.convert_delta(index, delta, io) else {
                return;
            };
            self.books[index].seq += 1;
            io.events.push(FeedEvent::BookDelta {
                symbol: symbol.clone(),
                delta,
            });
        }
    }

    /// A swap's snapshot in base units, its checksum verified on the contract book first;
    /// `None` (reported, book resubscribed) when it cannot be.
    fn convert_snapshot(
        &mut self,
        index: usize,
        mut snapshot: BookSnapshot,
        io: &mut Io,
    ) -> Option<BookSnapshot> {
        let units = self.units[index];
        if let Some(mirror) = &mut self.mirrors[index] {
            if let Err(error) = mirror.apply_snapshot(&snapshot) {
                self.book_fault(index, &error, io);
                return None;
            }
            snapshot.checksum = None;
        }
        let converted = units
            .levels_to_base("books bid", &mut snapshot.bids)
            .and_then(|()| units.levels_to_base("books ask", &mut snapshot.asks));
        if let Err(reason) = converted {
            io.invalid(Some(self.symbols[index].clone()), reason);
            self.resubscribe_book(index, io);
            return None;
        }
        Some(snapshot)
    }

    /// [`Self::convert_snapshot`] for an update.
    fn convert_delta(
        &mut self,
        index: usize,
        mut delta: BookDelta,
        io: &mut Io,
    ) -> Option<BookDelta> {
        let units = self.units[index];
        if let Some(mirror) = &mut self.mirrors[index] {
            if let Err(error) = mirror.apply_delta(&delta) {
                self.book_fault(index, &error, io);
                return None;
            }
            delta.checksum = None;
        }
        let converted = units
            .levels_to_base("books bid", &mut delta.bids)
            .and_then(|()| units.levels_to_base("books ask", &mut delta.asks));
        if let Err(reason) = converted {
            io.invalid(Some(self.symbols[index].clone()), reason);
            self.resubscribe_book(index, io);
            return None;
        }
        Some(delta)
    }

    /// The contract book refused a message: report it by its real cause and rebuild.
    fn book_fault(&mut self, index: usize, error: &BookError, io: &mut Io) {
        let cause = match error {
            BookError::ChecksumMismatch { .. } => InvalidCause::ChecksumMismatch,
            BookError::Gap { .. } => InvalidCause::Gap,
            BookError::Crossed { .. } | BookError::InvalidLevel { .. } | BookError::NotLive => {
                InvalidCause::InvalidLevel
            }
        };
        let symbol = self.symbols[index].clone();
        tracing::warn!(%symbol, %error, "OKX swap book refused; resubscribing this instrument");
        io.fault(Some(symbol), cause, error.to_string());
        self.resubscribe_book(index, io);
    }

    fn on_trades(&mut self, index: usize, items: &[Item], io: &mut Io) {
        let symbol = self.symbols[index].clone();
        io.touch(&symbol);
        let units = self.units[index];
        for item in items {
            let built = build_trade(item, io.recv_ts).and_then(|(id, mut trade)| {
                trade.size = units.to_base("trade sz", trade.size)?;
                Ok((id, trade))
            });
            match built {
                Ok((id, trade)) => {
                    if id > self.last_trade[index] {
                        self.last_trade[index] = id;
                        io.events.push(FeedEvent::Trade {
                            symbol: symbol.clone(),
                            trade,
                        });
                    }
                }
                Err(reason) => io.invalid(None, reason),
            }
        }
    }

    /// A ticker is not book data: a bad one is counted, never a reason to rebuild the book.
    fn on_tickers(&mut self, index: usize, text: &str, io: &mut Io) {
        match parse_tickers(text, io.recv_ts) {
            Ok(tickers) => {
                for (_, ticker) in tickers {
                    io.events.push(FeedEvent::Ticker {
                        symbol: self.symbols[index].clone(),
                        ticker,
                    });
                }
            }
            Err(reason) => io.invalid(None, reason),
        }
    }

    fn on_event(&mut self, frame: Frame, text: &str, io: &mut Io) {
        let event = frame.event.as_deref().unwrap_or_default();
        match event {
            "subscribe" | "unsubscribe" => {
                if let Some(arg) = &frame.arg {
                    let inst = arg
                        .inst_id
                        .as_deref()
                        .or(arg.inst_type.as_deref())
                        .unwrap_or_default();
                    if !self.acks.acknowledge(event, &arg.channel, inst) {
                        tracing::debug!(event, channel = %arg.channel, inst, "ack for an unknown request");
                    }
                }
            }
            "error" => {
                let code = frame.code.as_deref().unwrap_or_default();
                let msg = excerpt(frame.msg.as_deref().unwrap_or_default());
                io.invalid(None, format!("OKX error {code}: {msg}"));
                io.reconnect = Some(format!("venue rejected a request ({code}: {msg})"));
            }
            // OKX announces a service upgrade: reconnect now rather than be cut off.
            "notice" => {
                let msg = excerpt(frame.msg.as_deref().unwrap_or_default());
                io.reconnect = Some(format!("venue notice: {msg}"));
            }
            "channel-conn-count" | "channel-conn-count-error" => {}
            _ => io.invalid(None, format!("unexpected frame: {}", excerpt(text))),
        }
    }
}

impl Session for OkxSession {
    fn open(&mut self, io: &mut Io) {
        self.last_rx = io.recv_ts;
        let mut args: Vec<(&str, &str)> = Vec::new();
        for (i, native) in self.natives.iter().enumerate() {
            // A swap of unknown contract size: only what carries no contract sizes.
            if self.units[i] != Units::Unknown {
                args.extend([("books", native.as_str()), ("trades", native.as_str())]);
            }
            args.push(("tickers", native.as_str()));
            if self.symbols[i].is_perpetual() {
                args.extend([
                    ("funding-rate", native.as_str()),
                    ("mark-price", native.as_str()),
                    ("index-tickers", index_name(native)),
                    ("open-interest", native.as_str()),
                ]);
            }
        }
        let liquidations = (0..self.symbols.len())
            .any(|i| self.symbols[i].is_perpetual() && self.units[i] != Units::Unknown);
        if liquidations {
            // One subscription for every swap's liquidations; pushes are filtered here.
            args.push((LIQUIDATIONS, "SWAP"));
        }
        let frames = self.acks.frames("subscribe", &args, io.recv_ts);
        io.send.extend(frames);
    }

    fn on_text(&mut self, text: &str, io: &mut Io) {
        self.last_rx = io.recv_ts;
        self.pinged = false;
        if text == "pong" {
            return;
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
        if frame.event.is_some() {
            return self.on_event(frame, text, io);
        }
        let (Some(arg), Some(data)) = (&frame.arg, &frame.data) else {
            return io.invalid(None, format!("unexpected frame: {}", excerpt(text)));
        };
        let inst = arg.inst_id.as_deref().unwrap_or_default();
        // Channels not keyed by the instrument: routed before the instId lookup.
        match arg.channel.as_str() {
            LIQUIDATIONS => return self.on_liquidations(text, io),
            "index-tickers" => return self.on_index(inst, text, io),
            _ => {}
        }
        let Some(&index) = self.by_native.get(inst) else {
            tracing::debug!(channel = %arg.channel, inst, "push for an instrument not subscribed; ignored");
            io.ignored += 1;
            return;
        };
        match arg.channel.as_str() {
            "books" => match frame.action.as_deref() {
                Some("snapshot") => self.on_book(index, true, data, io),
                Some("update") => self.on_book(index, false, data, io),
                other => {
                    io.invalid(
                        Some(self.symbols[index].clone()),
                        format!("books: unknown action {other:?}"),
                    );
                    self.resubscribe_book(index, io);
                }
            },
            "trades" => self.on_trades(index, data, io),
            "tickers" => self.on_tickers(index, text, io),
            "funding-rate" if self.symbols[index].is_perpetual() => {
                self.on_funding(index, text, io);
            }
            "mark-price" if self.symbols[index].is_perpetual() => self.on_mark(index, text, io),
            "open-interest" if self.symbols[index].is_perpetual() => {
                self.on_open_interest(index, text, io);
            }
            other => {
                tracing::debug!(channel = other, "channel not subscribed; ignored");
                io.ignored += 1;
            }
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
        if let Some(what) = self.acks.overdue(now, self.ack_timeout_us) {
            io.reconnect = Some(format!("no acknowledgement for {what}"));
            return;
        }
        // OKX closes a connection idle for 30 s: a text `ping` (answered `pong`) keeps it.
        if !self.pinged && now.micros_since(self.last_rx) >= self.ping_after_us {
            io.send.push("ping".into());
            self.pinged = true;
        }
    }

    fn syncing(&self) -> usize {
        self.books.iter().filter(|b| !b.live).count()
    }

    fn sync_note(&self) -> Option<String> {
        let unknown: Vec<&str> = (0..self.symbols.len())
            .filter(|&i| self.units[i] == Units::Unknown)
            .map(|i| self.symbols[i].as_str())
            .collect();
        (!unknown.is_empty()).then(|| {
            format!(
                "no contract size (ctVal) for {}: their books and trades are not served (set \
                 venues.feed.instruments.<symbol>.contract_size when the metadata endpoint is \
                 unreachable)",
                unknown.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests;
