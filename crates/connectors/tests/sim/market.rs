//! The true market: determinism and a valid book at every step.

use crate::reference::{RefBook, symbol, zero_timestamps};
use book::checksum::tickgate_checksum;
use connectors::FeedEvent;
use connectors::venue::sim::{SimConfig, SimFaults, SimFeed, SimMarket};
use model::{Decimal, Side, Symbol, Timestamp, Trade};
use std::collections::HashMap;

/// Snapshots of every symbol, then `steps` market events, as the feed sends them.
fn record(config: &SimConfig, steps: usize) -> Vec<FeedEvent> {
    let mut feed = SimFeed::new(config).unwrap();
    let mut events: Vec<FeedEvent> = (0..feed.market().symbol_count())
        .map(|i| feed.snapshot_at(i, Timestamp::now()))
        .collect();
    for _ in 0..steps / 100 {
        feed.generate(100, Timestamp::now(), &mut events);
    }
    zero_timestamps(&mut events);
    events
}

#[test]
fn same_seed_gives_the_same_events_and_another_seed_does_not() {
    let noisy = SimConfig {
        faults: SimFaults {
            drop: 0.05,
            duplicate: 0.05,
            reorder: 0.05,
            corrupt: 0.05,
        },
        ..SimConfig::default()
    };
    for config in [SimConfig::default(), noisy] {
        let first = record(&config, 3000);
        assert!(first.len() > 3000);
        assert_eq!(first, record(&config, 3000));
        let other_seed = SimConfig {
            seed: 43,
            ..config.clone()
        };
        assert_ne!(first, record(&other_seed, 3000));
    }
}

/// Checks, for every delta of every symbol, everything a receiver relies on.
fn check_book_stays_valid(config: &SimConfig, steps: usize) {
    let events = record(config, steps);
    let mut books: HashMap<Symbol, RefBook> = HashMap::new();
    let mut pending_trade: HashMap<Symbol, Trade> = HashMap::new();
    let mut trades = [0usize; 2];
    for event in &events {
        match event {
            FeedEvent::BookSnapshot { symbol, snapshot } => {
                let book = RefBook::from_snapshot(snapshot);
                assert_eq!(snapshot.checksum, Some(book.checksum()));
                books.insert(symbol.clone(), book);
            }
            FeedEvent::Trade { symbol, trade } => {
                assert!(trade.size > Decimal::ZERO);
                trades[usize::from(trade.side == Side::Sell)] += 1;
                let previous = pending_trade.insert(symbol.clone(), trade.clone());
                assert!(previous.is_none(), "two trades without their delta");
            }
            FeedEvent::BookDelta { symbol, delta } => {
                let book = books.get_mut(symbol).expect("snapshot before deltas");
                assert_eq!(
                    delta.first_seq,
                    book.seq + 1,
                    "{symbol}: seqs are contiguous"
                );
                assert_eq!(delta.first_seq, delta.last_seq);
                assert!(!delta.bids.is_empty() || !delta.asks.is_empty());
                if let Some(trade) = pending_trade.remove(symbol) {
                    // A buy lifts the best ask; a sell hits the best bid.
                    let (best, side) = match trade.side {
                        Side::Buy => (book.best_ask().unwrap(), &delta.asks),
                        Side::Sell => (book.best_bid().unwrap(), &delta.bids),
                    };
                    assert_eq!(trade.price, best.price, "{symbol}: trade at the best level");
                    assert!(trade.size <= best.size);
                    let after = side.iter().find(|l| l.price == best.price).unwrap();
                    assert_eq!(
                        after.size,
                        best.size - trade.size,
                        "{symbol}: liquidity taken"
                    );
                }
                book.apply(delta);
                let (bid, ask) = (book.best_bid().unwrap(), book.best_ask().unwrap());
                assert!(bid.price < ask.price, "{symbol} crossed at {}", book.seq);
                let (bids, asks) = book.depth();
                assert!(
                    bids >= config.levels && asks >= config.levels,
                    "{symbol}: depth"
                );
                assert_eq!(
                    delta.checksum,
                    Some(book.checksum()),
                    "{symbol} @ {}",
                    book.seq
                );
                for level in delta.bids.iter().chain(&delta.asks) {
                    assert!(level.size >= Decimal::ZERO);
                    assert_eq!(level.price.scale(), bid.price.scale(), "fixed price scale");
                    assert_eq!(level.size.scale(), bid.size.scale(), "fixed size scale");
                }
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert!(pending_trade.is_empty());
    assert!(
        trades[0] > steps / 20 && trades[1] > steps / 20,
        "{trades:?}"
    );

    // Replaying the feed arrives at exactly the market's own book.
    let mut feed = SimFeed::new(config).unwrap();
    let mut sink = Vec::new();
    for _ in 0..steps / 100 {
        feed.generate(100, Timestamp(0), &mut sink);
    }
    for (symbol, book) in &books {
        let snapshot = feed.market().snapshot(symbol, Timestamp(0)).unwrap();
        assert!(book.matches(&snapshot), "{symbol}");
    }
}

#[test]
fn book_stays_valid_at_default_depth() {
    let config = SimConfig {
        symbols: ["BTC-USDT", "ETH-USDT", "SOL-USDT", "DOGE-USDT"]
            .map(symbol)
            .to_vec(),
        ..SimConfig::default()
    };
    check_book_stays_valid(&config, 20_000);
}

#[test]
fn book_stays_valid_at_minimum_depth() {
    let config = SimConfig {
        levels: 10,
        seed: 7,
        ..SimConfig::default()
    };
    check_book_stays_valid(&config, 20_000);
}

#[test]
fn the_price_walks_and_the_spread_stays_tight() {
    let mut market = SimMarket::new(&SimConfig::default()).unwrap();
    let symbols: Vec<Symbol> = market.symbols().cloned().collect();
    let mut mids: Vec<Vec<Decimal>> = vec![Vec::new(); symbols.len()];
    let mut out = Vec::new();
    for _ in 0..1000 {
        for _ in 0..30 {
            market.step(Timestamp(0), &mut out);
        }
        out.clear();
        for (symbol, mids) in symbols.iter().zip(&mut mids) {
            let book = market.snapshot(symbol, Timestamp(0)).unwrap();
            let (bid, ask) = (book.bids[0].price, book.asks[0].price);
            let mid = (bid + ask) / Decimal::TWO;
            assert!(
                (ask - bid) / mid < Decimal::new(1, 5),
                "{symbol} spread {bid}..{ask}"
            );
            mids.push(mid);
        }
    }
    for (symbol, mids) in symbols.iter().zip(&mids) {
        let low = mids.iter().min().unwrap();
        let high = mids.iter().max().unwrap();
        let range = (high - low) / low;
        assert!(
            range > Decimal::new(1, 4),
            "{symbol} only moved {low}..{high}"
        );
        assert!(range < Decimal::new(1, 1), "{symbol} moved {low}..{high}");
    }
}

/// Generator speed, in release mode, with the cost of one `tickgate_checksum` as the baseline:
/// `cargo test -p connectors --release --test sim -- --ignored --nocapture generator_speed`
#[test]
#[ignore = "benchmark; run in release mode with --nocapture"]
fn generator_speed() {
    let per_second = |seconds: f64, n: u64| n as f64 / seconds / 1e6;
    let book = SimMarket::new(&SimConfig::default())
        .unwrap()
        .snapshot(&symbol("BTC-USDT"), Timestamp(0))
        .unwrap();
    let start = std::time::Instant::now();
    let mut sum = 0u32;
    for _ in 0..200_000 {
        sum = sum.wrapping_add(tickgate_checksum(&book.bids, &book.asks));
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "baseline: tickgate_checksum of the top 10 + 10 levels: {:.2} M/s ({sum})",
        per_second(seconds, 200_000)
    );
    for checksum in [false, true] {
        let config = SimConfig {
            checksum,
            ..SimConfig::default()
        };
        let mut feed = SimFeed::new(&config).unwrap();
        let mut batch = Vec::with_capacity(2000);
        let (mut steps, mut events) = (0u64, 0u64);
        let start = std::time::Instant::now();
        while start.elapsed().as_secs_f64() < 3.0 {
            feed.generate(1000, Timestamp::now(), &mut batch);
            steps += 1000;
            events += batch.len() as u64;
            batch.clear();
        }
        let seconds = start.elapsed().as_secs_f64();
        println!(
            "checksum={checksum}: {:.2} M market events/s ({:.2} M FeedEvents/s; {} levels, {} symbols)",
            per_second(seconds, steps),
            per_second(seconds, events),
            config.levels,
            config.symbols.len(),
        );
    }
}
