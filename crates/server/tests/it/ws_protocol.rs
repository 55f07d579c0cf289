//! RFC 6455 violations get the close frame the RFC names (§7.4.1), not a dropped TCP
//! connection: a raw socket does the handshake, writes one crafted frame and reads the answer.

use crate::support::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A TCP connection upgraded to WebSocket by hand, with whatever the server sent after the
/// `101` head.
pub async fn raw_upgrade(addr: std::net::SocketAddr, extra_headers: &str) -> (TcpStream, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /v1/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer to the upgrade")
            .unwrap();
        assert!(
            n > 0,
            "closed during the upgrade: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    let end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let text = String::from_utf8_lossy(&got[..end]).to_string();
    assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    (stream, got[end..].to_vec())
}

/// A client frame: `first` is FIN/RSV/opcode, masked unless `masked` is false.
fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x11, 0x22, 0x33, 0x44];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Reads server frames until a close frame; returns its code and reason, or `None` when the
/// socket ends without one.
pub async fn read_close(stream: &mut TcpStream, mut buffered: Vec<u8>) -> Option<(u16, String)> {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // Parse whole frames out of `buffered` (server frames are unmasked).
        while buffered.len() >= 2 {
            let opcode = buffered[0] & 0x0f;
            let (len, start) = match buffered[1] & 0x7f {
                126 if buffered.len() >= 4 => {
                    (u16::from_be_bytes([buffered[2], buffered[3]]) as usize, 4)
                }
                127 if buffered.len() >= 10 => (
                    u64::from_be_bytes(buffered[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if buffered.len() < start + len {
                break;
            }
            let payload = buffered[start..start + len].to_vec();
            buffered.drain(..start + len);
            if opcode == 0x8 {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                return Some((code, String::from_utf8_lossy(&payload[2..]).to_string()));
            }
        }
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return None,
        };
        buffered.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn protocol_errors_get_their_rfc_6455_close_code() {
    let gateway = start(config(5.0)).await;
    let addr = gateway.local_addr();
    let ping = br#"{"op":"ping"}"#;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "invalid UTF-8 text",
            frame(0x81, b"{\"op\":\"\xff\xfe\"}", true),
            1007,
            "invalid_utf8",
        ),
        (
            "an unmasked frame",
            frame(0x81, ping, false),
            1002,
            "unmasked_frame",
        ),
        ("RSV1 set", frame(0xC1, ping, true), 1002, "reserved_bits"),
        ("opcode 3", frame(0x83, ping, true), 1002, "unknown_opcode"),
        (
            "opcode 0xB (control)",
            frame(0x8B, b"", true),
            1002,
            "unknown_opcode",
        ),
        (
            "a fragmented ping",
            frame(0x09, b"x", true),
            1002,
            "bad_control_frame",
        ),
        (
            "a 126-byte ping",
            frame(0x89, &[b'x'; 126], true),
            1002,
            "bad_control_frame",
        ),
        (
            "a continuation of nothing",
            frame(0x80, ping, true),
            1002,
            "bad_fragment",
        ),
        (
            "a frame over 1 MiB",
            frame(0x82, &vec![b'x'; 1024 * 1024 + 1], true),
            1009,
            "message_too_large",
        ),
    ];
    for (what, bytes, code, reason) in cases {
        let (mut stream, buffered) = raw_upgrade(addr, "").await;
        // The control: this session answers a good ping first.
        stream.write_all(&frame(0x81, ping, true)).await.unwrap();
        let _ = stream.write_all(&bytes).await;
        let close = read_close(&mut stream, buffered).await;
        assert_eq!(close, Some((code, reason.to_string())), "{what}");
    }
    gateway.stop().await.unwrap();
}
