//! The middleware guarding REST routes: authenticate, check the route's scope and the key's
//! rate limit, count usage, and mark responses to a rotating-out key with `Sunset` (RFC 8594)
//! and `Deprecation` (RFC 9745) headers.

use super::Principal;
use crate::api_error::ApiError;
use crate::state::AppState;
use auth::{Rejection, Scope};
use axum::body::HttpBody;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use protocol::ErrorCode;
use std::borrow::Cow;
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

/// The combined value of every line of a header (`, `-joined), if it is present and ASCII.
/// Borrowed in the usual case of one line.
fn combined<'a>(headers: &'a HeaderMap, name: &str) -> Option<Cow<'a, str>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?.to_str().ok()?;
    let mut out = Cow::Borrowed(first);
    for value in values {
        let s = out.to_mut();
        s.push_str(", ");
        s.push_str(value.to_str().ok()?);
    }
    Some(out)
}

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
    )?;
    Ok((Request::from_parts(parts, body), principal))
}

/// Whether a request carries an RFC 9421 signature (either header).
pub fn is_signed(headers: &HeaderMap) -> bool {
    headers.contains_key("signature") || headers.contains_key("signature-input")
}

/// The authority a request was sent to: `Host`, else the target's authority.
pub fn authority<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> &'a str {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or_default()
}

/// Verifies the signature of a request received as `method uri headers` with `body` (empty:
/// none): REST requests and WebSocket upgrades.
pub fn verify_signed(
    auth: &super::AuthState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    scope: Option<Scope>,
    addr: Option<std::net::IpAddr>,
) -> Result<Principal, Rejection> {
    let (Some(input), Some(signature)) = (
        combined(headers, "signature-input"),
        combined(headers, "signature"),
    ) else {
        return Err(Rejection::new(
            ErrorCode::SignatureInvalid,
            "a signed request needs both Signature-Input and Signature (ASCII)",
        ));
    };
    let fields: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
        .collect();
    let parts = auth::httpsig::RequestParts {
        method: method.as_str(),
        // What the client used, not what reached us (a TLS proxy forwards plain HTTP).
        scheme: auth.signature_scheme,
        authority: authority(uri, headers),
        path: uri.path(),
        query: uri.query(),
        headers: &fields,
    };
    let signed = auth::SignedRequest {
        signature_input: &input,
        signature: &signature,
        parts,
        body,
    };
    auth.authenticate_signed(&signed, scope, addr)
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
