//! REST helpers and request errors: typed responses, the gateway's codes, local validation.

use crate::support::*;
use client::{Client, ClientError, ErrorCode, Interval};

#[tokio::test]
async fn rest_helpers_return_typed_bodies_and_the_gateways_codes() {
    let gateway = start(config(50.0)).await;
    let client = Client::connect(&format!("http://{}", gateway.local_addr()), options())
        .await
        .unwrap();
    let rest = client.rest();
    let instruments = rest.instruments().await.unwrap().instruments;
    assert!(instruments.iter().any(|i| i.symbol.as_str() == "BTC-USDT"));
    let ticker = rest.ticker("sim", "BTC-USDT").await.unwrap();
    assert_eq!(ticker.symbol.as_str(), "BTC-USDT");
    let book = rest.book("sim", "BTC-USDT", Some(5)).await.unwrap();
    assert_eq!((book.bids.len(), book.asks.len()), (5, 5));
    assert_eq!(book.channel, "book:sim:BTC-USDT");
    let candles = rest
        .candles("sim", "BTC-USDT", Interval::M1, Some(10))
        .await
        .unwrap();
    assert!(candles.candles.len() <= 10);

    // (call, expected code, HTTP status if the gateway answered)
    let cases: Vec<(Result<(), ClientError>, &str, Option<u16>)> = vec![
        (
            rest.ticker("sim", "NOPE-USDT").await.map(drop),
            "unknown_instrument",
            Some(404),
        ),
        (
            rest.book("sim", "BTC-USDT", Some(0)).await.map(drop),
            "bad_param",
            Some(400),
        ),
        (
            rest.book("sim", "btcusdt", None).await.map(drop),
            "invalid_argument",
            None,
        ),
        (
            rest.ticker("SIM!", "BTC-USDT").await.map(drop),
            "invalid_argument",
            None,
        ),
        (
            client.subscribe(["book:sim:NOPE-USDT"]).await.map(drop),
            "unknown_channel",
            None,
        ),
        (
            client.subscribe(["book:sim"]).await.map(drop),
            "invalid_argument",
            None,
        ),
        (
            client.subscribe(Vec::<String>::new()).await.map(drop),
            "invalid_argument",
            None,
        ),
    ];
    for (n, (result, code, status)) in cases.into_iter().enumerate() {
        let error = result.expect_err(&format!("case {n} must fail"));
        assert_eq!(error.code(), code, "case {n}: {error}");
        if let ClientError::Api {
            status: got,
            code: c,
            ..
        } = &error
        {
            assert_eq!(*got, status, "case {n}");
            assert_ne!(*c, ErrorCode::Internal);
        }
    }
    // The connection still works after refused requests.
    assert_eq!(
        client.subscribe(["ticker:sim:BTC-USDT"]).await.unwrap(),
        ["ticker:sim:BTC-USDT"]
    );
    gateway.stop().await.unwrap();
}
