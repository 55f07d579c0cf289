//! Real venues through the whole gateway: config selects them, URLs point at local mocks.

use crate::support::*;
use connectors::mock::binance::MockBinance;
use connectors::mock::coinbase::MockCoinbase;
use connectors::mock::kraken::MockKraken;
use connectors::mock::okx::MockOkx;
use connectors::settings::FeedSettings;
use model::{Decimal, Level};
use protocol::{ServerMessage, WireLevel};
use server::config::VenueConfig;
use server::{Config, Gateway};
use std::collections::BTreeMap;
use std::time::Duration;

struct Mocks {
    binance: MockBinance,
    coinbase: MockCoinbase,
    kraken: MockKraken,
    okx: MockOkx,
}

impl Mocks {
    async fn start() -> Self {
        Self {
            binance: MockBinance::start(&["BTC-USDT", "ETH-USDT"]).await.unwrap(),
            coinbase: MockCoinbase::start(&["BTC-USD"]).await.unwrap(),
            kraken: MockKraken::start(&["BTC-USD", "ETH-USD"], 10)
                .await
                .unwrap(),
            okx: MockOkx::start(&["SOL-USDT", "BTC-USDT-PERP"])
                .await
                .unwrap(),
        }
    }

    fn step(&self, n: usize) {
        self.binance.step(n);
        self.coinbase.step(n);
        self.kraken.step(n);
        self.okx.step(n);
    }

    fn config(&self) -> Config {
        let feed = FeedSettings {
            backoff_base_ms: 50,
            backoff_cap_ms: 400,
            ack_timeout_secs: 5,
            silence_secs: 10,
            ..FeedSettings::default()
        };
        let venue = |name: &str, symbols: &[&str], ws: String, rest: String| VenueConfig {
            name: name.into(),
            symbols: symbols.iter().map(|s| s.to_string()).collect(),
            ws_url: Some(ws),
            rest_url: Some(rest),
            feed: feed.clone(),
            ..VenueConfig::default()
        };
        let mut config = config(1.0);
        config.consolidated.interval_ms = 20;
        config.venues = vec![
            venue(
                "binance",
                &["BTC-USDT", "ETH-USDT"],
                self.binance.ws_url(),
                self.binance.rest_url(),
            ),
            venue(
                "coinbase",
                &["BTC-USD"],
                self.coinbase.ws_url(),
                self.coinbase.rest_url(),
            ),
            venue(
                "kraken",
                &["BTC-USD", "ETH-USD"],
                self.kraken.ws_url(),
                self.kraken.rest_url(),
            ),
            venue(
                "okx",
                &["SOL-USDT", "BTC-USDT-PERP"],
                self.okx.ws_url(),
                self.okx.rest_url(),
            ),
        ];
        config
    }
}

async fn rest_book(
    gateway: &Gateway,
    venue: &str,
    symbol: &str,
) -> Option<(Vec<Level>, Vec<Level>)> {
    let url = format!(
        "http://{}/v1/book?venue={venue}&symbol={symbol}&depth=1000",
        gateway.local_addr()
    );
    let body: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
    let side = |key: &str| -> Option<Vec<Level>> {
        let levels: Vec<WireLevel> = serde_json::from_value(body.get(key)?.clone()).ok()?;
        Some(levels.into_iter().map(Level::from).collect())
    };
    Some((side("bids")?, side("asks")?))
}

/// Steps the mocks until the gateway's REST book equals `truth()` (checked with the market paused).
async fn until_equal(
    mocks: &Mocks,
    gateway: &Gateway,
    venue: &str,
    symbol: &str,
    truth: impl Fn() -> (Vec<Level>, Vec<Level>),
) {
    for _ in 0..300 {
        let expected = truth();
        if rest_book(gateway, venue, symbol).await.as_ref() == Some(&expected) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        if rest_book(gateway, venue, symbol).await.as_ref() != Some(&truth()) {
            mocks.step(1);
        }
    }
    panic!("{venue} {symbol}: the gateway's book never matched the venue's");
}

#[tokio::test]
async fn three_venues_and_the_consolidated_view_match_the_venues() {
    let _heavy = HEAVY.lock().await;
    let mocks = Mocks::start().await;
    mocks.step(3);
    let gateway = Gateway::start(mocks.config())
        .await
        .expect("gateway starts");
    for _ in 0..200 {
        mocks.step(1);
        if reqwest::get(format!("http://{}/readyz", gateway.local_addr()))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    mocks.step(10);
    until_equal(&mocks, &gateway, "binance", "BTC-USDT", || {
        mocks.binance.truth("BTC-USDT").1.top(1000)
    })
    .await;
    until_equal(&mocks, &gateway, "coinbase", "BTC-USD", || {
        mocks.coinbase.truth("BTC-USD").top(1000)
    })
    .await;
    until_equal(&mocks, &gateway, "kraken", "ETH-USD", || {
        mocks.kraken.truth("ETH-USD")
    })
    .await;
    // OKX: a spot pair and a perpetual swap (`BTC-USDT-PERP` ↔ `BTC-USDT-SWAP`).
    for symbol in ["SOL-USDT", "BTC-USDT-PERP"] {
        until_equal(&mocks, &gateway, "okx", symbol, || mocks.okx.truth(symbol)).await;
    }

    // book:all:BTC-USD sums Coinbase and Kraken per price; Binance's USDT book stays apart.
    let merged = || {
        let (cb, kr) = (
            mocks.coinbase.truth("BTC-USD").top(1000),
            mocks.kraken.truth("BTC-USD"),
        );
        let mut bids: BTreeMap<Decimal, Decimal> = BTreeMap::new();
        let mut asks: BTreeMap<Decimal, Decimal> = BTreeMap::new();
        for l in cb.0.iter().chain(&kr.0) {
            *bids.entry(l.price).or_default() += l.size;
        }
        for l in cb.1.iter().chain(&kr.1) {
            *asks.entry(l.price).or_default() += l.size;
        }
        (
            bids.into_iter()
                .rev()
                .take(50)
                .map(|(p, s)| Level::new(p, s))
                .collect(),
            asks.into_iter()
                .take(50)
                .map(|(p, s)| Level::new(p, s))
                .collect(),
        )
    };
    until_equal(&mocks, &gateway, "all", "BTC-USD", merged).await;
    until_equal(&mocks, &gateway, "all", "BTC-USDT", || {
        mocks.binance.truth("BTC-USDT").1.top(50)
    })
    .await;

    // status:{venue} reports the connection; ticker:all exists.
    let mut ws = connect(&gateway).await;
    send(
        &mut ws,
        r#"{"op":"subscribe","id":1,"channels":["status:kraken","ticker:all:BTC-USD"]}"#,
    )
    .await;
    let status = recv_until(&mut ws, |m| {
        data(m).is_some_and(|d| d.channel == "status:kraken")
    })
    .await;
    let state = data(&status)
        .unwrap()
        .status
        .as_ref()
        .unwrap()
        .state
        .clone();
    assert_eq!(state, "connected");
    let ticker = recv_until(&mut ws, |m| {
        data(m).is_some_and(|d| d.channel == "ticker:all:BTC-USD")
    })
    .await;
    assert!(
        data(&ticker)
            .unwrap()
            .ticker
            .as_ref()
            .unwrap()
            .bid
            .is_some()
    );

    let metrics = reqwest::get(format!("http://{}/metrics", gateway.local_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tickgate_venue_frames_total{venue=\"kraken\"}"),
        "{metrics}"
    );
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_bad_kraken_checksum_resyncs_that_book_alone_and_subscribers_are_told() {
    let _heavy = HEAVY.lock().await;
    let mocks = Mocks::start().await;
    let gateway = Gateway::start(mocks.config())
        .await
        .expect("gateway starts");
    let mut ws = connect(&gateway).await;
    send(
        &mut ws,
        r#"{"op":"subscribe","id":1,"channels":["book:kraken:BTC-USD","book:kraken:ETH-USD"]}"#,
    )
    .await;
    until_equal(&mocks, &gateway, "kraken", "BTC-USD", || {
        mocks.kraken.truth("BTC-USD")
    })
    .await;
    until_equal(&mocks, &gateway, "kraken", "ETH-USD", || {
        mocks.kraken.truth("ETH-USD")
    })
    .await;
    mocks.kraken.wrong_checksum_next("BTC-USD");
    let mut resync_notice = false;
    let mut eth_resynced = false;
    for _ in 0..2000 {
        mocks.kraken.step(1);
        match recv_within(&mut ws, Duration::from_millis(20)).await {
            Some(ServerMessage::Resync { channel, .. }) => {
                resync_notice |= channel == "book:kraken:BTC-USD";
                eth_resynced |= channel == "book:kraken:ETH-USD";
            }
            Some(ServerMessage::Snapshot(d)) if d.resync => {
                assert_eq!(d.channel, "book:kraken:BTC-USD");
                break;
            }
            _ => {}
        }
    }
    assert!(
        resync_notice,
        "subscribers are told while the book rebuilds"
    );
    assert!(!eth_resynced, "the other book is untouched");
    until_equal(&mocks, &gateway, "kraken", "BTC-USD", || {
        mocks.kraken.truth("BTC-USD")
    })
    .await;
    assert!(
        metric(
            &gateway,
            "tickgate_venue_invalid_messages_total{venue=\"kraken\"}"
        )
        .await
            >= 1
    );
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_recorded_session_replays_through_the_replay_venue() {
    use connectors::conn::record::Recorder;
    use server::config::ReplaySpeedConfig;
    let _heavy = HEAVY.lock().await;
    let mocks = Mocks::start().await;
    let path = std::env::temp_dir().join(format!(
        "tickgate-it-capture-{}.jsonl.gz",
        std::process::id()
    ));
    let (recorder, handle) = Recorder::create(&path).unwrap();
    let live = Gateway::start_with(mocks.config(), Some(recorder), None)
        .await
        .expect("gateway starts");
    until_equal(&mocks, &live, "kraken", "BTC-USD", || {
        mocks.kraken.truth("BTC-USD")
    })
    .await;
    until_equal(&mocks, &live, "binance", "ETH-USDT", || {
        mocks.binance.truth("ETH-USDT").1.top(1000)
    })
    .await;
    let final_kraken = rest_book(&live, "kraken", "BTC-USD").await.unwrap();
    let final_binance = rest_book(&live, "binance", "ETH-USDT").await.unwrap();
    live.stop().await.unwrap();
    let (lines, _) = tokio::task::spawn_blocking(move || handle.finish())
        .await
        .unwrap()
        .unwrap();
    assert!(lines > 10);

    let mut config = config(1.0);
    config.venues = vec![VenueConfig {
        name: "replay".into(),
        path: Some(path.clone()),
        speed: Some(ReplaySpeedConfig::Named("max".into())),
        ..VenueConfig::default()
    }];
    let replayed = Gateway::start(config).await.expect("replay gateway starts");
    let mut books = None;
    for _ in 0..250 {
        let k = rest_book(&replayed, "kraken", "BTC-USD").await;
        let b = rest_book(&replayed, "binance", "ETH-USDT").await;
        if k.as_ref() == Some(&final_kraken) && b.as_ref() == Some(&final_binance) {
            books = Some(());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        books.is_some(),
        "the replayed books end where the live ones did"
    );
    replayed.stop().await.unwrap();
    let _ = std::fs::remove_file(&path);
}
