//! `POST /v1/ws-token`: a single-use WebSocket token for the calling key (see
//! `auth::ws_token`). Scope `market:read`; bearer or signed.

use super::Principal;
use crate::api_error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Extension, State};
use protocol::{ErrorBody, ErrorCode};
use serde::Serialize;
use utoipa::ToSchema;

/// A single-use WebSocket token.
#[derive(Debug, Serialize, ToSchema)]
pub struct WsTokenResponse {
    /// Put it in the WebSocket URL: `/v1/ws?token=…`. Valid once.
    pub token: String,
    /// The key the session will be bound to.
    pub key_id: String,
    /// µs since the epoch; a later first use gets `token_expired`.
    pub expires_at: i64,
}

#[utoipa::path(
    post,
    path = "/v1/ws-token",
    tag = "market",
    responses(
        (status = 200, body = WsTokenResponse),
        (status = 401, description = "missing_credentials, or any authentication rejection", body = ErrorBody),
    ),
)]
pub(crate) async fn issue(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
) -> Result<Json<WsTokenResponse>, ApiError> {
    let Some(Extension(Principal::Key(key))) = principal else {
        return Err(ApiError::new(
            ErrorCode::MissingCredentials,
            "a WebSocket token is issued to a key: authenticate this request",
        ));
    };
    let (token, expires_at) = state
        .auth()
        .ws_tokens
        .issue(&key.view.id, model::Timestamp::now().0)
        .map_err(|_| ApiError::new(ErrorCode::Internal, "no randomness for a token"))?;
    Ok(Json(WsTokenResponse {
        token,
        key_id: key.view.id.clone(),
        expires_at,
    }))
}
