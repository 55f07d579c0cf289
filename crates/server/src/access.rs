//! Who may call which route: the seam where API-key authentication plugs in.
//!
//! Every route in `gateway::routes` declares the [`Scope`] it needs. Authentication (API keys,
//! signed requests) does not exist yet: [`require`] is the single place that will check the
//! caller's key for that scope and answer `401`/`403` with stable codes. Until then every
//! request is let through, and the scope is only recorded on the request.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// What a route gives access to (least privilege: a key gets only the scopes it needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Health, readiness, metrics and the API description: no key needed.
    Public,
    /// Live market data: instruments, tickers, books, the WebSocket.
    MarketRead,
    /// Stored trades and candles.
    HistoryRead,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::MarketRead => "market:read",
            Self::HistoryRead => "history:read",
        }
    }
}

/// The scope the matched route requires, stored on the request for handlers and logs.
#[derive(Debug, Clone, Copy)]
pub struct RequiredScope(pub Scope);

/// SEAM(auth): checks the caller may use a route that needs `scope`. Today it records the
/// scope and lets the request through; the auth work replaces the body with the key check.
pub(crate) async fn require(scope: Scope, mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(RequiredScope(scope));
    next.run(request).await
}
