//! REST for perpetuals: the latest funding, mark and open interest of one instrument, read
//! from its hub channel (the value a WebSocket subscriber gets as its join snapshot).

use crate::api_error::ApiError;
use crate::query_params::{Params, QueryParams};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use model::{Channel, ChannelKind};
use protocol::rest::PerpLatestResponse;
use protocol::{ErrorBody, ErrorCode, ServerMessage};

/// The latest message of `kind` for the `venue`/`symbol` of `params`.
fn latest(
    state: &AppState,
    params: Params,
    kind: ChannelKind,
) -> Result<Json<PerpLatestResponse>, ApiError> {
    let (venue, symbol) = QueryParams::new(params, &["venue", "symbol"])?.instrument()?;
    let channel = Channel::new(kind, venue.clone(), symbol.clone());
    let topic = state.hub().topic(&channel.to_string()).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnknownInstrument,
            format!(
                "{venue} {symbol} has no {kind} channel (perpetuals only); see GET /v1/instruments"
            ),
        )
    })?;
    let not_yet = || {
        ApiError::new(
            ErrorCode::Unavailable,
            format!("nothing published on {channel} yet; retry shortly"),
        )
    };
    let joined = topic.subscribe(false);
    let frame = joined.initial.ok_or_else(not_yet)?;
    let Ok(ServerMessage::Snapshot(d)) = serde_json::from_str::<ServerMessage>(frame.as_str())
    else {
        tracing::warn!(channel = %channel, "latest frame of a perpetual channel did not parse");
        return Err(not_yet());
    };
    Ok(Json(PerpLatestResponse {
        channel: channel.to_string(),
        seq: d.seq,
        epoch: d.epoch,
        funding: d.funding,
        funding_all: d.funding_all,
        mark: d.mark,
        oi: d.oi,
    }))
}

/// The latest funding rate of a perpetual (of one venue, or of every venue with `venue=all`).
#[utoipa::path(
    get,
    path = "/v1/funding",
    tag = "market",
    params(
        ("venue" = String, Query, description = "Venue, e.g. bybit; `all`: every venue's latest funding side by side (`funding_all`)"),
        ("symbol" = String, Query, description = "Perpetual, e.g. BTC-USDT-PERP"),
    ),
    responses(
        (status = 200, body = PerpLatestResponse),
        (status = 400, description = "bad_param", body = ErrorBody),
        (status = 404, description = "unknown_instrument (or not a perpetual)", body = ErrorBody),
        (status = 503, description = "unavailable: nothing published yet", body = ErrorBody),
    ),
)]
pub(crate) async fn funding(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<PerpLatestResponse>, ApiError> {
    latest(&state, params, ChannelKind::Funding)
}

/// The latest mark and index price of a perpetual.
#[utoipa::path(
    get,
    path = "/v1/mark",
    tag = "market",
    params(
        ("venue" = String, Query, description = "Venue, e.g. bybit"),
        ("symbol" = String, Query, description = "Perpetual, e.g. BTC-USDT-PERP"),
    ),
    responses(
        (status = 200, body = PerpLatestResponse),
        (status = 400, description = "bad_param", body = ErrorBody),
        (status = 404, description = "unknown_instrument (or not a perpetual)", body = ErrorBody),
        (status = 503, description = "unavailable: nothing published yet", body = ErrorBody),
    ),
)]
pub(crate) async fn mark(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<PerpLatestResponse>, ApiError> {
    latest(&state, params, ChannelKind::Mark)
}

/// The latest open interest of a perpetual.
#[utoipa::path(
    get,
    path = "/v1/oi",
    tag = "market",
    params(
        ("venue" = String, Query, description = "Venue, e.g. bybit"),
        ("symbol" = String, Query, description = "Perpetual, e.g. BTC-USDT-PERP"),
    ),
    responses(
        (status = 200, body = PerpLatestResponse),
        (status = 400, description = "bad_param", body = ErrorBody),
        (status = 404, description = "unknown_instrument (or not a perpetual)", body = ErrorBody),
        (status = 503, description = "unavailable: nothing published yet", body = ErrorBody),
    ),
)]
pub(crate) async fn oi(
    State(state): State<AppState>,
    params: Params,
) -> Result<Json<PerpLatestResponse>, ApiError> {
    latest(&state, params, ChannelKind::OpenInterest)
}
