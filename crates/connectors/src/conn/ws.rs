//! Opening venue WebSocket connections (TLS with rustls + ring, webpki roots).

use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A venue connection.
pub type VenueSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Largest venue message accepted (a Kraken depth-1000 snapshot is well below).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Installs rustls' ring provider as the process default, once. Idempotent; the binary calls
/// it first thing in `main`, connectors call it again before connecting so a library user
/// cannot forget it.
pub fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing the race to another thread installing the same provider is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Connects to `url` (`ws://` or `wss://`) within `timeout`.
pub async fn connect(url: &str, timeout: Duration) -> Result<VenueSocket, String> {
    ensure_crypto_provider();
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
        .read_buffer_size(64 * 1024);
    let connect = tokio_tungstenite::connect_async_tls_with_config(url, Some(config), true, None);
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok((socket, _response))) => Ok(socket),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no handshake within {timeout:?}")),
    }
}
