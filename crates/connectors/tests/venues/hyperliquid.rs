//! Hyperliquid against the mock: full `l2Book` snapshots diffed into deltas keep the book
//! equal to the venue's top 20 through every fault; only a bad message rebuilds, and only
//! that coin.

use crate::support::*;
use book::ChecksumAlgo;
use connectors::FeedEvent;
use connectors::conn::WsConnector;
use connectors::mock::hyperliquid::MockHyperliquid;
use connectors::settings::VenueSpec;
use connectors::venue::hyperliquid::HyperliquidProtocol;
use std::sync::Arc;
use std::time::Duration;

const SYMBOLS: [&str; 2] = ["BTC-USDC-PERP", "ETH-USDC-PERP"];

fn start(mock: &MockHyperliquid) -> Harness {
    let spec = VenueSpec {
        symbols: SYMBOLS.iter().map(|s| sym(s)).collect(),
        ws_url: Some(mock.ws_url()),
        rest_url: None,
        feed: fast_feed(),
    };
    let protocol = Arc::new(HyperliquidProtocol::new(spec).unwrap());
    Harness::start(
        Box::new(WsConnector::new(protocol)),
        ChecksumAlgo::None,
        None,
    )
}

async fn drive(mock: &MockHyperliquid, h: &Harness, what: &str, cond: impl Fn(&Seen) -> bool) {
    h.drive(what, || mock.step(1), cond).await;
}

async fn converged(mock: &MockHyperliquid, h: &Harness, symbol: &str) {
    let truth = mock.truth(symbol);
    h.wait(10, &format!("{symbol} equal to the ground truth"), |s| {
        s.top(symbol, usize::MAX).as_ref() == Some(&truth)
    })
    .await;
}

async fn live_and_converged(mock: &MockHyperliquid, h: &Harness) {
    drive(mock, h, "books live", |s| SYMBOLS.iter().all(|x| s.live(x))).await;
    mock.step(20);
    for symbol in SYMBOLS {
        converged(mock, h, symbol).await;
    }
}

#[tokio::test]
async fn diffed_books_follow_the_ground_truth_through_every_fault() {
    type Fault = fn(&MockHyperliquid, &str);
    // (name, fault, rebuilds the book?): a lost, repeated or late snapshot needs no rebuild,
    // the next one carries the whole book.
    let cases: [(&str, Fault, bool); 4] = [
        ("dropped", |m, s| m.skip_next(s), false),
        ("duplicate", |m, s| m.duplicate_next(s), false),
        ("reorder", |m, s| m.reorder_next(s), false),
        ("bad frame", |m, s| m.corrupt_next(s), true),
    ];
    let mock = MockHyperliquid::start(&SYMBOLS).await.unwrap();
    let h = start(&mock);
    live_and_converged(&mock, &h).await;
    // The trades subscriptions go out after the books' (frames are paced 100 ms apart).
    drive(&mock, &h, "trades subscribed", |s| {
        SYMBOLS.iter().all(|x| s.trades.contains_key(&sym(x)))
    })
    .await;
    mock.step(100);
    for symbol in SYMBOLS {
        converged(&mock, &h, symbol).await;
    }
    let mut expected = 1;
    for (name, fault, rebuilds) in cases {
        fault(&mock, "BTC-USDC-PERP");
        mock.step(3);
        if rebuilds {
            expected += 1;
        }
        drive(&mock, &h, name, |s| {
            s.snapshots("BTC-USDC-PERP") == expected && s.live("BTC-USDC-PERP")
        })
        .await;
        mock.step(5);
        converged(&mock, &h, "BTC-USDC-PERP").await;
        converged(&mock, &h, "ETH-USDC-PERP").await;
        h.with(|s| {
            assert_eq!(s.snapshots("BTC-USDC-PERP"), expected, "{name}");
            assert_eq!(
                s.snapshots("ETH-USDC-PERP"),
                1,
                "{name}: ETH is never reset"
            );
        });
    }
    // Trades flow. (Not a count: the mock's broadcast queue drops frames for a connection that
    // lags behind a burst of `step(100)` on a loaded machine, and a lost trade frame is not
    // something the connector can see; the books above are checked against the truth.)
    h.wait(20, "ETH trades", |s| {
        s.trades
            .get(&sym("ETH-USDC-PERP"))
            .is_some_and(|t| !t.is_empty())
    })
    .await;
    h.with(|s| {
        assert!(s.book_errors.is_empty(), "{:?}", s.book_errors);
        assert_eq!(s.invalid.len(), 1, "{:?}", s.invalid);
        assert!(
            s.invalid[0].1.starts_with("invalid_message"),
            "{:?}",
            s.invalid
        );
        assert_eq!(
            s.instruments.len(),
            0,
            "no metadata endpoint: the config's instruments"
        );
    });
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
    let mock = MockHyperliquid::start(&SYMBOLS).await.unwrap();
    let h = start(&mock);
    live_and_converged(&mock, &h).await;
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
            .any(|f| f.2 == r#"{"method":"ping"}"#)
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

/// Issue 15: the mock serves `activeAssetCtx`: funding, mark (index = oracle), open interest
/// and the venue ticker reach the connector's output; a bad context is counted without a
/// symbol (the book is not rebuilt) and the figures keep coming.
#[tokio::test]
async fn active_asset_ctx_end_to_end_with_a_bad_frame_counted() {
    let mock = MockHyperliquid::start(&SYMBOLS).await.unwrap();
    let h = start(&mock);
    live_and_converged(&mock, &h).await;
    let figures = |s: &Seen, symbol: &str| {
        let mut out = (Vec::new(), Vec::new(), Vec::new());
        for event in &s.log {
            match event {
                FeedEvent::Funding {
                    symbol: x, funding, ..
                } if x.as_str() == symbol => {
                    out.0.push(funding.clone());
                }
                FeedEvent::Mark {
                    symbol: x, mark, ..
                } if x.as_str() == symbol => {
                    out.1.push(mark.clone());
                }
                FeedEvent::OpenInterest { symbol: x, oi, .. } if x.as_str() == symbol => {
                    out.2.push(oi.clone());
                }
                _ => {}
            }
        }
        out
    };
    drive(&mock, &h, "every context figure", |s| {
        let (f, m, o) = figures(s, "ETH-USDC-PERP");
        f.len() >= 2
            && m.len() >= 2
            && o.len() >= 2
            && s.tickers
                .get(&sym("ETH-USDC-PERP"))
                .is_some_and(|t| t.len() >= 2)
    })
    .await;
    h.with(|s| {
        let (f, m, o) = figures(s, "ETH-USDC-PERP");
        let rates: Vec<String> = f.iter().map(|f| f.rate.to_string()).collect();
        assert!(
            rates.iter().all(|r| r == "0.0000125" || r == "0.0000130"),
            "{rates:?}"
        );
        assert!(
            f.iter()
                .all(|f| f.next_funding_ts.is_some() && f.predicted_rate.is_none())
        );
        let mark = m.last().unwrap();
        assert!(
            mark.mark.unwrap().to_string().starts_with("68674."),
            "{mark:?}"
        );
        assert!(
            mark.index.unwrap().to_string().starts_with("68673."),
            "oracle: {mark:?}"
        );
        assert!(o.last().unwrap().oi.to_string().ends_with(".5"), "{o:?}");
        let t = s.tickers[&sym("ETH-USDC-PERP")].last().unwrap();
        let last = t.last.unwrap();
        assert!(last.to_string().starts_with("68675."), "mid: {t:?}");
        assert!(t.volume_24h.unwrap().to_string().ends_with(".25"), "{t:?}");
        assert_eq!(
            t.change_24h,
            Some(last - model::parse_decimal(connectors::mock::hyperliquid::PREV_DAY_PX).unwrap())
        );
        assert!(s.invalid.is_empty(), "{:?}", s.invalid);
    });
    let (snapshots, oi_count) = h.with(|s| {
        (
            s.snapshots("ETH-USDC-PERP"),
            figures(s, "ETH-USDC-PERP").2.len(),
        )
    });
    mock.bad_ctx("ETH-USDC-PERP");
    h.wait(5, "bad context counted", |s| !s.invalid.is_empty())
        .await;
    drive(&mock, &h, "contexts go on", |s| {
        figures(s, "ETH-USDC-PERP").2.len() > oi_count + 2
    })
    .await;
    h.with(|s| {
        assert_eq!(s.invalid.len(), 1, "{:?}", s.invalid);
        let (symbol, reason) = &s.invalid[0];
        assert!(symbol.is_none(), "{reason}");
        assert!(reason.contains("activeAssetCtx openInterest"), "{reason}");
        assert_eq!(
            s.snapshots("ETH-USDC-PERP"),
            snapshots,
            "the book is not rebuilt"
        );
        assert!(s.book_errors.is_empty(), "{:?}", s.book_errors);
    });
    converged(&mock, &h, "ETH-USDC-PERP").await;
    h.stop().await;
}
