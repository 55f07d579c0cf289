//! The REST API: instruments, ticker, book, health and metrics (history is in
//! `rest_history`).
//!
//! Every error is JSON `{"code": "...", "message": "..."}` with the status of its code.
//! Unknown query parameters are rejected, so a typo never silently falls back to a default.
//! Each handler carries its OpenAPI description (`#[utoipa::path]`), next to the code.

use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use model::{Channel, ChannelKind, Symbol, Venue};
use protocol::rest::{BookResponse, InstrumentsResponse, TickerResponse};
use protocol::{ErrorBody, ErrorCode, WireLevel};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use utoipa::ToSchema;

/// Book levels per side returned when `depth` is not given.
pub const DEFAULT_DEPTH: usize = 50;
/// Largest `depth` accepted.
pub const MAX_DEPTH: usize = 5000;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            code: self.code,
            message: self.message,
            id: None,
            channel: None,
        };
        (status, Json(body)).into_response()
    }
}

pub(crate) type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Validated query parameters.
pub(crate) struct Query2 {
    pub(crate) params: HashMap<String, String>,
}

impl Query2 {
    pub(crate) fn new(params: Params, allowed: &[&str]) -> Result<Self, ApiError> {
        let Query(pairs) = params.map_err(|e| {
            ApiError::new(ErrorCode::BadParam, format!("malformed query string: {e}"))
        })?;
        let mut params = HashMap::with_capacity(pairs.len());
        for (key, value) in pairs {
            if params.contains_key(&key) {
                let shown: String = key.chars().take(32).collect();
                return Err(ApiError::new(
                    ErrorCode::BadParam,
                    format!("parameter {shown:?} given more than once"),
                ));
            }
            params.insert(key, value);
        }
        if let Some(unknown) = params.keys().find(|k| !allowed.contains(&k.as_str())) {
            let shown: String = unknown.chars().take(32).collect();
            return Err(ApiError::new(
                ErrorCode::BadParam,
                format!(
                    "unknown parameter {shown:?}; allowed: {}",
                    allowed.join(", ")
                ),
            ));
        }
        Ok(Self { params })
    }

    fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.params
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| ApiError::new(ErrorCode::BadParam, format!("missing parameter {name}")))
    }

    fn instrument(&self) -> Result<(Venue, Symbol), ApiError> {
        let venue = Venue::new(self.required("venue")?)
            .map_err(|e| ApiError::new(ErrorCode::BadParam, e.to_string()))?;
        let symbol = Symbol::new(self.required("symbol")?)
            .map_err(|e| ApiError::new(ErrorCode::BadParam, e.to_string()))?;
        Ok((venue, symbol))
    }

    pub(crate) fn number(&self, name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        let Some(text) = self.params.get(name) else {
            return Ok(default);
        };
        match text.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::new(
                ErrorCode::BadParam,
                format!("{name} must be an integer from 1 to {max}"),
            )),
        }
    }
}

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
    Query2::new(params, &[])?;
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
    ),
)]
pub(crate) async fn ticker(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<impl Serialize>, ApiError> {
    let (venue, symbol) = Query2::new(params, &["venue", "symbol"])?.instrument()?;
    let entry = state
        .market()
        .get(&venue, &symbol)
        .ok_or_else(|| unknown_instrument(&venue, &symbol))?;
    let ticker = entry.aggregates.lock().ticker.ticker().clone();
    Ok(Json(TickerResponse {
        venue,
        symbol,
        ticker,
    }))
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
    let query = Query2::new(params, &["venue", "symbol", "depth"])?;
    let (venue, symbol) = query.instrument()?;
    let depth = query.number("depth", DEFAULT_DEPTH, MAX_DEPTH)?;
    let channel = Channel::new(ChannelKind::Book, venue.clone(), symbol.clone());
    let handle = state
        .hub()
        .get(&channel)
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
}

#[derive(Serialize, ToSchema)]
struct VenueReadiness {
    books_live: usize,
    books_total: usize,
}

/// Readiness: not shutting down and every venue has at least one live book.
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
        for instrument in instruments.iter().filter(|i| i.venue.as_str() == venue) {
            total += 1;
            let channel = Channel::new(
                ChannelKind::Book,
                instrument.venue.clone(),
                instrument.symbol.clone(),
            );
            if state
                .hub()
                .get(&channel)
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
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Readiness { ready, venues })).into_response()
}

/// Counters, gauges and histograms in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String)),
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = state.metrics().render(state.hub());
    crate::history::render_metrics(state.history().map(|h| &**h), &mut body);
    state.alerts().metrics.render(&mut body);
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
