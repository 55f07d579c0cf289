//! The ingest stage: per-symbol resync, status handling, aggregates published once per batch.

use book::ChecksumAlgo;
use connectors::{Command, ConnectionState, FeedEvent};
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
