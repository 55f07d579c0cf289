//! Kraken v2 against the mock: CRC32 verified on every message, a bad book resubscribed alone.

use crate::support::*;
use book::ChecksumAlgo;
use connectors::conn::WsConnector;
use connectors::mock::kraken::MockKraken;
use connectors::settings::VenueSpec;
use connectors::venue::kraken::KrakenProtocol;
use std::sync::Arc;
use std::time::Duration;

const SYMBOLS: [&str; 2] = ["BTC-USD", "ETH-USD"];

fn start(mock: &MockKraken) -> Harness {
    let spec = VenueSpec {
        symbols: SYMBOLS.iter().map(|s| sym(s)).collect(),
        ws_url: Some(mock.ws_url()),
        rest_url: Some(mock.rest_url()),
        feed: fast_feed(),
    };
    let protocol = Arc::new(KrakenProtocol::new(spec).unwrap());
    // The reference consumer verifies Kraken's checksum too, like the gateway's book channels.
    Harness::start(
        Box::new(WsConnector::new(protocol)),
        ChecksumAlgo::Kraken,
        None,
    )
}

/// Steps the mock until `cond` holds.
async fn drive(mock: &MockKraken, h: &Harness, what: &str, cond: impl Fn(&Seen) -> bool) {
    h.drive(what, || mock.step(1), cond).await;
}

async fn converged(mock: &MockKraken, h: &Harness, symbol: &str) {
    let truth = mock.truth(symbol);
    h.wait(10, &format!("{symbol} equal to the ground truth"), |s| {
        s.top(symbol, 100).as_ref() == Some(&truth)
    })
    .await;
}

async fn live_and_converged(mock: &MockKraken, h: &Harness) {
    drive(mock, h, "books live", |s| SYMBOLS.iter().all(|x| s.live(x))).await;
    mock.step(30);
    for symbol in SYMBOLS {
        converged(mock, h, symbol).await;
    }
}

/// Issue 15: Kraken's own `ticker` reaches the gateway with Kraken's volume and change
/// (exact numbers); a bad one is counted and nothing else moves.
#[tokio::test]
async fn native_tickers_with_the_venues_figures_and_bad_ones_counted() {
    let mock = MockKraken::start(&SYMBOLS, 10).await.unwrap();
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
            assert!(volume.ends_with(".25"), "{symbol}: {volume}");
            assert_eq!(t.change_24h.unwrap().to_string(), "-216.5", "{symbol}");
        }
    });
    let (invalid, snapshots) = h.with(|s| (s.invalid.len(), s.snapshots("BTC-USD")));
    mock.bad_ticker("BTC-USD");
    h.wait(5, "bad ticker counted", |s| s.invalid.len() > invalid)
        .await;
    let count = h.with(|s| s.tickers[&sym("BTC-USD")].len());
    drive(&mock, &h, "tickers go on", |s| {
        s.tickers[&sym("BTC-USD")].len() > count
    })
    .await;
    h.with(|s| {
        assert!(s.invalid[invalid].0.is_none(), "{:?}", s.invalid[invalid]);
        assert!(s.invalid[invalid].1.contains("ticker last"));
        assert_eq!(s.snapshots("BTC-USD"), snapshots, "the book is not rebuilt");
    });
    h.stop().await;
}

#[tokio::test]
async fn books_stay_equal_to_the_truncated_truth_with_every_checksum_verified() {
    let mock = MockKraken::start(&SYMBOLS, 10).await.unwrap();
    let h = start(&mock);
    live_and_converged(&mock, &h).await;
    mock.step(200);
    for symbol in SYMBOLS {
        converged(&mock, &h, symbol).await;
    }
    // The trade subscription goes out after the book's (frames are paced).
    drive(&mock, &h, "trades", |s| {
        s.trades.contains_key(&sym("ETH-USD"))
    })
    .await;
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
        assert_eq!(s.snapshots("BTC-USD"), 1);
        let btc = &s.instruments[0];
        assert_eq!(
            (btc.symbol.as_str(), btc.tick_size.to_string().as_str()),
            ("BTC-USD", "0.1"),
            "XBT/USD wsname matched"
        );
        assert_eq!(s.trades[&sym("ETH-USD")][0].side, model::Side::Sell);
    });
    let frames = mock.control.frames_in();
    assert!(
        frames[0].2.contains(r#""method":"subscribe""#) && frames[0].2.contains(r#""req_id":1"#)
    );
    assert!(frames[0].2.contains(r#""depth":10"#));
    h.stop().await;
}

#[tokio::test]
async fn checksum_and_frame_faults_resubscribe_only_that_pair() {
    type Fault = fn(&MockKraken, &str);
    let cases: [(&str, Fault); 3] = [
        ("wrong checksum", |m, s| m.wrong_checksum_next(s)),
        ("skipped update", |m, s| m.skip_next(s)),
        ("bad frame", |m, s| m.corrupt_next(s)),
    ];
    let mock = MockKraken::start(&SYMBOLS, 10).await.unwrap();
    let h = start(&mock);
    live_and_converged(&mock, &h).await;
    for (round, (name, fault)) in cases.into_iter().enumerate() {
        fault(&mock, "BTC-USD");
        drive(&mock, &h, name, |s| {
            s.snapshots("BTC-USD") == round + 2 && s.live("BTC-USD")
        })
        .await;
        mock.step(10);
        converged(&mock, &h, "BTC-USD").await;
        converged(&mock, &h, "ETH-USD").await;
        h.with(|s| assert_eq!(s.snapshots("ETH-USD"), 1, "{name}: ETH never reset"));
    }
    h.with(|s| {
        assert!(
            s.book_errors.is_empty(),
            "the connector caught every fault before the book did: {:?}",
            s.book_errors
        );
        // Regression (issue 15): each rebuild carries its real cause, the label ingest counts
        // (a skipped update shows up as a checksum mismatch: Kraken books have no ids).
        let causes: Vec<&str> = s
            .invalid
            .iter()
            .filter(|(sym, _)| sym.as_ref().is_some_and(|x| x.as_str() == "BTC-USD"))
            .map(|(_, r)| r.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(
            causes,
            ["checksum_mismatch", "checksum_mismatch", "invalid_message"]
        );
    });
    let frames = mock.control.frames_in();
    let unsubs: Vec<&String> = frames
        .iter()
        .map(|f| &f.2)
        .filter(|f| f.contains("unsubscribe"))
        .collect();
    assert_eq!(unsubs.len(), 3);
    assert!(
        unsubs
            .iter()
            .all(|f| f.contains("BTC/USD") && !f.contains("ETH/USD"))
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
async fn reconnect_rebuilds_from_new_snapshots() {
    let mock = MockKraken::start(&SYMBOLS, 10).await.unwrap();
    let h = start(&mock);
    live_and_converged(&mock, &h).await;
    mock.control.drop_connections();
    mock.step(40);
    drive(&mock, &h, "fresh snapshots", |s| {
        SYMBOLS.iter().all(|x| s.snapshots(x) == 2 && s.live(x))
    })
    .await;
    for symbol in SYMBOLS {
        converged(&mock, &h, symbol).await;
    }
    // Silence (no heartbeats either) replaces the connection too.
    let before = mock.control.attempts().len();
    mock.control.set_silent(true);
    tokio::time::sleep(Duration::from_millis(6500)).await;
    mock.control.set_silent(false);
    assert!(mock.control.attempts().len() > before);
    live_and_converged(&mock, &h).await;
    h.stop().await;
}
