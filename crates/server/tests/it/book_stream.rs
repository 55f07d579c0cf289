//! Book channels: snapshot first, gap-free updates, REST reconciliation, fault recovery.

use crate::support::*;
use protocol::ServerMessage;
use std::time::Duration;

#[tokio::test]
async fn subscribe_gives_snapshot_then_gap_free_updates_with_valid_checksums() {
    let gateway = start(config(200.0)).await;
    let mut ws = connect(&gateway).await;
    send(
        &mut ws,
        r#"{"op":"subscribe","id":1,"channels":["book:sim:BTC-USDT"]}"#,
    )
    .await;
    let ServerMessage::Subscribed {
        id,
        channels,
        recovered,
        positions,
    } = recv(&mut ws).await
    else {
        panic!("ack first")
    };
    assert_eq!(
        ServerMessage::Subscribed {
            id,
            channels,
            recovered,
            positions: Default::default(),
        },
        ServerMessage::Subscribed {
            id: Some(protocol::RequestId::Num(1)),
            channels: vec!["book:sim:BTC-USDT".into()],
            recovered: Default::default(),
            positions: Default::default(),
        }
    );
    let ServerMessage::Snapshot(snapshot) = recv(&mut ws).await else {
        panic!("first message must be a snapshot")
    };
    assert_eq!(snapshot.channel, "book:sim:BTC-USDT");
    assert!(!snapshot.resync);
    // The ack told where the channel starts: the snapshot is at that position.
    let at = &positions["book:sim:BTC-USDT"];
    assert_eq!(
        (at.epoch.as_str(), at.seq),
        (snapshot.epoch.as_str(), snapshot.seq)
    );
    assert!(
        snapshot.bids.as_ref().unwrap().len() >= 50 && snapshot.asks.as_ref().unwrap().len() >= 50
    );
    let mut mirror = Mirror::default();
    mirror.reset(&snapshot);
    assert_eq!(Some(mirror.checksum()), snapshot.checksum);
    for _ in 0..200 {
        let ServerMessage::Update(update) = recv(&mut ws).await else {
            panic!("expected updates only")
        };
        mirror.update(&update);
        assert_eq!(
            Some(mirror.checksum()),
            update.checksum,
            "mirror diverged at seq {}",
            update.seq
        );
        assert!(!mirror.is_crossed());
        assert_eq!(update.epoch, snapshot.epoch);
        assert!(update.recv_ts > 0 && update.ts > 0);
    }
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn local_book_equals_rest_book_at_the_same_seq() {
    let gateway = start(config(100.0)).await;
    let http = reqwest::Client::new();
    let mut ws = connect(&gateway).await;
    send(
        &mut ws,
        r#"{"op":"subscribe","channels":["book:sim:ETH-USDT"]}"#,
    )
    .await;
    recv(&mut ws).await; // ack
    let ServerMessage::Snapshot(snapshot) = recv(&mut ws).await else {
        panic!("snapshot first")
    };
    let mut mirror = Mirror::default();
    mirror.reset(&snapshot);
    let mut compared = 0;
    for _ in 0..20 {
        let url = format!(
            "http://{}/v1/book?venue=sim&symbol=ETH-USDT&depth=5000",
            gateway.local_addr()
        );
        let rest: serde_json::Value = http.get(url).send().await.unwrap().json().await.unwrap();
        let rest_seq = rest["seq"].as_u64().unwrap();
        if rest_seq < mirror.seq {
            continue; // the stream got ahead of this REST read; try again
        }
        while mirror.seq < rest_seq {
            let ServerMessage::Update(update) = recv(&mut ws).await else {
                panic!("updates only")
            };
            mirror.update(&update);
        }
        let levels = |side: &[model::Level]| -> serde_json::Value {
            side.iter()
                .map(|l| serde_json::json!([l.price.to_string(), l.size.to_string()]))
                .collect()
        };
        assert_eq!(
            rest["bids"],
            levels(&mirror.bids_best_first()),
            "bids at seq {rest_seq}"
        );
        assert_eq!(
            rest["asks"],
            levels(&mirror.asks_best_first()),
            "asks at seq {rest_seq}"
        );
        assert_eq!(
            rest["checksum"].as_u64().unwrap(),
            u64::from(mirror.checksum())
        );
        assert_eq!(rest["epoch"].as_str().unwrap(), snapshot.epoch);
        compared += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(compared >= 5, "only {compared} comparisons happened");
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn injected_faults_cause_resyncs_and_never_a_wrong_book() {
    let mut config = config(300.0);
    config.venues[0].sim.faults.drop = 0.02;
    config.venues[0].sim.faults.duplicate = 0.03;
    config.venues[0].sim.faults.reorder = 0.02;
    config.venues[0].sim.faults.corrupt = 0.02;
    let gateway = start(config).await;
    let mut ws = connect(&gateway).await;
    send(
        &mut ws,
        r#"{"op":"subscribe","channels":["book:sim:BTC-USDT","book:sim:SOL-USDT"]}"#,
    )
    .await;
    recv(&mut ws).await;
    let mut mirrors = std::collections::HashMap::<String, Mirror>::new();
    let (mut notices, mut resync_snapshots, mut updates) = (0, 0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while (resync_snapshots < 3 || updates < 300) && tokio::time::Instant::now() < deadline {
        match recv(&mut ws).await {
            ServerMessage::Snapshot(s) => {
                let mirror = mirrors.entry(s.channel.clone()).or_default();
                if s.resync {
                    resync_snapshots += 1;
                    assert_eq!(
                        s.seq,
                        mirror.seq + 1,
                        "a resync snapshot follows the resync notice"
                    );
                }
                mirror.reset(&s);
                assert_eq!(Some(mirror.checksum()), s.checksum);
            }
            ServerMessage::Update(u) => {
                let mirror = mirrors
                    .get_mut(&u.channel)
                    .expect("snapshot before updates");
                mirror.update(&u);
                assert_eq!(
                    Some(mirror.checksum()),
                    u.checksum,
                    "wrong book served at {} seq {}",
                    u.channel,
                    u.seq
                );
                assert!(!mirror.is_crossed());
                updates += 1;
            }
            ServerMessage::Resync {
                channel,
                seq,
                reason,
            } => {
                let mirror = mirrors.get_mut(&channel).expect("snapshot before resync");
                assert_eq!(seq, mirror.seq + 1, "the resync notice takes the next seq");
                assert!(
                    ["gap", "checksum_mismatch", "crossed", "invalid_level"]
                        .contains(&reason.as_str()),
                    "{reason}"
                );
                mirror.seq = seq;
                notices += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Every rebuild is announced; a resync snapshot may also come without a notice (a retried
    // resync request answered twice replaces an already-good book: still a valid snapshot).
    assert!(
        resync_snapshots >= 3 && notices >= 3,
        "notices {notices}, resync snapshots {resync_snapshots}"
    );
    assert!(updates >= 300);
    let gaps = metric(
        &gateway,
        "tickgate_book_resyncs_total{venue=\"sim\",reason=\"gap\"}",
    )
    .await;
    let checksums = metric(
        &gateway,
        "tickgate_book_resyncs_total{venue=\"sim\",reason=\"checksum_mismatch\"}",
    )
    .await;
    assert!(
        gaps > 0 && checksums > 0,
        "gaps {gaps}, checksum mismatches {checksums}"
    );
    assert!(
        metric(
            &gateway,
            "tickgate_venue_deltas_ignored_total{venue=\"sim\"}"
        )
        .await
            > 0,
        "duplicates are ignored, not resynced"
    );
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn trades_ticker_and_candles_stream_in_order() {
    let gateway = start(config(200.0)).await;
    let mut ws = connect(&gateway).await;
    send(&mut ws, r#"{"op":"subscribe","channels":["trades:sim:BTC-USDT","ticker:sim:BTC-USDT","candles.1s:sim:BTC-USDT"]}"#).await;
    recv(&mut ws).await;
    let mut last = std::collections::HashMap::<String, u64>::new();
    let (mut trades, mut tickers, mut candles) = (0, 0, 0);
    while trades < 20 || tickers < 5 || candles < 5 {
        let msg = recv(&mut ws).await;
        let d = data(&msg).unwrap_or_else(|| panic!("unexpected {msg:?}"));
        if let Some(prev) = last.insert(d.channel.clone(), d.seq) {
            assert_eq!(d.seq, prev + 1, "{} seq", d.channel);
        }
        if let Some(list) = &d.trades {
            for t in list {
                assert!(
                    t.price > model::Decimal::ZERO
                        && t.size > model::Decimal::ZERO
                        && !t.id.is_empty()
                );
            }
            trades += list.len();
        }
        if let Some(t) = &d.ticker {
            assert!(t.bid < t.ask, "ticker bid below ask");
            tickers += 1;
        }
        if let Some(c) = &d.candle {
            assert!(
                c.low <= c.open
                    && c.open <= c.high
                    && c.low <= c.close
                    && c.close <= c.high
                    && c.trades > 0
            );
            candles += 1;
        }
    }
    gateway.stop().await.unwrap();
}
