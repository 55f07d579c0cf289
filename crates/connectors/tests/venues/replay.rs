//! Record → replay round trip: a capture of a live session replays to the same events.

use crate::support::*;
use book::ChecksumAlgo;
use connectors::FeedEvent;
use connectors::conn::WsConnector;
use connectors::conn::record::Recorder;
use connectors::mock::binance::MockBinance;
use connectors::mock::kraken::MockKraken;
use connectors::settings::VenueSpec;
use connectors::venue::{self, replay};
use std::time::Duration;

fn without_status(events: impl IntoIterator<Item = FeedEvent>) -> Vec<FeedEvent> {
    events
        .into_iter()
        .filter(|e| !matches!(e, FeedEvent::Status { .. }))
        .collect()
}

#[tokio::test]
async fn a_recorded_session_replays_to_the_same_events_every_time() {
    let binance = MockBinance::start(&["BTC-USDT", "ETH-USDT"]).await.unwrap();
    let kraken = MockKraken::start(&["BTC-USD"], 10).await.unwrap();
    let path =
        std::env::temp_dir().join(format!("tickgate-capture-{}.jsonl.gz", std::process::id()));
    let (recorder, handle) = Recorder::create(&path).unwrap();
    let spec = |symbols: &[&str], ws: String, rest: String| VenueSpec {
        symbols: symbols.iter().map(|s| sym(s)).collect(),
        ws_url: Some(ws),
        rest_url: Some(rest),
        feed: fast_feed(),
    };
    let b = WsConnector::new(
        venue::protocol(
            "binance",
            spec(
                &["BTC-USDT", "ETH-USDT"],
                binance.ws_url(),
                binance.rest_url(),
            ),
        )
        .unwrap(),
    )
    .with_recorder(recorder.clone());
    let k = WsConnector::new(
        venue::protocol(
            "kraken",
            spec(&["BTC-USD"], kraken.ws_url(), kraken.rest_url()),
        )
        .unwrap(),
    )
    .with_recorder(recorder.clone());
    drop(recorder);
    let hb = Harness::start(Box::new(b), ChecksumAlgo::None, None);
    let hk = Harness::start(Box::new(k), ChecksumAlgo::Kraken, None);
    // Live traffic with a gap, a checksum fault and a reconnect, so resyncs are in the capture.
    for round in 0..120 {
        binance.step(1);
        kraken.step(1);
        match round {
            40 => binance.skip_next("BTC-USDT"),
            60 => kraken.wrong_checksum_next("BTC-USD"),
            80 => binance.control.drop_connections(),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    hb.wait(10, "binance live again", |s| {
        s.live("BTC-USDT") && s.live("ETH-USDT") && s.snapshots("BTC-USDT") >= 3
    })
    .await;
    hk.wait(10, "kraken resynced", |s| {
        s.live("BTC-USD") && s.snapshots("BTC-USD") >= 2
    })
    .await;
    let live_b = hb.with(|s| without_status(s.log.clone()));
    let live_k = hk.with(|s| without_status(s.log.clone()));
    hb.stop().await;
    hk.stop().await;
    // The connectors own the last recorder clones; they drop them when they stop.
    let (lines, dropped) = tokio::task::spawn_blocking(move || handle.finish())
        .await
        .unwrap()
        .unwrap();
    assert!(
        lines > 200 && dropped == 0,
        "{lines} lines, {dropped} dropped"
    );

    let first = replay::replay_all(&path).unwrap();
    let second = replay::replay_all(&path).unwrap();
    assert_eq!(first, second, "replay is deterministic");
    let of = |venue: &str| {
        without_status(
            first
                .iter()
                .filter(|(v, _)| v == venue)
                .map(|(_, e)| e.clone()),
        )
    };
    let (replayed_b, replayed_k) = (of("binance"), of("kraken"));
    // Live events may trail the capture by what was in flight at shutdown.
    assert!(replayed_b.len() >= live_b.len() && replayed_k.len() >= live_k.len());
    assert_eq!(
        replayed_b[..live_b.len()],
        live_b[..],
        "binance replays exactly as it ran"
    );
    assert_eq!(
        replayed_k[..live_k.len()],
        live_k[..],
        "kraken replays exactly as it ran"
    );

    // Through the Connector seam at full speed, into the same reference consumer.
    let connectors = replay::open(&path, None).unwrap();
    assert_eq!(connectors.len(), 2);
    for connector in connectors {
        let h = Harness::start(Box::new(connector), ChecksumAlgo::None, None);
        h.wait(10, "replayed books", |s| {
            !s.books.is_empty() && s.books.values().all(book::OrderBook::is_live)
        })
        .await;
        h.stop().await;
    }
    let _ = std::fs::remove_file(&path);
}
