//! The writer: batching off the hot path, a deliberately slow store, retention passes.

use crate::fixtures::*;
use model::{Interval, Side, Timestamp};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use store::history::{CandleQuery, DiskUsage, Page, StoredTrade, TradeKey};
use store::{
    HistoryBatch, HistoryConfig, HistoryKind, HistoryStore, HistoryWriter, Order, SqliteHistory,
    StoreError, TradeQuery, WriterSettings,
};

/// A store that takes `delay` for every write: a disk that cannot keep up.
#[derive(Debug)]
struct SlowStore {
    inner: SqliteHistory,
    delay: Duration,
}

impl HistoryStore for SlowStore {
    fn append(&self, batch: &HistoryBatch) -> Result<usize, StoreError> {
        std::thread::sleep(self.delay);
        self.inner.append(batch)
    }
    fn trades(&self, q: &TradeQuery) -> Result<Page<StoredTrade, TradeKey>, StoreError> {
        self.inner.trades(q)
    }
    fn candles(&self, q: &CandleQuery) -> Result<Page<model::Candle, i64>, StoreError> {
        self.inner.candles(q)
    }
    fn funding(&self, q: &store::PerpQuery) -> Result<Page<model::Funding, i64>, StoreError> {
        self.inner.funding(q)
    }
    fn open_interest(
        &self,
        q: &store::PerpQuery,
    ) -> Result<Page<model::OpenInterest, i64>, StoreError> {
        self.inner.open_interest(q)
    }
    fn liquidations(
        &self,
        q: &TradeQuery,
    ) -> Result<Page<store::StoredLiquidation, TradeKey>, StoreError> {
        self.inner.liquidations(q)
    }
    fn count(
        &self,
        k: HistoryKind,
        v: &model::Venue,
        s: &model::Symbol,
        f: Timestamp,
        t: Timestamp,
    ) -> Result<u64, StoreError> {
        self.inner.count(k, v, s, f, t)
    }
    fn instruments(&self) -> Result<Vec<(model::Venue, model::Symbol)>, StoreError> {
        self.inner.instruments()
    }
    fn purge(&self, k: HistoryKind, c: Timestamp, m: usize) -> Result<u64, StoreError> {
        self.inner.purge(k, c, m)
    }
    fn disk_usage(&self) -> Result<DiskUsage, StoreError> {
        self.inner.disk_usage()
    }
}

fn settings(queue_rows: usize) -> WriterSettings {
    WriterSettings {
        queue_rows,
        batch_rows: 10_000,
        flush_interval: Duration::from_millis(20),
        ..WriterSettings::from(&HistoryConfig::default())
    }
}

fn count_all(store: &dyn HistoryStore) -> u64 {
    store
        .count(
            HistoryKind::Trades,
            &v("sim"),
            &s("BTC-USDT"),
            Timestamp(i64::MIN),
            Timestamp(i64::MAX),
        )
        .unwrap()
}

#[test]
fn every_row_is_written_when_the_store_keeps_up() {
    let store = Arc::new(SqliteHistory::open_in(&temp_dir("writer-ok")).unwrap());
    let filter = HistoryConfig::default().validate().unwrap();
    let writer = HistoryWriter::start(store.clone(), filter, settings(100_000)).unwrap();
    let sink = writer.sink();
    // Recent times: a retention pass runs at start and would delete 1970's trades.
    let now = Timestamp::now().0;
    for batch in 0..200 {
        let trades = (0..50)
            .map(|i| trade("t", "1.5", "2", Side::Buy, now + batch * 100 + i))
            .collect();
        assert!(sink.record_trades(&v("sim"), &s("BTC-USDT"), trades));
    }
    let candle = candle(
        Interval::M1,
        Interval::M1.bucket_start(Timestamp(now)).0,
        ["1", "2", "1", "2"],
        "3",
        4,
        true,
    );
    assert!(sink.record_candle(&v("sim"), &s("BTC-USDT"), &candle));
    let stats = writer.stats().clone();
    writer.close();
    assert_eq!(count_all(&*store), 10_000, "close writes everything queued");
    assert_eq!(
        stats.written[HistoryKind::Trades.index()].load(Ordering::Relaxed),
        10_000
    );
    assert_eq!(
        stats.written[HistoryKind::Candles(Interval::M1).index()].load(Ordering::Relaxed),
        1
    );
    assert_eq!(
        (
            stats.dropped_total(),
            stats.queued_rows.load(Ordering::Relaxed)
        ),
        (0, 0)
    );
    assert!(
        stats.batches.load(Ordering::Relaxed) < 200,
        "rows were batched"
    );
    assert!(
        stats.disk_bytes.load(Ordering::Relaxed) > 100_000,
        "disk usage is measured"
    );
    assert!(!sink.record_trades(
        &v("sim"),
        &s("BTC-USDT"),
        vec![trade("x", "1", "1", Side::Buy, 1)]
    ));
    assert_eq!(
        stats.dropped_total(),
        1,
        "rows offered after close are counted as dropped"
    );
}

#[test]
fn a_slow_store_never_blocks_producers_and_drops_are_counted() {
    let inner = SqliteHistory::open_in(&temp_dir("writer-slow")).unwrap();
    let store = Arc::new(SlowStore {
        inner,
        delay: Duration::from_millis(100),
    });
    let filter = HistoryConfig::default().validate().unwrap();
    let capacity = 5_000;
    let writer = HistoryWriter::start(store.clone(), filter, settings(capacity)).unwrap();
    let sink = writer.sink();
    let stats = writer.stats().clone();
    let (mut offered, mut accepted, mut slowest, mut peak) = (0u64, 0u64, Duration::ZERO, 0u64);
    let mut slow_offers = 0;
    let started = Instant::now();
    let now = Timestamp::now().0;
    // 2,000 ingest batches of 100 trades as fast as possible: far more than the store takes.
    for batch in 0..2_000 {
        let trades = (0..100)
            .map(|i| trade("t", "1", "1", Side::Sell, now + batch * 1_000 + i))
            .collect();
        let t = Instant::now();
        if sink.record_trades(&v("sim"), &s("BTC-USDT"), trades) {
            accepted += 100;
        }
        slowest = slowest.max(t.elapsed());
        slow_offers += usize::from(t.elapsed() > Duration::from_millis(50));
        offered += 100;
        peak = peak.max(stats.queued_rows.load(Ordering::Relaxed));
    }
    let producing = started.elapsed();
    assert!(
        producing < Duration::from_millis(1000),
        "producers took {producing:?}"
    );
    // A waiting producer would block ~100 ms per store write, ~200 times; allow a couple of
    // scheduler hiccups on a loaded machine.
    assert!(
        slow_offers <= 2,
        "{slow_offers} offers took over 50 ms (slowest {slowest:?}): producers waited"
    );
    assert!(
        peak <= capacity as u64,
        "queue grew to {peak} rows past its {capacity} budget"
    );
    let dropped = stats.dropped[HistoryKind::Trades.index()].load(Ordering::Relaxed);
    assert!(dropped > 100_000, "dropped {dropped}");
    writer.close();
    let written = count_all(&*store);
    assert_eq!(written, accepted, "every accepted row is written");
    assert_eq!(
        written + stats.dropped_total(),
        offered,
        "every offered row is written or counted"
    );
}

#[test]
fn retention_passes_delete_expired_rows_of_each_kind() {
    let store = Arc::new(SqliteHistory::open_in(&temp_dir("writer-retention")).unwrap());
    let now = Timestamp::now().0;
    let hour = 3_600_000_000;
    let old = trade("old", "1", "1", Side::Buy, now - 2 * hour);
    let fresh = trade("fresh", "1", "1", Side::Buy, now - hour / 2);
    let old_candle = candle(
        Interval::M1,
        Interval::M1.bucket_start(Timestamp(now - 2 * hour)).0,
        ["1", "1", "1", "1"],
        "1",
        1,
        true,
    );
    let old_daily = candle(
        Interval::D1,
        Interval::D1
            .bucket_start(Timestamp(now - 400 * 24 * hour))
            .0,
        ["1", "1", "1", "1"],
        "1",
        1,
        true,
    );
    store
        .append(&HistoryBatch {
            records: vec![
                store::Record::Trades {
                    venue: v("sim"),
                    symbol: s("BTC-USDT"),
                    trades: vec![old, fresh],
                },
                store::Record::Candle {
                    venue: v("sim"),
                    symbol: s("BTC-USDT"),
                    candle: Box::new(old_candle),
                },
                store::Record::Candle {
                    venue: v("sim"),
                    symbol: s("BTC-USDT"),
                    candle: Box::new(old_daily),
                },
            ],
        })
        .unwrap();
    let mut config = HistoryConfig::default();
    config.retention.trades = "1h".parse().unwrap();
    config.retention.candles_1m = "90m".parse().unwrap();
    let filter = config.validate().unwrap();
    let writer =
        HistoryWriter::start(store.clone(), filter, WriterSettings::from(&config)).unwrap();
    let stats = writer.stats().clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats.purged[HistoryKind::Candles(Interval::M1).index()].load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "no retention pass ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    writer.close();
    let left = store
        .trades(&TradeQuery {
            venue: v("sim"),
            symbol: s("BTC-USDT"),
            from: Timestamp(0),
            to: Timestamp(i64::MAX),
            order: Order::Asc,
            after: None,
            limit: 10,
        })
        .unwrap();
    assert_eq!(
        left.rows.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["fresh"]
    );
    assert_eq!(
        stats.purged[HistoryKind::Trades.index()].load(Ordering::Relaxed),
        1
    );
    let daily = store
        .count(
            HistoryKind::Candles(Interval::D1),
            &v("sim"),
            &s("BTC-USDT"),
            Timestamp(i64::MIN),
            Timestamp(i64::MAX),
        )
        .unwrap();
    assert_eq!(daily, 1, "1d candles are kept forever by default");
}
