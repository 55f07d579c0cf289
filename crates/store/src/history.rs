//! The history seam: what a store of past trades, candles, funding rates and open interest
//! must do, whatever the backend.
//!
//! # Guarantees every implementation gives (checked by `tests/history/contract.rs`)
//!
//! - **Atomic batches**: [`HistoryStore::append`] writes a whole [`HistoryBatch`] or nothing.
//! - **Order**: within one instrument, trades keep the order they were appended in: each gets a
//!   store-assigned [`StoredTrade::seq`] that is strictly increasing in append order and never
//!   reused. Queries return rows ordered by `(ts, seq)` (trades) or `start` (candles), ascending
//!   or descending.
//! - **Stable pagination**: a page's `next` key is a position, not an offset. Asking for the
//!   rows after it returns every row that existed when the first page was read exactly once,
//!   whatever is inserted meanwhile (rows inserted behind the position are simply not seen).
//! - **Half-open ranges**: `from` is inclusive, `to` exclusive, both in µs since the epoch.
//! - **Idempotent trades**: a trade is identified by `(venue, symbol, exchange ts, id)`.
//!   Appending one that is already stored (a second ingest node wrote it, or a restart
//!   re-received it) stores nothing and is not counted in what `append` returns.
//! - **Candle merge**: a candle appended for a `(venue, symbol, interval, start)` that is
//!   already stored is a later observation of the same bucket (the gateway restarted inside the
//!   interval): the stored row keeps its `open`, takes the new `close`, the extreme `high` and
//!   `low`, the summed `volume` and `trades`, and becomes `complete = false`. A candle
//!   identical to the stored one (every field equal) is the same observation written twice
//!   and changes nothing ([`merge_candle`]).
//! - **Idempotent perpetual figures**: a funding or open-interest row is identified by
//!   `(venue, symbol, kind, exchange ts)`; a second one for the same key (the standby ingest
//!   stored it too) stores nothing. A liquidation is identified by `(venue, symbol, exchange
//!   ts, side, price, size)` (venues give liquidations no id): two identical in all of these are
//!   one row.
//! - **Retention**: [`HistoryStore::purge`] deletes exactly the rows whose time (`ts` for
//!   trades, funding and open interest, `start` for candles) is strictly before the cutoff, at
//!   most `max_rows` per call.
//!
//! Methods block the calling thread. Call them from a dedicated thread (the writer) or
//! `tokio::task::spawn_blocking`, never directly on an async worker.

use crate::StoreError;
use model::{
    Candle, Decimal, Funding, Interval, Liquidation, OpenInterest, Side, Symbol, Timestamp, Trade,
    Venue,
};
use std::fmt;
use std::str::FromStr;

/// What a history row is: trades, candles of one interval, or a perpetual's funding or open
/// interest. Closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HistoryKind {
    Trades,
    Candles(Interval),
    /// A perpetual's funding rate (and predicted rate, next funding time) as published.
    Funding,
    /// A perpetual's open interest as published.
    OpenInterest,
    /// A perpetual's liquidations, every one.
    Liquidations,
}

impl HistoryKind {
    /// How many kinds there are (the length of per-kind counter arrays).
    pub const COUNT: usize = 10;

    /// Every kind: trades, candles by interval, funding, open interest.
    pub const ALL: [HistoryKind; Self::COUNT] = [
        Self::Trades,
        Self::Candles(Interval::S1),
        Self::Candles(Interval::M1),
        Self::Candles(Interval::M5),
        Self::Candles(Interval::M15),
        Self::Candles(Interval::H1),
        Self::Candles(Interval::D1),
        Self::Funding,
        Self::OpenInterest,
        Self::Liquidations,
    ];

    /// Position in [`HistoryKind::ALL`] (for per-kind counters).
    pub fn index(self) -> usize {
        match self {
            Self::Trades => 0,
            Self::Candles(i) => 1 + Interval::ALL.iter().position(|x| *x == i).unwrap_or(0),
            Self::Funding => 7,
            Self::OpenInterest => 8,
            Self::Liquidations => 9,
        }
    }

    /// The `kind` column of the funding/open-interest table, the same on both backends; 0
    /// (matching no row) for any other kind.
    pub(crate) fn perp_code(self) -> i16 {
        match self {
            Self::Funding => 1,
            Self::OpenInterest => 2,
            _ => 0,
        }
    }
}

impl fmt::Display for HistoryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Trades => f.write_str("trades"),
            Self::Candles(i) => write!(f, "candles.{i}"),
            Self::Funding => f.write_str("funding"),
            Self::OpenInterest => f.write_str("oi"),
            Self::Liquidations => f.write_str("liquidations"),
        }
    }
}

impl FromStr for HistoryKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.to_string() == s)
            .ok_or_else(|| {
                format!(
                    "unknown kind {:?}: expected trades, candles.<1s|1m|5m|15m|1h|1d>, funding, oi or liquidations",
                    s.chars().take(32).collect::<String>()
                )
            })
    }
}

/// Sort order of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

impl Order {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Asc => "asc",
            Self::Desc => "desc",
        }
    }
}

impl FromStr for Order {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "asc" => Ok(Self::Asc),
            "desc" => Ok(Self::Desc),
            _ => Err("order must be asc or desc".into()),
        }
    }
}

/// One write to the store: trades and closed candles, of any instruments.
#[derive(Debug, Clone, Default)]
pub struct HistoryBatch {
    pub records: Vec<Record>,
}

impl HistoryBatch {
    /// Rows the batch holds (trades plus candles).
    pub fn rows(&self) -> usize {
        self.records.iter().map(Record::rows).sum()
    }
}

/// Rows of one instrument.
#[derive(Debug, Clone)]
pub enum Record {
    /// Trades in the order the gateway received them.
    Trades {
        venue: Venue,
        symbol: Symbol,
        trades: Vec<Trade>,
    },
    /// One closed candle (or, at shutdown, the open one marked incomplete).
    Candle {
        venue: Venue,
        symbol: Symbol,
        candle: Box<Candle>,
    },
    /// A perpetual's funding, as the venue published it at `funding.ts`.
    Funding {
        venue: Venue,
        symbol: Symbol,
        funding: Funding,
    },
    /// A perpetual's open interest, as the venue published it at `oi.ts`.
    OpenInterest {
        venue: Venue,
        symbol: Symbol,
        oi: OpenInterest,
    },
    /// A perpetual's liquidations of one ingest batch, in the order received.
    Liquidations {
        venue: Venue,
        symbol: Symbol,
        liquidations: Vec<Liquidation>,
    },
}

impl Record {
    pub fn rows(&self) -> usize {
        match self {
            Self::Trades { trades, .. } => trades.len(),
            Self::Liquidations { liquidations, .. } => liquidations.len(),
            Self::Candle { .. } | Self::Funding { .. } | Self::OpenInterest { .. } => 1,
        }
    }

    pub fn kind(&self) -> HistoryKind {
        match self {
            Self::Trades { .. } => HistoryKind::Trades,
            Self::Candle { candle, .. } => HistoryKind::Candles(candle.interval),
            Self::Funding { .. } => HistoryKind::Funding,
            Self::OpenInterest { .. } => HistoryKind::OpenInterest,
            Self::Liquidations { .. } => HistoryKind::Liquidations,
        }
    }

    /// The instrument the rows belong to.
    pub fn instrument(&self) -> (&Venue, &Symbol) {
        match self {
            Self::Trades { venue, symbol, .. }
            | Self::Candle { venue, symbol, .. }
            | Self::Funding { venue, symbol, .. }
            | Self::OpenInterest { venue, symbol, .. }
            | Self::Liquidations { venue, symbol, .. } => (venue, symbol),
        }
    }
}

/// A stored trade: the wire fields plus the store's sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTrade {
    /// Store-assigned, strictly increasing in append order; the pagination tie-breaker.
    pub seq: i64,
    pub id: String,
    pub price: Decimal,
    pub size: Decimal,
    pub side: Side,
    /// Exchange time, µs.
    pub ts: Timestamp,
}

/// A stored liquidation: the wire fields plus the store's sequence number (the pagination
/// tie-breaker, as for trades).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLiquidation {
    pub seq: i64,
    pub liquidation: Liquidation,
}

/// A position in a trades (or liquidations) query: the last row returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradeKey {
    pub ts: i64,
    pub seq: i64,
}

/// Trades of one instrument in `[from, to)`.
#[derive(Debug, Clone)]
pub struct TradeQuery {
    pub venue: Venue,
    pub symbol: Symbol,
    pub from: Timestamp,
    pub to: Timestamp,
    pub order: Order,
    /// Rows after this position (in `order`), or from the start of the range.
    pub after: Option<TradeKey>,
    pub limit: usize,
}

/// Candles of one instrument and interval whose `start` is in `[from, to)`.
#[derive(Debug, Clone)]
pub struct CandleQuery {
    pub venue: Venue,
    pub symbol: Symbol,
    pub interval: Interval,
    pub from: Timestamp,
    pub to: Timestamp,
    pub order: Order,
    /// Candles after this `start` (in `order`).
    pub after: Option<i64>,
    pub limit: usize,
}

/// Funding or open-interest rows of one instrument whose `ts` is in `[from, to)`.
#[derive(Debug, Clone)]
pub struct PerpQuery {
    pub venue: Venue,
    pub symbol: Symbol,
    pub from: Timestamp,
    pub to: Timestamp,
    pub order: Order,
    /// Rows after this `ts` (in `order`).
    pub after: Option<i64>,
    pub limit: usize,
}

/// A stored funding or open-interest row as both backends read it: `ts`, the figure (`rate`
/// or `oi`), the second figure (`predicted_rate` or `oi_value`), and `next_funding_ts`.
pub(crate) type PerpRow = (i64, Decimal, Option<Decimal>, Option<i64>);

/// Stored rows of kind `funding` as [`Funding`].
pub(crate) fn funding_page(page: Page<PerpRow, i64>) -> Page<Funding, i64> {
    Page {
        rows: page
            .rows
            .into_iter()
            .map(|(ts, rate, predicted_rate, next)| Funding {
                rate,
                predicted_rate,
                next_funding_ts: next.map(Timestamp),
                ts: Timestamp(ts),
            })
            .collect(),
        next: page.next,
    }
}

/// Stored rows of kind `oi` as [`OpenInterest`].
pub(crate) fn open_interest_page(page: Page<PerpRow, i64>) -> Page<OpenInterest, i64> {
    Page {
        rows: page
            .rows
            .into_iter()
            .map(|(ts, oi, oi_value, _)| OpenInterest {
                oi,
                oi_value,
                ts: Timestamp(ts),
            })
            .collect(),
        next: page.next,
    }
}

/// One page of a query. `next` is set when more rows may follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T, K> {
    pub rows: Vec<T>,
    pub next: Option<K>,
}

/// Space the store takes on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskUsage {
    /// Bytes of every file of the store (database, write-ahead log, shared memory).
    pub total_bytes: u64,
    /// Bytes inside the database that are free for reuse (after retention deleted rows).
    pub free_bytes: u64,
}

/// The candle merge rule of the module documentation: what the stored candle of a bucket
/// becomes when `new` arrives for the same bucket, or `None` when `new` is identical to it (the
/// same observation written twice: nothing changes). Both backends follow it.
pub fn merge_candle(stored: &Candle, new: &Candle) -> Option<Candle> {
    let identical = stored.open == new.open
        && stored.high == new.high
        && stored.low == new.low
        && stored.close == new.close
        && stored.volume == new.volume
        && stored.trades == new.trades
        && stored.complete == new.complete;
    if identical {
        return None;
    }
    Some(Candle {
        interval: stored.interval,
        start: stored.start,
        open: stored.open,
        // On a tie the stored value (with its scale) stays.
        high: stored.high.max(new.high),
        low: stored.low.min(new.low),
        close: new.close,
        volume: stored.volume + new.volume,
        trades: stored.trades.saturating_add(new.trades),
        closed: true,
        complete: false,
    })
}

/// Persistence of trades and candles. See the module documentation for the guarantees.
pub trait HistoryStore: Send + Sync + fmt::Debug {
    /// Writes every record of `batch` in one transaction. Returns the rows stored or changed:
    /// trades already stored and candles identical to the stored ones are not counted.
    fn append(&self, batch: &HistoryBatch) -> Result<usize, StoreError>;

    /// A page of trades, at most `query.limit` rows.
    fn trades(&self, query: &TradeQuery) -> Result<Page<StoredTrade, TradeKey>, StoreError>;

    /// A page of candles, at most `query.limit` rows. `closed` is true on every stored candle.
    fn candles(&self, query: &CandleQuery) -> Result<Page<Candle, i64>, StoreError>;

    /// A page of a perpetual's stored funding, ordered by `ts`; `next` is the last row's `ts`.
    fn funding(&self, query: &PerpQuery) -> Result<Page<Funding, i64>, StoreError>;

    /// A page of a perpetual's stored open interest, ordered by `ts`.
    fn open_interest(&self, query: &PerpQuery) -> Result<Page<OpenInterest, i64>, StoreError>;

    /// A page of a perpetual's stored liquidations: the same range, order and cursor rules as
    /// trades (`(ts, seq)`).
    fn liquidations(
        &self,
        query: &TradeQuery,
    ) -> Result<Page<StoredLiquidation, TradeKey>, StoreError>;

    /// Rows of `kind` for one instrument in `[from, to)` (for progress reporting).
    fn count(
        &self,
        kind: HistoryKind,
        venue: &Venue,
        symbol: &Symbol,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Every instrument that has ever had a row stored, sorted by venue then symbol.
    fn instruments(&self) -> Result<Vec<(Venue, Symbol)>, StoreError>;

    /// Deletes at most `max_rows` rows of `kind` (all instruments) older than `cutoff`.
    /// Returns how many were deleted; fewer than `max_rows` means none are left.
    fn purge(
        &self,
        kind: HistoryKind,
        cutoff: Timestamp,
        max_rows: usize,
    ) -> Result<u64, StoreError>;

    fn disk_usage(&self) -> Result<DiskUsage, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_index() {
        for (i, kind) in HistoryKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.to_string().parse::<HistoryKind>().unwrap(), kind);
            assert_eq!(kind.index(), i);
        }
        assert_eq!(
            "oi".parse::<HistoryKind>().unwrap(),
            HistoryKind::OpenInterest
        );
        for bad in [
            "",
            "trade",
            "candles",
            "candles.2m",
            "book",
            "mark",
            "liquidation",
        ] {
            assert!(bad.parse::<HistoryKind>().is_err(), "{bad:?}");
        }
        assert_eq!("desc".parse::<Order>().unwrap(), Order::Desc);
        assert!("DESC".parse::<Order>().is_err());
    }
}
