//! [`HistoryStore`] on PostgreSQL (`[cluster] postgres_url`): every node of a cluster reads
//! the same trades and candles; the ingest node (or a single `all` node) writes them.
//!
//! Schema (module `history` of the shared migrations, in `cluster.postgres_schema`):
//!
//! - `history_instruments (id, venue, symbol)`: one small id per instrument.
//! - `history_trades`: `seq` is an identity column (strictly increasing in insert order, never
//!   reused: the pagination tie-breaker), prices and sizes are `NUMERIC`, which keeps the
//!   scale the venue sent (`0.00100000` reads back as `0.00100000`). One unique index,
//!   `(inst, ts, id)`, is both the natural key and the range index: a range query scans it in
//!   `ts` order and sorts only the rows sharing a timestamp by `seq` (an incremental sort), so
//!   the write path maintains one index, as on SQLite.
//! - `history_candles`, keyed by `(inst, interval_secs, start)`.
//! - `history_perp`: perpetuals' funding (`kind` 1: rate, predicted rate, next funding time)
//!   and open interest (`kind` 2: base size, quote value), keyed by `(inst, kind, ts)`; a row
//!   written twice (both ingests of a venue) is skipped.
//! - `history_liquidations`: like trades (an identity `seq`), unique over `(inst, ts, sell,
//!   price, size)` since venues give liquidations no id.
//!
//! **Idempotent writes.** A trade is identified by `(instrument, exchange ts, venue trade id)`:
//! the same trade written again (by a second ingest node, or after a restart that re-received
//! it) is skipped with `ON CONFLICT DO NOTHING`. A candle identical to the stored one is the
//! same observation written twice and changes nothing; a different one for the same bucket is
//! merged in the database (`ON CONFLICT DO UPDATE`, the rule of [`crate::history`]), so two
//! writers merging the same bucket at once never lose an update.
//!
//! **Batches.** One transaction per [`HistoryBatch`]: instruments first (missing ones are
//! created in sorted order), then every trade of the batch in one `INSERT … SELECT FROM
//! unnest(…)` (arrays sent in the binary format, one round trip per 10,000 rows), then every
//! candle in one more. Rows are sent sorted by instrument, so two writers of overlapping
//! batches take their row locks in the same order and wait for each other instead of
//! deadlocking (a deadlock that happens anyway is retryable, and the writer retries).
//!
//! **Failures.** A lost or refused connection is [`StoreError::is_unavailable`]: the REST
//! layer answers `503 unavailable`, the writer keeps the batch and retries for a while (see
//! [`crate::history_writer`]). `free_bytes` of [`DiskUsage`] is always 0 here: PostgreSQL
//! reuses the space of deleted rows after (auto)vacuum and does not report it cheaply.

use crate::StoreError;
use crate::history::{
    CandleQuery, DiskUsage, HistoryBatch, HistoryKind, HistoryStore, Order, Page, PerpQuery,
    PerpRow, Record, StoredLiquidation, StoredTrade, TradeKey, TradeQuery, funding_page,
    merge_candle, open_interest_page,
};
use crate::postgres::{PgPool, migrate};
use model::{
    Candle, Decimal, Funding, Interval, Liquidation, OpenInterest, Side, Symbol, Timestamp, Venue,
};
use parking_lot::Mutex;
use postgres::{GenericClient, Row};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Schema steps of the `history` module (append-only, see [`migrate`]).
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE history_instruments (
        id INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        venue TEXT NOT NULL,
        symbol TEXT NOT NULL,
        UNIQUE (venue, symbol)
    );
    CREATE TABLE history_trades (
        seq BIGINT GENERATED ALWAYS AS IDENTITY,
        inst INTEGER NOT NULL,
        ts BIGINT NOT NULL,
        id TEXT NOT NULL,
        price NUMERIC NOT NULL,
        size NUMERIC NOT NULL,
        sell BOOLEAN NOT NULL,
        CONSTRAINT history_trades_natural UNIQUE (inst, ts, id)
    );
    CREATE TABLE history_candles (
        inst INTEGER NOT NULL,
        interval_secs INTEGER NOT NULL,
        start BIGINT NOT NULL,
        open NUMERIC NOT NULL,
        high NUMERIC NOT NULL,
        low NUMERIC NOT NULL,
        close NUMERIC NOT NULL,
        volume NUMERIC NOT NULL,
        trades BIGINT NOT NULL,
        complete BOOLEAN NOT NULL,
        PRIMARY KEY (inst, interval_secs, start)
    );
",
    "
    CREATE TABLE history_perp (
        inst INTEGER NOT NULL,
        kind SMALLINT NOT NULL,
        ts BIGINT NOT NULL,
        value NUMERIC NOT NULL,
        extra NUMERIC,
        next_ts BIGINT,
        PRIMARY KEY (inst, kind, ts)
    );
",
    "
    CREATE TABLE history_liquidations (
        seq BIGINT GENERATED ALWAYS AS IDENTITY,
        inst INTEGER NOT NULL,
        ts BIGINT NOT NULL,
        sell BOOLEAN NOT NULL,
        price NUMERIC NOT NULL,
        size NUMERIC NOT NULL,
        CONSTRAINT history_liquidations_natural UNIQUE (inst, ts, sell, price, size)
    );
",
];

const INSERT_LIQUIDATION: &str = "
    INSERT INTO history_liquidations (inst, ts, sell, price, size)
    VALUES ($1, $2, $3, $4::text::numeric, $5::text::numeric)
    ON CONFLICT ON CONSTRAINT history_liquidations_natural DO NOTHING";

const INSERT_PERP: &str = "
    INSERT INTO history_perp (inst, kind, ts, value, extra, next_ts)
    VALUES ($1, $2, $3, $4::text::numeric, $5::text::numeric, $6)
    ON CONFLICT (inst, kind, ts) DO NOTHING";

/// One `history_perp` row to insert: inst, kind, ts, value, extra, next_ts (decimals as text).
type PerpInsert = (i32, i16, i64, String, Option<String>, Option<i64>);

/// `history_perp.kind` of a perpetual's figure.
fn perp_kind(kind: HistoryKind) -> i16 {
    kind.perp_code()
}

/// Rows per `INSERT` statement (one round trip each).
const ROWS_PER_STATEMENT: usize = 10_000;

const INSERT_TRADES: &str = "
    INSERT INTO history_trades (inst, ts, id, price, size, sell)
    SELECT u.inst, u.ts, u.id, u.price::numeric, u.size::numeric, u.sell
    FROM unnest($1::int4[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::bool[])
        WITH ORDINALITY AS u (inst, ts, id, price, size, sell, ord)
    ORDER BY u.ord
    ON CONFLICT ON CONSTRAINT history_trades_natural DO NOTHING";

/// The merge of [`crate::history`] in SQL: the stored row keeps its `open`, takes the new
/// `close` and the extreme `high`/`low` (the stored value, with its scale, on a tie, like
/// [`merge_candle`]), sums
/// `volume` and `trades`, and becomes incomplete; an identical candle changes nothing.
const UPSERT_CANDLES: &str = "
    INSERT INTO history_candles AS c
        (inst, interval_secs, start, open, high, low, close, volume, trades, complete)
    SELECT u.inst, u.iv, u.start, u.open::numeric, u.high::numeric, u.low::numeric,
        u.close::numeric, u.volume::numeric, u.trades, u.complete
    FROM unnest($1::int4[], $2::int4[], $3::int8[], $4::text[], $5::text[], $6::text[],
        $7::text[], $8::text[], $9::int8[], $10::bool[])
        AS u (inst, iv, start, open, high, low, close, volume, trades, complete)
    ON CONFLICT (inst, interval_secs, start) DO UPDATE SET
        high = CASE WHEN EXCLUDED.high > c.high THEN EXCLUDED.high ELSE c.high END,
        low = CASE WHEN EXCLUDED.low < c.low THEN EXCLUDED.low ELSE c.low END,
        close = EXCLUDED.close,
        volume = c.volume + EXCLUDED.volume,
        trades = c.trades + EXCLUDED.trades,
        complete = false
    WHERE (c.open, c.high, c.low, c.close, c.volume, c.trades, c.complete)
        IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close,
            EXCLUDED.volume, EXCLUDED.trades, EXCLUDED.complete)";

/// The history store in one schema of a PostgreSQL database. Blocking, like every store: call
/// it from the writer thread or `spawn_blocking`.
#[derive(Debug)]
pub struct PgHistory {
    pool: Arc<PgPool>,
    /// Ids of instruments known to be committed (ids never change: instruments are never
    /// deleted).
    ids: Mutex<HashMap<(Venue, Symbol), i32>>,
}

impl PgHistory {
    /// Connects to `url`, works in `schema` (created if needed) and migrates it.
    pub fn open(url: &str, schema: &str) -> Result<Self, StoreError> {
        let pool = Arc::new(PgPool::open(url, schema)?);
        migrate(&pool, "history", MIGRATIONS)?;
        Ok(Self {
            pool,
            ids: Mutex::new(HashMap::new()),
        })
    }

    /// The schema this store works in.
    pub fn schema(&self) -> &str {
        self.pool.schema()
    }

    /// One round trip, to see that the database answers (`/readyz`).
    pub fn ping(&self) -> Result<(), StoreError> {
        self.pool.with(|client| {
            client.batch_execute("SELECT 1")?;
            Ok(())
        })
    }

    /// The committed id of an instrument, if it has one.
    fn lookup(
        &self,
        client: &mut impl GenericClient,
        venue: &Venue,
        symbol: &Symbol,
    ) -> Result<Option<i32>, StoreError> {
        let key = (venue.clone(), symbol.clone());
        if let Some(id) = self.ids.lock().get(&key) {
            return Ok(Some(*id));
        }
        let row = client.query_opt(
            "SELECT id FROM history_instruments WHERE venue = $1 AND symbol = $2",
            &[&venue.as_str(), &symbol.as_str()],
        )?;
        let id = row.map(|r| r.get::<_, i32>(0));
        if let Some(id) = id {
            self.ids.lock().insert(key, id);
        }
        Ok(id)
    }

    fn append_tx(
        &self,
        client: &mut postgres::Client,
        batch: &HistoryBatch,
    ) -> Result<(usize, Vec<Created>), StoreError> {
        let mut tx = client.transaction()?;
        // Instruments, in sorted order (two writers creating the same ones lock them in the
        // same order).
        let mut insts: BTreeMap<(&Venue, &Symbol), i32> = BTreeMap::new();
        for record in &batch.records {
            let (venue, symbol) = record_instrument(record);
            insts.entry((venue, symbol)).or_insert(0);
        }
        let mut created = Vec::new();
        for ((venue, symbol), id) in insts.iter_mut() {
            *id = match self.lookup(&mut tx, venue, symbol)? {
                Some(id) => id,
                None => {
                    tx.execute(
                        "INSERT INTO history_instruments (venue, symbol) VALUES ($1, $2)
                         ON CONFLICT (venue, symbol) DO NOTHING",
                        &[&venue.as_str(), &symbol.as_str()],
                    )?;
                    // A new statement: sees a row another writer committed meanwhile.
                    let new: i32 = tx
                        .query_one(
                            "SELECT id FROM history_instruments WHERE venue = $1 AND symbol = $2",
                            &[&venue.as_str(), &symbol.as_str()],
                        )?
                        .get(0);
                    created.push((((*venue).clone(), (*symbol).clone()), new));
                    new
                }
            };
        }
        let id_of = |record: &Record| insts[&record_instrument(record)];

        // Trades, grouped by instrument (stable: each instrument's trades keep their order).
        let mut trade_records: Vec<(i32, &Record)> = batch
            .records
            .iter()
            .filter(|r| matches!(r, Record::Trades { .. }))
            .map(|r| (id_of(r), r))
            .collect();
        trade_records.sort_by_key(|(inst, _)| *inst);
        let mut rows = 0;
        let mut cols = TradeColumns::default();
        for (inst, record) in trade_records {
            let Record::Trades { trades, .. } = record else {
                continue;
            };
            for t in trades {
                cols.push(inst, t);
                if cols.len() >= ROWS_PER_STATEMENT {
                    rows += cols.insert(&mut tx)?;
                }
            }
        }
        rows += cols.insert(&mut tx)?;

        // Candles: repeated buckets merged here first (one statement may not update a row
        // twice), in key order.
        let mut candles: BTreeMap<(i32, i32, i64), Candle> = BTreeMap::new();
        for record in &batch.records {
            let Record::Candle { candle, .. } = record else {
                continue;
            };
            let key = (
                id_of(record),
                interval_secs(candle.interval),
                candle.start.0,
            );
            match candles.get_mut(&key) {
                Some(stored) => {
                    if let Some(merged) = merge_candle(stored, candle) {
                        *stored = merged;
                    }
                }
                None => {
                    candles.insert(key, (**candle).clone());
                }
            }
        }
        let mut cols = CandleColumns::default();
        for ((inst, iv, _), candle) in &candles {
            cols.push(*inst, *iv, candle);
        }
        rows += cols.upsert(&mut tx)?;

        // Funding and open interest: few rows, one statement each, in key order.
        let mut perp: Vec<PerpInsert> = Vec::new();
        for record in &batch.records {
            match record {
                Record::Funding { funding: f, .. } => perp.push((
                    id_of(record),
                    perp_kind(HistoryKind::Funding),
                    f.ts.0,
                    f.rate.to_string(),
                    f.predicted_rate.map(|d| d.to_string()),
                    f.next_funding_ts.map(|t| t.0),
                )),
                Record::OpenInterest { oi, .. } => perp.push((
                    id_of(record),
                    perp_kind(HistoryKind::OpenInterest),
                    oi.ts.0,
                    oi.oi.to_string(),
                    oi.oi_value.map(|d| d.to_string()),
                    None,
                )),
                Record::Trades { .. } | Record::Candle { .. } | Record::Liquidations { .. } => {}
            }
        }
        if !perp.is_empty() {
            perp.sort_by_key(|row| (row.0, row.1, row.2));
            let insert = tx.prepare(INSERT_PERP)?;
            for (inst, kind, ts, value, extra, next) in &perp {
                rows += tx.execute(&insert, &[inst, kind, ts, value, extra, next])? as usize;
            }
        }
        // Liquidations: few, one statement each, instruments in id order.
        let mut liquidation_records: Vec<(i32, &Record)> = batch
            .records
            .iter()
            .filter(|r| matches!(r, Record::Liquidations { .. }))
            .map(|r| (id_of(r), r))
            .collect();
        if !liquidation_records.is_empty() {
            liquidation_records.sort_by_key(|(inst, _)| *inst);
            let insert = tx.prepare(INSERT_LIQUIDATION)?;
            for (inst, record) in liquidation_records {
                let Record::Liquidations { liquidations, .. } = record else {
                    continue;
                };
                for l in liquidations {
                    let sell = matches!(l.side, Side::Sell);
                    let (price, size) = (l.price.to_string(), l.size.to_string());
                    rows += tx.execute(&insert, &[&inst, &l.ts.0, &sell, &price, &size])? as usize;
                }
            }
        }
        tx.commit()?;
        Ok((rows, created))
    }
}

/// An instrument created by a write, with its id (cached once the write committed).
type Created = ((Venue, Symbol), i32);

fn record_instrument(record: &Record) -> (&Venue, &Symbol) {
    record.instrument()
}

fn interval_secs(interval: Interval) -> i32 {
    i32::try_from(interval.micros() / Timestamp::MICROS_PER_SECOND).unwrap_or(i32::MAX)
}

/// Column arrays of trades waiting to be inserted.
#[derive(Default)]
struct TradeColumns {
    inst: Vec<i32>,
    ts: Vec<i64>,
    id: Vec<String>,
    price: Vec<String>,
    size: Vec<String>,
    sell: Vec<bool>,
}

impl TradeColumns {
    fn len(&self) -> usize {
        self.inst.len()
    }

    fn push(&mut self, inst: i32, t: &model::Trade) {
        self.inst.push(inst);
        self.ts.push(t.exchange_ts.0);
        self.id.push(t.id.clone());
        self.price.push(t.price.to_string());
        self.size.push(t.size.to_string());
        self.sell.push(matches!(t.side, Side::Sell));
    }

    /// Inserts and clears the columns; returns the rows inserted (duplicates are skipped).
    fn insert(&mut self, tx: &mut impl GenericClient) -> Result<usize, StoreError> {
        if self.inst.is_empty() {
            return Ok(0);
        }
        let n = tx.execute(
            INSERT_TRADES,
            &[
                &self.inst,
                &self.ts,
                &self.id,
                &self.price,
                &self.size,
                &self.sell,
            ],
        )?;
        *self = Self::default();
        Ok(n as usize)
    }
}

/// Column arrays of candles waiting to be upserted.
#[derive(Default)]
struct CandleColumns {
    inst: Vec<i32>,
    iv: Vec<i32>,
    start: Vec<i64>,
    open: Vec<String>,
    high: Vec<String>,
    low: Vec<String>,
    close: Vec<String>,
    volume: Vec<String>,
    trades: Vec<i64>,
    complete: Vec<bool>,
}

impl CandleColumns {
    fn push(&mut self, inst: i32, iv: i32, c: &Candle) {
        self.inst.push(inst);
        self.iv.push(iv);
        self.start.push(c.start.0);
        self.open.push(c.open.to_string());
        self.high.push(c.high.to_string());
        self.low.push(c.low.to_string());
        self.close.push(c.close.to_string());
        self.volume.push(c.volume.to_string());
        self.trades
            .push(i64::try_from(c.trades).unwrap_or(i64::MAX));
        self.complete.push(c.complete);
    }

    /// Returns the candles inserted or changed.
    fn upsert(&self, tx: &mut impl GenericClient) -> Result<usize, StoreError> {
        if self.inst.is_empty() {
            return Ok(0);
        }
        let n = tx.execute(
            UPSERT_CANDLES,
            &[
                &self.inst,
                &self.iv,
                &self.start,
                &self.open,
                &self.high,
                &self.low,
                &self.close,
                &self.volume,
                &self.trades,
                &self.complete,
            ],
        )?;
        Ok(n as usize)
    }
}

fn decimal(row: &Row, index: usize) -> Result<Decimal, StoreError> {
    let text: &str = row.try_get(index)?;
    Decimal::from_str_exact(text)
        .map_err(|_| StoreError::Corrupt(format!("stored decimal {text:?} does not parse")))
}

/// A `sell` column as the side.
fn side(row: &Row, index: usize) -> Result<Side, StoreError> {
    Ok(if row.try_get::<_, bool>(index)? {
        Side::Sell
    } else {
        Side::Buy
    })
}

fn empty<T, K>() -> Page<T, K> {
    Page {
        rows: Vec::new(),
        next: None,
    }
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX - 1) + 1
}

impl PgHistory {
    /// A page of a table paged by `(ts, seq)` (trades, liquidations). `sql` is the ascending
    /// and the descending query, each taking (inst, from, to, cursor ts, cursor seq,
    /// limit + 1). The cursor narrows the range (the index scan starts at it); only rows
    /// sharing its `ts` need the `seq` comparison.
    fn ts_seq_page<T: Send>(
        &self,
        q: &TradeQuery,
        sql: [&str; 2],
        read: impl Fn(&Row) -> Result<T, StoreError> + Sync,
        key: impl Fn(&T) -> TradeKey + Send,
    ) -> Result<Page<T, TradeKey>, StoreError> {
        self.pool.with(|client| {
            let Some(inst) = self.lookup(client, &q.venue, &q.symbol)? else {
                return Ok(empty());
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
            let found = client.query(
                sql,
                &[
                    &inst,
                    &lo,
                    &hi,
                    &cursor_ts,
                    &cursor_seq,
                    &limit_param(q.limit),
                ],
            )?;
            let mut out = found.iter().map(&read).collect::<Result<Vec<T>, _>>()?;
            let next = if out.len() > q.limit {
                out.truncate(q.limit);
                out.last().map(key)
            } else {
                None
            };
            Ok(Page { rows: out, next })
        })
    }

    /// A page of `history_perp` rows of one kind.
    fn perp_rows(
        &self,
        kind: HistoryKind,
        q: &PerpQuery,
    ) -> Result<Page<PerpRow, i64>, StoreError> {
        self.pool.with(|client| {
            let Some(inst) = self.lookup(client, &q.venue, &q.symbol)? else {
                return Ok(empty());
            };
            let (mut lo, mut hi) = (q.from.0, q.to.0);
            let sql = match q.order {
                Order::Asc => {
                    if let Some(after) = q.after {
                        lo = lo.max(after.saturating_add(1));
                    }
                    "SELECT ts, value::text, extra::text, next_ts FROM history_perp
                     WHERE inst = $1 AND kind = $2 AND ts >= $3 AND ts < $4 ORDER BY ts LIMIT $5"
                }
                Order::Desc => {
                    if let Some(after) = q.after {
                        hi = hi.min(after);
                    }
                    "SELECT ts, value::text, extra::text, next_ts FROM history_perp
                     WHERE inst = $1 AND kind = $2 AND ts >= $3 AND ts < $4
                     ORDER BY ts DESC LIMIT $5"
                }
            };
            let found = client.query(
                sql,
                &[&inst, &perp_kind(kind), &lo, &hi, &limit_param(q.limit)],
            )?;
            let mut out = Vec::with_capacity(found.len());
            for r in &found {
                let extra = match r.try_get::<_, Option<&str>>(2)? {
                    Some(text) => Some(Decimal::from_str_exact(text).map_err(|_| {
                        StoreError::Corrupt(format!("stored decimal {text:?} does not parse"))
                    })?),
                    None => None,
                };
                out.push((r.try_get(0)?, decimal(r, 1)?, extra, r.try_get(3)?));
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

impl HistoryStore for PgHistory {
    fn append(&self, batch: &HistoryBatch) -> Result<usize, StoreError> {
        if batch.records.is_empty() {
            return Ok(0);
        }
        let (rows, created) = self.pool.with(|client| self.append_tx(client, batch))?;
        // Only now are the new instruments' ids committed.
        self.ids.lock().extend(created);
        Ok(rows)
    }

    fn trades(&self, q: &TradeQuery) -> Result<Page<StoredTrade, TradeKey>, StoreError> {
        self.ts_seq_page(
            q,
            [
                "SELECT seq, ts, id, price::text, size::text, sell FROM history_trades
                 WHERE inst = $1 AND ts >= $2 AND ts < $3 AND NOT (ts = $4 AND seq <= $5)
                 ORDER BY ts, seq LIMIT $6",
                "SELECT seq, ts, id, price::text, size::text, sell FROM history_trades
                 WHERE inst = $1 AND ts >= $2 AND ts < $3 AND NOT (ts = $4 AND seq >= $5)
                 ORDER BY ts DESC, seq DESC LIMIT $6",
            ],
            |r| {
                Ok(StoredTrade {
                    seq: r.try_get(0)?,
                    ts: Timestamp(r.try_get(1)?),
                    id: r.try_get(2)?,
                    price: decimal(r, 3)?,
                    size: decimal(r, 4)?,
                    side: side(r, 5)?,
                })
            },
            |t| TradeKey {
                ts: t.ts.0,
                seq: t.seq,
            },
        )
    }

    fn candles(&self, q: &CandleQuery) -> Result<Page<Candle, i64>, StoreError> {
        self.pool.with(|client| {
            let Some(inst) = self.lookup(client, &q.venue, &q.symbol)? else {
                return Ok(empty());
            };
            let (mut lo, mut hi) = (q.from.0, q.to.0);
            let sql = match q.order {
                Order::Asc => {
                    if let Some(after) = q.after {
                        lo = lo.max(after.saturating_add(1));
                    }
                    "SELECT start, open::text, high::text, low::text, close::text,
                        volume::text, trades, complete FROM history_candles
                     WHERE inst = $1 AND interval_secs = $2 AND start >= $3 AND start < $4
                     ORDER BY start LIMIT $5"
                }
                Order::Desc => {
                    if let Some(after) = q.after {
                        hi = hi.min(after);
                    }
                    "SELECT start, open::text, high::text, low::text, close::text,
                        volume::text, trades, complete FROM history_candles
                     WHERE inst = $1 AND interval_secs = $2 AND start >= $3 AND start < $4
                     ORDER BY start DESC LIMIT $5"
                }
            };
            let found = client.query(
                sql,
                &[
                    &inst,
                    &interval_secs(q.interval),
                    &lo,
                    &hi,
                    &limit_param(q.limit),
                ],
            )?;
            let mut out = Vec::with_capacity(found.len());
            for r in &found {
                out.push(Candle {
                    interval: q.interval,
                    start: Timestamp(r.try_get(0)?),
                    open: decimal(r, 1)?,
                    high: decimal(r, 2)?,
                    low: decimal(r, 3)?,
                    close: decimal(r, 4)?,
                    volume: decimal(r, 5)?,
                    trades: r.try_get::<_, i64>(6)?.max(0) as u64,
                    closed: true,
                    complete: r.try_get(7)?,
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
        self.ts_seq_page(
            q,
            [
                "SELECT seq, ts, sell, price::text, size::text FROM history_liquidations
                 WHERE inst = $1 AND ts >= $2 AND ts < $3 AND NOT (ts = $4 AND seq <= $5)
                 ORDER BY ts, seq LIMIT $6",
                "SELECT seq, ts, sell, price::text, size::text FROM history_liquidations
                 WHERE inst = $1 AND ts >= $2 AND ts < $3 AND NOT (ts = $4 AND seq >= $5)
                 ORDER BY ts DESC, seq DESC LIMIT $6",
            ],
            |r| {
                Ok(StoredLiquidation {
                    seq: r.try_get(0)?,
                    liquidation: Liquidation {
                        side: side(r, 2)?,
                        price: decimal(r, 3)?,
                        size: decimal(r, 4)?,
                        ts: Timestamp(r.try_get(1)?),
                    },
                })
            },
            |l| TradeKey {
                ts: l.liquidation.ts.0,
                seq: l.seq,
            },
        )
    }

    fn count(
        &self,
        kind: HistoryKind,
        venue: &Venue,
        symbol: &Symbol,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<u64, StoreError> {
        self.pool.with(|client| {
            let Some(inst) = self.lookup(client, venue, symbol)? else {
                return Ok(0);
            };
            let n: i64 = match kind {
                HistoryKind::Trades => client
                    .query_one(
                        "SELECT count(*) FROM history_trades
                         WHERE inst = $1 AND ts >= $2 AND ts < $3",
                        &[&inst, &from.0, &to.0],
                    )?
                    .try_get(0)?,
                HistoryKind::Candles(interval) => client
                    .query_one(
                        "SELECT count(*) FROM history_candles
                         WHERE inst = $1 AND interval_secs = $2 AND start >= $3 AND start < $4",
                        &[&inst, &interval_secs(interval), &from.0, &to.0],
                    )?
                    .try_get(0)?,
                HistoryKind::Liquidations => client
                    .query_one(
                        "SELECT count(*) FROM history_liquidations
                         WHERE inst = $1 AND ts >= $2 AND ts < $3",
                        &[&inst, &from.0, &to.0],
                    )?
                    .try_get(0)?,
                HistoryKind::Funding | HistoryKind::OpenInterest => client
                    .query_one(
                        "SELECT count(*) FROM history_perp
                         WHERE inst = $1 AND kind = $2 AND ts >= $3 AND ts < $4",
                        &[&inst, &perp_kind(kind), &from.0, &to.0],
                    )?
                    .try_get(0)?,
            };
            Ok(n.max(0) as u64)
        })
    }

    fn instruments(&self) -> Result<Vec<(Venue, Symbol)>, StoreError> {
        self.pool.with(|client| {
            let rows = client.query(
                "SELECT venue, symbol FROM history_instruments ORDER BY venue, symbol",
                &[],
            )?;
            rows.iter()
                .map(|r| {
                    let venue = Venue::new(r.try_get::<_, &str>(0)?)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    let symbol = Symbol::new(r.try_get::<_, &str>(1)?)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    Ok((venue, symbol))
                })
                .collect()
        })
    }

    fn purge(
        &self,
        kind: HistoryKind,
        cutoff: Timestamp,
        max_rows: usize,
    ) -> Result<u64, StoreError> {
        self.pool.with(|client| {
            let mut tx = client.transaction()?;
            let insts: Vec<i32> = tx
                .query("SELECT id FROM history_instruments ORDER BY id", &[])?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            let mut deleted = 0u64;
            for inst in insts {
                let budget = max_rows as u64 - deleted;
                if budget == 0 {
                    break;
                }
                let budget = i64::try_from(budget).unwrap_or(i64::MAX);
                // Row addresses from the index range, deleted by address: one index scan.
                let n = match kind {
                    HistoryKind::Trades => tx.execute(
                        "DELETE FROM history_trades WHERE ctid = ANY (ARRAY(
                            SELECT ctid FROM history_trades
                            WHERE inst = $1 AND ts < $2 LIMIT $3))",
                        &[&inst, &cutoff.0, &budget],
                    )?,
                    HistoryKind::Candles(interval) => tx.execute(
                        "DELETE FROM history_candles WHERE ctid = ANY (ARRAY(
                            SELECT ctid FROM history_candles
                            WHERE inst = $1 AND interval_secs = $2 AND start < $3 LIMIT $4))",
                        &[&inst, &interval_secs(interval), &cutoff.0, &budget],
                    )?,
                    HistoryKind::Liquidations => tx.execute(
                        "DELETE FROM history_liquidations WHERE ctid = ANY (ARRAY(
                            SELECT ctid FROM history_liquidations
                            WHERE inst = $1 AND ts < $2 LIMIT $3))",
                        &[&inst, &cutoff.0, &budget],
                    )?,
                    HistoryKind::Funding | HistoryKind::OpenInterest => tx.execute(
                        "DELETE FROM history_perp WHERE ctid = ANY (ARRAY(
                            SELECT ctid FROM history_perp
                            WHERE inst = $1 AND kind = $2 AND ts < $3 LIMIT $4))",
                        &[&inst, &perp_kind(kind), &cutoff.0, &budget],
                    )?,
                };
                deleted += n;
            }
            tx.commit()?;
            Ok(deleted)
        })
    }

    fn disk_usage(&self) -> Result<DiskUsage, StoreError> {
        self.pool.with(|client| {
            let total: i64 = client
                .query_one(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::int8
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = current_schema() AND c.relkind = 'r'
                       AND c.relname IN
                           ('history_instruments', 'history_trades', 'history_candles',
                            'history_perp', 'history_liquidations')",
                    &[],
                )?
                .try_get(0)?;
            Ok(DiskUsage {
                total_bytes: total.max(0) as u64,
                free_bytes: 0,
            })
        })
    }
}
