//! [`SecurityStore`] on the keys database (`tickgate.db`), sharing the key store's connection
//! so a change and its audit entry are one transaction.

use crate::StoreError;
use crate::audit::NewAuditEvent;
use crate::audit_sqlite;
use crate::keys::SealedSecret;
use crate::keys_sqlite::SqliteKeyStore;
use crate::security::{AddressDelta, IpBlock, KeyAddress, SecurityStore, TotpEnrollment};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

pub(crate) const MIGRATION: &str = "CREATE TABLE totp_enrollments (
        principal TEXT PRIMARY KEY,
        sealed_master_key_id TEXT NOT NULL,
        sealed_dek BLOB NOT NULL,
        sealed_ciphertext BLOB NOT NULL,
        algorithm TEXT NOT NULL,
        digits INTEGER NOT NULL,
        period INTEGER NOT NULL,
        last_step INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE TABLE ip_blocks (
        ip TEXT PRIMARY KEY,
        until INTEGER NOT NULL,
        reason TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE key_addresses (
        key_id TEXT NOT NULL,
        addr TEXT NOT NULL,
        requests INTEGER NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        PRIMARY KEY (key_id, addr)
    );";

fn int(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Conflict(format!("{what} out of range")))
}

const TOTP_COLUMNS: &str = "principal, sealed_master_key_id, sealed_dek, sealed_ciphertext, \
    algorithm, digits, period, last_step, created_at, created_by";

fn read_totp(r: &rusqlite::Row<'_>) -> rusqlite::Result<TotpEnrollment> {
    Ok(TotpEnrollment {
        principal: r.get(0)?,
        sealed: SealedSecret {
            master_key_id: r.get(1)?,
            wrapped_dek: r.get(2)?,
            ciphertext: r.get(3)?,
        },
        algorithm: r.get(4)?,
        digits: r.get(5)?,
        period: r.get(6)?,
        last_step: u64::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
        created_at: r.get(8)?,
        created_by: r.get(9)?,
    })
}

impl SecurityStore for SqliteKeyStore {
    fn totp_get(&self, principal: &str) -> Result<Option<TotpEnrollment>, StoreError> {
        let conn = self.conn.lock();
        Ok(conn
            .query_row(
                &format!("SELECT {TOTP_COLUMNS} FROM totp_enrollments WHERE principal = ?1"),
                [principal],
                read_totp,
            )
            .optional()?)
    }

    fn totp_all(&self) -> Result<Vec<TotpEnrollment>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {TOTP_COLUMNS} FROM totp_enrollments ORDER BY principal"
        ))?;
        let rows = stmt.query_map([], read_totp)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn totp_reseal(&self, principal: &str, sealed: &SealedSecret) -> Result<(), StoreError> {
        let conn = self.conn.lock();
        conn.execute(
            "UPDATE totp_enrollments SET sealed_master_key_id = ?2, sealed_dek = ?3,
                 sealed_ciphertext = ?4 WHERE principal = ?1",
            params![
                principal,
                sealed.master_key_id,
                sealed.wrapped_dek,
                sealed.ciphertext
            ],
        )?;
        Ok(())
    }

    fn totp_put(&self, e: &TotpEnrollment, audit: &[NewAuditEvent]) -> Result<(), StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO totp_enrollments (principal, sealed_master_key_id, sealed_dek,
                 sealed_ciphertext, algorithm, digits, period, last_step, created_at, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (principal) DO UPDATE SET
                 sealed_master_key_id = excluded.sealed_master_key_id,
                 sealed_dek = excluded.sealed_dek,
                 sealed_ciphertext = excluded.sealed_ciphertext,
                 algorithm = excluded.algorithm, digits = excluded.digits,
                 period = excluded.period, last_step = excluded.last_step,
                 created_at = excluded.created_at, created_by = excluded.created_by",
            params![
                e.principal,
                e.sealed.master_key_id,
                e.sealed.wrapped_dek,
                e.sealed.ciphertext,
                e.algorithm,
                e.digits,
                e.period,
                int(e.last_step, "last_step")?,
                e.created_at,
                e.created_by,
            ],
        )?;
        audit_sqlite::append_tx(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn totp_use_step(
        &self,
        principal: &str,
        step: u64,
        audit: &[NewAuditEvent],
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = tx.execute(
            "UPDATE totp_enrollments SET last_step = ?2 WHERE principal = ?1 AND last_step < ?2",
            params![principal, int(step, "step")?],
        )?;
        if changed == 0 {
            return Ok(false);
        }
        audit_sqlite::append_tx(&tx, audit)?;
        tx.commit()?;
        Ok(true)
    }

    fn ip_block(&self, b: &IpBlock, audit: &[NewAuditEvent]) -> Result<(), StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO ip_blocks (ip, until, reason, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (ip) DO UPDATE SET until = MAX(until, excluded.until),
                 reason = excluded.reason",
            params![b.ip, b.until, b.reason, b.created_at],
        )?;
        audit_sqlite::append_tx(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn ip_unblock(&self, ip: &str, audit: &[NewAuditEvent]) -> Result<bool, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if tx.execute("DELETE FROM ip_blocks WHERE ip = ?1", [ip])? == 0 {
            return Ok(false);
        }
        audit_sqlite::append_tx(&tx, audit)?;
        tx.commit()?;
        Ok(true)
    }

    fn ip_blocks(&self, now: i64) -> Result<Vec<IpBlock>, StoreError> {
        let conn = self.conn.lock();
        conn.execute("DELETE FROM ip_blocks WHERE until <= ?1", [now])?;
        let mut stmt =
            conn.prepare("SELECT ip, until, reason, created_at FROM ip_blocks ORDER BY ip")?;
        let rows = stmt.query_map([], |r| {
            Ok(IpBlock {
                ip: r.get(0)?,
                until: r.get(1)?,
                reason: r.get(2)?,
                created_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn add_addresses(&self, deltas: &[AddressDelta]) -> Result<(), StoreError> {
        if deltas.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO key_addresses (key_id, addr, requests, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (key_id, addr) DO UPDATE SET
                     requests = requests + excluded.requests,
                     first_seen = MIN(first_seen, excluded.first_seen),
                     last_seen = MAX(last_seen, excluded.last_seen)",
            )?;
            for d in deltas {
                stmt.execute(params![
                    d.key_id,
                    d.addr,
                    int(d.requests, "requests")?,
                    d.at
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn key_addresses(&self, key_id: &str, since: i64) -> Result<Vec<KeyAddress>, StoreError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(
            "SELECT addr, requests, first_seen, last_seen FROM key_addresses
             WHERE key_id = ?1 AND last_seen >= ?2 ORDER BY requests DESC, addr",
        )?;
        let rows = stmt.query_map(params![key_id, since], |r| {
            Ok(KeyAddress {
                addr: r.get(0)?,
                requests: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                first_seen: r.get(2)?,
                last_seen: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
