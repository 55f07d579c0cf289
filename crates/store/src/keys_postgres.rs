//! [`KeyStore`] on PostgreSQL (`[cluster] postgres_url`): every node of a cluster reads and
//! writes the same keys, usage buckets, security state and audit chain.
//!
//! **The change counter.** `changes_since` must never skip a write. A plain sequence
//! (`nextval`) would: writer A takes 10, writer B takes 11 and commits first, a poller reads
//! "newest = 11", then A commits 10 and the poller, already past it, never sees it. Here the
//! number comes from one counter row, `UPDATE key_changes SET seq = seq + 1 … RETURNING seq`,
//! inside the writing transaction: the row lock is held until commit, so a second writer waits
//! and then increments the committed value. Numbers are therefore handed out in commit order,
//! and a reader that sees number `n` committed has every write numbered below `n` committed
//! too. Readers take the newest number and the changed rows from one REPEATABLE READ snapshot.
//! The cost is that key writes serialize, which they already do on the audit head; key writes
//! are rare (admin actions, rotations, expiries), usage flushes do not take the counter.
//!
//! **Wake-up.** Every key write also sends `NOTIFY` on [`PgKeyStore::channel`] (delivered at
//! commit), so other nodes can poll at once instead of at their next interval; see
//! [`PgKeyStore::listen`].

use crate::audit::NewAuditEvent;
use crate::audit_postgres::{self, PgAuditLog};
use crate::keys::{
    Granularity, KeyFilter, KeyRecord, KeyStore, KeyWrite, RateLimit, SealedSecret, UsageBucket,
    UsageDelta, bucket_start,
};
use crate::postgres::{PgPool, migrate, to_i64, to_u64};
use crate::{StoreError, security_postgres};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{IsolationLevel, Row, Transaction};
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
        grace_until BIGINT,
        version BIGINT NOT NULL,
        replaces TEXT,
        replaced_by TEXT,
        metadata TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        expires_at BIGINT,
        revoked_at BIGINT,
        revoked_reason TEXT,
        token_hash BYTEA UNIQUE,
        public_key BYTEA,
        sealed_master_key_id TEXT,
        sealed_dek BYTEA,
        sealed_ciphertext BYTEA,
        rate_per_sec BIGINT,
        rate_burst BIGINT,
        max_age_secs BIGINT,
        rotated_at BIGINT,
        last_used_at BIGINT,
        last_used_addr TEXT,
        rev BIGINT NOT NULL,
        change_seq BIGINT NOT NULL
    );
    CREATE INDEX keys_principal ON keys (principal);
    CREATE INDEX keys_change_seq ON keys (change_seq);
    CREATE TABLE key_changes (id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL);
    INSERT INTO key_changes (id, seq) VALUES (1, 0);
    CREATE TABLE key_usage (
        key_id TEXT NOT NULL,
        granularity TEXT NOT NULL,
        start BIGINT NOT NULL,
        requests BIGINT NOT NULL,
        messages BIGINT NOT NULL,
        bytes BIGINT NOT NULL,
        auth_failures BIGINT NOT NULL,
        PRIMARY KEY (key_id, granularity, start)
    );",
    security_postgres::MIGRATION,
];

const COLUMNS: &str = "id, principal, kind, environment, name, scopes, status, grace_until, \
    version, replaces, replaced_by, metadata, created_at, created_by, expires_at, revoked_at, \
    revoked_reason, token_hash, public_key, sealed_master_key_id, sealed_dek, sealed_ciphertext, \
    rate_per_sec, rate_burst, max_age_secs, rotated_at, last_used_at, last_used_addr, rev";

/// How many leading [`COLUMNS`] a write sets (all but `last_used_*` and `rev`).
const WRITTEN: usize = 26;

/// PostgreSQL-backed keys (and, sharing its pool, the audit log: see [`Self::audit_log`]).
#[derive(Debug, Clone)]
pub struct PgKeyStore {
    pub(crate) pool: Arc<PgPool>,
}

impl PgKeyStore {
    /// Connects to `url`, works in `schema` (created if needed) and migrates it.
    pub fn open(url: &str, schema: &str) -> Result<Self, StoreError> {
        let pool = Arc::new(PgPool::open(url, schema)?);
        migrate(&pool, "keys", MIGRATIONS)?;
        migrate(&pool, "audit", audit_postgres::MIGRATIONS)?;
        Ok(Self { pool })
    }

    /// The audit log in the same schema; key writes append to it in their own transaction.
    pub fn audit_log(&self) -> PgAuditLog {
        PgAuditLog::new(self.pool.clone())
    }

    /// The schema this store works in.
    pub fn schema(&self) -> &str {
        self.pool.schema()
    }

    /// The `NOTIFY` channel key writes signal on (one per schema, so clusters sharing a
    /// database do not wake each other). The payload is the new change number.
    pub fn channel(&self) -> String {
        format!("tickgate_keys_{}", self.pool.schema())
    }

    /// A dedicated connection listening on [`Self::channel`]. A new connection each call
    /// (the caller reconnects with it when the old one drops).
    pub fn listen(&self) -> Result<KeyListener, StoreError> {
        let mut client = self.pool.connect()?;
        client.batch_execute(&format!("LISTEN \"{}\"", self.channel()))?;
        Ok(KeyListener { client })
    }
}

/// A `LISTEN` connection on a key store's change channel.
pub struct KeyListener {
    client: postgres::Client,
}

impl std::fmt::Debug for KeyListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyListener").finish_non_exhaustive()
    }
}

impl KeyListener {
    /// Waits up to `timeout` for key changes: `Some(change number)` of the first one
    /// announced (all already queued are consumed), `None` if none came. An error means the
    /// connection is gone: open a new listener.
    pub fn wait(&mut self, timeout: std::time::Duration) -> Result<Option<u64>, StoreError> {
        use postgres::fallible_iterator::FallibleIterator;
        let first = self.client.notifications().timeout_iter(timeout).next()?;
        let Some(first) = first else {
            if self.client.is_closed() {
                return Err(StoreError::Unavailable(
                    "the LISTEN connection closed".into(),
                ));
            }
            return Ok(None);
        };
        let mut newest = first.payload().parse().unwrap_or(0);
        let mut queued = self.client.notifications();
        let mut pending = queued.iter();
        while let Some(more) = pending.next()? {
            newest = more.payload().parse().unwrap_or(newest).max(newest);
        }
        Ok(Some(newest))
    }
}

fn next_change(tx: &mut Transaction<'_>) -> Result<i64, StoreError> {
    let row = tx.query_one(
        "UPDATE key_changes SET seq = seq + 1 WHERE id = 1 RETURNING seq",
        &[],
    )?;
    Ok(row.get(0))
}

type Param = Box<dyn ToSql + Sync + Send>;

fn write_values(record: &KeyRecord) -> Result<Vec<Param>, StoreError> {
    let sealed = record.sealed.as_ref();
    let values: Vec<Param> = vec![
        Box::new(record.id.clone()),
        Box::new(record.principal.clone()),
        Box::new(record.kind.as_str()),
        Box::new(record.environment.as_str()),
        Box::new(record.name.clone()),
        Box::new(record.scopes.join(" ")),
        Box::new(record.status.as_str()),
        Box::new(record.grace_until),
        Box::new(i64::from(record.version)),
        Box::new(record.replaces.clone()),
        Box::new(record.replaced_by.clone()),
        Box::new(record.metadata.to_string()),
        Box::new(record.created_at),
        Box::new(record.created_by.clone()),
        Box::new(record.expires_at),
        Box::new(record.revoked_at),
        Box::new(record.revoked_reason.clone()),
        Box::new(record.token_hash.map(|h| h.to_vec())),
        Box::new(record.public_key.clone()),
        Box::new(sealed.map(|s| s.master_key_id.clone())),
        Box::new(sealed.map(|s| s.wrapped_dek.clone())),
        Box::new(sealed.map(|s| s.ciphertext.clone())),
        Box::new(record.rate_limit.map(|r| i64::from(r.per_sec))),
        Box::new(record.rate_limit.map(|r| i64::from(r.burst))),
        Box::new(match record.max_age_secs {
            Some(v) => Some(to_i64(v, "max_age_secs")?),
            None => None,
        }),
        Box::new(record.rotated_at),
    ];
    debug_assert_eq!(values.len(), WRITTEN);
    Ok(values)
}

fn refs(values: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| &**v as &(dyn ToSql + Sync)).collect()
}

fn parse<T: std::str::FromStr<Err = String>>(text: &str, what: &str) -> Result<T, StoreError> {
    text.parse()
        .map_err(|e: String| StoreError::Corrupt(format!("{what}: {e}")))
}

fn read_record(row: &Row) -> Result<KeyRecord, StoreError> {
    let scopes: &str = row.get(5);
    let metadata: &str = row.get(11);
    let token_hash: Option<&[u8]> = row.get(17);
    let sealed = match (
        row.get::<_, Option<String>>(19),
        row.get::<_, Option<Vec<u8>>>(20),
        row.get::<_, Option<Vec<u8>>>(21),
    ) {
        (Some(master_key_id), Some(wrapped_dek), Some(ciphertext)) => Some(SealedSecret {
            master_key_id,
            wrapped_dek,
            ciphertext,
        }),
        _ => None,
    };
    let rate_limit = match (row.get::<_, Option<i64>>(22), row.get::<_, Option<i64>>(23)) {
        (Some(per_sec), Some(burst)) => Some(RateLimit {
            per_sec: u32::try_from(per_sec).unwrap_or(u32::MAX),
            burst: u32::try_from(burst).unwrap_or(u32::MAX),
        }),
        _ => None,
    };
    Ok(KeyRecord {
        id: row.get(0),
        principal: row.get(1),
        kind: parse(row.get(2), "kind")?,
        environment: parse(row.get(3), "environment")?,
        name: row.get(4),
        scopes: scopes.split_whitespace().map(str::to_string).collect(),
        status: parse(row.get(6), "status")?,
        grace_until: row.get(7),
        version: u32::try_from(row.get::<_, i64>(8)).unwrap_or(u32::MAX),
        replaces: row.get(9),
        replaced_by: row.get(10),
        metadata: serde_json::from_str(metadata).unwrap_or(serde_json::Value::Null),
        created_at: row.get(12),
        created_by: row.get(13),
        expires_at: row.get(14),
        revoked_at: row.get(15),
        revoked_reason: row.get(16),
        token_hash: token_hash.and_then(|h| <[u8; 32]>::try_from(h).ok()),
        public_key: row.get(18),
        sealed,
        rate_limit,
        max_age_secs: row
            .get::<_, Option<i64>>(24)
            .and_then(|v| u64::try_from(v).ok()),
        rotated_at: row.get(25),
        last_used_at: row.get(26),
        last_used_addr: row.get(27),
        rev: to_u64(row.get(28)),
    })
}

fn read_all(rows: &[Row]) -> Result<Vec<KeyRecord>, StoreError> {
    rows.iter().map(read_record).collect()
}

fn key_exists(tx: &mut Transaction<'_>, id: &str) -> Result<bool, StoreError> {
    Ok(tx
        .query_opt("SELECT 1 FROM keys WHERE id = $1", &[&id])?
        .is_some())
}

fn apply_write(tx: &mut Transaction<'_>, write: &KeyWrite) -> Result<(), StoreError> {
    let change = next_change(tx)?;
    match write {
        KeyWrite::Insert(record) => {
            if key_exists(tx, &record.id)? {
                return Err(StoreError::Conflict(format!("key {} exists", record.id)));
            }
            let mut values = write_values(record)?;
            values.push(Box::new(1i64));
            values.push(Box::new(change));
            let placeholders = (1..=values.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let columns = COLUMNS.replace(", last_used_at, last_used_addr", "");
            tx.execute(
                &format!("INSERT INTO keys ({columns}, change_seq) VALUES ({placeholders})"),
                &refs(&values),
            )?;
        }
        KeyWrite::Update {
            record,
            expected_rev,
        } => {
            let mut values = write_values(record)?;
            let sets = COLUMNS
                .split(", ")
                .take(WRITTEN)
                .enumerate()
                .skip(1)
                .map(|(i, c)| format!("{c} = ${}", i + 1))
                .collect::<Vec<_>>()
                .join(", ");
            values.push(Box::new(change));
            values.push(Box::new(to_i64(*expected_rev, "rev")?));
            let sql = format!(
                "UPDATE keys SET {sets}, rev = rev + 1, change_seq = ${} WHERE id = $1 AND rev = ${}",
                WRITTEN + 1,
                WRITTEN + 2
            );
            if tx.execute(&sql, &refs(&values))? == 0 {
                let found = key_exists(tx, &record.id)?;
                return Err(StoreError::lost_update("key", &record.id, found));
            }
        }
    }
    Ok(())
}

/// A unique violation while writing keys is a conflict, named by the constraint it hit.
fn conflict_of(error: StoreError) -> StoreError {
    match &error {
        StoreError::Postgres(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            let constraint = e.as_db_error().and_then(|d| d.constraint()).unwrap_or("");
            if constraint == "keys_pkey" {
                StoreError::Conflict("a key with the same id exists".into())
            } else {
                StoreError::Conflict("a key with the same token hash exists".into())
            }
        }
        _ => error,
    }
}

impl KeyStore for PgKeyStore {
    fn apply(&self, writes: &[KeyWrite], audit: &[NewAuditEvent]) -> Result<(), StoreError> {
        let channel = self.channel();
        self.pool.with(|client| {
            let mut tx = client.transaction()?;
            for write in writes {
                apply_write(&mut tx, write).map_err(conflict_of)?;
            }
            audit_postgres::append_tx(&mut tx, audit)?;
            if !writes.is_empty() {
                let seq: i64 = tx
                    .query_one("SELECT seq FROM key_changes WHERE id = 1", &[])?
                    .get(0);
                tx.execute("SELECT pg_notify($1, $2)", &[&channel, &seq.to_string()])?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn get(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.pool.with(|client| {
            let row =
                client.query_opt(&format!("SELECT {COLUMNS} FROM keys WHERE id = $1"), &[&id])?;
            row.as_ref().map(read_record).transpose()
        })
    }

    fn list(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM keys WHERE 1 = 1");
        let mut values: Vec<Param> = Vec::new();
        let mut add = |clause: &str, value: Param| {
            values.push(value);
            sql.push_str(&format!(" AND {clause} = ${}", values.len()));
        };
        if let Some(p) = &filter.principal {
            add("principal", Box::new(p.clone()));
        }
        if let Some(s) = filter.status {
            add("status", Box::new(s.as_str()));
        }
        if let Some(k) = filter.kind {
            add("kind", Box::new(k.as_str()));
        }
        if let Some(h) = filter.token_hash {
            add("token_hash", Box::new(h.to_vec()));
        }
        sql.push_str(" ORDER BY created_at DESC, id");
        if filter.limit > 0 {
            sql.push_str(&format!(" LIMIT {}", filter.limit));
        }
        self.pool
            .with(|client| read_all(&client.query(&sql, &refs(&values))?))
    }

    fn changes_since(&self, since: u64) -> Result<(u64, Vec<KeyRecord>), StoreError> {
        let since = to_i64(since, "change number")?;
        self.pool.with(|client| {
            // One snapshot for the newest number and the rows (see the module documentation).
            let mut tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let newest: i64 = tx
                .query_one("SELECT seq FROM key_changes WHERE id = 1", &[])?
                .get(0);
            if newest <= since {
                return Ok((to_u64(newest), Vec::new()));
            }
            let rows = tx.query(
                &format!("SELECT {COLUMNS} FROM keys WHERE change_seq > $1 ORDER BY change_seq"),
                &[&since],
            )?;
            let records = read_all(&rows)?;
            tx.commit()?;
            Ok((to_u64(newest), records))
        })
    }

    fn add_usage(&self, deltas: &[UsageDelta]) -> Result<(), StoreError> {
        if deltas.is_empty() {
            return Ok(());
        }
        // One order for every node's flush, so two flushes of the same keys cannot deadlock.
        let mut ordered: Vec<&UsageDelta> = deltas.iter().collect();
        ordered.sort_by(|a, b| (&a.key_id, a.at).cmp(&(&b.key_id, b.at)));
        self.pool.with(|client| {
            let mut tx = client.transaction()?;
            let bump = tx.prepare(
                "INSERT INTO key_usage AS u (key_id, granularity, start, requests, messages,
                     bytes, auth_failures) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (key_id, granularity, start) DO UPDATE SET
                     requests = u.requests + excluded.requests,
                     messages = u.messages + excluded.messages,
                     bytes = u.bytes + excluded.bytes,
                     auth_failures = u.auth_failures + excluded.auth_failures",
            )?;
            let last_used = tx.prepare(
                "UPDATE keys SET last_used_at = $2, last_used_addr = $3
                 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
            )?;
            for d in &ordered {
                for granularity in [Granularity::Minute, Granularity::Hour] {
                    tx.execute(
                        &bump,
                        &[
                            &d.key_id,
                            &granularity.as_str(),
                            &bucket_start(d.at, granularity),
                            &to_i64(d.requests, "requests")?,
                            &to_i64(d.messages, "messages")?,
                            &to_i64(d.bytes, "bytes")?,
                            &to_i64(d.auth_failures, "auth_failures")?,
                        ],
                    )?;
                }
            }
            for d in &ordered {
                if let Some((at, addr)) = &d.last_used {
                    tx.execute(&last_used, &[&d.key_id, at, addr])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn usage(
        &self,
        id: &str,
        granularity: Granularity,
        since: i64,
    ) -> Result<Vec<UsageBucket>, StoreError> {
        self.pool.with(|client| {
            let rows = client.query(
                "SELECT start, requests, messages, bytes, auth_failures FROM key_usage
                 WHERE key_id = $1 AND granularity = $2 AND start >= $3 ORDER BY start",
                &[&id, &granularity.as_str(), &since],
            )?;
            Ok(rows
                .iter()
                .map(|r| UsageBucket {
                    start: r.get(0),
                    requests: to_u64(r.get(1)),
                    messages: to_u64(r.get(2)),
                    bytes: to_u64(r.get(3)),
                    auth_failures: to_u64(r.get(4)),
                })
                .collect())
        })
    }
}
