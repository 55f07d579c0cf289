//! Ingest and edge roles over the real NATS bus (`[cluster] role`): two gateways in one
//! process, the ingest running the simulator and forwarding its hub, the edge running no venue
//! and serving the replicas. A WebSocket client on the edge gets the ingest's book with the
//! ingest's seq and epoch, `/readyz` reports the bus, and the edge's REST instruments and
//! ticker are the ingest's.
//!
//! Needs TICKGATE_TEST_NATS_URL (the bus) and TICKGATE_TEST_REDIS_URL (an edge shares nonces);
//! each test uses its own NATS prefix and Redis key prefix.

use crate::support::*;
use protocol::ServerMessage;
use server::cluster_config::ClusterRole;
use std::time::Duration;

const BOOK: &str = "book:sim:BTC-USDT";

fn urls() -> Option<(String, String)> {
    let nats = std::env::var("TICKGATE_TEST_NATS_URL").ok();
    let redis = std::env::var("TICKGATE_TEST_REDIS_URL").ok();
    if nats.is_none() {
        eprintln!("skipped: TICKGATE_TEST_NATS_URL not set");
    }
    if redis.is_none() {
        eprintln!("skipped: TICKGATE_TEST_REDIS_URL not set");
    }
    nats.zip(redis)
}

#[tokio::test]
async fn a_client_on_the_edge_gets_the_ingest_book_with_the_ingest_seq_and_epoch() {
    let Some((nats, redis)) = urls() else { return };
    let prefix = format!("tit{:x}", model::Timestamp::now().0);
    let mut ingest_config = config(20.0);
    ingest_config.cluster.role = ClusterRole::Ingest;
    ingest_config.cluster.nats_url = nats.clone();
    ingest_config.cluster.nats_prefix = prefix.clone();
    ingest_config.cluster.node_id = "ingest-1".into();
    let ingest = start(ingest_config).await;
    let mut edge_config = config(20.0);
    edge_config.cluster.role = ClusterRole::Edge;
    edge_config.cluster.nats_url = nats;
    edge_config.cluster.nats_prefix = prefix.clone();
    edge_config.cluster.redis_url = redis;
    edge_config.cluster.redis_prefix = format!("{prefix}:");
    edge_config.cluster.node_id = "edge-1".into();
    let edge = start(edge_config).await;

    let (status, ready) = get_json(&edge, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["bus"]["role"], "edge");
    assert_eq!(ready["bus"]["state"], "connected");
    assert!(
        ready["venues"]["sim"]["books_live"].as_u64() >= Some(1),
        "{ready}"
    );
    let (_, ready) = get_json(&ingest, "/readyz").await;
    assert_eq!(ready["bus"]["role"], "ingest");
    assert!(
        (ready["bus"]["venues_owned"].as_array().expect("owned"))
            .contains(&serde_json::json!("sim")),
        "{ready}"
    );

    assert!(
        metric(
            &ingest,
            "tickgate_bus_frames_published_total{role=\"ingest\"}"
        )
        .await
            > 0
    );
    assert_eq!(
        metric(&edge, "tickgate_bus_connected{role=\"edge\"}").await,
        1
    );
    // The edge runs no connector: it learns the instruments from the bus.
    let (_, on_ingest) = get_json(&ingest, "/v1/instruments").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, on_edge) = get_json(&edge, "/v1/instruments").await;
        assert_eq!(status, 200, "{on_edge}");
        if on_edge == on_ingest {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "edge instruments {on_edge} never became the ingest's {on_ingest}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !on_ingest["instruments"]
            .as_array()
            .expect("list")
            .is_empty(),
        "{on_ingest}"
    );
    assert!(
        metric(
            &edge,
            "tickgate_bus_instrument_lists_applied_total{role=\"edge\"}"
        )
        .await
            >= 1
    );
    // Its ticker is the replicated channel's latest value (once one was replicated).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let ticker = loop {
        let (status, body) = get_json(&edge, "/v1/ticker?venue=sim&symbol=BTC-USDT").await;
        if status == 200 {
            break body;
        }
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["code"], "unavailable", "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ticker on the edge: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ticker["symbol"], "BTC-USDT");
    assert!(ticker["ticker"]["source"].is_string(), "{ticker}");
    let (status, body) = get_json(&edge, "/v1/ticker?venue=sim&symbol=NOPE-USDT").await;
    assert_eq!(status, 404, "{body}");

    let source = ingest.state().hub().topic(BOOK).expect("ingest book");
    let mut ws = connect(&edge).await;
    send(
        &mut ws,
        &format!(r#"{{"op":"subscribe","id":1,"channels":["{BOOK}"]}}"#),
    )
    .await;
    let ServerMessage::Subscribed { positions, .. } = recv(&mut ws).await else {
        panic!("ack first")
    };
    assert_eq!(positions[BOOK].epoch, *source.epoch(), "the ingest's epoch");
    let ServerMessage::Snapshot(snapshot) = recv(&mut ws).await else {
        panic!("a snapshot first")
    };
    assert_eq!(snapshot.seq, positions[BOOK].seq);
    let mut mirror = Mirror::default();
    mirror.reset(&snapshot);
    let mut seq = snapshot.seq;
    for _ in 0..20 {
        let ServerMessage::Update(update) = recv(&mut ws).await else {
            panic!("updates only")
        };
        assert_eq!(update.seq, seq + 1, "gap-free, the ingest's numbering");
        assert_eq!(update.epoch, *source.epoch());
        seq = update.seq;
        mirror.update(&update);
        assert_eq!(Some(mirror.checksum()), update.checksum);
    }
    // The ingest's own book at that seq is the client's (catching up with it if it moved on).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let view = source.book_view(1000).expect("book");
        if view.seq == seq {
            assert_eq!(view.checksum, mirror.checksum());
            assert_eq!(view.bids, mirror.bids_best_first());
            assert_eq!(view.asks, mirror.asks_best_first());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never at the same seq"
        );
        if view.seq > seq {
            let ServerMessage::Update(update) = recv(&mut ws).await else {
                panic!("updates only")
            };
            assert_eq!(update.seq, seq + 1);
            seq = update.seq;
            mirror.update(&update);
        } else {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}
