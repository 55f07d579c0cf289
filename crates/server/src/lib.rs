//! The gateway server: HTTP + WebSocket API over the hub, plus the wiring that starts venues.
//!
//! # Layout
//!
//! - [`config`]: the typed configuration tree (defaults, file, environment, validation).
//! - [`gateway`]: [`Gateway`]: starts venues and the listener; graceful shutdown.
//! - `ws`: the WebSocket API (`/v1/ws`): sessions, fan-out batching, slow-consumer policy.
//! - [`rest`]: the REST API (`/v1/instruments`, `/v1/ticker`, `/v1/book`, `/healthz`,
//!   `/readyz`, `/metrics`).
//! - [`rest_history`]: `/v1/trades` and `/v1/candles` from the history store, paged;
//!   [`history_params`] parses their limits, ranges and cursors, [`time_param`] their times; [`history`] opens the store
//!   and its writer and renders its metrics.
//! - [`openapi`]: `/openapi.json`, generated from the handlers and their types.
//! - [`access`]: the scope each route needs; the seam where API-key auth plugs in.
//! - [`metrics`]: counters and the latency histogram, rendered for Prometheus.
//! - [`state`]: [`AppState`], what handlers share.
//!
//! Seams for later work: authentication (`auth` crate) replaces `access::require` (scopes per
//! route) and checks channel subscriptions.

pub mod access;
pub mod config;
pub mod gateway;
pub mod history;
pub mod history_params;
pub mod metrics;
pub mod openapi;
pub mod rest;
pub mod rest_history;
pub mod state;
pub mod time_param;
mod ws;

pub use config::{Config, ConfigError};
pub use gateway::{Gateway, ServerError};
pub use state::AppState;
