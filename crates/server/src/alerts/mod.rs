//! Alerts in the gateway: the REST routes (`rules`: `/v1/alerts`, `webhooks`:
//! `/v1/webhooks`, both scope `alerts:write`), and the tasks behind them: one evaluator per
//! venue plus one for cross-venue rules, and the webhook delivery worker.
//!
//! The caller's principal owns what it creates (a rotated key keeps its principal, so it keeps
//! its rules). Errors map to stable codes; an internal one is logged, never sent.

pub(crate) mod rules;
pub(crate) mod webhooks;

use crate::api_error::ApiError;
use crate::auth::Principal;
use ::alerts::clock::Clock;
use ::alerts::evaluator::{Context, Evaluator};
use ::alerts::metrics::AlertMetrics;
use ::alerts::rule::CROSS_PARTITION;
use ::alerts::webhook::worker::Worker;
use ::alerts::{AlertError, AlertService};
use auth::KeyRing;
use axum::extract::Extension;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Json, Path};
use hub::Bus;
use protocol::ErrorCode;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What the routes and `/metrics` share.
#[derive(Debug)]
pub struct AlertsState {
    pub service: AlertService,
    pub metrics: Arc<AlertMetrics>,
}

/// The running alert tasks.
#[derive(Debug, Default)]
pub struct AlertTasks {
    pub tasks: Vec<JoinHandle<()>>,
}

/// Opens the alert store (in `tickgate.db`) and, when `[alerts] enabled`, starts an evaluator
/// per partition (each venue in `venues`, and `cross`) and the delivery worker.
pub(crate) async fn start(
    config: &crate::config::Config,
    hub: Arc<dyn Bus>,
    ring: KeyRing,
    venues: Vec<String>,
    shutdown: &CancellationToken,
) -> Result<(Arc<AlertsState>, AlertTasks), crate::ServerError> {
    let data_dir = config.server.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || {
        store::alerts_sqlite::SqliteAlertStore::open_dir(&data_dir)
    })
    .await
    .map_err(|e| crate::ServerError::Alerts(e.to_string()))??;
    let store: Arc<dyn ::alerts::Store> = Arc::new(store);
    let settings = &config.alerts;
    let (rules_changed, deliveries) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let clock = Clock::new();
    let metrics = Arc::new(AlertMetrics::default());
    let service = AlertService::new(
        store.clone(),
        ring.clone(),
        settings.clone(),
        rules_changed.clone(),
        deliveries.clone(),
        clock,
    );
    let mut tasks = AlertTasks::default();
    if settings.enabled {
        let cx = Context {
            store: store.clone(),
            hub,
            metrics: metrics.clone(),
            rules_changed,
            deliveries: deliveries.clone(),
            clock,
            poll: std::time::Duration::from_millis(settings.poll_interval_ms),
        };
        let mut partitions = venues;
        partitions.sort();
        partitions.dedup();
        partitions.push(CROSS_PARTITION.to_string());
        for partition in &partitions {
            let evaluator = Evaluator::new(partition.clone(), cx.clone());
            tasks
                .tasks
                .push(tokio::spawn(evaluator.run(shutdown.clone())));
        }
        let worker = Worker::new(
            store,
            ring,
            settings.delivery.clone(),
            metrics.clone(),
            deliveries,
            clock,
        )
        .map_err(crate::ServerError::Alerts)?;
        tasks.tasks.push(tokio::spawn(worker.run(shutdown.clone())));
        tracing::info!(evaluators = partitions.len(), "alerts ready");
    }
    Ok((Arc::new(AlertsState { service, metrics }), tasks))
}

/// The error response of an alert operation.
pub(crate) fn api_error(error: AlertError) -> ApiError {
    if error.is_internal() {
        tracing::error!(error = %error, "alert operation failed");
        return ApiError::new(ErrorCode::Internal, "internal error; see the gateway log");
    }
    ApiError::new(
        error.code(),
        auth::token::redact(&error.to_string()).into_owned(),
    )
}

/// The authenticated caller's principal (the routes' guard ran already).
pub(crate) fn owner(principal: Option<Extension<Principal>>) -> Result<String, ApiError> {
    match principal.as_deref() {
        Some(Principal::Key(key)) => Ok(key.view.principal.clone()),
        _ => Err(ApiError::new(
            ErrorCode::MissingCredentials,
            "alerts need an API key with the scope alerts:write",
        )),
    }
}

/// A JSON body, or `code` with serde's reason.
pub(crate) fn body<T>(
    body: Result<Json<T>, JsonRejection>,
    code: ErrorCode,
) -> Result<T, ApiError> {
    body.map(|Json(v)| v).map_err(|e| {
        ApiError::new(
            code,
            auth::token::redact(&format!("invalid JSON body: {}", e.body_text())).into_owned(),
        )
    })
}

/// Path segments (ids): an unknown shape answers like an unknown id.
pub(crate) fn path<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(v)| v)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))
}

/// The errors every alert route can answer, described once for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only described, never built: handlers answer through `ApiError`.
pub(crate) enum AlertErrors {
    /// `bad_request`, `bad_param`, `invalid_rule`, `bad_threshold`, `invalid_channel`,
    /// `invalid_url`, `address_refused`, `unresolvable_host`.
    #[response(status = 400)]
    BadRequest(protocol::ErrorBody),
    /// `missing_credentials`, `malformed_key`, `unknown_key`, `key_revoked`, `key_expired`,
    /// signature errors.
    #[response(status = 401)]
    Unauthenticated(protocol::ErrorBody),
    /// `insufficient_scope` (the key lacks `alerts:write`), `signature_required`.
    #[response(status = 403)]
    Forbidden(protocol::ErrorBody),
    /// `unknown_rule`, `unknown_endpoint`, `unknown_delivery`, `unknown_channel`.
    #[response(status = 404)]
    NotFound(protocol::ErrorBody),
    /// `conflict`: a concurrent change, a final rule, a pending delivery.
    #[response(status = 409)]
    Conflict(protocol::ErrorBody),
    /// `too_many_rules`, `too_many_endpoints`, `rate_limited`.
    #[response(status = 429)]
    TooMany(protocol::ErrorBody),
}
