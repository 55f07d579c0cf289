//! Opening the embedded database and migrating its schema.

use crate::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// File name of the embedded database inside the data directory.
pub const DB_FILE: &str = "tickgate.db";

/// Creates `dir` and its missing parents readable by the owner only (0700 on Unix): the data
/// directory holds API key hashes, wrapped secrets and the audit log. A directory that already
/// exists keeps its mode.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates the database file readable by the owner only (0600 on Unix) if it does not exist,
/// so SQLite, which gives its `-wal` and `-shm` files the database's mode, never makes a
/// world-readable file.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens (creating if needed, owner-only) the database at `path` in WAL mode, so readers never block the
/// writer, with `synchronous = NORMAL` (durable at checkpoints; a crash loses at most the last
/// transactions, never corrupts) and a busy timeout so concurrent connections wait rather than fail.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)
            .map_err(|e| StoreError::Corrupt(format!("cannot create {}: {e}", dir.display())))?;
    }
    create_private_file(path)
        .map_err(|e| StoreError::Corrupt(format!("cannot create {}: {e}", path.display())))?;
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

    #[cfg(unix)]
    #[test]
    fn data_directory_and_databases_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let root = std::env::temp_dir().join(format!("tickgate-perms-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let data = root.join("nested").join("data");
        let keys = crate::keys_sqlite::SqliteKeyStore::open_dir(&data).unwrap();
        let history = crate::SqliteHistory::open_in(&data).unwrap();
        assert_eq!(mode(&data), 0o700, "data directory");
        assert_eq!(mode(&root.join("nested")), 0o700, "a parent it created");
        for file in [DB_FILE, "tickgate.db-wal", crate::HISTORY_DB_FILE] {
            assert_eq!(mode(&data.join(file)), 0o600, "{file}");
        }
        drop((keys, history));
        // An existing database keeps working (and keeps its mode).
        std::fs::set_permissions(data.join(DB_FILE), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        open(&data.join(DB_FILE)).unwrap();
        assert_eq!(mode(&data.join(DB_FILE)), 0o640);
        std::fs::remove_dir_all(&root).unwrap();
    }

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
