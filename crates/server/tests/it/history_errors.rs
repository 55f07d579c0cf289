//! Every error of the history endpoints, with its status and stable code, and the behaviour
//! with history switched off.

use crate::support::*;

#[tokio::test]
async fn every_history_error_has_its_status_and_code() {
    let gateway = start(config(50.0)).await;
    // A valid cursor of a BTC trades query, to misuse below.
    let cursor = loop {
        let (_, page) = get_json(
            &gateway,
            "/v1/trades?venue=sim&symbol=BTC-USDT&limit=1&from=0",
        )
        .await;
        if let Some(c) = page["next_cursor"].as_str() {
            break c.to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let t = "/v1/trades?venue=sim&symbol=BTC-USDT";
    let c = "/v1/candles?venue=sim&symbol=BTC-USDT";
    let cases: Vec<(String, u16, &str)> = vec![
        ("/v1/trades?venue=sim".into(), 400, "bad_param"),
        ("/v1/trades?symbol=BTC-USDT".into(), 400, "bad_param"),
        (format!("{t}&bogus=1"), 400, "bad_param"),
        (format!("{t}&order=sideways"), 400, "bad_param"),
        (
            "/v1/trades?venue=SIM&symbol=BTC-USDT".into(),
            400,
            "bad_param",
        ),
        (format!("{t}&from=yesterday"), 400, "invalid_time"),
        (format!("{t}&to=2024-13-01T00:00:00Z"), 400, "invalid_time"),
        (format!("{c}&from=1e9"), 400, "invalid_time"),
        (format!("{t}&from=2000&to=1000"), 400, "invalid_range"),
        (
            format!("{t}&from=2024-05-01T00:00:00Z&to=2024-05-01T00:00:00Z"),
            400,
            "invalid_range",
        ),
        (format!("{c}&from=99999999999999"), 400, "invalid_range"),
        (
            "/v1/trades?venue=sim&symbol=DOGE-USDT".into(),
            400,
            "unknown_symbol",
        ),
        (
            "/v1/candles?venue=kraken&symbol=BTC-USD".into(),
            400,
            "unknown_symbol",
        ),
        (format!("{c}&interval=2m"), 400, "unknown_interval"),
        (format!("{t}&limit=0"), 400, "limit_out_of_range"),
        (format!("{t}&limit=5001"), 400, "limit_out_of_range"),
        (format!("{c}&limit=-3"), 400, "limit_out_of_range"),
        (format!("{t}&cursor=not-a-cursor"), 400, "invalid_cursor"),
        (
            format!("{t}&cursor={cursor}&order=desc"),
            400,
            "invalid_cursor",
        ),
        (
            format!("/v1/trades?venue=sim&symbol=ETH-USDT&cursor={cursor}"),
            400,
            "invalid_cursor",
        ),
        (format!("{c}&cursor={cursor}"), 400, "invalid_cursor"),
    ];
    for (path, status, code) in &cases {
        let (got, body) = get_json(&gateway, path).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (*status, Some(*code)),
            "{path}: {body}"
        );
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{path}"
        );
    }
    // The same cursor with the original parameters repeated is fine.
    let (status, _) = get_json(&gateway, &format!("{t}&limit=1&from=0&cursor={cursor}")).await;
    assert_eq!(status, 200);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn without_history_trades_are_not_stored_and_candles_come_from_memory() {
    let mut cfg = config(200.0);
    cfg.history.enabled = false;
    let dir = cfg.server.data_dir.clone();
    let gateway = start(cfg).await;
    let (status, body) = get_json(&gateway, "/v1/trades?venue=sim&symbol=BTC-USDT").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_stored")),
        "{body}"
    );
    let mut candles = Vec::new();
    for _ in 0..100 {
        let (status, body) = get_json(
            &gateway,
            "/v1/candles?venue=sim&symbol=BTC-USDT&interval=1s&order=desc&limit=2",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        candles = body["candles"].as_array().unwrap().clone();
        if candles.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(candles.len(), 2, "recent closed candles from memory");
    assert!(
        candles[0]["start"].as_i64() > candles[1]["start"].as_i64(),
        "desc"
    );
    let (status, body) = get_json(&gateway, "/v1/candles?venue=sim&symbol=DOGE-USDT").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("unknown_symbol"))
    );
    assert!(!dir.join("history.db").exists(), "no database is created");
    let metrics = reqwest::get(format!("http://{}/metrics", gateway.local_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("tickgate_history_"),
        "no history metrics without history"
    );
    gateway.stop().await.unwrap();
}
