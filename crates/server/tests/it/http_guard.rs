//! Ambiguous HTTP requests are refused with a JSON error, over a raw TCP connection (a real
//! HTTP client would not send most of them).

use crate::support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `request` as is and returns the status and the JSON body of the answer.
async fn raw(gateway: &server::Gateway, request: &str) -> (u16, serde_json::Value) {
    let mut stream = tokio::net::TcpStream::connect(gateway.local_addr())
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn ambiguous_requests_are_refused_with_a_json_error() {
    let gateway = start(config(5.0)).await;
    let addr = gateway.local_addr();
    let ok = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    assert_eq!(raw(&gateway, &ok).await.0, 200, "the control request");
    let cases = [
        (
            format!(
                "GET /v1/instruments HTTP/1.1\r\nHost: {addr}\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
            ),
            "host header is given more than once",
        ),
        (
            "GET /v1/instruments HTTP/1.1\r\nConnection: close\r\n\r\n".to_string(),
            "needs a Host header",
        ),
        (
            format!(
                "GET http://evil.example/v1/instruments HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
            ),
            "another authority",
        ),
        (
            format!(
                "GET /v1/instruments HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\nConnection: close\r\n\r\n"
            ),
            "authorization header is given more than once",
        ),
        (
            format!(
                "GET /v1/instruments HTTP/1.1\r\nHost: {addr}\r\nSignature-Input: a=()\r\nSignature-Input: b=()\r\nConnection: close\r\n\r\n"
            ),
            "signature-input header is given more than once",
        ),
    ];
    for (request, expected) in cases {
        let (status, body) = raw(&gateway, &request).await;
        assert_eq!(status, 400, "{request:?}: {body}");
        assert_eq!(body["code"], "bad_request", "{request:?}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{request:?}: {message}");
    }
    // An absolute-form target naming the gateway itself is fine.
    let same =
        format!("GET http://{addr}/healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    assert_eq!(raw(&gateway, &same).await.0, 200);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let gateway = start(config(5.0)).await;
    for path in ["/healthz", "/v1/instruments", "/nope", "/"] {
        let response = reqwest::get(format!("http://{}{path}", gateway.local_addr()))
            .await
            .unwrap();
        for (name, value) in server::http_guard::SECURITY_HEADERS {
            let got = response.headers().get(name).and_then(|v| v.to_str().ok());
            if path == "/" {
                // The dashboard sets its own (stricter) values; they are kept.
                assert!(got.is_some(), "{path}: {name}");
            } else {
                assert_eq!(got, Some(value), "{path}: {name}");
            }
        }
    }
    gateway.stop().await.unwrap();
}
