//! Editing the audit log behind the store's back is detected, and the first broken entry
//! named. One suite, run against SQLite and (with TICKGATE_TEST_POSTGRES_URL) PostgreSQL.

#[cfg(feature = "postgres")]
mod support;

use rusqlite::Connection;
use store::audit::{AuditLog, NewAuditEvent, verify_chain};
use store::keys_sqlite::SqliteKeyStore;

/// A log with five entries, and raw access to its database as an attacker would have it.
trait Tamperable {
    fn log(&self) -> &dyn AuditLog;
    /// Runs `sql` with the store's own protections (triggers) still on: `Err` if refused.
    fn raw(&self, sql: &str) -> Result<(), String>;
    /// Disables the triggers, then runs `sql`.
    fn tamper(&self, sql: &str);
    /// A byte-string literal in this database's SQL dialect.
    fn bytes(&self, bytes: &[u8]) -> String;
}

fn events() -> Vec<NewAuditEvent> {
    (0..5)
        .map(|i| NewAuditEvent {
            at: 1_000 + i,
            actor: "cli".into(),
            action: "key.created".into(),
            key_id: Some(format!("key_{i}")),
            detail: serde_json::json!({"scopes": ["market:read"]}),
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Sqlite {
    dir: std::path::PathBuf,
    store: SqliteKeyStore,
    log: store::audit_sqlite::SqliteAuditLog,
}

impl Sqlite {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("tickgate-tamper-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = SqliteKeyStore::open_dir(&dir).unwrap();
        let log = store.audit_log();
        Self { dir, store, log }
    }
    fn conn(&self) -> Connection {
        Connection::open(self.dir.join(store::sqlite::DB_FILE)).unwrap()
    }
}

impl Drop for Sqlite {
    fn drop(&mut self) {
        let _ = &self.store;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Tamperable for Sqlite {
    fn log(&self) -> &dyn AuditLog {
        &self.log
    }
    fn raw(&self, sql: &str) -> Result<(), String> {
        self.conn().execute_batch(sql).map_err(|e| e.to_string())
    }
    fn tamper(&self, sql: &str) {
        let conn = self.conn();
        conn.execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
            .unwrap();
        conn.execute_batch(sql).unwrap();
    }
    fn bytes(&self, bytes: &[u8]) -> String {
        format!("X'{}'", hex(bytes))
    }
}

#[cfg(feature = "postgres")]
struct Postgres {
    schema: support::pg::Schema,
    log: store::audit_postgres::PgAuditLog,
}

#[cfg(feature = "postgres")]
impl Postgres {
    fn new(name: &str) -> Option<Self> {
        let schema = support::pg::Schema::new(&format!("tamper_{}", name.replace('-', "_")))?;
        let store = store::keys_postgres::PgKeyStore::open(&schema.url, &schema.name).unwrap();
        let log = store.audit_log();
        Some(Self { schema, log })
    }
}

#[cfg(feature = "postgres")]
impl Tamperable for Postgres {
    fn log(&self) -> &dyn AuditLog {
        &self.log
    }
    fn raw(&self, sql: &str) -> Result<(), String> {
        self.schema.try_exec(sql)
    }
    fn tamper(&self, sql: &str) {
        self.schema.exec(&format!(
            "ALTER TABLE audit_log DISABLE TRIGGER USER; {sql}"
        ));
    }
    fn bytes(&self, bytes: &[u8]) -> String {
        format!("'\\x{}'::bytea", hex(bytes))
    }
}

fn setup(t: &dyn Tamperable) {
    t.log().append(&events()).unwrap();
    assert_eq!(verify_chain(t.log()).unwrap(), Ok(5));
}

fn the_store_itself_refuses_to_rewrite_history(t: &dyn Tamperable) {
    setup(t);
    assert!(
        t.raw("UPDATE audit_log SET actor = 'x' WHERE seq = 2")
            .is_err()
    );
    assert!(t.raw("DELETE FROM audit_log WHERE seq = 5").is_err());
    assert_eq!(verify_chain(t.log()).unwrap(), Ok(5));
}

/// (name, statement, first broken entry)
const CASES: &[(&str, &str, u64)] = &[
    (
        "edit",
        "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3",
        3,
    ),
    (
        "detail",
        "UPDATE audit_log SET detail = '{}' WHERE seq = 2",
        2,
    ),
    ("delete-middle", "DELETE FROM audit_log WHERE seq = 4", 4),
    ("delete-tail", "DELETE FROM audit_log WHERE seq = 5", 5),
    ("reorder", "UPDATE audit_log SET at = 0 WHERE seq = 1", 1),
];

fn tampering_is_detected(t: &dyn Tamperable, name: &str, sql: &str, first_broken: u64) {
    setup(t);
    t.tamper(sql);
    let broken = verify_chain(t.log()).unwrap().expect_err(name);
    assert_eq!(broken.seq, first_broken, "{name}: {broken}");
}

fn recomputing_one_hash_still_breaks_the_next_link(t: &dyn Tamperable) {
    setup(t);
    let mut entry = t.log().read(1, 1).unwrap().remove(0);
    entry.actor = "mallory".into();
    let forged = entry.computed_hash();
    t.tamper(&format!(
        "UPDATE audit_log SET actor = 'mallory', hash = {} WHERE seq = 2",
        t.bytes(&forged)
    ));
    let broken = verify_chain(t.log()).unwrap().unwrap_err();
    assert_eq!(broken.seq, 3, "{broken}");
}

#[test]
fn sqlite_refuses_and_detects_tampering() {
    the_store_itself_refuses_to_rewrite_history(&Sqlite::new("trigger"));
    for (name, sql, first) in CASES {
        tampering_is_detected(&Sqlite::new(name), name, sql, *first);
    }
    recomputing_one_hash_still_breaks_the_next_link(&Sqlite::new("rehash"));
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_refuses_and_detects_tampering() {
    let Some(first) = Postgres::new("trigger") else {
        return;
    };
    the_store_itself_refuses_to_rewrite_history(&first);
    assert!(first.raw("TRUNCATE audit_log").is_err());
    for (name, sql, broken) in CASES {
        tampering_is_detected(&Postgres::new(name).unwrap(), name, sql, *broken);
    }
    recomputing_one_hash_still_breaks_the_next_link(&Postgres::new("rehash").unwrap());
}
