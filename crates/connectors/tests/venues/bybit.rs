//! Bybit v5 against the mock: consecutive update ids, snapshots that reset, every fault
//! rebuilds only the affected symbol, spot and linear side by side (two endpoints), the ping
//! keeps an idle connection.

use crate::support::*;
use book::ChecksumAlgo;
use connectors::FeedEvent;
use connectors::conn::WsConnector;
use connectors::mock::bybit::MockBybit;
use connectors::settings::VenueSpec;
use connectors::venue::bybit::BybitProtocol;
use std::sync::Arc;
use std::time::Duration;

const SYMBOLS: [&str; 2] = ["BTC-USDT", "BTC-USDT-PERP"];

fn start(mock: &MockBybit) -> Harness {
    let spec = VenueSpec {
        symbols: SYMBOLS.iter().map(|s| sym(s)).collect(),
        ws_url: Some(mock.ws_url()),
        rest_url: Some(mock.rest_url()),
        feed: fast_feed(),
    };
    let protocol = Arc::new(BybitProtocol::new(spec).unwrap());
    Harness::start(
        Box::new(WsConnector::new(protocol)),
        ChecksumAlgo::None,
        None,
    )
}

async fn drive(mock: &MockBybit, h: &Harness, what: &str, cond: impl Fn(&Seen) -> bool) {
    h.drive(what, || mock.step(1), cond).await;
}

async fn converged(mock: &MockBybit, h: &Harness, symbol: &str) {
    let truth = mock.truth(symbol);
    h.wait(10, &format!("{symbol} equal to the ground truth"), |s| {
        s.top(symbol, usize::MAX).as_ref() == Some(&truth)
    })
    .await;
}

async fn live_and_converged(mock: &MockBybit, h: &Harness) {
    drive(mock, h, "books live", |s| SYMBOLS.iter().all(|x| s.live(x))).await;
    mock.step(20);
    for symbol in SYMBOLS {
        converged(mock, h, symbol).await;
    }
}

/// Issue 15: linear tickers feed funding, mark and open interest (deltas merged: the mark
/// moves, the index stays the snapshot's) and allLiquidation feeds liquidations; spot none.
#[tokio::test]
async fn linear_funding_mark_oi_and_liquidations() {
    let mock = MockBybit::start(&SYMBOLS).await.unwrap();
    let h = start(&mock);
    live_and_converged(&mock, &h).await;
    let perp = sym("BTC-USDT-PERP");
    let count = |s: &Seen, want: &str| {
        s.log
            .iter()
            .filter(|e| match e {
                FeedEvent::Funding { symbol, .. } => want == "funding" && *symbol == perp,
                FeedEvent::Mark { symbol, .. } => want == "mark" && *symbol == perp,
                FeedEvent::OpenInterest { symbol, .. } => want == "oi" && *symbol == perp,
                FeedEvent::Liquidation { symbol, .. } => want == "liq" && *symbol == perp,
                _ => false,
            })
            .count()
    };
    drive(&mock, &h, "perpetual figures", |s| {
        count(s, "funding") >= 1 && count(s, "mark") >= 3 && count(s, "liq") >= 2
    })
    .await;
    h.with(|s| {
        let d = |x: &str| model::parse_decimal(x).unwrap();
        let mut marks = Vec::new();
        for e in &s.log {
            match e {
                FeedEvent::Funding {
                    symbol, funding, ..
                } => {
                    assert_eq!(*symbol, perp, "only the perpetual has funding");
                    assert_eq!(funding.rate, d("0.0001"));
                    assert_eq!(
                        funding.next_funding_ts,
                        Some(model::Timestamp::from_millis(1_673_280_000_000))
                    );
                }
                FeedEvent::Mark { mark, .. } => marks.push(mark.clone()),
                FeedEvent::OpenInterest { oi, .. } => assert_eq!(oi.oi, d("1234.5")),
                FeedEvent::Liquidation { liquidation, .. } => {
                    assert_eq!(liquidation.side, model::Side::Sell, "a long liquidated");
                    assert_eq!(liquidation.size, d("0.010"));
                }
                _ => {}
            }
        }
        assert!(marks.iter().all(|m| m.index == Some(d("16580.00"))));
        assert_eq!(
            count(s, "oi"),
            count(s, "funding"),
            "both from snapshots only"
        );
    });
    h.stop().await;
}

/// Issue 15: Bybit's own tickers reach the gateway whole: linear deltas (only `lastPrice` and
/// `volume24h` here) are merged into the snapshot, so `change_24h` still uses its
/// `prevPrice24h`; a bad one is counted and nothing else moves.
#[tokio::test]
async fn native_tickers_with_linear_deltas_merged_and_bad_ones_counted() {
    let mock = MockBybit::start(&SYMBOLS).await.unwrap();
    let h = start(&mock);
    live_and_converged(&mock, &h).await;
    drive(&mock, &h, "tickers for both", |s| {
        SYMBOLS
            .iter()
            .all(|x| s.tickers.get(&sym(x)).is_some_and(|t| t.len() >= 3))
    })
    .await;
    h.with(|s| {
        for symbol in SYMBOLS {
            let t = s.tickers[&sym(symbol)].last().unwrap();
            let volume = t.volume_24h.unwrap().to_string();
            assert!(
                volume.ends_with(".5") && volume != "1000.5",
                "{symbol}: {volume}"
            );
            assert_eq!(t.change_24h.unwrap().to_string(), "78.50", "{symbol}");
            assert_eq!(t.high_24h.unwrap().to_string(), "17000", "{symbol}");
        }
    });
    let (invalid, snapshots) = h.with(|s| (s.invalid.len(), s.snapshots("BTC-USDT")));
    mock.bad_ticker("BTC-USDT");
    h.wait(5, "bad ticker counted", |s| s.invalid.len() > invalid)
        .await;
    let count = h.with(|s| s.tickers[&sym("BTC-USDT")].len());
    drive(&mock, &h, "tickers go on", |s| {
        s.tickers[&sym("BTC-USDT")].len() > count
    })
    .await;
    h.with(|s| {
        assert!(s.invalid[invalid].0.is_none(), "{:?}", s.invalid[invalid]);
        assert!(s.invalid[invalid].1.contains("tickers lastPrice"));
        assert_eq!(
            s.snapshots("BTC-USDT"),
            snapshots,
            "the book is not rebuilt"
        );
    });
    h.stop().await;
}

#[tokio::test]
async fn spot_and_linear_books_follow_the_ground_truth_with_metadata_and_trades() {
    let mock = MockBybit::start(&SYMBOLS).await.unwrap();
    let h = start(&mock);
    live_and_converged(&mock, &h).await;
    mock.step(200);
    for symbol in SYMBOLS {
        converged(&mock, &h, symbol).await;
    }
    h.with(|s| {
        assert!(
            s.book_errors.is_empty() && s.invalid.is_empty(),
            "{:?} {:?}",
            s.book_errors,
            s.invalid
        );
        let lots: Vec<(&str, String)> = s
            .instruments
            .iter()
            .map(|i| (i.symbol.as_str(), i.lot_size.to_string()))
            .collect();
        assert_eq!(
            lots,
            [
                ("BTC-USDT", "0.000001".to_string()),
                ("BTC-USDT-PERP", "0.001".to_string())
            ],
            "both categories fetched"
        );
        assert!(s.trades[&sym("BTC-USDT-PERP")].len() >= 200);
    });
    let frames = mock.control.frames_in();
    let connections: std::collections::HashSet<usize> = frames.iter().map(|f| f.1).collect();
    assert_eq!(connections.len(), 2, "one connection per category");
    h.stop().await;
}

#[tokio::test]
async fn every_message_fault_rebuilds_only_that_symbol() {
    type Fault = fn(&MockBybit, &str);
    // (name, fault, rebuilds the book?, cause the connector reports). Bybit publishes no
    // checksum: there is no wrong-checksum fault to inject.
    let cases: [(&str, Fault, bool, Option<&str>); 6] = [
        ("gap", |m, s| m.skip_next(s), true, Some("gap")),
        ("duplicate", |m, s| m.duplicate_next(s), false, None),
        ("reorder", |m, s| m.reorder_next(s), true, Some("gap")),
        (
            "bad frame",
            |m, s| m.corrupt_next(s),
            true,
            Some("invalid_message"),
        ),
        ("re-snapshot", |m, s| m.resnapshot(s, false), true, None),
        (
            "service restart (u = 1)",
            |m, s| m.resnapshot(s, true),
            true,
            None,
        ),
    ];
    let mock = MockBybit::start(&SYMBOLS).await.unwrap();
    let h = start(&mock);
    live_and_converged(&mock, &h).await;
    let mut expected = 1;
    for (name, fault, rebuilds, cause) in cases {
        let invalid_before = h.with(|s| s.invalid.len());
        fault(&mock, "BTC-USDT");
        mock.step(3);
        if rebuilds {
            expected += 1;
        }
        drive(&mock, &h, name, |s| {
            s.snapshots("BTC-USDT") == expected && s.live("BTC-USDT")
        })
        .await;
        mock.step(5);
        converged(&mock, &h, "BTC-USDT").await;
        converged(&mock, &h, "BTC-USDT-PERP").await;
        h.with(|s| {
            assert_eq!(s.snapshots("BTC-USDT"), expected, "{name}");
            assert_eq!(
                s.snapshots("BTC-USDT-PERP"),
                1,
                "{name}: the perpetual is never reset"
            );
            let causes: Vec<&str> = s.invalid[invalid_before..]
                .iter()
                .map(|(_, r)| r.split(':').next().unwrap_or_default())
                .collect();
            assert_eq!(causes, cause.into_iter().collect::<Vec<_>>(), "{name}");
        });
    }
    h.with(|s| {
        assert!(
            s.book_errors.is_empty(),
            "the connector caught every fault before the book did: {:?}",
            s.book_errors
        )
    });
    let unsubs: Vec<String> = mock
        .control
        .frames_in()
        .iter()
        .filter(|f| f.2.contains("unsubscribe"))
        .map(|f| f.2.clone())
        .collect();
    assert_eq!(unsubs.len(), 3, "gap, reorder, bad frame: {unsubs:?}");
    assert!(
        unsubs
            .iter()
            .all(|f| f.contains(r#"["orderbook.50.BTCUSDT"]"#))
    );
    mock.send_garbage();
    h.wait(5, "garbage counted", |s| {
        s.invalid
            .iter()
            .any(|(sym, r)| sym.is_none() && r.contains("unparseable"))
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn reconnect_silence_and_the_ping() {
    let mock = MockBybit::start(&SYMBOLS).await.unwrap();
    let h = start(&mock);
    live_and_converged(&mock, &h).await;
    // Idle (no market moves) longer than the silence timeout: the pings are answered, so the
    // connections stay.
    let attempts = mock.control.attempts().len();
    tokio::time::sleep(Duration::from_millis(6500)).await;
    assert_eq!(
        mock.control.attempts().len(),
        attempts,
        "kept alive by ping/pong"
    );
    assert!(
        mock.control
            .frames_in()
            .iter()
            .any(|f| f.2.contains(r#""op":"ping""#))
    );
    mock.control.drop_connections();
    mock.step(10);
    drive(&mock, &h, "fresh snapshots", |s| {
        SYMBOLS.iter().all(|x| s.snapshots(x) == 2 && s.live(x))
    })
    .await;
    for symbol in SYMBOLS {
        converged(&mock, &h, symbol).await;
    }
    let before = mock.control.attempts().len();
    mock.control.set_silent(true);
    tokio::time::sleep(Duration::from_millis(6500)).await;
    mock.control.set_silent(false);
    assert!(mock.control.attempts().len() > before);
    live_and_converged(&mock, &h).await;
    h.stop().await;
}

/// Issue 15 regression: the mock publishes the top 50 of deeper books as Bybit does, so a
/// level entering the window pushes the 50th out with no removal sent. The session drops it
/// locally: the consumer's book (no depth limit of its own, like the gateway's) keeps exactly
/// Bybit's 50 levels and equals the venue's view after every push-out.
#[tokio::test]
async fn levels_pushed_beyond_the_depth_leave_the_book() {
    let mock = MockBybit::start(&SYMBOLS).await.unwrap();
    let h = start(&mock);
    live_and_converged(&mock, &h).await;
    let before = mock.pushed_out();
    for round in 0..10 {
        mock.step(10);
        for symbol in SYMBOLS {
            converged(&mock, &h, symbol).await;
            h.with(|s| {
                let (bids, asks) = s.top(symbol, usize::MAX).unwrap();
                assert!(
                    bids.len() <= connectors::mock::bybit::DEPTH
                        && asks.len() <= connectors::mock::bybit::DEPTH,
                    "round {round} {symbol}: {} bids, {} asks",
                    bids.len(),
                    asks.len()
                );
            });
        }
    }
    assert!(
        mock.pushed_out() > before + 5,
        "the mock pushed levels out silently: {}",
        mock.pushed_out() - before
    );
    h.with(|s| {
        assert!(
            s.book_errors.is_empty() && s.invalid.is_empty(),
            "{:?} {:?}",
            s.book_errors,
            s.invalid
        )
    });
    h.stop().await;
}
