//! The contract on PostgreSQL (a fresh schema per test, dropped afterwards), plus what only a
//! shared store has: several writers at once, and a database that is not there.

use crate::fixtures::*;
use crate::support::pg::Schema;
use model::{Interval, Side, Timestamp};
use std::collections::BTreeSet;
use std::ops::Deref;
use store::history_postgres::PgHistory;
use store::{
    CandleQuery, HistoryBatch, HistoryKind, HistoryStore, Order, Record, StoreError, TradeQuery,
};

/// A store in its own schema; the schema is dropped after the store (fields drop in order).
pub struct Fixture {
    store: PgHistory,
    _schema: Schema,
}

impl Deref for Fixture {
    type Target = PgHistory;
    fn deref(&self) -> &PgHistory {
        &self.store
    }
}

fn fresh(tag: &str) -> Option<Fixture> {
    let schema = Schema::new(tag)?;
    let store = PgHistory::open(&schema.url, &schema.name).unwrap();
    Some(Fixture {
        store,
        _schema: schema,
    })
}

crate::contract_tests!(contract_postgres, fresh("hist"));

fn trades_of(symbol: &str, range: std::ops::Range<usize>) -> Record {
    Record::Trades {
        venue: v("sim"),
        symbol: s(symbol),
        trades: range
            .map(|i| {
                let side = if i % 3 == 0 { Side::Sell } else { Side::Buy };
                // Several trades share each timestamp, so the key needs the id too.
                trade(
                    &i.to_string(),
                    "100.10",
                    "0.001",
                    side,
                    1_000 + (i as i64 / 4),
                )
            })
            .collect(),
    }
}

fn all_seqs(store: &dyn HistoryStore, symbol: &str) -> Vec<(i64, String)> {
    let mut query = TradeQuery {
        venue: v("sim"),
        symbol: s(symbol),
        from: Timestamp(i64::MIN),
        to: Timestamp(i64::MAX),
        order: Order::Asc,
        after: None,
        limit: 1_000,
    };
    let mut out = Vec::new();
    loop {
        let page = store.trades(&query).unwrap();
        out.extend(page.rows.into_iter().map(|t| (t.seq, t.id)));
        match page.next {
            Some(next) => query.after = Some(next),
            None => return out,
        }
    }
}

/// Two ingest nodes write the same trades and candles at once, cut into different batches and
/// in a different instrument order: every trade is stored once, no write deadlocks for good,
/// and the candles are what one writer alone would have stored.
#[test]
fn two_writers_of_the_same_rows_store_each_row_once() {
    let Some(schema) = Schema::new("hist_race") else {
        return;
    };
    let open = || PgHistory::open(&schema.url, &schema.name).unwrap();
    let (a, b) = (open(), open());
    const N: usize = 4_000;
    let symbols = ["BTC-USDT", "ETH-USDT", "SOL-USDT"];
    let min = Interval::M1.micros();
    let candles = |symbol: &str| -> Vec<Record> {
        (0..20)
            .map(|i| Record::Candle {
                venue: v("sim"),
                symbol: s(symbol),
                candle: Box::new(candle(
                    Interval::M1,
                    i * min,
                    ["10.0", "12.5", "9.5", "11.0"],
                    "3.25",
                    7,
                    true,
                )),
            })
            .collect()
    };
    let write = |store: &PgHistory, node: usize, step: usize| {
        let mut retries = 0;
        let mut start = 0;
        while start < N {
            let end = (start + step).min(N);
            let mut records: Vec<Record> = symbols
                .iter()
                .map(|sym| trades_of(sym, start..end))
                .collect();
            if node == 1 {
                records.reverse();
            }
            if start == 0 {
                for sym in symbols {
                    records.extend(candles(sym));
                }
            }
            let batch = HistoryBatch { records };
            loop {
                match store.append(&batch) {
                    Ok(_) => break,
                    Err(e) if e.is_retryable() && retries < 50 => retries += 1,
                    Err(e) => panic!("node {node}: {e}"),
                }
            }
            start = end;
        }
        retries
    };
    let (ra, rb) = std::thread::scope(|scope| {
        let ta = scope.spawn(|| write(&a, 0, 250));
        let tb = scope.spawn(|| write(&b, 1, 333));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    eprintln!("retries after a deadlock or serialization failure: {ra} + {rb}");
    for symbol in symbols {
        for store in [&a, &b] {
            let rows = all_seqs(store, symbol);
            assert_eq!(rows.len(), N, "{symbol}: every trade once");
            let ids: BTreeSet<&str> = rows.iter().map(|(_, id)| id.as_str()).collect();
            assert_eq!(ids.len(), N, "{symbol}: no duplicate");
            let seqs: BTreeSet<i64> = rows.iter().map(|(seq, _)| *seq).collect();
            assert_eq!(seqs.len(), N, "{symbol}: seq is unique");
        }
        let page = a
            .candles(&CandleQuery {
                venue: v("sim"),
                symbol: s(symbol),
                interval: Interval::M1,
                from: Timestamp(0),
                to: Timestamp(i64::MAX),
                order: Order::Asc,
                after: None,
                limit: 100,
            })
            .unwrap();
        assert_eq!(page.rows.len(), 20);
        for c in &page.rows {
            assert_eq!(
                (c.volume.to_string(), c.trades, c.complete),
                ("3.25".into(), 7, true),
                "{symbol}: the same candle from two writers is not summed"
            );
        }
    }
    assert_eq!(a.instruments().unwrap().len(), 3);
}

/// A merge of the same bucket by two writers at once loses neither (the database merges).
#[test]
fn concurrent_merges_of_one_bucket_lose_nothing() {
    let Some(schema) = Schema::new("hist_merge") else {
        return;
    };
    let open = || PgHistory::open(&schema.url, &schema.name).unwrap();
    let stores = [open(), open()];
    std::thread::scope(|scope| {
        for (node, store) in stores.iter().enumerate() {
            scope.spawn(move || {
                for i in 0..50 {
                    // Distinct observations (the volume differs per node and round).
                    let volume = (node * 100 + i + 1).to_string();
                    let c = candle(Interval::M1, 0, ["10", "11", "9", "10"], &volume, 1, false);
                    let batch = HistoryBatch {
                        records: vec![Record::Candle {
                            venue: v("sim"),
                            symbol: s("BTC-USDT"),
                            candle: Box::new(c),
                        }],
                    };
                    let mut tries = 0;
                    while let Err(e) = store.append(&batch) {
                        assert!(e.is_retryable() && tries < 50, "{e}");
                        tries += 1;
                    }
                }
            });
        }
    });
    let c = stores[0]
        .candles(&CandleQuery {
            venue: v("sim"),
            symbol: s("BTC-USDT"),
            interval: Interval::M1,
            from: Timestamp(0),
            to: Timestamp(1),
            order: Order::Asc,
            after: None,
            limit: 10,
        })
        .unwrap()
        .rows
        .remove(0);
    assert_eq!(c.trades, 100, "every merge counted");
    // (1 + … + 50) + (101 + … + 150)
    assert_eq!(c.volume.to_string(), "7550");
}

#[test]
fn retention_and_disk_usage_see_the_shared_tables() {
    let Some(store) = fresh("hist_usage") else {
        return;
    };
    store
        .append(&HistoryBatch {
            records: vec![trades_of("BTC-USDT", 0..2_000)],
        })
        .unwrap();
    let usage = store.disk_usage().unwrap();
    assert!(usage.total_bytes > 100_000, "{usage:?}");
    assert_eq!(
        store
            .purge(HistoryKind::Trades, Timestamp(1_000 + 250), 10_000)
            .unwrap(),
        1_000
    );
}

/// Nothing listens on the port: the error says the store is unavailable (the API answers
/// 503 `unavailable`, the writer keeps its batch), not that the query was bad.
#[test]
fn an_unreachable_database_is_unavailable() {
    let err = PgHistory::open("postgres://postgres@127.0.0.1:1/test", "public").unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(err.is_retryable());
    let bad = StoreError::Corrupt("x".into());
    assert!(!bad.is_unavailable());
}

/// A bad query (here: a schema name that is refused) is a configuration error, not an outage.
#[test]
fn bad_settings_are_not_unavailable() {
    let err = PgHistory::open("postgres://postgres@127.0.0.1:1/test", "Bad").unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    assert!(!err.is_unavailable());
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn recent_trades(from: i64, n: i64) -> Vec<model::Trade> {
    (0..n)
        .map(|i| trade(&format!("t{}", from + i), "1.5", "2", Side::Buy, from + i))
        .collect()
}

/// PostgreSQL goes away under a running writer: it holds the batch and retries (nothing is
/// dropped while the window lasts), says so in its stats, and writes everything once the
/// database is back. With a short window, the held batch is dropped and counted.
#[test]
fn the_writer_rides_out_an_outage_within_its_window() {
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    use store::{HistoryConfig, HistoryWriter, WriterSettings};
    let Some(schema) = Schema::new("hist_outage") else {
        return;
    };
    let cut = crate::support::cut::Cut::new(&crate::support::pg::target(&schema.url));
    let url = crate::support::pg::through(&schema.url, cut.addr());
    let direct = PgHistory::open(&schema.url, &schema.name).unwrap();
    let count = || {
        direct
            .count(
                HistoryKind::Trades,
                &v("sim"),
                &s("BTC-USDT"),
                Timestamp(i64::MIN),
                Timestamp(i64::MAX),
            )
            .unwrap()
    };
    let start = |retry: Duration| {
        let store = std::sync::Arc::new(PgHistory::open(&url, &schema.name).unwrap());
        let settings = WriterSettings {
            flush_interval: Duration::from_millis(10),
            unavailable_retry: retry,
            ..WriterSettings::from(&HistoryConfig::default())
        };
        let filter = HistoryConfig::default().validate().unwrap();
        HistoryWriter::start(store, filter, settings).unwrap()
    };
    let now = Timestamp::now().0;

    let writer = start(Duration::from_secs(60));
    let (sink, stats) = (writer.sink(), writer.stats().clone());
    assert!(sink.record_trades(&v("sim"), &s("BTC-USDT"), recent_trades(now, 100)));
    wait_for("the first rows", || count() == 100);
    cut.cut();
    assert!(sink.record_trades(&v("sim"), &s("BTC-USDT"), recent_trades(now + 100, 100)));
    wait_for("the writer to notice", || {
        stats.unavailable.load(Ordering::Relaxed)
    });
    assert!(sink.record_trades(&v("sim"), &s("BTC-USDT"), recent_trades(now + 200, 100)));
    assert_eq!(
        stats.dropped_total(),
        0,
        "held, not dropped, within the window"
    );
    cut.restore();
    wait_for("every row after the outage", || count() == 300);
    wait_for("the flag to clear", || {
        !stats.unavailable.load(Ordering::Relaxed)
    });
    assert_eq!(stats.dropped_total(), 0);
    writer.close();

    let writer = start(Duration::from_millis(300));
    let (sink, stats) = (writer.sink(), writer.stats().clone());
    cut.cut();
    assert!(sink.record_trades(&v("sim"), &s("BTC-USDT"), recent_trades(now + 300, 50)));
    wait_for("the batch to be given up", || stats.dropped_total() == 50);
    assert_eq!(
        stats.dropped[HistoryKind::Trades.index()].load(Ordering::Relaxed),
        50
    );
    assert!(stats.write_errors.load(Ordering::Relaxed) >= 1);
    cut.restore();
    assert!(sink.record_trades(&v("sim"), &s("BTC-USDT"), recent_trades(now + 400, 10)));
    wait_for("writes after the outage", || count() == 310);
    writer.close();
}
