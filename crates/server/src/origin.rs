//! Browser origins (`[server] allowed_origins`): which web pages may open a WebSocket session
//! and read the REST API cross-site.
//!
//! - A WebSocket upgrade with an `Origin` header that is neither the gateway's own (the same
//!   authority as `Host`) nor listed gets `403 origin_not_allowed` before the upgrade
//!   (cross-site WebSocket hijacking: browsers send any page's WebSocket with its `Origin`,
//!   and a page could otherwise ride a logged-in dashboard's or a local gateway's access).
//! - REST: a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`) from a listed
//!   origin is answered `204` with the `Access-Control-*` headers a signed or bearer request
//!   needs; a listed origin's actual requests get `Access-Control-Allow-Origin`. Others get no
//!   CORS header, so browsers keep refusing cross-site reads.
//! - Requests without `Origin` (SDKs, bots, curl) are not affected.
//!
//! `"*"` allows every origin and must be given explicitly. No `Allow-Credentials` is ever
//! sent: the dashboard's cookie is same-origin only.

use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Request headers a cross-site client may send (bearer and RFC 9421 signed requests).
pub const ALLOW_HEADERS: &str =
    "authorization, content-type, content-digest, signature, signature-input";
/// Methods of the REST and admin API.
pub const ALLOW_METHODS: &str = "GET, POST, PATCH, DELETE";
/// Response headers a cross-site page may read.
pub const EXPOSE_HEADERS: &str = "retry-after, sunset, deprecation, www-authenticate";
/// Seconds a browser may cache a preflight answer.
pub const MAX_AGE_SECS: &str = "600";

/// The configured origins, normalized to `scheme://host:port`.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins {
    any: bool,
    list: Vec<String>,
}

/// `scheme://host[:port]` → (`scheme`, `host:port` lowercased, default port made explicit).
fn normalize(origin: &str) -> Option<(&'static str, String)> {
    let (scheme, rest) = origin.split_once("://")?;
    let (scheme, default_port) = match scheme.to_ascii_lowercase().as_str() {
        "http" => ("http", 80),
        "https" => ("https", 443),
        _ => return None,
    };
    Some((scheme, authority_with_port(rest, default_port)?))
}

/// `host[:port]` lowercased with its port explicit; `None` if it has a path, user info or a
/// bad port.
fn authority_with_port(authority: &str, default_port: u16) -> Option<String> {
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    let lower = authority.to_ascii_lowercase();
    // `[v6]:port`, `[v6]`, `host:port`, `host`.
    let (host, port) = match lower.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host.to_string(), port.parse::<u16>().ok()?),
        _ => (lower.clone(), default_port),
    };
    if host.is_empty() || (host.contains(':') && !host.starts_with('[')) {
        return None;
    }
    Some(format!("{host}:{port}"))
}

impl AllowedOrigins {
    /// Parses `server.allowed_origins`: `"*"`, or origins `http(s)://host[:port]` (no path).
    pub fn parse(list: &[String]) -> Result<Self, String> {
        let mut origins = Self::default();
        for entry in list {
            if entry == "*" {
                origins.any = true;
                continue;
            }
            let Some((scheme, authority)) = normalize(entry) else {
                return Err(format!(
                    "{entry:?} is not an origin: expected \"*\" or scheme://host[:port] with \
                     scheme http or https and no path, e.g. \"https://app.example.com\""
                ));
            };
            origins.list.push(format!("{scheme}://{authority}"));
        }
        Ok(origins)
    }

    /// Whether `origin` is listed (or `"*"` was).
    pub fn lists(&self, origin: &str) -> bool {
        if self.any {
            return true;
        }
        normalize(origin).is_some_and(|(scheme, authority)| {
            let origin = format!("{scheme}://{authority}");
            self.list.contains(&origin)
        })
    }

    /// Whether a request carrying `origin` (a browser page's) may proceed: listed, or the
    /// same authority as the request's `Host` (the dashboard, any page the gateway serves).
    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        if self.lists(origin) {
            return true;
        }
        let (Some((scheme, authority)), Some(host)) = (normalize(origin), host) else {
            return false;
        };
        let default_port = if scheme == "https" { 443 } else { 80 };
        authority_with_port(host, default_port).is_some_and(|host| host == authority)
    }
}

/// The `Origin` of a request, if it has one (a browser's).
pub fn request_origin(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or(""))
}

/// CORS for the REST API, in front of every route (preflights never carry credentials, so
/// they are answered before any auth guard).
pub async fn cors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(origin) = request_origin(request.headers()) else {
        return next.run(request).await;
    };
    let origins = state.origins();
    if !origins.lists(origin) {
        return next.run(request).await;
    }
    let Ok(origin) = HeaderValue::from_str(origin) else {
        return next.run(request).await;
    };
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(MAX_AGE_SECS),
        );
        response
    } else {
        let mut response = next.run(request).await;
        response.headers_mut().insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str]) -> AllowedOrigins {
        AllowedOrigins::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn listed_same_and_other_origins() {
        let none = origins(&[]);
        assert!(none.allows("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(none.allows("HTTP://Gw.Example", Some("gw.example:80")));
        assert!(none.allows("https://gw.example", Some("gw.example:443")));
        assert!(!none.allows("https://gw.example", Some("gw.example:8443")));
        assert!(!none.allows("https://evil.example", Some("gw.example")));
        assert!(!none.allows("null", Some("gw.example")));
        assert!(!none.allows("http://127.0.0.1:8080", None));
        let listed = origins(&["https://app.example.com", "http://[::1]:3000"]);
        assert!(listed.allows("https://app.example.com", Some("gw.example")));
        assert!(listed.allows("https://app.example.com:443", Some("gw.example")));
        assert!(listed.allows("http://[::1]:3000", Some("gw.example")));
        assert!(!listed.allows("http://app.example.com", Some("gw.example")));
        assert!(!listed.allows("https://app.example.com.evil", Some("gw.example")));
        assert!(!listed.lists("null"));
        let any = origins(&["*"]);
        assert!(any.allows("https://anything.example", None));
        assert!(any.lists("null"));
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "app.example.com",
            "ftp://app.example.com",
            "https://app.example.com/",
            "https://user@app.example.com",
            "https://app.example.com:99999",
            "https://",
            "**",
        ] {
            assert!(AllowedOrigins::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
