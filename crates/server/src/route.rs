//! [`Route`]: one entry of the route table (`gateway::routes`), which the router and the
//! OpenAPI coverage test are both built from.

use crate::state::AppState;
use auth::Scope;
use axum::routing::MethodRouter;

/// One route: its path, the scope a caller needs, and its handlers.
#[derive(Debug)]
pub struct Route {
    pub path: &'static str,
    /// The scope a caller needs; `None` for public routes (the WebSocket checks scopes per
    /// channel itself).
    pub scope: Option<Scope>,
    pub handler: MethodRouter<AppState>,
}
