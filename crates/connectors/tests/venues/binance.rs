//! Binance Spot against the mock: books equal the ground truth after every fault, recovery is
//! per symbol, limits are respected.

use crate::support::*;
use book::ChecksumAlgo;
use connectors::ConnectionState;
use connectors::conn::WsConnector;
use connectors::mock::binance::MockBinance;
use connectors::settings::VenueSpec;
use connectors::venue::binance::BinanceProtocol;
use std::sync::Arc;
use std::time::Duration;

const SYMBOLS: [&str; 2] = ["BTC-USDT", "ETH-USDT"];

fn spec(mock: &MockBinance, symbols: &[&str]) -> VenueSpec {
    VenueSpec {
        symbols: symbols.iter().map(|s| sym(s)).collect(),
        ws_url: Some(mock.ws_url()),
        rest_url: Some(mock.rest_url()),
        feed: fast_feed(),
    }
}

fn start(spec: VenueSpec) -> Harness {
    let protocol = Arc::new(BinanceProtocol::new(spec).unwrap());
    Harness::start(
        Box::new(WsConnector::new(protocol)),
        ChecksumAlgo::None,
        None,
    )
}

/// Steps the mock until `cond` holds.
async fn drive(mock: &MockBinance, h: &Harness, what: &str, cond: impl Fn(&Seen) -> bool) {
    h.drive(what, || mock.step(1), cond).await;
}

/// Waits until the connector's book of `symbol` equals the mock's truth. The market stays
/// paused while the book is live; while it is being rebuilt the market moves (Binance's
/// algorithm needs a diff before it fetches the snapshot).
async fn converged(mock: &MockBinance, h: &Harness, symbol: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let expected = mock.truth(symbol).1.top(1000);
        let (live, equal) = h.with(|s| {
            (
                s.live(symbol),
                s.top(symbol, 1000).as_ref() == Some(&expected),
            )
        });
        if equal {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{symbol} never equal to the ground truth; {:?}",
            h.with(|s| (
                s.snapshots.clone(),
                s.book_errors.clone(),
                s.statuses.clone()
            ))
        );
        if !live {
            mock.step(1);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn live_and_converged(mock: &MockBinance, h: &Harness) {
    drive(mock, h, "books live", |s| SYMBOLS.iter().all(|x| s.live(x))).await;
    mock.step(20);
    for symbol in SYMBOLS {
        converged(mock, h, symbol).await;
    }
}

/// Issue 15: Binance's own `@ticker` reaches the gateway with Binance's volume and change
/// (exact decimals); a bad one is counted and nothing else moves.
#[tokio::test]
async fn native_tickers_with_the_venues_figures_and_bad_ones_counted() {
    let mock = MockBinance::start(&SYMBOLS).await.unwrap();
    let h = start(spec(&mock, &SYMBOLS));
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
            assert!(volume.ends_with(".25"), "{symbol}: {volume}");
            assert_eq!(t.change_24h.unwrap().to_string(), "-216.50", "{symbol}");
            assert_eq!(t.last.unwrap().to_string(), "65000.10", "{symbol}");
            assert!(t.exchange_ts.0 > 0, "the venue's event time");
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
        assert!(s.invalid[invalid].1.contains("ticker last"));
        assert_eq!(
            s.snapshots("BTC-USDT"),
            snapshots,
            "the book is not rebuilt"
        );
    });
    h.stop().await;
}

#[tokio::test]
async fn books_follow_the_ground_truth_and_trades_carry_the_taker_side() {
    let mock = MockBinance::start(&SYMBOLS).await.unwrap();
    let h = start(spec(&mock, &SYMBOLS));
    live_and_converged(&mock, &h).await;
    h.with(|s| {
        assert_eq!(s.snapshots("BTC-USDT"), 1);
        assert!(s.book_errors.is_empty(), "{:?}", s.book_errors);
        let trades = &s.trades[&sym("BTC-USDT")];
        assert!(!trades.is_empty());
        let ids: Vec<u64> = trades.iter().map(|t| t.id.parse().unwrap()).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "trades in order, no duplicates"
        );
        assert_eq!(s.instruments.len(), 2);
        assert_eq!(
            s.instruments[0].tick_size.to_string(),
            "0.01",
            "metadata from exchangeInfo"
        );
        assert!(
            s.statuses
                .iter()
                .any(|(state, _)| *state == ConnectionState::Connected)
        );
    });
    // Subscriptions went out as SUBSCRIBE frames with ids.
    let frames = mock.control.frames_in();
    assert!(frames[0].2.contains("\"method\":\"SUBSCRIBE\"") && frames[0].2.contains("\"id\":1"));
    h.stop().await;
}

/// One case per fault: which symbol is hit, whether it must be rebuilt from a new snapshot.
#[tokio::test]
async fn message_faults_resync_only_the_affected_symbol() {
    type Fault = fn(&MockBinance, &str);
    let cases: [(&str, Fault, bool); 4] = [
        ("gap", |m, s| m.skip_next(s), true),
        ("duplicate", |m, s| m.duplicate_next(s), false),
        ("reorder", |m, s| m.reorder_next(s), true),
        ("bad frame", |m, s| m.corrupt_next(s), true),
    ];
    let mock = MockBinance::start(&SYMBOLS).await.unwrap();
    let h = start(spec(&mock, &SYMBOLS));
    live_and_converged(&mock, &h).await;
    let mut expected_btc = 1;
    for (name, fault, resync) in cases {
        fault(&mock, "BTC-USDT");
        mock.step(3);
        if resync {
            expected_btc += 1;
        }
        drive(&mock, &h, name, |s| {
            s.snapshots("BTC-USDT") == expected_btc && s.live("BTC-USDT")
        })
        .await;
        mock.step(5);
        converged(&mock, &h, "BTC-USDT").await;
        converged(&mock, &h, "ETH-USDT").await;
        h.with(|s| {
            assert_eq!(s.snapshots("BTC-USDT"), expected_btc, "{name}");
            assert_eq!(
                s.snapshots("ETH-USDT"),
                1,
                "{name}: the other book is never reset"
            );
        });
    }
    // A frame that is not even JSON is counted, and resets nothing.
    mock.send_garbage();
    h.wait(5, "garbage counted", |s| {
        s.invalid
            .iter()
            .any(|(sym, r)| sym.is_none() && r.contains("unparseable"))
    })
    .await;
    mock.step(3);
    converged(&mock, &h, "ETH-USDT").await;
    h.with(|s| assert_eq!(s.snapshots("ETH-USDT"), 1));
    h.stop().await;
}

/// Regression (issue 15): a REST snapshot older than the stream was refused silently (no log,
/// no counter, status stuck at `connecting`); a frame of an unsubscribed stream kind counted as
/// a parse error.
#[tokio::test]
async fn refused_snapshots_are_counted_and_shown_and_unsubscribed_kinds_ignored() {
    use connectors::Connector;
    let mock = MockBinance::start(&SYMBOLS[..1]).await.unwrap();
    mock.stale_snapshots(2);
    let protocol = Arc::new(BinanceProtocol::new(spec(&mock, &SYMBOLS[..1])).unwrap());
    let connector = WsConnector::new(protocol);
    let stats = connector.link_stats().unwrap();
    let h = Harness::start(Box::new(connector), ChecksumAlgo::None, None);
    drive(&mock, &h, "refusal shown in the status", |s| {
        s.statuses.iter().any(|(state, detail)| {
            *state == ConnectionState::Resyncing && detail.contains("older than the stream")
        })
    })
    .await;
    drive(&mock, &h, "live after two refusals", |s| s.live("BTC-USDT")).await;
    mock.step(3);
    converged(&mock, &h, "BTC-USDT").await;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(load(&stats.refused_snapshots), 2);
    h.with(|s| {
        let (state, detail) = s.statuses.last().unwrap();
        assert_eq!(*state, ConnectionState::Connected, "{detail}");
        let refusal = s
            .statuses
            .iter()
            .find(|(_, d)| d.contains("older than the stream"))
            .unwrap();
        assert!(
            refusal.1.contains("BTC-USDT") && refusal.1.contains("lastUpdateId"),
            "{refusal:?}"
        );
    });
    let parse_errors = load(&stats.parse_errors);
    mock.send_book_ticker("BTC-USDT");
    mock.step(1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while load(&stats.ignored_frames) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "bookTicker not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(load(&stats.parse_errors), parse_errors, "not a parse error");
    h.with(|s| assert!(s.invalid.is_empty(), "{:?}", s.invalid));
    h.stop().await;
}

#[tokio::test]
async fn dropped_connection_rebuilds_every_book_from_fresh_snapshots() {
    let mock = MockBinance::start(&SYMBOLS).await.unwrap();
    let h = start(spec(&mock, &SYMBOLS));
    live_and_converged(&mock, &h).await;
    mock.control.drop_connections();
    // The market moves while the gateway is away: merging would leave ghost levels.
    mock.step(30);
    drive(&mock, &h, "fresh snapshots", |s| {
        SYMBOLS.iter().all(|x| s.snapshots(x) == 2 && s.live(x))
    })
    .await;
    mock.step(5);
    for symbol in SYMBOLS {
        converged(&mock, &h, symbol).await;
    }
    h.with(|s| {
        let states: Vec<ConnectionState> = s.statuses.iter().map(|(st, _)| *st).collect();
        assert!(
            states.contains(&ConnectionState::Disconnected),
            "{states:?}"
        );
        assert_eq!(
            states.last(),
            Some(&ConnectionState::Connected),
            "{:?}",
            s.statuses
        );
        assert!(
            SYMBOLS.iter().all(|x| s.unsynced[&sym(x)] >= 1),
            "subscribers were told"
        );
    });
    assert_eq!(mock.control.attempts().len(), 2);
    h.stop().await;
}

#[tokio::test]
async fn unacknowledged_subscription_and_silence_reconnect() {
    let mock = MockBinance::start(&SYMBOLS).await.unwrap();
    mock.control.set_ack_delay(None);
    let h = start(spec(&mock, &SYMBOLS));
    // ack_timeout is 2 s: the connector gives up on this connection and reconnects.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(
        mock.control.attempts().len() >= 2,
        "reconnected after the ack timeout"
    );
    mock.control.set_ack_delay(Some(Duration::from_millis(300)));
    live_and_converged(&mock, &h).await;
    let before = mock.control.attempts().len();
    mock.control.set_silent(true);
    tokio::time::sleep(Duration::from_millis(6500)).await;
    mock.control.set_silent(false);
    assert!(
        mock.control.attempts().len() > before,
        "a silent connection is replaced"
    );
    live_and_converged(&mock, &h).await;
    h.stop().await;
}

#[tokio::test]
async fn a_stale_symbol_is_resubscribed_alone() {
    let mock = MockBinance::start(&SYMBOLS).await.unwrap();
    let mut spec = spec(&mock, &SYMBOLS);
    spec.feed.stale_after_secs = 1;
    spec.feed.silence_secs = 30;
    let h = start(spec);
    live_and_converged(&mock, &h).await;
    // Only ETH moves: BTC's streams look dead.
    for _ in 0..100 {
        mock.step_only(&["ETH-USDT"], 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        if mock
            .control
            .frames_in()
            .iter()
            .any(|(_, _, f)| f.contains("UNSUBSCRIBE") && f.contains("btcusdt"))
        {
            break;
        }
    }
    let frames = mock.control.frames_in();
    assert!(
        frames
            .iter()
            .any(|(_, _, f)| f.contains("UNSUBSCRIBE") && f.contains("btcusdt@depth"))
    );
    assert!(
        !frames
            .iter()
            .any(|(_, _, f)| f.contains("UNSUBSCRIBE") && f.contains("ethusdt"))
    );
    drive(&mock, &h, "BTC rebuilt", |s| {
        s.snapshots("BTC-USDT") == 2 && s.live("BTC-USDT")
    })
    .await;
    // UNSUBSCRIBE and SUBSCRIBE were queued together but sent paced (Binance: <= 5 msgs/s).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let frames = mock.control.frames_in();
    let btc: Vec<_> = frames
        .iter()
        .filter(|(_, _, f)| f.contains("btcusdt"))
        .collect();
    let unsub = btc
        .iter()
        .position(|(_, _, f)| f.contains("UNSUBSCRIBE"))
        .unwrap();
    let resub = btc.get(unsub + 1).expect("a new SUBSCRIBE follows");
    assert!(resub.2.contains("\"SUBSCRIBE\""));
    assert!(
        resub.0 - btc[unsub].0 >= Duration::from_millis(240),
        "frames must be paced"
    );
    h.with(|s| assert_eq!(s.snapshots("ETH-USDT"), 1));
    h.stop().await;
}

#[tokio::test]
async fn server_shutdown_rotates_make_before_break_without_losing_data() {
    let mock = MockBinance::start(&SYMBOLS).await.unwrap();
    let h = start(spec(&mock, &SYMBOLS));
    live_and_converged(&mock, &h).await;
    mock.server_shutdown();
    switch_without_loss(&mock, &h, 10).await;
    h.stop().await;
}

/// The 24 h limit, scaled down: the connection is replaced on schedule, make-before-break.
#[tokio::test]
async fn scheduled_rotation_replaces_the_connection_without_losing_data() {
    let mock = MockBinance::start(&SYMBOLS).await.unwrap();
    let mut spec = spec(&mock, &SYMBOLS);
    spec.feed.rotate_after_secs = 10;
    spec.feed.silence_secs = 30;
    let h = start(spec);
    live_and_converged(&mock, &h).await;
    switch_without_loss(&mock, &h, 20).await;
    h.with(|s| {
        assert!(
            !s.statuses
                .iter()
                .any(|(st, _)| *st == connectors::ConnectionState::Disconnected),
            "a rotation is not a disconnect"
        );
    });
    h.stop().await;
}

/// Keeps the market moving until a second connection replaced the first, then checks that
/// every book continued (no snapshot, no gap) and every trade arrived exactly once.
async fn switch_without_loss(mock: &MockBinance, h: &Harness, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        mock.step(1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let two_seen = mock.control.attempts().len() >= 2;
        if two_seen && mock.control.open_connections() == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no switch to the new connection"
        );
    }
    mock.step(10);
    for symbol in SYMBOLS {
        converged(mock, h, symbol).await;
    }
    h.with(|s| {
        assert!(
            s.book_errors.is_empty(),
            "no gap across the switch: {:?}",
            s.book_errors
        );
        for symbol in SYMBOLS {
            assert_eq!(s.snapshots(symbol), 1, "{symbol}: continued, not rebuilt");
            let ids: Vec<u64> = s.trades[&sym(symbol)]
                .iter()
                .map(|t| t.id.parse().unwrap())
                .collect();
            assert!(
                ids.windows(2).all(|w| w[1] == w[0] + 2),
                "{symbol}: every trade exactly once: {ids:?}"
            );
        }
    });
}

#[tokio::test]
async fn symbols_are_sharded_within_the_stream_limit() {
    let symbols = ["BTC-USDT", "ETH-USDT", "SOL-USDT"];
    let mock = MockBinance::start(&symbols).await.unwrap();
    let mut spec = spec(&mock, &symbols);
    spec.feed.max_streams_per_connection = 3;
    let h = start(spec);
    drive(&mock, &h, "books live", |s| {
        symbols.iter().all(|x| s.live(x))
    })
    .await;
    assert_eq!(
        mock.control.attempts().len(),
        3,
        "one connection per symbol at 3 streams each"
    );
    let frames = mock.control.frames_in();
    let mut per_conn: std::collections::HashMap<usize, usize> = Default::default();
    for (_, conn, frame) in &frames {
        let v: serde_json::Value = serde_json::from_str(frame).unwrap();
        *per_conn.entry(*conn).or_default() += v["params"].as_array().unwrap().len();
    }
    assert_eq!(per_conn.len(), 3);
    assert!(
        per_conn.values().all(|n| *n == 3),
        "at most 3 streams per connection: {per_conn:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn refused_connections_back_off_within_the_jittered_ceiling() {
    let mock = MockBinance::start(&SYMBOLS).await.unwrap();
    mock.control.set_refuse(true);
    let h = start(spec(&mock, &SYMBOLS));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let attempts = mock.control.attempts();
    assert!(attempts.len() >= 5, "kept retrying: {}", attempts.len());
    // base 50 ms, cap 400 ms: the n-th wait is at most min(400, 50·2^n) ms plus handshake time.
    for (n, pair) in attempts.windows(2).enumerate() {
        let ceiling = (50u64 << n.min(10)).min(400);
        let gap = pair[1] - pair[0];
        assert!(
            gap <= Duration::from_millis(ceiling + 150),
            "attempt {n}: waited {gap:?} > {ceiling} ms"
        );
    }
    mock.control.set_refuse(false);
    drive(&mock, &h, "books live after the outage", |s| {
        SYMBOLS.iter().all(|x| s.live(x))
    })
    .await;
    h.stop().await;
}
