//! Channel guarantees: gap-free seq, consistent joins, lag detection, stale notices.

use book::{BookError, ChecksumAlgo, StaleReason};
use hub::{CacheMode, FrameKind, Hub, HubConfig};
use model::{BookDelta, BookSnapshot, Channel, Level, parse_decimal};
use protocol::{DataMessage, ServerMessage};
use tokio::sync::broadcast::error::TryRecvError;

fn lv(p: &str, s: &str) -> Level {
    Level::new(parse_decimal(p).unwrap(), parse_decimal(s).unwrap())
}

fn snapshot(seq: u64) -> BookSnapshot {
    BookSnapshot {
        seq,
        bids: vec![lv("99", "1"), lv("98", "2")],
        asks: vec![lv("101", "1")],
        ..Default::default()
    }
}

fn delta(seq: u64, bid: Level) -> BookDelta {
    BookDelta {
        first_seq: seq,
        last_seq: seq,
        bids: vec![bid],
        ..Default::default()
    }
}

fn parse(frame: &hub::Frame) -> ServerMessage {
    serde_json::from_str(frame.as_str()).unwrap()
}

fn hub(capacity: usize) -> Hub {
    Hub::new(HubConfig {
        channel_capacity: capacity,
        ..HubConfig::default()
    })
}

#[test]
fn a_joiner_gets_the_snapshot_at_s_and_then_frames_from_s_plus_1() {
    let hub = hub(64);
    let book = hub.register(
        "book:sim:BTC-USDT".parse().unwrap(),
        CacheMode::Book(ChecksumAlgo::None),
    );
    assert_eq!(book.book_snapshot(&snapshot(10)).unwrap(), 1);
    assert_eq!(book.book_delta(&delta(11, lv("99", "3"))).unwrap(), Some(2));
    let mut joined = book.subscribe(false);
    assert_eq!(joined.seq, 2);
    let initial = joined.initial.take().unwrap();
    assert_eq!((initial.seq, initial.kind), (2, FrameKind::Snapshot));
    let ServerMessage::Snapshot(s) = parse(&initial) else {
        panic!()
    };
    assert_eq!(
        s.bids.unwrap()[0].1,
        parse_decimal("3").unwrap(),
        "snapshot includes update 2"
    );
    assert!(!s.resync);
    book.book_delta(&delta(12, lv("97", "1"))).unwrap();
    let next = joined.rx.try_recv().unwrap();
    assert_eq!((next.seq, next.kind), (3, FrameKind::Update));
    // A duplicate venue delta is ignored and publishes nothing.
    assert_eq!(book.book_delta(&delta(12, lv("97", "1"))).unwrap(), None);
    assert!(matches!(joined.rx.try_recv(), Err(TryRecvError::Empty)));
}

#[test]
fn a_gap_publishes_one_resync_notice_replayed_to_joiners_until_the_next_snapshot() {
    let hub = hub(64);
    let book = hub.register(
        "book:sim:ETH-USDT".parse().unwrap(),
        CacheMode::Book(ChecksumAlgo::None),
    );
    book.book_snapshot(&snapshot(1)).unwrap();
    let mut early = book.subscribe(false);
    let err = book.book_delta(&delta(5, lv("99", "2"))).unwrap_err();
    assert!(matches!(
        err,
        BookError::Gap {
            expected: 2,
            first: 5
        }
    ));
    let notice = early.rx.try_recv().unwrap();
    assert_eq!((notice.seq, notice.kind), (2, FrameKind::Resync));
    assert!(
        matches!(parse(&notice), ServerMessage::Resync { seq: 2, ref reason, .. } if reason == "gap")
    );
    // Deltas while stale are refused and publish nothing; a second stale mark is silent.
    assert!(matches!(
        book.book_delta(&delta(6, lv("99", "2"))),
        Err(BookError::NotLive)
    ));
    book.book_stale(StaleReason::Requested);
    assert!(matches!(early.rx.try_recv(), Err(TryRecvError::Empty)));
    assert!(!book.book_view(10).unwrap().live);
    // A joiner while stale gets the notice, not a book.
    let late = book.subscribe(false);
    assert_eq!(
        late.initial.as_ref().map(|f| (f.seq, f.kind)),
        Some((2, FrameKind::Resync))
    );
    // The fresh snapshot is a resync and takes the next seq.
    assert_eq!(book.book_snapshot(&snapshot(20)).unwrap(), 3);
    let ServerMessage::Snapshot(s) = parse(&early.rx.try_recv().unwrap()) else {
        panic!()
    };
    assert!(s.resync && s.seq == 3);
    let view = book.book_view(1).unwrap();
    assert!(view.live && view.seq == 3 && view.bids.len() == 1);
}

#[test]
fn a_subscriber_further_behind_than_the_capacity_is_told_it_lagged() {
    let hub = hub(16);
    let trades = hub.register("trades:sim:BTC-USDT".parse().unwrap(), CacheMode::None);
    let mut slow = trades.subscribe(false);
    assert!(slow.initial.is_none());
    for _ in 0..40 {
        trades.publish(DataMessage::default());
    }
    assert!(matches!(slow.rx.try_recv(), Err(TryRecvError::Lagged(24))));
    assert_eq!(
        slow.rx.try_recv().unwrap().seq,
        25,
        "continues with the oldest frame kept"
    );
    // Rejoining gives nothing to replay for trades, and frames after the current seq.
    let rejoined = trades.subscribe(true);
    assert_eq!(rejoined.seq, 40);
}

#[test]
fn latest_value_channels_replay_their_last_value_as_a_snapshot() {
    let hub = hub(16);
    let channel: Channel = "ticker:sim:BTC-USDT".parse().unwrap();
    let ticker = hub.register(channel.clone(), CacheMode::Latest);
    assert!(ticker.subscribe(false).initial.is_none());
    ticker.publish(DataMessage {
        ts: 1,
        ..Default::default()
    });
    ticker.publish(DataMessage {
        ts: 2,
        ..Default::default()
    });
    let joined = ticker.subscribe(false);
    let ServerMessage::Snapshot(s) = parse(joined.initial.as_ref().unwrap()) else {
        panic!()
    };
    assert_eq!(
        (s.seq, s.ts, s.channel.as_str()),
        (2, 2, "ticker:sim:BTC-USDT")
    );
    assert!(
        std::sync::Arc::ptr_eq(&hub.get(&channel).unwrap(), &ticker),
        "register is idempotent"
    );
    assert!(std::sync::Arc::ptr_eq(
        &hub.register(channel, CacheMode::Latest),
        &ticker
    ));
    assert_eq!(hub.names(), ["ticker:sim:BTC-USDT"]);
}

#[test]
fn epochs_differ_between_channels_and_hub_instances() {
    let a = hub(16);
    let x = a.register("trades:sim:BTC-USDT".parse().unwrap(), CacheMode::None);
    let y = a.register("trades:sim:ETH-USDT".parse().unwrap(), CacheMode::None);
    assert_ne!(x.epoch(), y.epoch());
    std::thread::sleep(std::time::Duration::from_millis(2));
    let b = hub(16);
    let z = b.register("trades:sim:BTC-USDT".parse().unwrap(), CacheMode::None);
    assert_ne!(x.epoch(), z.epoch(), "a restarted gateway has new epochs");
}

/// Each principal has its own `alerts` channel with the usual seq and resume history; none is
/// listed or reachable by name.
#[test]
fn private_alerts_channels_are_per_owner_and_unlisted() {
    let hub = hub(16);
    let acme = hub.private("acme");
    assert!(std::sync::Arc::ptr_eq(&acme, &hub.private("acme")));
    let other = hub.private("other");
    assert_ne!(acme.epoch(), other.epoch());
    assert_eq!(acme.name().as_ref(), "alerts");
    let seq = acme.publish(DataMessage::default());
    assert_eq!((seq, other.seq()), (1, 0));
    let resumed = acme.resume(&protocol::ResumeFrom {
        epoch: acme.epoch().to_string(),
        seq: 0,
    });
    assert!(resumed.outcome.is_ok());
    assert_eq!(resumed.subscription.replay.len(), 1);
    assert!(hub.names().is_empty() && hub.get_by_name("alerts").is_none());
    assert!(hub.get(&"alerts".parse().unwrap()).is_none());
}
