//! Resume: exact replay from the history or a fresh join, never a partial replay; the replay
//! and the live receiver join without a gap even while another thread publishes.

use hub::{CacheMode, ChannelHandle, Hub, HubConfig, Lost};
use protocol::{DataMessage, ResumeFrom, ServerMessage};
use std::sync::Arc;
use std::time::Duration;

fn hub(history_size: usize) -> Hub {
    Hub::new(HubConfig {
        channel_capacity: 64,
        history_size,
        history_ttl_secs: 10,
    })
}

fn trade_msg() -> DataMessage {
    DataMessage {
        trades: Some(Vec::new()),
        ..Default::default()
    }
}

fn publish(ch: &ChannelHandle, n: u64) {
    for _ in 0..n {
        ch.publish(trade_msg());
    }
}

fn at(ch: &ChannelHandle, seq: u64) -> ResumeFrom {
    ResumeFrom {
        epoch: ch.epoch().to_string(),
        seq,
    }
}

#[test]
fn resume_replays_exactly_the_missed_frames_or_nothing() {
    let hub = hub(8);
    let trades = hub.register("trades:sim:BTC-USDT".parse().unwrap(), CacheMode::None);
    publish(&trades, 20); // history holds 13..=20
    assert_eq!(trades.history_start(), 13);
    // (position, expected outcome, expected replayed seqs)
    let other_epoch = ResumeFrom {
        epoch: "someone-else".into(),
        seq: 19,
    };
    let cases: [(ResumeFrom, Result<(), Lost>, Vec<u64>); 6] = [
        (at(&trades, 20), Ok(()), vec![]),
        (at(&trades, 17), Ok(()), vec![18, 19, 20]),
        (at(&trades, 12), Ok(()), (13..=20).collect()),
        (at(&trades, 11), Err(Lost::HistoryExpired), vec![]),
        (at(&trades, 21), Err(Lost::Ahead), vec![]),
        (other_epoch, Err(Lost::EpochChanged), vec![]),
    ];
    for (from, outcome, seqs) in cases {
        let resumed = trades.resume(&from);
        assert_eq!(resumed.outcome, outcome, "{from:?}");
        let sub = resumed.subscription;
        assert_eq!(sub.seq, 20);
        let got: Vec<u64> = sub.replay.iter().map(|f| f.seq).collect();
        assert_eq!(got, seqs, "{from:?}");
        for frame in &sub.replay {
            let ServerMessage::Update(d) = serde_json::from_str(frame.as_str()).unwrap() else {
                panic!("replayed frames are the published updates")
            };
            assert_eq!(d.seq, frame.seq);
        }
    }
}

#[test]
fn a_resume_that_is_not_recovered_gets_the_latest_value_as_a_resync_snapshot() {
    let hub = hub(4);
    let ticker = hub.register("ticker:sim:BTC-USDT".parse().unwrap(), CacheMode::Latest);
    publish(&ticker, 10);
    let resumed = ticker.resume(&at(&ticker, 2));
    assert_eq!(resumed.outcome, Err(Lost::HistoryExpired));
    let initial = resumed.subscription.initial.expect("latest value");
    let ServerMessage::Snapshot(s) = serde_json::from_str(initial.as_str()).unwrap() else {
        panic!()
    };
    assert_eq!((s.seq, s.resync), (10, true));
}

#[test]
fn history_size_zero_never_recovers_a_missed_frame() {
    let hub = hub(0);
    let trades = hub.register("trades:sim:BTC-USDT".parse().unwrap(), CacheMode::None);
    publish(&trades, 3);
    assert_eq!(trades.resume(&at(&trades, 3)).outcome, Ok(()));
    assert_eq!(
        trades.resume(&at(&trades, 2)).outcome,
        Err(Lost::HistoryExpired)
    );
}

#[tokio::test(start_paused = true)]
async fn frames_older_than_the_ttl_leave_the_history() {
    let hub = hub(100);
    let trades = hub.register("trades:sim:BTC-USDT".parse().unwrap(), CacheMode::None);
    publish(&trades, 5);
    tokio::time::advance(Duration::from_secs(6)).await;
    publish(&trades, 5);
    assert_eq!(trades.resume(&at(&trades, 0)).outcome, Ok(()));
    tokio::time::advance(Duration::from_secs(5)).await;
    // Frames 1..=5 are now 11 s old (ttl 10 s); 6..=10 are 5 s old.
    assert_eq!(
        trades.resume(&at(&trades, 0)).outcome,
        Err(Lost::HistoryExpired)
    );
    assert_eq!(trades.resume(&at(&trades, 5)).outcome, Ok(()));
    assert_eq!(trades.history_start(), 6);
}

#[test]
fn replay_then_live_is_gap_free_while_another_thread_publishes() {
    let hub = hub(100_000);
    let trades = hub.register("trades:sim:BTC-USDT".parse().unwrap(), CacheMode::None);
    publish(&trades, 10);
    let publisher = {
        let trades = Arc::clone(&trades);
        std::thread::spawn(move || publish(&trades, 20_000))
    };
    let mut checked = 0;
    for from in (0..200u64).map(|i| i * 7) {
        let mut sub = trades
            .resume(&at(&trades, from.min(trades.seq())))
            .subscription;
        let mut expect = sub.replay.first().map_or(sub.seq + 1, |f| f.seq);
        for frame in &sub.replay {
            assert_eq!(frame.seq, expect);
            expect += 1;
        }
        assert_eq!(expect, sub.seq + 1, "replay ends at the join seq");
        if let Ok(next) = sub.rx.try_recv() {
            assert_eq!(
                next.seq,
                sub.seq + 1,
                "live continues right after the replay"
            );
            checked += 1;
        }
    }
    publisher.join().unwrap();
    assert!(checked > 0 || trades.seq() == 20_010);
}
