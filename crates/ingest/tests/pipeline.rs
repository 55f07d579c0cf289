//! The ingest stage: per-symbol resync, status handling, aggregates published once per batch.

use book::ChecksumAlgo;
use connectors::{Command, ConnectionState, FeedEvent, InvalidCause};
use hub::{Hub, HubConfig};
use ingest::{Market, VenueIngest, VenueStats};
use model::{
    BookDelta, BookSnapshot, Channel, Instrument, Level, Side, Symbol, Timestamp, Trade, Venue,
    parse_decimal,
};
use protocol::ServerMessage;
use std::sync::Arc;
use tokio::sync::mpsc;

fn lv(p: &str, s: &str) -> Level {
    Level::new(parse_decimal(p).unwrap(), parse_decimal(s).unwrap())
}

fn instrument(symbol: &str) -> Instrument {
    Instrument {
        venue: Venue::new("sim").unwrap(),
        symbol: Symbol::new(symbol).unwrap(),
        native_symbol: symbol.replace('-', ""),
        tick_size: parse_decimal("0.01").unwrap(),
        lot_size: parse_decimal("0.001").unwrap(),
    }
}

struct Fixture {
    ingest: VenueIngest,
    hub: Arc<Hub>,
    market: Arc<Market>,
    commands: mpsc::Receiver<Command>,
    stats: Arc<VenueStats>,
}

fn fixture() -> Fixture {
    let hub = Arc::new(Hub::new(HubConfig::default()));
    let market = Arc::new(Market::default());
    let (tx, commands) = mpsc::channel(16);
    let stats = Arc::new(VenueStats::new(Venue::new("sim").unwrap()));
    let ingest = VenueIngest::new(
        Venue::new("sim").unwrap(),
        vec![instrument("BTC-USDT"), instrument("ETH-USDT")],
        ChecksumAlgo::Tickgate,
        hub.clone(),
        market.clone(),
        tx,
        stats.clone(),
    );
    Fixture {
        ingest,
        hub,
        market,
        commands,
        stats,
    }
}

fn sym(s: &str) -> Symbol {
    Symbol::new(s).unwrap()
}

fn snapshot_event(symbol: &str, seq: u64) -> FeedEvent {
    FeedEvent::BookSnapshot {
        symbol: sym(symbol),
        snapshot: BookSnapshot {
            seq,
            bids: vec![lv("100", "1")],
            asks: vec![lv("101", "1")],
            ..Default::default()
        },
    }
}

fn delta_event(symbol: &str, seq: u64, bid: Level) -> FeedEvent {
    FeedEvent::BookDelta {
        symbol: sym(symbol),
        delta: BookDelta {
            first_seq: seq,
            last_seq: seq,
            bids: vec![bid],
            ..Default::default()
        },
    }
}

fn live(hub: &Hub, channel: &str) -> bool {
    hub.get(&channel.parse::<Channel>().unwrap())
        .unwrap()
        .book_view(1)
        .unwrap()
        .live
}

#[test]
fn a_gap_resyncs_only_that_symbol() {
    let mut f = fixture();
    f.ingest.handle_batch(vec![
        snapshot_event("BTC-USDT", 1),
        snapshot_event("ETH-USDT", 1),
    ]);
    f.ingest.handle_batch(vec![
        delta_event("BTC-USDT", 2, lv("100", "2")),
        delta_event("ETH-USDT", 3, lv("100", "2")),
    ]);
    assert_eq!(
        f.commands.try_recv().unwrap(),
        Command::Resync(sym("ETH-USDT"))
    );
    assert!(f.commands.try_recv().is_err(), "exactly one resync request");
    assert!(live(&f.hub, "book:sim:BTC-USDT"));
    assert!(!live(&f.hub, "book:sim:ETH-USDT"));
    // More deltas while waiting do not request again.
    f.ingest
        .handle_batch(vec![delta_event("ETH-USDT", 4, lv("100", "3"))]);
    assert!(f.commands.try_recv().is_err());
    // The fresh snapshot restores it.
    f.ingest.handle_batch(vec![snapshot_event("ETH-USDT", 10)]);
    assert!(live(&f.hub, "book:sim:ETH-USDT"));
    assert_eq!(f.stats.resyncs_total(), 1);
    // A bad checksum is also a per-symbol resync.
    let mut bad = BookDelta {
        first_seq: 3,
        last_seq: 3,
        bids: vec![lv("99", "1")],
        ..Default::default()
    };
    bad.checksum = Some(12345);
    f.ingest.handle_batch(vec![FeedEvent::BookDelta {
        symbol: sym("BTC-USDT"),
        delta: bad,
    }]);
    assert_eq!(
        f.commands.try_recv().unwrap(),
        Command::Resync(sym("BTC-USDT"))
    );
    assert!(live(&f.hub, "book:sim:ETH-USDT"));
}

#[test]
fn invalid_messages_and_disconnects_mark_books_stale() {
    let mut f = fixture();
    f.ingest.handle_batch(vec![
        snapshot_event("BTC-USDT", 1),
        snapshot_event("ETH-USDT", 1),
    ]);
    f.ingest.handle_batch(vec![FeedEvent::Invalid {
        symbol: Some(sym("BTC-USDT")),
        reason: "bad frame".into(),
        cause: InvalidCause::Malformed,
    }]);
    assert!(!live(&f.hub, "book:sim:BTC-USDT"));
    assert!(live(&f.hub, "book:sim:ETH-USDT"));
    assert_eq!(
        f.commands.try_recv().unwrap(),
        Command::Resync(sym("BTC-USDT"))
    );
    f.ingest.handle_batch(vec![FeedEvent::Status {
        state: ConnectionState::Disconnected,
        detail: "socket closed".into(),
    }]);
    assert!(
        !live(&f.hub, "book:sim:ETH-USDT"),
        "no book survives a disconnect"
    );
    let status = f
        .hub
        .get(&"status:sim".parse().unwrap())
        .unwrap()
        .subscribe(false);
    let ServerMessage::Snapshot(s) =
        serde_json::from_str(status.initial.unwrap().as_str()).unwrap()
    else {
        panic!()
    };
    assert_eq!(s.status.unwrap().state, "disconnected");
    // Events for unknown symbols are counted, not crashes.
    f.ingest.handle_batch(vec![snapshot_event("XRP-USDT", 1)]);
    assert_eq!(
        f.stats
            .invalid_messages
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

/// Regression (issue 15): a Kraken checksum mismatch was counted as `invalid_level`. Each
/// rebuild is counted once under its real cause; one line per cause.
#[test]
fn each_resync_is_counted_under_its_real_cause() {
    use ingest::stats::RESYNC_REASONS;
    let invalid = |cause| FeedEvent::Invalid {
        symbol: Some(sym("BTC-USDT")),
        reason: "x".into(),
        cause,
    };
    let unsynced = |reason: &str| FeedEvent::Unsynced {
        symbol: sym("BTC-USDT"),
        reason: reason.into(),
    };
    let crossed = FeedEvent::BookDelta {
        symbol: sym("BTC-USDT"),
        delta: BookDelta {
            first_seq: 2,
            last_seq: 2,
            bids: vec![lv("102", "1")],
            ..Default::default()
        },
    };
    let cases: Vec<(FeedEvent, &str)> = vec![
        (invalid(InvalidCause::ChecksumMismatch), "checksum_mismatch"),
        (invalid(InvalidCause::InvalidLevel), "invalid_level"),
        (invalid(InvalidCause::Malformed), "invalid_message"),
        (invalid(InvalidCause::Gap), "gap"),
        (unsynced("stale"), "stale"),
        (unsynced("overflow"), "overflow"),
        (unsynced("disconnected"), "disconnected"),
        (unsynced("gap"), "gap"),
        (unsynced("resubscribed"), "requested"),
        (delta_event("BTC-USDT", 5, lv("100", "2")), "gap"),
        (crossed, "crossed"),
    ];
    for (event, label) in cases {
        let mut f = fixture();
        f.ingest.handle_batch(vec![snapshot_event("BTC-USDT", 1)]);
        f.ingest.handle_batch(vec![event.clone()]);
        let counts: Vec<(&str, u64)> = RESYNC_REASONS
            .iter()
            .zip(&f.stats.resyncs)
            .map(|(r, c)| (*r, c.load(std::sync::atomic::Ordering::Relaxed)))
            .filter(|(_, c)| *c > 0)
            .collect();
        assert_eq!(counts, [(label, 1)], "{event:?}");
        assert!(!live(&f.hub, "book:sim:BTC-USDT"), "{event:?}");
    }
}

#[test]
fn trades_become_one_message_per_batch_and_feed_ticker_and_candles() {
    let mut f = fixture();
    let trades_channel = f.hub.get(&"trades:sim:BTC-USDT".parse().unwrap()).unwrap();
    let mut rx = trades_channel.subscribe(false).rx;
    let now = Timestamp::now();
    let trade = |id: &str, p: &str, side| FeedEvent::Trade {
        symbol: sym("BTC-USDT"),
        trade: Trade {
            id: id.into(),
            price: parse_decimal(p).unwrap(),
            size: parse_decimal("0.5").unwrap(),
            side,
            exchange_ts: now,
            recv_ts: now,
        },
    };
    f.ingest.handle_batch(vec![
        snapshot_event("BTC-USDT", 1),
        trade("1", "100.5", Side::Buy),
        trade("2", "100.7", Side::Sell),
    ]);
    let ServerMessage::Update(u) = serde_json::from_str(rx.try_recv().unwrap().as_str()).unwrap()
    else {
        panic!()
    };
    let trades = u.trades.unwrap();
    assert_eq!(
        trades.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["1", "2"]
    );
    assert!(rx.try_recv().is_err(), "one message for the batch");
    let entry = f
        .market
        .get(&Venue::new("sim").unwrap(), &sym("BTC-USDT"))
        .unwrap();
    let agg = entry.aggregates.lock();
    let t = agg.ticker.ticker();
    assert_eq!(t.last, Some(parse_decimal("100.7").unwrap()));
    assert_eq!(t.volume_24h, parse_decimal("1.0").unwrap());
    assert_eq!(
        (t.bid, t.ask),
        (
            Some(parse_decimal("100").unwrap()),
            Some(parse_decimal("101").unwrap())
        )
    );
    let candle = agg.candles.recent(model::Interval::M1).pop().unwrap();
    assert_eq!(
        (candle.trades, candle.high),
        (2, parse_decimal("100.7").unwrap())
    );
}

/// Issue 15: a venue's own ticker replaces the trade-derived figures on `ticker:` (published
/// once per batch, marked `"source":"venue"`), best bid/ask staying the gateway's book's.
#[test]
fn a_venue_ticker_is_served_as_the_instruments_ticker() {
    let mut f = fixture();
    let channel = f.hub.get(&"ticker:sim:BTC-USDT".parse().unwrap()).unwrap();
    let mut rx = channel.subscribe(false).rx;
    let d = |s: &str| parse_decimal(s).unwrap();
    let now = Timestamp::now();
    let venue = model::VenueTicker {
        last: Some(d("100.9")),
        volume_24h: Some(d("12345.6")),
        high_24h: Some(d("110")),
        low_24h: Some(d("90")),
        change_24h: Some(d("0.9")),
        exchange_ts: now,
        recv_ts: now,
    };
    let trade = FeedEvent::Trade {
        symbol: sym("BTC-USDT"),
        trade: Trade {
            id: "1".into(),
            price: d("150"),
            size: d("7"),
            side: Side::Buy,
            exchange_ts: now,
            recv_ts: now,
        },
    };
    f.ingest.handle_batch(vec![
        snapshot_event("BTC-USDT", 1),
        FeedEvent::Ticker {
            symbol: sym("BTC-USDT"),
            ticker: venue.clone(),
        },
        trade,
    ]);
    let text = rx.try_recv().unwrap();
    assert!(
        text.as_str().contains(r#""source":"venue""#),
        "{}",
        text.as_str()
    );
    let ServerMessage::Update(u) = serde_json::from_str(text.as_str()).unwrap() else {
        panic!()
    };
    let t = u.ticker.unwrap();
    assert_eq!(
        (t.last, t.volume_24h, t.change_24h, t.bid, t.ask),
        (
            Some(d("100.9")),
            d("12345.6"),
            Some(d("0.9")),
            Some(d("100")),
            Some(d("101"))
        ),
        "the venue's figures, the book's best prices; the trade moves neither"
    );
    assert!(rx.try_recv().is_err(), "one ticker for the batch");
    // An unconfigured symbol's ticker is counted like any event for it.
    let before = f
        .stats
        .invalid_messages
        .load(std::sync::atomic::Ordering::Relaxed);
    f.ingest.handle_batch(vec![FeedEvent::Ticker {
        symbol: sym("XRP-USDT"),
        ticker: venue,
    }]);
    assert_eq!(
        f.stats
            .invalid_messages
            .load(std::sync::atomic::Ordering::Relaxed),
        before + 1
    );
}

#[test]
fn trades_and_closed_candles_reach_the_history_writer_and_open_ones_at_shutdown() {
    use store::{CandleQuery, HistoryConfig, HistoryStore, HistoryWriter, Order, TradeQuery};
    let dir = std::env::temp_dir().join(format!("tickgate-ingest-history-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(store::SqliteHistory::open_in(&dir).unwrap());
    // ETH trades are not stored; BTC's are.
    let config = HistoryConfig {
        exclude: vec!["trades:sim:ETH-USDT".into()],
        ..HistoryConfig::default()
    };
    let filter = config.validate().unwrap();
    let writer = HistoryWriter::start(store.clone(), filter, (&config).into()).unwrap();
    let f = fixture();
    let mut ingest = f.ingest.with_history(writer.sink());
    let minute = model::Interval::M1.micros();
    let t0 = model::Interval::M1.bucket_start(Timestamp::now()).0 - 3 * minute;
    let trade = |symbol: &str, id: &str, p: &str, ts: i64| FeedEvent::Trade {
        symbol: sym(symbol),
        trade: Trade {
            id: id.into(),
            price: parse_decimal(p).unwrap(),
            size: parse_decimal("0.5").unwrap(),
            side: Side::Buy,
            exchange_ts: Timestamp(ts),
            recv_ts: Timestamp(ts),
        },
    };
    ingest.handle_batch(vec![
        trade("BTC-USDT", "1", "100", t0 + 1),
        trade("ETH-USDT", "2", "10", t0 + 2),
        trade("BTC-USDT", "3", "101", t0 + 3),
    ]);
    // The next minute's trade closes the first candle.
    ingest.handle_batch(vec![trade("BTC-USDT", "4", "102", t0 + minute + 5)]);
    // Shutdown inside the second minute: its candle is stored as incomplete.
    ingest.persist_open_candles(Timestamp(t0 + minute + 10));
    writer.close();

    let trades = store
        .trades(&TradeQuery {
            venue: Venue::new("sim").unwrap(),
            symbol: sym("BTC-USDT"),
            from: Timestamp(0),
            to: Timestamp(i64::MAX),
            order: Order::Asc,
            after: None,
            limit: 10,
        })
        .unwrap();
    let ids: Vec<&str> = trades.rows.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["1", "3", "4"]);
    let eth = store
        .count(
            store::HistoryKind::Trades,
            &Venue::new("sim").unwrap(),
            &sym("ETH-USDT"),
            Timestamp(0),
            Timestamp(i64::MAX),
        )
        .unwrap();
    assert_eq!(eth, 0, "excluded by history.exclude");
    let candles = store
        .candles(&CandleQuery {
            venue: Venue::new("sim").unwrap(),
            symbol: sym("BTC-USDT"),
            interval: model::Interval::M1,
            from: Timestamp(0),
            to: Timestamp(i64::MAX),
            order: Order::Asc,
            after: None,
            limit: 10,
        })
        .unwrap()
        .rows;
    assert_eq!(candles.len(), 2);
    assert_eq!(
        (
            candles[0].start.0,
            candles[0].trades,
            candles[0].close.to_string().as_str()
        ),
        (t0, 2, "101")
    );
    assert_eq!((candles[1].trades, candles[1].complete), (1, false));
}

#[test]
fn unsynced_marks_one_book_stale_without_a_resync_command() {
    let mut f = fixture();
    f.ingest.handle_batch(vec![
        snapshot_event("BTC-USDT", 1),
        snapshot_event("ETH-USDT", 1),
    ]);
    let mut rx = f
        .hub
        .get(&"book:sim:BTC-USDT".parse().unwrap())
        .unwrap()
        .subscribe(false)
        .rx;
    f.ingest.handle_batch(vec![FeedEvent::Unsynced {
        symbol: sym("BTC-USDT"),
        reason: "disconnected".into(),
    }]);
    assert!(!live(&f.hub, "book:sim:BTC-USDT"));
    assert!(
        live(&f.hub, "book:sim:ETH-USDT"),
        "the other book is untouched"
    );
    assert!(
        f.commands.try_recv().is_err(),
        "the connector is already rebuilding it"
    );
    let notice: ServerMessage = serde_json::from_str(rx.try_recv().unwrap().as_str()).unwrap();
    assert!(matches!(notice, ServerMessage::Resync { .. }), "{notice:?}");
    f.ingest.handle_batch(vec![snapshot_event("BTC-USDT", 5)]);
    assert!(live(&f.hub, "book:sim:BTC-USDT"));
}

#[test]
fn perpetual_figures_are_served_on_their_own_channels_and_spot_has_none() {
    let hub = Arc::new(Hub::new(HubConfig::default()));
    let (tx, _commands) = mpsc::channel(16);
    let stats = Arc::new(VenueStats::new(Venue::new("sim").unwrap()));
    let mut ingest = VenueIngest::new(
        Venue::new("sim").unwrap(),
        vec![instrument("BTC-USDT-PERP"), instrument("BTC-USDT")],
        ChecksumAlgo::Tickgate,
        hub.clone(),
        Arc::new(Market::default()),
        tx,
        stats.clone(),
    );
    for kind in ["funding", "mark", "oi", "liquidations"] {
        let spot: Channel = format!("{kind}:sim:BTC-USDT").parse().unwrap();
        assert!(
            hub.get(&spot).is_none(),
            "{kind}: spot has no {kind} channel"
        );
    }
    let liq = hub
        .get(&"liquidations:sim:BTC-USDT-PERP".parse().unwrap())
        .unwrap();
    let mut liq_rx = liq.subscribe(false).rx;
    let d = |s: &str| parse_decimal(s).unwrap();
    let (ts, recv) = (Timestamp(1_700_000_000_000_000), Timestamp::now());
    let perp = sym("BTC-USDT-PERP");
    let funding = model::Funding {
        rate: d("0.0001"),
        predicted_rate: None,
        next_funding_ts: Some(Timestamp(1_700_003_600_000_000)),
        ts,
    };
    let liquidation = model::Liquidation {
        side: Side::Sell,
        price: d("30000.5"),
        size: d("0.25"),
        ts,
    };
    ingest.handle_batch(vec![
        FeedEvent::Funding {
            symbol: perp.clone(),
            funding: funding.clone(),
            recv_ts: recv,
        },
        FeedEvent::Mark {
            symbol: perp.clone(),
            mark: model::MarkPrice {
                mark: Some(d("30001")),
                index: Some(d("30000")),
                ts,
            },
            recv_ts: recv,
        },
        FeedEvent::OpenInterest {
            symbol: perp.clone(),
            oi: model::OpenInterest {
                oi: d("1234.5"),
                oi_value: None,
                ts,
            },
            recv_ts: recv,
        },
        FeedEvent::Liquidation {
            symbol: perp.clone(),
            liquidation: liquidation.clone(),
            recv_ts: recv,
        },
        FeedEvent::Liquidation {
            symbol: perp.clone(),
            liquidation: liquidation.clone(),
            recv_ts: recv,
        },
    ]);
    // Funding, mark and open interest: the last value is the snapshot of a late joiner.
    let joined = hub
        .get(&"funding:sim:BTC-USDT-PERP".parse().unwrap())
        .unwrap()
        .subscribe(false);
    let initial = joined.initial.expect("a funding snapshot");
    let ServerMessage::Snapshot(s) = serde_json::from_str(initial.as_str()).unwrap() else {
        panic!("{}", initial.as_str())
    };
    assert_eq!((s.seq, s.funding, s.ts), (1, Some(funding), ts.0));
    for (name, field) in [
        (
            "mark:sim:BTC-USDT-PERP",
            r#""mark":{"mark":"30001","index":"30000""#,
        ),
        ("oi:sim:BTC-USDT-PERP", r#""oi":{"oi":"1234.5""#),
    ] {
        let initial = hub
            .get(&name.parse().unwrap())
            .unwrap()
            .subscribe(false)
            .initial
            .expect(name);
        assert!(initial.as_str().contains(field), "{}", initial.as_str());
    }
    // Liquidations of one batch: one message, no snapshot.
    let text = liq_rx.try_recv().unwrap();
    let ServerMessage::Update(u) = serde_json::from_str(text.as_str()).unwrap() else {
        panic!()
    };
    assert_eq!(u.liquidations, Some(vec![liquidation.clone(), liquidation]));
    assert!(liq_rx.try_recv().is_err(), "one message for the batch");
    assert!(liq.subscribe(false).initial.is_none());
    // Perpetual figures for a spot symbol are counted, not served.
    let before = stats
        .invalid_messages
        .load(std::sync::atomic::Ordering::Relaxed);
    ingest.handle_batch(vec![FeedEvent::Funding {
        symbol: sym("BTC-USDT"),
        funding: model::Funding {
            rate: d("0.0001"),
            predicted_rate: None,
            next_funding_ts: None,
            ts,
        },
        recv_ts: recv,
    }]);
    assert_eq!(
        stats
            .invalid_messages
            .load(std::sync::atomic::Ordering::Relaxed),
        before + 1
    );
}
