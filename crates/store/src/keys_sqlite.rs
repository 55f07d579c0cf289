//! [`KeyStore`] on the embedded SQLite database (`tickgate.db` in the data directory).

use crate::audit::NewAuditEvent;
use crate::audit_sqlite::{self, SqliteAuditLog};
use crate::keys::{
    Granularity, KeyFilter, KeyRecord, KeyStore, KeyWrite, RateLimit, SealedSecret, UsageBucket,
    UsageDelta, bucket_start,
};
use crate::{StoreError, sqlite};
use parking_lot::Mutex;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use std::path::Path;
use std::sync::Arc;

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE keys (
        id TEXT PRIMARY KEY,
        principal TEXT NOT NULL,
        kind TEXT NOT NULL,
        environment TEXT NOT NULL,
        name TEXT NOT NULL,
        scopes TEXT NOT NULL,
        status TEXT NOT NULL,
        grace_until INTEGER,
        version INTEGER NOT NULL,
        replaces TEXT,
        replaced_by TEXT,
        metadata TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        expires_at INTEGER,
        revoked_at INTEGER,
        revoked_reason TEXT,
        token_hash BLOB UNIQUE,
        public_key BLOB,
        sealed_master_key_id TEXT,
        sealed_dek BLOB,
        sealed_ciphertext BLOB,
        rate_per_sec INTEGER,
        rate_burst INTEGER,
        max_age_secs INTEGER,
        rotated_at INTEGER,
        last_used_at INTEGER,
        last_used_addr TEXT,
        rev INTEGER NOT NULL,
        change_seq INTEGER NOT NULL
    );
    CREATE INDEX keys_principal ON keys (principal);
    CREATE INDEX keys_change_seq ON keys (change_seq);
    CREATE TABLE key_changes (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
    INSERT INTO key_changes (id, seq) VALUES (1, 0);
    CREATE TABLE key_usage (
        key_id TEXT NOT NULL,
        granularity TEXT NOT NULL,
        start INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        messages INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        auth_failures INTEGER NOT NULL,
        PRIMARY KEY (key_id, granularity, start)
    );",
    crate::security_sqlite::MIGRATION,
];

const COLUMNS: &str = "id, principal, kind, environment, name, scopes, status, grace_until, \
    version, replaces, replaced_by, metadata, created_at, created_by, expires_at, revoked_at, \
    revoked_reason, token_hash, public_key, sealed_master_key_id, sealed_dek, sealed_ciphertext, \
    rate_per_sec, rate_burst, max_age_secs, rotated_at, last_used_at, last_used_addr, rev";

/// SQLite-backed keys (and, sharing its connection, the audit log: see [`Self::audit_log`]).
#[derive(Debug, Clone)]
pub struct SqliteKeyStore {
    pub(crate) conn: Arc<Mutex<Connection>>,
}

impl SqliteKeyStore {
    /// Opens `tickgate.db` in `data_dir` (creating both if needed) and migrates it.
    pub fn open_dir(data_dir: &Path) -> Result<Self, StoreError> {
        sqlite::create_private_dir(data_dir).map_err(|e| {
            StoreError::Corrupt(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        Self::from_connection(sqlite::open(&data_dir.join(sqlite::DB_FILE))?)
    }

    /// An in-memory store (tests).
    pub fn open_in_memory() -> Result<Self, StoreError> {
        Self::from_connection(sqlite::open_in_memory()?)
    }

    fn from_connection(mut conn: Connection) -> Result<Self, StoreError> {
        sqlite::migrate(&mut conn, "keys", MIGRATIONS)?;
        audit_sqlite::migrate(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The audit log in the same database; key writes append to it in their own transaction.
    pub fn audit_log(&self) -> SqliteAuditLog {
        SqliteAuditLog::new(self.conn.clone())
    }
}

fn next_change(tx: &Transaction<'_>) -> Result<i64, StoreError> {
    tx.execute("UPDATE key_changes SET seq = seq + 1 WHERE id = 1", [])?;
    Ok(tx.query_row("SELECT seq FROM key_changes WHERE id = 1", [], |r| r.get(0))?)
}

fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Conflict(format!("{what} out of range")))
}

fn write_values(record: &KeyRecord) -> Result<Vec<Value>, StoreError> {
    let opt_text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::Text);
    let opt_int = |v: Option<i64>| v.map_or(Value::Null, Value::Integer);
    let sealed = record.sealed.as_ref();
    Ok(vec![
        Value::Text(record.id.clone()),
        Value::Text(record.principal.clone()),
        Value::Text(record.kind.as_str().into()),
        Value::Text(record.environment.as_str().into()),
        Value::Text(record.name.clone()),
        Value::Text(record.scopes.join(" ")),
        Value::Text(record.status.as_str().into()),
        opt_int(record.grace_until),
        Value::Integer(i64::from(record.version)),
        opt_text(&record.replaces),
        opt_text(&record.replaced_by),
        Value::Text(record.metadata.to_string()),
        Value::Integer(record.created_at),
        Value::Text(record.created_by.clone()),
        opt_int(record.expires_at),
        opt_int(record.revoked_at),
        opt_text(&record.revoked_reason),
        record
            .token_hash
            .map_or(Value::Null, |h| Value::Blob(h.to_vec())),
        record.public_key.clone().map_or(Value::Null, Value::Blob),
        sealed.map_or(Value::Null, |s| Value::Text(s.master_key_id.clone())),
        sealed.map_or(Value::Null, |s| Value::Blob(s.wrapped_dek.clone())),
        sealed.map_or(Value::Null, |s| Value::Blob(s.ciphertext.clone())),
        opt_int(record.rate_limit.map(|r| i64::from(r.per_sec))),
        opt_int(record.rate_limit.map(|r| i64::from(r.burst))),
        match record.max_age_secs {
            Some(v) => Value::Integer(to_i64(v, "max_age_secs")?),
            None => Value::Null,
        },
        opt_int(record.rotated_at),
    ])
}

fn parse<T: std::str::FromStr<Err = String>>(text: String, what: &str) -> rusqlite::Result<T> {
    text.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("{what}: {e}").into(),
        )
    })
}

fn read_record(row: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    let scopes: String = row.get(5)?;
    let metadata: String = row.get(11)?;
    let token_hash: Option<Vec<u8>> = row.get(17)?;
    let sealed = match (
        row.get::<_, Option<String>>(19)?,
        row.get::<_, Option<Vec<u8>>>(20)?,
        row.get::<_, Option<Vec<u8>>>(21)?,
    ) {
        (Some(master_key_id), Some(wrapped_dek), Some(ciphertext)) => Some(SealedSecret {
            master_key_id,
            wrapped_dek,
            ciphertext,
        }),
        _ => None,
    };
    let rate_limit = match (
        row.get::<_, Option<i64>>(22)?,
        row.get::<_, Option<i64>>(23)?,
    ) {
        (Some(per_sec), Some(burst)) => Some(RateLimit {
            per_sec: u32::try_from(per_sec).unwrap_or(u32::MAX),
            burst: u32::try_from(burst).unwrap_or(u32::MAX),
        }),
        _ => None,
    };
    Ok(KeyRecord {
        id: row.get(0)?,
        principal: row.get(1)?,
        kind: parse(row.get(2)?, "kind")?,
        environment: parse(row.get(3)?, "environment")?,
        name: row.get(4)?,
        scopes: scopes.split_whitespace().map(str::to_string).collect(),
        status: parse(row.get(6)?, "status")?,
        grace_until: row.get(7)?,
        version: row.get(8)?,
        replaces: row.get(9)?,
        replaced_by: row.get(10)?,
        metadata: serde_json::from_str(&metadata).unwrap_or(serde_json::Value::Null),
        created_at: row.get(12)?,
        created_by: row.get(13)?,
        expires_at: row.get(14)?,
        revoked_at: row.get(15)?,
        revoked_reason: row.get(16)?,
        token_hash: token_hash.and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok()),
        public_key: row.get(18)?,
        sealed,
        rate_limit,
        max_age_secs: row
            .get::<_, Option<i64>>(24)?
            .and_then(|v| u64::try_from(v).ok()),
        rotated_at: row.get(25)?,
        last_used_at: row.get(26)?,
        last_used_addr: row.get(27)?,
        rev: row.get::<_, i64>(28)?.try_into().unwrap_or(0),
    })
}

fn apply_write(tx: &Transaction<'_>, write: &KeyWrite) -> Result<(), StoreError> {
    let change = next_change(tx)?;
    match write {
        KeyWrite::Insert(record) => {
            let exists: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM keys WHERE id = ?1)",
                [&record.id],
                |r| r.get(0),
            )?;
            if exists {
                return Err(StoreError::Conflict(format!("key {} exists", record.id)));
            }
            let mut values = write_values(record)?;
            values.push(Value::Integer(1));
            values.push(Value::Integer(change));
            let placeholders = (1..=values.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let columns = COLUMNS.replace(", last_used_at, last_used_addr", "");
            tx.execute(
                &format!("INSERT INTO keys ({columns}, change_seq) VALUES ({placeholders})"),
                rusqlite::params_from_iter(values),
            )?;
        }
        KeyWrite::Update {
            record,
            expected_rev,
        } => {
            let mut values = write_values(record)?;
            let sets = COLUMNS
                .split(", ")
                .take(values.len())
                .enumerate()
                .skip(1)
                .map(|(i, c)| format!("{c} = ?{}", i + 1))
                .collect::<Vec<_>>()
                .join(", ");
            let n = values.len();
            values.push(Value::Integer(change));
            values.push(Value::Integer(to_i64(*expected_rev, "rev")?));
            let sql = format!(
                "UPDATE keys SET {sets}, rev = rev + 1, change_seq = ?{} WHERE id = ?1 AND rev = ?{}",
                n + 1,
                n + 2
            );
            if tx.execute(&sql, rusqlite::params_from_iter(values))? == 0 {
                let exists: bool = tx.query_row(
                    "SELECT EXISTS(SELECT 1 FROM keys WHERE id = ?1)",
                    [&record.id],
                    |r| r.get(0),
                )?;
                return Err(StoreError::lost_update("key", &record.id, exists));
            }
        }
    }
    Ok(())
}

impl KeyStore for SqliteKeyStore {
    fn apply(&self, writes: &[KeyWrite], audit: &[NewAuditEvent]) -> Result<(), StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for write in writes {
            apply_write(&tx, write).map_err(|e| match e {
                StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    StoreError::Conflict("a key with the same token hash exists".into())
                }
                other => other,
            })?;
        }
        audit_sqlite::append_tx(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let conn = self.conn.lock();
        Ok(conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM keys WHERE id = ?1"),
                [id],
                read_record,
            )
            .optional()?)
    }

    fn list(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM keys WHERE 1 = 1");
        let mut values: Vec<Value> = Vec::new();
        let mut add = |clause: &str, value: Value| {
            values.push(value);
            sql.push_str(&format!(" AND {clause} = ?{}", values.len()));
        };
        if let Some(p) = &filter.principal {
            add("principal", Value::Text(p.clone()));
        }
        if let Some(s) = filter.status {
            add("status", Value::Text(s.as_str().into()));
        }
        if let Some(k) = filter.kind {
            add("kind", Value::Text(k.as_str().into()));
        }
        if let Some(h) = filter.token_hash {
            add("token_hash", Value::Blob(h.to_vec()));
        }
        sql.push_str(" ORDER BY created_at DESC, id");
        if filter.limit > 0 {
            sql.push_str(&format!(" LIMIT {}", filter.limit));
        }
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(values), read_record)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn changes_since(&self, since: u64) -> Result<(u64, Vec<KeyRecord>), StoreError> {
        let conn = self.conn.lock();
        let newest: i64 =
            conn.query_row("SELECT seq FROM key_changes WHERE id = 1", [], |r| r.get(0))?;
        let since = to_i64(since, "change number")?;
        if newest <= since {
            return Ok((u64::try_from(newest).unwrap_or(0), Vec::new()));
        }
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM keys WHERE change_seq > ?1 ORDER BY change_seq"
        ))?;
        let rows = stmt.query_map([since], read_record)?;
        let records = rows.collect::<Result<_, _>>()?;
        Ok((u64::try_from(newest).unwrap_or(0), records))
    }

    fn add_usage(&self, deltas: &[UsageDelta]) -> Result<(), StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut bump = tx.prepare(
                "INSERT INTO key_usage (key_id, granularity, start, requests, messages, bytes,
                     auth_failures) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (key_id, granularity, start) DO UPDATE SET
                     requests = requests + excluded.requests,
                     messages = messages + excluded.messages,
                     bytes = bytes + excluded.bytes,
                     auth_failures = auth_failures + excluded.auth_failures",
            )?;
            let mut last_used = tx.prepare(
                "UPDATE keys SET last_used_at = ?2, last_used_addr = ?3
                 WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
            )?;
            for d in deltas {
                for granularity in [Granularity::Minute, Granularity::Hour] {
                    bump.execute(params![
                        d.key_id,
                        granularity.as_str(),
                        bucket_start(d.at, granularity),
                        to_i64(d.requests, "requests")?,
                        to_i64(d.messages, "messages")?,
                        to_i64(d.bytes, "bytes")?,
                        to_i64(d.auth_failures, "auth_failures")?,
                    ])?;
                }
                if let Some((at, addr)) = &d.last_used {
                    last_used.execute(params![d.key_id, at, addr])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn usage(
        &self,
        id: &str,
        granularity: Granularity,
        since: i64,
    ) -> Result<Vec<UsageBucket>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT start, requests, messages, bytes, auth_failures FROM key_usage
             WHERE key_id = ?1 AND granularity = ?2 AND start >= ?3 ORDER BY start",
        )?;
        let rows = stmt.query_map(params![id, granularity.as_str(), since], |r| {
            let n = |i| r.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
            Ok(UsageBucket {
                start: r.get(0)?,
                requests: n(1)?,
                messages: n(2)?,
                bytes: n(3)?,
                auth_failures: n(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
