//! Persistence off the hot path: a bounded queue between the ingest stage and one writer
//! thread that writes batches to a [`HistoryStore`] and enforces retention.
//!
//! ```text
//! ingest tasks ──HistorySink::record_*──► bounded queue (≤ queue_rows rows) ──► writer thread
//!   (never wait: a full queue drops        std sync_channel + row budget        batches of
//!    the rows and counts them)                                                 ≤ batch_rows,
//!                                                                              retention passes
//! ```
//!
//! The producers never block: when the queue is full, the rows are dropped, counted per kind
//! in [`HistoryStats::dropped`] (rendered in `/metrics`) and logged at most every 10 s. Memory
//! is bounded by `queue_rows` rows whatever the store's speed.
//!
//! **Store unavailable** (PostgreSQL down or unreachable, [`StoreError::is_unavailable`]): the
//! writer keeps the batch in hand and retries it with a backoff (50 ms doubling to 2 s) for
//! at most [`WriterSettings::unavailable_retry`] (30 s by default), while new rows wait in the
//! queue up to its bound and beyond it are dropped and counted (`queue_full`). Past the
//! window the batch is dropped and counted (`unavailable`), and the next one gets a window of
//! its own. [`HistoryStats::unavailable`] is set meanwhile (`/metrics`). Other retryable
//! errors (SQLite busy, a deadlock) are retried three times.

use crate::StoreError;
use crate::history::{HistoryBatch, HistoryKind, HistoryStore, Record};
use crate::history_config::{HistoryConfig, HistoryFilter, RetentionConfig};
use model::{Candle, Funding, Liquidation, OpenInterest, Symbol, Timestamp, Trade, Venue};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most queued records (one record is one ingest batch of an instrument's trades, or one
/// candle); the row budget usually binds first.
const MAX_QUEUED_RECORDS: usize = 16_384;
/// Rows a retention pass deletes per transaction, so writes interleave with it.
const PURGE_CHUNK: usize = 5_000;
/// Least time between two "rows dropped" log lines.
const DROP_LOG_EVERY_MICROS: i64 = 10 * Timestamp::MICROS_PER_SECOND;
/// How often the writer measures disk usage.
const DISK_USAGE_EVERY: Duration = Duration::from_secs(5);

/// Counters of the writer, per kind where indexed by [`HistoryKind::index`].
#[derive(Debug, Default)]
pub struct HistoryStats {
    /// Rows written to the store.
    pub written: [AtomicU64; HistoryKind::COUNT],
    /// Rows not stored: the queue was full, the writer was closed, or the write failed.
    pub dropped: [AtomicU64; HistoryKind::COUNT],
    /// Rows deleted by retention.
    pub purged: [AtomicU64; HistoryKind::COUNT],
    /// Rows the store already had (the same trade or candle written twice), not counted in
    /// `written`.
    pub duplicates: AtomicU64,
    /// Transactions written.
    pub batches: AtomicU64,
    /// True while the store is unavailable and the writer is holding a batch to retry.
    pub unavailable: AtomicBool,
    /// Failed writes or retention passes (details in the log).
    pub write_errors: AtomicU64,
    /// Total time spent writing batches, µs.
    pub write_micros: AtomicU64,
    /// Rows queued or being written right now.
    pub queued_rows: AtomicU64,
    /// The queue's row budget.
    pub queue_capacity: AtomicU64,
    /// Bytes the store's files take, and bytes free inside them, measured by the writer
    /// thread every few seconds (so `/metrics` never touches the database).
    pub disk_bytes: AtomicU64,
    pub free_bytes: AtomicU64,
    last_drop_log: AtomicI64,
}

impl HistoryStats {
    /// Counts rows that will not be stored, and logs it (at most every 10 s).
    pub fn count_drop(&self, kind: HistoryKind, rows: u64, reason: &'static str) {
        self.dropped[kind.index()].fetch_add(rows, Ordering::Relaxed);
        let now = Timestamp::now().0;
        let last = self.last_drop_log.load(Ordering::Relaxed);
        if now - last >= DROP_LOG_EVERY_MICROS
            && self
                .last_drop_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let total: u64 = self.dropped.iter().map(|d| d.load(Ordering::Relaxed)).sum();
            tracing::warn!(
                %kind, rows, reason, dropped_total = total,
                "history rows dropped: the store cannot keep up (live data is unaffected)"
            );
        }
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|d| d.load(Ordering::Relaxed)).sum()
    }

    pub fn written_total(&self) -> u64 {
        self.written.iter().map(|d| d.load(Ordering::Relaxed)).sum()
    }
}

/// How the writer batches and when it enforces retention.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub queue_rows: usize,
    pub batch_rows: usize,
    pub flush_interval: Duration,
    pub retention: RetentionConfig,
    pub retention_interval: Duration,
    /// How long one batch is retried while the store is unavailable before it is dropped.
    pub unavailable_retry: Duration,
}

/// Default of [`WriterSettings::unavailable_retry`].
pub const UNAVAILABLE_RETRY: Duration = Duration::from_secs(30);

impl From<&HistoryConfig> for WriterSettings {
    fn from(c: &HistoryConfig) -> Self {
        Self {
            queue_rows: c.queue_rows,
            batch_rows: c.batch_rows,
            flush_interval: Duration::from_millis(c.flush_interval_ms),
            retention: c.retention.clone(),
            retention_interval: Duration::from_secs(c.retention_interval_secs),
            unavailable_retry: UNAVAILABLE_RETRY,
        }
    }
}

#[derive(Debug)]
struct SinkInner {
    tx: SyncSender<Record>,
    filter: HistoryFilter,
    stats: Arc<HistoryStats>,
    capacity: u64,
    closing: AtomicBool,
}

/// The producers' end of the queue. Cheap to clone; every method returns at once.
#[derive(Debug, Clone)]
pub struct HistorySink {
    inner: Arc<SinkInner>,
}

impl HistorySink {
    /// Whether rows of `kind` for this instrument are stored (the `include`/`exclude` lists).
    pub fn wants(&self, kind: HistoryKind, venue: &Venue, symbol: &Symbol) -> bool {
        self.inner.filter.wants(kind, venue, symbol)
    }

    /// Queues trades, in the order received. Returns false if they were dropped (counted).
    pub fn record_trades(&self, venue: &Venue, symbol: &Symbol, trades: Vec<Trade>) -> bool {
        if trades.is_empty() {
            return true;
        }
        self.offer(Record::Trades {
            venue: venue.clone(),
            symbol: symbol.clone(),
            trades,
        })
    }

    /// Queues a closed candle. Returns false if it was dropped (counted).
    pub fn record_candle(&self, venue: &Venue, symbol: &Symbol, candle: &Candle) -> bool {
        self.offer(Record::Candle {
            venue: venue.clone(),
            symbol: symbol.clone(),
            candle: Box::new(candle.clone()),
        })
    }

    /// Queues a perpetual's funding. Returns false if it was dropped (counted).
    pub fn record_funding(&self, venue: &Venue, symbol: &Symbol, funding: &Funding) -> bool {
        self.offer(Record::Funding {
            venue: venue.clone(),
            symbol: symbol.clone(),
            funding: funding.clone(),
        })
    }

    /// Queues a perpetual's open interest. Returns false if it was dropped (counted).
    pub fn record_open_interest(&self, venue: &Venue, symbol: &Symbol, oi: &OpenInterest) -> bool {
        self.offer(Record::OpenInterest {
            venue: venue.clone(),
            symbol: symbol.clone(),
            oi: oi.clone(),
        })
    }

    /// Queues a perpetual's liquidations, in the order received. Returns false if they were
    /// dropped (counted).
    pub fn record_liquidations(
        &self,
        venue: &Venue,
        symbol: &Symbol,
        liquidations: Vec<Liquidation>,
    ) -> bool {
        if liquidations.is_empty() {
            return true;
        }
        self.offer(Record::Liquidations {
            venue: venue.clone(),
            symbol: symbol.clone(),
            liquidations,
        })
    }

    /// The least time between two stored funding or open-interest rows of one instrument, µs
    /// (`[history] perp_sample_secs`).
    pub fn perp_sample_micros(&self) -> i64 {
        self.inner.filter.perp_sample_micros()
    }

    pub fn stats(&self) -> &Arc<HistoryStats> {
        &self.inner.stats
    }

    fn offer(&self, record: Record) -> bool {
        let inner = &*self.inner;
        let (rows, kind) = (record.rows() as u64, record.kind());
        if inner.closing.load(Ordering::Relaxed) {
            inner.stats.count_drop(kind, rows, "closed");
            return false;
        }
        // Reserve room in the row budget; the gauge never exceeds the capacity.
        let queued = &inner.stats.queued_rows;
        let mut current = queued.load(Ordering::Relaxed);
        loop {
            if current + rows > inner.capacity {
                inner.stats.count_drop(kind, rows, "queue_full");
                return false;
            }
            match queued.compare_exchange_weak(
                current,
                current + rows,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        match inner.tx.try_send(record) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                queued.fetch_sub(rows, Ordering::Relaxed);
                inner.stats.count_drop(kind, rows, "queue_full");
                false
            }
        }
    }
}

/// The running writer thread.
#[derive(Debug)]
pub struct HistoryWriter {
    sink: HistorySink,
    thread: Option<JoinHandle<()>>,
}

impl HistoryWriter {
    /// Starts the writer thread over `store`.
    pub fn start(
        store: Arc<dyn HistoryStore>,
        filter: HistoryFilter,
        settings: WriterSettings,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(settings.queue_rows.clamp(1, MAX_QUEUED_RECORDS));
        let stats = Arc::new(HistoryStats::default());
        stats
            .queue_capacity
            .store(settings.queue_rows as u64, Ordering::Relaxed);
        let sink = HistorySink {
            inner: Arc::new(SinkInner {
                tx,
                filter,
                stats: stats.clone(),
                capacity: settings.queue_rows as u64,
                closing: AtomicBool::new(false),
            }),
        };
        let shared = sink.inner.clone();
        let thread = std::thread::Builder::new()
            .name("history-writer".into())
            .spawn(move || {
                let mut worker = Worker {
                    store,
                    rx,
                    sink: shared,
                    stats,
                    settings,
                };
                worker.run();
            })?;
        Ok(Self {
            sink,
            thread: Some(thread),
        })
    }

    pub fn sink(&self) -> HistorySink {
        self.sink.clone()
    }

    pub fn stats(&self) -> &Arc<HistoryStats> {
        self.sink.stats()
    }

    /// Stops accepting rows, writes every queued row, and waits for the thread. Blocks.
    pub fn close(mut self) {
        self.sink.inner.closing.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the history writer thread panicked");
        }
    }
}

impl Drop for HistoryWriter {
    fn drop(&mut self) {
        // Not joined here (it may block); the thread exits once it sees the flag.
        self.sink.inner.closing.store(true, Ordering::Relaxed);
    }
}

struct Worker {
    store: Arc<dyn HistoryStore>,
    rx: Receiver<Record>,
    sink: Arc<SinkInner>,
    stats: Arc<HistoryStats>,
    settings: WriterSettings,
}

/// How long the idle writer sleeps before looking at the closing flag again.
const IDLE_POLL: Duration = Duration::from_millis(50);

impl Worker {
    fn run(&mut self) {
        // First pass at start: the gateway may have been down longer than a retention period.
        let mut next_retention = Instant::now();
        let mut next_disk_usage = Instant::now();
        loop {
            match self.rx.recv_timeout(IDLE_POLL) {
                Ok(first) => {
                    let batch = self.gather(first);
                    self.write(batch);
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.sink.closing.load(Ordering::Relaxed) {
                        break;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= next_retention {
                self.retention_pass();
                next_retention = Instant::now() + self.settings.retention_interval;
            }
            if Instant::now() >= next_disk_usage {
                self.measure_disk_usage();
                next_disk_usage = Instant::now() + DISK_USAGE_EVERY;
            }
        }
        // Closing: write whatever is still queued.
        while let Ok(first) = self.rx.try_recv() {
            let batch = self.gather(first);
            self.write(batch);
        }
        self.measure_disk_usage();
    }

    fn measure_disk_usage(&self) {
        match self.store.disk_usage() {
            Ok(usage) => {
                self.stats
                    .disk_bytes
                    .store(usage.total_bytes, Ordering::Relaxed);
                self.stats
                    .free_bytes
                    .store(usage.free_bytes, Ordering::Relaxed);
            }
            Err(error) => tracing::debug!(error = %error, "cannot measure history disk usage"),
        }
    }

    /// Collects records until `batch_rows` rows or `flush_interval` after the first one.
    fn gather(&mut self, first: Record) -> HistoryBatch {
        let deadline = Instant::now() + self.settings.flush_interval;
        let mut rows = first.rows();
        let mut batch = HistoryBatch {
            records: vec![first],
        };
        while rows < self.settings.batch_rows {
            let next = match self.rx.try_recv() {
                Ok(record) => Ok(record),
                Err(_) if self.sink.closing.load(Ordering::Relaxed) => break,
                Err(_) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    self.rx.recv_timeout(left.min(IDLE_POLL))
                }
            };
            match next {
                Ok(record) => {
                    rows += record.rows();
                    batch.records.push(record);
                }
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        batch
    }

    fn write(&self, batch: HistoryBatch) {
        let rows = batch.rows() as u64;
        let started = Instant::now();
        let result = self.append_retrying(&batch);
        let stats = &self.stats;
        match result {
            Ok(stored) => {
                for record in &batch.records {
                    stats.written[record.kind().index()]
                        .fetch_add(record.rows() as u64, Ordering::Relaxed);
                }
                stats
                    .duplicates
                    .fetch_add(rows.saturating_sub(stored as u64), Ordering::Relaxed);
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats
                    .write_micros
                    .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
            Err(error) => {
                stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %error, rows, "history batch could not be written");
                let reason = if error.is_unavailable() {
                    "unavailable"
                } else {
                    "write_error"
                };
                for record in &batch.records {
                    stats.count_drop(record.kind(), record.rows() as u64, reason);
                }
            }
        }
        stats.queued_rows.fetch_sub(rows, Ordering::Relaxed);
    }

    /// Appends, retrying as the module documentation says.
    fn append_retrying(&self, batch: &HistoryBatch) -> Result<usize, StoreError> {
        let first = Instant::now();
        let mut backoff = Duration::from_millis(50);
        let mut retries = 0;
        loop {
            let result = self.store.append(batch);
            let error = match result {
                Ok(n) => {
                    if self.stats.unavailable.swap(false, Ordering::Relaxed) {
                        tracing::info!("the history store is available again");
                    }
                    return Ok(n);
                }
                Err(error) => error,
            };
            let closing = self.sink.closing.load(Ordering::Relaxed);
            if error.is_unavailable() {
                if !self.stats.unavailable.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %error, "the history store is unavailable: holding the batch and retrying");
                }
                if closing || first.elapsed() + backoff > self.settings.unavailable_retry {
                    return Err(error);
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
            } else if error.is_retryable() && retries < 3 {
                retries += 1;
                std::thread::sleep(Duration::from_millis(50));
            } else {
                return Err(error);
            }
        }
    }

    /// Deletes expired rows of every kind, a chunk at a time, writing queued batches between
    /// chunks so ingest keeps its queue room.
    fn retention_pass(&mut self) {
        let now = Timestamp::now();
        for kind in HistoryKind::ALL {
            let Some(cutoff) = self.settings.retention.get(kind).cutoff(now) else {
                continue;
            };
            loop {
                match self.store.purge(kind, cutoff, PURGE_CHUNK) {
                    Ok(n) => {
                        self.stats.purged[kind.index()].fetch_add(n, Ordering::Relaxed);
                        if n > 0 {
                            tracing::debug!(%kind, rows = n, "retention deleted expired rows");
                        }
                        if n < PURGE_CHUNK as u64 {
                            break;
                        }
                    }
                    Err(error) => {
                        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(%kind, error = %error, "retention pass failed");
                        break;
                    }
                }
                if let Ok(first) = self.rx.try_recv() {
                    let batch = self.gather(first);
                    self.write(batch);
                }
            }
        }
    }
}
