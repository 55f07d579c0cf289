//! HTTP + WebSocket API: sessions, REST, metrics, configuration
