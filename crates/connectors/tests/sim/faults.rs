//! Each fault does what it promises, deterministically, without touching the true book.

use crate::reference::{RefBook, deltas, seqs_of, symbol};
use connectors::FeedEvent;
use connectors::venue::sim::{SimConfig, SimFaults, SimFeed};
use model::{BookDelta, Decimal, Timestamp};

const STEPS: usize = 3000;

fn with_faults(faults: SimFaults) -> SimConfig {
    SimConfig {
        faults,
        ..SimConfig::default()
    }
}

/// Runs `STEPS` market events; returns what was sent and the feed (for its true book).
fn run(config: &SimConfig) -> (Vec<FeedEvent>, SimFeed) {
    let mut feed = SimFeed::new(config).unwrap();
    let mut events = Vec::new();
    feed.generate(STEPS, Timestamp(0), &mut events);
    (events, feed)
}

/// The true books after the run equal those of a run without faults.
fn assert_true_book_unaffected(feed: &SimFeed) {
    let (_, clean) = run(&SimConfig::default());
    for symbol in clean.market().symbols() {
        assert_eq!(
            feed.market().snapshot(symbol, Timestamp(0)),
            clean.market().snapshot(symbol, Timestamp(0)),
            "{symbol}"
        );
    }
}

fn trades(events: &[FeedEvent]) -> Vec<&FeedEvent> {
    events
        .iter()
        .filter(|e| matches!(e, FeedEvent::Trade { .. }))
        .collect()
}

#[test]
fn drop_leaves_gaps_in_the_sequence() {
    let config = with_faults(SimFaults {
        drop: 0.3,
        ..SimFaults::default()
    });
    let (events, feed) = run(&config);
    let (clean, _) = run(&SimConfig::default());
    let seqs = seqs_of(&events, &symbol("BTC-USDT"));
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "still in order");
    let gaps = seqs.windows(2).filter(|w| w[1] > w[0] + 1).count();
    assert!(gaps > 50, "{gaps} gaps");
    let sent = deltas(&events).count();
    assert!(
        (STEPS * 6 / 10..STEPS * 8 / 10).contains(&sent),
        "{sent} sent"
    );
    assert_eq!(trades(&events), trades(&clean), "trades are never dropped");
    assert_true_book_unaffected(&feed);
}

#[test]
fn duplicate_sends_each_delta_twice() {
    let config = with_faults(SimFaults {
        duplicate: 1.0,
        ..SimFaults::default()
    });
    let (events, feed) = run(&config);
    let seqs = seqs_of(&events, &symbol("ETH-USDT"));
    assert_eq!(seqs.len(), 2 * STEPS / 3);
    for (i, pair) in seqs.chunks(2).enumerate() {
        assert_eq!(pair, [i as u64 + 2, i as u64 + 2]);
    }
    assert_true_book_unaffected(&feed);
}

#[test]
fn reorder_swaps_each_delta_with_the_next_of_its_symbol() {
    let config = with_faults(SimFaults {
        reorder: 1.0,
        ..SimFaults::default()
    });
    let (events, mut feed) = run(&config);
    let sol = symbol("SOL-USDT");
    let seqs = seqs_of(&events, &sol);
    assert_eq!(&seqs[..6], [3, 2, 5, 4, 7, 6]);
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (2..2 + seqs.len() as u64).collect::<Vec<_>>());
    assert_true_book_unaffected(&feed);

    // A snapshot supersedes a held-back delta: nothing older than it is sent afterwards.
    let mut more = Vec::new();
    feed.generate(3, Timestamp(0), &mut more);
    let Some(FeedEvent::BookSnapshot { snapshot, .. }) = feed.snapshot(&sol, Timestamp(0)) else {
        panic!("SOL-USDT is simulated");
    };
    more.clear();
    feed.generate(30, Timestamp(0), &mut more);
    assert!(seqs_of(&more, &sol).iter().all(|&seq| seq > snapshot.seq));
}

#[test]
fn corrupt_keeps_the_true_checksum_so_a_receiver_detects_it() {
    let config = with_faults(SimFaults {
        corrupt: 1.0,
        ..SimFaults::default()
    });
    let mut faulty = SimFeed::new(&config).unwrap();
    let mut clean = SimFeed::new(&SimConfig::default()).unwrap();
    let btc = symbol("BTC-USDT");
    let snapshot = clean.market().snapshot(&btc, Timestamp(0)).unwrap();
    let mut truth = RefBook::from_snapshot(&snapshot);
    let (mut sent, mut real) = (Vec::new(), Vec::new());
    for _ in 0..STEPS {
        sent.clear();
        real.clear();
        faulty.generate(1, Timestamp(0), &mut sent);
        clean.generate(1, Timestamp(0), &mut real);
        let both = deltas(&sent).zip(deltas(&real));
        for ((symbol, bad), (_, good)) in both.filter(|((s, _), _)| **s == btc) {
            assert_ne!(bad, good, "{symbol}: every delta is corrupted");
            assert_eq!(
                bad.checksum, good.checksum,
                "the published checksum is the true one"
            );
            let mut receiver = truth.clone();
            receiver.apply(bad);
            assert_ne!(
                Some(receiver.checksum()),
                bad.checksum,
                "detectable at {}",
                bad.last_seq
            );
            truth.apply(good);
        }
    }
    assert_true_book_unaffected(&faulty);
}

#[test]
fn corrupt_without_checksums_makes_a_size_negative() {
    let config = SimConfig {
        checksum: false,
        ..with_faults(SimFaults {
            corrupt: 1.0,
            ..SimFaults::default()
        })
    };
    let (events, _) = run(&config);
    let negative = |delta: &BookDelta| {
        delta.checksum.is_none()
            && delta
                .bids
                .iter()
                .chain(&delta.asks)
                .any(|l| l.size < Decimal::ZERO)
    };
    assert!(deltas(&events).all(|(_, delta)| negative(delta)));
}

#[test]
fn all_faults_together_are_deterministic_and_leave_the_true_book_alone() {
    let config = with_faults(SimFaults {
        drop: 0.2,
        duplicate: 0.2,
        reorder: 0.2,
        corrupt: 0.2,
    });
    let (events, feed) = run(&config);
    assert_eq!(events, run(&config).0);
    assert_true_book_unaffected(&feed);
}
