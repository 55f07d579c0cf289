//! `GET /openapi.json`: the OpenAPI 3.1 description of every route, generated at compile time
//! from the handlers' `#[utoipa::path]` attributes and the response types themselves, so it
//! cannot drift from the code. A test checks that every route of `gateway::routes` is here.

use auth::Scope;
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
        crate::rest_perp::funding,
        crate::rest_perp::mark,
        crate::rest_perp::oi,
        crate::auth::ws_token_route::issue,
        crate::rest::book,
        crate::rest_history::trades,
        crate::rest_history::candles,
        crate::rest_history::funding_history,
        crate::rest_history::oi_history,
        crate::rest_history::liquidations,
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
        crate::auth::admin::suspend,
        crate::auth::admin::resume,
        crate::auth::admin::leaked,
        crate::auth::admin::totp_enroll,
        crate::auth::admin::usage,
        crate::auth::admin::rewrap,
        crate::auth::admin::audit,
        crate::alerts::rules::create,
        crate::alerts::rules::list,
        crate::alerts::rules::show,
        crate::alerts::rules::update,
        crate::alerts::rules::delete,
        crate::alerts::rules::firings,
        crate::alerts::webhooks::create,
        crate::alerts::webhooks::list,
        crate::alerts::webhooks::show,
        crate::alerts::webhooks::update,
        crate::alerts::webhooks::delete,
        crate::alerts::webhooks::rotate_secret,
        crate::alerts::webhooks::deliveries,
        crate::alerts::webhooks::delivery,
        crate::alerts::webhooks::redeliver_one,
        crate::alerts::webhooks::redeliver_dead,
    ),
    tags(
        (name = "market", description = "Live market data (scope market:read when auth is on)"),
        (name = "history", description = "Stored trades and candles (scope history:read when auth is on)"),
        (name = "operations", description = "Health, readiness, metrics and this description"),
        (name = "admin", description = "Keys and audit (scope keys:admin; docs/security.md)"),
        (name = "dashboard", description = "The built-in dashboard (docs/dashboard.md): its page, and routes authenticated by its session cookie"),
        (name = "alerts", description = "Alert rules, webhook endpoints and deliveries (scope alerts:write; docs/alerts.md)"),
    ),
)]
struct ApiDoc;

/// The description as JSON text (built once).
pub fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        doc.merge(crate::ui::openapi());
        describe_security(&mut doc);
        doc.to_pretty_json()
            .unwrap_or_else(|error| format!("{{\"error\":\"{error}\"}}"))
    })
}

/// Security schemes, and each operation's requirements from the scope its route needs in
/// `gateway::routes` (the same table the guard is built from). Requirements follow the default
/// configuration; `[auth]` can change them (docs/security.md).
fn describe_security(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{
        ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
    };
    let components = doc.components.get_or_insert_with(Default::default);
    let mut bearer = Http::new(HttpAuthScheme::Bearer);
    bearer.description = Some(
        "An API key (`tg_live_…`/`tg_test_…`) as `Authorization: Bearer`. Refused on scopes that \
         require signatures (default: keys:admin, alerts:write)."
            .into(),
    );
    components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
    let signature = "RFC 9421 HTTP Message Signature by an hmac (hmac-sha256) or ed25519 key: \
                     `Signature` and `Signature-Input` together, covering @method, @authority, \
                     @path, @query (with a query) and content-digest (with a body), with \
                     created, keyid and a nonce used once. docs/security.md has the exact \
                     scheme and a worked example.";
    for (name, header) in [
        ("signature", "Signature"),
        ("signatureInput", "Signature-Input"),
    ] {
        components.add_security_scheme(
            name,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                header, signature,
            ))),
        );
    }
    let defaults = crate::auth_config::AuthConfig::default();
    for route in crate::gateway::routes() {
        let Some(scope) = route.scope else {
            continue;
        };
        let Some(item) = doc.paths.paths.get_mut(route.path) else {
            continue;
        };
        let name = scope.as_str();
        let mut requirements = Vec::new();
        // Anonymous access where a test deployment (`[auth] required = false`) allows it.
        if matches!(scope, Scope::MarketRead | Scope::HistoryRead)
            || (scope == Scope::MetricsRead && defaults.is_metrics_public())
        {
            requirements.push(SecurityRequirement::default());
        }
        if !defaults.signature_required_scopes.iter().any(|s| s == name) {
            requirements.push(SecurityRequirement::new("bearer", [name]));
        }
        requirements
            .push(SecurityRequirement::new("signature", [name]).add("signatureInput", [name]));
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.patch,
            &mut item.put,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            op.security = Some(requirements.clone());
        }
    }
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
