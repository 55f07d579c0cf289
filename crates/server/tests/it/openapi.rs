//! `/openapi.json` describes exactly the routes the router serves, and they all answer.

use crate::support::*;
use protocol::ErrorCode;
use std::collections::BTreeSet;

#[tokio::test]
async fn every_served_route_is_described_and_every_described_route_is_served() {
    let gateway = start(config(20.0)).await;
    let (status, doc) = get_json(&gateway, "/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let described: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let served: BTreeSet<String> = server::gateway::routes()
        .iter()
        .map(|r| r.path.to_string())
        .collect();
    assert_eq!(described, served, "routes and their description differ");
    for path in &described {
        let item = &doc["paths"][path];
        // Every route is a GET but the one that issues WebSocket tokens.
        let post = path == "/v1/ws-token";
        let method = if post { "post" } else { "get" };
        assert!(item[method].is_object(), "{path}: not a {method}");
        assert!(
            item[method]["responses"]["200"].is_object() || path == "/v1/ws",
            "{path}: documents its success"
        );
        // A described route is really routed: it never falls through to `not_found` (the
        // POST route answers a GET with 405, which only a routed path does).
        let (status, body) = get_json(&gateway, path).await;
        assert!(
            body["code"] != "not_found" && (status != 405) != post,
            "{path}: {status} {body}"
        );
    }
    // Schemas come from the code's own types, so they follow them.
    let schemas = &doc["components"]["schemas"];
    let trade = &schemas["WireTrade"]["properties"];
    let fields: BTreeSet<&str> = trade
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from(["id", "price", "size", "side", "ts"])
    );
    for page in [
        "TradesPage",
        "CandlesPage",
        "HistoryCandle",
        "ErrorBody",
        "BookResponse",
    ] {
        assert!(schemas[page].is_object(), "{page} schema missing");
    }
    let codes: BTreeSet<&str> = schemas["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let all: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(codes, all, "every error code is documented");
    let params: BTreeSet<&str> = doc["paths"]["/v1/trades"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        params,
        BTreeSet::from(["venue", "symbol", "from", "to", "limit", "cursor", "order"])
    );
    gateway.stop().await.unwrap();
}
