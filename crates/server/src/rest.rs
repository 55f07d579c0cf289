//! The REST API: instruments, ticker, book, health and metrics (history is in
//! `rest_history`).
//!
//! Every error is JSON `{"code": "...", "message": "..."}` with the status of its code.
//! Unknown query parameters are rejected, so a typo never silently falls back to a default.
//! Each handler carries its OpenAPI description (`#[utoipa::path]`), next to the code.

use crate::api_error::ApiError;
use crate::query_params::{Params, QueryParams};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use model::{Channel, ChannelKind, Symbol, Venue};
use protocol::rest::{BookResponse, InstrumentsResponse, TickerResponse};
use protocol::{ErrorBody, ErrorCode, WireLevel};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Book levels per side returned when `depth` is not given.
pub const DEFAULT_DEPTH: usize = 50;
/// Largest `depth` accepted.
pub const MAX_DEPTH: usize = 5000;

fn unknown_instrument(venue: &Venue, symbol: &Symbol) -> ApiError {
    ApiError::new(
        ErrorCode::UnknownInstrument,
        format!("{venue} {symbol} is not served; see GET /v1/instruments"),
    )
}

/// Every instrument the gateway serves.
#[utoipa::path(
    get,
    path = "/v1/instruments",
    tag = "market",
    responses(
        (status = 200, body = InstrumentsResponse),
        (status = 400, description = "bad_param: unknown parameter", body = ErrorBody),
    ),
)]
pub(crate) async fn instruments(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<impl Serialize>, ApiError> {
    QueryParams::new(params, &[])?;
    Ok(Json(InstrumentsResponse {
        instruments: state.market().instruments(),
    }))
}

/// Best bid/ask and rolling 24 h statistics of one instrument.
#[utoipa::path(
    get,
    path = "/v1/ticker",
    tag = "market",
    params(
        ("venue" = String, Query, description = "Venue, e.g. binance"),
        ("symbol" = String, Query, description = "Normalized symbol, e.g. BTC-USDT"),
    ),
    responses(
        (status = 200, body = TickerResponse),
        (status = 400, description = "bad_param", body = ErrorBody),
        (status = 404, description = "unknown_instrument", body = ErrorBody),
        (status = 503, description = "unavailable: on a cluster edge, no ticker replicated yet", body = ErrorBody),
    ),
)]
pub(crate) async fn ticker(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<impl Serialize>, ApiError> {
    let (venue, symbol) = QueryParams::new(params, &["venue", "symbol"])?.instrument()?;
    let entry = state
        .market()
        .get(&venue, &symbol)
        .ok_or_else(|| unknown_instrument(&venue, &symbol))?;
    let ticker = match state.bus() {
        // An edge computes no aggregates: its ticker is the replicated channel's latest value
        // (what a WebSocket subscriber joins with).
        Some(crate::cluster_node::BusStatus::Edge { .. }) => {
            replicated_ticker(&state, &venue, &symbol)?
        }
        _ => entry.aggregates.lock().ticker.ticker().clone(),
    };
    Ok(Json(TickerResponse {
        venue,
        symbol,
        ticker,
    }))
}

/// The latest message of a replicated `ticker:` channel (on an edge).
fn replicated_ticker(
    state: &AppState,
    venue: &Venue,
    symbol: &Symbol,
) -> Result<model::Ticker, ApiError> {
    let channel = Channel::new(ChannelKind::Ticker, venue.clone(), symbol.clone());
    let not_yet = || {
        ApiError::new(
            ErrorCode::Unavailable,
            format!("no ticker replicated on {channel} yet; retry shortly"),
        )
    };
    let topic = state
        .hub()
        .topic(&channel.to_string())
        .ok_or_else(not_yet)?;
    let frame = topic.subscribe(false).initial.ok_or_else(not_yet)?;
    match serde_json::from_str::<protocol::ServerMessage>(frame.as_str()) {
        Ok(protocol::ServerMessage::Snapshot(d)) => d.ticker.ok_or_else(not_yet),
        _ => {
            tracing::warn!(channel = %channel, "latest frame of a replicated ticker did not parse");
            Err(not_yet())
        }
    }
}

/// A snapshot of one order book, in the same `seq` space as the `book` WebSocket channel.
#[utoipa::path(
    get,
    path = "/v1/book",
    tag = "market",
    params(
        ("venue" = String, Query, description = "Venue, e.g. binance"),
        ("symbol" = String, Query, description = "Normalized symbol, e.g. BTC-USDT"),
        ("depth" = Option<u32>, Query, minimum = 1, maximum = 5000, description = "Levels per side (default 50)"),
    ),
    responses(
        (status = 200, body = BookResponse),
        (status = 400, description = "bad_param", body = ErrorBody),
        (status = 404, description = "unknown_instrument", body = ErrorBody),
        (status = 503, description = "book_unavailable: the book is being rebuilt", body = ErrorBody),
    ),
)]
pub(crate) async fn book(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<impl Serialize>, ApiError> {
    let query = QueryParams::new(params, &["venue", "symbol", "depth"])?;
    let (venue, symbol) = query.instrument()?;
    let depth = query.number("depth", DEFAULT_DEPTH, MAX_DEPTH)?;
    let channel = Channel::new(ChannelKind::Book, venue.clone(), symbol.clone());
    let handle = state
        .hub()
        .topic(&channel.to_string())
        .ok_or_else(|| unknown_instrument(&venue, &symbol))?;
    let view = handle
        .book_view(depth)
        .ok_or_else(|| unknown_instrument(&venue, &symbol))?;
    if !view.live {
        return Err(ApiError::new(
            ErrorCode::BookUnavailable,
            format!("the {channel} book is being rebuilt; retry shortly"),
        ));
    }
    Ok(Json(BookResponse {
        channel: channel.to_string(),
        seq: view.seq,
        epoch: view.epoch.to_string(),
        ts: view.ts,
        recv_ts: view.recv_ts,
        checksum: view.checksum,
        bids: view.bids.into_iter().map(WireLevel::from).collect(),
        asks: view.asks.into_iter().map(WireLevel::from).collect(),
    }))
}

#[derive(Serialize, ToSchema)]
struct Health {
    /// Always `ok` while the process serves HTTP.
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub(crate) async fn healthz() -> Json<impl Serialize> {
    Json(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
struct Readiness {
    ready: bool,
    /// Per configured venue: live books out of the books served.
    venues: BTreeMap<String, VenueReadiness>,
    /// The shared nonce store (`[cluster] redis_url`), when there is one: `"ok"` or
    /// `"unavailable"` (then signed requests are refused and the node is not ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce_store: Option<&'static str>,
    /// The cluster's key rate limits and WebSocket caps (`[cluster] redis_url`), when shared:
    /// `"ok"`, or `"unavailable"` when Redis does not answer or this node's cap lease has
    /// lapsed (then keyed requests and sessions are refused and the node is not ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    shared_limits: Option<&'static str>,
    key_store: KeyStoreReadiness,
    /// The shared history store (`[cluster] postgres_url`), when history is kept there: `"ok"`
    /// or `"unavailable"` (then `/v1/trades` and `/v1/candles` answer 503 `unavailable`, the
    /// writer holds its batch, and the node is not ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    history_store: Option<&'static str>,
    /// The market-data bus of an ingest or edge node (absent on a single node); the node is
    /// not ready while it is disconnected.
    #[serde(skip_serializing_if = "Option::is_none")]
    bus: Option<BusReadiness>,
}

/// The key store and audit log: where they are, whether they answer, and how key changes of
/// other nodes arrive.
#[derive(Serialize, ToSchema)]
struct KeyStoreReadiness {
    /// `sqlite` (embedded, `server.data_dir`) or `postgres` (`[cluster] postgres_url`).
    backend: &'static str,
    /// `ok`, or `unavailable` (then the node is not ready: keys cannot be checked or changed).
    status: &'static str,
    /// `notify` (PostgreSQL LISTEN is up: changes arrive at once) or `polling` (every
    /// `auth.poll_interval_ms`; always so on SQLite). Polling alone does not make a node unready.
    changes: &'static str,
}

#[derive(Serialize, ToSchema)]
struct BusReadiness {
    /// `ingest` or `edge`.
    role: &'static str,
    /// `connected` or `disconnected` (NATS).
    state: &'static str,
    /// Channels forwarded (ingest) or replicated (edge).
    channels: u64,
    /// On an ingest: the venues whose lease it holds (it forwards only those; empty on a
    /// standby).
    #[serde(skip_serializing_if = "Option::is_none")]
    venues_owned: Option<Vec<String>>,
    /// On an edge: the exclusive tasks it runs because it holds their lease
    /// (`alerts-<partition>`: the alert partitions it evaluates; empty on a standby).
    #[serde(skip_serializing_if = "Option::is_none")]
    tasks: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
struct VenueReadiness {
    books_live: usize,
    books_total: usize,
}

/// Readiness: not shutting down, every venue has at least one live book, the shared nonce
/// store (if any) answers, and the market-data bus (ingest, edge) is connected.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready (same body)", body = Readiness),
    ),
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let mut venues = BTreeMap::new();
    let mut ready = !state.shutdown().is_cancelled();
    let instruments = state.market().instruments();
    // EVM chains have no books: they do not gate readiness (their state is on
    // `status:{chain}`, docs/onchain.md).
    let book_venues = (state.config().venues.iter())
        .filter(|v| v.kind().is_none_or(connectors::venue::VenueKind::has_books));
    for venue in book_venues.map(|v| v.name.as_str()) {
        let (mut live, mut total) = (0, 0);
        // An edge learns no instruments (it runs no connector): its books are the replicas.
        let books: Vec<String> = match state.bus() {
            Some(crate::cluster_node::BusStatus::Edge { .. }) => {
                let prefix = format!("book:{venue}:");
                (state.hub().names().into_iter())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            }
            _ => (instruments.iter().filter(|i| i.venue.as_str() == venue))
                .map(|i| {
                    Channel::new(ChannelKind::Book, i.venue.clone(), i.symbol.clone()).to_string()
                })
                .collect(),
        };
        for name in books {
            total += 1;
            if state
                .hub()
                .topic(&name)
                .and_then(|h| h.book_view(0))
                .is_some_and(|v| v.live)
            {
                live += 1;
            }
        }
        ready &= live > 0;
        venues.insert(
            venue.to_string(),
            VenueReadiness {
                books_live: live,
                books_total: total,
            },
        );
    }
    let nonce_store = match state.auth().replay.store() {
        ::auth::replay::Nonces::Local(_) => None,
        ::auth::replay::Nonces::Shared(_) => Some(match state.auth().replay.ready().await {
            Ok(()) => "ok",
            Err(error) => {
                tracing::warn!(error = %error, "not ready: the shared nonce store is unavailable");
                ready = false;
                "unavailable"
            }
        }),
    };
    let shared_limits = match (state.auth().index.shared_budget(), &state.auth().ws_caps) {
        (Some(gcra), Some(caps)) => Some(match gcra.ping().await {
            Ok(()) if caps.lease_current() => "ok",
            Ok(()) => {
                tracing::warn!("not ready: this node's WebSocket cap lease in Redis has lapsed");
                ready = false;
                "unavailable"
            }
            Err(error) => {
                tracing::warn!(error = %error.0, "not ready: the shared rate limiter is unavailable");
                ready = false;
                "unavailable"
            }
        }),
        _ => None,
    };
    let key_store = key_store_readiness(&state).await;
    ready &= key_store.status == "ok";
    let history_store = history_store_readiness(&state).await;
    ready &= history_store.is_none_or(|s| s == "ok");
    let bus = state.bus().map(|bus| {
        let connected = bus.connected();
        ready &= connected;
        BusReadiness {
            role: bus.role(),
            state: if connected {
                "connected"
            } else {
                "disconnected"
            },
            channels: bus.channels(),
            venues_owned: bus.owned(),
            tasks: bus.tasks(),
        }
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        ready,
        venues,
        nonce_store,
        shared_limits,
        key_store,
        history_store,
        bus,
    };
    (status, Json(body)).into_response()
}

/// Probes the PostgreSQL history store (one trivial query); `None` when history is not there.
async fn history_store_readiness(state: &AppState) -> Option<&'static str> {
    let history = state.history()?.clone();
    history.postgres.as_ref()?;
    let probe = tokio::task::spawn_blocking(move || history.probe());
    Some(
        match tokio::time::timeout(KEY_STORE_READY_TIMEOUT, probe).await {
            Ok(Ok(Ok(()))) => "ok",
            Ok(Ok(Err(error))) => {
                tracing::warn!(error = %error, "not ready: the history store is unavailable");
                "unavailable"
            }
            Ok(Err(_)) | Err(_) => {
                tracing::warn!("not ready: the history store did not answer in time");
                "unavailable"
            }
        },
    )
}

/// How long `/readyz` waits for the key store (or the history store) to answer.
const KEY_STORE_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Asks the key store for the audit head (one small read) to see that it answers.
async fn key_store_readiness(state: &AppState) -> KeyStoreReadiness {
    let status = &state.auth().key_store;
    let audit = state.auth().service.audit().clone();
    let probe = tokio::task::spawn_blocking(move || audit.head());
    let answered = match tokio::time::timeout(KEY_STORE_READY_TIMEOUT, probe).await {
        Ok(Ok(Ok(_))) => true,
        Ok(Ok(Err(error))) => {
            tracing::warn!(error = %error, "not ready: the key store is unavailable");
            false
        }
        Ok(Err(_)) | Err(_) => {
            tracing::warn!("not ready: the key store did not answer in time");
            false
        }
    };
    KeyStoreReadiness {
        backend: status.backend.as_str(),
        status: if answered { "ok" } else { "unavailable" },
        changes: status.changes(),
    }
}

/// Counters, gauges and histograms in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String)),
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = state.metrics().render(state.hub().as_ref());
    crate::history::render_metrics(state.history().map(|h| &**h), &mut body);
    state.alerts().metrics.render(&mut body);
    state.sockets().render(&mut body);
    crate::metrics::render_anomalies(&state.auth().anomaly.figures(), &mut body);
    state.anonymous().render(&mut body);
    state.pending_upgrades().render(&mut body);
    state.auth().render_redis(&mut body);
    state.auth().key_store.render(&mut body);
    crate::cluster_node::render_metrics(state.bus(), &mut body);
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route; see docs/protocol.md")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}
