//! [`SecurityStore`] on PostgreSQL, in the key store's schema, so a change and its audit entry
//! are one transaction. Compare-and-set (`totp_use_step`) is one conditional `UPDATE`: under
//! READ COMMITTED a second node's update waits for the row lock and re-checks the condition on
//! the committed value, so each step is accepted once across the cluster.

use crate::StoreError;
use crate::audit::NewAuditEvent;
use crate::audit_postgres;
use crate::keys::SealedSecret;
use crate::keys_postgres::PgKeyStore;
use crate::postgres::{to_i64, to_u64};
use crate::security::{AddressDelta, IpBlock, KeyAddress, SecurityStore, TotpEnrollment};
use postgres::Row;

pub(crate) const MIGRATION: &str = "CREATE TABLE totp_enrollments (
        principal TEXT PRIMARY KEY,
        sealed_master_key_id TEXT NOT NULL,
        sealed_dek BYTEA NOT NULL,
        sealed_ciphertext BYTEA NOT NULL,
        algorithm TEXT NOT NULL,
        digits BIGINT NOT NULL,
        period BIGINT NOT NULL,
        last_step BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE TABLE ip_blocks (
        ip TEXT PRIMARY KEY,
        until BIGINT NOT NULL,
        reason TEXT NOT NULL,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE key_addresses (
        key_id TEXT NOT NULL,
        addr TEXT NOT NULL,
        requests BIGINT NOT NULL,
        first_seen BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        PRIMARY KEY (key_id, addr)
    );";

const TOTP_COLUMNS: &str = "principal, sealed_master_key_id, sealed_dek, sealed_ciphertext, \
    algorithm, digits, period, last_step, created_at, created_by";

fn read_totp(r: &Row) -> TotpEnrollment {
    TotpEnrollment {
        principal: r.get(0),
        sealed: SealedSecret {
            master_key_id: r.get(1),
            wrapped_dek: r.get(2),
            ciphertext: r.get(3),
        },
        algorithm: r.get(4),
        digits: u32::try_from(r.get::<_, i64>(5)).unwrap_or(u32::MAX),
        period: u32::try_from(r.get::<_, i64>(6)).unwrap_or(u32::MAX),
        last_step: to_u64(r.get(7)),
        created_at: r.get(8),
        created_by: r.get(9),
    }
}

impl SecurityStore for PgKeyStore {
    fn totp_get(&self, principal: &str) -> Result<Option<TotpEnrollment>, StoreError> {
        self.pool.with(|client| {
            let row = client.query_opt(
                &format!("SELECT {TOTP_COLUMNS} FROM totp_enrollments WHERE principal = $1"),
                &[&principal],
            )?;
            Ok(row.as_ref().map(read_totp))
        })
    }

    fn totp_all(&self) -> Result<Vec<TotpEnrollment>, StoreError> {
        self.pool.with(|client| {
            let rows = client.query(
                &format!("SELECT {TOTP_COLUMNS} FROM totp_enrollments ORDER BY principal"),
                &[],
            )?;
            Ok(rows.iter().map(read_totp).collect())
        })
    }

    fn totp_reseal(&self, principal: &str, sealed: &SealedSecret) -> Result<(), StoreError> {
        self.pool.with(|client| {
            client.execute(
                "UPDATE totp_enrollments SET sealed_master_key_id = $2, sealed_dek = $3,
                     sealed_ciphertext = $4 WHERE principal = $1",
                &[
                    &principal,
                    &sealed.master_key_id,
                    &sealed.wrapped_dek,
                    &sealed.ciphertext,
                ],
            )?;
            Ok(())
        })
    }

    fn totp_put(&self, e: &TotpEnrollment, audit: &[NewAuditEvent]) -> Result<(), StoreError> {
        let last_step = to_i64(e.last_step, "last_step")?;
        self.pool.with(|client| {
            let mut tx = client.transaction()?;
            tx.execute(
                "INSERT INTO totp_enrollments (principal, sealed_master_key_id, sealed_dek,
                     sealed_ciphertext, algorithm, digits, period, last_step, created_at,
                     created_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (principal) DO UPDATE SET
                     sealed_master_key_id = excluded.sealed_master_key_id,
                     sealed_dek = excluded.sealed_dek,
                     sealed_ciphertext = excluded.sealed_ciphertext,
                     algorithm = excluded.algorithm, digits = excluded.digits,
                     period = excluded.period, last_step = excluded.last_step,
                     created_at = excluded.created_at, created_by = excluded.created_by",
                &[
                    &e.principal,
                    &e.sealed.master_key_id,
                    &e.sealed.wrapped_dek,
                    &e.sealed.ciphertext,
                    &e.algorithm,
                    &i64::from(e.digits),
                    &i64::from(e.period),
                    &last_step,
                    &e.created_at,
                    &e.created_by,
                ],
            )?;
            audit_postgres::append_tx(&mut tx, audit)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn totp_use_step(
        &self,
        principal: &str,
        step: u64,
        audit: &[NewAuditEvent],
    ) -> Result<bool, StoreError> {
        let step = to_i64(step, "step")?;
        self.pool.with(|client| {
            let mut tx = client.transaction()?;
            let changed = tx.execute(
                "UPDATE totp_enrollments SET last_step = $2
                 WHERE principal = $1 AND last_step < $2",
                &[&principal, &step],
            )?;
            if changed == 0 {
                return Ok(false);
            }
            audit_postgres::append_tx(&mut tx, audit)?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn ip_block(&self, b: &IpBlock, audit: &[NewAuditEvent]) -> Result<(), StoreError> {
        self.pool.with(|client| {
            let mut tx = client.transaction()?;
            tx.execute(
                "INSERT INTO ip_blocks AS b (ip, until, reason, created_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (ip) DO UPDATE SET until = GREATEST(b.until, excluded.until),
                     reason = excluded.reason",
                &[&b.ip, &b.until, &b.reason, &b.created_at],
            )?;
            audit_postgres::append_tx(&mut tx, audit)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn ip_unblock(&self, ip: &str, audit: &[NewAuditEvent]) -> Result<bool, StoreError> {
        self.pool.with(|client| {
            let mut tx = client.transaction()?;
            if tx.execute("DELETE FROM ip_blocks WHERE ip = $1", &[&ip])? == 0 {
                return Ok(false);
            }
            audit_postgres::append_tx(&mut tx, audit)?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn ip_blocks(&self, now: i64) -> Result<Vec<IpBlock>, StoreError> {
        self.pool.with(|client| {
            client.execute("DELETE FROM ip_blocks WHERE until <= $1", &[&now])?;
            let rows = client.query(
                "SELECT ip, until, reason, created_at FROM ip_blocks ORDER BY ip",
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|r| IpBlock {
                    ip: r.get(0),
                    until: r.get(1),
                    reason: r.get(2),
                    created_at: r.get(3),
                })
                .collect())
        })
    }

    fn add_addresses(&self, deltas: &[AddressDelta]) -> Result<(), StoreError> {
        if deltas.is_empty() {
            return Ok(());
        }
        // One lock order for every node (see `add_usage`).
        let mut ordered: Vec<&AddressDelta> = deltas.iter().collect();
        ordered.sort_by(|a, b| (&a.key_id, &a.addr).cmp(&(&b.key_id, &b.addr)));
        self.pool.with(|client| {
            let mut tx = client.transaction()?;
            let stmt = tx.prepare(
                "INSERT INTO key_addresses AS k (key_id, addr, requests, first_seen, last_seen)
                 VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (key_id, addr) DO UPDATE SET
                     requests = k.requests + excluded.requests,
                     first_seen = LEAST(k.first_seen, excluded.first_seen),
                     last_seen = GREATEST(k.last_seen, excluded.last_seen)",
            )?;
            for d in ordered {
                tx.execute(
                    &stmt,
                    &[&d.key_id, &d.addr, &to_i64(d.requests, "requests")?, &d.at],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn key_addresses(&self, key_id: &str, since: i64) -> Result<Vec<KeyAddress>, StoreError> {
        self.pool.with(|client| {
            let rows = client.query(
                "SELECT addr, requests, first_seen, last_seen FROM key_addresses
                 WHERE key_id = $1 AND last_seen >= $2 ORDER BY requests DESC, addr",
                &[&key_id, &since],
            )?;
            Ok(rows
                .iter()
                .map(|r| KeyAddress {
                    addr: r.get(0),
                    requests: to_u64(r.get(1)),
                    first_seen: r.get(2),
                    last_seen: r.get(3),
                })
                .collect())
        })
    }
}
