//! The page's files, embedded at build time, and the headers every dashboard response gets.

use crate::api_error::ApiError;
use crate::route::Route;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use protocol::ErrorCode;

/// One embedded file.
#[derive(Debug)]
struct Asset {
    /// Where it is served.
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! assets {
    ($($file:literal => $type:expr),* $(,)?) => {
        &[$(Asset {
            path: concat!("/ui/", $file),
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/ui/", $file)),
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the page (`crates/server/ui/`). `index.html` is served at `/` and `/ui/`.
const ASSETS: &[Asset] = assets![
    "index.html" => "text/html; charset=utf-8",
    "app.css" => "text/css; charset=utf-8",
    "js/app.js" => JS,
    "js/api.js" => JS,
    "js/audit.js" => JS,
    "js/book.js" => JS,
    "js/conn.js" => JS,
    "js/crc32.js" => JS,
    "js/decimal.js" => JS,
    "js/draw.js" => JS,
    "js/market.js" => JS,
    "js/operator.js" => JS,
    "js/sign.js" => JS,
    "vendor/lightweight-charts.standalone.production.mjs" => JS,
    "vendor/LICENSE-lightweight-charts.txt" => "text/plain; charset=utf-8",
];

/// The Content-Security-Policy of every dashboard response: scripts, styles and connections
/// from this origin only (CSP 3 `'self'` also covers `ws:`/`wss:` to it), nothing inline,
/// no framing, no plugins, no `<base>` tricks.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'self'; object-src 'none'";

/// Adds the dashboard's security headers (and `no-store` unless `cacheable`).
pub fn secure(headers: &mut HeaderMap, cacheable: bool) {
    let pairs = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
        (
            header::CACHE_CONTROL,
            if cacheable { "no-cache" } else { "no-store" },
        ),
    ];
    for (name, value) in pairs {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

fn disabled() -> Response {
    let mut response = ApiError::new(
        ErrorCode::NotFound,
        "the dashboard is disabled on this gateway ([ui] enabled = false)",
    )
    .into_response();
    secure(response.headers_mut(), false);
    response
}

fn serve(state: &AppState, asset: &'static Asset) -> Response {
    if !state.ui().config.enabled {
        return disabled();
    }
    let mut response = (StatusCode::OK, asset.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // The page itself is never cached (it is small and carries the CSP); the rest revalidates.
    secure(headers, !asset.path.ends_with(".html"));
    response
}

/// `/` and `/ui/` (the page), and one route per file.
pub fn routes() -> Vec<Route> {
    let mut routes = Vec::new();
    for asset in ASSETS {
        let paths: &[&'static str] = if asset.path == INDEX {
            &["/", "/ui/"]
        } else {
            std::slice::from_ref(&asset.path)
        };
        for path in paths {
            routes.push(Route {
                path,
                scope: None,
                handler: get(
                    move |State(state): State<AppState>| async move { serve(&state, asset) },
                ),
            });
        }
    }
    routes
}

/// Where `index.html` would be; it is served at `/` and `/ui/` instead.
const INDEX: &str = "/ui/index.html";

/// Adds a `GET` operation per embedded file to the OpenAPI document.
pub fn describe(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
    use utoipa::openapi::{ContentBuilder, ResponseBuilder};
    for route in routes() {
        let asset = ASSETS
            .iter()
            .find(|a| a.path == route.path)
            .or_else(|| ASSETS.iter().find(|a| a.path == INDEX));
        let Some(asset) = asset else { continue };
        let summary = if asset.path == INDEX {
            "The dashboard page (docs/dashboard.md)".to_string()
        } else {
            format!("A file of the dashboard page: {}", asset.path)
        };
        let content_type = asset.content_type.split(';').next().unwrap_or_default();
        let response = ResponseBuilder::new()
            .description(summary.clone())
            .content(content_type, ContentBuilder::new().build())
            .build();
        let op = OperationBuilder::new()
            .tag("dashboard")
            .summary(Some(summary))
            .response("200", response)
            .build();
        doc.paths
            .paths
            .insert(route.path.into(), PathItem::new(HttpMethod::Get, op));
    }
}
