//! Signed WebSocket logins over real connections: an upgrade request signed per RFC 9421, or a
//! first `auth` message carrying the signature of the upgrade request. Both pass the replay
//! guard, so a captured login is refused like a replayed REST request.

use crate::auth_signed::{create, now_secs, public_pem, sealing_config, sealing_service};
use crate::auth_support::*;
use crate::support::*;
use auth::httpsig::sign::{SignatureHeaders, SigningKey, Unsigned, sign};
use protocol::ServerMessage;
use std::time::Duration;
use store::keys::KeyKind;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A gateway requiring keys, with a master key (hmac secrets are sealed under it), an hmac
/// key and an ed25519 key. Returns (gateway, hmac key, ed25519 key).
async fn signing_gateway(
    name: &str,
) -> (server::Gateway, (String, SigningKey), (String, SigningKey)) {
    let config = sealing_config(name);
    let service = sealing_service(&config.server.data_dir);
    let seed = [31u8; 32];
    let ed = ed25519_dalek::SigningKey::from_bytes(&seed);
    let (ed_id, _) = create(&service, "ws-ed", KeyKind::Ed25519, Some(public_pem(&ed)));
    let (hmac_id, secret) = create(&service, "ws-mac", KeyKind::Hmac, None);
    let hmac = SigningKey::hmac(secret.unwrap().as_bytes());
    let gateway = start(config).await;
    (
        gateway,
        (hmac_id, hmac),
        (ed_id, SigningKey::ed25519(&seed)),
    )
}

/// The signature headers of `GET /v1/ws` at `authority`.
fn sign_upgrade(
    key: &SigningKey,
    key_id: &str,
    authority: &str,
    path: &str,
    created: i64,
    nonce: &str,
) -> SignatureHeaders {
    let request = Unsigned {
        method: "GET",
        authority,
        path,
        query: None,
        body: b"",
    };
    sign(key, key_id, &request, created, nonce)
}

/// Opens `/v1/ws` with `headers` on the upgrade: Ok(first message) or Err((status, code)).
async fn upgrade(
    gateway: &server::Gateway,
    headers: &SignatureHeaders,
    bearer: Option<&str>,
) -> Result<(Ws, ServerMessage), (u16, String)> {
    let mut request = format!("ws://{}/v1/ws", gateway.local_addr())
        .into_client_request()
        .unwrap();
    let h = request.headers_mut();
    h.insert("signature-input", headers.signature_input.parse().unwrap());
    h.insert("signature", headers.signature.parse().unwrap());
    if let Some(token) = bearer {
        h.insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    connect_outcome(request).await
}

fn authenticated_as(message: &ServerMessage, key_id: &str) {
    match message {
        ServerMessage::Authenticated { key_id: k, .. } => assert_eq!(k, key_id),
        other => panic!("expected authenticated as {key_id}, got {other:?}"),
    }
}

#[tokio::test]
async fn signed_upgrade_logs_in_once() {
    let (gateway, (hmac_id, hmac), (ed_id, ed)) = signing_gateway("ws-signed-upgrade").await;
    let addr = gateway.local_addr().to_string();

    for (id, key, nonce) in [(&hmac_id, &hmac, "up-1"), (&ed_id, &ed, "up-2")] {
        let headers = sign_upgrade(key, id, &addr, "/v1/ws", now_secs(), nonce);
        let (mut ws, first) = upgrade(&gateway, &headers, None).await.unwrap();
        authenticated_as(&first, id);
        // The session is bound to the key: it may subscribe.
        send(
            &mut ws,
            r#"{"op":"subscribe","id":1,"channels":["ticker:sim:BTC-USDT"]}"#,
        )
        .await;
        match recv_within(&mut ws, Duration::from_secs(5)).await {
            Some(ServerMessage::Subscribed { .. }) => {}
            other => panic!("expected subscribed, got {other:?}"),
        }
        // The same signed upgrade again: a replay.
        assert_eq!(
            upgrade(&gateway, &headers, None).await.unwrap_err(),
            (401, "nonce_reused".into())
        );
    }

    // Signed for another host, or long ago, or mixed with a bearer token: refused.
    let other_host = sign_upgrade(
        &hmac,
        &hmac_id,
        "evil.example:443",
        "/v1/ws",
        now_secs(),
        "up-3",
    );
    assert_eq!(
        upgrade(&gateway, &other_host, None).await.unwrap_err(),
        (401, "signature_invalid".into())
    );
    let stale = sign_upgrade(&hmac, &hmac_id, &addr, "/v1/ws", now_secs() - 600, "up-4");
    assert_eq!(
        upgrade(&gateway, &stale, None).await.unwrap_err(),
        (401, "timestamp_stale".into())
    );
    let both = sign_upgrade(&hmac, &hmac_id, &addr, "/v1/ws", now_secs(), "up-5");
    assert_eq!(
        upgrade(&gateway, &both, Some("tg_test_whatever"))
            .await
            .unwrap_err()
            .0,
        400
    );
    // Counted by code and key.
    for (code, key, n) in [
        ("nonce_reused", &hmac_id, 1),
        ("nonce_reused", &ed_id, 1),
        ("signature_invalid", &hmac_id, 1),
        ("timestamp_stale", &hmac_id, 1),
    ] {
        let sample = format!("tickgate_auth_rejections_total{{code=\"{code}\",key=\"{key}\"}}");
        assert_eq!(metric(&gateway, &sample).await, n, "{sample}");
    }
}

/// The `auth` op with a signature of the upgrade request.
fn auth_op(id: u64, headers: &SignatureHeaders) -> String {
    serde_json::json!({
        "op": "auth",
        "id": id,
        "signature_input": headers.signature_input,
        "signature": headers.signature,
    })
    .to_string()
}

#[tokio::test]
async fn signed_auth_message_logs_in_once() {
    let (gateway, (hmac_id, hmac), (ed_id, ed)) = signing_gateway("ws-signed-op").await;
    let addr = gateway.local_addr().to_string();

    for (id, key, nonce) in [(&ed_id, &ed, "op-1"), (&hmac_id, &hmac, "op-2")] {
        let headers = sign_upgrade(key, id, &addr, "/v1/ws", now_secs(), nonce);
        let mut ws = connect(&gateway).await;
        send(&mut ws, &auth_op(7, &headers)).await;
        match next(&mut ws, Duration::from_secs(2)).await {
            Next::Msg(m) => match *m {
                ServerMessage::Authenticated {
                    id: Some(protocol::RequestId::Num(7)),
                    key_id,
                    ..
                } => assert_eq!(&key_id, id),
                other => panic!("expected authenticated with id 7, got {other:?}"),
            },
            other => panic!("no reply: {other:?}"),
        }
        send(&mut ws, r#"{"op":"ping","id":8}"#).await;
        assert!(matches!(
            recv_within(&mut ws, Duration::from_secs(2)).await,
            Some(ServerMessage::Pong { .. })
        ));

        // Replaying the login on another connection: refused, and the connection closes.
        let mut replay = connect(&gateway).await;
        send(&mut replay, &auth_op(9, &headers)).await;
        let (code, close, _) = until_error_and_close(&mut replay, Duration::from_secs(3)).await;
        assert_eq!((code.as_str(), close), ("nonce_reused", 4002));
    }

    // A signature over another path, or covering too little, does not log in.
    for (headers, expected) in [
        (
            sign_upgrade(&ed, &ed_id, &addr, "/v1/elsewhere", now_secs(), "op-3"),
            "signature_invalid",
        ),
        (
            sign_upgrade(&ed, &ed_id, &addr, "/v1/ws", now_secs() + 600, "op-4"),
            "timestamp_future",
        ),
    ] {
        let mut ws = connect(&gateway).await;
        send(&mut ws, &auth_op(1, &headers)).await;
        let (code, close, _) = until_error_and_close(&mut ws, Duration::from_secs(3)).await;
        assert_eq!((code.as_str(), close), (expected, 4002));
    }
    let mut ws = connect(&gateway).await;
    let incomplete = serde_json::json!({
        "op": "auth",
        "signature_input": format!("sig1=(\"@method\");created={};keyid=\"{ed_id}\";nonce=\"op-5\"", now_secs()),
        "signature": "sig1=:AAAA:",
    });
    send(&mut ws, &incomplete.to_string()).await;
    let (code, close, _) = until_error_and_close(&mut ws, Duration::from_secs(3)).await;
    assert_eq!((code.as_str(), close), ("signature_incomplete", 4002));
}
