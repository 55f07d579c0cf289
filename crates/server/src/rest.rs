//! The REST API: instruments, ticker, book, candles, health and metrics.
//!
//! Every error is JSON `{"code": "...", "message": "..."}` with the status of its code.
//! Unknown query parameters are rejected, so a typo never silently falls back to a default.

use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use model::{Channel, ChannelKind, Instrument, Interval, Symbol, Venue};
use protocol::{CandleBody, ErrorBody, ErrorCode, WireLevel};
use serde::Serialize;
use std::collections::HashMap;

/// Book levels per side returned when `depth` is not given.
pub const DEFAULT_DEPTH: usize = 50;
/// Largest `depth` accepted.
pub const MAX_DEPTH: usize = 5000;
/// Candles returned when `limit` is not given, and the largest `limit` accepted.
pub const DEFAULT_CANDLES: usize = 100;
pub const MAX_CANDLES: usize = 1000;

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

type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Validated query parameters.
struct Query2 {
    params: HashMap<String, String>,
}

impl Query2 {
    fn new(params: Params, allowed: &[&str]) -> Result<Self, ApiError> {
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

    fn number(&self, name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
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

#[derive(Serialize)]
struct InstrumentsResponse {
    instruments: Vec<Instrument>,
}

pub(crate) async fn instruments(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<impl Serialize>, ApiError> {
    Query2::new(params, &[])?;
    Ok(Json(InstrumentsResponse {
        instruments: state.market().instruments(),
    }))
}

#[derive(Serialize)]
struct TickerResponse {
    venue: Venue,
    symbol: Symbol,
    ticker: model::Ticker,
}

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

#[derive(Serialize)]
struct BookResponse {
    channel: String,
    seq: u64,
    epoch: String,
    ts: i64,
    recv_ts: i64,
    checksum: u32,
    bids: Vec<WireLevel>,
    asks: Vec<WireLevel>,
}

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

#[derive(Serialize)]
struct CandlesResponse {
    venue: Venue,
    symbol: Symbol,
    interval: Interval,
    candles: Vec<CandleBody>,
}

pub(crate) async fn candles(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<impl Serialize>, ApiError> {
    let query = Query2::new(params, &["venue", "symbol", "interval", "limit"])?;
    let (venue, symbol) = query.instrument()?;
    let interval: Interval = query
        .params
        .get("interval")
        .map_or(Ok(Interval::M1), |text| text.parse())
        .map_err(|e: model::ModelError| ApiError::new(ErrorCode::UnknownInterval, e.to_string()))?;
    let limit = query.number("limit", DEFAULT_CANDLES, MAX_CANDLES)?;
    let entry = state
        .market()
        .get(&venue, &symbol)
        .ok_or_else(|| unknown_instrument(&venue, &symbol))?;
    let recent = entry.aggregates.lock().candles.recent(interval);
    let skip = recent.len().saturating_sub(limit);
    let candles = recent[skip..].iter().map(CandleBody::from).collect();
    Ok(Json(CandlesResponse {
        venue,
        symbol,
        interval,
        candles,
    }))
}

pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Ready when not shutting down and every venue has at least one live book.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let mut venues = serde_json::Map::new();
    let mut ready = !state.shutdown().is_cancelled();
    let instruments = state.market().instruments();
    for venue in state.config().venues.iter().map(|v| v.name.as_str()) {
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
            serde_json::json!({"books_live": live, "books_total": total}),
        );
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({"ready": ready, "venues": venues})),
    )
        .into_response()
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.metrics().render(state.hub());
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
