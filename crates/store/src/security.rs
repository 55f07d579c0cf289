//! The [`SecurityStore`] seam: durable security state beside the keys (same database, same
//! transactions as their audit entries), so that every node of a cluster sees it and it
//! survives a restart:
//!
//! - **TOTP enrollments** of admin principals (RFC 6238): the secret sealed under the master
//!   key (never in the clear), its parameters, and the last time step used, so each code is
//!   accepted once ([`SecurityStore::totp_use_step`] is an atomic compare-and-set).
//! - **IP blocks** set by the anomaly responder (`block_ip`): an address refused until a time.
//! - **Addresses seen per key** (requests per address, first and last use), written with the
//!   usage flush: what the leak playbook prints.
//!
//! Every backend gives the same guarantees, checked by `tests/keys_contract.rs`.

use crate::StoreError;
use crate::audit::NewAuditEvent;
use crate::keys::SealedSecret;
use serde::{Deserialize, Serialize};

/// One principal's TOTP enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpEnrollment {
    pub principal: String,
    /// The shared secret, sealed (associated data binds it to the principal).
    pub sealed: SealedSecret,
    /// `SHA1`, `SHA256` or `SHA512` (as in the `otpauth://` URI).
    pub algorithm: String,
    pub digits: u32,
    /// Time step in seconds.
    pub period: u32,
    /// The last time step a code was accepted for (0: none yet).
    pub last_step: u64,
    pub created_at: i64,
    pub created_by: String,
}

/// An address refused until `until` (µs since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpBlock {
    pub ip: String,
    pub until: i64,
    pub reason: String,
    pub created_at: i64,
}

/// Requests of one key from one address since the last flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressDelta {
    pub key_id: String,
    pub addr: String,
    pub requests: u64,
    /// When this address was used (µs).
    pub at: i64,
}

/// What a key did from one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAddress {
    pub addr: String,
    pub requests: u64,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// Durable security state; see the module documentation. Calls block.
pub trait SecurityStore: Send + Sync {
    fn totp_get(&self, principal: &str) -> Result<Option<TotpEnrollment>, StoreError>;

    /// Every enrollment (for the master-key rewrap).
    fn totp_all(&self) -> Result<Vec<TotpEnrollment>, StoreError>;

    /// Replaces only the sealed secret of an enrollment (master-key rewrap).
    fn totp_reseal(&self, principal: &str, sealed: &SealedSecret) -> Result<(), StoreError>;

    /// Stores (or replaces: re-enrollment) an enrollment with its audit entries, atomically.
    fn totp_put(
        &self,
        enrollment: &TotpEnrollment,
        audit: &[NewAuditEvent],
    ) -> Result<(), StoreError>;

    /// Marks `step` used if it is later than the last used step, with its audit entries, in
    /// one transaction. `false`: already used (or an older step), nothing written.
    fn totp_use_step(
        &self,
        principal: &str,
        step: u64,
        audit: &[NewAuditEvent],
    ) -> Result<bool, StoreError>;

    /// Blocks (or extends the block of) an address, with its audit entries.
    fn ip_block(&self, block: &IpBlock, audit: &[NewAuditEvent]) -> Result<(), StoreError>;

    /// Lifts a block; `false` if there was none.
    fn ip_unblock(&self, ip: &str, audit: &[NewAuditEvent]) -> Result<bool, StoreError>;

    /// Blocks still in force at `now`, dropping the ones that ended.
    fn ip_blocks(&self, now: i64) -> Result<Vec<IpBlock>, StoreError>;

    /// Adds per-address request counts (batched by the caller, one call per usage flush).
    fn add_addresses(&self, deltas: &[AddressDelta]) -> Result<(), StoreError>;

    /// The addresses a key was used from with a last use at or after `since`, most requests
    /// first.
    fn key_addresses(&self, key_id: &str, since: i64) -> Result<Vec<KeyAddress>, StoreError>;
}
