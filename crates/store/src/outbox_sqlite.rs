//! [`Outbox`] on the embedded SQLite database, sharing [`SqliteAlertStore`]'s connection (a
//! firing and its rule's counter are written in one transaction).

use crate::StoreError;
use crate::alerts_sqlite::{SqliteAlertStore, next_change, parse_text, to_i64, to_u64};
use crate::outbox::{
    AttemptRecord, Claimed, DeliveryCounts, DeliveryFilter, DeliveryRecord, DeliveryState,
    FiringRecord, NewFiring, Outbox,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params};

const DELIVERY_COLUMNS: &str = "id, firing_id, endpoint_id, owner, state, attempts, \
    next_attempt_at, created_at, updated_at, last_status, last_error, last_latency_us, delivered_at";

/// The id of the delivery of `firing_id` to `endpoint_id`: derived, so each pair has one.
pub fn delivery_id(firing_id: &str, endpoint_id: &str) -> String {
    let strip = |id: &str| id.split_once('_').map_or(id, |(_, rest)| rest).to_string();
    format!("dlv_{}_{}", strip(firing_id), strip(endpoint_id))
}

fn read_delivery(row: &Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    Ok(DeliveryRecord {
        id: row.get(0)?,
        firing_id: row.get(1)?,
        endpoint_id: row.get(2)?,
        owner: row.get(3)?,
        state: parse_text(row.get(4)?, "state")?,
        attempts: u32::try_from(row.get::<_, i64>(5)?).unwrap_or(u32::MAX),
        next_attempt_at: row.get(6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
        last_status: row
            .get::<_, Option<i64>>(9)?
            .and_then(|v| u16::try_from(v).ok()),
        last_error: row.get(10)?,
        last_latency_us: row.get(11)?,
        delivered_at: row.get(12)?,
    })
}

fn read_firing(row: &Row<'_>) -> rusqlite::Result<FiringRecord> {
    Ok(FiringRecord {
        id: row.get(0)?,
        rule_id: row.get(1)?,
        owner: row.get(2)?,
        fired_at: row.get(3)?,
        payload: row.get(4)?,
    })
}

fn get_delivery_tx(conn: &Connection, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?1"),
            [id],
            read_delivery,
        )
        .optional()?)
}

impl Outbox for SqliteAlertStore {
    fn record_firings(&self, firings: &[NewFiring]) -> Result<(), StoreError> {
        if firings.is_empty() {
            return Ok(());
        }
        self.write(|tx| {
            let mut firing = tx.prepare_cached(
                "INSERT INTO alert_firings (id, rule_id, owner, fired_at, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut delivery = tx.prepare_cached(
                "INSERT INTO webhook_deliveries (id, firing_id, endpoint_id, owner, state,
                 attempts, next_attempt_at, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?5, ?5)",
            )?;
            let mut counter = tx.prepare_cached(
                "UPDATE alert_rules SET firings = firings + 1,
                 last_fired_at = MAX(COALESCE(last_fired_at, ?2), ?2) WHERE id = ?1",
            )?;
            let mut touched: Vec<&str> = Vec::new();
            for f in firings {
                firing.execute(params![f.id, f.rule_id, f.owner, f.fired_at, f.payload])?;
                for endpoint in &f.endpoints {
                    delivery.execute(params![
                        delivery_id(&f.id, endpoint),
                        f.id,
                        endpoint,
                        f.owner,
                        f.fired_at
                    ])?;
                }
                counter.execute(params![f.rule_id, f.fired_at])?;
                touched.push(&f.rule_id);
            }
            touched.sort_unstable();
            touched.dedup();
            for rule in touched {
                let done = tx.execute(
                    "UPDATE alert_rules SET status = 'completed', rev = rev + 1
                     WHERE id = ?1 AND status IN ('active', 'paused')
                     AND max_firings IS NOT NULL AND firings >= max_firings",
                    [rule],
                )?;
                if done > 0 {
                    let change = next_change(tx)?;
                    tx.execute(
                        "UPDATE alert_rules SET change_seq = ?2 WHERE id = ?1",
                        params![rule, change],
                    )?;
                }
            }
            Ok(())
        })
    }

    fn get_firing(&self, id: &str) -> Result<Option<FiringRecord>, StoreError> {
        let conn = self.conn.lock();
        Ok(conn
            .query_row(
                "SELECT id, rule_id, owner, fired_at, payload FROM alert_firings WHERE id = ?1",
                [id],
                read_firing,
            )
            .optional()?)
    }

    fn list_firings(
        &self,
        owner: &str,
        rule_id: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<FiringRecord>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, rule_id, owner, fired_at, payload FROM alert_firings
             WHERE owner = ?1 AND (?2 IS NULL OR rule_id = ?2) AND fired_at < ?3
             AND substr(rule_id, 1, 4) = 'alr_'
             ORDER BY fired_at DESC, id DESC LIMIT ?4",
        )?;
        let rows = stmt.query_map(
            params![
                owner,
                rule_id,
                before.unwrap_or(i64::MAX),
                to_i64(limit as u64, "limit")?
            ],
            read_firing,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn due_endpoints(&self, now: i64) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT d.endpoint_id, COUNT(*) FROM webhook_deliveries d
             JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled = 1
             WHERE d.state = 'pending' AND d.next_attempt_at <= ?1
             GROUP BY d.endpoint_id ORDER BY MIN(d.next_attempt_at)",
        )?;
        let rows = stmt.query_map([now], |r| Ok((r.get(0)?, to_u64(r.get(1)?))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn next_due(&self) -> Result<Option<i64>, StoreError> {
        let conn = self.conn.lock();
        Ok(conn.query_row(
            "SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d
             JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled = 1
             WHERE d.state = 'pending'",
            [],
            |r| r.get(0),
        )?)
    }

    fn claim(
        &self,
        endpoint_id: &str,
        now: i64,
        limit: usize,
        lease_until: i64,
    ) -> Result<Vec<Claimed>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.write(|tx| {
            let claimed: Vec<Claimed> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT d.id, d.firing_id, d.endpoint_id, d.owner, d.state, d.attempts,
                     d.next_attempt_at, d.created_at, d.updated_at, d.last_status, d.last_error,
                     d.last_latency_us, d.delivered_at, f.payload
                     FROM webhook_deliveries d JOIN alert_firings f ON f.id = d.firing_id
                     WHERE d.endpoint_id = ?1 AND d.state = 'pending' AND d.next_attempt_at <= ?2
                     ORDER BY d.next_attempt_at, d.id LIMIT ?3",
                )?;
                let rows = stmt.query_map(
                    params![endpoint_id, now, to_i64(limit as u64, "limit")?],
                    |row| {
                        Ok(Claimed {
                            delivery: read_delivery(row)?,
                            payload: row.get(13)?,
                        })
                    },
                )?;
                rows.collect::<Result<_, _>>()?
            };
            let mut lease = tx.prepare_cached(
                "UPDATE webhook_deliveries SET next_attempt_at = ?2 WHERE id = ?1",
            )?;
            for c in &claimed {
                lease.execute(params![c.delivery.id, lease_until])?;
            }
            Ok(claimed)
        })
    }

    fn record_attempt(&self, a: &AttemptRecord) -> Result<bool, StoreError> {
        self.write(|tx| {
            let Some(d) = get_delivery_tx(tx, &a.delivery_id)? else {
                return Ok(false);
            };
            if d.state != DeliveryState::Pending || d.attempts.saturating_add(1) != a.attempt {
                return Ok(false);
            }
            let state = match (a.succeeded(), a.next_attempt_at) {
                (true, _) => DeliveryState::Delivered,
                (false, Some(_)) => DeliveryState::Pending,
                (false, None) => DeliveryState::Dead,
            };
            tx.execute(
                "UPDATE webhook_deliveries SET state = ?2, attempts = ?3, next_attempt_at = ?4,
                 updated_at = ?5, last_status = ?6, last_error = ?7, last_latency_us = ?8,
                 delivered_at = CASE WHEN ?2 = 'delivered' THEN ?5 ELSE delivered_at END
                 WHERE id = ?1",
                params![
                    a.delivery_id,
                    state.as_str(),
                    a.attempt,
                    a.next_attempt_at.unwrap_or(a.finished_at),
                    a.finished_at,
                    a.status,
                    a.error,
                    a.latency_us
                ],
            )?;
            tx.execute(
                "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, finished_at,
                 status, error, latency_us, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    a.delivery_id,
                    a.attempt,
                    a.started_at,
                    a.finished_at,
                    a.status,
                    a.error,
                    a.latency_us,
                    a.next_attempt_at
                ],
            )?;
            let ok = i64::from(a.succeeded());
            tx.execute(
                "UPDATE webhook_endpoints SET attempts = attempts + 1,
                 delivered = delivered + ?2, failures = failures + (1 - ?2),
                 dead = dead + ?3,
                 consecutive_failures = CASE WHEN ?2 = 1 THEN 0 ELSE consecutive_failures + 1 END,
                 last_attempt_at = ?4,
                 last_success_at = CASE WHEN ?2 = 1 THEN ?4 ELSE last_success_at END,
                 last_status = ?5, last_error = ?6, last_latency_us = ?7
                 WHERE id = ?1",
                params![
                    d.endpoint_id,
                    ok,
                    i64::from(state == DeliveryState::Dead),
                    a.finished_at,
                    a.status,
                    a.error,
                    a.latency_us
                ],
            )?;
            Ok(true)
        })
    }

    fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
        get_delivery_tx(&self.conn.lock(), id)
    }

    fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE 1 = 1");
        let mut values: Vec<Value> = Vec::new();
        let mut add = |column: &str, value: String| {
            values.push(Value::Text(value));
            sql.push_str(&format!(" AND {column} = ?{}", values.len()));
        };
        if let Some(owner) = &filter.owner {
            add("owner", owner.clone());
        }
        if let Some(endpoint) = &filter.endpoint_id {
            add("endpoint_id", endpoint.clone());
        }
        if let Some(firing) = &filter.firing_id {
            add("firing_id", firing.clone());
        }
        if let Some(state) = filter.state {
            add("state", state.as_str().into());
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC");
        if filter.limit > 0 {
            sql.push_str(&format!(" LIMIT {}", filter.limit));
        }
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(values), read_delivery)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn attempts(&self, delivery_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT delivery_id, attempt, started_at, finished_at, status, error, latency_us,
             next_attempt_at FROM webhook_attempts WHERE delivery_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([delivery_id], |r| {
            Ok(AttemptRecord {
                delivery_id: r.get(0)?,
                attempt: r.get(1)?,
                started_at: r.get(2)?,
                finished_at: r.get(3)?,
                status: r
                    .get::<_, Option<i64>>(4)?
                    .and_then(|v| u16::try_from(v).ok()),
                error: r.get(5)?,
                latency_us: r.get(6)?,
                next_attempt_at: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn redeliver(
        &self,
        endpoint_id: &str,
        delivery_id: Option<&str>,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.write(|tx| {
            let n = match delivery_id {
                Some(id) => tx.execute(
                    "UPDATE webhook_deliveries SET state = 'pending', attempts = 0,
                     next_attempt_at = ?3, updated_at = ?3
                     WHERE id = ?1 AND endpoint_id = ?2 AND state IN ('dead', 'delivered')",
                    params![id, endpoint_id, now],
                )?,
                None => tx.execute(
                    "UPDATE webhook_deliveries SET state = 'pending', attempts = 0,
                     next_attempt_at = ?2, updated_at = ?2
                     WHERE endpoint_id = ?1 AND state = 'dead'",
                    params![endpoint_id, now],
                )?,
            };
            Ok(n as u64)
        })
    }

    fn delivery_counts(&self) -> Result<DeliveryCounts, StoreError> {
        let conn = self.conn.lock();
        let mut stmt =
            conn.prepare_cached("SELECT state, COUNT(*) FROM webhook_deliveries GROUP BY state")?;
        let mut counts = DeliveryCounts::default();
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, to_u64(r.get(1)?))))?;
        for row in rows {
            let (state, n) = row?;
            match state.parse::<DeliveryState>() {
                Ok(DeliveryState::Pending) => counts.pending = n,
                Ok(DeliveryState::Delivered) => counts.delivered = n,
                Ok(DeliveryState::Dead) => counts.dead = n,
                Err(e) => return Err(StoreError::Corrupt(format!("delivery state: {e}"))),
            }
        }
        Ok(counts)
    }

    fn prune(&self, delivered_before: i64, dead_before: i64) -> Result<u64, StoreError> {
        self.write(|tx| {
            let doomed = "SELECT id FROM webhook_deliveries WHERE
                (state = 'delivered' AND updated_at < ?1) OR (state = 'dead' AND updated_at < ?2)";
            tx.execute(
                &format!("DELETE FROM webhook_attempts WHERE delivery_id IN ({doomed})"),
                params![delivered_before, dead_before],
            )?;
            let n = tx.execute(
                &format!("DELETE FROM webhook_deliveries WHERE id IN ({doomed})"),
                params![delivered_before, dead_before],
            )?;
            tx.execute(
                "DELETE FROM alert_firings WHERE fired_at < ?1 AND NOT EXISTS
                 (SELECT 1 FROM webhook_deliveries d WHERE d.firing_id = alert_firings.id)",
                [delivered_before],
            )?;
            Ok(n as u64)
        })
    }
}
