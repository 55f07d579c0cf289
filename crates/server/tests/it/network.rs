//! Network controls over real connections: trusted proxies (`server.trusted_proxies`) and
//! browser origins (`server.allowed_origins`: the WebSocket `Origin` check and CORS).

use crate::auth_support::*;
use crate::support::*;
use crate::ws_protocol::raw_upgrade;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TICKER: &str = "/v1/ticker?venue=sim&symbol=BTC-USDT";

/// One raw request (`extra` headers included) and the answer's status, headers and JSON body.
async fn raw_get(
    gateway: &server::Gateway,
    method: &str,
    path: &str,
    extra: &str,
) -> (u16, String, serde_json::Value) {
    let addr = gateway.local_addr();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        status,
        head.to_ascii_lowercase(),
        serde_json::from_str(body).unwrap_or_default(),
    )
}

/// A gateway requiring keys, and a `market:read` key usable only from 203.0.113.0/24.
async fn gateway_with_allow_listed_key(
    name: &str,
    trusted: &[&str],
) -> (server::Gateway, String, Signer) {
    let mut config = auth_config(name);
    let admin = offline_signer(&config.server.data_dir, "admin", &["keys:admin"]);
    config.server.trusted_proxies = trusted.iter().map(|s| s.to_string()).collect();
    let issued = offline_service(&config.server.data_dir)
        .create(
            auth::NewKey {
                name: "behind-proxy".into(),
                scopes: vec!["market:read".into()],
                metadata: Some(serde_json::json!({ "allowed_ips": ["203.0.113.0/24"] })),
                ..Default::default()
            },
            "test",
            model::Timestamp::now().0,
        )
        .unwrap();
    let token = issued.secret.unwrap().expose().to_string();
    (start(config).await, token, admin)
}

#[tokio::test]
async fn a_spoofed_forwarding_header_from_an_untrusted_peer_is_ignored() {
    // Loopback is not a trusted proxy here (the default list is empty).
    let (gateway, token, _) = gateway_with_allow_listed_key("proxy-untrusted", &[]).await;
    let auth = format!("Authorization: Bearer {token}\r\n");
    for spoof in [
        "X-Forwarded-For: 203.0.113.7\r\n",
        "Forwarded: for=203.0.113.7\r\n",
        // Malformed, and still only ignored: nothing from this peer is read.
        "X-Forwarded-For: not-an-address\r\n",
    ] {
        let (status, _, body) = raw_get(&gateway, "GET", TICKER, &format!("{auth}{spoof}")).await;
        assert_eq!(
            (status, code(&body)),
            (403, "ip_not_allowed"),
            "{spoof:?}: {body}"
        );
    }
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_trusted_proxy_names_the_client_for_allow_lists_and_audit() {
    let (gateway, token, admin) =
        gateway_with_allow_listed_key("proxy-trusted", &["127.0.0.0/8"]).await;
    let auth = format!("Authorization: Bearer {token}\r\n");
    let cases = [
        ("X-Forwarded-For: 203.0.113.7\r\n", 200, ""),
        // The client wrote 198.51.100.1 itself; 203.0.113.7 reached the first proxy.
        (
            "X-Forwarded-For: 198.51.100.1, 203.0.113.7, 127.0.0.9\r\n",
            200,
            "",
        ),
        (
            "X-Forwarded-For: 203.0.113.7, 198.51.100.1\r\n",
            403,
            "ip_not_allowed",
        ),
        (
            "Forwarded: for=\"203.0.113.7:4711\";proto=https\r\n",
            200,
            "",
        ),
        (
            "Forwarded: for=\"[2001:db8::1]\"\r\n",
            403,
            "ip_not_allowed",
        ),
        // No header: the proxy itself is the client.
        ("", 403, "ip_not_allowed"),
        (
            "X-Forwarded-For: 203.0.113.7:x\r\n",
            400,
            "invalid_forwarded",
        ),
        ("Forwarded: for=[2001:db8::1]\r\n", 400, "invalid_forwarded"),
        ("Forwarded: for=\"203.0.113.7\r\n", 400, "invalid_forwarded"),
    ];
    for (header, status, expected) in cases {
        let (got, _, body) = raw_get(&gateway, "GET", TICKER, &format!("{auth}{header}")).await;
        assert_eq!(got, status, "{header:?}: {body}");
        if !expected.is_empty() {
            assert_eq!(code(&body), expected, "{header:?}: {body}");
        }
    }
    // The WebSocket upgrade resolves the same way.
    let (mut ws, _) = raw_upgrade(
        gateway.local_addr(),
        &format!("{auth}X-Forwarded-For: 203.0.113.7\r\n"),
    )
    .await;
    ws.shutdown().await.unwrap();
    // The refusal was audited with the client's address, not the proxy's.
    let http = Http::new(&gateway);
    let mut seen = false;
    for _ in 0..50 {
        let (_, audit) = Http::json(http.get("/admin/v1/audit", Some(&admin)).await).await;
        let entries = audit["entries"].as_array().cloned().unwrap_or_default();
        seen = entries
            .iter()
            .any(|e| e["action"] == "auth.ip_refused" && e["actor"] == "198.51.100.1");
        if seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "no auth.ip_refused entry naming 198.51.100.1");
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn websocket_upgrades_from_other_origins_are_refused() {
    let mut config = config(5.0);
    config.server.allowed_origins = vec!["https://app.example.com".into()];
    let gateway = start(config).await;
    let addr = gateway.local_addr();
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    // Another site's page: refused before the upgrade.
    let (status, _, body) = raw_get(
        &gateway,
        "GET",
        "/v1/ws",
        &format!("{upgrade}Origin: https://evil.example\r\n"),
    )
    .await;
    assert_eq!((status, code(&body)), (403, "origin_not_allowed"), "{body}");
    let (status, _, body) = raw_get(
        &gateway,
        "GET",
        "/v1/ws",
        &format!("{upgrade}Origin: null\r\n"),
    )
    .await;
    assert_eq!((status, code(&body)), (403, "origin_not_allowed"), "{body}");
    // A listed origin, the gateway's own (the dashboard) and no Origin at all (an SDK) get in.
    for origin in [
        "Origin: https://app.example.com\r\n".to_string(),
        format!("Origin: http://{addr}\r\n"),
        String::new(),
    ] {
        let (mut ws, _) = raw_upgrade(addr, &origin).await;
        ws.shutdown().await.unwrap();
    }
    assert!(
        metric(
            &gateway,
            "tickgate_errors_total{code=\"origin_not_allowed\"}"
        )
        .await
            >= 2
    );
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn cors_preflight_is_answered_for_allowed_origins_only() {
    let mut config = config(5.0);
    config.server.allowed_origins = vec!["https://app.example.com".into()];
    let gateway = start(config).await;
    let preflight = "Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: signature, signature-input\r\n";
    let (status, head, _) = raw_get(
        &gateway,
        "OPTIONS",
        TICKER,
        &format!("Origin: https://app.example.com\r\n{preflight}"),
    )
    .await;
    assert_eq!(status, 204, "{head}");
    assert!(
        head.contains("access-control-allow-origin: https://app.example.com"),
        "{head}"
    );
    let allow = head
        .lines()
        .find_map(|l| l.strip_prefix("access-control-allow-headers: "))
        .unwrap_or_default()
        .to_string();
    for needed in [
        "authorization",
        "signature",
        "signature-input",
        "content-digest",
    ] {
        assert!(allow.contains(needed), "{allow}");
    }
    assert!(head.contains("access-control-allow-methods: "), "{head}");
    assert!(!head.contains("access-control-allow-credentials"), "{head}");
    // The actual request from that origin can be read by its page.
    let (status, head, _) = raw_get(
        &gateway,
        "GET",
        TICKER,
        "Origin: https://app.example.com\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        head.contains("access-control-allow-origin: https://app.example.com"),
        "{head}"
    );
    assert!(head.contains("vary: origin"), "{head}");
    // Another origin: no CORS header at all, the preflight is not answered.
    let (status, head, _) = raw_get(
        &gateway,
        "OPTIONS",
        TICKER,
        &format!("Origin: https://evil.example\r\n{preflight}"),
    )
    .await;
    assert_ne!(status, 204, "{head}");
    assert!(!head.contains("access-control-"), "{head}");
    let (status, head, _) =
        raw_get(&gateway, "GET", TICKER, "Origin: https://evil.example\r\n").await;
    assert_eq!(
        status, 200,
        "the request itself is served; the browser hides it"
    );
    assert!(!head.contains("access-control-"), "{head}");
    // No Origin: no CORS headers either.
    let (_, head, _) = raw_get(&gateway, "GET", TICKER, "").await;
    assert!(!head.contains("access-control-"), "{head}");
    gateway.stop().await.unwrap();
}

/// A raw request from a chosen loopback source address; returns status and head.
async fn get_from(
    gateway: &server::Gateway,
    source: &str,
    path: &str,
    extra: &str,
) -> (u16, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    let mut stream = socket.connect(gateway.local_addr()).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: gw\r\n{extra}Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text.to_ascii_lowercase())
}

/// A WebSocket session from a chosen loopback source address, or the refusal's status.
async fn ws_from(gateway: &server::Gateway, source: &str, bearer: Option<&str>) -> Result<Ws, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    let stream = socket.connect(gateway.local_addr()).await.unwrap();
    let mut request = format!("ws://{}/v1/ws", gateway.local_addr())
        .into_client_request()
        .unwrap();
    if let Some(token) = bearer {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// Sends a subscribe and returns the code of the error it got, or "" for the ack.
async fn subscribe(ws: &mut Ws, channels: &[&str]) -> String {
    let list = channels
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(",");
    send(
        ws,
        &format!(r#"{{"op":"subscribe","id":1,"channels":[{list}]}}"#),
    )
    .await;
    loop {
        match recv(ws).await {
            protocol::ServerMessage::Subscribed { .. } => return String::new(),
            protocol::ServerMessage::Error(e) => return e.code.as_str().to_string(),
            _ => {}
        }
    }
}

#[tokio::test]
async fn anonymous_clients_are_limited_per_address_and_keyed_ones_per_key() {
    let mut config = config(5.0);
    config.server.anonymous.requests_per_sec = 1;
    config.server.anonymous.burst = 5;
    config.server.anonymous.ws_connections_per_ip = 2;
    config.server.anonymous.subscriptions_per_ip = 3;
    let (_, token) = offline_key(&config.server.data_dir, "keyed", &["market:read"]);
    let gateway = start(config).await;

    // REST: a burst of 5 from one address, then 429 with Retry-After; another address and a
    // keyed client from the same address are not affected.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(get_from(&gateway, "127.0.0.21", TICKER, "").await);
    }
    assert!(statuses[..5].iter().all(|(s, _)| *s == 200), "{statuses:?}");
    let (status, head) = &statuses[5];
    assert_eq!(*status, 429, "{head}");
    assert!(head.contains("\"code\":\"rate_limited\""), "{head}");
    assert!(head.contains("retry-after: "), "{head}");
    assert_eq!(get_from(&gateway, "127.0.0.22", TICKER, "").await.0, 200);
    let auth = format!("Authorization: Bearer {token}\r\n");
    for _ in 0..10 {
        assert_eq!(get_from(&gateway, "127.0.0.21", TICKER, &auth).await.0, 200);
    }
    assert!(
        metric(
            &gateway,
            "tickgate_anonymous_refused_total{limit=\"requests\"}"
        )
        .await
            >= 1
    );

    // WebSocket sessions: two anonymous ones per address; a keyed one still gets in.
    let mut first = ws_from(&gateway, "127.0.0.23", None).await.unwrap();
    let mut second = ws_from(&gateway, "127.0.0.23", None).await.unwrap();
    assert_eq!(ws_from(&gateway, "127.0.0.23", None).await.err(), Some(429));
    let keyed = ws_from(&gateway, "127.0.0.23", Some(&token)).await;
    assert!(keyed.is_ok(), "a keyed session is limited per key");
    assert!(
        metric(
            &gateway,
            "tickgate_anonymous_refused_total{limit=\"ws_connections\"}"
        )
        .await
            >= 1
    );

    // Channels: 3 across the address's anonymous sessions.
    let channels = [
        "ticker:sim:BTC-USDT",
        "ticker:sim:ETH-USDT",
        "book:sim:BTC-USDT",
    ];
    assert_eq!(subscribe(&mut first, &channels[..2]).await, "");
    assert_eq!(
        subscribe(&mut second, &channels[1..]).await,
        "too_many_channels"
    );
    assert_eq!(subscribe(&mut second, &channels[2..]).await, "");
    // Closing the first session gives back its slot and its channels.
    first.close(None).await.unwrap();
    drop(first);
    let mut freed = false;
    for _ in 0..100 {
        if let Ok(mut third) = ws_from(&gateway, "127.0.0.23", None).await {
            assert_eq!(subscribe(&mut third, &channels[..2]).await, "");
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "the closed session's slot never came back");
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn upgrades_in_progress_are_capped_until_they_authenticate() {
    let mut config = auth_config("pending-upgrades");
    config.server.max_pending_upgrades = 2;
    config.auth.ws_auth_timeout_secs = 2;
    let (_, token) = offline_key(&config.server.data_dir, "market", &["market:read"]);
    let gateway = start(config).await;
    let url = format!("ws://{}/v1/ws", gateway.local_addr());
    let open = || async {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body = response.body().clone().unwrap_or_default();
                let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                Err((response.status().as_u16(), code(&json).to_string()))
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    };
    // Two sessions that have not logged in hold both slots.
    let mut first = open().await.unwrap();
    let mut second = open().await.unwrap();
    assert_eq!(open().await.err(), Some((503, "unavailable".to_string())));
    assert!(metric(&gateway, "tickgate_ws_pending_upgrades_refused_total").await >= 1);
    // One logs in: its slot is free again, and its session goes on.
    send(
        &mut first,
        &format!(r#"{{"op":"auth","id":1,"token":"{token}"}}"#),
    )
    .await;
    assert!(matches!(
        recv(&mut first).await,
        protocol::ServerMessage::Authenticated { .. }
    ));
    let mut third = open().await.expect("a slot came back after the login");
    assert_eq!(open().await.err(), Some((503, "unavailable".to_string())));
    // The silent ones are closed at the login deadline, with the stable reason, and their
    // slots come back.
    let closed = wait_close(&mut second, Duration::from_secs(5)).await;
    assert_eq!(closed, Some((4002, "missing_credentials".to_string())));
    let _ = wait_close(&mut third, Duration::from_secs(5)).await;
    let mut back = false;
    for _ in 0..50 {
        if open().await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "the closed sessions' slots never came back");
    send(&mut first, r#"{"op":"ping","id":2}"#).await;
    assert!(matches!(
        recv(&mut first).await,
        protocol::ServerMessage::Pong { .. }
    ));
    gateway.stop().await.unwrap();
}
