//! The admin API under `/admin/v1/` (scope `keys:admin`). Every handler runs the lifecycle
//! operation on the blocking pool, updates the key index before answering (so a revocation is
//! in force when the response arrives, and open sessions on the key are closed), and returns
//! JSON. Errors carry stable codes; none echoes a secret.

use super::Principal;
use super::layer::actor;
use crate::api_error::ApiError;
use crate::state::AppState;
use auth::{KeyInfo, KeyService, KeyUpdate, NewKey, SecretString, ServiceError};
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use protocol::{ErrorBody, ErrorCode};
use serde::Deserialize;
use std::collections::HashMap;
use store::audit::hex32;
use store::keys::{Granularity, KeyFilter, KeyKind, KeyRecord, KeyStatus, RateLimit};
use utoipa::ToSchema;

type Body<T> = Result<Json<T>, JsonRejection>;
type Admin = Option<Extension<Principal>>;

fn bad(message: impl AsRef<str>) -> ApiError {
    ApiError::new(
        ErrorCode::BadRequest,
        auth::token::redact(message.as_ref()).into_owned(),
    )
}

fn body<T>(body: Body<T>) -> Result<T, ApiError> {
    body.map(|Json(v)| v)
        .map_err(|e| bad(format!("invalid JSON body: {}", e.body_text())))
}

fn key_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = path.map_err(|e| bad(e.body_text()))?;
    if id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ApiError::new(ErrorCode::NotFound, "no such key id"));
    }
    Ok(id)
}

pub(crate) fn service_error(error: ServiceError) -> ApiError {
    if error.code() == ErrorCode::Internal {
        tracing::error!(error = %error, "admin operation failed");
        return ApiError::new(ErrorCode::Internal, "internal error; see the gateway log");
    }
    ApiError::new(error.code(), error.to_string())
}

/// Runs a blocking lifecycle call, then applies the changed records to the index.
async fn run<T: Send + 'static>(
    state: &AppState,
    op: impl FnOnce(&KeyService) -> Result<(T, Vec<KeyRecord>), ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    let service = state.auth().service.clone();
    let (value, changed) = tokio::task::spawn_blocking(move || op(&service))
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "internal error"))?
        .map_err(service_error)?;
    for record in &changed {
        state.auth().index.upsert(record);
    }
    Ok(value)
}

fn now() -> i64 {
    model::Timestamp::now().0
}

/// The `TOTP-Code` of a request, if it sent one **and** its RFC 9421 signature covers it (an
/// uncovered code could have been added by anyone on the path, so it counts as none).
pub(crate) fn covered_totp_code(headers: &HeaderMap) -> Option<String> {
    let code = headers.get("totp-code")?.to_str().ok()?.trim().to_string();
    let input = super::signed::combined(headers, "signature-input")?;
    let signature = super::signed::combined(headers, "signature")?;
    let signed = auth::httpsig::Signed::parse(&input, &signature).ok()?;
    signed.covers("totp-code").then_some(code)
}

/// The second factor of a critical operation, inside a blocking lifecycle call: when the
/// caller's principal is enrolled in TOTP, its covered `TOTP-Code` must be a current, unused
/// code (`totp_required` / `totp_invalid`, both audited). Not enrolled: passes.
pub(crate) fn second_factor(
    service: &KeyService,
    caller: &TotpCaller,
    operation: &str,
) -> Result<(), ServiceError> {
    service
        .totp_check(
            &caller.principal,
            &caller.key_id,
            caller.code.as_deref(),
            operation,
            &caller.actor,
            now(),
        )
        .map(|_| ())
}

/// Who asks for a critical operation, and the TOTP code they sent (covered by the signature).
#[derive(Debug, Clone)]
pub(crate) struct TotpCaller {
    principal: String,
    key_id: String,
    actor: String,
    code: Option<String>,
}

pub(crate) fn totp_caller(
    principal: Option<&Principal>,
    headers: &HeaderMap,
) -> Result<TotpCaller, ApiError> {
    let actor = actor(principal)?;
    let Some(Principal::Key(key)) = principal else {
        return Err(ApiError::new(
            ErrorCode::MissingCredentials,
            "this needs an authenticated key",
        ));
    };
    Ok(TotpCaller {
        principal: key.view.principal.clone(),
        key_id: key.view.id.clone(),
        actor,
        code: covered_totp_code(headers),
    })
}

/// The errors every admin route can answer, described once for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only described, never built: handlers answer through `ApiError`.
enum AdminErrors {
    /// `bad_request` / `bad_param`: a malformed body, path or query.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// `missing_credentials`, `malformed_key`, `unknown_key`, `key_revoked`, `key_expired`.
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// `insufficient_scope`: the key lacks `keys:admin`.
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

fn issued_json(record: &KeyRecord, secret: Option<SecretString>) -> serde_json::Value {
    auth::info::issued_json(record, secret, now())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    name: String,
    #[serde(default)]
    principal: Option<String>,
    scopes: Vec<String>,
    /// `bearer` (default), `hmac` or `ed25519`.
    #[serde(default, rename = "type")]
    #[schema(value_type = Option<String>)]
    kind: Option<KeyKind>,
    #[serde(default)]
    public_key: Option<String>,
    /// `90d`, `12h`, ... or seconds.
    #[serde(default)]
    expires_in: Option<String>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    rate_limit: Option<RateLimit>,
    #[serde(default)]
    max_age: Option<String>,
}

#[utoipa::path(
    post,
    path = "/admin/v1/keys",
    tag = "admin",
    summary = "Create a key; the response shows its token or secret once",
    request_body = CreateBody,
    responses(
        (status = 201, body = serde_json::Value),
        AdminErrors,
    ),
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    principal: Admin,
    payload: Body<CreateBody>,
) -> Result<Response, ApiError> {
    let actor = actor(principal.as_deref())?;
    let b = body(payload)?;
    let duration = |text: &Option<String>| {
        text.as_deref()
            .map(|t| auth::input::duration_secs(t, false))
            .transpose()
            .map_err(bad)
    };
    let request = NewKey {
        name: b.name,
        principal: b.principal,
        scopes: b.scopes,
        kind: b.kind,
        public_key_pem: b.public_key,
        expires_in_secs: duration(&b.expires_in)?,
        metadata: b.metadata,
        rate_limit: b.rate_limit,
        max_age_secs: duration(&b.max_age)?,
    };
    let issued = run(&state, move |s| {
        let issued = s.create(request, &actor, now())?;
        let record = issued.record.clone();
        Ok((issued, vec![record]))
    })
    .await?;
    let json = issued_json(&issued.record, issued.secret);
    Ok((StatusCode::CREATED, Json(json)).into_response())
}

#[utoipa::path(
    get,
    path = "/admin/v1/keys",
    tag = "admin",
    summary = "List keys (filters: principal, status, type, scope, name, token_sha256)",
    responses(
        (status = 200, body = serde_json::Value),
        AdminErrors,
    ),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(params) = query.map_err(|e| bad(e.body_text()))?;
    let mut filter = KeyFilter {
        limit: 1000,
        ..Default::default()
    };
    for (name, value) in &params {
        match name.as_str() {
            "principal" => filter.principal = Some(value.clone()),
            "status" => {
                filter.status = Some(
                    value
                        .parse::<KeyStatus>()
                        .map_err(|e| bad(format!("status: {e}")))?,
                )
            }
            "type" => {
                filter.kind = Some(
                    value
                        .parse::<KeyKind>()
                        .map_err(|e| bad(format!("type: {e}")))?,
                )
            }
            "token_sha256" => {
                filter.token_hash = Some(
                    hex32::decode(value)
                        .ok_or_else(|| bad("token_sha256 must be 64 hex digits"))?,
                )
            }
            "limit" => {
                filter.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or_else(|| bad("limit must be 1 to 10000"))?
            }
            other => {
                return Err(bad(format!(
                    "unknown parameter {:?}; allowed: principal, status, type, token_sha256, limit",
                    other.chars().take(32).collect::<String>()
                )));
            }
        }
    }
    let keys = run(&state, move |s| Ok((s.store().list(&filter)?, vec![]))).await?;
    let at = now();
    let keys: Vec<KeyInfo> = keys.iter().map(|r| KeyInfo::new(r, at)).collect();
    Ok(Json(serde_json::json!({ "keys": keys })))
}

#[utoipa::path(
    get,
    path = "/admin/v1/keys/{id}",
    tag = "admin",
    summary = "One key (never its secret)",
    params(
        ("id" = String, Path, description = "The public id of the key"),
    ),
    responses(
        (status = 200, body = serde_json::Value),
        AdminErrors,
        (status = 404, description = "unknown_key", body = ErrorBody),
    ),
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<KeyInfo>, ApiError> {
    let id = key_id(path)?;
    let record = run(&state, move |s| Ok((s.get(&id)?, vec![]))).await?;
    Ok(Json(KeyInfo::new(&record, now())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    rate_limit: Option<RateLimit>,
    #[serde(default)]
    max_age: Option<String>,
}

#[utoipa::path(
    patch,
    path = "/admin/v1/keys/{id}",
    tag = "admin",
    summary = "Change the name, scopes, metadata, rate limit or maximum age of a key",
    params(
        ("id" = String, Path, description = "The public id of the key"),
    ),
    request_body = UpdateBody,
    responses(
        (status = 200, body = serde_json::Value),
        AdminErrors,
    ),
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    principal: Admin,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    payload: Body<UpdateBody>,
) -> Result<Json<KeyInfo>, ApiError> {
    let actor = actor(principal.as_deref())?;
    let caller = totp_caller(principal.as_deref(), &headers)?;
    let id = key_id(path)?;
    let b = body(payload)?;
    let change = KeyUpdate {
        name: b.name,
        scopes: b.scopes,
        metadata: b.metadata,
        rate_limit: b.rate_limit,
        max_age_secs: b
            .max_age
            .as_deref()
            .map(|t| auth::input::duration_secs(t, false))
            .transpose()
            .map_err(bad)?,
    };
    let record = run(&state, move |s| {
        // Changing scopes or the IP allow-list is critical (second factor when enrolled).
        let old = s.get(&id)?;
        let scopes_change = change.scopes.as_ref().is_some_and(|new| {
            auth::ScopeSet::parse(new).map(|set| set.names()).ok() != Some(old.scopes.clone())
        });
        let allow_list_change = change
            .metadata
            .as_ref()
            .is_some_and(|m| m.get("allowed_ips") != old.metadata.get("allowed_ips"));
        if scopes_change || allow_list_change {
            second_factor(s, &caller, "key.update")?;
        }
        let r = s.update(&id, change, &actor, now())?;
        Ok((r.clone(), vec![r]))
    })
    .await?;
    Ok(Json(KeyInfo::new(&record, now())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateBody {
    grace_seconds: u64,
    #[serde(default)]
    public_key: Option<String>,
}

#[utoipa::path(
    post,
    path = "/admin/v1/keys/{id}/rotate",
    tag = "admin",
    summary = "Rotate: a successor key now, the old one in grace for grace_seconds",
    params(
        ("id" = String, Path, description = "The public id of the key"),
    ),
    request_body = RotateBody,
    responses(
        (status = 200, body = serde_json::Value),
        AdminErrors,
        (status = 409, description = "conflict: the key cannot be rotated in its state", body = ErrorBody),
    ),
)]
pub(crate) async fn rotate(
    State(state): State<AppState>,
    principal: Admin,
    path: Result<Path<String>, PathRejection>,
    payload: Body<RotateBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let actor = actor(principal.as_deref())?;
    let id = key_id(path)?;
    let b = body(payload)?;
    let (old, issued) = run(&state, move |s| {
        let (old, issued) =
            s.rotate(&id, b.grace_seconds, b.public_key.as_deref(), &actor, now())?;
        let changed = vec![old.clone(), issued.record.clone()];
        Ok(((old, issued), changed))
    })
    .await?;
    let mut json = issued_json(&issued.record, issued.secret);
    json["previous"] = serde_json::to_value(KeyInfo::new(&old, now())).unwrap_or_default();
    Ok(Json(json))
}

#[utoipa::path(
    post,
    path = "/admin/v1/keys/{id}/rotate/cancel",
    tag = "admin",
    summary = "Cancel a rotation during grace: the old key is active again, the successor revoked",
    params(
        ("id" = String, Path, description = "The public id of the key"),
    ),
    responses(
        (status = 200, body = serde_json::Value),
        AdminErrors,
        (status = 409, description = "conflict: no rotation to cancel", body = ErrorBody),
    ),
)]
pub(crate) async fn cancel_rotation(
    State(state): State<AppState>,
    principal: Admin,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let actor = actor(principal.as_deref())?;
    let id = key_id(path)?;
    let (restored, revoked) = run(&state, move |s| {
        let (a, b) = s.cancel_rotation(&id, &actor, now())?;
        Ok(((a.clone(), b.clone()), vec![a, b]))
    })
    .await?;
    let at = now();
    Ok(Json(serde_json::json!({
        "key": KeyInfo::new(&restored, at),
        "revoked_successor": KeyInfo::new(&revoked, at),
    })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeBody {
    reason: String,
}

#[utoipa::path(
    post,
    path = "/admin/v1/keys/{id}/revoke",
    tag = "admin",
    summary = "Revoke now; live WebSocket sessions on the key are closed within 1 s",
    params(
        ("id" = String, Path, description = "The public id of the key"),
    ),
    request_body = RevokeBody,
    responses(
        (status = 200, body = serde_json::Value),
        AdminErrors,
    ),
)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    principal: Admin,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    payload: Body<RevokeBody>,
) -> Result<Json<KeyInfo>, ApiError> {
    let actor = actor(principal.as_deref())?;
    let caller = totp_caller(principal.as_deref(), &headers)?;
    let id = key_id(path)?;
    let b = body(payload)?;
    let record = run(&state, move |s| {
        second_factor(s, &caller, "key.revoke")?;
        let r = s.revoke(&id, &b.reason, &actor, now())?;
        Ok((r.clone(), vec![r]))
    })
    .await?;
    Ok(Json(KeyInfo::new(&record, now())))
}

#[utoipa::path(
    post,
    path = "/admin/v1/keys/{id}/suspend",
    tag = "admin",
    summary = "Suspend (reversibly): refused with key_suspended, live WebSocket sessions closed",
    params(
        ("id" = String, Path, description = "The public id of the key"),
    ),
    request_body = RevokeBody,
    responses(
        (status = 200, body = serde_json::Value),
        AdminErrors,
        (status = 409, description = "conflict: the key is not active or in grace", body = ErrorBody),
    ),
)]
pub(crate) async fn suspend(
    State(state): State<AppState>,
    principal: Admin,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    payload: Body<RevokeBody>,
) -> Result<Json<KeyInfo>, ApiError> {
    let actor = actor(principal.as_deref())?;
    let caller = totp_caller(principal.as_deref(), &headers)?;
    let id = key_id(path)?;
    let b = body(payload)?;
    let record = run(&state, move |s| {
        second_factor(s, &caller, "key.suspend")?;
        let r = s.suspend(&id, &b.reason, &actor, now())?;
        Ok((r.clone(), vec![r]))
    })
    .await?;
    Ok(Json(KeyInfo::new(&record, now())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LeakedBody {
    /// For an ed25519 key: the new public key (PEM) of its successor; without it the key is
    /// only revoked.
    #[serde(default)]
    public_key: Option<String>,
}

#[utoipa::path(
    post,
    path = "/admin/v1/keys/{id}/leaked",
    tag = "admin",
    summary = "Leak playbook: rotate with zero grace, revoke the old secret, report its last 24 h",
    params(
        ("id" = String, Path, description = "The public id of the key"),
    ),
    request_body = LeakedBody,
    responses(
        (status = 200, body = serde_json::Value),
        AdminErrors,
        (status = 409, description = "conflict: the key is already revoked or expired", body = ErrorBody),
    ),
)]
pub(crate) async fn leaked(
    State(state): State<AppState>,
    principal: Admin,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    payload: Body<LeakedBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let actor = actor(principal.as_deref())?;
    let caller = totp_caller(principal.as_deref(), &headers)?;
    let id = key_id(path)?;
    let b = body(payload)?;
    // What the key did up to now: flush its live counters first, so the report is current.
    let index = state.auth().index.clone();
    let leaked = run(&state, move |s| {
        second_factor(s, &caller, "key.leaked")?;
        auth::maintenance::flush_once(s, &index, now())?;
        let leaked = s.leaked(&id, b.public_key.as_deref(), &actor, now())?;
        let mut changed = vec![leaked.revoked.clone()];
        changed.extend(leaked.successor.as_ref().map(|i| i.record.clone()));
        Ok((leaked, changed))
    })
    .await?;
    Ok(Json(leaked.json(now())))
}

#[utoipa::path(
    post,
    path = "/admin/v1/keys/{id}/resume",
    tag = "admin",
    summary = "Resume a suspended key (active again, or back in its rotation grace)",
    params(
        ("id" = String, Path, description = "The public id of the key"),
    ),
    responses(
        (status = 200, body = serde_json::Value),
        AdminErrors,
        (status = 409, description = "conflict: the key is not suspended", body = ErrorBody),
    ),
)]
pub(crate) async fn resume(
    State(state): State<AppState>,
    principal: Admin,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<KeyInfo>, ApiError> {
    let actor = actor(principal.as_deref())?;
    let caller = totp_caller(principal.as_deref(), &headers)?;
    let id = key_id(path)?;
    let record = run(&state, move |s| {
        second_factor(s, &caller, "key.resume")?;
        let r = s.resume(&id, &actor, now())?;
        Ok((r.clone(), vec![r]))
    })
    .await?;
    Ok(Json(KeyInfo::new(&record, now())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TotpEnrollBody {
    /// `sha1` (default: what authenticator apps expect), `sha256` or `sha512`.
    #[serde(default)]
    algorithm: Option<String>,
    /// Replace an existing enrollment of the key's principal.
    #[serde(default)]
    replace: bool,
}

#[utoipa::path(
    post,
    path = "/admin/v1/keys/{id}/totp",
    tag = "admin",
    summary = "Enroll the key's (admin) principal in TOTP; the otpauth:// URI is shown once",
    params(
        ("id" = String, Path, description = "The public id of a keys:admin key"),
    ),
    request_body = TotpEnrollBody,
    responses(
        (status = 201, body = serde_json::Value),
        AdminErrors,
        (status = 409, description = "conflict: already enrolled (send replace)", body = ErrorBody),
    ),
)]
pub(crate) async fn totp_enroll(
    State(state): State<AppState>,
    principal: Admin,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    payload: Body<TotpEnrollBody>,
) -> Result<Response, ApiError> {
    let actor = actor(principal.as_deref())?;
    let caller = totp_caller(principal.as_deref(), &headers)?;
    let id = key_id(path)?;
    let b = body(payload)?;
    let algorithm: auth::totp::TotpAlgorithm = b
        .algorithm
        .as_deref()
        .unwrap_or("sha1")
        .parse()
        .map_err(bad)?;
    let (enrollment, uri) = run(&state, move |s| {
        // A conflict is answered before the second factor, so it does not use up a code.
        let key = s.get(&id)?;
        if !b.replace && s.store().totp_get(&key.principal)?.is_some() {
            return Err(ServiceError::Conflict(format!(
                "principal {} is already enrolled in TOTP; send \"replace\": true with a \
                 current TOTP-Code to replace its secret",
                key.principal
            )));
        }
        second_factor(s, &caller, "totp.enroll")?;
        Ok((
            s.totp_enroll(&id, algorithm, b.replace, &actor, now())?,
            vec![],
        ))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "principal": enrollment.principal,
            "algorithm": enrollment.algorithm,
            "digits": enrollment.digits,
            "period": enrollment.period,
            "otpauth_uri": uri.expose(),
        })),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/admin/v1/keys/{id}/usage",
    tag = "admin",
    summary = "Per-minute/hour usage buckets, last use time and address",
    params(
        ("id" = String, Path, description = "The public id of the key"),
    ),
    responses(
        (status = 200, body = serde_json::Value),
        AdminErrors,
    ),
)]
pub(crate) async fn usage(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = key_id(path)?;
    let Query(params) = query.map_err(|e| bad(e.body_text()))?;
    let mut granularity = Granularity::Minute;
    let mut since = now() - 24 * 3_600_000_000;
    for (name, value) in &params {
        match name.as_str() {
            "granularity" => {
                granularity = value
                    .parse()
                    .map_err(|e| bad(format!("granularity: {e}")))?
            }
            "since" => {
                since = value
                    .parse()
                    .map_err(|_| bad("since must be µs since the epoch"))?
            }
            _ => return Err(bad("unknown parameter; allowed: granularity, since")),
        }
    }
    let (record, buckets) = run(&state, move |s| {
        let record = s.get(&id)?;
        let buckets = s.store().usage(&id, granularity, since)?;
        Ok(((record, buckets), vec![]))
    })
    .await?;
    Ok(Json(serde_json::json!({
        "key_id": record.id,
        "granularity": granularity,
        "last_used_at": record.last_used_at,
        "last_used_addr": record.last_used_addr,
        "buckets": buckets,
    })))
}

#[utoipa::path(
    post,
    path = "/admin/v1/keys/rewrap",
    tag = "admin",
    summary = "Re-encrypt every HMAC key secret and webhook signing secret under the current master key",
    responses(
        (status = 200, body = serde_json::Value),
        AdminErrors,
    ),
)]
pub(crate) async fn rewrap(
    State(state): State<AppState>,
    principal: Admin,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let actor = actor(principal.as_deref())?;
    let caller = totp_caller(principal.as_deref(), &headers)?;
    let key_actor = actor.clone();
    let count = run(&state, move |s| {
        second_factor(s, &caller, "keys.rewrap")?;
        Ok((s.rewrap(&key_actor, now())?, vec![]))
    })
    .await?;
    // Webhook signing secrets are sealed under the same master keys.
    let service = state.auth().service.clone();
    let store = state.alerts().service.store().clone();
    let webhooks = tokio::task::spawn_blocking(move || {
        ::alerts::webhook::rewrap::rewrap_endpoint_secrets(
            store.as_ref(),
            service.ring(),
            service.audit().as_ref(),
            &actor,
            now(),
        )
    })
    .await
    .map_err(|_| ApiError::new(ErrorCode::Internal, "internal error"))?
    .map_err(crate::alerts::api_error)?;
    let master = state
        .auth()
        .service
        .ring()
        .current()
        .map(|k| k.id().to_string());
    Ok(Json(serde_json::json!({
        "rewrapped": count,
        "webhook_secrets_rewrapped": webhooks,
        "master_key_id": master,
    })))
}

#[utoipa::path(
    get,
    path = "/admin/v1/audit",
    tag = "admin",
    summary = "Audit log entries (hash-chained), newest last",
    responses(
        (status = 200, body = serde_json::Value),
        AdminErrors,
    ),
)]
pub(crate) async fn audit(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(params) = query.map_err(|e| bad(e.body_text()))?;
    let mut after = 0u64;
    let mut limit = 1000usize;
    for (name, value) in &params {
        match name.as_str() {
            "after" => {
                after = value
                    .parse()
                    .map_err(|_| bad("after must be an entry seq"))?
            }
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=10_000).contains(n))
                    .ok_or_else(|| bad("limit must be 1 to 10000"))?
            }
            _ => return Err(bad("unknown parameter; allowed: after, limit")),
        }
    }
    let (entries, head) = run(&state, move |s| {
        Ok(((s.audit().read(after, limit)?, s.audit().head()?), vec![]))
    })
    .await?;
    Ok(Json(serde_json::json!({
        "entries": entries,
        "head": head.map(|(seq, hash)| serde_json::json!({"seq": seq, "hash": hex32::encode(&hash)})),
    })))
}
