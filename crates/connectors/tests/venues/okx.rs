//! OKX v5 against the mock: `seqId` chains and checksums verified, every fault rebuilds only
//! the affected instrument, spot and swap side by side, the text ping keeps an idle connection.

use crate::support::*;
use book::ChecksumAlgo;
use connectors::FeedEvent;
use connectors::conn::WsConnector;
use connectors::mock::okx::MockOkx;
use connectors::settings::VenueSpec;
use connectors::venue::okx::OkxProtocol;
use model::{Funding, Liquidation, MarkPrice, OpenInterest};
use std::sync::Arc;
use std::time::Duration;

const SYMBOLS: [&str; 2] = ["BTC-USDT", "BTC-USDT-PERP"];

fn start(mock: &MockOkx) -> Harness {
    let spec = VenueSpec {
        symbols: SYMBOLS.iter().map(|s| sym(s)).collect(),
        ws_url: Some(mock.ws_url()),
        rest_url: Some(mock.rest_url()),
        feed: fast_feed(),
    };
    let protocol = Arc::new(OkxProtocol::new(spec).unwrap());
    // The reference consumer verifies OKX's checksum, like the gateway's book channels.
    Harness::start(
        Box::new(WsConnector::new(protocol)),
        ChecksumAlgo::Okx,
        None,
    )
}

async fn drive(mock: &MockOkx, h: &Harness, what: &str, cond: impl Fn(&Seen) -> bool) {
    h.drive(what, || mock.step(1), cond).await;
}

async fn converged(mock: &MockOkx, h: &Harness, symbol: &str) {
    let truth = mock.truth(symbol);
    h.wait(10, &format!("{symbol} equal to the ground truth"), |s| {
        s.top(symbol, usize::MAX).as_ref() == Some(&truth)
    })
    .await;
}

async fn live_and_converged(mock: &MockOkx, h: &Harness) {
    drive(mock, h, "books live", |s| SYMBOLS.iter().all(|x| s.live(x))).await;
    mock.step(20);
    for symbol in SYMBOLS {
        converged(mock, h, symbol).await;
    }
}

#[tokio::test]
async fn spot_and_swap_books_follow_the_ground_truth_with_metadata_and_trades() {
    let mock = MockOkx::start(&SYMBOLS).await.unwrap();
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
        assert_eq!(s.snapshots("BTC-USDT-PERP"), 1);
        let lots: Vec<(String, String)> = s
            .instruments
            .iter()
            .map(|i| (i.native_symbol.clone(), i.lot_size.to_string()))
            .collect();
        assert_eq!(
            lots,
            [
                ("BTC-USDT".to_string(), "0.00000001".to_string()),
                ("BTC-USDT-SWAP".to_string(), "0.0001".to_string())
            ],
            "both instTypes fetched; the swap's lot (0.01 contracts) in base units"
        );
        assert!(s.trades[&sym("BTC-USDT-PERP")].len() >= 200);
        // The mock's trades are 0.12060306 contracts of ctVal 0.01 on the swap.
        let sizes = |x: &str| s.trades[&sym(x)].last().unwrap().size.to_string();
        assert_eq!(
            (sizes("BTC-USDT"), sizes("BTC-USDT-PERP")),
            ("0.12060306".into(), "0.0012060306".into())
        );
    });
    let frames = mock.control.frames_in();
    assert!(frames[0].2.contains(r#""op":"subscribe""#));
    assert!(
        frames[0]
            .2
            .contains(r#"{"channel":"books","instId":"BTC-USDT-SWAP"}"#)
    );
    h.stop().await;
}

/// Issue 15: OKX's own `tickers` reach the gateway with base-currency volume (`vol24h` for
/// spot, `volCcy24h` for swaps, never contracts); a bad one is counted and nothing else moves.
#[tokio::test]
async fn native_tickers_with_base_volume_and_bad_ones_counted() {
    let mock = MockOkx::start(&SYMBOLS).await.unwrap();
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
                volume.ends_with(".5"),
                "{symbol}: base volume, got {volume}"
            );
            assert_eq!(t.change_24h.unwrap().to_string(), "219.9", "{symbol}");
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
        assert!(s.invalid[invalid].1.contains("tickers last"));
        assert_eq!(
            s.snapshots("BTC-USDT"),
            snapshots,
            "the book is not rebuilt"
        );
    });
    h.stop().await;
}

#[tokio::test]
async fn every_message_fault_rebuilds_only_that_instrument() {
    type Fault = fn(&MockOkx, &str);
    // (name, fault, rebuilds the book?, cause the connector reports, if it is the one to see it)
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
        // The book verifies OKX's checksum (ChecksumAlgo::Okx), like the gateway's.
        (
            "wrong checksum",
            |m, s| m.wrong_checksum_next(s),
            true,
            None,
        ),
        ("re-snapshot", |m, s| m.resnapshot(s), true, None),
    ];
    let mock = MockOkx::start(&SYMBOLS).await.unwrap();
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
                "{name}: the swap is never reset"
            );
            let causes: Vec<&str> = s.invalid[invalid_before..]
                .iter()
                .map(|(_, r)| r.split(':').next().unwrap_or_default())
                .collect();
            assert_eq!(causes, cause.into_iter().collect::<Vec<_>>(), "{name}");
        });
    }
    h.with(|s| {
        let checksum: Vec<&String> = s.book_errors.iter().map(|(_, e)| e).collect();
        assert_eq!(
            checksum.len(),
            1,
            "only the wrong checksum reached the book: {checksum:?}"
        );
        assert!(checksum[0].contains("checksum"), "{checksum:?}");
    });
    let unsubs = mock
        .control
        .frames_in()
        .iter()
        .filter(|f| f.2.contains("unsubscribe"))
        .map(|f| f.2.clone())
        .collect::<Vec<_>>();
    assert_eq!(
        unsubs.len(),
        4,
        "gap, reorder, bad frame, checksum: {unsubs:?}"
    );
    assert!(unsubs.iter().all(|f| f.contains(r#""instId":"BTC-USDT"}"#)));
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
async fn reconnect_silence_and_the_text_ping() {
    let mock = MockOkx::start(&SYMBOLS).await.unwrap();
    let h = start(&mock);
    live_and_converged(&mock, &h).await;
    // Idle (no market moves) longer than the silence timeout: the session's pings are
    // answered, so the connection stays.
    let attempts = mock.control.attempts().len();
    tokio::time::sleep(Duration::from_millis(6500)).await;
    assert_eq!(
        mock.control.attempts().len(),
        attempts,
        "kept alive by ping/pong"
    );
    assert!(mock.control.frames_in().iter().any(|f| f.2 == "ping"));
    // A dropped connection rebuilds both books from fresh snapshots.
    mock.control.drop_connections();
    mock.step(10);
    drive(&mock, &h, "fresh snapshots", |s| {
        SYMBOLS.iter().all(|x| s.snapshots(x) == 2 && s.live(x))
    })
    .await;
    for symbol in SYMBOLS {
        converged(&mock, &h, symbol).await;
    }
    // Silence (not even pongs) replaces the connection.
    let before = mock.control.attempts().len();
    mock.control.set_silent(true);
    tokio::time::sleep(Duration::from_millis(6500)).await;
    mock.control.set_silent(false);
    assert!(mock.control.attempts().len() > before);
    live_and_converged(&mock, &h).await;
    h.stop().await;
}

/// Issue 15: a swap's book is verified against OKX's checksum over contract sizes in the
/// session (the gateway's book holds base units, where OKX's checksum cannot hold); a wrong
/// one is reported as `checksum_mismatch` and rebuilds the swap alone, which then equals the
/// truth in base units again.
#[tokio::test]
async fn a_wrong_swap_checksum_is_caught_in_contracts_and_rebuilds_only_the_swap() {
    let mock = MockOkx::start(&SYMBOLS).await.unwrap();
    let h = start(&mock);
    live_and_converged(&mock, &h).await;
    let invalid = h.with(|s| s.invalid.len());
    mock.wrong_checksum_next("BTC-USDT-PERP");
    mock.step(3);
    drive(&mock, &h, "swap rebuilt", |s| {
        s.snapshots("BTC-USDT-PERP") == 2 && s.live("BTC-USDT-PERP")
    })
    .await;
    mock.step(5);
    for symbol in SYMBOLS {
        converged(&mock, &h, symbol).await;
    }
    h.with(|s| {
        let causes: Vec<(Option<String>, String)> = s.invalid[invalid..]
            .iter()
            .map(|(sym, r)| {
                (
                    sym.as_ref().map(|x| x.to_string()),
                    r.split(':').next().unwrap_or_default().to_string(),
                )
            })
            .collect();
        assert_eq!(
            causes,
            [(
                Some("BTC-USDT-PERP".to_string()),
                "checksum_mismatch".to_string()
            )]
        );
        assert!(
            s.book_errors.is_empty(),
            "the gateway's book never saw it: {:?}",
            s.book_errors
        );
        assert_eq!(s.snapshots("BTC-USDT"), 1, "spot untouched");
    });
    h.stop().await;
}

/// The swap's perpetual figures, from the connector's event log.
fn perp_log(
    s: &Seen,
    symbol: &str,
) -> (
    Vec<Funding>,
    Vec<MarkPrice>,
    Vec<OpenInterest>,
    Vec<Liquidation>,
) {
    let mut out = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for event in &s.log {
        match event {
            FeedEvent::Funding {
                symbol: x, funding, ..
            } if x.as_str() == symbol => out.0.push(funding.clone()),
            FeedEvent::Mark {
                symbol: x, mark, ..
            } if x.as_str() == symbol => out.1.push(mark.clone()),
            FeedEvent::OpenInterest { symbol: x, oi, .. } if x.as_str() == symbol => {
                out.2.push(oi.clone())
            }
            FeedEvent::Liquidation {
                symbol: x,
                liquidation,
                ..
            } if x.as_str() == symbol => {
                out.3.push(liquidation.clone());
            }
            _ => {}
        }
    }
    out
}

/// Issue 15: OKX swaps publish funding (with the predicted rate), mark + index merged, open
/// interest in the base currency and liquidations in base units (13 contracts × ctVal 0.01),
/// the other swap's liquidation in the same push dropped; the spot pair publishes none. A bad
/// frame on each channel is counted without a symbol, rebuilds nothing, and the channel goes on.
#[tokio::test]
async fn perpetual_channels_end_to_end_with_bad_frames_counted() {
    let mock = MockOkx::start(&SYMBOLS).await.unwrap();
    let h = start(&mock);
    live_and_converged(&mock, &h).await;
    drive(&mock, &h, "every perpetual figure", |s| {
        let (f, m, o, l) = perp_log(s, "BTC-USDT-PERP");
        !f.is_empty()
            && m.iter().any(|m| m.mark.is_some() && m.index.is_some())
            && !o.is_empty()
            && l.len() >= 2
    })
    .await;
    h.with(|s| {
        let (f, m, o, l) = perp_log(s, "BTC-USDT-PERP");
        let d = |x: &str| model::parse_decimal(x).unwrap();
        assert_eq!(
            (f[0].rate, f[0].predicted_rate, f[0].next_funding_ts),
            (
                d("0.0001"),
                Some(d("0.00015")),
                Some(model::Timestamp::from_millis(1_700_726_400_000))
            )
        );
        let last = m.last().unwrap();
        assert!(
            last.mark.unwrap().to_string().starts_with("42219."),
            "{last:?}"
        );
        assert!(
            last.index.unwrap().to_string().starts_with("42218."),
            "{last:?}"
        );
        // oiCcy: contracts × 0.01, in BTC; no USD value on a USDT swap.
        let oi = o.last().unwrap();
        assert!(oi.oi > d("1000") && oi.oi < d("1100"), "{oi:?}");
        assert_eq!(oi.oi_value, None);
        for liquidation in &l {
            assert_eq!(
                (liquidation.price, liquidation.size),
                (d("42000.1"), d("0.13")),
                "{liquidation:?}"
            );
        }
        // The mock alternates a short closed by a `buy` and a long closed by a `sell`.
        assert_ne!(l[0].side, l[1].side, "the order's side, as OKX sends it");
        let spot = perp_log(s, "BTC-USDT");
        assert!(spot.0.is_empty() && spot.1.is_empty() && spot.2.is_empty() && spot.3.is_empty());
        assert!(s.invalid.is_empty(), "{:?}", s.invalid);
    });
    let snapshots = h.with(|s| s.snapshots("BTC-USDT-PERP"));
    for channel in [
        "funding-rate",
        "mark-price",
        "index-tickers",
        "open-interest",
        "liquidation-orders",
    ] {
        let (invalid, counts) = h.with(|s| {
            let (f, m, o, l) = perp_log(s, "BTC-USDT-PERP");
            (s.invalid.len(), (f.len(), m.len(), o.len(), l.len()))
        });
        mock.bad_perp("BTC-USDT-PERP", channel);
        h.wait(5, &format!("bad {channel} counted"), |s| {
            s.invalid.len() > invalid
        })
        .await;
        drive(&mock, &h, &format!("{channel} goes on"), |s| {
            let (f, m, o, l) = perp_log(s, "BTC-USDT-PERP");
            match channel {
                "funding-rate" => f.len() > counts.0,
                "mark-price" | "index-tickers" => m.len() > counts.1 + 2,
                "open-interest" => o.len() > counts.2,
                _ => l.len() > counts.3,
            }
        })
        .await;
        h.with(|s| {
            let (symbol, reason) = &s.invalid[invalid];
            assert!(symbol.is_none(), "{channel}: {reason}");
            assert!(reason.contains(channel), "{channel}: {reason}");
        });
    }
    h.with(|s| {
        assert_eq!(s.snapshots("BTC-USDT-PERP"), snapshots, "no book rebuilt");
        assert_eq!(s.invalid.len(), 5, "{:?}", s.invalid);
    });
    let subscribed = mock.control.frames_in()[0].2.clone();
    assert!(
        subscribed.contains(r#"{"channel":"liquidation-orders","instType":"SWAP"}"#),
        "{subscribed}"
    );
    h.stop().await;
}
