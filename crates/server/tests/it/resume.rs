//! Resume after a reconnect: exact replay with `recovered: true`, or `recovered: false` with a
//! fresh snapshot (book) or a gap notice (trades), never a partial replay.

use crate::support::*;
use protocol::ServerMessage;
use std::collections::BTreeMap;
use std::time::Duration;

const BOOK: &str = "book:sim:BTC-USDT";
const TRADES: &str = "trades:sim:BTC-USDT";

/// Subscribes to both channels and reads until each has moved a few messages; returns the last
/// `(epoch, seq)` seen per channel and the book mirror.
async fn read_some(ws: &mut Ws) -> (BTreeMap<String, (String, u64)>, Mirror) {
    send(
        ws,
        &format!(r#"{{"op":"subscribe","channels":["{BOOK}","{TRADES}"]}}"#),
    )
    .await;
    let mut last = BTreeMap::new();
    let mut mirror = Mirror::default();
    while last.get(TRADES).is_none_or(|(_, s): &(String, u64)| *s < 5) || mirror.seq < 5 {
        match recv(ws).await {
            ServerMessage::Snapshot(d) if d.channel == BOOK => {
                last.insert(d.channel.clone(), (d.epoch.clone(), d.seq));
                mirror.reset(&d);
            }
            ServerMessage::Update(d) if d.channel == BOOK => mirror.update(&d),
            ServerMessage::Update(d) => {
                last.insert(d.channel.clone(), (d.epoch.clone(), d.seq));
            }
            _ => continue,
        }
    }
    (last, mirror)
}

fn resume_op(positions: &[(&str, &str, u64)]) -> String {
    let channels: Vec<_> = positions.iter().map(|p| p.0).collect();
    let resume: serde_json::Map<_, _> = positions
        .iter()
        .map(|(c, e, s)| (c.to_string(), serde_json::json!({"epoch": e, "seq": s})))
        .collect();
    serde_json::json!({"op":"subscribe","id":9,"channels":channels,"resume":resume}).to_string()
}

#[tokio::test]
async fn a_short_disconnect_is_recovered_exactly() {
    let gateway = start(config(200.0)).await;
    let mut ws = connect(&gateway).await;
    let (last, mut mirror) = read_some(&mut ws).await;
    let (epoch, trades_seq) = last[TRADES].clone();
    let book_epoch = last[BOOK].0.clone();
    drop(ws);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ws = connect(&gateway).await;
    send(
        &mut ws,
        &resume_op(&[
            (BOOK, &book_epoch, mirror.seq),
            (TRADES, &epoch, trades_seq),
        ]),
    )
    .await;
    let ServerMessage::Subscribed { recovered, .. } = recv(&mut ws).await else {
        panic!("ack first")
    };
    assert!(recovered[BOOK]);
    assert!(recovered[TRADES]);
    let mut trades_next = trades_seq + 1;
    let mut book_updates = 0;
    while book_updates < 100 || trades_next < trades_seq + 20 {
        match recv(&mut ws).await {
            ServerMessage::Update(d) if d.channel == BOOK => {
                // Replayed deltas apply on the old mirror: no snapshot needed.
                mirror.update(&d);
                assert_eq!(Some(mirror.checksum()), d.checksum);
                book_updates += 1;
            }
            ServerMessage::Update(d) => {
                assert_eq!(d.seq, trades_next, "every trades seq exactly once");
                trades_next += 1;
            }
            other => panic!("only updates after a recovered resume, got {other:?}"),
        }
    }
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn an_unrecoverable_position_gets_a_snapshot_or_a_gap_notice() {
    let mut config = config(200.0);
    config.hub.history_size = 16;
    let gateway = start(config).await;
    let mut ws = connect(&gateway).await;
    let (last, mirror) = read_some(&mut ws).await;
    let (epoch, trades_seq) = last[TRADES].clone();
    let book_epoch = last[BOOK].0.clone();
    drop(ws);
    // 200 events/s for 1 s: far more than 16 frames of history.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cases = [
        (book_epoch.as_str(), epoch.as_str(), "history_expired"),
        ("old-epoch", "old-epoch", "epoch_changed"),
    ];
    for (book_epoch, trades_epoch, reason) in cases {
        let mut ws = connect(&gateway).await;
        send(
            &mut ws,
            &resume_op(&[
                (BOOK, book_epoch, mirror.seq),
                (TRADES, trades_epoch, trades_seq),
            ]),
        )
        .await;
        let ServerMessage::Subscribed { recovered, .. } = recv(&mut ws).await else {
            panic!("ack first")
        };
        assert_eq!((recovered[BOOK], recovered[TRADES]), (false, false));
        let (mut snapshot, mut gap) = (false, false);
        while !(snapshot && gap) {
            match recv(&mut ws).await {
                ServerMessage::Snapshot(d) => {
                    assert_eq!(d.channel, BOOK);
                    assert!(d.resync, "the replacement book is marked as a resync");
                    snapshot = true;
                }
                ServerMessage::Gap {
                    channel,
                    from_seq,
                    to_seq,
                    reason: why,
                } => {
                    assert_eq!(channel, TRADES);
                    assert_eq!(why, reason);
                    if reason == "history_expired" {
                        assert_eq!(from_seq, trades_seq + 1);
                        assert!(to_seq > from_seq + 16);
                    }
                    gap = true;
                }
                ServerMessage::Update(d) => {
                    assert!(
                        d.channel != BOOK || snapshot,
                        "no book delta before its snapshot"
                    );
                    assert!(d.channel != TRADES || gap, "no trade before the gap notice");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn bad_resume_requests_are_rejected_with_a_code() {
    let gateway = start(config(5.0)).await;
    let mut ws = connect(&gateway).await;
    let cases = [
        format!(
            r#"{{"op":"subscribe","id":1,"channels":["{BOOK}"],"resume":{{"{TRADES}":{{"epoch":"e","seq":1}}}}}}"#
        ),
        format!(
            r#"{{"op":"subscribe","id":1,"channels":["{BOOK}"],"resume":{{"{BOOK}":{{"epoch":"e"}}}}}}"#
        ),
        format!(r#"{{"op":"subscribe","id":1,"channels":["{BOOK}"],"resume":[1]}}"#),
    ];
    for case in cases {
        send(&mut ws, &case).await;
        let ServerMessage::Error(error) = recv(&mut ws).await else {
            panic!("{case} must be rejected")
        };
        assert_eq!(error.code, protocol::ErrorCode::BadRequest, "{case}");
        assert_eq!(error.id, Some(protocol::RequestId::Num(1)));
    }
    // The connection is still usable.
    send(&mut ws, r#"{"op":"ping","id":2}"#).await;
    assert!(matches!(recv(&mut ws).await, ServerMessage::Pong { .. }));
    gateway.stop().await.unwrap();
}
