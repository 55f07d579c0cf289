//! Opening the embedded database and migrating its schema.

use crate::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// File name of the embedded database inside the data directory.
pub const DB_FILE: &str = "tickgate.db";

/// Opens (creating if needed) the database at `path` in WAL mode, so readers never block the
/// writer, with `synchronous = NORMAL` (durable at checkpoints; a crash loses at most the last
/// transactions, never corrupts) and a busy timeout so concurrent connections wait rather than fail.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| StoreError::Open {
        path: path.display().to_string(),
        source,
    })?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            module TEXT NOT NULL,
            step INTEGER NOT NULL,
            applied_at_us INTEGER NOT NULL,
            PRIMARY KEY (module, step)
        )",
    )?;
    Ok(conn)
}

/// An in-memory database with the same setup (for tests).
pub fn open_in_memory() -> Result<Connection, StoreError> {
    let conn = Connection::open_in_memory()?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            module TEXT NOT NULL, step INTEGER NOT NULL, applied_at_us INTEGER NOT NULL,
            PRIMARY KEY (module, step))",
    )?;
    Ok(conn)
}

/// Applies `module`'s migration steps that have not been applied yet, in order, each in its own
/// transaction. Steps are append-only: never edit a released step, add a new one.
pub fn migrate(conn: &mut Connection, module: &str, steps: &[&str]) -> Result<(), StoreError> {
    for (index, sql) in steps.iter().enumerate() {
        let step = index as i64;
        // Check inside a write transaction: two processes (or two gateways in one test run)
        // opening the same fresh database must not both apply the step.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let done: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE module = ?1 AND step = ?2)",
            (module, step),
            |row| row.get(0),
        )?;
        if done {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (module, step, applied_at_us) VALUES (?1, ?2, ?3)",
            (module, step, model::Timestamp::now().0),
        )?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_in_order() {
        let dir = std::env::temp_dir().join(format!("tickgate-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(DB_FILE);
        let _ = std::fs::remove_file(&path);
        let mut conn = open(&path).unwrap();
        let steps = ["CREATE TABLE t (x INTEGER)", "INSERT INTO t VALUES (1)"];
        migrate(&mut conn, "test", &steps).unwrap();
        migrate(&mut conn, "test", &steps).unwrap();
        let more = [
            "CREATE TABLE t (x INTEGER)",
            "INSERT INTO t VALUES (1)",
            "INSERT INTO t VALUES (2)",
        ];
        migrate(&mut conn, "test", &more).unwrap();
        let sum: i64 = conn
            .query_row("SELECT SUM(x) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sum, 3);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let mut memory = open_in_memory().unwrap();
        migrate(&mut memory, "test", &steps).unwrap();
    }
}
