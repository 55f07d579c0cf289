//! `/v1/webhooks`: the caller's webhook endpoints, their secrets and deliveries (scope
//! `alerts:write`).

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
use protocol::ErrorCode;
use protocol::alerts::{
    AttemptBody, DeliveryDetail, DeliveryList, EndpointBody, EndpointList, EndpointPatchBody,
    NewEndpointBody, Redelivered, RotateSecretBody,
};
use store::outbox::DeliveryState;

type Caller = Option<Extension<Principal>>;
type Id = Result<Path<String>, PathRejection>;
type Ids = Result<Path<(String, String)>, PathRejection>;

#[utoipa::path(
    post,
    path = "/v1/webhooks",
    tag = "alerts",
    summary = "Create a webhook endpoint; the response shows its whsec_ secret once",
    request_body = NewEndpointBody,
    responses((status = 201, body = EndpointBody), AlertErrors),
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    payload: Result<Json<NewEndpointBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let owner = owner(caller)?;
    let request = body(payload, ErrorCode::BadRequest)?;
    let endpoint = state
        .alerts()
        .service
        .create_endpoint(&owner, request)
        .await
        .map_err(api_error)?;
    Ok((StatusCode::CREATED, Json(endpoint)).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "alerts",
    summary = "The caller's endpoints with their delivery statistics",
    responses((status = 200, body = EndpointList), AlertErrors),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> Result<Json<EndpointList>, ApiError> {
    let owner = owner(caller)?;
    QueryParams::new(params, &[])?;
    let endpoints = state
        .alerts()
        .service
        .list_endpoints(&owner)
        .await
        .map_err(api_error)?;
    Ok(Json(EndpointList { endpoints }))
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}",
    tag = "alerts",
    summary = "One endpoint: last status, latency, failures",
    params(("id" = String, Path, description = "Endpoint id (whe_…)")),
    responses((status = 200, body = EndpointBody), AlertErrors),
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    id: Id,
) -> Result<Json<EndpointBody>, ApiError> {
    let owner = owner(caller)?;
    let id = path(id)?;
    let endpoint = state
        .alerts()
        .service
        .get_endpoint(&owner, &id)
        .await
        .map_err(api_error)?;
    Ok(Json(endpoint))
}

#[utoipa::path(
    patch,
    path = "/v1/webhooks/{id}",
    tag = "alerts",
    summary = "Change an endpoint's URL, description, limits, or disable it",
    params(("id" = String, Path, description = "Endpoint id (whe_…)")),
    request_body = EndpointPatchBody,
    responses((status = 200, body = EndpointBody), AlertErrors),
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    id: Id,
    payload: Result<Json<EndpointPatchBody>, JsonRejection>,
) -> Result<Json<EndpointBody>, ApiError> {
    let owner = owner(caller)?;
    let id = path(id)?;
    let patch = body(payload, ErrorCode::BadRequest)?;
    let endpoint = state
        .alerts()
        .service
        .update_endpoint(&owner, &id, patch)
        .await
        .map_err(api_error)?;
    Ok(Json(endpoint))
}

#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    tag = "alerts",
    summary = "Delete an endpoint no active or paused rule uses; its pending deliveries become dead",
    params(("id" = String, Path, description = "Endpoint id (whe_…)")),
    responses((status = 204, description = "Deleted"), AlertErrors),
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    id: Id,
) -> Result<StatusCode, ApiError> {
    // Deleting an endpoint is critical: a second factor when the principal is enrolled.
    let totp = crate::auth::admin::totp_caller(caller.as_deref(), &headers)?;
    let owner = owner(caller)?;
    let id = path(id)?;
    let service = state.auth().service.clone();
    tokio::task::spawn_blocking(move || {
        crate::auth::admin::second_factor(&service, &totp, "webhook.delete")
    })
    .await
    .map_err(|_| ApiError::new(ErrorCode::Internal, "internal error"))?
    .map_err(crate::auth::admin::service_error)?;
    state
        .alerts()
        .service
        .delete_endpoint(&owner, &id)
        .await
        .map_err(api_error)?;
    state.alerts().metrics.remove_endpoint(&id);
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/rotate-secret",
    tag = "alerts",
    summary = "A new secret, shown once; deliveries carry both signatures during the overlap",
    params(("id" = String, Path, description = "Endpoint id (whe_…)")),
    request_body = RotateSecretBody,
    responses((status = 200, body = EndpointBody), AlertErrors),
)]
pub(crate) async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    id: Id,
    payload: Option<Json<RotateSecretBody>>,
) -> Result<Json<EndpointBody>, ApiError> {
    let owner = owner(caller)?;
    let id = path(id)?;
    let request = payload.map(|Json(b)| b).unwrap_or_default();
    let endpoint = state
        .alerts()
        .service
        .rotate_secret(&owner, &id, request)
        .await
        .map_err(api_error)?;
    Ok(Json(endpoint))
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    tag = "alerts",
    summary = "Deliveries to an endpoint, newest first (state=dead: the dead letters)",
    params(
        ("id" = String, Path, description = "Endpoint id (whe_…)"),
        ("state" = Option<String>, Query, description = "pending, delivered or dead"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "Default 100"),
    ),
    responses((status = 200, body = DeliveryList), AlertErrors),
)]
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    id: Id,
    params: Params,
) -> Result<Json<DeliveryList>, ApiError> {
    let owner = owner(caller)?;
    let id = path(id)?;
    let query = QueryParams::new(params, &["state", "limit"])?;
    let limit = query.number("limit", 100, 1000)?;
    let filter = match query.params.get("state") {
        Some(text) => Some(
            text.parse::<DeliveryState>()
                .map_err(|e| ApiError::new(ErrorCode::BadParam, format!("state: {e}")))?,
        ),
        None => None,
    };
    let deliveries = state
        .alerts()
        .service
        .list_deliveries(&owner, &id, filter, limit)
        .await
        .map_err(api_error)?;
    Ok(Json(DeliveryList { deliveries }))
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries/{delivery}",
    tag = "alerts",
    summary = "One delivery and every attempt (status, error, latency, next attempt)",
    params(
        ("id" = String, Path, description = "Endpoint id (whe_…)"),
        ("delivery" = String, Path, description = "Delivery id (dlv_…)"),
    ),
    responses((status = 200, body = DeliveryDetail), AlertErrors),
)]
pub(crate) async fn delivery(
    State(state): State<AppState>,
    caller: Caller,
    ids: Ids,
) -> Result<Json<DeliveryDetail>, ApiError> {
    let owner = owner(caller)?;
    let (id, delivery) = path(ids)?;
    let (delivery, attempts) = state
        .alerts()
        .service
        .get_delivery(&owner, &id, &delivery)
        .await
        .map_err(api_error)?;
    let attempts = attempts
        .into_iter()
        .map(|a| AttemptBody {
            attempt: a.attempt,
            started_at: a.started_at,
            finished_at: a.finished_at,
            status: a.status,
            error: a.error,
            latency_us: a.latency_us,
            next_attempt_at: a.next_attempt_at,
        })
        .collect();
    Ok(Json(DeliveryDetail { delivery, attempts }))
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
    tag = "alerts",
    summary = "Send a dead (or delivered) delivery again, with the same webhook-id",
    params(
        ("id" = String, Path, description = "Endpoint id (whe_…)"),
        ("delivery" = String, Path, description = "Delivery id (dlv_…)"),
    ),
    responses((status = 200, body = Redelivered), AlertErrors),
)]
pub(crate) async fn redeliver_one(
    State(state): State<AppState>,
    caller: Caller,
    ids: Ids,
) -> Result<Json<Redelivered>, ApiError> {
    let owner = owner(caller)?;
    let (id, delivery) = path(ids)?;
    let redelivered = state
        .alerts()
        .service
        .redeliver(&owner, &id, Some(&delivery))
        .await
        .map_err(api_error)?;
    Ok(Json(Redelivered { redelivered }))
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/redeliver",
    tag = "alerts",
    summary = "Send every dead delivery of the endpoint again",
    params(("id" = String, Path, description = "Endpoint id (whe_…)")),
    responses((status = 200, body = Redelivered), AlertErrors),
)]
pub(crate) async fn redeliver_dead(
    State(state): State<AppState>,
    caller: Caller,
    id: Id,
) -> Result<Json<Redelivered>, ApiError> {
    let owner = owner(caller)?;
    let id = path(id)?;
    let redelivered = state
        .alerts()
        .service
        .redeliver(&owner, &id, None)
        .await
        .map_err(api_error)?;
    Ok(Json(Redelivered { redelivered }))
}
