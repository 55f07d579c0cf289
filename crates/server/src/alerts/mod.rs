//! Alerts in the gateway: the REST routes (`rules`: `/v1/alerts`, `webhooks`:
//! `/v1/webhooks`, both scope `alerts:write`), and the tasks behind them: one evaluator per
//! venue plus one for cross-venue rules (in a cluster, one per partition across the cluster:
//! see `start`), and the webhook delivery worker.
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

/// Where this node's evaluators run (see [`start`]).
#[derive(Debug, Clone)]
pub(crate) enum Placement {
    /// Every partition, here (a single node, or a cluster without a shared store).
    Local,
    /// Cluster with a shared store, on an edge: each partition's evaluator runs while this
    /// node holds the partition's lease (one edge of the cluster at a time).
    Leased(Arc<cluster::exclusive::Exclusive>),
    /// Cluster with a shared store, on an ingest: no evaluator (the edges run them).
    None,
}

/// Where this node's evaluators run: [`Placement::Local`] on a single node and in a cluster
/// without a shared store (each node then evaluates the rules of its own `tickgate.db`, and
/// says so at start), otherwise leased on an edge and none on an ingest.
pub(crate) fn placement(
    config: &crate::config::Config,
    bus: Option<&crate::cluster_node::BusStatus>,
) -> Placement {
    let Some(bus) = bus else {
        return Placement::Local;
    };
    if config.cluster.postgres().is_none() {
        if config.alerts.enabled {
            tracing::warn!(
                "alerts in a cluster without cluster.postgres_url: this node keeps its own rules \
                 and evaluates them itself; set postgres_url to share rules and the outbox and \
                 evaluate each rule once"
            );
        }
        return Placement::Local;
    }
    match bus {
        crate::cluster_node::BusStatus::Edge { exclusive, .. } => {
            Placement::Leased(exclusive.clone())
        }
        crate::cluster_node::BusStatus::Ingest { .. } => Placement::None,
    }
}

/// The name of a partition's exclusive task (its lease key is `task.alerts-<partition>`).
pub fn task_name(partition: &str) -> String {
    format!("alerts-{partition}")
}

/// Opens the alert store ([`crate::stores::open_alerts_blocking`]: `tickgate.db`, or the
/// cluster's PostgreSQL) and, when `[alerts] enabled`, starts the evaluators of the partitions
/// (each venue in `venues`, and `cross`) as `placement` says, and the delivery worker.
///
/// In a cluster with a shared store (`cluster.postgres_url`) the evaluators run on the
/// **edges**: an edge replicates every venue from the bus, `book:all` included, and reads
/// exactly the frames (seq, epoch) its clients get, whereas an ingest may run only some venues
/// and a standby ingest reads its own connectors. Each partition's evaluator is an exclusive
/// task ([`cluster::exclusive`]): of the edges with `[alerts] enabled`, the one holding the
/// partition's lease evaluates it, and another takes over within the lease TTL when it dies.
/// The delivery worker runs on every node with `[alerts] enabled`: claims on the shared outbox
/// are exclusive (`store::outbox_postgres`), so a delivery is never sent by two nodes at once.
pub(crate) async fn start(
    config: &crate::config::Config,
    hub: Arc<dyn Bus>,
    ring: KeyRing,
    venues: Vec<String>,
    placement: Placement,
    shutdown: &CancellationToken,
) -> Result<(Arc<AlertsState>, AlertTasks), crate::ServerError> {
    let owned = config.clone();
    let store = tokio::task::spawn_blocking(move || crate::stores::open_alerts_blocking(&owned))
        .await
        .map_err(|e| crate::ServerError::Alerts(e.to_string()))?
        .map_err(|e| match config.cluster.postgres() {
            // The store's errors never contain the URL.
            Some(_) => crate::ServerError::Alerts(format!("cluster.postgres_url: {e}")),
            None => e.into(),
        })?;
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
            match &placement {
                Placement::Local => {
                    let evaluator = Evaluator::new(partition.clone(), cx.clone());
                    tasks
                        .tasks
                        .push(tokio::spawn(evaluator.run(shutdown.clone())));
                }
                Placement::Leased(exclusive) => {
                    let (partition, cx) = (partition.clone(), cx.clone());
                    let name = task_name(&partition);
                    let run = move |stop: CancellationToken| {
                        let (partition, cx) = (partition.clone(), cx.clone());
                        async move {
                            let metrics = cx.metrics.clone();
                            tracing::info!(partition = %partition, "evaluating this alert partition");
                            Evaluator::new(partition.clone(), cx).run(stop).await;
                            // Another node evaluates it now: this one holds no rules of it.
                            metrics.set_rules(&partition, 0);
                        }
                    };
                    tasks
                        .tasks
                        .push(exclusive.spawn(&name, run, shutdown.clone()));
                }
                Placement::None => {}
            }
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
        match placement {
            Placement::Local => tracing::info!(evaluators = partitions.len(), "alerts ready"),
            Placement::Leased(_) => tracing::info!(
                partitions = partitions.len(),
                "alerts ready: each partition is evaluated by the edge holding its lease"
            ),
            Placement::None => tracing::info!(
                "alerts ready: delivery worker only (in a cluster the edges evaluate the rules)"
            ),
        }
    }
    Ok((Arc::new(AlertsState { service, metrics }), tasks))
}

/// The error response of an alert operation.
pub(crate) fn api_error(error: AlertError) -> ApiError {
    if error.is_unavailable() {
        tracing::warn!(error = %error, "alert store unavailable");
        return ApiError::new(
            ErrorCode::Unavailable,
            "the alert store is unavailable; retry shortly",
        );
    }
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
    /// `unavailable`: the cluster's alert store (PostgreSQL) cannot be reached; retry.
    #[response(status = 503)]
    Unavailable(protocol::ErrorBody),
}
