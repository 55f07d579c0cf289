//! `/ui/api/*`: the dashboard page's own routes.
//!
//! - `POST /ui/api/login`: log in. The request carries a key exactly as any API request does
//!   (`Authorization: Bearer`, or an RFC 9421 signature made in the browser), is checked by the
//!   ordinary scope guard (`market:read`), and is answered with the session cookie. The page
//!   forgets the key at once.
//! - `GET /ui/api/session`: what the page may do: whether a key is needed, and the session (key
//!   id, scopes, end, CSRF token) if the cookie is valid.
//! - `POST /ui/api/logout`: clears the cookie.
//! - `POST /ui/api/ws-token`: a single-use WebSocket token for the session's key (cookie, same
//!   `Origin` and the CSRF token; the same tokens as `POST /v1/ws-token`).
//! - `GET /ui/api/instruments|candles|trades`: the REST reads the page makes, answered by the
//!   same handlers as `/v1/…`, authenticated by the cookie (or anonymous where allowed).
//!
//! Every cookie use re-checks the key in the live index (status, expiry, scope, rate limit) and
//! counts as a request of that key.

use super::assets::secure;
use super::session::{COOKIE, CSRF_HEADER, Session, SessionError};
use crate::api_error::ApiError;
use crate::auth::layer::rejection_response;
use crate::auth::{Principal, ws_token_route::WsTokenResponse};
use crate::route::Route;
use crate::state::AppState;
use crate::{rest, rest_history};
use auth::{KeyPrincipal, Scope};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use protocol::{ErrorBody, ErrorCode};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use utoipa::ToSchema;

pub fn routes() -> Vec<Route> {
    let route = |path, scope, handler| Route {
        path,
        scope,
        handler,
    };
    vec![
        route("/ui/api/session", None, get(session)),
        // The scope guard authenticates the key (bearer or signed) before `login` runs.
        route("/ui/api/login", Some(Scope::MarketRead), post(login)),
        route("/ui/api/logout", None, post(logout)),
        route("/ui/api/ws-token", None, post(ws_token)),
        route("/ui/api/instruments", None, get(instruments)),
        route("/ui/api/candles", None, get(candles)),
        route("/ui/api/trades", None, get(trades)),
    ]
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(session, login, logout, ws_token, instruments, candles, trades),
    tags((name = "dashboard", description = "The built-in dashboard's own routes (docs/dashboard.md): a cookie session for browsers")),
)]
pub struct ApiDoc;

fn now_micros() -> i64 {
    model::Timestamp::now().0
}

/// The `tg_ui` cookie's value, if the request has one.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(value)
        })
}

/// An error response with the dashboard's headers.
fn error(state: &AppState, code: ErrorCode, message: impl Into<String>) -> Response {
    state.metrics().count_error(code);
    let mut response = ApiError::new(code, message).into_response();
    secure(response.headers_mut(), false);
    response
}

/// The scheme the page was loaded with: what `[auth] signature_scheme` says clients use.
fn https(state: &AppState) -> bool {
    state.auth().signature_scheme == "https"
}

/// Refuses a state-changing request that the dashboard's own page did not send: its
/// `Origin` must be this gateway's (browsers send it on every POST; SameSite=Strict already
/// keeps the cookie off cross-site requests, this holds even where that does not).
/// `Some(refusal)` when the request is not from the page.
fn same_origin(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let scheme = if https(state) { "https" } else { "http" };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok());
    match (host, origin) {
        (Some(host), Some(origin))
            if origin.eq_ignore_ascii_case(&format!("{scheme}://{host}")) =>
        {
            None
        }
        (_, None) => Some(error(
            state,
            ErrorCode::CsrfRejected,
            "this request needs an Origin header: send it from the dashboard page",
        )),
        _ => Some(error(
            state,
            ErrorCode::CsrfRejected,
            "this request came from another origin than the dashboard's",
        )),
    }
}

/// Sets the session cookie to `value` for `max_age` seconds (0 with an empty value: clears it).
fn set_cookie(state: &AppState, response: &mut Response, value: &str, max_age: i64) {
    let secure = if https(state) { "; Secure" } else { "" };
    let text = format!(
        "{COOKIE}={value}; Path=/ui/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    if let Ok(value) = HeaderValue::from_str(&text) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn clear_cookie(state: &AppState, response: &mut Response) {
    set_cookie(state, response, "", 0);
}

/// Why a cookie was not accepted.
enum Refused {
    Session(SessionError),
    Key(auth::Rejection),
}

impl Refused {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Session(e) => e.code(),
            Self::Key(r) => r.code,
        }
    }

    fn into_response(self, state: &AppState) -> Response {
        match self {
            Self::Session(e) => {
                let mut response = error(state, e.code(), e.to_string());
                clear_cookie(state, &mut response);
                response
            }
            Self::Key(rejection) => {
                let mut response = rejection_response(state, rejection);
                secure(response.headers_mut(), false);
                response
            }
        }
    }
}

/// The session behind the request's cookie, its key checked in the live index for `scope`.
/// `Ok(None)`: no cookie.
fn cookie_key(
    state: &AppState,
    headers: &HeaderMap,
    scope: Scope,
    addr: Option<IpAddr>,
) -> Result<Option<(Session, KeyPrincipal)>, Refused> {
    let Some(value) = cookie(headers) else {
        return Ok(None);
    };
    let now = now_micros();
    let session = state
        .ui()
        .sessions
        .verify(value, now.div_euclid(1_000_000))
        .map_err(Refused::Session)?;
    let principal = state
        .auth()
        .index
        .authenticate_id(&session.key_id, Some(scope), addr, now)
        .map_err(Refused::Key)?;
    Ok(Some((session, principal)))
}

/// Whether the request may read `scope`: the cookie's key, or anonymous where the deployment
/// allows it. `Some(refusal)` otherwise.
fn refuse_reader(
    state: &AppState,
    headers: &HeaderMap,
    scope: Scope,
    addr: Option<IpAddr>,
) -> Option<Response> {
    if !state.ui().config.enabled {
        return Some(error(
            state,
            ErrorCode::NotFound,
            "the dashboard is disabled",
        ));
    }
    match cookie_key(state, headers, scope, addr) {
        Ok(Some(_)) => None,
        Ok(None) if state.auth().anonymous_allows(scope) => None,
        Ok(None) => Some(error(
            state,
            ErrorCode::MissingCredentials,
            "this gateway needs a key: log in on the dashboard",
        )),
        Err(refused) => Some(refused.into_response(state)),
    }
}

/// A dashboard session as the page sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    pub key_id: String,
    pub scopes: Vec<String>,
    /// When the login ends, µs since the epoch.
    pub expires_at: i64,
    /// Send it as `X-CSRF-Token` on cookie-authenticated POSTs.
    pub csrf: String,
}

/// What the page may do.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionState {
    /// Whether this deployment needs a key for market data (`[auth] required`).
    pub auth_required: bool,
    /// The session, when the cookie is valid.
    pub session: Option<SessionInfo>,
    /// Why the cookie was not accepted, when there was one: an error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<ErrorCode>,
}

fn info(state: &AppState, session: &Session, key: &KeyPrincipal) -> SessionInfo {
    SessionInfo {
        key_id: session.key_id.clone(),
        scopes: key.view.scopes.iter().map(|s| s.to_string()).collect(),
        expires_at: session.expires.saturating_mul(1_000_000),
        csrf: state.ui().sessions.csrf(session),
    }
}

fn json<T: Serialize>(body: &T) -> Response {
    let mut response = Json(body).into_response();
    secure(response.headers_mut(), false);
    response
}

/// The dashboard's session, if its cookie is valid, and whether a key is needed.
#[utoipa::path(
    get,
    path = "/ui/api/session",
    tag = "dashboard",
    responses((status = 200, body = SessionState)),
)]
async fn session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let found = cookie_key(&state, &headers, Scope::MarketRead, Some(peer.ip()));
    let (session, reason) = match &found {
        Ok(Some((session, key))) => (Some(info(&state, session, key)), None),
        Ok(None) => (None, None),
        Err(refused) => (None, Some(refused.code())),
    };
    let mut response = json(&SessionState {
        auth_required: state.auth().required,
        session,
        reason,
    });
    if found.is_err() {
        // The page cannot use this cookie: drop it.
        clear_cookie(&state, &mut response);
    }
    response
}

/// Logs in: the request is authenticated like any API request needing `market:read` (a bearer
/// token, or an RFC 9421 signature); the answer sets the session cookie (HttpOnly,
/// SameSite=Strict, Path=/ui/, Secure behind https) and carries the session.
#[utoipa::path(
    post,
    path = "/ui/api/login",
    tag = "dashboard",
    responses(
        (status = 200, body = SessionInfo, description = "Logged in; Set-Cookie carries the session"),
        (status = 401, description = "missing_credentials or any authentication rejection", body = ErrorBody),
        (status = 403, description = "csrf_rejected: not sent by the dashboard page (Origin); insufficient_scope", body = ErrorBody),
    ),
)]
async fn login(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
) -> Response {
    if !state.ui().config.enabled {
        return error(&state, ErrorCode::NotFound, "the dashboard is disabled");
    }
    if let Some(response) = same_origin(&state, &headers) {
        return response;
    }
    let Some(Extension(Principal::Key(key))) = principal else {
        return error(
            &state,
            ErrorCode::MissingCredentials,
            "log in with a key: Authorization: Bearer <key>, or a signed request",
        );
    };
    let now = now_micros();
    let ttl = i64::try_from(state.ui().config.session_ttl_secs).unwrap_or(i64::MAX);
    let now_secs = now.div_euclid(1_000_000);
    // Never beyond the key's own end (expiry, or the end of its rotation grace).
    let key_end = [key.view.expires_at, key.view.sunset()]
        .into_iter()
        .flatten()
        .min()
        .map(|t| t.div_euclid(1_000_000));
    let expires = key_end.map_or(now_secs + ttl, |end| end.min(now_secs + ttl));
    let (value, session) = match state.ui().sessions.mint(&key.view.id, expires) {
        Ok(minted) => minted,
        Err(e) => return error(&state, ErrorCode::Internal, e.to_string()),
    };
    let mut response = json(&info(&state, &session, &key));
    set_cookie(&state, &mut response, &value, (expires - now_secs).max(0));
    response
}

/// Logs out: clears the session cookie (same origin only).
#[utoipa::path(
    post,
    path = "/ui/api/logout",
    tag = "dashboard",
    responses(
        (status = 200, description = "The cookie is cleared"),
        (status = 403, description = "csrf_rejected", body = ErrorBody),
    ),
)]
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(response) = same_origin(&state, &headers) {
        return response;
    }
    let mut response = json(&serde_json::json!({ "session": null }));
    clear_cookie(&state, &mut response);
    response
}

/// A single-use WebSocket token for the session's key (`/v1/ws?token=…`).
#[utoipa::path(
    post,
    path = "/ui/api/ws-token",
    tag = "dashboard",
    responses(
        (status = 200, body = WsTokenResponse),
        (status = 401, description = "session_invalid, or the session's key is no longer usable", body = ErrorBody),
        (status = 403, description = "csrf_rejected: wrong Origin or X-CSRF-Token", body = ErrorBody),
    ),
)]
async fn ws_token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = same_origin(&state, &headers) {
        return response;
    }
    let (session, key) = match cookie_key(&state, &headers, Scope::MarketRead, Some(peer.ip())) {
        Ok(Some(found)) => found,
        Ok(None) => {
            return error(
                &state,
                ErrorCode::SessionInvalid,
                "no dashboard session: log in first",
            );
        }
        Err(refused) => return refused.into_response(&state),
    };
    let token = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if !token.is_some_and(|t| state.ui().sessions.csrf_matches(&session, t)) {
        return error(
            &state,
            ErrorCode::CsrfRejected,
            "missing or wrong X-CSRF-Token (GET /ui/api/session has it)",
        );
    }
    match state.auth().ws_tokens.issue(&key.view.id, now_micros()) {
        Ok((token, expires_at)) => json(&WsTokenResponse {
            token,
            key_id: key.view.id.clone(),
            expires_at,
        }),
        Err(_) => error(&state, ErrorCode::Internal, "no randomness for a token"),
    }
}

type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// `GET /v1/instruments` for the page.
#[utoipa::path(
    get,
    path = "/ui/api/instruments",
    tag = "dashboard",
    responses(
        (status = 200, body = protocol::rest::InstrumentsResponse),
        (status = 401, description = "missing_credentials, session_invalid or a key rejection", body = ErrorBody),
    ),
)]
async fn instruments(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Params,
) -> Response {
    let answer = rest::instruments(State(state.clone()), params);
    read(&state, peer, &headers, Scope::MarketRead, answer).await
}

/// `GET /v1/candles` for the page (same parameters).
#[utoipa::path(
    get,
    path = "/ui/api/candles",
    tag = "dashboard",
    params(rest_history::CandlesParams),
    responses(
        (status = 200, body = protocol::history::CandlesPage),
        (status = 401, description = "missing_credentials, session_invalid or a key rejection", body = ErrorBody),
    ),
)]
async fn candles(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Result<Query<rest_history::CandlesParams>, QueryRejection>,
) -> Response {
    let answer = rest_history::candles(State(state.clone()), params);
    read(&state, peer, &headers, Scope::HistoryRead, answer).await
}

/// `GET /v1/trades` for the page (same parameters).
#[utoipa::path(
    get,
    path = "/ui/api/trades",
    tag = "dashboard",
    params(rest_history::TradesParams),
    responses(
        (status = 200, body = protocol::history::TradesPage),
        (status = 401, description = "missing_credentials, session_invalid or a key rejection", body = ErrorBody),
    ),
)]
async fn trades(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Result<Query<rest_history::TradesParams>, QueryRejection>,
) -> Response {
    let answer = rest_history::trades(State(state.clone()), params);
    read(&state, peer, &headers, Scope::HistoryRead, answer).await
}

/// Runs `answer` (a `/v1` handler, not started yet) if the request may read `scope`.
async fn read<R: IntoResponse>(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    scope: Scope,
    answer: impl std::future::Future<Output = R>,
) -> Response {
    match refuse_reader(state, headers, scope, Some(peer.ip())) {
        Some(refusal) => refusal,
        None => with_headers(answer.await),
    }
}

fn with_headers(result: impl IntoResponse) -> Response {
    let mut response = result.into_response();
    secure(response.headers_mut(), false);
    response
}
