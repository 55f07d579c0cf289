//! The gateway server: HTTP + WebSocket API over the hub, plus the wiring that starts venues.
//!
//! # Layout
//!
//! - [`config`]: the typed configuration tree (defaults, file, environment, validation);
//!   [`config_error`] is [`ConfigError`], [`venue_config`] is `[[venues]]` and
//!   [`consolidated_config`] is `[consolidated]` (the groups behind `book:all:…`).
//! - [`cluster_node`]: the node's cluster role: the bus forwarder (ingest) or feeder (edge);
//! - [`gateway`]: [`Gateway`]: starts venues and the listener; graceful shutdown;
//!   [`server_error`] is [`ServerError`], why it could not start.
//! - `ws`: the WebSocket API (`/v1/ws`): sessions, fan-out batching, slow-consumer policy.
//! - [`rest`]: the REST API (`/v1/instruments`, `/v1/ticker`, `/v1/book`, `/healthz`,
//!   `/readyz`, `/metrics`); [`api_error`] is [`api_error::ApiError`], every HTTP error
//!   response, and `query_params` checks query strings once.
//! - [`rest_perp`]: `/v1/funding`, `/v1/mark` and `/v1/oi`: the latest value of a perpetual's
//!   channel.
//! - [`rest_history`]: `/v1/trades` and `/v1/candles` from the history store, paged;
//!   [`history_params`] parses their limits, ranges and cursors, [`time_param`] their times;
//!   [`history`] opens the store and its writer and renders its metrics.
//! - [`openapi`]: `/openapi.json`, generated from the handlers and their types.
//! - [`auth`]: API-key authentication: the REST scope guard (`auth::layer`), the admin API
//!   (`auth::admin`) and the state shared with WebSocket sessions; [`auth_config`] is `[auth]`.
//! - [`alerts`]: `/v1/alerts` and `/v1/webhooks` (scope `alerts:write`), and starting the
//!   alert evaluators and the webhook delivery worker (the engine is the `alerts` crate).
//! - [`http_guard`]: refuses requests two readers could read differently (two `Host` or
//!   `Authorization` headers, an absolute-form target for another authority, no `Host`).
//! - [`forwarded`]: the client's address behind `server.trusted_proxies` (`Forwarded`,
//!   `X-Forwarded-For`); [`origin`]: `server.allowed_origins`, the WebSocket `Origin` check and
//!   CORS.
//! - [`per_ip`]: `[server.anonymous]`, limits per client address for clients without a key.
//! - [`listener`]: the accept loop: every socket counted (globally, per address), a reserve
//!   for health and admin, the header-read timeout, the open-file limit.
//! - [`tls`]: TLS termination (`[server.tls]`), reloaded on SIGHUP or when the files change.
//! - [`metrics`]: counters and the latency histogram, rendered for Prometheus.
//! - [`state`]: [`AppState`], what handlers share.
//! - [`stores`]: which key store and audit log a node opens (SQLite, or PostgreSQL shared by a
//!   cluster) and the `LISTEN` thread that wakes key maintenance when another node changes a key.
//! - [`ui`]: the built-in dashboard at `/ui/` (embedded page, session cookie, its routes).
//!
//! Every route is listed once in [`gateway::routes`] with the scope it needs (a
//! [`route::Route`]); the router and the OpenAPI coverage test are both built from that list.
//! Signed requests (RFC 9421) are read in `auth::signed`, for REST and WebSocket alike.

pub mod alerts;
pub mod api_error;
pub mod auth;
pub mod auth_config;
pub mod cluster_config;
pub mod cluster_node;
pub mod config;
pub mod config_error;
pub mod consolidated_config;
pub mod forwarded;
pub mod gateway;
pub mod history;
pub mod history_params;
pub mod http_guard;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod origin;
pub mod per_ip;
mod query_params;
pub mod rest;
pub mod rest_history;
pub mod rest_perp;
pub mod route;
pub mod server_error;
pub mod state;
pub mod stores;
pub mod time_param;
pub mod tls;
pub mod ui;
pub mod venue_config;
mod ws;

pub use config::{Config, ConfigError};
/// Installs rustls' ring provider as the process default (idempotent).
pub use connectors::conn::ws::ensure_crypto_provider as install_crypto_provider;
pub use gateway::Gateway;
pub use server_error::ServerError;
pub use state::AppState;
