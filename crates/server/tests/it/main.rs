//! Integration tests: the real gateway on an ephemeral port, real WebSocket and HTTP clients.
//!
//! One test binary (faster to link); each module covers one area.

mod auth_support;
mod support;

mod alerts;
mod auth_anomaly;
mod auth_lifecycle;
mod auth_rejections;
mod auth_signed;
mod auth_ws_signed;
mod auth_ws_token;
mod book_stream;
mod cluster_alerts;
mod cluster_bus;
mod cluster_history;
mod cluster_keys;
mod cluster_limits;
mod cluster_nonces;
mod errors;
mod history;
mod history_errors;
mod http_guard;
mod lifecycle;
mod network;
mod onchain;
mod openapi;
mod perp;
mod rest;
mod resume;
mod sockets;
mod tls;
mod ui;
mod venue_config;
mod venues;
mod ws_protocol;
