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
    let http = reqwest::Client::new();
    for path in &described {
        let item = doc["paths"][path].as_object().unwrap();
        let methods: Vec<&str> = ["get", "post", "patch", "put", "delete"]
            .into_iter()
            .filter(|m| item.contains_key(*m))
            .collect();
        assert!(!methods.is_empty(), "{path}: no operation described");
        for method in methods {
            let op = &item[method];
            let success = ["200", "201", "204"]
                .iter()
                .any(|c| op["responses"][c].is_object());
            assert!(
                success || path == "/v1/ws",
                "{path} {method}: documents its success"
            );
            // A described operation is really routed: it never falls through to `not_found`
            // or `method_not_allowed` (admin routes answer 401 here: no key).
            let url = format!(
                "http://{}{}",
                gateway.local_addr(),
                path.replace("{id}", "x")
            );
            let request = match method {
                "get" => http.get(&url),
                "post" => http.post(&url).json(&serde_json::json!({})),
                "patch" => http.patch(&url).json(&serde_json::json!({})),
                "delete" => http.delete(&url),
                other => panic!("{path}: unexpected method {other}"),
            };
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            assert!(
                body["code"] != "not_found" && status != 405,
                "{path} {method}: {status} {body}"
            );
        }
    }
    // Security follows the route table: the admin API takes signatures only (default
    // `signature_required_scopes`), market routes also bearer keys or nobody (test default).
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer", "{schemes}");
    assert_eq!(schemes["signature"]["name"], "Signature", "{schemes}");
    assert_eq!(
        schemes["signatureInput"]["name"], "Signature-Input",
        "{schemes}"
    );
    let admin = &doc["paths"]["/admin/v1/keys"]["post"]["security"];
    assert_eq!(
        admin,
        &serde_json::json!([{"signature": ["keys:admin"], "signatureInput": ["keys:admin"]}]),
    );
    let ticker = &doc["paths"]["/v1/ticker"]["get"]["security"];
    assert_eq!(
        ticker,
        &serde_json::json!([
            {},
            {"bearer": ["market:read"]},
            {"signature": ["market:read"], "signatureInput": ["market:read"]}
        ]),
    );
    assert!(doc["paths"]["/healthz"]["get"]["security"].is_null());
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
