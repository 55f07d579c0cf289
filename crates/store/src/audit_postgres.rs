//! [`AuditLog`] on PostgreSQL: one chain shared by every node of a cluster.
//!
//! **Serialized appends.** The head row (`audit_head`, one row, created with the schema at
//! `seq = 0`) is read with `SELECT … FOR UPDATE` inside the appending transaction: a second
//! writer, on any node, blocks on that row lock until the first commits, then reads the new
//! head (READ COMMITTED re-reads a locked row's latest version), so entries never fork and
//! `seq` has no holes. The lock is per schema, unlike an advisory lock keyed by a constant,
//! and it is the same lock key writes already take (they append in their own transaction).
//!
//! Triggers refuse `UPDATE`, `DELETE` and `TRUNCATE` on the log, so a bug in the gateway cannot
//! rewrite history; a superuser who disables them can, and the chain names the first entry
//! they touched.

use crate::StoreError;
use crate::audit::{AuditEntry, AuditLog, GENESIS, NewAuditEvent, entry_hash};
use crate::postgres::{PgPool, hash32, to_i64, to_u64};
use postgres::GenericClient;
use std::sync::Arc;

pub(crate) const MIGRATIONS: &[&str] = &["CREATE TABLE audit_log (
        seq BIGINT PRIMARY KEY,
        at BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        key_id TEXT,
        detail TEXT NOT NULL,
        prev_hash BYTEA NOT NULL,
        hash BYTEA NOT NULL
    );
    CREATE INDEX audit_log_key ON audit_log (key_id);
    CREATE TABLE audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL,
        hash BYTEA NOT NULL);
    INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '\\x0000000000000000000000000000000000000000000000000000000000000000');
    CREATE FUNCTION audit_log_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_refuse();
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse();"];

/// Appends inside an open transaction (key and security writes call it so both commit
/// together). Takes the head row lock: see the module documentation.
pub(crate) fn append_tx(
    tx: &mut impl GenericClient,
    events: &[NewAuditEvent],
) -> Result<Vec<AuditEntry>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let head = tx.query_one(
        "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
        &[],
    )?;
    let mut seq = to_u64(head.get(0));
    let mut prev = if seq == 0 {
        GENESIS
    } else {
        hash32(head.get::<_, &[u8]>(1))
    };
    let insert = tx.prepare(
        "INSERT INTO audit_log (seq, at, actor, action, key_id, detail, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )?;
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
            &insert,
            &[
                &to_i64(seq, "seq")?,
                &event.at,
                &event.actor,
                &event.action,
                &event.key_id,
                &detail,
                &prev.as_slice(),
                &hash.as_slice(),
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
        "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
        &[&to_i64(seq, "seq")?, &prev.as_slice()],
    )?;
    Ok(out)
}

/// The PostgreSQL audit log; shares its pool with the key store.
#[derive(Debug, Clone)]
pub struct PgAuditLog {
    pool: Arc<PgPool>,
}

impl PgAuditLog {
    pub(crate) fn new(pool: Arc<PgPool>) -> Self {
        Self { pool }
    }
}

impl AuditLog for PgAuditLog {
    fn append(&self, events: &[NewAuditEvent]) -> Result<Vec<AuditEntry>, StoreError> {
        self.pool.with(|client| {
            let mut tx = client.transaction()?;
            let out = append_tx(&mut tx, events)?;
            tx.commit()?;
            Ok(out)
        })
    }

    fn read(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        self.pool.with(|client| {
            let rows = client.query(
                "SELECT seq, at, actor, action, key_id, detail, prev_hash, hash FROM audit_log
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &limit],
            )?;
            Ok(rows
                .iter()
                .map(|r| AuditEntry {
                    seq: to_u64(r.get(0)),
                    at: r.get(1),
                    actor: r.get(2),
                    action: r.get(3),
                    key_id: r.get(4),
                    detail: r.get(5),
                    prev_hash: hash32(r.get(6)),
                    hash: hash32(r.get(7)),
                })
                .collect())
        })
    }

    fn head(&self) -> Result<Option<(u64, [u8; 32])>, StoreError> {
        self.pool.with(|client| {
            let row = client.query_opt("SELECT seq, hash FROM audit_head WHERE id = 1", &[])?;
            Ok(row.and_then(|r| {
                let seq = to_u64(r.get(0));
                (seq > 0).then(|| (seq, hash32(r.get(1))))
            }))
        })
    }
}
