//! `GET /admin/v1/overview` (scope `keys:admin`): what the operator view shows beside the keys
//! themselves: live WebSocket sessions per key, authentication rejections by code and key
//! (the same counts as `tickgate_auth_rejections_total`), and the audit log's head. An ordinary
//! admin route: signed requests only by default, like the rest of `/admin/v1/`.

use crate::api_error::ApiError;
use crate::route::Route;
use crate::state::AppState;
use auth::Scope;
use axum::Json;
use axum::extract::Query;
use axum::extract::State;
use axum::extract::rejection::QueryRejection;
use axum::routing::get;
use protocol::{ErrorBody, ErrorCode};
use serde::Serialize;
use store::audit::hex32;
use utoipa::ToSchema;

pub fn route() -> Route {
    Route {
        path: "/admin/v1/overview",
        scope: Some(Scope::KeysAdmin),
        handler: get(overview),
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(overview))]
pub struct ApiDoc;

/// Open WebSocket sessions of one key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeySessions {
    pub key_id: String,
    pub connections: u32,
    /// Channel subscriptions across those connections.
    pub subscriptions: u32,
}

/// Refused authentications of one code and key since the gateway started.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rejections {
    pub code: String,
    /// The key the request named, or `none`.
    pub key: String,
    pub count: u64,
}

/// The audit log's last entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditHead {
    pub seq: u64,
    /// Hex SHA-256.
    pub hash: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    /// µs since the epoch.
    pub now: i64,
    /// Keys with open sessions (keys without any are left out).
    pub sessions: Vec<KeySessions>,
    pub rejections: Vec<Rejections>,
    pub audit_head: Option<AuditHead>,
    /// Open WebSocket connections, anonymous ones included.
    pub connections_open: u64,
    /// Keys in the index.
    pub keys: usize,
}

/// Live sessions per key, authentication rejections by code and key, the audit head.
#[utoipa::path(
    get,
    path = "/admin/v1/overview",
    tag = "admin",
    responses(
        (status = 200, body = Overview),
        (status = 400, description = "bad_param: this route takes no parameter", body = ErrorBody),
        (status = 401, description = "missing_credentials or any authentication rejection", body = ErrorBody),
        (status = 403, description = "insufficient_scope, signature_required", body = ErrorBody),
    ),
)]
pub(crate) async fn overview(
    State(state): State<AppState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Overview>, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::new(ErrorCode::BadParam, e.body_text()))?;
    if let Some((name, _)) = params.first() {
        let shown: String = name.chars().take(32).collect();
        return Err(ApiError::new(
            ErrorCode::BadParam,
            format!("unknown parameter {shown:?}: this route takes none"),
        ));
    }
    let audit = state.auth().service.audit().clone();
    let head = tokio::task::spawn_blocking(move || audit.head())
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "internal error"))?
        .map_err(|error| {
            tracing::error!(error = %error, "cannot read the audit head");
            ApiError::new(ErrorCode::Internal, "internal error; see the gateway log")
        })?;
    let index = &state.auth().index;
    Ok(Json(Overview {
        now: model::Timestamp::now().0,
        sessions: index
            .live_sessions()
            .into_iter()
            .map(|(key_id, connections, subscriptions)| KeySessions {
                key_id,
                connections,
                subscriptions,
            })
            .collect(),
        rejections: state
            .metrics()
            .auth_rejections()
            .into_iter()
            .map(|(code, key, count)| Rejections {
                code: code.to_string(),
                key,
                count,
            })
            .collect(),
        audit_head: head.map(|(seq, hash)| AuditHead {
            seq,
            hash: hex32::encode(&hash),
        }),
        connections_open: state
            .metrics()
            .connections_open
            .load(std::sync::atomic::Ordering::Relaxed),
        keys: index.len(),
    }))
}
