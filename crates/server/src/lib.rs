//! The gateway server: HTTP + WebSocket API over the hub, plus the wiring that starts venues.
//!
//! # Layout
//!
//! - [`config`]: the typed configuration tree (defaults, file, environment, validation).
//! - [`consolidated`]: `[consolidated]` settings and the groups behind `book:all:…`.
//! - [`gateway`]: [`Gateway`]: starts venues and the listener; graceful shutdown.
//! - `ws`: the WebSocket API (`/v1/ws`): sessions, fan-out batching, slow-consumer policy.
//! - [`rest`]: the REST API (`/v1/instruments`, `/v1/ticker`, `/v1/book`, `/v1/candles`,
//!   `/healthz`, `/readyz`, `/metrics`).
//! - [`metrics`]: counters and the latency histogram, rendered for Prometheus.
//! - [`state`]: [`AppState`], what handlers share.
//!
//! Seams for later work: authentication (`auth` crate) wraps the router and checks scopes per
//! route and per channel subscription; persistence (`store` crate) subscribes to the hub like
//! any client.

pub mod config;
pub mod consolidated;
pub mod gateway;
pub mod metrics;
pub mod rest;
pub mod state;
mod ws;

pub use config::{Config, ConfigError};
/// Installs rustls' ring provider as the process default (idempotent).
pub use connectors::conn::ws::ensure_crypto_provider as install_crypto_provider;
pub use gateway::{Gateway, ServerError};
pub use state::AppState;
