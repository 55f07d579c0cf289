//! REST endpoints and their errors.

use crate::support::*;
use serde_json::Value;

async fn get(gateway: &server::Gateway, path: &str) -> (u16, Value) {
    let response = reqwest::get(format!("http://{}{path}", gateway.local_addr()))
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn endpoints_answer_with_documented_shapes() {
    let gateway = start(config(100.0)).await;
    let (status, body) = get(&gateway, "/v1/instruments").await;
    assert_eq!(status, 200);
    let symbols: Vec<&str> = body["instruments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(symbols, ["BTC-USDT", "ETH-USDT", "SOL-USDT"]);
    assert_eq!(body["instruments"][0]["tick_size"], "0.01");

    let (status, book) = get(&gateway, "/v1/book?venue=sim&symbol=BTC-USDT&depth=5").await;
    assert_eq!(status, 200);
    assert_eq!(book["bids"].as_array().unwrap().len(), 5);
    assert_eq!(book["channel"], "book:sim:BTC-USDT");
    assert!(book["seq"].as_u64().unwrap() >= 1 && book["checksum"].is_u64());

    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, ticker) = get(&gateway, "/v1/ticker?venue=sim&symbol=BTC-USDT").await;
    assert_eq!(status, 200);
    assert!(ticker["ticker"]["bid"].is_string() && ticker["ticker"]["ask"].is_string());

    let (status, candles) = get(
        &gateway,
        "/v1/candles?venue=sim&symbol=BTC-USDT&interval=1s&limit=10",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(candles["interval"], "1s");
    assert!(!candles["candles"].as_array().unwrap().is_empty());

    let (status, health) = get(&gateway, "/healthz").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (status, ready) = get(&gateway, "/readyz").await;
    assert_eq!((status, ready["ready"].as_bool()), (200, Some(true)));

    let metrics = reqwest::get(format!("http://{}/metrics", gateway.local_addr()))
        .await
        .unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    for family in [
        "tickgate_connections_open",
        "tickgate_messages_out_total",
        "tickgate_delivery_latency_seconds_bucket",
        "tickgate_book_resyncs_total",
        "tickgate_conflations_total",
    ] {
        assert!(text.contains(family), "{family} missing");
    }
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn bad_requests_get_json_errors_with_codes_and_statuses() {
    let gateway = start(config(20.0)).await;
    let cases = [
        ("/v1/book?venue=sim", 400, "bad_param"),
        (
            "/v1/book?venue=sim&symbol=BTC-USDT&depth=0",
            400,
            "bad_param",
        ),
        (
            "/v1/book?venue=sim&symbol=BTC-USDT&depth=abc",
            400,
            "bad_param",
        ),
        (
            "/v1/book?venue=sim&symbol=BTC-USDT&depth=5001",
            400,
            "bad_param",
        ),
        (
            "/v1/book?venue=sim&symbol=BTC-USDT&dept=5",
            400,
            "bad_param",
        ),
        ("/v1/book?venue=SIM&symbol=BTC-USDT", 400, "bad_param"),
        ("/v1/book?venue=sim&symbol=btc", 400, "bad_param"),
        (
            "/v1/book?venue=sim&symbol=DOGE-USDT",
            404,
            "unknown_instrument",
        ),
        (
            "/v1/ticker?venue=kraken&symbol=BTC-USD",
            404,
            "unknown_instrument",
        ),
        (
            "/v1/candles?venue=sim&symbol=BTC-USDT&interval=2m",
            400,
            "unknown_interval",
        ),
        (
            "/v1/candles?venue=sim&symbol=BTC-USDT&limit=100000",
            400,
            "bad_param",
        ),
        ("/v1/instruments?x=1", 400, "bad_param"),
        ("/v1/nothing", 404, "not_found"),
        (
            "/v1/book?venue=sim&symbol=BTC-USDT&depth=5&depth=6",
            400,
            "bad_param",
        ),
        (
            "/v1/book?venue=sim&symbol=BTC-USDT&depth=%ZZ",
            400,
            "bad_param",
        ),
        ("/v1/ws", 400, "bad_request"),
    ];
    for (path, status, code) in cases {
        let (got_status, body) = get(&gateway, path).await;
        assert_eq!(
            (got_status, body["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/book", gateway.local_addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "method_not_allowed");
    gateway.stop().await.unwrap();
}
