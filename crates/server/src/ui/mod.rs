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
//! - [`config`] holds the `[ui]` settings.
//!
//! The operator view never goes through the cookie: the page signs each admin request itself
//! (RFC 9421, WebCrypto, with a key the operator imports for the visit), so the admin API keeps
//! its rules.

mod api;
mod assets;
pub mod config;
mod overview;
pub mod session;

use crate::gateway::{Route, ServerError};
use auth::KeyRing;
use auth::secret::SecretKey32;
use session::SessionKeys;

/// What the dashboard's handlers share: its settings and the session key.
#[derive(Debug)]
pub struct UiState {
    pub config: config::UiConfig,
    pub sessions: SessionKeys,
}

impl UiState {
    /// The session key derives from the current master key when there is one (shared by
    /// every node, stable across restarts), else it is random for this process.
    pub fn new(config: &config::UiConfig, ring: &KeyRing) -> Result<Self, ServerError> {
        let key = match ring.current() {
            Some(master) => master.derive(session::LABEL),
            None => SecretKey32::random()
                .map_err(|_| ServerError::Auth("no randomness for the session key".into()))?,
        };
        Ok(Self {
            config: config.clone(),
            sessions: SessionKeys::new(key),
        })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use auth::MasterKey;

    fn ring(hex: &str) -> KeyRing {
        KeyRing::new(Some(MasterKey::from_hex(hex, "test").unwrap()), vec![])
    }

    /// Cluster mode and restarts: any gateway with the same master key accepts the cookie;
    /// another master key (or none: a random session key) does not.
    #[test]
    fn gateways_sharing_the_master_key_share_sessions() {
        let config = config::UiConfig::default();
        let a = UiState::new(&config, &ring(&"ab".repeat(32))).unwrap();
        let b = UiState::new(&config, &ring(&"ab".repeat(32))).unwrap();
        let other = UiState::new(&config, &ring(&"cd".repeat(32))).unwrap();
        let none = UiState::new(&config, &KeyRing::default()).unwrap();
        let (cookie, session) = a.sessions.mint("key_abc", 2_000).unwrap();
        assert_eq!(b.sessions.verify(&cookie, 1_000).unwrap(), session);
        assert!(
            b.sessions
                .csrf_matches(&session, &a.sessions.csrf(&session))
        );
        assert!(other.sessions.verify(&cookie, 1_000).is_err());
        assert!(none.sessions.verify(&cookie, 1_000).is_err());
        let (random, _) = none.sessions.mint("key_abc", 2_000).unwrap();
        let restarted = UiState::new(&config, &KeyRing::default()).unwrap();
        assert!(restarted.sessions.verify(&random, 1_000).is_err());
    }
}
