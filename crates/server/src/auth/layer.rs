//! The middleware guarding REST routes: authenticate, check the route's scope and the key's
//! rate limit, count usage, and mark responses to a rotating-out key with `Sunset` (RFC 8594)
//! and `Deprecation` (RFC 9745) headers.

use super::Principal;
use super::signed::{is_signed, verify_signed};
use crate::api_error::ApiError;
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
    state.metrics().count_rejection(&rejection);
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
    request: Request,
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
    let result = if is_signed(request.headers()) {
        signed_request(request, auth, scope, addr).await
    } else {
        auth.authenticate(request.headers(), Some(scope), addr)
            .await
            .map(|principal| (request, principal))
    };
    let (mut request, principal) = match result {
        Ok(done) => done,
        Err(rejection) => {
            if scope == Scope::KeysAdmin {
                auth.audit_admin_failure(rejection.code, addr);
            }
            return rejection_response(&state, rejection);
        }
    };
    // Without a key, the client's address is limited instead (`[server.anonymous]`).
    if let (Principal::Anonymous, Some(ip)) = (&principal, addr)
        && let Err(wait) = state.anonymous().check_request(ip)
    {
        let limit = state.anonymous().limits().requests_per_sec;
        return crate::per_ip::refused_response(
            state.metrics(),
            format!("more than {limit} requests per second from this address without a key"),
            Some(wait),
        );
    }
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

/// Largest body a signed request may carry (it is buffered to check `Content-Digest`).
const MAX_SIGNED_BODY: usize = 1 << 20;

/// Verifies a request carrying `Signature`/`Signature-Input`; returns it (body restored)
/// with its principal.
async fn signed_request(
    request: Request,
    auth: &super::AuthState,
    scope: Scope,
    addr: Option<std::net::IpAddr>,
) -> Result<(Request, Principal), Rejection> {
    let (parts, body) = request.into_parts();
    // A body is buffered to check its Content-Digest; a bodiless request (a GET) keeps its own.
    let (body, bytes) = if body.size_hint().exact() == Some(0) {
        (body, axum::body::Bytes::new())
    } else {
        let bytes = axum::body::to_bytes(body, MAX_SIGNED_BODY)
            .await
            .map_err(|_| {
                Rejection::new(
                    ErrorCode::MessageTooLarge,
                    format!("a signed request body may be at most {MAX_SIGNED_BODY} bytes"),
                )
            })?;
        (axum::body::Body::from(bytes.clone()), bytes)
    };
    let principal = verify_signed(
        auth,
        &parts.method,
        &parts.uri,
        &parts.headers,
        &bytes,
        Some(scope),
        addr,
    )
    .await?;
    Ok((Request::from_parts(parts, body), principal))
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
