//! The middleware guarding REST routes: authenticate, check the route's scope and the key's
//! rate limit, count usage, and mark responses to a rotating-out key with `Sunset` (RFC 8594)
//! and `Deprecation` (RFC 9745) headers.

use super::Principal;
use crate::rest::ApiError;
use crate::state::AppState;
use auth::{Rejection, Scope};
use axum::body::HttpBody;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use protocol::ErrorCode;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

/// The response for a rejected authentication.
pub fn rejection_response(state: &AppState, rejection: Rejection) -> Response {
    state.metrics().count_error(rejection.code);
    let mut response = ApiError::new(rejection.code, rejection.message).into_response();
    let headers = response.headers_mut();
    if rejection.code.http_status() == 401 {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"tickgate\""),
        );
    }
    if let Some(wait) = rejection.retry_after {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        if let Ok(value) = HeaderValue::from_str(&secs.max(1).to_string()) {
            headers.insert(header::RETRY_AFTER, value);
        }
    }
    response
}

/// Guards a route with `scope`.
pub async fn require(
    State((state, scope)): State<(AppState, Scope)>,
    mut request: Request,
    next: Next,
) -> Response {
    let addr = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let auth = state.auth();
    if scope == Scope::MetricsRead && auth.public_metrics {
        return next.run(request).await;
    }
    let principal = match auth.authenticate(request.headers(), Some(scope), addr) {
        Ok(principal) => principal,
        Err(rejection) => {
            if scope == Scope::KeysAdmin {
                auth.audit_admin_failure(rejection.code, addr);
            }
            return rejection_response(&state, rejection);
        }
    };
    request.extensions_mut().insert(principal.clone());
    let mut response = next.run(request).await;
    if let Principal::Key(key) = principal {
        if let Some(bytes) = response.body().size_hint().exact() {
            key.entry.usage.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        if let Some(sunset) = key.view.sunset() {
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&super::http_date(sunset)) {
                headers.insert("sunset", value);
            }
            let since = key.view.rotated_at.unwrap_or(sunset).div_euclid(1_000_000);
            if let Ok(value) = HeaderValue::from_str(&format!("@{since}")) {
                headers.insert("deprecation", value);
            }
        }
    }
    response
}

/// The admin key behind a request that passed [`require`] with `keys:admin`.
pub fn actor(principal: Option<&Principal>) -> Result<String, ApiError> {
    match principal {
        Some(Principal::Key(key)) => Ok(format!("admin:{}", key.view.id)),
        _ => Err(ApiError::new(
            ErrorCode::MissingCredentials,
            "the admin API needs a key with the keys:admin scope",
        )),
    }
}
