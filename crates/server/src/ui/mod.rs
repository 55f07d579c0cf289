//! The built-in dashboard: a live page for markets and for operators, served at `/ui/` from
//! files embedded in the binary (no build step, no CDN; docs/dashboard.md).
//!
//! # Layout
//!
//! - `assets`: the page's files (`crates/server/ui/`), embedded with `include_bytes!`, and the
//!   security headers every dashboard response carries (CSP without `'unsafe-inline'`,
//!   `frame-ancestors 'none'`, `X-Frame-Options`, `nosniff`, `Referrer-Policy`).
//! - [`session`]: the stateless signed session cookie and its CSRF token.
//! - `api`: `/ui/api/*`: log in (once, with a key), the session, log out, single-use
//!   WebSocket tokens for the page, and the few REST reads the page makes, authenticated by the
//!   cookie (or anonymous where the deployment allows it).
//! - `overview`: `GET /admin/v1/overview`, live sessions per key and authentication rejections
//!   for the operator view (an ordinary admin route: signed requests only by default).
//! - [`config`] holds the `[ui]` settings; [`state`] is [`UiState`], what the handlers share.
//!
//! The operator view never goes through the cookie: the page signs each admin request itself
//! (RFC 9421, WebCrypto, with a key the operator imports for the visit), so the admin API keeps
//! its rules.

mod api;
mod assets;
pub mod config;
mod overview;
pub mod session;
pub mod state;

pub use state::UiState;

use crate::route::Route;

/// The dashboard's routes, for `gateway::routes()`.
pub fn routes() -> Vec<Route> {
    let mut routes = assets::routes();
    routes.extend(api::routes());
    routes.push(overview::route());
    routes
}

/// The OpenAPI description of these routes, merged into `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    let mut doc = api::ApiDoc::openapi();
    doc.merge(overview::ApiDoc::openapi());
    assets::describe(&mut doc);
    doc
}
