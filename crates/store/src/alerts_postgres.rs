//! [`AlertStore`] on PostgreSQL (`[cluster] postgres_url`), and in `outbox_postgres.rs` the
//! [`crate::outbox::Outbox`] on the same tables: every node of a cluster reads and writes the
//! same rules, endpoints, firings and deliveries, so a rule created through one edge is
//! evaluated wherever its partition's evaluator runs and listed through every other.
//!
//! **The change number.** [`AlertStore::rule_changes_since`] must never skip a write. A plain
//! sequence (`nextval`) would: writer A takes 10, writer B takes 11 and commits first, an
//! evaluator reads "newest = 11" and moves past 10 before A commits it. Here the number comes
//! from one counter row, `UPDATE alert_changes SET seq = seq + 1 … RETURNING seq`, inside the
//! writing transaction: its row lock is held until commit (or rollback), so a second writer
//! waits and then increments the committed value. Numbers are therefore handed out in commit
//! order, and a reader that sees number `n` committed sees every write numbered up to `n`:
//! [`AlertStore::rule_changes_since`] reads the counter and the changed rows in one REPEATABLE
//! READ snapshot. (A transaction-level advisory lock around a sequence would give the same
//! order; the counter row is what `keys_postgres.rs` already does.) Rule writes serialize on
//! it, which costs nothing at their rate (REST edits, expiries, completions); a firing takes
//! it only when it completes a rule.
//!
//! **Lock order.** Every transaction locks rule rows before the counter row (an update or a
//! status change locks its rule first; [`crate::outbox::Outbox::record_firings`] bumps its
//! rules' counters in id order, then the counter if a rule completed), and deliveries before
//! their endpoint, so concurrent writers on several nodes wait for each other but never
//! deadlock.
//!
//! Endpoint secrets are stored sealed (master key id, wrapped DEK, ciphertext), as in SQLite.

use crate::StoreError;
use crate::alerts::{
    AlertStore, EndpointRecord, EndpointStats, RuleFilter, RuleRecord, RuleStatus,
};
use crate::keys::SealedSecret;
use crate::postgres::{PgPool, migrate, to_i64, to_u64};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{GenericClient, IsolationLevel, Row, Transaction};
use std::sync::Arc;

const MIGRATIONS: &[&str] = &["CREATE TABLE alert_rules (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        partition TEXT NOT NULL,
        spec TEXT NOT NULL,
        endpoints TEXT NOT NULL,
        status TEXT NOT NULL,
        expires_at BIGINT,
        max_firings BIGINT,
        firings BIGINT NOT NULL DEFAULT 0,
        last_fired_at BIGINT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        rev BIGINT NOT NULL,
        change_seq BIGINT NOT NULL
    );
    CREATE INDEX alert_rules_owner ON alert_rules (owner, created_at);
    CREATE INDEX alert_rules_changes ON alert_rules (partition, change_seq);
    CREATE TABLE alert_changes (id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL);
    INSERT INTO alert_changes (id, seq) VALUES (1, 0);
    CREATE TABLE webhook_endpoints (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        url TEXT NOT NULL,
        description TEXT NOT NULL,
        enabled BOOLEAN NOT NULL,
        scheme TEXT NOT NULL,
        public_key TEXT,
        secret_master_key_id TEXT NOT NULL,
        secret_dek BYTEA NOT NULL,
        secret_ciphertext BYTEA NOT NULL,
        previous_master_key_id TEXT,
        previous_dek BYTEA,
        previous_ciphertext BYTEA,
        previous_until BIGINT,
        max_in_flight BIGINT,
        timeout_ms BIGINT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        rev BIGINT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        delivered BIGINT NOT NULL DEFAULT 0,
        failures BIGINT NOT NULL DEFAULT 0,
        dead BIGINT NOT NULL DEFAULT 0,
        consecutive_failures BIGINT NOT NULL DEFAULT 0,
        last_attempt_at BIGINT,
        last_success_at BIGINT,
        last_status BIGINT,
        last_error TEXT,
        last_latency_us BIGINT
    );
    CREATE INDEX webhook_endpoints_owner ON webhook_endpoints (owner, created_at);
    CREATE TABLE alert_firings (
        id TEXT PRIMARY KEY,
        rule_id TEXT NOT NULL,
        owner TEXT NOT NULL,
        fired_at BIGINT NOT NULL,
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
        attempts BIGINT NOT NULL,
        next_attempt_at BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        last_status BIGINT,
        last_error TEXT,
        last_latency_us BIGINT,
        delivered_at BIGINT
    );
    CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
    CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, state, next_attempt_at);
    CREATE INDEX webhook_deliveries_firing ON webhook_deliveries (firing_id);
    CREATE TABLE webhook_attempts (
        seq BIGSERIAL PRIMARY KEY,
        delivery_id TEXT NOT NULL,
        attempt BIGINT NOT NULL,
        started_at BIGINT NOT NULL,
        finished_at BIGINT NOT NULL,
        status BIGINT,
        error TEXT,
        latency_us BIGINT NOT NULL,
        next_attempt_at BIGINT
    );
    CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, seq);"];

const RULE_COLUMNS: &str = "id, owner, name, partition, spec, endpoints, status, expires_at, \
    max_firings, firings, last_fired_at, created_at, updated_at, rev";

/// How many leading [`RULE_COLUMNS`] a write sets (the user fields).
const RULE_WRITTEN: usize = 9;

const ENDPOINT_COLUMNS: &str = "id, owner, url, description, enabled, scheme, \
    public_key, secret_master_key_id, secret_dek, secret_ciphertext, previous_master_key_id, \
    previous_dek, previous_ciphertext, previous_until, max_in_flight, timeout_ms, created_at, \
    updated_at, rev, attempts, delivered, failures, dead, consecutive_failures, last_attempt_at, \
    last_success_at, last_status, last_error, last_latency_us";

/// How many leading [`ENDPOINT_COLUMNS`] a write sets (all but times, `rev` and statistics).
const ENDPOINT_WRITTEN: usize = 16;

/// PostgreSQL-backed rules, endpoints, firings and deliveries (see the module documentation).
#[derive(Debug, Clone)]
pub struct PgAlertStore {
    pub(crate) pool: Arc<PgPool>,
}

impl PgAlertStore {
    /// Connects to `url`, works in `schema` (created if needed) and migrates it.
    pub fn open(url: &str, schema: &str) -> Result<Self, StoreError> {
        let pool = Arc::new(PgPool::open(url, schema)?);
        migrate(&pool, "alerts", MIGRATIONS)?;
        Ok(Self { pool })
    }

    /// The schema this store works in.
    pub fn schema(&self) -> &str {
        self.pool.schema()
    }

    /// Runs `f` in one read-write transaction, committed when it returns `Ok`.
    pub(crate) fn write<T: Send>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        self.pool.with(|client| {
            let mut tx = client.transaction()?;
            let value = f(&mut tx)?;
            tx.commit()?;
            Ok(value)
        })
    }
}

/// The next change number, in commit order (see the module documentation). Holds the counter
/// row's lock until the calling transaction ends.
pub(crate) fn next_change(tx: &mut Transaction<'_>) -> Result<i64, StoreError> {
    Ok(tx
        .query_one(
            "UPDATE alert_changes SET seq = seq + 1 WHERE id = 1 RETURNING seq",
            &[],
        )?
        .get(0))
}

pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

pub(crate) fn refs(values: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| &**v as &(dyn ToSql + Sync)).collect()
}

pub(crate) fn parse<T: std::str::FromStr<Err = String>>(
    text: &str,
    what: &str,
) -> Result<T, StoreError> {
    text.parse()
        .map_err(|e: String| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A stored `BIGINT` that the store wrote from a `u32` or `u16` (out of range reads as none).
pub(crate) fn small<T: TryFrom<i64>>(value: Option<i64>) -> Option<T> {
    value.and_then(|v| T::try_from(v).ok())
}

/// `a = $2, b = $3, ...` for the first `count` columns after the id.
fn assignments(columns: &str, count: usize) -> String {
    columns
        .split(", ")
        .take(count)
        .enumerate()
        .skip(1)
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn read_rule(row: &Row) -> Result<RuleRecord, StoreError> {
    let spec: &str = row.get(4);
    let endpoints: &str = row.get(5);
    Ok(RuleRecord {
        id: row.get(0),
        owner: row.get(1),
        name: row.get(2),
        partition: row.get(3),
        spec: serde_json::from_str(spec)
            .map_err(|e| StoreError::Corrupt(format!("rule spec: {e}")))?,
        endpoints: endpoints.split_whitespace().map(str::to_string).collect(),
        status: parse(row.get(6), "status")?,
        expires_at: row.get(7),
        max_firings: row.get::<_, Option<i64>>(8).map(to_u64),
        firings: to_u64(row.get(9)),
        last_fired_at: row.get(10),
        created_at: row.get(11),
        updated_at: row.get(12),
        rev: to_u64(row.get(13)),
    })
}

fn read_rules(rows: &[Row]) -> Result<Vec<RuleRecord>, StoreError> {
    rows.iter().map(read_rule).collect()
}

fn sealed(row: &Row, first: usize) -> Option<SealedSecret> {
    match (
        row.get::<_, Option<String>>(first),
        row.get::<_, Option<Vec<u8>>>(first + 1),
        row.get::<_, Option<Vec<u8>>>(first + 2),
    ) {
        (Some(master_key_id), Some(wrapped_dek), Some(ciphertext)) => Some(SealedSecret {
            master_key_id,
            wrapped_dek,
            ciphertext,
        }),
        _ => None,
    }
}

fn read_endpoint(row: &Row) -> Result<EndpointRecord, StoreError> {
    Ok(EndpointRecord {
        id: row.get(0),
        owner: row.get(1),
        url: row.get(2),
        description: row.get(3),
        enabled: row.get(4),
        scheme: row.get(5),
        public_key: row.get(6),
        secret: sealed(row, 7)
            .ok_or_else(|| StoreError::Corrupt("endpoint without a secret".into()))?,
        previous_secret: sealed(row, 10),
        previous_until: row.get(13),
        max_in_flight: small(row.get(14)),
        timeout_ms: small(row.get(15)),
        created_at: row.get(16),
        updated_at: row.get(17),
        rev: to_u64(row.get(18)),
        stats: EndpointStats {
            attempts: to_u64(row.get(19)),
            delivered: to_u64(row.get(20)),
            failures: to_u64(row.get(21)),
            dead: to_u64(row.get(22)),
            consecutive_failures: to_u64(row.get(23)),
            last_attempt_at: row.get(24),
            last_success_at: row.get(25),
            last_status: small(row.get(26)),
            last_error: row.get(27),
            last_latency_us: row.get(28),
        },
    })
}

fn read_endpoints(rows: &[Row]) -> Result<Vec<EndpointRecord>, StoreError> {
    rows.iter().map(read_endpoint).collect()
}

/// The user fields of a rule, in [`RULE_COLUMNS`] order.
fn rule_values(r: &RuleRecord) -> Result<Vec<Param>, StoreError> {
    let values: Vec<Param> = vec![
        Box::new(r.id.clone()),
        Box::new(r.owner.clone()),
        Box::new(r.name.clone()),
        Box::new(r.partition.clone()),
        Box::new(r.spec.to_string()),
        Box::new(r.endpoints.join(" ")),
        Box::new(r.status.as_str()),
        Box::new(r.expires_at),
        Box::new(match r.max_firings {
            Some(n) => Some(to_i64(n, "max_firings")?),
            None => None,
        }),
    ];
    debug_assert_eq!(values.len(), RULE_WRITTEN);
    Ok(values)
}

/// The written fields of an endpoint, in [`ENDPOINT_COLUMNS`] order.
fn endpoint_values(e: &EndpointRecord) -> Vec<Param> {
    let prev = e.previous_secret.as_ref();
    let values: Vec<Param> = vec![
        Box::new(e.id.clone()),
        Box::new(e.owner.clone()),
        Box::new(e.url.clone()),
        Box::new(e.description.clone()),
        Box::new(e.enabled),
        Box::new(e.scheme.clone()),
        Box::new(e.public_key.clone()),
        Box::new(e.secret.master_key_id.clone()),
        Box::new(e.secret.wrapped_dek.clone()),
        Box::new(e.secret.ciphertext.clone()),
        Box::new(prev.map(|s| s.master_key_id.clone())),
        Box::new(prev.map(|s| s.wrapped_dek.clone())),
        Box::new(prev.map(|s| s.ciphertext.clone())),
        Box::new(e.previous_until),
        Box::new(e.max_in_flight.map(i64::from)),
        Box::new(e.timeout_ms.map(i64::from)),
    ];
    debug_assert_eq!(values.len(), ENDPOINT_WRITTEN);
    values
}

fn get_rule_in(
    client: &mut impl GenericClient,
    id: &str,
    lock: bool,
) -> Result<Option<RuleRecord>, StoreError> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row = client.query_opt(
        &format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = $1{lock}"),
        &[&id],
    )?;
    row.as_ref().map(read_rule).transpose()
}

fn get_endpoint_in(
    client: &mut impl GenericClient,
    id: &str,
) -> Result<Option<EndpointRecord>, StoreError> {
    let row = client.query_opt(
        &format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"),
        &[&id],
    )?;
    row.as_ref().map(read_endpoint).transpose()
}

fn exists(tx: &mut Transaction<'_>, table: &str, id: &str) -> Result<bool, StoreError> {
    Ok(tx
        .query_opt(&format!("SELECT 1 FROM {table} WHERE id = $1"), &[&id])?
        .is_some())
}

/// A unique violation on insert (two nodes inserting the same id at once) is a conflict.
fn conflict_on_duplicate(error: StoreError, what: &str) -> StoreError {
    match &error {
        StoreError::Postgres(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            StoreError::Conflict(format!("{what} exists"))
        }
        _ => error,
    }
}

impl AlertStore for PgAlertStore {
    fn insert_rule(&self, rule: &RuleRecord) -> Result<RuleRecord, StoreError> {
        let what = format!("rule {}", rule.id);
        self.write(|tx| {
            if exists(tx, "alert_rules", &rule.id)? {
                return Err(StoreError::Conflict(format!("{what} exists")));
            }
            let change = next_change(tx)?;
            let mut values = rule_values(rule)?;
            values.extend([
                Box::new(rule.created_at) as Param,
                Box::new(rule.updated_at),
                Box::new(change),
            ]);
            tx.execute(
                &format!(
                    "INSERT INTO alert_rules (id, owner, name, partition, spec, endpoints, status,
                     expires_at, max_firings, created_at, updated_at, change_seq, rev)
                     VALUES ({}, 1)",
                    placeholders(values.len())
                ),
                &refs(&values),
            )?;
            get_rule_in(tx, &rule.id, false)?.ok_or_else(|| StoreError::NotFound(what.clone()))
        })
        .map_err(|e| conflict_on_duplicate(e, &format!("rule {}", rule.id)))
    }

    fn update_rule(&self, rule: &RuleRecord, expected_rev: u64) -> Result<RuleRecord, StoreError> {
        self.write(|tx| {
            // The rule row first (it is locked until commit), then the change number.
            let mut values = rule_values(rule)?;
            let sets = assignments(RULE_COLUMNS, RULE_WRITTEN);
            values.extend([
                Box::new(rule.updated_at) as Param,
                Box::new(to_i64(expected_rev, "rev")?),
            ]);
            let sql = format!(
                "UPDATE alert_rules SET {sets}, updated_at = ${}, rev = rev + 1
                 WHERE id = $1 AND rev = ${} AND status <> 'deleted'",
                RULE_WRITTEN + 1,
                RULE_WRITTEN + 2
            );
            if tx.execute(&sql, &refs(&values))? == 0 {
                let live = get_rule_in(tx, &rule.id, false)?
                    .is_some_and(|r| r.status != RuleStatus::Deleted);
                return Err(StoreError::lost_update("rule", &rule.id, live));
            }
            let change = next_change(tx)?;
            tx.execute(
                "UPDATE alert_rules SET change_seq = $2 WHERE id = $1",
                &[&rule.id, &change],
            )?;
            get_rule_in(tx, &rule.id, false)?
                .ok_or_else(|| StoreError::NotFound(format!("rule {}", rule.id)))
        })
    }

    fn set_rule_status(&self, id: &str, status: RuleStatus, at: i64) -> Result<bool, StoreError> {
        self.write(|tx| {
            let Some(current) = get_rule_in(tx, id, true)? else {
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
                "UPDATE alert_rules SET status = $2, updated_at = $3, rev = rev + 1,
                 change_seq = $4 WHERE id = $1",
                &[&id, &status.as_str(), &at, &change],
            )?;
            Ok(true)
        })
    }

    fn get_rule(&self, id: &str) -> Result<Option<RuleRecord>, StoreError> {
        self.pool.with(|client| get_rule_in(client, id, false))
    }

    fn list_rules(&self, filter: &RuleFilter) -> Result<Vec<RuleRecord>, StoreError> {
        let mut sql = format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE status <> 'deleted'");
        let mut values: Vec<Param> = Vec::new();
        let mut add = |column: &str, value: String| {
            values.push(Box::new(value));
            sql.push_str(&format!(" AND {column} = ${}", values.len()));
        };
        if let Some(owner) = &filter.owner {
            add("owner", owner.clone());
        }
        if let Some(partition) = &filter.partition {
            add("partition", partition.clone());
        }
        if let Some(status) = filter.status {
            add("status", status.as_str().into());
        }
        sql.push_str(" ORDER BY created_at DESC, id");
        if filter.limit > 0 {
            sql.push_str(&format!(" LIMIT {}", filter.limit));
        }
        self.pool
            .with(|client| read_rules(&client.query(&sql, &refs(&values))?))
    }

    fn count_rules(&self, owner: &str) -> Result<u64, StoreError> {
        self.pool.with(|client| {
            let n: i64 = client
                .query_one(
                    "SELECT COUNT(*) FROM alert_rules WHERE owner = $1 AND status <> 'deleted'",
                    &[&owner],
                )?
                .get(0);
            Ok(to_u64(n))
        })
    }

    fn rule_changes_since(
        &self,
        partition: &str,
        since: u64,
    ) -> Result<(u64, Vec<RuleRecord>), StoreError> {
        let since = to_i64(since, "change number")?;
        self.pool.with(|client| {
            // One snapshot for the newest number and the rows (see the module documentation).
            let mut tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let newest: i64 = tx
                .query_one("SELECT seq FROM alert_changes WHERE id = 1", &[])?
                .get(0);
            if newest <= since {
                return Ok((to_u64(newest), Vec::new()));
            }
            let rows = tx.query(
                &format!(
                    "SELECT {RULE_COLUMNS} FROM alert_rules WHERE partition = $1
                     AND change_seq > $2 ORDER BY change_seq, id"
                ),
                &[&partition, &since],
            )?;
            let records = read_rules(&rows)?;
            tx.commit()?;
            Ok((to_u64(newest), records))
        })
    }

    fn insert_endpoint(&self, endpoint: &EndpointRecord) -> Result<EndpointRecord, StoreError> {
        let what = format!("endpoint {}", endpoint.id);
        self.write(|tx| {
            if exists(tx, "webhook_endpoints", &endpoint.id)? {
                return Err(StoreError::Conflict(format!("{what} exists")));
            }
            let mut values = endpoint_values(endpoint);
            values.extend([
                Box::new(endpoint.created_at) as Param,
                Box::new(endpoint.updated_at),
            ]);
            let columns: Vec<&str> = ENDPOINT_COLUMNS.split(", ").take(values.len()).collect();
            tx.execute(
                &format!(
                    "INSERT INTO webhook_endpoints ({}, rev) VALUES ({}, 1)",
                    columns.join(", "),
                    placeholders(values.len())
                ),
                &refs(&values),
            )?;
            get_endpoint_in(tx, &endpoint.id)?.ok_or_else(|| StoreError::NotFound(what.clone()))
        })
        .map_err(|e| conflict_on_duplicate(e, &format!("endpoint {}", endpoint.id)))
    }

    fn update_endpoint(
        &self,
        endpoint: &EndpointRecord,
        expected_rev: u64,
    ) -> Result<EndpointRecord, StoreError> {
        self.write(|tx| {
            let mut values = endpoint_values(endpoint);
            let sets = assignments(ENDPOINT_COLUMNS, ENDPOINT_WRITTEN);
            values.extend([
                Box::new(endpoint.updated_at) as Param,
                Box::new(to_i64(expected_rev, "rev")?),
            ]);
            let sql = format!(
                "UPDATE webhook_endpoints SET {sets}, updated_at = ${}, rev = rev + 1
                 WHERE id = $1 AND rev = ${}",
                ENDPOINT_WRITTEN + 1,
                ENDPOINT_WRITTEN + 2
            );
            if tx.execute(&sql, &refs(&values))? == 0 {
                let found = exists(tx, "webhook_endpoints", &endpoint.id)?;
                return Err(StoreError::lost_update("endpoint", &endpoint.id, found));
            }
            get_endpoint_in(tx, &endpoint.id)?
                .ok_or_else(|| StoreError::NotFound(format!("endpoint {}", endpoint.id)))
        })
    }

    fn delete_endpoint(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            if !exists(tx, "webhook_endpoints", id)? {
                return Err(StoreError::NotFound(format!("endpoint {id}")));
            }
            let used = tx.query_opt(
                "SELECT id FROM alert_rules WHERE status IN ('active', 'paused')
                 AND $1 = ANY (string_to_array(endpoints, ' ')) LIMIT 1",
                &[&id],
            )?;
            if let Some(row) = used {
                let rule: String = row.get(0);
                return Err(StoreError::Conflict(format!(
                    "endpoint {id} is used by rule {rule}; remove it from the rule first"
                )));
            }
            // Deliveries before their endpoint (the lock order of the module documentation).
            tx.execute(
                "UPDATE webhook_deliveries SET state = 'dead', last_error = 'endpoint deleted',
                 updated_at = $2 WHERE endpoint_id = $1 AND state = 'pending'",
                &[&id, &at],
            )?;
            tx.execute("DELETE FROM webhook_endpoints WHERE id = $1", &[&id])?;
            Ok(())
        })
    }

    fn get_endpoint(&self, id: &str) -> Result<Option<EndpointRecord>, StoreError> {
        self.pool.with(|client| get_endpoint_in(client, id))
    }

    fn list_endpoints(&self, owner: &str) -> Result<Vec<EndpointRecord>, StoreError> {
        self.pool.with(|client| {
            read_endpoints(&client.query(
                &format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE owner = $1
                     ORDER BY created_at, id"
                ),
                &[&owner],
            )?)
        })
    }

    fn list_all_endpoints(&self) -> Result<Vec<EndpointRecord>, StoreError> {
        self.pool.with(|client| {
            read_endpoints(&client.query(
                &format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id"
                ),
                &[],
            )?)
        })
    }
}
