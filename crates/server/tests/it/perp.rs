//! Perpetual channels through the whole gateway (issue 15): Bybit linear and OKX swaps (the
//! mocks) feed `funding:`, `mark:`, `oi:` and `liquidations:`; `/v1/funding|mark|oi` serve the
//! latest, and funding and open interest are stored in history (`/v1/funding/history`).

use crate::support::*;
use connectors::mock::bybit::MockBybit;
use connectors::mock::okx::MockOkx;
use connectors::settings::FeedSettings;
use protocol::ServerMessage;
use server::config::VenueConfig;
use std::time::Duration;

const SYMBOLS: [&str; 2] = ["BTC-USDT", "BTC-USDT-PERP"];

#[tokio::test]
async fn bybit_funding_over_ws_and_rest_and_spot_has_none() {
    let _heavy = HEAVY.lock().await;
    let mock = MockBybit::start(&SYMBOLS).await.unwrap();
    let mut config = config(1.0);
    config.venues = vec![VenueConfig {
        name: "bybit".into(),
        symbols: SYMBOLS.iter().map(|s| s.to_string()).collect(),
        ws_url: Some(mock.ws_url()),
        rest_url: Some(mock.rest_url()),
        feed: FeedSettings {
            backoff_base_ms: 50,
            backoff_cap_ms: 400,
            ack_timeout_secs: 5,
            silence_secs: 10,
            ..FeedSettings::default()
        },
        ..VenueConfig::default()
    }];
    let gateway = start(config).await;
    // The linear ticker snapshot arrives on subscribe: funding is published without a step.
    let mut body = serde_json::Value::Null;
    for _ in 0..300 {
        let (status, b) = get_json(&gateway, "/v1/funding?venue=bybit&symbol=BTC-USDT-PERP").await;
        if status == 200 {
            body = b;
            break;
        }
        assert_eq!(status, 503, "{b}");
        assert_eq!(b["code"], "unavailable");
        mock.step(1);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(body["channel"], "funding:bybit:BTC-USDT-PERP", "{body}");
    assert_eq!(body["funding"]["rate"], "0.0001", "{body}");
    assert_eq!(body["funding"]["next_funding_ts"], 1_673_280_000_000_000i64);
    // The cross-venue comparison lists each venue's latest funding (here Bybit's alone).
    let mut all = serde_json::Value::Null;
    for _ in 0..300 {
        let (status, b) = get_json(&gateway, "/v1/funding?venue=all&symbol=BTC-USDT-PERP").await;
        if status == 200 {
            all = b;
            break;
        }
        assert_eq!((status, &b["code"]), (503, &"unavailable".into()), "{b}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(all["channel"], "funding:all:BTC-USDT-PERP", "{all}");
    assert_eq!(all["funding_all"][0]["venue"], "bybit", "{all}");
    assert_eq!(all["funding_all"][0]["funding"]["rate"], "0.0001", "{all}");
    let (status, body) = get_json(&gateway, "/v1/funding?venue=all&symbol=BTC-USDT").await;
    assert_eq!(
        (status, &body["code"]),
        (404, &"unknown_instrument".into()),
        "{body}"
    );
    let (status, oi) = get_json(&gateway, "/v1/oi?venue=bybit&symbol=BTC-USDT-PERP").await;
    assert_eq!((status, &oi["oi"]["oi"]), (200, &"1234.5".into()), "{oi}");
    let (status, mark) = get_json(&gateway, "/v1/mark?venue=bybit&symbol=BTC-USDT-PERP").await;
    assert_eq!(
        (status, &mark["mark"]["index"]),
        (200, &"16580.00".into()),
        "{mark}"
    );
    for (path, status, code) in [
        (
            "/v1/funding?venue=bybit&symbol=BTC-USDT",
            404,
            "unknown_instrument",
        ),
        ("/v1/oi?venue=bybit", 400, "bad_param"),
        (
            "/v1/mark?venue=bybit&symbol=BTC-USDT-PERP&x=1",
            400,
            "bad_param",
        ),
    ] {
        let (got, body) = get_json(&gateway, path).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
    }

    // History: the first funding and open interest were stored (the writer flushes every
    // 200 ms); `/v1/funding` with a range answers the same page as `/v1/funding/history`.
    let mut page = serde_json::Value::Null;
    for _ in 0..200 {
        let (status, b) = get_json(
            &gateway,
            "/v1/funding/history?venue=bybit&symbol=BTC-USDT-PERP&from=0",
        )
        .await;
        assert_eq!(status, 200, "{b}");
        if b["funding"].as_array().is_some_and(|r| !r.is_empty()) {
            page = b;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(page["funding"][0]["rate"], "0.0001", "{page}");
    assert_eq!(
        page["funding"][0]["next_funding_ts"],
        1_673_280_000_000_000i64
    );
    let (status, same) = get_json(
        &gateway,
        "/v1/funding?venue=bybit&symbol=BTC-USDT-PERP&from=0",
    )
    .await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(same["funding"][0], page["funding"][0], "{same}");
    let mut oi_page = serde_json::Value::Null;
    for _ in 0..200 {
        let (status, b) = get_json(
            &gateway,
            "/v1/oi?venue=bybit&symbol=BTC-USDT-PERP&limit=10&order=desc",
        )
        .await;
        assert_eq!(status, 200, "{b}");
        if b["oi"].as_array().is_some_and(|r| !r.is_empty()) {
            oi_page = b;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(oi_page["oi"][0]["oi"], "1234.5", "{oi_page}");
    for (path, status, code) in [
        (
            "/v1/funding/history?venue=bybit&symbol=BTC-USDT",
            404,
            "unknown_instrument",
        ),
        (
            "/v1/oi/history?venue=bybit&symbol=BTC-USDT-PERP&limit=0",
            400,
            "limit_out_of_range",
        ),
        (
            "/v1/oi?venue=bybit&symbol=BTC-USDT-PERP&from=yesterday",
            400,
            "invalid_time",
        ),
        (
            "/v1/funding?venue=bybit&symbol=BTC-USDT-PERP&cursor=nope",
            400,
            "invalid_cursor",
        ),
        (
            "/v1/funding/history?venue=bybit&symbol=BTC-USDT-PERP&depth=5",
            400,
            "bad_param",
        ),
        ("/v1/funding?symbol=BTC-USDT-PERP&from=0", 400, "bad_param"),
    ] {
        let (got, body) = get_json(&gateway, path).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
    }

    // Over WS: funding's snapshot on join, then liquidations as updates.
    let mut ws = connect(&gateway).await;
    send(
        &mut ws,
        r#"{"op":"subscribe","id":1,"channels":["funding:bybit:BTC-USDT-PERP","liquidations:bybit:BTC-USDT-PERP"]}"#,
    )
    .await;
    let msg = recv_until(&mut ws, |m| matches!(m, ServerMessage::Snapshot(_))).await;
    let d = data(&msg).unwrap();
    assert_eq!(d.channel, "funding:bybit:BTC-USDT-PERP");
    assert_eq!(d.funding.as_ref().unwrap().rate.to_string(), "0.0001");
    let mut liquidation = None;
    for _ in 0..300 {
        mock.step(1);
        if let Some(m) = recv_within(&mut ws, Duration::from_millis(20)).await
            && let Some(d) = data(&m)
            && d.channel == "liquidations:bybit:BTC-USDT-PERP"
        {
            liquidation = d.liquidations.clone();
            break;
        }
    }
    let liquidation = liquidation.expect("a liquidation update");
    assert_eq!(liquidation[0].side, model::Side::Sell);
    assert_eq!(liquidation[0].size.to_string(), "0.010");
    // ... and is stored: /v1/liquidations pages it from history.
    let mut stored = serde_json::Value::Null;
    for _ in 0..200 {
        let (status, b) = get_json(
            &gateway,
            "/v1/liquidations?venue=bybit&symbol=BTC-USDT-PERP&order=desc&limit=1",
        )
        .await;
        assert_eq!(status, 200, "{b}");
        if b["liquidations"].as_array().is_some_and(|r| !r.is_empty()) {
            stored = b;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(stored["liquidations"][0]["side"], "sell", "{stored}");
    assert_eq!(stored["liquidations"][0]["size"], "0.010", "{stored}");
    let (status, body) = get_json(&gateway, "/v1/liquidations?venue=bybit&symbol=BTC-USDT").await;
    assert_eq!(
        (status, &body["code"]),
        (404, &"unknown_instrument".into()),
        "{body}"
    );
    // A spot symbol has no perpetual channel to subscribe to.
    send(
        &mut ws,
        r#"{"op":"subscribe","id":2,"channels":["funding:bybit:BTC-USDT"]}"#,
    )
    .await;
    let msg = recv_until(&mut ws, |m| matches!(m, ServerMessage::Error(_))).await;
    let ServerMessage::Error(e) = msg else {
        unreachable!()
    };
    assert_eq!(e.code, protocol::ErrorCode::UnknownChannel, "{e:?}");
    gateway.stop().await.unwrap();
}

/// OKX swaps through the whole gateway: funding (with OKX's predicted rate), the mark merged
/// from `mark-price` and `index-tickers`, open interest in BTC (`oiCcy`) over REST, and a
/// liquidation in base units (13 contracts × ctVal 0.01) over WS.
#[tokio::test]
async fn okx_perpetuals_reach_rest_and_ws_in_base_units() {
    let _heavy = HEAVY.lock().await;
    let mock = MockOkx::start(&SYMBOLS).await.unwrap();
    let mut config = config(1.0);
    config.venues = vec![VenueConfig {
        name: "okx".into(),
        symbols: SYMBOLS.iter().map(|s| s.to_string()).collect(),
        ws_url: Some(mock.ws_url()),
        rest_url: Some(mock.rest_url()),
        feed: FeedSettings {
            backoff_base_ms: 50,
            backoff_cap_ms: 400,
            ack_timeout_secs: 5,
            silence_secs: 10,
            ..FeedSettings::default()
        },
        ..VenueConfig::default()
    }];
    let gateway = start(config).await;
    let mut mark = serde_json::Value::Null;
    for _ in 0..300 {
        mock.step(1);
        let (status, b) = get_json(&gateway, "/v1/mark?venue=okx&symbol=BTC-USDT-PERP").await;
        if status == 200 && !b["mark"]["index"].is_null() && !b["mark"]["mark"].is_null() {
            mark = b;
            break;
        }
        assert!(status == 200 || status == 503, "{status}: {b}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mark["channel"], "mark:okx:BTC-USDT-PERP", "{mark}");
    assert!(
        mark["mark"]["mark"].as_str().unwrap().starts_with("42219."),
        "{mark}"
    );
    assert!(
        mark["mark"]["index"]
            .as_str()
            .unwrap()
            .starts_with("42218."),
        "{mark}"
    );
    let (status, funding) = get_json(&gateway, "/v1/funding?venue=okx&symbol=BTC-USDT-PERP").await;
    assert_eq!(status, 200, "{funding}");
    assert_eq!(funding["funding"]["rate"], "0.0001", "{funding}");
    assert_eq!(funding["funding"]["predicted_rate"], "0.00015", "{funding}");
    assert_eq!(
        funding["funding"]["next_funding_ts"],
        1_700_726_400_000_000i64
    );
    let (status, oi) = get_json(&gateway, "/v1/oi?venue=okx&symbol=BTC-USDT-PERP").await;
    assert_eq!(status, 200, "{oi}");
    let coins: f64 = oi["oi"]["oi"].as_str().unwrap().parse().unwrap();
    assert!(
        (1000.0..1100.0).contains(&coins),
        "BTC, not contracts: {oi}"
    );
    let (status, body) = get_json(&gateway, "/v1/funding?venue=okx&symbol=BTC-USDT").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("unknown_instrument")),
        "{body}"
    );

    let mut ws = connect(&gateway).await;
    send(
        &mut ws,
        r#"{"op":"subscribe","id":1,"channels":["liquidations:okx:BTC-USDT-PERP"]}"#,
    )
    .await;
    let mut liquidation = None;
    for _ in 0..300 {
        mock.step(1);
        if let Some(m) = recv_within(&mut ws, Duration::from_millis(20)).await
            && let Some(d) = data(&m)
            && d.channel == "liquidations:okx:BTC-USDT-PERP"
        {
            liquidation = d.liquidations.clone();
            break;
        }
    }
    let liquidation = liquidation.expect("a liquidation update");
    assert_eq!(
        liquidation.len(),
        1,
        "the other swap's is not ours: {liquidation:?}"
    );
    assert_eq!(liquidation[0].size.to_string(), "0.13");
    assert_eq!(liquidation[0].price.to_string(), "42000.1");
    gateway.stop().await.unwrap();
}
