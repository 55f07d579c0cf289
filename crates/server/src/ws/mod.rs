//! The WebSocket API at `/v1/ws`.
//!
//! - `session`: one task per connection: reads client ops, fans channel frames out in batches,
//!   applies the slow-consumer policy, heartbeats and limits; `session::subscribe` is
//!   `subscribe`/`unsubscribe` (with resume), `session::login` the `auth` op, the first
//!   messages of a key and closing the session when its key is revoked or expires.
//! - `limiter`: the per-connection request rate limiter.
//! - `recv`: broadcast receivers whose pending `recv` survives the session's `select!` loop.
//! - `auth`: the session's key ([`auth::SessionAuth`]): credentials on the upgrade request,
//!   scope checks per channel and per-key limits.

mod auth;
pub(crate) mod limiter;
mod recv;
mod session;

use crate::state::AppState;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use protocol::ErrorCode;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

/// tungstenite's read buffer per connection, allocated eagerly and zero-filled up to its
/// capacity on every poll of the socket (each wake-up of the session). Its default (128 KiB)
/// would cost 1.3 GB for 10,000 idle clients. Client messages are small (a subscribe is a few
/// hundred bytes); a larger one is read in chunks of this size into a buffer reserved for the
/// whole frame once its header is read.
const READ_BUFFER: usize = 1024;
/// Bytes buffered before tungstenite writes to the socket on its own.
const WRITE_BUFFER: usize = 64 * 1024;
/// Hard cap of buffered outbound bytes per connection.
const MAX_WRITE_BUFFER: usize = 4 * 1024 * 1024;
/// Hard cap on an inbound frame; anything larger closes the connection (1009). Messages
/// between `ws.max_message_bytes` and this get a `message_too_large` error instead.
const HARD_MAX_MESSAGE: usize = 1024 * 1024;

/// The WebSocket API (protocol v1): subscribe to `{kind}:{venue}:{symbol}` channels and
/// receive snapshots and gap-free updates. Messages are described in docs/protocol.md.
#[utoipa::path(
    get,
    path = "/v1/ws",
    tag = "market",
    responses(
        (status = 101, description = "Switching Protocols: the connection speaks tickgate protocol v1"),
        (status = 400, description = "Not a WebSocket upgrade request"),
        (status = 403, description = "origin_not_allowed: a browser page from an origin not in server.allowed_origins", body = protocol::ErrorBody),
        (status = 429, description = "rate_limited: this address's anonymous upgrade rate or session limit ([server.anonymous])", body = protocol::ErrorBody),
        (status = 503, description = "unavailable: connection limit reached", body = protocol::ErrorBody),
    ),
)]
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: axum::http::Method,
    headers: HeaderMap,
    uri: axum::http::Uri,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Bounded before any authentication work (a signature check is the costly part).
    let Some(pending) = state
        .pending_upgrades()
        .try_start(state.config().server.max_pending_upgrades)
    else {
        state.metrics().count_error(ErrorCode::Unavailable);
        return crate::api_error::ApiError::new(
            ErrorCode::Unavailable,
            "too many WebSocket upgrades in progress; retry later",
        )
        .into_response();
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            let message = format!("a WebSocket upgrade request is required: {rejection}");
            return crate::api_error::ApiError::new(ErrorCode::BadRequest, message).into_response();
        }
    };
    // A browser page from another site may not open a session (cross-site WebSocket
    // hijacking); clients without `Origin` are not browsers and are not affected.
    if let Some(origin) = crate::origin::request_origin(&headers) {
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok());
        if !state.origins().allows(origin, host) {
            state.metrics().count_error(ErrorCode::OriginNotAllowed);
            return crate::api_error::ApiError::new(
                ErrorCode::OriginNotAllowed,
                "this page's origin may not open WebSocket sessions here; see \
                 server.allowed_origins",
            )
            .into_response();
        }
    }
    // A key on the upgrade request (a bearer token, or an RFC 9421 signature of the upgrade
    // request itself) is checked before upgrading: a bad one gets a plain HTTP error with its
    // code. Without one, the session may still authenticate with `auth`. A single-use token
    // from `POST /v1/ws-token` may come in the URL instead (`?token=`).
    let token = uri.query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .map(str::to_string)
    });
    let mut session_auth = match auth::SessionAuth::from_upgrade(
        &state,
        &method,
        &uri,
        &headers,
        token.as_deref(),
        peer,
    )
    .await
    {
        Ok(session_auth) => session_auth,
        Err(rejection) => return crate::auth::layer::rejection_response(&state, rejection),
    };
    // A session without a key (yet) is held to its address's anonymous limits.
    if session_auth.key.is_none() {
        let anonymous = state.anonymous();
        if let Err(wait) = anonymous.check_request(peer.ip()) {
            let limit = anonymous.limits().requests_per_sec;
            return crate::per_ip::refused_response(
                state.metrics(),
                format!("more than {limit} requests per second from this address without a key"),
                Some(wait),
            );
        }
        match anonymous.open_session(peer.ip()) {
            Some(slot) => session_auth.anonymous = Some(slot),
            None => {
                let max = anonymous.limits().ws_connections_per_ip;
                return crate::per_ip::refused_response(
                    state.metrics(),
                    format!("this address already has {max} sessions without a key"),
                    None,
                );
            }
        }
    }
    let metrics = state.metrics();
    if metrics.connections_open.load(Ordering::Relaxed) as usize
        >= state.config().server.max_connections
    {
        metrics.connections_rejected.fetch_add(1, Ordering::Relaxed);
        return crate::api_error::ApiError::new(
            ErrorCode::Unavailable,
            "connection limit reached; retry later",
        )
        .into_response();
    }
    // Boxed: the upgrade closure is kept in the connection's task for its whole life, and
    // the key state is ~200 bytes.
    let session_auth = Box::new(session_auth);
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .max_message_size(HARD_MAX_MESSAGE)
        .max_frame_size(HARD_MAX_MESSAGE)
        .on_upgrade(move |socket| {
            let mut session_auth = *session_auth;
            // In progress until the session runs, or, when it must still authenticate, until
            // it has (`SessionAuth::bind`) or ends. A failed upgrade drops it with the closure.
            if session_auth.deadline.is_some() && session_auth.key.is_none() {
                session_auth.pending = Some(pending);
            } else {
                drop(pending);
            }
            session::run(socket, state, peer, session_auth)
        })
}
