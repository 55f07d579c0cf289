//! [`AlertStore`] (and, in `outbox_sqlite.rs`, [`crate::outbox::Outbox`]) on the embedded
//! SQLite database (`tickgate.db` in the data directory, beside keys and audit).

use crate::alerts::{
    AlertStore, EndpointRecord, EndpointStats, RuleFilter, RuleRecord, RuleStatus,
};
use crate::keys::SealedSecret;
use crate::{StoreError, sqlite};
use parking_lot::Mutex;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use std::path::Path;
use std::sync::Arc;

const MIGRATIONS: &[&str] = &["CREATE TABLE alert_rules (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        partition TEXT NOT NULL,
        spec TEXT NOT NULL,
        endpoints TEXT NOT NULL,
        status TEXT NOT NULL,
        expires_at INTEGER,
        max_firings INTEGER,
        firings INTEGER NOT NULL DEFAULT 0,
        last_fired_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        rev INTEGER NOT NULL,
        change_seq INTEGER NOT NULL
    );
    CREATE INDEX alert_rules_owner ON alert_rules (owner, created_at);
    CREATE INDEX alert_rules_changes ON alert_rules (partition, change_seq);
    CREATE TABLE alert_changes (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
    INSERT INTO alert_changes (id, seq) VALUES (1, 0);
    CREATE TABLE webhook_endpoints (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        url TEXT NOT NULL,
        description TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        scheme TEXT NOT NULL,
        public_key TEXT,
        secret_master_key_id TEXT NOT NULL,
        secret_dek BLOB NOT NULL,
        secret_ciphertext BLOB NOT NULL,
        previous_master_key_id TEXT,
        previous_dek BLOB,
        previous_ciphertext BLOB,
        previous_until INTEGER,
        max_in_flight INTEGER,
        timeout_ms INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        rev INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        delivered INTEGER NOT NULL DEFAULT 0,
        failures INTEGER NOT NULL DEFAULT 0,
        dead INTEGER NOT NULL DEFAULT 0,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        last_attempt_at INTEGER,
        last_success_at INTEGER,
        last_status INTEGER,
        last_error TEXT,
        last_latency_us INTEGER
    );
    CREATE INDEX webhook_endpoints_owner ON webhook_endpoints (owner, created_at);
    CREATE TABLE alert_firings (
        id TEXT PRIMARY KEY,
        rule_id TEXT NOT NULL,
        owner TEXT NOT NULL,
        fired_at INTEGER NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE INDEX alert_firings_owner ON alert_firings (owner, fired_at);
    CREATE INDEX alert_firings_rule ON alert_firings (rule_id, fired_at);
    CREATE TABLE webhook_deliveries (
        id TEXT PRIMARY KEY,
        firing_id TEXT NOT NULL,
        endpoint_id TEXT NOT NULL,
        owner TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        last_status INTEGER,
        last_error TEXT,
        last_latency_us INTEGER,
        delivered_at INTEGER
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
    CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, state, next_attempt_at);
    CREATE INDEX webhook_deliveries_firing ON webhook_deliveries (firing_id);
    CREATE TABLE webhook_attempts (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        delivery_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        status INTEGER,
        error TEXT,
        latency_us INTEGER NOT NULL,
        next_attempt_at INTEGER
    );
    CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, seq);"];

const RULE_COLUMNS: &str = "id, owner, name, partition, spec, endpoints, status, expires_at, \
    max_firings, firings, last_fired_at, created_at, updated_at, rev";

pub(crate) const ENDPOINT_COLUMNS: &str = "id, owner, url, description, enabled, scheme, \
    public_key, secret_master_key_id, secret_dek, secret_ciphertext, previous_master_key_id, previous_dek, \
    previous_ciphertext, previous_until, max_in_flight, timeout_ms, created_at, updated_at, rev, \
    attempts, delivered, failures, dead, consecutive_failures, last_attempt_at, last_success_at, \
    last_status, last_error, last_latency_us";

/// SQLite-backed rules, endpoints, firings and deliveries.
#[derive(Debug, Clone)]
pub struct SqliteAlertStore {
    pub(crate) conn: Arc<Mutex<Connection>>,
}

impl SqliteAlertStore {
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
        sqlite::migrate(&mut conn, "alerts", MIGRATIONS)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }
}

pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Conflict(format!("{what} out of range")))
}

pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

pub(crate) fn next_change(tx: &Transaction<'_>) -> Result<i64, StoreError> {
    tx.execute("UPDATE alert_changes SET seq = seq + 1 WHERE id = 1", [])?;
    Ok(
        tx.query_row("SELECT seq FROM alert_changes WHERE id = 1", [], |r| {
            r.get(0)
        })?,
    )
}

pub(crate) fn parse_text<T: std::str::FromStr<Err = String>>(
    text: String,
    what: &str,
) -> rusqlite::Result<T> {
    text.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("{what}: {e}").into(),
        )
    })
}

fn read_rule(row: &Row<'_>) -> rusqlite::Result<RuleRecord> {
    let spec: String = row.get(4)?;
    let endpoints: String = row.get(5)?;
    Ok(RuleRecord {
        id: row.get(0)?,
        owner: row.get(1)?,
        name: row.get(2)?,
        partition: row.get(3)?,
        spec: serde_json::from_str(&spec).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, e.into())
        })?,
        endpoints: endpoints.split_whitespace().map(str::to_string).collect(),
        status: parse_text(row.get(6)?, "status")?,
        expires_at: row.get(7)?,
        max_firings: row.get::<_, Option<i64>>(8)?.map(to_u64),
        firings: to_u64(row.get(9)?),
        last_fired_at: row.get(10)?,
        created_at: row.get(11)?,
        updated_at: row.get(12)?,
        rev: to_u64(row.get(13)?),
    })
}

fn sealed(row: &Row<'_>, first: usize) -> rusqlite::Result<Option<SealedSecret>> {
    Ok(
        match (
            row.get::<_, Option<String>>(first)?,
            row.get::<_, Option<Vec<u8>>>(first + 1)?,
            row.get::<_, Option<Vec<u8>>>(first + 2)?,
        ) {
            (Some(master_key_id), Some(wrapped_dek), Some(ciphertext)) => Some(SealedSecret {
                master_key_id,
                wrapped_dek,
                ciphertext,
            }),
            _ => None,
        },
    )
}

pub(crate) fn read_endpoint(row: &Row<'_>) -> rusqlite::Result<EndpointRecord> {
    let opt_u32 = |i| {
        row.get::<_, Option<i64>>(i)
            .map(|v| v.and_then(|v| u32::try_from(v).ok()))
    };
    Ok(EndpointRecord {
        id: row.get(0)?,
        owner: row.get(1)?,
        url: row.get(2)?,
        description: row.get(3)?,
        enabled: row.get(4)?,
        scheme: row.get(5)?,
        public_key: row.get(6)?,
        secret: sealed(row, 7)?.ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                7,
                rusqlite::types::Type::Null,
                "endpoint without a secret".into(),
            )
        })?,
        previous_secret: sealed(row, 10)?,
        previous_until: row.get(13)?,
        max_in_flight: opt_u32(14)?,
        timeout_ms: opt_u32(15)?,
        created_at: row.get(16)?,
        updated_at: row.get(17)?,
        rev: to_u64(row.get(18)?),
        stats: EndpointStats {
            attempts: to_u64(row.get(19)?),
            delivered: to_u64(row.get(20)?),
            failures: to_u64(row.get(21)?),
            dead: to_u64(row.get(22)?),
            consecutive_failures: to_u64(row.get(23)?),
            last_attempt_at: row.get(24)?,
            last_success_at: row.get(25)?,
            last_status: row
                .get::<_, Option<i64>>(26)?
                .and_then(|v| u16::try_from(v).ok()),
            last_error: row.get(27)?,
            last_latency_us: row.get(28)?,
        },
    })
}

fn rule_values(r: &RuleRecord) -> Result<Vec<Value>, StoreError> {
    let opt_int = |v: Option<i64>| v.map_or(Value::Null, Value::Integer);
    Ok(vec![
        Value::Text(r.id.clone()),
        Value::Text(r.owner.clone()),
        Value::Text(r.name.clone()),
        Value::Text(r.partition.clone()),
        Value::Text(r.spec.to_string()),
        Value::Text(r.endpoints.join(" ")),
        Value::Text(r.status.as_str().into()),
        opt_int(r.expires_at),
        match r.max_firings {
            Some(n) => Value::Integer(to_i64(n, "max_firings")?),
            None => Value::Null,
        },
    ])
}

fn endpoint_values(e: &EndpointRecord) -> Vec<Value> {
    let opt_int = |v: Option<i64>| v.map_or(Value::Null, Value::Integer);
    let prev = e.previous_secret.as_ref();
    vec![
        Value::Text(e.id.clone()),
        Value::Text(e.owner.clone()),
        Value::Text(e.url.clone()),
        Value::Text(e.description.clone()),
        Value::Integer(i64::from(e.enabled)),
        Value::Text(e.scheme.clone()),
        e.public_key.clone().map_or(Value::Null, Value::Text),
        Value::Text(e.secret.master_key_id.clone()),
        Value::Blob(e.secret.wrapped_dek.clone()),
        Value::Blob(e.secret.ciphertext.clone()),
        prev.map_or(Value::Null, |s| Value::Text(s.master_key_id.clone())),
        prev.map_or(Value::Null, |s| Value::Blob(s.wrapped_dek.clone())),
        prev.map_or(Value::Null, |s| Value::Blob(s.ciphertext.clone())),
        opt_int(e.previous_until),
        opt_int(e.max_in_flight.map(i64::from)),
        opt_int(e.timeout_ms.map(i64::from)),
    ]
}

/// `a = ?2, b = ?3, ...` for the columns after the id.
fn assignments(columns: &str, count: usize) -> String {
    columns
        .split(", ")
        .take(count)
        .enumerate()
        .skip(1)
        .map(|(i, c)| format!("{c} = ?{}", i + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn exists(tx: &Transaction<'_>, table: &str, id: &str) -> Result<bool, StoreError> {
    Ok(tx.query_row(
        &format!("SELECT EXISTS(SELECT 1 FROM {table} WHERE id = ?1)"),
        [id],
        |r| r.get(0),
    )?)
}

fn get_rule_tx(conn: &Connection, id: &str) -> Result<Option<RuleRecord>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = ?1"),
            [id],
            read_rule,
        )
        .optional()?)
}

pub(crate) fn get_endpoint_tx(
    conn: &Connection,
    id: &str,
) -> Result<Option<EndpointRecord>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?1"),
            [id],
            read_endpoint,
        )
        .optional()?)
}

impl AlertStore for SqliteAlertStore {
    fn insert_rule(&self, rule: &RuleRecord) -> Result<RuleRecord, StoreError> {
        self.write(|tx| {
            if exists(tx, "alert_rules", &rule.id)? {
                return Err(StoreError::Conflict(format!("rule {} exists", rule.id)));
            }
            let change = next_change(tx)?;
            let mut values = rule_values(rule)?;
            values.extend([
                Value::Integer(rule.created_at),
                Value::Integer(rule.updated_at),
                Value::Integer(change),
            ]);
            tx.execute(
                &format!(
                    "INSERT INTO alert_rules (id, owner, name, partition, spec, endpoints, status,
                     expires_at, max_firings, created_at, updated_at, change_seq, rev)
                     VALUES ({}, 1)",
                    placeholders(values.len())
                ),
                rusqlite::params_from_iter(values),
            )?;
            get_rule_tx(tx, &rule.id)?
                .ok_or_else(|| StoreError::NotFound(format!("rule {}", rule.id)))
        })
    }

    fn update_rule(&self, rule: &RuleRecord, expected_rev: u64) -> Result<RuleRecord, StoreError> {
        self.write(|tx| {
            let change = next_change(tx)?;
            let mut values = rule_values(rule)?;
            let n = values.len();
            let sets = assignments(RULE_COLUMNS, n);
            values.extend([
                Value::Integer(rule.updated_at),
                Value::Integer(change),
                Value::Integer(to_i64(expected_rev, "rev")?),
            ]);
            let sql = format!(
                "UPDATE alert_rules SET {sets}, updated_at = ?{}, rev = rev + 1, change_seq = ?{}
                 WHERE id = ?1 AND rev = ?{} AND status <> 'deleted'",
                n + 1,
                n + 2,
                n + 3
            );
            if tx.execute(&sql, rusqlite::params_from_iter(values))? == 0 {
                let live =
                    get_rule_tx(tx, &rule.id)?.is_some_and(|r| r.status != RuleStatus::Deleted);
                return Err(StoreError::lost_update("rule", &rule.id, live));
            }
            get_rule_tx(tx, &rule.id)?
                .ok_or_else(|| StoreError::NotFound(format!("rule {}", rule.id)))
        })
    }

    fn set_rule_status(&self, id: &str, status: RuleStatus, at: i64) -> Result<bool, StoreError> {
        self.write(|tx| {
            let Some(current) = get_rule_tx(tx, id)? else {
                return Err(StoreError::NotFound(format!("rule {id}")));
            };
            // Deleting is always possible (but only once); other changes never leave a final
            // state.
            let allowed = match status {
                RuleStatus::Deleted => current.status != RuleStatus::Deleted,
                _ => !current.status.is_final() && current.status != status,
            };
            if !allowed {
                return Ok(false);
            }
            let change = next_change(tx)?;
            tx.execute(
                "UPDATE alert_rules SET status = ?2, updated_at = ?3, rev = rev + 1,
                 change_seq = ?4 WHERE id = ?1",
                params![id, status.as_str(), at, change],
            )?;
            Ok(true)
        })
    }

    fn get_rule(&self, id: &str) -> Result<Option<RuleRecord>, StoreError> {
        get_rule_tx(&self.conn.lock(), id)
    }

    fn list_rules(&self, filter: &RuleFilter) -> Result<Vec<RuleRecord>, StoreError> {
        let mut sql = format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE status <> 'deleted'");
        let mut values: Vec<Value> = Vec::new();
        let mut add = |clause: &str, value: Value| {
            values.push(value);
            sql.push_str(&format!(" AND {clause} = ?{}", values.len()));
        };
        if let Some(owner) = &filter.owner {
            add("owner", Value::Text(owner.clone()));
        }
        if let Some(partition) = &filter.partition {
            add("partition", Value::Text(partition.clone()));
        }
        if let Some(status) = filter.status {
            add("status", Value::Text(status.as_str().into()));
        }
        sql.push_str(" ORDER BY created_at DESC, id");
        if filter.limit > 0 {
            sql.push_str(&format!(" LIMIT {}", filter.limit));
        }
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(values), read_rule)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn count_rules(&self, owner: &str) -> Result<u64, StoreError> {
        let conn = self.conn.lock();
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM alert_rules WHERE owner = ?1 AND status <> 'deleted'",
            [owner],
            |r| r.get(0),
        )?;
        Ok(to_u64(n))
    }

    fn rule_changes_since(
        &self,
        partition: &str,
        since: u64,
    ) -> Result<(u64, Vec<RuleRecord>), StoreError> {
        let conn = self.conn.lock();
        let newest: i64 =
            conn.query_row("SELECT seq FROM alert_changes WHERE id = 1", [], |r| {
                r.get(0)
            })?;
        let since = to_i64(since, "change number")?;
        if newest <= since {
            return Ok((to_u64(newest), Vec::new()));
        }
        let mut stmt = conn.prepare(&format!(
            "SELECT {RULE_COLUMNS} FROM alert_rules WHERE partition = ?1 AND change_seq > ?2
             ORDER BY change_seq"
        ))?;
        let rows = stmt.query_map(params![partition, since], read_rule)?;
        Ok((to_u64(newest), rows.collect::<Result<_, _>>()?))
    }

    fn insert_endpoint(&self, endpoint: &EndpointRecord) -> Result<EndpointRecord, StoreError> {
        self.write(|tx| {
            if exists(tx, "webhook_endpoints", &endpoint.id)? {
                return Err(StoreError::Conflict(format!(
                    "endpoint {} exists",
                    endpoint.id
                )));
            }
            let mut values = endpoint_values(endpoint);
            values.extend([
                Value::Integer(endpoint.created_at),
                Value::Integer(endpoint.updated_at),
            ]);
            let columns: Vec<&str> = ENDPOINT_COLUMNS.split(", ").take(values.len()).collect();
            tx.execute(
                &format!(
                    "INSERT INTO webhook_endpoints ({}, rev) VALUES ({}, 1)",
                    columns.join(", "),
                    placeholders(values.len())
                ),
                rusqlite::params_from_iter(values),
            )?;
            get_endpoint_tx(tx, &endpoint.id)?
                .ok_or_else(|| StoreError::NotFound(format!("endpoint {}", endpoint.id)))
        })
    }

    fn update_endpoint(
        &self,
        endpoint: &EndpointRecord,
        expected_rev: u64,
    ) -> Result<EndpointRecord, StoreError> {
        self.write(|tx| {
            let mut values = endpoint_values(endpoint);
            let n = values.len();
            let sets = assignments(ENDPOINT_COLUMNS, n);
            values.extend([
                Value::Integer(endpoint.updated_at),
                Value::Integer(to_i64(expected_rev, "rev")?),
            ]);
            let sql = format!(
                "UPDATE webhook_endpoints SET {sets}, updated_at = ?{}, rev = rev + 1
                 WHERE id = ?1 AND rev = ?{}",
                n + 1,
                n + 2
            );
            if tx.execute(&sql, rusqlite::params_from_iter(values))? == 0 {
                let found = exists(tx, "webhook_endpoints", &endpoint.id)?;
                return Err(StoreError::lost_update("endpoint", &endpoint.id, found));
            }
            get_endpoint_tx(tx, &endpoint.id)?
                .ok_or_else(|| StoreError::NotFound(format!("endpoint {}", endpoint.id)))
        })
    }

    fn delete_endpoint(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            if !exists(tx, "webhook_endpoints", id)? {
                return Err(StoreError::NotFound(format!("endpoint {id}")));
            }
            // Endpoint ids are `whe_` + base62, so a space-separated list matches exactly.
            let used: Option<String> = tx
                .query_row(
                    "SELECT id FROM alert_rules WHERE status IN ('active', 'paused')
                     AND (' ' || endpoints || ' ') LIKE ('% ' || ?1 || ' %') LIMIT 1",
                    [id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(rule) = used {
                return Err(StoreError::Conflict(format!(
                    "endpoint {id} is used by rule {rule}; remove it from the rule first"
                )));
            }
            tx.execute(
                "UPDATE webhook_deliveries SET state = 'dead', last_error = 'endpoint deleted',
                 updated_at = ?2 WHERE endpoint_id = ?1 AND state = 'pending'",
                params![id, at],
            )?;
            tx.execute("DELETE FROM webhook_endpoints WHERE id = ?1", [id])?;
            Ok(())
        })
    }

    fn get_endpoint(&self, id: &str) -> Result<Option<EndpointRecord>, StoreError> {
        get_endpoint_tx(&self.conn.lock(), id)
    }

    fn list_endpoints(&self, owner: &str) -> Result<Vec<EndpointRecord>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE owner = ?1
             ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map([owner], read_endpoint)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn list_all_endpoints(&self) -> Result<Vec<EndpointRecord>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map([], read_endpoint)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
