//! Requests whose meaning depends on which of two copies a reader picks are refused before
//! any handler sees them (issue 14, "lenient HTTP").
//!
//! A proxy in front and the gateway behind could disagree on a request with two `Host`
//! headers (signatures verify over one of them), an absolute-form target naming another
//! authority than `Host`, or two `Authorization`/`Signature`/`Signature-Input`/
//! `Content-Digest` headers. Each is `400 bad_request` with the usual JSON error body, and so
//! is an HTTP/1.1 request without `Host` (RFC 9112 §3.2).

use crate::api_error::ApiError;
use axum::extract::Request;
use axum::http::{HeaderName, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use protocol::ErrorCode;

/// Headers that must appear at most once.
const SINGLE: [&str; 5] = [
    "host",
    "authorization",
    "signature",
    "signature-input",
    "content-digest",
];

/// The check, as a middleware in front of the whole router; it also adds the security
/// headers every response carries (see [`SECURITY_HEADERS`]).
pub async fn refuse_ambiguous(request: Request, next: Next) -> Response {
    let mut response = match check(&request) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    };
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        let name = HeaderName::from_static(name);
        if !headers.contains_key(&name) {
            headers.insert(name, header::HeaderValue::from_static(value));
        }
    }
    response
}

/// On every response unless the route set its own: no MIME sniffing of JSON into script, no
/// framing of the dashboard by another site, no referrer carrying a `?token=` elsewhere.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-resource-policy", "same-site"),
];

fn bad(message: String) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, message)
}

fn check(request: &Request) -> Result<(), ApiError> {
    if request
        .extensions()
        .get::<crate::listener::ReservedSocket>()
        .is_some()
        && !crate::listener::reserve_allows(request.uri().path())
    {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "connection limit reached; retry later (health and admin routes still answer)",
        ));
    }
    let headers = request.headers();
    for name in SINGLE {
        if headers
            .get_all(HeaderName::from_static(name))
            .iter()
            .count()
            > 1
        {
            return Err(bad(format!("the {name} header is given more than once")));
        }
    }
    let host = headers.get(header::HOST);
    if host.is_none() && request.version() == Version::HTTP_11 {
        return Err(bad("an HTTP/1.1 request needs a Host header".into()));
    }
    if let (Some(authority), Some(host)) = (request.uri().authority(), host) {
        let same = host
            .to_str()
            .is_ok_and(|h| h.eq_ignore_ascii_case(authority.as_str()));
        if !same {
            return Err(bad(
                "the request target names another authority than the Host header".into(),
            ));
        }
    }
    Ok(())
}
