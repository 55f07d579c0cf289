//! [`HistoryStore`] on the embedded SQLite database `history.db` in the data directory.
//!
//! History has its own database file, apart from keys and audit (`tickgate.db`): its large
//! batched writes never hold the write lock other stores need, and it can be backed up, moved
//! or deleted on its own.
//!
//! Schema: `trades` is a rowid table (`seq` is the rowid: appended rows always go to the end of
//! the table, so pages stay full) with one unique index `(inst, ts, id)`, the natural key that
//! makes a repeated trade a no-op, which also serves every range query in `(ts, seq)` order
//! (only rows sharing a timestamp are sorted by `seq`). `candles` is clustered by `(inst, interval, start)`. Prices and sizes are
//! stored as the decimal text the venue sent, so they come back with the same scale.
//! `perp_history` holds funding (`kind` 1: rate, predicted rate, next funding time) and open
//! interest (`kind` 2: base size, quote value), clustered by `(inst, kind, ts)`, the key that
//! makes a repeated row a no-op.

use crate::history::{
    CandleQuery, DiskUsage, HistoryBatch, HistoryKind, HistoryStore, Order, Page, PerpQuery,
    PerpRow, Record, StoredLiquidation, StoredTrade, TradeKey, TradeQuery, funding_page,
    merge_candle, open_interest_page,
};
use crate::{StoreError, sqlite};
use model::{
    Candle, Decimal, Funding, Interval, Liquidation, OpenInterest, Side, Symbol, Timestamp, Venue,
};
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name of the history database inside the data directory.
pub const HISTORY_DB_FILE: &str = "history.db";

/// Idle read connections kept open for queries.
const IDLE_READERS: usize = 4;

/// Schema steps of the `history` module (append-only, see [`sqlite::migrate`]).
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE history_instruments (
        id INTEGER PRIMARY KEY,
        venue TEXT NOT NULL,
        symbol TEXT NOT NULL,
        UNIQUE (venue, symbol)
    );
    CREATE TABLE trades (
        seq INTEGER PRIMARY KEY,
        inst INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        id TEXT NOT NULL,
        price TEXT NOT NULL,
        size TEXT NOT NULL,
        side INTEGER NOT NULL
    );
    CREATE INDEX trades_by_time ON trades (inst, ts);
    CREATE TABLE candles (
        inst INTEGER NOT NULL,
        interval_secs INTEGER NOT NULL,
        start INTEGER NOT NULL,
        open TEXT NOT NULL,
        high TEXT NOT NULL,
        low TEXT NOT NULL,
        close TEXT NOT NULL,
        volume TEXT NOT NULL,
        trades INTEGER NOT NULL,
        complete INTEGER NOT NULL,
        PRIMARY KEY (inst, interval_secs, start)
    ) WITHOUT ROWID;
",
    // Idempotent trades: `(inst, ts, id)` is the natural key. Duplicates an older version
    // stored are removed (the first one written stays); the unique index replaces the time
    // index, and serves the same range queries (only rows sharing a `ts` are sorted by seq).
    "
    DELETE FROM trades WHERE seq NOT IN (SELECT min(seq) FROM trades GROUP BY inst, ts, id);
    DROP INDEX trades_by_time;
    CREATE UNIQUE INDEX trades_natural ON trades (inst, ts, id);
",
    // Perpetuals' funding (kind 1) and open interest (kind 2).
    "
    CREATE TABLE perp_history (
        inst INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        value TEXT NOT NULL,
        extra TEXT,
        next_ts INTEGER,
        PRIMARY KEY (inst, kind, ts)
    ) WITHOUT ROWID;
",
    // Perpetuals' liquidations: a rowid table like trades; venues give them no id, so the
    // natural key is everything a liquidation is.
    "
    CREATE TABLE liquidations (
        seq INTEGER PRIMARY KEY,
        inst INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        side INTEGER NOT NULL,
        price TEXT NOT NULL,
        size TEXT NOT NULL
    );
    CREATE UNIQUE INDEX liquidations_natural ON liquidations (inst, ts, side, price, size);
",
];

/// A liquidation already stored (same instrument, `ts`, side, price and size) is skipped.
const INSERT_LIQUIDATION: &str =
    "INSERT OR IGNORE INTO liquidations (inst, ts, side, price, size) VALUES (?1, ?2, ?3, ?4, ?5)";

/// `perp_history.kind` of a perpetual's figure.
fn perp_kind(kind: HistoryKind) -> i64 {
    i64::from(kind.perp_code())
}

/// A funding or open-interest row is skipped when one with the same key is stored.
const INSERT_PERP: &str = "INSERT OR IGNORE INTO perp_history (inst, kind, ts, value, extra, next_ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// A trade already stored (same instrument, `ts` and id) is skipped.
const INSERT_TRADE: &str = "INSERT OR IGNORE INTO trades (inst, ts, id, price, size, side) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// The history store on one SQLite file. Writes go through one connection (SQLite has one
/// writer at a time); reads use a small pool of other connections, which WAL mode lets run
/// while a write is in progress.
#[derive(Debug)]
pub struct SqliteHistory {
    path: PathBuf,
    writer: Mutex<Writer>,
    readers: Mutex<Vec<Connection>>,
}

#[derive(Debug)]
struct Writer {
    conn: Connection,
    /// Instrument ids already in `history_instruments`.
    ids: HashMap<(Venue, Symbol), i64>,
}

impl SqliteHistory {
    /// Opens (creating and migrating if needed) `history.db` in `data_dir`.
    pub fn open_in(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open(&data_dir.join(HISTORY_DB_FILE))
    }

    /// Opens (creating and migrating if needed) the history database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = sqlite::open(path)?;
        sqlite::migrate(&mut conn, "history", MIGRATIONS)?;
        // A larger page cache keeps the index's hot pages in memory during batched inserts;
        // the WAL is truncated back to 64 MiB after each checkpoint.
        conn.pragma_update(None, "cache_size", -16_384)?;
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        Ok(Self {
            path: path.to_path_buf(),
            writer: Mutex::new(Writer {
                conn,
                ids: HashMap::new(),
            }),
            readers: Mutex::new(Vec::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a consistent, compacted copy of the database to `dest` while it stays in use
    /// (`VACUUM INTO`). `dest` must not exist.
    pub fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        let dest = dest
            .to_str()
            .ok_or_else(|| StoreError::Conflict("backup path is not valid UTF-8".into()))?;
        self.read(|conn| {
            conn.execute("VACUUM INTO ?1", [dest])?;
            Ok(())
        })
    }

    /// Runs `f` on a read connection from the pool.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
                let conn = Connection::open_with_flags(&self.path, flags).map_err(|source| {
                    StoreError::Open {
                        path: self.path.display().to_string(),
                        source,
                    }
                })?;
                conn.busy_timeout(Duration::from_secs(5))?;
                conn
            }
        };
        let result = f(&conn);
        let mut pool = self.readers.lock();
        if pool.len() < IDLE_READERS {
            pool.push(conn);
        }
        result
    }
}

fn instrument_id(
    conn: &Connection,
    venue: &Venue,
    symbol: &Symbol,
) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT id FROM history_instruments WHERE venue = ?1 AND symbol = ?2")?
        .query_row((venue.as_str(), symbol.as_str()), |r| r.get(0))
        .optional()?)
}

fn create_instrument(
    tx: &Transaction<'_>,
    venue: &Venue,
    symbol: &Symbol,
) -> Result<i64, StoreError> {
    tx.prepare_cached("INSERT OR IGNORE INTO history_instruments (venue, symbol) VALUES (?1, ?2)")?
        .execute((venue.as_str(), symbol.as_str()))?;
    instrument_id(tx, venue, symbol)?
        .ok_or_else(|| StoreError::Corrupt("instrument row vanished after insert".into()))
}

fn decimal(text: &str) -> Result<Decimal, StoreError> {
    Decimal::from_str_exact(text)
        .map_err(|_| StoreError::Corrupt(format!("stored decimal {text:?} does not parse")))
}

fn str_col<'r>(row: &'r rusqlite::Row<'_>, index: usize) -> Result<&'r str, StoreError> {
    row.get_ref(index)?
        .as_str()
        .map_err(|e| StoreError::Corrupt(format!("column {index}: {e}")))
}

fn dec_col(row: &rusqlite::Row<'_>, index: usize) -> Result<Decimal, StoreError> {
    decimal(str_col(row, index)?)
}

/// A `side` column: true is a sell.
fn side_col(row: &rusqlite::Row<'_>, index: usize) -> Result<Side, StoreError> {
    Ok(if row.get::<_, bool>(index)? {
        Side::Sell
    } else {
        Side::Buy
    })
}

/// A page of a rowid table paged by `(ts, seq)` (trades, liquidations). `sql` is the ascending
/// and the descending query, each taking (inst, from, to, cursor ts, cursor seq, limit + 1).
/// The cursor narrows the range, so the index scan starts at it, and only rows sharing its
/// `ts` need the `seq` comparison.
fn ts_seq_page<T>(
    conn: &Connection,
    q: &TradeQuery,
    sql: [&str; 2],
    read: impl Fn(&rusqlite::Row<'_>) -> Result<T, StoreError>,
    key: impl Fn(&T) -> TradeKey,
) -> Result<Page<T, TradeKey>, StoreError> {
    let Some(inst) = instrument_id(conn, &q.venue, &q.symbol)? else {
        return Ok(Page {
            rows: Vec::new(),
            next: None,
        });
    };
    let (mut lo, mut hi) = (q.from.0, q.to.0);
    let (cursor_ts, cursor_seq) = q.after.map_or((i64::MIN, 0), |k| (k.ts, k.seq));
    let sql = match q.order {
        Order::Asc => {
            lo = lo.max(cursor_ts);
            sql[0]
        }
        Order::Desc => {
            if q.after.is_some() {
                hi = hi.min(cursor_ts.saturating_add(1));
            }
            sql[1]
        }
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params![
        inst,
        lo,
        hi,
        cursor_ts,
        cursor_seq,
        q.limit as i64 + 1
    ])?;
    let mut out = Vec::with_capacity(q.limit.min(4096) + 1);
    while let Some(r) = rows.next()? {
        out.push(read(r)?);
    }
    let next = if out.len() > q.limit {
        out.truncate(q.limit);
        out.last().map(key)
    } else {
        None
    };
    Ok(Page { rows: out, next })
}

fn interval_secs(interval: Interval) -> i64 {
    interval.micros() / Timestamp::MICROS_PER_SECOND
}

/// Inserts a candle, or merges it into the stored one of the same bucket (see the trait docs).
/// Returns whether anything changed.
fn upsert_candle(tx: &Transaction<'_>, inst: i64, c: &Candle) -> Result<bool, StoreError> {
    let key = (inst, interval_secs(c.interval), c.start.0);
    let stored = tx
        .prepare_cached(
            "SELECT open, high, low, close, volume, trades, complete FROM candles
             WHERE inst = ?1 AND interval_secs = ?2 AND start = ?3",
        )?
        .query_row(key, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, bool>(6)?,
            ))
        })
        .optional()?;
    let row = match stored {
        None => c.clone(),
        Some((open, high, low, close, volume, trades, complete)) => {
            let stored = Candle {
                interval: c.interval,
                start: c.start,
                open: decimal(&open)?,
                high: decimal(&high)?,
                low: decimal(&low)?,
                close: decimal(&close)?,
                volume: decimal(&volume)?,
                trades: trades.max(0) as u64,
                closed: true,
                complete,
            };
            match merge_candle(&stored, c) {
                Some(merged) => merged,
                None => return Ok(false),
            }
        }
    };
    tx.prepare_cached(
        "INSERT OR REPLACE INTO candles
         (inst, interval_secs, start, open, high, low, close, volume, trades, complete)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        key.0,
        key.1,
        key.2,
        row.open.to_string(),
        row.high.to_string(),
        row.low.to_string(),
        row.close.to_string(),
        row.volume.to_string(),
        i64::try_from(row.trades).unwrap_or(i64::MAX),
        row.complete,
    ])?;
    Ok(true)
}

impl Writer {
    fn append(&mut self, batch: &HistoryBatch) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let mut rows = 0;
        let (mut price, mut size) = (String::with_capacity(32), String::with_capacity(32));
        {
            let mut insert = tx.prepare_cached(INSERT_TRADE)?;
            for record in &batch.records {
                let (venue, symbol) = record.instrument();
                let inst = match self.ids.get(&(venue.clone(), symbol.clone())) {
                    Some(id) => *id,
                    None => {
                        let id = create_instrument(&tx, venue, symbol)?;
                        self.ids.insert((venue.clone(), symbol.clone()), id);
                        id
                    }
                };
                match record {
                    Record::Trades { trades, .. } => {
                        for t in trades {
                            price.clear();
                            size.clear();
                            let _ = write!(price, "{}", t.price);
                            let _ = write!(size, "{}", t.size);
                            let side = matches!(t.side, Side::Sell);
                            rows += insert.execute(params![
                                inst,
                                t.exchange_ts.0,
                                t.id,
                                price,
                                size,
                                side
                            ])?;
                        }
                    }
                    Record::Candle { candle, .. } => {
                        rows += usize::from(upsert_candle(&tx, inst, candle)?);
                    }
                    Record::Funding { funding: f, .. } => {
                        rows += tx.prepare_cached(INSERT_PERP)?.execute(params![
                            inst,
                            perp_kind(HistoryKind::Funding),
                            f.ts.0,
                            f.rate.to_string(),
                            f.predicted_rate.map(|d| d.to_string()),
                            f.next_funding_ts.map(|t| t.0),
                        ])?;
                    }
                    Record::Liquidations { liquidations, .. } => {
                        let mut insert = tx.prepare_cached(INSERT_LIQUIDATION)?;
                        for l in liquidations {
                            rows += insert.execute(params![
                                inst,
                                l.ts.0,
                                matches!(l.side, Side::Sell),
                                l.price.to_string(),
                                l.size.to_string(),
                            ])?;
                        }
                    }
                    Record::OpenInterest { oi, .. } => {
                        rows += tx.prepare_cached(INSERT_PERP)?.execute(params![
                            inst,
                            perp_kind(HistoryKind::OpenInterest),
                            oi.ts.0,
                            oi.oi.to_string(),
                            oi.oi_value.map(|d| d.to_string()),
                            None::<i64>,
                        ])?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(rows)
    }
}

impl SqliteHistory {
    /// A page of `perp_history` rows of one kind.
    fn perp_rows(
        &self,
        kind: HistoryKind,
        q: &PerpQuery,
    ) -> Result<Page<PerpRow, i64>, StoreError> {
        self.read(|conn| {
            let Some(inst) = instrument_id(conn, &q.venue, &q.symbol)? else {
                return Ok(Page {
                    rows: Vec::new(),
                    next: None,
                });
            };
            let (mut lo, mut hi) = (q.from.0, q.to.0);
            let sql = match q.order {
                Order::Asc => {
                    if let Some(after) = q.after {
                        lo = lo.max(after.saturating_add(1));
                    }
                    "SELECT ts, value, extra, next_ts FROM perp_history
                     WHERE inst = ?1 AND kind = ?2 AND ts >= ?3 AND ts < ?4 ORDER BY ts LIMIT ?5"
                }
                Order::Desc => {
                    if let Some(after) = q.after {
                        hi = hi.min(after);
                    }
                    "SELECT ts, value, extra, next_ts FROM perp_history
                     WHERE inst = ?1 AND kind = ?2 AND ts >= ?3 AND ts < ?4
                     ORDER BY ts DESC LIMIT ?5"
                }
            };
            let mut stmt = conn.prepare_cached(sql)?;
            let mut rows =
                stmt.query(params![inst, perp_kind(kind), lo, hi, q.limit as i64 + 1])?;
            let mut out = Vec::with_capacity(q.limit.min(4096) + 1);
            while let Some(r) = rows.next()? {
                let extra = match r.get_ref(2)?.as_str_or_null() {
                    Ok(Some(text)) => Some(decimal(text)?),
                    Ok(None) => None,
                    Err(e) => return Err(StoreError::Corrupt(format!("column 2: {e}"))),
                };
                out.push((r.get(0)?, dec_col(r, 1)?, extra, r.get(3)?));
            }
            let next = if out.len() > q.limit {
                out.truncate(q.limit);
                out.last().map(|row| row.0)
            } else {
                None
            };
            Ok(Page { rows: out, next })
        })
    }
}

impl HistoryStore for SqliteHistory {
    fn append(&self, batch: &HistoryBatch) -> Result<usize, StoreError> {
        let mut writer = self.writer.lock();
        let result = writer.append(batch);
        if result.is_err() {
            // Ids created inside a rolled-back transaction do not exist.
            writer.ids.clear();
        }
        result
    }

    fn trades(&self, q: &TradeQuery) -> Result<Page<StoredTrade, TradeKey>, StoreError> {
        self.read(|conn| {
            ts_seq_page(
                conn,
                q,
                [
                    "SELECT seq, ts, id, price, size, side FROM trades
                     WHERE inst = ?1 AND ts >= ?2 AND ts < ?3 AND NOT (ts = ?4 AND seq <= ?5)
                     ORDER BY ts, seq LIMIT ?6",
                    "SELECT seq, ts, id, price, size, side FROM trades
                     WHERE inst = ?1 AND ts >= ?2 AND ts < ?3 AND NOT (ts = ?4 AND seq >= ?5)
                     ORDER BY ts DESC, seq DESC LIMIT ?6",
                ],
                |r| {
                    Ok(StoredTrade {
                        seq: r.get(0)?,
                        ts: Timestamp(r.get(1)?),
                        id: r.get(2)?,
                        price: dec_col(r, 3)?,
                        size: dec_col(r, 4)?,
                        side: side_col(r, 5)?,
                    })
                },
                |t| TradeKey {
                    ts: t.ts.0,
                    seq: t.seq,
                },
            )
        })
    }

    fn candles(&self, q: &CandleQuery) -> Result<Page<Candle, i64>, StoreError> {
        self.read(|conn| {
            let Some(inst) = instrument_id(conn, &q.venue, &q.symbol)? else {
                return Ok(Page {
                    rows: Vec::new(),
                    next: None,
                });
            };
            let (mut lo, mut hi) = (q.from.0, q.to.0);
            let sql = match q.order {
                Order::Asc => {
                    if let Some(after) = q.after {
                        lo = lo.max(after.saturating_add(1));
                    }
                    "SELECT start, open, high, low, close, volume, trades, complete FROM candles
                     WHERE inst = ?1 AND interval_secs = ?2 AND start >= ?3 AND start < ?4
                     ORDER BY start LIMIT ?5"
                }
                Order::Desc => {
                    if let Some(after) = q.after {
                        hi = hi.min(after);
                    }
                    "SELECT start, open, high, low, close, volume, trades, complete FROM candles
                     WHERE inst = ?1 AND interval_secs = ?2 AND start >= ?3 AND start < ?4
                     ORDER BY start DESC LIMIT ?5"
                }
            };
            let mut stmt = conn.prepare_cached(sql)?;
            let mut rows = stmt.query(params![
                inst,
                interval_secs(q.interval),
                lo,
                hi,
                q.limit as i64 + 1
            ])?;
            let mut out = Vec::with_capacity(q.limit.min(4096) + 1);
            while let Some(r) = rows.next()? {
                out.push(Candle {
                    interval: q.interval,
                    start: Timestamp(r.get(0)?),
                    open: dec_col(r, 1)?,
                    high: dec_col(r, 2)?,
                    low: dec_col(r, 3)?,
                    close: dec_col(r, 4)?,
                    volume: dec_col(r, 5)?,
                    trades: r.get::<_, i64>(6)?.max(0) as u64,
                    closed: true,
                    complete: r.get(7)?,
                });
            }
            let next = if out.len() > q.limit {
                out.truncate(q.limit);
                out.last().map(|c| c.start.0)
            } else {
                None
            };
            Ok(Page { rows: out, next })
        })
    }

    fn funding(&self, q: &PerpQuery) -> Result<Page<Funding, i64>, StoreError> {
        Ok(funding_page(self.perp_rows(HistoryKind::Funding, q)?))
    }

    fn open_interest(&self, q: &PerpQuery) -> Result<Page<OpenInterest, i64>, StoreError> {
        Ok(open_interest_page(
            self.perp_rows(HistoryKind::OpenInterest, q)?,
        ))
    }

    fn liquidations(
        &self,
        q: &TradeQuery,
    ) -> Result<Page<StoredLiquidation, TradeKey>, StoreError> {
        self.read(|conn| {
            ts_seq_page(
                conn,
                q,
                [
                    "SELECT seq, ts, side, price, size FROM liquidations
                     WHERE inst = ?1 AND ts >= ?2 AND ts < ?3 AND NOT (ts = ?4 AND seq <= ?5)
                     ORDER BY ts, seq LIMIT ?6",
                    "SELECT seq, ts, side, price, size FROM liquidations
                     WHERE inst = ?1 AND ts >= ?2 AND ts < ?3 AND NOT (ts = ?4 AND seq >= ?5)
                     ORDER BY ts DESC, seq DESC LIMIT ?6",
                ],
                |r| {
                    Ok(StoredLiquidation {
                        seq: r.get(0)?,
                        liquidation: Liquidation {
                            side: side_col(r, 2)?,
                            price: dec_col(r, 3)?,
                            size: dec_col(r, 4)?,
                            ts: Timestamp(r.get(1)?),
                        },
                    })
                },
                |l| TradeKey {
                    ts: l.liquidation.ts.0,
                    seq: l.seq,
                },
            )
        })
    }

    fn count(
        &self,
        kind: HistoryKind,
        venue: &Venue,
        symbol: &Symbol,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<u64, StoreError> {
        self.read(|conn| {
            let Some(inst) = instrument_id(conn, venue, symbol)? else {
                return Ok(0);
            };
            let n: i64 = match kind {
                HistoryKind::Trades => conn
                    .prepare_cached(
                        "SELECT count(*) FROM trades WHERE inst = ?1 AND ts >= ?2 AND ts < ?3",
                    )?
                    .query_row((inst, from.0, to.0), |r| r.get(0))?,
                HistoryKind::Candles(interval) => conn
                    .prepare_cached(
                        "SELECT count(*) FROM candles
                         WHERE inst = ?1 AND interval_secs = ?2 AND start >= ?3 AND start < ?4",
                    )?
                    .query_row((inst, interval_secs(interval), from.0, to.0), |r| r.get(0))?,
                HistoryKind::Liquidations => conn
                    .prepare_cached(
                        "SELECT count(*) FROM liquidations WHERE inst = ?1 AND ts >= ?2 AND ts < ?3",
                    )?
                    .query_row((inst, from.0, to.0), |r| r.get(0))?,
                HistoryKind::Funding | HistoryKind::OpenInterest => conn
                    .prepare_cached(
                        "SELECT count(*) FROM perp_history
                         WHERE inst = ?1 AND kind = ?2 AND ts >= ?3 AND ts < ?4",
                    )?
                    .query_row((inst, perp_kind(kind), from.0, to.0), |r| r.get(0))?,
            };
            Ok(n.max(0) as u64)
        })
    }

    fn instruments(&self) -> Result<Vec<(Venue, Symbol)>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT venue, symbol FROM history_instruments ORDER BY venue, symbol",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let venue =
                    Venue::new(str_col(r, 0)?).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let symbol =
                    Symbol::new(str_col(r, 1)?).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.push((venue, symbol));
            }
            Ok(out)
        })
    }

    fn purge(
        &self,
        kind: HistoryKind,
        cutoff: Timestamp,
        max_rows: usize,
    ) -> Result<u64, StoreError> {
        let mut writer = self.writer.lock();
        let tx = writer.conn.transaction()?;
        let insts: Vec<i64> = {
            let mut stmt = tx.prepare_cached("SELECT id FROM history_instruments ORDER BY id")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        let mut deleted = 0u64;
        for inst in insts {
            let budget = max_rows as u64 - deleted;
            if budget == 0 {
                break;
            }
            let n = match kind {
                HistoryKind::Trades => tx
                    .prepare_cached(
                        "DELETE FROM trades WHERE seq IN
                         (SELECT seq FROM trades WHERE inst = ?1 AND ts < ?2 LIMIT ?3)",
                    )?
                    .execute(params![inst, cutoff.0, budget as i64])?,
                HistoryKind::Candles(interval) => tx
                    .prepare_cached(
                        "DELETE FROM candles WHERE inst = ?1 AND interval_secs = ?2 AND start IN
                         (SELECT start FROM candles
                          WHERE inst = ?1 AND interval_secs = ?2 AND start < ?3 LIMIT ?4)",
                    )?
                    .execute(params![
                        inst,
                        interval_secs(interval),
                        cutoff.0,
                        budget as i64
                    ])?,
                HistoryKind::Liquidations => tx
                    .prepare_cached(
                        "DELETE FROM liquidations WHERE seq IN
                         (SELECT seq FROM liquidations WHERE inst = ?1 AND ts < ?2 LIMIT ?3)",
                    )?
                    .execute(params![inst, cutoff.0, budget as i64])?,
                HistoryKind::Funding | HistoryKind::OpenInterest => tx
                    .prepare_cached(
                        "DELETE FROM perp_history WHERE inst = ?1 AND kind = ?2 AND ts IN
                         (SELECT ts FROM perp_history
                          WHERE inst = ?1 AND kind = ?2 AND ts < ?3 LIMIT ?4)",
                    )?
                    .execute(params![inst, perp_kind(kind), cutoff.0, budget as i64])?,
            };
            deleted += n as u64;
        }
        tx.commit()?;
        Ok(deleted)
    }

    fn disk_usage(&self) -> Result<DiskUsage, StoreError> {
        let mut total = 0;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = self.path.as_os_str().to_owned();
            name.push(suffix);
            total += std::fs::metadata(&name).map_or(0, |m| m.len());
        }
        let free = self.read(|conn| {
            let pages: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
            let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            Ok((pages.max(0) * size.max(0)) as u64)
        })?;
        Ok(DiskUsage {
            total_bytes: total,
            free_bytes: free,
        })
    }
}
