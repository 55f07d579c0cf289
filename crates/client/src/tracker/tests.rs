//! The tracker's decisions, message by message.

use super::*;
use protocol::WireLevel;

const BOOK: &str = "book:sim:BTC-USDT";
const TRADES: &str = "trades:sim:BTC-USDT";

fn tracker_with(channels: &[&str]) -> (Tracker, Books) {
    let books = Books::default();
    let mut t = Tracker::new(books.clone(), true);
    let parsed: Vec<Channel> = channels.iter().map(|c| c.parse().unwrap()).collect();
    let (id, _) = t.subscribe(&parsed);
    let mut out = Out::default();
    let positions = channels
        .iter()
        .map(|c| {
            let at = ResumeFrom {
                epoch: "e1".into(),
                seq: 10,
            };
            (c.to_string(), at)
        })
        .collect();
    t.on_message(
        ServerMessage::Subscribed {
            id: Some(RequestId::Num(id)),
            channels: channels.iter().map(|c| c.to_string()).collect(),
            recovered: BTreeMap::new(),
            positions,
        },
        &mut out,
    );
    assert_eq!(out.acks.len(), 1);
    (t, books)
}

fn lv(p: &str, s: &str) -> WireLevel {
    WireLevel(
        model::parse_decimal(p).unwrap(),
        model::parse_decimal(s).unwrap(),
    )
}

fn book_msg(seq: u64, bids: Vec<WireLevel>, asks: Vec<WireLevel>, checksum: u32) -> DataMessage {
    DataMessage {
        channel: BOOK.into(),
        seq,
        epoch: "e1".into(),
        bids: Some(bids),
        asks: Some(asks),
        checksum: Some(checksum),
        ..Default::default()
    }
}

fn trade(seq: u64) -> ServerMessage {
    ServerMessage::Update(DataMessage {
        channel: TRADES.into(),
        seq,
        epoch: "e1".into(),
        trades: Some(Vec::new()),
        ..Default::default()
    })
}

fn seqs(out: &Out) -> Vec<u64> {
    out.events
        .iter()
        .filter_map(|e| Some(e.meta()?.seq))
        .collect()
}

fn resume_of(op: &ClientOp) -> Option<(String, u64)> {
    match op {
        ClientOp::Subscribe { resume, .. } => {
            resume.values().next().map(|r| (r.epoch.clone(), r.seq))
        }
        _ => None,
    }
}

#[test]
fn duplicates_are_dropped_and_a_gap_rejoins_from_the_last_position() {
    let (mut t, _) = tracker_with(&[TRADES]);
    let mut out = Out::default();
    for seq in [11, 12, 12, 11, 13] {
        t.on_message(trade(seq), &mut out);
    }
    assert_eq!(seqs(&out), [11, 12, 13]);
    assert_eq!(t.stats.duplicates, 2);
    // 15 arrives after 13: 14 is missing.
    let mut out = Out::default();
    t.on_message(trade(15), &mut out);
    assert!(out.events.is_empty(), "nothing after a gap is delivered");
    assert!(matches!(out.ops[0], ClientOp::Unsubscribe { .. }));
    assert_eq!(resume_of(&out.ops[1]), Some(("e1".into(), 13)));
    // Until the rejoin is acked, the old subscription's messages are ignored.
    let mut late = Out::default();
    t.on_message(trade(16), &mut late);
    assert!(late.events.is_empty() && late.ops.is_empty());
    let ClientOp::Subscribe { id, .. } = &out.ops[1] else {
        panic!()
    };
    let mut acked = Out::default();
    t.on_message(
        ServerMessage::Subscribed {
            id: id.clone(),
            channels: vec![TRADES.into()],
            recovered: [(TRADES.to_string(), true)].into(),
            positions: BTreeMap::new(),
        },
        &mut acked,
    );
    for seq in 14..=16 {
        t.on_message(trade(seq), &mut acked);
    }
    assert!(
        matches!(&acked.events[0], Event::Recovered { recovered, lost } if recovered.len() == 1 && lost.is_empty())
    );
    assert_eq!(seqs(&acked), [14, 15, 16]);
}

#[test]
fn a_book_that_fails_its_checksum_resyncs_from_a_fresh_snapshot() {
    let (mut t, books) = tracker_with(&[BOOK]);
    let (bids, asks) = (vec![lv("99", "1")], vec![lv("101", "1")]);
    let levels = |w: &[WireLevel]| w.iter().map(|l| Level::from(*l)).collect::<Vec<_>>();
    let sum = book::checksum::tickgate_checksum(&levels(&bids), &levels(&asks));
    let mut out = Out::default();
    t.on_message(
        ServerMessage::Snapshot(book_msg(10, bids.clone(), asks.clone(), sum)),
        &mut out,
    );
    assert!(books.get(BOOK).unwrap().is_live());
    // An update whose checksum does not match what the mirror computes.
    t.on_message(
        ServerMessage::Update(book_msg(11, vec![lv("98", "2")], vec![], sum)),
        &mut out,
    );
    assert!(
        !books.get(BOOK).unwrap().is_live(),
        "a wrong book is not served"
    );
    assert!(matches!(
        &out.events[1],
        Event::Resync { reason, seq: 11, .. } if reason == "client_checksum_mismatch"
    ));
    assert_eq!(
        resume_of(&out.ops[1]),
        None,
        "a fresh snapshot, not a resume onto a bad book"
    );
}

#[test]
fn a_lost_resume_after_reconnect_announces_a_resync_for_books() {
    let (mut t, _) = tracker_with(&[BOOK, TRADES]);
    assert!(t.disconnected().is_empty());
    let ops = t.resubscribe();
    assert_eq!(ops.len(), 1);
    let ClientOp::Subscribe { id, resume, .. } = &ops[0] else {
        panic!()
    };
    assert_eq!(
        resume.len(),
        2,
        "both channels resume from the ack position"
    );
    let mut out = Out::default();
    t.on_message(
        ServerMessage::Subscribed {
            id: id.clone(),
            channels: vec![BOOK.into(), TRADES.into()],
            recovered: [(BOOK.to_string(), false), (TRADES.to_string(), true)].into(),
            positions: [(
                BOOK.to_string(),
                ResumeFrom {
                    epoch: "e2".into(),
                    seq: 3,
                },
            )]
            .into(),
        },
        &mut out,
    );
    assert!(matches!(&out.events[0], Event::Recovered { lost, .. } if lost.len() == 1));
    assert!(matches!(&out.events[1], Event::Resync { reason, .. } if reason == "not_recovered"));
}

#[test]
fn application_requests_are_failed_on_disconnect() {
    let mut t = Tracker::new(Books::default(), true);
    let (id, _) = t.subscribe(&[TRADES.parse().unwrap()]);
    assert_eq!(t.disconnected(), vec![id]);
    assert!(
        t.resubscribe().is_empty(),
        "an unacked channel is not tracked"
    );
}

#[test]
fn a_rate_limited_request_without_id_replaces_the_connection() {
    let (mut t, _) = tracker_with(&[TRADES]);
    let mut out = Out::default();
    t.on_message(trade(13), &mut out); // a gap: a rejoin is now in flight
    assert_eq!(out.ops.len(), 2);
    let mut out = Out::default();
    t.on_message(
        ServerMessage::error(protocol::ErrorCode::RateLimited, "slow down", None),
        &mut out,
    );
    assert!(
        out.reconnect,
        "the refused rejoin would otherwise never be answered"
    );
    assert!(matches!(out.events[0], Event::ServerError(_)));
}

#[test]
fn a_funding_all_snapshot_is_a_typed_comparison_event() {
    const ALL: &str = "funding:all:BTC-USDT-PERP";
    let (mut t, _) = tracker_with(&[ALL]);
    let text = r#"{"type":"snapshot","channel":"funding:all:BTC-USDT-PERP","seq":11,"epoch":"e1","ts":7,"recv_ts":9,
        "funding_all":[{"venue":"bybit","symbol":"BTC-USDT-PERP","funding":{"rate":"-0.0001","ts":7}},
                       {"venue":"okx","symbol":"BTC-USDT-PERP","funding":{"rate":"0.0002","next_funding_ts":1000,"ts":5}}]}"#;
    let mut out = Out::default();
    t.on_message(serde_json::from_str(text).unwrap(), &mut out);
    let [Event::FundingAll(l)] = out.events.as_slice() else {
        panic!("{:?}", out.events)
    };
    assert!(l.snapshot);
    assert_eq!((&*l.meta.channel, l.meta.seq), (ALL, 11));
    let rates: Vec<(&str, String)> = l
        .value
        .iter()
        .map(|v| (v.venue.as_str(), v.funding.rate.to_string()))
        .collect();
    assert_eq!(
        rates,
        [
            ("bybit", "-0.0001".to_string()),
            ("okx", "0.0002".to_string())
        ]
    );
}

/// A cluster edge that loses its bus sends `resync` at the seq the book is already at (it
/// takes no seq of its own): the notice must reach the application and stop the mirror being
/// served, and the resync snapshot that follows rebuilds it.
#[test]
fn a_resync_notice_is_delivered_whatever_its_seq() {
    let (mut t, books) = tracker_with(&[BOOK]);
    let (bids, asks) = (vec![lv("99", "1")], vec![lv("101", "1")]);
    let levels = |w: &[WireLevel]| w.iter().map(|l| Level::from(*l)).collect::<Vec<_>>();
    let sum = book::checksum::tickgate_checksum(&levels(&bids), &levels(&asks));
    let mut out = Out::default();
    t.on_message(
        ServerMessage::Snapshot(book_msg(12, bids.clone(), asks.clone(), sum)),
        &mut out,
    );
    assert!(books.get(BOOK).unwrap().is_live());
    // At the current seq (an edge's `bus_down`), then below it: both delivered.
    for (seq, reason) in [(12, "bus_down"), (7, "bus_down")] {
        let mut out = Out::default();
        t.on_message(
            ServerMessage::Resync {
                channel: BOOK.into(),
                seq,
                reason: reason.into(),
            },
            &mut out,
        );
        assert!(
            matches!(&out.events[..], [Event::Resync { seq: s, reason: r, .. }] if *s == seq && r == reason),
            "{:?}",
            out.events
        );
        assert!(out.ops.is_empty(), "no rejoin: a snapshot is on its way");
        assert!(
            !books.get(BOOK).unwrap().is_live(),
            "a stale book is not served"
        );
    }
    // A single node's notice takes a seq of its own, possibly after a skipped update: still
    // delivered, no rejoin.
    let mut out = Out::default();
    t.on_message(
        ServerMessage::Resync {
            channel: BOOK.into(),
            seq: 14,
            reason: "gap".into(),
        },
        &mut out,
    );
    assert!(matches!(&out.events[..], [Event::Resync { seq: 14, .. }]));
    assert!(out.ops.is_empty());
    // The resync snapshot rebuilds the mirror and is marked as one.
    let mut out = Out::default();
    t.on_message(
        ServerMessage::Snapshot(book_msg(15, bids, asks, sum)),
        &mut out,
    );
    assert!(matches!(&out.events[..], [Event::Snapshot(b)] if b.resync && b.meta.seq == 15));
    assert!(books.get(BOOK).unwrap().is_live());
}
