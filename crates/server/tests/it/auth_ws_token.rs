//! Single-use WebSocket tokens over real HTTP and WebSocket: used once, a second use is
//! `token_used`, a late one `token_expired`.

use crate::auth_support::*;
use crate::support::*;
use protocol::ServerMessage;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Connects with `?token=`; Ok(first message) or Err((HTTP status, error code)).
async fn connect_token(
    gateway: &server::Gateway,
    token: &str,
) -> Result<ServerMessage, (u16, String)> {
    let url = format!("ws://{}/v1/ws?token={token}", gateway.local_addr());
    connect_outcome(url.into_client_request().unwrap())
        .await
        .map(|(_, first)| first)
}

#[tokio::test]
async fn ws_tokens_are_single_use_and_expire() {
    let mut config = auth_config("wstoken");
    config.auth.ws_token_ttl_secs = 1;
    let dir = config.server.data_dir.clone();
    let (key_id, market) = offline_key(&dir, "browser", &["market:read"]);
    let (_, history) = offline_key(&dir, "hist", &["history:read"]);
    let gateway = start(config).await;
    let http = Http::new(&gateway);

    let (status, json) = Http::json(
        http.post("/v1/ws-token", Some(&market), serde_json::json!({}))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["key_id"], key_id.as_str());
    let token = json["token"].as_str().unwrap().to_string();
    match connect_token(&gateway, &token).await {
        Ok(ServerMessage::Authenticated { key_id: k, .. }) => assert_eq!(k, key_id),
        other => panic!("expected authenticated, got {other:?}"),
    }
    assert_eq!(
        connect_token(&gateway, &token).await.unwrap_err(),
        (401, "token_used".into())
    );

    let (_, json) = Http::json(
        http.post("/v1/ws-token", Some(&market), serde_json::json!({}))
            .await,
    )
    .await;
    let late = json["token"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        connect_token(&gateway, &late).await.unwrap_err(),
        (401, "token_expired".into())
    );
    assert_eq!(
        connect_token(&gateway, "tgws_unknown").await.unwrap_err(),
        (401, "unknown_key".into())
    );

    // Issuing needs market:read and a key.
    let (status, json) = Http::json(
        http.post("/v1/ws-token", Some(&history), serde_json::json!({}))
            .await,
    )
    .await;
    assert_eq!((status, code(&json)), (403, "insufficient_scope"));
    let (status, json) = Http::json(
        http.post("/v1/ws-token", NO_KEY, serde_json::json!({}))
            .await,
    )
    .await;
    assert_eq!((status, code(&json)), (401, "missing_credentials"));
}
