//! The history endpoints: `GET /v1/trades`, `GET /v1/candles`, and a perpetual's stored
//! funding and open interest (`GET /v1/funding/history`, `GET /v1/oi/history`, also answered
//! by `/v1/funding` and `/v1/oi` when they get a range), paged with opaque cursors.
//!
//! Both read the history store on a blocking thread (at most a few at once). `/v1/candles`
//! answers from the in-memory ring of recent candles, with the same shape and cursors, when the
//! store does not keep that interval for a served instrument (history off or excluded).

use crate::api_error::ApiError;
use crate::history::History;
use crate::history_params::{self, MAX_LIMIT, Raw, Resolved};
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use model::{Candle, Interval, Timestamp};
use protocol::{
    CandlesPage, ErrorBody, ErrorCode, FundingPage, HistoryCandle, LiquidationsPage,
    OpenInterestPage, TradesPage, WireTrade,
};
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use store::{CandleQuery, HistoryKind, Order, PerpQuery, StoreError, TradeKey, TradeQuery};
use utoipa::IntoParams;

/// Query parameters of `GET /v1/trades`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TradesParams {
    /// Venue, e.g. `binance`.
    venue: String,
    /// Normalized symbol, e.g. `BTC-USDT`.
    symbol: String,
    /// Range start, inclusive: RFC 3339 (`2024-05-01T12:00:00Z`) or epoch milliseconds.
    /// Default: the oldest stored row.
    from: Option<String>,
    /// Range end, exclusive: RFC 3339 or epoch milliseconds. Default: the time of the first
    /// request (kept by the cursor, so paging ends).
    to: Option<String>,
    /// Rows per page, 1 to 5000 (default 500).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 5000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page. The other parameters may be repeated unchanged or
    /// omitted.
    cursor: Option<String>,
    /// `asc` (default, oldest first) or `desc` (newest first).
    #[param(value_type = Option<String>, pattern = "^(asc|desc)$")]
    order: Option<String>,
}

/// Query parameters of `GET /v1/candles`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CandlesParams {
    /// Venue, e.g. `binance`.
    venue: String,
    /// Normalized symbol, e.g. `BTC-USDT`.
    symbol: String,
    /// `1s`, `1m` (default), `5m`, `15m`, `1h` or `1d`.
    #[param(value_type = Option<String>, pattern = "^(1s|1m|5m|15m|1h|1d)$")]
    interval: Option<String>,
    /// Candles whose start is at or after this: RFC 3339 or epoch milliseconds.
    from: Option<String>,
    /// Candles whose start is before this: RFC 3339 or epoch milliseconds. Default: now.
    to: Option<String>,
    /// Candles per page, 1 to 5000 (default 500).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 5000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `asc` (default) or `desc`.
    #[param(value_type = Option<String>, pattern = "^(asc|desc)$")]
    order: Option<String>,
}

/// Query parameters of `GET /v1/funding/history` and `GET /v1/oi/history`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PerpParams {
    /// Venue, e.g. `bybit`.
    pub(crate) venue: String,
    /// Perpetual, e.g. `BTC-USDT-PERP`.
    pub(crate) symbol: String,
    /// Rows whose `ts` is at or after this: RFC 3339 or epoch milliseconds. Default: the
    /// oldest stored row.
    pub(crate) from: Option<String>,
    /// Rows whose `ts` is before this: RFC 3339 or epoch milliseconds. Default: the time of
    /// the first request (kept by the cursor).
    pub(crate) to: Option<String>,
    /// Rows per page, 1 to 5000 (default 500).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 5000)]
    pub(crate) limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
    /// `asc` (default) or `desc`.
    #[param(value_type = Option<String>, pattern = "^(asc|desc)$")]
    pub(crate) order: Option<String>,
}

impl PerpParams {
    /// The range parameters `/v1/funding` and `/v1/oi` take to answer from history.
    pub(crate) const RANGE: [&'static str; 5] = ["from", "to", "limit", "cursor", "order"];
}

fn bad_query(error: QueryRejection) -> ApiError {
    ApiError::new(
        ErrorCode::BadParam,
        format!(
            "invalid query string: {}; see GET /openapi.json",
            error.body_text()
        ),
    )
}

fn unknown_symbol(r: &Resolved) -> ApiError {
    ApiError::new(
        ErrorCode::UnknownSymbol,
        format!(
            "{} {} has no history: it is not served and nothing is stored for it; see GET /v1/instruments",
            r.venue, r.symbol
        ),
    )
}

/// A failed store query: `unavailable` (503) when the store cannot be reached, so clients
/// retry; `internal` otherwise. Details go to the log, never to the client.
fn store_error(history: &History, error: StoreError) -> ApiError {
    if error.is_unavailable() {
        history.query_unavailable.store(true, Ordering::Relaxed);
        tracing::warn!(error = %error, "history query failed: the store is unavailable");
        return ApiError::new(
            ErrorCode::Unavailable,
            "the history store is unavailable; retry shortly",
        );
    }
    internal(error)
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %error, "history query failed");
    ApiError::new(
        ErrorCode::Internal,
        "the history query failed; see the gateway log",
    )
}

/// Runs a store query on a blocking thread, at most `MAX_CONCURRENT_QUERIES` at once.
/// `Ok(None)` means the instrument is unknown to the store.
async fn query<T: Send + 'static>(
    history: &Arc<History>,
    resolved: &Resolved,
    served: bool,
    run: impl FnOnce(&dyn store::HistoryStore) -> Result<(bool, T), StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let _slot = history.queries.acquire().await.map_err(internal)?;
    let store = history.store.clone();
    let key = (resolved.venue.clone(), resolved.symbol.clone());
    let result = tokio::task::spawn_blocking(move || {
        let (empty, value) = run(&*store)?;
        let known = served || !empty || store.instruments()?.contains(&key);
        Ok::<_, StoreError>(known.then_some(value))
    })
    .await
    .map_err(internal)?
    .map_err(|e| store_error(history, e))?;
    history.query_unavailable.store(false, Ordering::Relaxed);
    result.ok_or_else(|| unknown_symbol(resolved))
}

/// Trades of one instrument in a time range, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/trades",
    tag = "history",
    params(TradesParams),
    responses(
        (status = 200, description = "A page of trades, in the order asked", body = TradesPage),
        (status = 400, description = "bad_param, invalid_time, invalid_range, limit_out_of_range, invalid_cursor or unknown_symbol", body = ErrorBody),
        (status = 404, description = "not_stored: history is disabled", body = ErrorBody),
        (status = 503, description = "unavailable: the history store (PostgreSQL) cannot be reached; retry", body = ErrorBody),
    ),
)]
pub(crate) async fn trades(
    State(state): State<AppState>,
    params: Result<Query<TradesParams>, QueryRejection>,
) -> Result<Json<TradesPage>, ApiError> {
    let Query(p) = params.map_err(bad_query)?;
    let raw = Raw {
        venue: &p.venue,
        symbol: &p.symbol,
        from: p.from.as_deref(),
        to: p.to.as_deref(),
        limit: p.limit.as_deref(),
        cursor: p.cursor.as_deref(),
        order: p.order.as_deref(),
    };
    let r = history_params::resolve(&raw, HistoryKind::Trades, Timestamp::now())?;
    let Some(history) = state.history() else {
        return Err(ApiError::new(
            ErrorCode::NotStored,
            "trade history is not stored on this gateway (history.enabled = false)",
        ));
    };
    let served = state.market().get(&r.venue, &r.symbol).is_some();
    let q = TradeQuery {
        venue: r.venue.clone(),
        symbol: r.symbol.clone(),
        from: r.from,
        to: r.to,
        order: r.order,
        after: r.after.map(|(ts, seq)| TradeKey { ts, seq }),
        limit: r.limit,
    };
    let page = query(history, &r, served, move |store| {
        let page = store.trades(&q)?;
        Ok((page.rows.is_empty(), page))
    })
    .await?;
    Ok(Json(TradesPage {
        trades: page
            .rows
            .into_iter()
            .map(|t| WireTrade {
                id: t.id,
                price: t.price,
                size: t.size,
                side: t.side,
                ts: t.ts.0,
            })
            .collect(),
        next_cursor: page.next.map(|k| r.next_cursor((k.ts, k.seq))),
    }))
}

/// Closed candles of one instrument and interval, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/candles",
    tag = "history",
    params(CandlesParams),
    responses(
        (status = 200, description = "A page of closed candles by start time", body = CandlesPage),
        (status = 400, description = "bad_param, unknown_interval, invalid_time, invalid_range, limit_out_of_range, invalid_cursor or unknown_symbol", body = ErrorBody),
        (status = 503, description = "unavailable: the history store (PostgreSQL) cannot be reached; retry", body = ErrorBody),
    ),
)]
pub(crate) async fn candles(
    State(state): State<AppState>,
    params: Result<Query<CandlesParams>, QueryRejection>,
) -> Result<Json<CandlesPage>, ApiError> {
    let Query(p) = params.map_err(bad_query)?;
    let interval: Interval = p
        .interval
        .as_deref()
        .map_or(Ok(Interval::M1), str::parse)
        .map_err(|e: model::ModelError| ApiError::new(ErrorCode::UnknownInterval, e.to_string()))?;
    let raw = Raw {
        venue: &p.venue,
        symbol: &p.symbol,
        from: p.from.as_deref(),
        to: p.to.as_deref(),
        limit: p.limit.as_deref(),
        cursor: p.cursor.as_deref(),
        order: p.order.as_deref(),
    };
    let kind = HistoryKind::Candles(interval);
    let r = history_params::resolve(&raw, kind, Timestamp::now())?;
    let entry = state.market().get(&r.venue, &r.symbol);
    let history = state
        .history()
        .filter(|h| entry.is_none() || h.filter.wants(kind, &r.venue, &r.symbol));
    let (rows, next) = match (history, entry) {
        (Some(history), entry) => {
            let q = CandleQuery {
                venue: r.venue.clone(),
                symbol: r.symbol.clone(),
                interval,
                from: r.from,
                to: r.to,
                order: r.order,
                after: r.after.map(|(start, _)| start),
                limit: r.limit,
            };
            let page = query(history, &r, entry.is_some(), move |store| {
                let page = store.candles(&q)?;
                Ok((page.rows.is_empty(), page))
            })
            .await?;
            (page.rows, page.next)
        }
        (None, Some(entry)) => {
            let recent = entry.aggregates.lock().candles.recent(interval);
            page_in_memory(recent, &r)
        }
        (None, None) => return Err(unknown_symbol(&r)),
    };
    Ok(Json(CandlesPage {
        candles: rows.iter().map(HistoryCandle::from).collect(),
        next_cursor: next.map(|start| r.next_cursor((start, 0))),
    }))
}

/// The same paging rules as the store, over the recent closed candles kept in memory.
fn page_in_memory(recent: Vec<Candle>, r: &Resolved) -> (Vec<Candle>, Option<i64>) {
    let after = r.after.map(|(start, _)| start);
    let mut rows: Vec<Candle> = recent
        .into_iter()
        .filter(|c| c.closed && c.start >= r.from && c.start < r.to)
        .filter(|c| match (r.order, after) {
            (_, None) => true,
            (Order::Asc, Some(a)) => c.start.0 > a,
            (Order::Desc, Some(a)) => c.start.0 < a,
        })
        .collect();
    if r.order == Order::Desc {
        rows.reverse();
    }
    let next = (rows.len() > r.limit).then(|| rows[r.limit - 1].start.0);
    rows.truncate(r.limit.min(MAX_LIMIT));
    (rows, next)
}

/// Resolves a perpetual history query: the parameters, that history keeps `kind` for the
/// instrument, and whether it is served now.
fn perp_query(
    state: &AppState,
    p: &PerpParams,
    kind: HistoryKind,
) -> Result<(Arc<History>, Resolved, bool), ApiError> {
    let raw = Raw {
        venue: &p.venue,
        symbol: &p.symbol,
        from: p.from.as_deref(),
        to: p.to.as_deref(),
        limit: p.limit.as_deref(),
        cursor: p.cursor.as_deref(),
        order: p.order.as_deref(),
    };
    let r = history_params::resolve(&raw, kind, Timestamp::now())?;
    let (what, channel_kind) = match kind {
        HistoryKind::Funding => ("funding", model::ChannelKind::Funding),
        HistoryKind::Liquidations => ("liquidations", model::ChannelKind::Liquidations),
        _ => ("open interest", model::ChannelKind::OpenInterest),
    };
    let Some(history) = state.history() else {
        return Err(ApiError::new(
            ErrorCode::NotStored,
            format!("{what} history is not stored on this gateway (history.enabled = false)"),
        ));
    };
    let served = state.market().get(&r.venue, &r.symbol).is_some();
    if served {
        let channel = model::Channel::new(channel_kind, r.venue.clone(), r.symbol.clone());
        if state.hub().topic(&channel.to_string()).is_none() {
            return Err(ApiError::new(
                ErrorCode::UnknownInstrument,
                format!(
                    "{} {} is not a perpetual: it has no {what}; see GET /v1/instruments",
                    r.venue, r.symbol
                ),
            ));
        }
        if !history.filter.wants(kind, &r.venue, &r.symbol) {
            return Err(ApiError::new(
                ErrorCode::NotStored,
                format!(
                    "{what} of {} {} is not stored (history.include / history.exclude)",
                    r.venue, r.symbol
                ),
            ));
        }
    }
    Ok((history.clone(), r, served))
}

/// A perpetual's stored funding in a time range, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/funding/history",
    tag = "history",
    params(PerpParams),
    responses(
        (status = 200, description = "A page of funding rows by ts (each holds until the next)", body = FundingPage),
        (status = 400, description = "bad_param, invalid_time, invalid_range, limit_out_of_range, invalid_cursor or unknown_symbol", body = ErrorBody),
        (status = 404, description = "not_stored (history off, or funding excluded) or unknown_instrument (not a perpetual)", body = ErrorBody),
        (status = 503, description = "unavailable: the history store (PostgreSQL) cannot be reached; retry", body = ErrorBody),
    ),
)]
pub(crate) async fn funding_history(
    State(state): State<AppState>,
    params: Result<Query<PerpParams>, QueryRejection>,
) -> Result<Json<FundingPage>, ApiError> {
    let Query(p) = params.map_err(bad_query)?;
    funding_page(&state, &p).await
}

pub(crate) async fn funding_page(
    state: &AppState,
    p: &PerpParams,
) -> Result<Json<FundingPage>, ApiError> {
    let (funding, next_cursor) =
        perp_page(state, p, HistoryKind::Funding, |store, q| store.funding(q)).await?;
    Ok(Json(FundingPage {
        funding,
        next_cursor,
    }))
}

/// Reads one page of a perpetual's stored figures from the store.
type PerpFetch<T> =
    fn(&dyn store::HistoryStore, &PerpQuery) -> Result<store::Page<T, i64>, StoreError>;

/// One page of a perpetual's stored `kind` (`fetch` reads it) and the next page's cursor.
async fn perp_page<T: Send + 'static>(
    state: &AppState,
    p: &PerpParams,
    kind: HistoryKind,
    fetch: PerpFetch<T>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let (history, r, served) = perp_query(state, p, kind)?;
    let q = PerpQuery {
        venue: r.venue.clone(),
        symbol: r.symbol.clone(),
        from: r.from,
        to: r.to,
        order: r.order,
        after: r.after.map(|(ts, _)| ts),
        limit: r.limit,
    };
    let page = query(&history, &r, served, move |store| {
        let page = fetch(store, &q)?;
        Ok((page.rows.is_empty(), page))
    })
    .await?;
    Ok((page.rows, page.next.map(|ts| r.next_cursor((ts, 0)))))
}

/// A perpetual's stored open interest in a time range, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/oi/history",
    tag = "history",
    params(PerpParams),
    responses(
        (status = 200, description = "A page of open-interest rows by ts (each holds until the next)", body = OpenInterestPage),
        (status = 400, description = "bad_param, invalid_time, invalid_range, limit_out_of_range, invalid_cursor or unknown_symbol", body = ErrorBody),
        (status = 404, description = "not_stored (history off, or open interest excluded) or unknown_instrument (not a perpetual)", body = ErrorBody),
        (status = 503, description = "unavailable: the history store (PostgreSQL) cannot be reached; retry", body = ErrorBody),
    ),
)]
pub(crate) async fn oi_history(
    State(state): State<AppState>,
    params: Result<Query<PerpParams>, QueryRejection>,
) -> Result<Json<OpenInterestPage>, ApiError> {
    let Query(p) = params.map_err(bad_query)?;
    oi_page(&state, &p).await
}

pub(crate) async fn oi_page(
    state: &AppState,
    p: &PerpParams,
) -> Result<Json<OpenInterestPage>, ApiError> {
    let (oi, next_cursor) = perp_page(state, p, HistoryKind::OpenInterest, |store, q| {
        store.open_interest(q)
    })
    .await?;
    Ok(Json(OpenInterestPage { oi, next_cursor }))
}

/// A perpetual's stored liquidations in a time range, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/liquidations",
    tag = "history",
    params(PerpParams),
    responses(
        (status = 200, description = "A page of liquidations in (ts, arrival) order, ascending or descending", body = LiquidationsPage),
        (status = 400, description = "bad_param, invalid_time, invalid_range, limit_out_of_range, invalid_cursor or unknown_symbol", body = ErrorBody),
        (status = 404, description = "not_stored (history off, or liquidations excluded) or unknown_instrument (not a perpetual)", body = ErrorBody),
        (status = 503, description = "unavailable: the history store (PostgreSQL) cannot be reached; retry", body = ErrorBody),
    ),
)]
pub(crate) async fn liquidations(
    State(state): State<AppState>,
    params: Result<Query<PerpParams>, QueryRejection>,
) -> Result<Json<LiquidationsPage>, ApiError> {
    let Query(p) = params.map_err(bad_query)?;
    let (history, r, served) = perp_query(&state, &p, HistoryKind::Liquidations)?;
    let q = TradeQuery {
        venue: r.venue.clone(),
        symbol: r.symbol.clone(),
        from: r.from,
        to: r.to,
        order: r.order,
        after: r.after.map(|(ts, seq)| TradeKey { ts, seq }),
        limit: r.limit,
    };
    let page = query(&history, &r, served, move |store| {
        let page = store.liquidations(&q)?;
        Ok((page.rows.is_empty(), page))
    })
    .await?;
    Ok(Json(LiquidationsPage {
        liquidations: page.rows.into_iter().map(|l| l.liquidation).collect(),
        next_cursor: page.next.map(|k| r.next_cursor((k.ts, k.seq))),
    }))
}
