//! Coinbase Advanced Trade against the mock: level2 books, `sequence_num` gaps per connection,
//! maker-side trades inverted.

use crate::support::*;
use book::ChecksumAlgo;
use connectors::conn::WsConnector;
use connectors::mock::coinbase::MockCoinbase;
use connectors::settings::VenueSpec;
use connectors::venue::coinbase::CoinbaseProtocol;
use std::sync::Arc;
use std::time::Duration;

const PRODUCTS: [&str; 2] = ["BTC-USD", "ETH-USD"];

fn start(mock: &MockCoinbase, per_connection: usize) -> Harness {
    let mut feed = fast_feed();
    feed.products_per_connection = per_connection;
    let spec = VenueSpec {
        symbols: PRODUCTS.iter().map(|s| sym(s)).collect(),
        ws_url: Some(mock.ws_url()),
        rest_url: Some(mock.rest_url()),
        feed,
    };
    let protocol = Arc::new(CoinbaseProtocol::new(spec).unwrap());
    Harness::start(
        Box::new(WsConnector::new(protocol)),
        ChecksumAlgo::None,
        None,
    )
}

/// Steps the mock until `cond` holds.
async fn drive(mock: &MockCoinbase, h: &Harness, what: &str, cond: impl Fn(&Seen) -> bool) {
    h.drive(what, || mock.step(1), cond).await;
}

async fn converged(mock: &MockCoinbase, h: &Harness, product: &str) {
    let truth = mock.truth(product).top(1000);
    h.wait(10, &format!("{product} equal to the ground truth"), |s| {
        s.top(product, 1000).as_ref() == Some(&truth)
    })
    .await;
}

async fn live_and_converged(mock: &MockCoinbase, h: &Harness) {
    drive(mock, h, "books live", |s| {
        PRODUCTS.iter().all(|x| s.live(x))
    })
    .await;
    mock.step(20);
    for product in PRODUCTS {
        converged(mock, h, product).await;
    }
}

/// Issue 15: Coinbase's own `ticker` reaches the gateway with its volume and the change its
/// percentage implies; ticker frames share the connection's `sequence_num` without breaking
/// book continuity; a bad one is counted and nothing else moves.
#[tokio::test]
async fn native_tickers_share_the_sequence_and_bad_ones_are_counted() {
    let mock = MockCoinbase::start(&PRODUCTS).await.unwrap();
    let h = start(&mock, 2);
    live_and_converged(&mock, &h).await;
    drive(&mock, &h, "tickers for both", |s| {
        PRODUCTS
            .iter()
            .all(|x| s.tickers.get(&sym(x)).is_some_and(|t| t.len() >= 3))
    })
    .await;
    h.with(|s| {
        for product in PRODUCTS {
            let t = s.tickers[&sym(product)].last().unwrap();
            let volume = t.volume_24h.unwrap().to_string();
            assert!(volume.ends_with(".125"), "{product}: {volume}");
            assert_eq!(t.change_24h.unwrap().to_string(), "-447.38", "{product}");
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
        assert!(s.invalid[invalid].1.contains("ticker price"));
        assert_eq!(s.snapshots("BTC-USD"), snapshots, "the book is not rebuilt");
        assert!(s.book_errors.is_empty(), "{:?}", s.book_errors);
    });
    h.stop().await;
}

#[tokio::test]
async fn books_follow_the_truth_and_trades_take_the_aggressor_side() {
    let mock = MockCoinbase::start(&PRODUCTS).await.unwrap();
    let h = start(&mock, 1);
    live_and_converged(&mock, &h).await;
    drive(&mock, &h, "trades", |s| {
        s.trades.contains_key(&sym("BTC-USD"))
    })
    .await;
    h.with(|s| {
        assert!(
            s.book_errors.is_empty() && s.invalid.is_empty(),
            "{:?} {:?}",
            s.book_errors,
            s.invalid
        );
        let trades = &s.trades[&sym("BTC-USD")];
        assert!(
            trades.iter().all(|t| t.side == model::Side::Buy),
            "maker SELL: the aggressor bought"
        );
        assert_eq!(s.instruments[0].tick_size.to_string(), "0.01");
    });
    // One channel per subscribe message, heartbeats included, well within 5 s of connecting.
    assert_eq!(
        mock.control.attempts().len(),
        2,
        "one product per connection"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let frames = mock.control.frames_in();
    let first = frames[0].0;
    let conn0: Vec<&String> = frames
        .iter()
        .filter(|f| f.1 == frames[0].1)
        .map(|f| &f.2)
        .collect();
    assert_eq!(conn0.len(), 4, "level2, market_trades, ticker, heartbeats");
    assert!(
        conn0
            .iter()
            .any(|f| f.contains(r#""channel":"heartbeats""#))
    );
    assert!(conn0.iter().all(|f| f.matches("\"channel\"").count() == 1));
    assert!(frames.iter().all(|f| f.0 - first < Duration::from_secs(2)));
    h.stop().await;
}

#[tokio::test]
async fn sequence_gaps_and_bad_frames_resubscribe_only_that_product() {
    type Fault = fn(&MockCoinbase, &str);
    let cases: [(&str, Fault, bool); 4] = [
        ("lost message", |m, p| m.lose_next(p), true),
        ("duplicate", |m, p| m.duplicate_next(p), false),
        ("out of order", |m, p| m.delay_next(p), true),
        ("bad frame", |m, p| m.corrupt_next(p), true),
    ];
    let mock = MockCoinbase::start(&PRODUCTS).await.unwrap();
    let h = start(&mock, 1);
    live_and_converged(&mock, &h).await;
    let mut expected = 1;
    for (name, fault, resync) in cases {
        fault(&mock, "BTC-USD");
        mock.step(2);
        if resync {
            expected += 1;
        }
        drive(&mock, &h, name, |s| {
            s.snapshots("BTC-USD") == expected && s.live("BTC-USD")
        })
        .await;
        mock.step(5);
        converged(&mock, &h, "BTC-USD").await;
        converged(&mock, &h, "ETH-USD").await;
        h.with(|s| {
            assert_eq!(
                s.snapshots("BTC-USD"),
                expected,
                "{name}: {:?} {:?} {:?}",
                s.invalid,
                s.unsynced,
                s.book_errors
            );
            assert_eq!(
                s.snapshots("ETH-USD"),
                1,
                "{name}: the other product is never reset"
            );
        });
    }
    let unsubscribes: Vec<String> = mock
        .control
        .frames_in()
        .into_iter()
        .map(|f| f.2)
        .filter(|f| f.contains("unsubscribe"))
        .collect();
    assert_eq!(unsubscribes.len(), 3);
    assert!(
        unsubscribes
            .iter()
            .all(|f| f.contains("BTC-USD") && !f.contains("ETH-USD"))
    );
    h.stop().await;
}

#[tokio::test]
async fn reconnect_rebuilds_and_an_unconfirmed_subscription_reconnects() {
    let mock = MockCoinbase::start(&PRODUCTS).await.unwrap();
    let h = start(&mock, 2);
    live_and_converged(&mock, &h).await;
    mock.control.drop_connections();
    mock.step(30);
    drive(&mock, &h, "fresh snapshots", |s| {
        PRODUCTS.iter().all(|x| s.snapshots(x) == 2 && s.live(x))
    })
    .await;
    for product in PRODUCTS {
        converged(&mock, &h, product).await;
    }
    mock.control.set_ack_delay(None);
    mock.control.drop_connections();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(
        mock.control.attempts().len() >= 4,
        "no confirmation within ack_timeout: reconnected"
    );
    mock.control.set_ack_delay(Some(Duration::ZERO));
    live_and_converged(&mock, &h).await;
    h.stop().await;
}
