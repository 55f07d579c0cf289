//! [`Outbox`] on PostgreSQL, on [`PgAlertStore`]'s tables (a firing and its rule's counter are
//! written in one transaction).
//!
//! **Claims across nodes.** Every node may run a delivery worker on the shared outbox. A claim
//! selects due deliveries `FOR UPDATE OF d SKIP LOCKED` and moves their `next_attempt_at` to
//! the lease's end in the same transaction: a second worker claiming at the same moment skips
//! the rows the first has locked, and once the first commits the rows are no longer due (under
//! READ COMMITTED a row locked after a concurrent update is re-checked against the `WHERE`
//! clause), so two workers never hold the same delivery at once. An outcome is recorded under
//! the delivery's row lock and only if its attempt number is still the next one, so an outcome
//! that arrives after its lease ran out and another worker recorded one is refused as stale.

use crate::StoreError;
use crate::alerts_postgres::{Param, PgAlertStore, next_change, parse, refs, small};
use crate::outbox::{
    AttemptRecord, Claimed, DeliveryCounts, DeliveryFilter, DeliveryRecord, DeliveryState,
    FiringRecord, NewFiring, Outbox,
};
use crate::outbox_sqlite::delivery_id;
use crate::postgres::{to_i64, to_u64};
use postgres::{GenericClient, Row};
use std::collections::BTreeMap;

const DELIVERY_COLUMNS: &str = "id, firing_id, endpoint_id, owner, state, attempts, \
    next_attempt_at, created_at, updated_at, last_status, last_error, last_latency_us, delivered_at";

fn read_delivery(row: &Row) -> Result<DeliveryRecord, StoreError> {
    Ok(DeliveryRecord {
        id: row.get(0),
        firing_id: row.get(1),
        endpoint_id: row.get(2),
        owner: row.get(3),
        state: parse(row.get(4), "state")?,
        attempts: u32::try_from(row.get::<_, i64>(5)).unwrap_or(u32::MAX),
        next_attempt_at: row.get(6),
        created_at: row.get(7),
        updated_at: row.get(8),
        last_status: small(row.get(9)),
        last_error: row.get(10),
        last_latency_us: row.get(11),
        delivered_at: row.get(12),
    })
}

fn read_firing(row: &Row) -> FiringRecord {
    FiringRecord {
        id: row.get(0),
        rule_id: row.get(1),
        owner: row.get(2),
        fired_at: row.get(3),
        payload: row.get(4),
    }
}

fn get_delivery_in(
    client: &mut impl GenericClient,
    id: &str,
    lock: bool,
) -> Result<Option<DeliveryRecord>, StoreError> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row = client.query_opt(
        &format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1{lock}"),
        &[&id],
    )?;
    row.as_ref().map(read_delivery).transpose()
}

impl Outbox for PgAlertStore {
    fn record_firings(&self, firings: &[NewFiring]) -> Result<(), StoreError> {
        if firings.is_empty() {
            return Ok(());
        }
        // Per rule: how many firings and the latest time, applied in id order (two batches
        // touching the same rules lock them in the same order).
        let mut counters: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for f in firings {
            let entry = counters.entry(&f.rule_id).or_insert((0, f.fired_at));
            entry.0 += 1;
            entry.1 = entry.1.max(f.fired_at);
        }
        self.write(|tx| {
            let firing = tx.prepare(
                "INSERT INTO alert_firings (id, rule_id, owner, fired_at, payload)
                 VALUES ($1, $2, $3, $4, $5)",
            )?;
            let delivery = tx.prepare(
                "INSERT INTO webhook_deliveries (id, firing_id, endpoint_id, owner, state,
                 attempts, next_attempt_at, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5, $5)",
            )?;
            for f in firings {
                tx.execute(
                    &firing,
                    &[&f.id, &f.rule_id, &f.owner, &f.fired_at, &f.payload],
                )?;
                for endpoint in &f.endpoints {
                    tx.execute(
                        &delivery,
                        &[
                            &delivery_id(&f.id, endpoint),
                            &f.id,
                            endpoint,
                            &f.owner,
                            &f.fired_at,
                        ],
                    )?;
                }
            }
            for (rule, (n, last)) in &counters {
                tx.execute(
                    "UPDATE alert_rules SET firings = firings + $2,
                     last_fired_at = GREATEST(COALESCE(last_fired_at, $3), $3) WHERE id = $1",
                    &[rule, n, last],
                )?;
            }
            // The rule rows are locked now; the change number comes after them.
            for rule in counters.keys() {
                let done = tx.execute(
                    "UPDATE alert_rules SET status = 'completed', rev = rev + 1
                     WHERE id = $1 AND status IN ('active', 'paused')
                     AND max_firings IS NOT NULL AND firings >= max_firings",
                    &[rule],
                )?;
                if done > 0 {
                    let change = next_change(tx)?;
                    tx.execute(
                        "UPDATE alert_rules SET change_seq = $2 WHERE id = $1",
                        &[rule, &change],
                    )?;
                }
            }
            Ok(())
        })
    }

    fn get_firing(&self, id: &str) -> Result<Option<FiringRecord>, StoreError> {
        self.pool.with(|client| {
            Ok(client
                .query_opt(
                    "SELECT id, rule_id, owner, fired_at, payload FROM alert_firings WHERE id = $1",
                    &[&id],
                )?
                .as_ref()
                .map(read_firing))
        })
    }

    fn list_firings(
        &self,
        owner: &str,
        rule_id: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<FiringRecord>, StoreError> {
        let limit = to_i64(limit as u64, "limit")?;
        let before = before.unwrap_or(i64::MAX);
        self.pool.with(|client| {
            let rows = client.query(
                "SELECT id, rule_id, owner, fired_at, payload FROM alert_firings
                 WHERE owner = $1 AND ($2::TEXT IS NULL OR rule_id = $2) AND fired_at < $3
                 AND substr(rule_id, 1, 4) = 'alr_'
                 ORDER BY fired_at DESC, id DESC LIMIT $4",
                &[&owner, &rule_id, &before, &limit],
            )?;
            Ok(rows.iter().map(read_firing).collect())
        })
    }

    fn due_endpoints(&self, now: i64) -> Result<Vec<(String, u64)>, StoreError> {
        self.pool.with(|client| {
            let rows = client.query(
                "SELECT d.endpoint_id, COUNT(*) FROM webhook_deliveries d
                 JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled
                 WHERE d.state = 'pending' AND d.next_attempt_at <= $1
                 GROUP BY d.endpoint_id ORDER BY MIN(d.next_attempt_at), d.endpoint_id",
                &[&now],
            )?;
            Ok(rows.iter().map(|r| (r.get(0), to_u64(r.get(1)))).collect())
        })
    }

    fn next_due(&self) -> Result<Option<i64>, StoreError> {
        self.pool.with(|client| {
            Ok(client
                .query_one(
                    "SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d
                     JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled
                     WHERE d.state = 'pending'",
                    &[],
                )?
                .get(0))
        })
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
        let limit = to_i64(limit as u64, "limit")?;
        // See the module documentation: exclusive across nodes.
        self.write(|tx| {
            let rows = tx.query(
                "SELECT d.id, d.firing_id, d.endpoint_id, d.owner, d.state, d.attempts,
                 d.next_attempt_at, d.created_at, d.updated_at, d.last_status, d.last_error,
                 d.last_latency_us, d.delivered_at, f.payload
                 FROM webhook_deliveries d JOIN alert_firings f ON f.id = d.firing_id
                 WHERE d.endpoint_id = $1 AND d.state = 'pending' AND d.next_attempt_at <= $2
                 ORDER BY d.next_attempt_at, d.id LIMIT $3
                 FOR UPDATE OF d SKIP LOCKED",
                &[&endpoint_id, &now, &limit],
            )?;
            let claimed = rows
                .iter()
                .map(|row| {
                    Ok(Claimed {
                        delivery: read_delivery(row)?,
                        payload: row.get(13),
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            if !claimed.is_empty() {
                let ids: Vec<&str> = claimed.iter().map(|c| c.delivery.id.as_str()).collect();
                tx.execute(
                    "UPDATE webhook_deliveries SET next_attempt_at = $2 WHERE id = ANY ($1)",
                    &[&ids, &lease_until],
                )?;
            }
            Ok(claimed)
        })
    }

    fn record_attempt(&self, a: &AttemptRecord) -> Result<bool, StoreError> {
        self.write(|tx| {
            let Some(d) = get_delivery_in(tx, &a.delivery_id, true)? else {
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
            let attempt = i64::from(a.attempt);
            let status = a.status.map(i64::from);
            tx.execute(
                "UPDATE webhook_deliveries SET state = $2, attempts = $3, next_attempt_at = $4,
                 updated_at = $5, last_status = $6, last_error = $7, last_latency_us = $8,
                 delivered_at = CASE WHEN $2 = 'delivered' THEN $5 ELSE delivered_at END
                 WHERE id = $1",
                &[
                    &a.delivery_id,
                    &state.as_str(),
                    &attempt,
                    &a.next_attempt_at.unwrap_or(a.finished_at),
                    &a.finished_at,
                    &status,
                    &a.error,
                    &a.latency_us,
                ],
            )?;
            tx.execute(
                "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, finished_at,
                 status, error, latency_us, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &a.delivery_id,
                    &attempt,
                    &a.started_at,
                    &a.finished_at,
                    &status,
                    &a.error,
                    &a.latency_us,
                    &a.next_attempt_at,
                ],
            )?;
            let ok = i64::from(a.succeeded());
            let dead = i64::from(state == DeliveryState::Dead);
            tx.execute(
                "UPDATE webhook_endpoints SET attempts = attempts + 1,
                 delivered = delivered + $2, failures = failures + (1 - $2),
                 dead = dead + $3,
                 consecutive_failures = CASE WHEN $2 = 1 THEN 0 ELSE consecutive_failures + 1 END,
                 last_attempt_at = $4,
                 last_success_at = CASE WHEN $2 = 1 THEN $4 ELSE last_success_at END,
                 last_status = $5, last_error = $6, last_latency_us = $7
                 WHERE id = $1",
                &[
                    &d.endpoint_id,
                    &ok,
                    &dead,
                    &a.finished_at,
                    &status,
                    &a.error,
                    &a.latency_us,
                ],
            )?;
            Ok(true)
        })
    }

    fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
        self.pool.with(|client| get_delivery_in(client, id, false))
    }

    fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryRecord>, StoreError> {
        let mut sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE 1 = 1");
        let mut values: Vec<Param> = Vec::new();
        let mut add = |column: &str, value: String| {
            values.push(Box::new(value));
            sql.push_str(&format!(" AND {column} = ${}", values.len()));
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
        self.pool.with(|client| {
            client
                .query(&sql, &refs(&values))?
                .iter()
                .map(read_delivery)
                .collect()
        })
    }

    fn attempts(&self, delivery_id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        self.pool.with(|client| {
            let rows = client.query(
                "SELECT delivery_id, attempt, started_at, finished_at, status, error, latency_us,
                 next_attempt_at FROM webhook_attempts WHERE delivery_id = $1 ORDER BY seq",
                &[&delivery_id],
            )?;
            Ok(rows
                .iter()
                .map(|r| AttemptRecord {
                    delivery_id: r.get(0),
                    attempt: u32::try_from(r.get::<_, i64>(1)).unwrap_or(u32::MAX),
                    started_at: r.get(2),
                    finished_at: r.get(3),
                    status: small(r.get(4)),
                    error: r.get(5),
                    latency_us: r.get(6),
                    next_attempt_at: r.get(7),
                })
                .collect())
        })
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
                     next_attempt_at = $3, updated_at = $3
                     WHERE id = $1 AND endpoint_id = $2 AND state IN ('dead', 'delivered')",
                    &[&id, &endpoint_id, &now],
                )?,
                None => tx.execute(
                    "UPDATE webhook_deliveries SET state = 'pending', attempts = 0,
                     next_attempt_at = $2, updated_at = $2
                     WHERE endpoint_id = $1 AND state = 'dead'",
                    &[&endpoint_id, &now],
                )?,
            };
            Ok(n)
        })
    }

    fn delivery_counts(&self) -> Result<DeliveryCounts, StoreError> {
        self.pool.with(|client| {
            let mut counts = DeliveryCounts::default();
            for row in client.query(
                "SELECT state, COUNT(*) FROM webhook_deliveries GROUP BY state",
                &[],
            )? {
                let n = to_u64(row.get(1));
                match parse::<DeliveryState>(row.get(0), "delivery state")? {
                    DeliveryState::Pending => counts.pending = n,
                    DeliveryState::Delivered => counts.delivered = n,
                    DeliveryState::Dead => counts.dead = n,
                }
            }
            Ok(counts)
        })
    }

    fn prune(&self, delivered_before: i64, dead_before: i64) -> Result<u64, StoreError> {
        self.write(|tx| {
            let doomed = "SELECT id FROM webhook_deliveries WHERE
                (state = 'delivered' AND updated_at < $1) OR (state = 'dead' AND updated_at < $2)";
            tx.execute(
                &format!("DELETE FROM webhook_attempts WHERE delivery_id IN ({doomed})"),
                &[&delivered_before, &dead_before],
            )?;
            let n = tx.execute(
                &format!("DELETE FROM webhook_deliveries WHERE id IN ({doomed})"),
                &[&delivered_before, &dead_before],
            )?;
            tx.execute(
                "DELETE FROM alert_firings WHERE fired_at < $1 AND NOT EXISTS
                 (SELECT 1 FROM webhook_deliveries d WHERE d.firing_id = alert_firings.id)",
                &[&delivered_before],
            )?;
            Ok(n)
        })
    }
}
