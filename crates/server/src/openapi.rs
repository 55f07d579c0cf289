//! `GET /openapi.json`: the OpenAPI 3.1 description of every route, generated at compile time
//! from the handlers' `#[utoipa::path]` attributes and the response types themselves, so it
//! cannot drift from the code. A test checks that every route of `gateway::routes` is here.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tickgate",
        description = "Self-hosted real-time crypto market-data gateway: live data over one WebSocket (`/v1/ws`, see docs/protocol.md), REST snapshots and history. Errors are `{\"code\", \"message\"}` with stable codes. Prices and sizes are decimal strings exactly as the venue sent them; times are µs since the epoch.",
    ),
    paths(
        crate::ws::upgrade,
        crate::rest::instruments,
        crate::rest::ticker,
        crate::auth::ws_token::issue,
        crate::rest::book,
        crate::rest_history::trades,
        crate::rest_history::candles,
        crate::rest::healthz,
        crate::rest::readyz,
        crate::rest::metrics,
        serve,
        crate::auth::admin::create,
        crate::auth::admin::list,
        crate::auth::admin::show,
        crate::auth::admin::update,
        crate::auth::admin::rotate,
        crate::auth::admin::cancel_rotation,
        crate::auth::admin::revoke,
        crate::auth::admin::usage,
        crate::auth::admin::rewrap,
        crate::auth::admin::audit,
    ),
    tags(
        (name = "market", description = "Live market data (scope market:read when auth is on)"),
        (name = "history", description = "Stored trades and candles (scope history:read when auth is on)"),
        (name = "operations", description = "Health, readiness, metrics and this description"),
        (name = "admin", description = "Keys and audit (scope keys:admin; docs/security.md)"),
    ),
)]
struct ApiDoc;

/// The description as JSON text (built once).
pub fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|error| format!("{{\"error\":\"{error}\"}}"))
    })
}

/// This document: the OpenAPI 3.1 description of every route.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")),
)]
pub(crate) async fn serve() -> Response {
    let mut response = document_json().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
