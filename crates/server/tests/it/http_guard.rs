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

#[tokio::test]
async fn oversized_and_malformed_heads_get_431_414_400_with_a_json_body() {
    let gateway = start(config(5.0)).await;
    let addr = gateway.local_addr();
    let long = |n: usize| "a".repeat(n);
    let cases = [
        // One header line over 8 KiB, the head under 16 KiB: the gateway's own check.
        (
            format!(
                "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nX-Long: {}\r\nConnection: close\r\n\r\n",
                long(9 * 1024)
            ),
            431,
            "headers_too_large",
        ),
        // The whole head over 16 KiB (many short lines): hyper's limit, answered in JSON.
        (
            format!(
                "GET /healthz HTTP/1.1\r\nHost: {addr}\r\n{}Connection: close\r\n\r\n",
                (0..40)
                    .map(|i| format!("X-H{i}: {}\r\n", long(600)))
                    .collect::<String>()
            ),
            431,
            "headers_too_large",
        ),
        // A target over 8 KiB.
        (
            format!(
                "GET /v1/instruments?x={} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
                long(9 * 1024)
            ),
            414,
            "uri_too_long",
        ),
        // Not HTTP at all.
        ("GARBAGE\u{1}\r\n\r\n".to_string(), 400, "bad_request"),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nBad Header\r\n\r\n"),
            400,
            "bad_request",
        ),
    ];
    for (request, status, code) in cases {
        let (got, body) = raw(&gateway, &request).await;
        let shown = &request[..request.len().min(60)];
        assert_eq!(got, status, "{shown:?}: {body}");
        assert_eq!(body["code"], code, "{shown:?}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    // A keep-alive connection: a good request, then an oversized one, is answered in JSON too.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let two = format!(
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\nGET /healthz HTTP/1.1\r\nHost: {addr}\r\n{}\r\n",
        (0..40)
            .map(|i| format!("X-H{i}: {}\r\n", long(600)))
            .collect::<String>()
    );
    stream.write_all(two.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.contains("HTTP/1.1 431 "), "{text}");
    assert!(text.contains(r#""code":"headers_too_large""#), "{text}");
    gateway.stop().await.unwrap();
}
