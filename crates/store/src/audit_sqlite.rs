//! [`AuditLog`] on the embedded SQLite database. Triggers refuse `UPDATE` and `DELETE` on the
//! log table, so even a bug in the gateway cannot rewrite history; someone editing the file
//! directly can, and the chain then names the first entry they touched.

use crate::audit::{AuditEntry, AuditLog, GENESIS, NewAuditEvent, entry_hash};
use crate::{StoreError, sqlite};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::sync::Arc;

const MIGRATIONS: &[&str] = &["CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        key_id TEXT,
        detail TEXT NOT NULL,
        prev_hash BLOB NOT NULL,
        hash BLOB NOT NULL
    );
    CREATE INDEX audit_log_key ON audit_log (key_id);
    CREATE TABLE audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL,
        hash BLOB NOT NULL);
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"];

pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    sqlite::migrate(conn, "audit", MIGRATIONS)
}

fn hash_of(bytes: Vec<u8>) -> [u8; 32] {
    <[u8; 32]>::try_from(bytes.as_slice()).unwrap_or([0xff; 32])
}

/// Appends inside an open transaction (used by key writes so both commit together).
pub(crate) fn append_tx(
    tx: &Transaction<'_>,
    events: &[NewAuditEvent],
) -> Result<Vec<AuditEntry>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let head: Option<(i64, Vec<u8>)> = tx
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let (mut seq, mut prev) = match head {
        Some((seq, hash)) => (u64::try_from(seq).unwrap_or(0), hash_of(hash)),
        None => (0, GENESIS),
    };
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        seq += 1;
        let detail = event.detail.to_string();
        let hash = entry_hash(
            &prev,
            seq,
            event.at,
            &event.actor,
            &event.action,
            event.key_id.as_deref(),
            &detail,
        );
        tx.execute(
            "INSERT INTO audit_log (seq, at, actor, action, key_id, detail, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                seq as i64,
                event.at,
                event.actor,
                event.action,
                event.key_id,
                detail,
                prev.to_vec(),
                hash.to_vec()
            ],
        )?;
        out.push(AuditEntry {
            seq,
            at: event.at,
            actor: event.actor.clone(),
            action: event.action.clone(),
            key_id: event.key_id.clone(),
            detail,
            prev_hash: prev,
            hash,
        });
        prev = hash;
    }
    tx.execute(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        params![seq as i64, prev.to_vec()],
    )?;
    Ok(out)
}

/// The SQLite audit log; shares its connection with the key store.
#[derive(Debug, Clone)]
pub struct SqliteAuditLog {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteAuditLog {
    pub(crate) fn new(conn: Arc<Mutex<Connection>>) -> Self {
        Self { conn }
    }
}

impl AuditLog for SqliteAuditLog {
    fn append(&self, events: &[NewAuditEvent]) -> Result<Vec<AuditEntry>, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = append_tx(&tx, events)?;
        tx.commit()?;
        Ok(out)
    }

    fn read(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT seq, at, actor, action, key_id, detail, prev_hash, hash FROM audit_log
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![after, limit], |r| {
            Ok(AuditEntry {
                seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                key_id: r.get(4)?,
                detail: r.get(5)?,
                prev_hash: hash_of(r.get(6)?),
                hash: hash_of(r.get(7)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn head(&self) -> Result<Option<(u64, [u8; 32])>, StoreError> {
        let conn = self.conn.lock();
        Ok(conn
            .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
                Ok((
                    u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                    hash_of(r.get(1)?),
                ))
            })
            .optional()?)
    }
}
