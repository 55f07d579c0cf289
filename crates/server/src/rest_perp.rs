//! REST for perpetuals: the latest funding, mark and open interest of one instrument, read
//! from its hub channel (the value a WebSocket subscriber gets as its join snapshot). Given a
//! range (`from`, `to`, `limit`, `cursor` or `order`), `/v1/funding` and `/v1/oi` answer from
//! history instead, exactly as `/v1/funding/history` and `/v1/oi/history` do.

use crate::api_error::ApiError;
use crate::auth::Principal;
use crate::query_params::{Params, QueryParams};
use crate::rest_history::{PerpParams, funding_page, oi_page};
use crate::state::AppState;
use axum::Json;
use axum::extract::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use model::{Channel, ChannelKind};
use protocol::rest::PerpLatestResponse;
use protocol::{ErrorBody, ErrorCode, ServerMessage};

/// The latest message of `kind` for the `venue`/`symbol` of `params`.
fn latest(
    state: &AppState,
    params: QueryParams,
    kind: ChannelKind,
) -> Result<Json<PerpLatestResponse>, ApiError> {
    let (venue, symbol) = params.instrument()?;
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
        (status = 200, description = "The latest funding. With any of from, to, limit, cursor or order: a FundingPage from history, as GET /v1/funding/history answers", body = PerpLatestResponse),
        (status = 400, description = "bad_param", body = ErrorBody),
        (status = 404, description = "unknown_instrument (or not a perpetual)", body = ErrorBody),
        (status = 503, description = "unavailable: nothing published yet", body = ErrorBody),
    ),
)]
pub(crate) async fn funding(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    params: Params,
) -> Result<Response, ApiError> {
    match ranged(params, principal)? {
        Ranged::Latest(params) => Ok(latest(&state, params, ChannelKind::Funding)?.into_response()),
        Ranged::History(p) => Ok(funding_page(&state, &p).await?.into_response()),
    }
}

/// A latest-value request, or (with any range parameter) a history query.
enum Ranged {
    Latest(QueryParams),
    History(PerpParams),
}

/// With a range the request reads history, so a key needs `history:read` as on
/// `/v1/funding/history` (the route itself only required `market:read`).
fn ranged(params: Params, principal: Option<Extension<Principal>>) -> Result<Ranged, ApiError> {
    let mut allowed = vec!["venue", "symbol"];
    allowed.extend(PerpParams::RANGE);
    let mut params = QueryParams::new(params, &allowed)?;
    if !PerpParams::RANGE
        .iter()
        .any(|k| params.params.contains_key(*k))
    {
        return Ok(Ranged::Latest(params));
    }
    if let Some(Extension(Principal::Key(key))) = &principal
        && !key.view.scopes.contains(auth::Scope::HistoryRead)
    {
        return Err(ApiError::new(
            ErrorCode::InsufficientScope,
            "from, to, limit, order and cursor read stored history: the key needs the history:read scope",
        ));
    }
    let mut take = |k: &str| params.params.remove(k);
    let missing = |k: &str| {
        ApiError::new(
            ErrorCode::BadParam,
            format!("missing parameter {k:?}; see GET /openapi.json"),
        )
    };
    Ok(Ranged::History(PerpParams {
        venue: take("venue").ok_or_else(|| missing("venue"))?,
        symbol: take("symbol").ok_or_else(|| missing("symbol"))?,
        from: take("from"),
        to: take("to"),
        limit: take("limit"),
        cursor: take("cursor"),
        order: take("order"),
    }))
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
    latest(
        &state,
        QueryParams::new(params, &["venue", "symbol"])?,
        ChannelKind::Mark,
    )
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
        (status = 200, description = "The latest open interest. With any of from, to, limit, cursor or order: an OpenInterestPage from history, as GET /v1/oi/history answers", body = PerpLatestResponse),
        (status = 400, description = "bad_param", body = ErrorBody),
        (status = 404, description = "unknown_instrument (or not a perpetual)", body = ErrorBody),
        (status = 503, description = "unavailable: nothing published yet", body = ErrorBody),
    ),
)]
pub(crate) async fn oi(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    params: Params,
) -> Result<Response, ApiError> {
    match ranged(params, principal)? {
        Ranged::Latest(params) => {
            Ok(latest(&state, params, ChannelKind::OpenInterest)?.into_response())
        }
        Ranged::History(p) => Ok(oi_page(&state, &p).await?.into_response()),
    }
}
