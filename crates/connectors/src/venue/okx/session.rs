//! One OKX connection: subscriptions, per-instrument `seqId` chains, trades, keep-alive, and
//! the swaps' contract sizes converted to base units.

use super::contract::Units;
use super::subscription::Acks;
use super::ticker::parse_tickers;
use super::wire::{BookUpdate, Frame, Item, build_trade};
use super::{OkxProtocol, native_symbol};
use crate::conn::{Io, Protocol, Session};
use crate::venue::parse::excerpt;
use crate::{FeedEvent, InvalidCause};
use book::{BookError, ChecksumAlgo, OrderBook};
use model::{BookDelta, BookSnapshot, Symbol, Timestamp};
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
                    let inst = arg.inst_id.as_deref().unwrap_or_default();
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
        let (sized, unsized_): (Vec<usize>, Vec<usize>) =
            (0..self.symbols.len()).partition(|&i| self.units[i] != Units::Unknown);
        self.subscribe("subscribe", &["books", "trades", "tickers"], &sized, io);
        // A swap of unknown contract size: only what carries no contract sizes.
        self.subscribe("subscribe", &["tickers"], &unsized_, io);
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
mod tests {
    use super::*;
    use crate::settings::VenueSpec;

    /// A spot pair and a swap of `ctVal` 0.01 (from the config).
    fn session() -> OkxSession {
        session_with(Some("0.01"))
    }

    fn session_with(contract_size: Option<&str>) -> OkxSession {
        let mut spec = VenueSpec::new(vec![
            Symbol::new("BTC-USDT").unwrap(),
            Symbol::new("BTC-USDT-PERP").unwrap(),
        ]);
        if let Some(size) = contract_size {
            spec.feed.instruments.insert(
                "BTC-USDT-PERP".into(),
                crate::settings::InstrumentOverride {
                    tick_size: model::Decimal::ONE,
                    lot_size: model::Decimal::ONE,
                    contract_size: Some(model::parse_decimal(size).unwrap()),
                },
            );
        }
        let protocol = OkxProtocol::new(spec).unwrap();
        OkxSession::new(&protocol, &protocol.spec().symbols.clone())
    }

    fn level(p: &str, s: &str) -> model::Level {
        model::Level::new(
            model::parse_decimal(p).unwrap(),
            model::parse_decimal(s).unwrap(),
        )
    }

    /// `(price, size)` pairs of one side, as OKX's strings.
    type Pairs<'a> = &'a [(&'a str, &'a str)];

    /// A swap `books` message with OKX's checksum over its contract sizes (`+ skew`).
    fn swap_book(
        action: &str,
        prev: i64,
        seq: i64,
        bids: &[(&str, &str)],
        asks: &[(&str, &str)],
        truth: (Pairs, Pairs),
        skew: i64,
    ) -> String {
        let side = |l: &[(&str, &str)]| -> Vec<serde_json::Value> {
            l.iter()
                .map(|(p, s)| serde_json::json!([p, s, "0", "1"]))
                .collect()
        };
        let tb: Vec<model::Level> = truth.0.iter().map(|(p, s)| level(p, s)).collect();
        let ta: Vec<model::Level> = truth.1.iter().map(|(p, s)| level(p, s)).collect();
        let checksum = i64::from(book::checksum::okx_checksum(&tb, &ta) as i32) + skew;
        serde_json::json!({"arg": {"channel": "books", "instId": "BTC-USDT-SWAP"}, "action": action, "data": [{"asks": side(asks), "bids": side(bids), "ts": "1597026383085", "checksum": checksum, "prevSeqId": prev, "seqId": seq}]}).to_string()
    }

    fn sizes(levels: &[model::Level]) -> Vec<String> {
        levels.iter().map(|l| l.size.to_string()).collect()
    }

    /// Swap sizes leave in base units (`contracts × ctVal`, exact); OKX's checksum is
    /// verified on the contract book first, and a mismatch is reported as one.
    #[test]
    fn swap_sizes_are_converted_after_the_checksum_is_verified() {
        let mut s = session();
        let bids = [("100.5", "415"), ("100.4", "7")];
        let asks = [("100.6", "3")];
        let io = feed(
            &mut s,
            &swap_book("snapshot", -1, 10, &bids, &asks, (&bids, &asks), 0),
        );
        let [FeedEvent::BookSnapshot { symbol, snapshot }] = io.events.as_slice() else {
            panic!("{:?}", io.events)
        };
        assert_eq!(symbol.as_str(), "BTC-USDT-PERP");
        assert_eq!(
            (sizes(&snapshot.bids), sizes(&snapshot.asks)),
            (vec!["4.15".into(), "0.07".into()], vec!["0.03".into()])
        );
        assert_eq!(snapshot.checksum, None, "verified here, in contracts");
        let truth_bids = [("100.5", "415"), ("100.4", "7"), ("100.3", "12")];
        let io = feed(
            &mut s,
            &swap_book(
                "update",
                10,
                11,
                &[("100.3", "12")],
                &[],
                (&truth_bids, &asks),
                0,
            ),
        );
        let [FeedEvent::BookDelta { delta, .. }] = io.events.as_slice() else {
            panic!("{:?}", io.events)
        };
        assert_eq!(sizes(&delta.bids), ["0.12"]);
        assert_eq!(delta.checksum, None);
        let io = feed(
            &mut s,
            &swap_book("update", 11, 12, &[("100.3", "0")], &[], (&bids, &asks), 1),
        );
        assert_eq!(kinds(&io), ["checksum_mismatch"]);
        assert_eq!(io.checksum_failures, 1);
        assert!(
            io.send
                .iter()
                .any(|f| f.contains("unsubscribe") && f.contains("BTC-USDT-SWAP"))
        );
        // The fresh snapshot resets the contract book too.
        let io = feed(
            &mut s,
            &swap_book("snapshot", -1, 20, &bids, &asks, (&bids, &asks), 0),
        );
        assert_eq!(kinds(&io), ["snapshot"]);
        // Trades: `sz` is contracts too.
        let trade = include_str!("../../../test_data/okx/ws_trades_update.json")
            .replace("BTC-USDT", "BTC-USDT-SWAP");
        let io = feed(&mut s, &trade);
        let [FeedEvent::Trade { trade, .. }] = io.events.as_slice() else {
            panic!("{:?}", io.events)
        };
        assert_eq!(trade.size.to_string(), "0.0012060306");
        // Spot sizes pass through untouched, scale kept.
        let io = feed(&mut s, &book("BTC-USDT", "snapshot", -1, 10, "100"));
        let [FeedEvent::BookSnapshot { snapshot, .. }] = io.events.as_slice() else {
            panic!()
        };
        assert_eq!(snapshot.bids[0].size.to_string(), "1");
    }

    /// Without `ctVal` (metadata unreachable, nothing configured) a swap's sizes cannot be
    /// converted: its books and trades are not subscribed, and the status says why.
    #[test]
    fn a_swap_of_unknown_contract_size_serves_no_sizes_and_says_why() {
        let mut s = session_with(None);
        let mut io = Io::new(Timestamp(0));
        s.open(&mut io);
        let frames = io.send.join(" ");
        assert!(
            frames.contains(r#"{"channel":"books","instId":"BTC-USDT"}"#),
            "{frames}"
        );
        assert!(
            !frames.contains(r#"{"channel":"books","instId":"BTC-USDT-SWAP"}"#),
            "{frames}"
        );
        assert!(
            !frames.contains(r#"{"channel":"trades","instId":"BTC-USDT-SWAP"}"#),
            "{frames}"
        );
        assert!(
            frames.contains(r#"{"channel":"tickers","instId":"BTC-USDT-SWAP"}"#),
            "{frames}"
        );
        let note = s.sync_note().unwrap();
        assert!(
            note.contains("BTC-USDT-PERP") && note.contains("contract_size"),
            "{note}"
        );
        let perp = Symbol::new("BTC-USDT-PERP").unwrap();
        let mut io = Io::new(Timestamp(0));
        s.resubscribe(&perp, &mut io);
        assert!(io.send.is_empty(), "nothing to resubscribe");
        assert!(session().sync_note().is_none());
    }

    fn book(inst: &str, action: &str, prev: i64, seq: i64, bid: &str) -> String {
        format!(
            r#"{{"arg":{{"channel":"books","instId":"{inst}"}},"action":"{action}","data":[{{"asks":[["101","1","0","1"]],"bids":[["{bid}","1","0","1"]],"ts":"1597026383085","checksum":0,"prevSeqId":{prev},"seqId":{seq}}}]}}"#
        )
    }

    fn feed(s: &mut OkxSession, text: &str) -> Io {
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
                FeedEvent::Invalid { cause, .. } => cause.as_str(),
                _ => "other",
            })
            .collect()
    }

    /// One line per case: the chain rule on `prevSeqId`/`seqId`, after a snapshot at 10.
    #[test]
    fn updates_chain_on_prev_seq_id() {
        let cases: &[(&str, i64, i64, &[&str], bool)] = &[
            ("next in chain", 10, 15, &["delta"], false),
            ("sequence reset, still chained", 10, 3, &["delta"], false),
            ("the same message again", 5, 10, &[], false),
            ("gap", 12, 20, &["gap"], true),
            ("late message", 4, 8, &["gap"], true),
        ];
        for (name, prev, seq, expected, resubscribed) in cases {
            let mut s = session();
            feed(&mut s, &book("BTC-USDT", "snapshot", -1, 10, "100"));
            let io = feed(&mut s, &book("BTC-USDT", "update", *prev, *seq, "99"));
            assert_eq!(kinds(&io), *expected, "{name}");
            assert_eq!(
                io.send.iter().any(|f| f.contains("unsubscribe")),
                *resubscribed,
                "{name}"
            );
            assert_eq!(io.gaps, u64::from(*resubscribed), "{name}");
        }
    }

    #[test]
    fn a_snapshot_mid_stream_resets_and_updates_before_it_are_dropped() {
        let mut s = session();
        assert!(kinds(&feed(&mut s, &book("BTC-USDT", "update", 1, 2, "99"))).is_empty());
        assert_eq!(s.syncing(), 2);
        assert_eq!(
            kinds(&feed(&mut s, &book("BTC-USDT", "snapshot", -1, 10, "100"))),
            ["snapshot"]
        );
        assert_eq!(
            kinds(&feed(&mut s, &book("BTC-USDT", "snapshot", -1, 50, "100"))),
            ["snapshot"]
        );
        let io = feed(&mut s, &book("BTC-USDT", "update", 50, 51, "98"));
        let FeedEvent::BookDelta { delta, .. } = &io.events[0] else {
            panic!()
        };
        assert_eq!(
            (delta.first_seq, delta.last_seq),
            (3, 3),
            "gap-free synthetic sequence"
        );
        assert_eq!(s.syncing(), 1, "the swap is still waiting");
        let io = feed(&mut s, &book("BTC-USDT-SWAP", "snapshot", -1, 7, "100"));
        let FeedEvent::BookSnapshot { symbol, .. } = &io.events[0] else {
            panic!()
        };
        assert_eq!(symbol.as_str(), "BTC-USDT-PERP");
        assert_eq!(s.syncing(), 0);
    }

    #[test]
    fn acks_errors_notices_pings_and_unsubscribed_pushes() {
        let mut s = session();
        let mut io = Io::new(Timestamp(0));
        s.open(&mut io);
        assert_eq!(io.send.len(), 1);
        assert!(io.send[0].contains(r#"{"channel":"books","instId":"BTC-USDT-SWAP"}"#));
        let mut io = Io::new(Timestamp(0));
        s.on_tick(Timestamp(3 * Timestamp::MICROS_PER_SECOND), &mut io);
        assert!(io.reconnect.is_none() && io.send.is_empty());
        s.on_tick(Timestamp(11 * Timestamp::MICROS_PER_SECOND), &mut io);
        assert!(io.reconnect.unwrap().contains("no acknowledgement"));
        for (channel, inst) in [
            ("books", "BTC-USDT"),
            ("trades", "BTC-USDT"),
            ("tickers", "BTC-USDT"),
            ("books", "BTC-USDT-SWAP"),
            ("trades", "BTC-USDT-SWAP"),
            ("tickers", "BTC-USDT-SWAP"),
        ] {
            feed(
                &mut s,
                &format!(
                    r#"{{"event":"subscribe","arg":{{"channel":"{channel}","instId":"{inst}"}},"connId":"a4d3ae55"}}"#
                ),
            );
        }
        let mut io = Io::new(Timestamp(0));
        s.on_tick(Timestamp(12 * Timestamp::MICROS_PER_SECOND), &mut io);
        assert!(io.reconnect.is_none(), "every argument acknowledged");
        // Idle for `ping_after` (15 s): one text ping; the pong resets the timer.
        let mut io = Io::new(Timestamp(0));
        s.on_tick(
            Timestamp(16 * Timestamp::MICROS_PER_SECOND + 1_000_000),
            &mut io,
        );
        s.on_tick(
            Timestamp(17 * Timestamp::MICROS_PER_SECOND + 1_000_000),
            &mut io,
        );
        assert_eq!(io.send, ["ping"]);
        assert!(kinds(&feed(&mut s, "pong")).is_empty());
        let io = feed(
            &mut s,
            include_str!("../../../test_data/okx/ws_subscribe_error.json"),
        );
        assert_eq!(kinds(&io), ["invalid_message"]);
        assert!(io.reconnect.unwrap().contains("60012"));
        let io = feed(
            &mut s,
            include_str!("../../../test_data/okx/ws_notice_event.json"),
        );
        assert!(io.reconnect.unwrap().contains("service upgrade"));
        let io = feed(&mut s, &book("ETH-USDT", "snapshot", -1, 1, "100"));
        assert!(
            io.events.is_empty() && io.ignored == 1,
            "not subscribed: ignored"
        );
        let io = feed(
            &mut s,
            r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"bids":[["1x","1","0","1"]],"ts":"1","prevSeqId":1,"seqId":2}]}"#,
        );
        assert_eq!(kinds(&io), ["invalid_message"]);
        let io = feed(&mut s, "{oops");
        assert_eq!(kinds(&io), ["invalid_message"]);
    }

    #[test]
    fn tickers_become_venue_tickers_and_bad_ones_are_counted_not_fatal() {
        let mut s = session();
        let text = include_str!("../../../test_data/okx/ws_tickers_swap_update.json");
        let io = feed(&mut s, text);
        let [FeedEvent::Ticker { symbol, ticker }] = io.events.as_slice() else {
            panic!("{:?}", io.events)
        };
        assert_eq!(symbol.as_str(), "BTC-USDT-PERP");
        assert_eq!(ticker.recv_ts, Timestamp(1_000_000));
        let io = feed(
            &mut s,
            &text.replace("\"103700\",\"lastSz\"", "\"x\",\"lastSz\""),
        );
        assert_eq!(kinds(&io), ["invalid_message"]);
        let FeedEvent::Invalid { symbol, .. } = &io.events[0] else {
            panic!()
        };
        assert!(symbol.is_none(), "a bad ticker never rebuilds a book");
        assert!(io.send.is_empty() && io.reconnect.is_none());
    }

    #[test]
    fn trades_are_deduplicated_by_id() {
        let mut s = session();
        let text = include_str!("../../../test_data/okx/ws_trades_update.json");
        assert_eq!(feed(&mut s, text).events.len(), 1);
        assert!(feed(&mut s, text).events.is_empty(), "duplicate dropped");
    }
}
