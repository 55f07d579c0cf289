//! Signed requests (RFC 9421) at the API edge: the one place REST requests (`layer`) and
//! WebSocket upgrades (`ws::auth`) read `Signature`/`Signature-Input`. The headers are combined
//! and handed to [`AuthState::authenticate_signed`](super::AuthState::authenticate_signed)
//! once; the signature is parsed once, by the auth crate (`auth::signed`), and a refused
//! replay is audited from the rejection it returned.

use super::Principal;
use auth::{Rejection, Scope};
use axum::http::{HeaderMap, Method, Uri, header};
use protocol::ErrorCode;
use std::borrow::Cow;

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
pub async fn verify_signed(
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
    // Inline for the usual number of header lines (no allocation per signed request).
    let fields: smallvec::SmallVec<[(&str, &str); 24]> = headers
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
    auth.authenticate_signed(&signed, scope, addr).await
}

/// The combined value of every line of a header (`, `-joined), if it is present and ASCII.
/// Borrowed in the usual case of one line.
pub(crate) fn combined<'a>(headers: &'a HeaderMap, name: &str) -> Option<Cow<'a, str>> {
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
