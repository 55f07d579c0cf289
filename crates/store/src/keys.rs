//! The [`KeyStore`] seam: API keys, their lifecycle state and their usage counters.
//!
//! The store keeps records; it does not interpret them. Generating keys, hashing tokens,
//! sealing secrets and deciding state transitions is the `auth` crate's job. What the store
//! guarantees (every backend, checked by `tests/keys_contract.rs`):
//!
//! - **Atomicity**: [`KeyStore::apply`] stores all its writes and appends all its audit events
//!   in one transaction, or none of them. A key change is never stored without its audit entry.
//! - **Optimistic concurrency**: every record carries `rev`; an update names the `rev` it read
//!   and fails with [`StoreError::Conflict`] if another writer got there first. Two admins
//!   rotating the same key at once: exactly one wins.
//! - **Change feed**: every write advances a store-wide change number; [`KeyStore::changes_since`]
//!   returns the records written after a given number, so a verifier cache in another process
//!   (a running server while the CLI revokes offline) converges by polling one small query.
//! - **Usage is not a key write**: [`KeyStore::add_usage`] adds to per-minute and per-hour
//!   buckets and moves `last_used_*` forward; it changes neither `rev` nor the change feed.
//! - Nothing secret is stored in the clear: `token_hash` is a one-way hash, `sealed` is AEAD
//!   ciphertext, `public_key` is public.

use crate::StoreError;
use crate::audit::NewAuditEvent;
use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "expected one of {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
/// Also used for the alert stores' state enums.
pub(crate) use text_enum;

text_enum!(
    /// What kind of credential a key is.
    KeyKind { Bearer => "bearer", Hmac => "hmac", Ed25519 => "ed25519" }
);
text_enum!(
    /// Lifecycle state. `grace`: rotating out, works until `grace_until`.
    /// `suspended`: refused until resumed (by an operator, or the anomaly responder's `suspend`).
    KeyStatus {
        Active => "active",
        Grace => "grace",
        Suspended => "suspended",
        Revoked => "revoked",
        Expired => "expired",
    }
);
text_enum!(
    /// The deployment environment a key belongs to (its `tg_live_` / `tg_test_` prefix).
    Environment { Live => "live", Test => "test" }
);
text_enum!(
    /// Usage bucket size.
    Granularity { Minute => "minute", Hour => "hour" }
);

/// An HMAC secret sealed under envelope encryption: the secret encrypted under a per-record
/// data key, the data key wrapped under the master key named by `master_key_id`.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub master_key_id: String,
    pub wrapped_dek: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSecret")
            .field("master_key_id", &self.master_key_id)
            .field(
                "wrapped_dek",
                &format_args!("{} bytes", self.wrapped_dek.len()),
            )
            .field(
                "ciphertext",
                &format_args!("{} bytes", self.ciphertext.len()),
            )
            .finish()
    }
}

/// A per-key request rate: `per_sec` sustained, bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub per_sec: u32,
    pub burst: u32,
}

/// One API key. Times are µs since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    /// Public id (`key_...`): safe to log and show.
    pub id: String,
    /// The customer or client this key belongs to; a principal has any number of keys.
    pub principal: String,
    pub kind: KeyKind,
    pub environment: Environment,
    pub name: String,
    /// Scope names (`market:read`, ...), validated by `auth`.
    pub scopes: Vec<String>,
    pub status: KeyStatus,
    /// While `status` is `grace`: when the key stops working.
    pub grace_until: Option<i64>,
    /// 1 for a new key, predecessor + 1 for a rotation successor.
    pub version: u32,
    /// The key this one replaced (rotation lineage).
    pub replaces: Option<String>,
    /// The key that replaced this one.
    pub replaced_by: Option<String>,
    /// Free-form JSON object.
    pub metadata: serde_json::Value,
    pub created_at: i64,
    pub created_by: String,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    /// SHA-256 of the token (bearer) or of the secret (hmac, for leak lookups only).
    pub token_hash: Option<[u8; 32]>,
    /// Ed25519 public key (32 bytes) for `ed25519` keys.
    pub public_key: Option<Vec<u8>>,
    /// The HMAC secret, sealed, for `hmac` keys.
    pub sealed: Option<SealedSecret>,
    /// Per-key override of the request rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Rotation policy: the key is flagged as due for rotation after this age.
    pub max_age_secs: Option<u64>,
    /// When a rotation started (the `Deprecation` time); cleared when it is cancelled.
    pub rotated_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub last_used_addr: Option<String>,
    /// Revision, set by the store: 1 on insert, +1 on every update.
    pub rev: u64,
}

/// One write in an [`KeyStore::apply`] batch.
#[derive(Debug, Clone)]
pub enum KeyWrite {
    /// A new key; fails with `Conflict` if the id exists.
    Insert(KeyRecord),
    /// Replaces the stored record (except `last_used_*`, which only usage moves) if its `rev`
    /// is still `expected_rev`; fails with `Conflict` otherwise, `NotFound` if absent.
    Update {
        record: KeyRecord,
        expected_rev: u64,
    },
}

/// Filters for [`KeyStore::list`]; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub principal: Option<String>,
    pub status: Option<KeyStatus>,
    pub kind: Option<KeyKind>,
    pub token_hash: Option<[u8; 32]>,
    /// At most this many records, newest first (0: no limit).
    pub limit: usize,
}

/// Usage of one key since the last flush, to add to the bucket containing `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    pub key_id: String,
    pub at: i64,
    pub requests: u64,
    pub messages: u64,
    pub bytes: u64,
    pub auth_failures: u64,
    /// Moves `last_used_at`/`last_used_addr` forward (never backward) when set.
    pub last_used: Option<(i64, String)>,
}

/// Usage of one key in one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageBucket {
    /// Bucket start, µs since the epoch.
    pub start: i64,
    pub requests: u64,
    pub messages: u64,
    pub bytes: u64,
    pub auth_failures: u64,
}

/// Start of the bucket containing `at`.
pub fn bucket_start(at: i64, granularity: Granularity) -> i64 {
    let size = match granularity {
        Granularity::Minute => 60_000_000,
        Granularity::Hour => 3_600_000_000,
    };
    at.div_euclid(size) * size
}

/// Where keys live. See the module documentation for the guarantees every backend gives.
/// Calls block (SQLite is blocking): async callers use `spawn_blocking`.
pub trait KeyStore: crate::security::SecurityStore + Send + Sync + fmt::Debug {
    /// Stores `writes` and appends `audit` atomically; see [`KeyWrite`] for the conflict rules.
    fn apply(&self, writes: &[KeyWrite], audit: &[NewAuditEvent]) -> Result<(), StoreError>;

    fn get(&self, id: &str) -> Result<Option<KeyRecord>, StoreError>;

    fn list(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError>;

    /// Records written after change number `since`, and the newest change number.
    /// `changes_since(0)` returns every key.
    fn changes_since(&self, since: u64) -> Result<(u64, Vec<KeyRecord>), StoreError>;

    /// Adds usage to the minute and hour buckets (batched by the caller; one call per flush).
    fn add_usage(&self, deltas: &[UsageDelta]) -> Result<(), StoreError>;

    /// Buckets of one key starting at or after `since`, oldest first.
    fn usage(
        &self,
        id: &str,
        granularity: Granularity,
        since: i64,
    ) -> Result<Vec<UsageBucket>, StoreError>;
}
