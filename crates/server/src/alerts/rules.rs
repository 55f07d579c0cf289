//! `/v1/alerts`: the caller's alert rules and their firings (scope `alerts:write`).

use super::{AlertErrors, api_error, body, owner, path};
use crate::api_error::ApiError;
use crate::auth::Principal;
use crate::query_params::{Params, QueryParams};
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use model::Channel;
use protocol::ErrorCode;
use protocol::alerts::{FiringList, NewRuleBody, RuleBody, RuleList, RulePatchBody};

type Caller = Option<Extension<Principal>>;

#[utoipa::path(
    post,
    path = "/v1/alerts",
    tag = "alerts",
    summary = "Create an alert rule",
    request_body = NewRuleBody,
    responses((status = 201, body = RuleBody), AlertErrors),
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    payload: Result<Json<NewRuleBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let owner = owner(caller)?;
    let request = body(payload, ErrorCode::InvalidRule)?;
    let hub = state.hub().clone();
    let served = move |channel: &Channel| hub.topic(&channel.to_string()).is_some();
    let rule = state
        .alerts()
        .service
        .create_rule(&owner, request, &served)
        .await
        .map_err(api_error)?;
    Ok((StatusCode::CREATED, Json(rule)).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/alerts",
    tag = "alerts",
    summary = "The caller's rules, newest first",
    responses((status = 200, body = RuleList), AlertErrors),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<RuleList>, ApiError> {
    let owner = owner(caller)?;
    QueryParams::new(params, &[])?;
    let rules = state
        .alerts()
        .service
        .list_rules(&owner)
        .await
        .map_err(api_error)?;
    Ok(Json(RuleList { rules }))
}

#[utoipa::path(
    get,
    path = "/v1/alerts/{id}",
    tag = "alerts",
    params(("id" = String, Path, description = "Rule id (alr_…)")),
    responses((status = 200, body = RuleBody), AlertErrors),
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<RuleBody>, ApiError> {
    let owner = owner(caller)?;
    let id = path(id)?;
    let rule = state
        .alerts()
        .service
        .get_rule(&owner, &id)
        .await
        .map_err(api_error)?;
    Ok(Json(rule))
}

#[utoipa::path(
    patch,
    path = "/v1/alerts/{id}",
    tag = "alerts",
    summary = "Rename, pause/resume, or change a rule's options (not its condition)",
    params(("id" = String, Path, description = "Rule id (alr_…)")),
    request_body = RulePatchBody,
    responses((status = 200, body = RuleBody), AlertErrors),
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    payload: Result<Json<RulePatchBody>, JsonRejection>,
) -> Result<Json<RuleBody>, ApiError> {
    let owner = owner(caller)?;
    let id = path(id)?;
    let patch = body(payload, ErrorCode::InvalidRule)?;
    let rule = state
        .alerts()
        .service
        .update_rule(&owner, &id, patch)
        .await
        .map_err(api_error)?;
    Ok(Json(rule))
}

#[utoipa::path(
    delete,
    path = "/v1/alerts/{id}",
    tag = "alerts",
    params(("id" = String, Path, description = "Rule id (alr_…)")),
    responses((status = 204, description = "Deleted"), AlertErrors),
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let owner = owner(caller)?;
    let id = path(id)?;
    state
        .alerts()
        .service
        .delete_rule(&owner, &id)
        .await
        .map_err(api_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/v1/alerts/firings",
    tag = "alerts",
    summary = "The caller's recent firings, newest first (what the alerts channel and webhooks carried)",
    params(
        ("rule" = Option<String>, Query, description = "Only this rule's"),
        ("before" = Option<i64>, Query, description = "Fired strictly before this time (µs): the next page"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Default 100"),
    ),
    responses((status = 200, body = FiringList), AlertErrors),
)]
pub(crate) async fn firings(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<FiringList>, ApiError> {
    let owner = owner(caller)?;
    let query = QueryParams::new(params, &["rule", "before", "limit"])?;
    let limit = query.number("limit", 100, 1000)?;
    let before = match query.params.get("before") {
        Some(text) => Some(text.parse::<i64>().map_err(|_| {
            ApiError::new(
                ErrorCode::BadParam,
                "before must be a time in µs since the epoch",
            )
        })?),
        None => None,
    };
    let rule = query.params.get("rule").map(String::as_str);
    let firings = state
        .alerts()
        .service
        .list_firings(&owner, rule, before, limit)
        .await
        .map_err(api_error)?;
    Ok(Json(FiringList { firings }))
}
