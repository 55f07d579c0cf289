//! The contract on SQLite, plus what only SQLite has: files, atomicity under a failing row,
//! query plans, backup.

use crate::fixtures::*;
use model::{Side, Timestamp};
use std::sync::Arc;
use store::{HistoryBatch, HistoryStore, Order, Record, SqliteHistory, TradeQuery};

fn fresh() -> Option<Arc<dyn HistoryStore>> {
    Some(Arc::new(
        SqliteHistory::open_in(&temp_dir("contract")).unwrap(),
    ))
}

crate::contract_tests!(contract_sqlite, fresh());

fn btc_trades(n: usize, ts0: i64) -> Record {
    Record::Trades {
        venue: v("sim"),
        symbol: s("BTC-USDT"),
        trades: (0..n)
            .map(|i| trade(&i.to_string(), "100.5", "0.25", Side::Buy, ts0 + i as i64))
            .collect(),
    }
}

fn all(store: &SqliteHistory) -> usize {
    store
        .trades(&TradeQuery {
            venue: v("sim"),
            symbol: s("BTC-USDT"),
            from: Timestamp(i64::MIN),
            to: Timestamp(i64::MAX),
            order: Order::Asc,
            after: None,
            limit: 100_000,
        })
        .unwrap()
        .rows
        .len()
}

#[test]
fn a_failing_row_rolls_back_the_whole_batch() {
    let dir = temp_dir("atomic");
    let store = SqliteHistory::open_in(&dir).unwrap();
    // A trigger makes one specific row fail, as a full disk or a constraint would.
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER boom BEFORE INSERT ON trades WHEN NEW.id = 'boom'
         BEGIN SELECT RAISE(ABORT, 'boom'); END;",
    )
    .unwrap();
    let mut bad = btc_trades(10, 0);
    if let Record::Trades { trades, .. } = &mut bad {
        trades[7].id = "boom".into();
    }
    let batch = HistoryBatch {
        records: vec![btc_trades(5, 100), bad],
    };
    assert!(store.append(&batch).is_err());
    assert_eq!(all(&store), 0, "nothing of a failed batch is stored");
    assert!(
        store.instruments().unwrap().is_empty(),
        "not even its instrument"
    );
    // The store keeps working (the instrument id cache was reset with the rollback).
    store
        .append(&HistoryBatch {
            records: vec![btc_trades(5, 100)],
        })
        .unwrap();
    assert_eq!(all(&store), 5);
}

#[test]
fn history_survives_reopening_and_reports_disk_usage() {
    let dir = temp_dir("reopen");
    {
        let store = SqliteHistory::open_in(&dir).unwrap();
        store
            .append(&HistoryBatch {
                records: vec![btc_trades(1000, 0)],
            })
            .unwrap();
        let usage = store.disk_usage().unwrap();
        assert!(usage.total_bytes > 20_000, "{usage:?}");
    }
    let store = SqliteHistory::open_in(&dir).unwrap();
    assert_eq!(all(&store), 1000);
    store
        .append(&HistoryBatch {
            records: vec![btc_trades(10, 5000)],
        })
        .unwrap();
    assert_eq!(all(&store), 1010);
}

/// The natural-key index serves range queries in `ts` order: at most the rows sharing one
/// timestamp are sorted by `seq` ("last term"), never the whole range.
#[test]
fn range_queries_use_the_natural_key_index_without_sorting_the_range() {
    let store = SqliteHistory::open_in(&temp_dir("plan")).unwrap();
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    for sql in [
        "EXPLAIN QUERY PLAN SELECT seq FROM trades WHERE inst = 1 AND ts >= 0 AND ts < 10
         AND NOT (ts = 5 AND seq <= 3) ORDER BY ts, seq LIMIT 10",
        "EXPLAIN QUERY PLAN SELECT seq FROM trades WHERE inst = 1 AND ts >= 0 AND ts < 10
         AND NOT (ts = 5 AND seq >= 3) ORDER BY ts DESC, seq DESC LIMIT 10",
    ] {
        let plan: Vec<String> = conn
            .prepare(sql)
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join(" | ");
        assert!(plan.contains("trades_natural"), "{plan}");
        assert!(
            !plan.contains("TEMP B-TREE FOR ORDER BY"),
            "no sort of the whole range: {plan}"
        );
    }
}

/// A database written before trades had a natural key is migrated: its duplicates go (the
/// first copy stays) and the unique index is in place.
#[test]
fn an_old_database_with_duplicate_trades_is_migrated() {
    let dir = temp_dir("migrate");
    let path = dir.join(store::HISTORY_DB_FILE);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        // The schema of migration step 0, as the previous release left it, with duplicates.
        conn.execute_batch(
            "CREATE TABLE schema_migrations (module TEXT NOT NULL, step INTEGER NOT NULL,
                 applied_at_us INTEGER NOT NULL, PRIMARY KEY (module, step));
             INSERT INTO schema_migrations VALUES ('history', 0, 0);
             CREATE TABLE history_instruments (id INTEGER PRIMARY KEY, venue TEXT NOT NULL,
                 symbol TEXT NOT NULL, UNIQUE (venue, symbol));
             CREATE TABLE trades (seq INTEGER PRIMARY KEY, inst INTEGER NOT NULL,
                 ts INTEGER NOT NULL, id TEXT NOT NULL, price TEXT NOT NULL,
                 size TEXT NOT NULL, side INTEGER NOT NULL);
             CREATE INDEX trades_by_time ON trades (inst, ts);
             CREATE TABLE candles (inst INTEGER NOT NULL, interval_secs INTEGER NOT NULL,
                 start INTEGER NOT NULL, open TEXT NOT NULL, high TEXT NOT NULL,
                 low TEXT NOT NULL, close TEXT NOT NULL, volume TEXT NOT NULL,
                 trades INTEGER NOT NULL, complete INTEGER NOT NULL,
                 PRIMARY KEY (inst, interval_secs, start)) WITHOUT ROWID;
             INSERT INTO history_instruments VALUES (1, 'sim', 'BTC-USDT');
             INSERT INTO trades VALUES (1, 1, 100, 'a', '1.0', '1', 0);
             INSERT INTO trades VALUES (2, 1, 100, 'a', '1.0', '1', 0);
             INSERT INTO trades VALUES (3, 1, 100, 'b', '2.0', '1', 1);
             INSERT INTO trades VALUES (4, 1, 200, 'a', '3.0', '1', 0);",
        )
        .unwrap();
    }
    let store = SqliteHistory::open(&path).unwrap();
    let rows = store
        .trades(&TradeQuery {
            venue: v("sim"),
            symbol: s("BTC-USDT"),
            from: Timestamp(i64::MIN),
            to: Timestamp(i64::MAX),
            order: Order::Asc,
            after: None,
            limit: 100,
        })
        .unwrap()
        .rows;
    assert_eq!(
        rows.iter()
            .map(|t| (t.seq, t.id.as_str()))
            .collect::<Vec<_>>(),
        [(1, "a"), (3, "b"), (4, "a")]
    );
    let again = HistoryBatch {
        records: vec![Record::Trades {
            venue: v("sim"),
            symbol: s("BTC-USDT"),
            trades: vec![trade("a", "1.0", "1", Side::Buy, 100)],
        }],
    };
    assert_eq!(
        store.append(&again).unwrap(),
        0,
        "the unique index is in place"
    );
}

#[test]
fn online_backup_is_a_complete_copy() {
    let dir = temp_dir("backup");
    let store = SqliteHistory::open_in(&dir).unwrap();
    store
        .append(&HistoryBatch {
            records: vec![btc_trades(500, 0)],
        })
        .unwrap();
    let copy = dir.join("copy.db");
    store.backup_to(&copy).unwrap();
    let restored = SqliteHistory::open(&copy).unwrap();
    assert_eq!(all(&restored), 500);
    assert!(
        store.backup_to(&copy).is_err(),
        "never overwrites an existing file"
    );
}
