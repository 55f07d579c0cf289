//! The [`AlertStore`] seam: alert rules, webhook endpoints and the firings they produced.
//!
//! The store keeps records; it does not interpret them. A rule's condition is an opaque JSON
//! `spec` that the `alerts` crate validates and evaluates; an endpoint's secrets are sealed by
//! `auth`'s envelope encryption before they get here. What every backend guarantees (checked
//! by `tests/alerts_contract.rs`):
//!
//! - **Optimistic concurrency**: rules and endpoints carry `rev`; an update names the `rev` it
//!   read and fails with [`StoreError::Conflict`] if another writer got there first.
//! - **Change feed**: every rule write (create, update, delete, a status change made by a
//!   firing) advances a store-wide change number; [`AlertStore::rule_changes_since`] returns
//!   the rules of one partition written after a given number, deleted ones included (status
//!   `deleted`), so an evaluator in another process converges by polling one small query.
//! - **A firing is durable before it is sent**: [`Outbox::record_firings`] stores the firing,
//!   one pending delivery per endpoint, and the rule's firing counter in one transaction.
//! - Firing counters (`firings`, `last_fired_at`) and endpoint delivery statistics are not
//!   user edits: they change neither `rev` nor what an update writes.
//! - Nothing secret is stored in the clear: endpoint secrets are [`SealedSecret`]s.
//!
//! [`Outbox::record_firings`]: crate::outbox::Outbox::record_firings

use crate::StoreError;
use crate::keys::{SealedSecret, text_enum};
use serde::{Deserialize, Serialize};
use std::fmt;

text_enum!(
    /// A rule's lifecycle state. Only `active` rules are evaluated.
    RuleStatus {
        Active => "active",
        Paused => "paused",
        Expired => "expired",
        Completed => "completed",
        Deleted => "deleted",
    }
);

impl RuleStatus {
    /// A rule in this state never fires again and cannot be re-enabled.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Expired | Self::Completed | Self::Deleted)
    }
}

/// One alert rule. Times are µs since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleRecord {
    /// Public id (`alr_...`).
    pub id: String,
    /// The principal the rule belongs to (the key's principal, so a rotated key keeps them).
    pub owner: String,
    pub name: String,
    /// Which evaluator owns the rule: the venue whose data it reads, or `cross` for rules
    /// reading several venues or the consolidated `all` venue.
    pub partition: String,
    /// The condition and its options, as validated by the `alerts` crate.
    pub spec: serde_json::Value,
    /// Webhook endpoints (ids) each firing is delivered to, besides the `alerts` channel.
    pub endpoints: Vec<String>,
    pub status: RuleStatus,
    pub expires_at: Option<i64>,
    pub max_firings: Option<u64>,
    /// Set by the store on each recorded firing.
    pub firings: u64,
    pub last_fired_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Revision, set by the store: 1 on insert, +1 on every update.
    pub rev: u64,
}

/// Delivery statistics of an endpoint, kept by the store from recorded attempts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointStats {
    pub attempts: u64,
    pub delivered: u64,
    /// Attempts that failed (each retry counts).
    pub failures: u64,
    /// Deliveries that exhausted their attempts.
    pub dead: u64,
    pub consecutive_failures: u64,
    pub last_attempt_at: Option<i64>,
    pub last_success_at: Option<i64>,
    /// HTTP status of the last attempt (none: no response, see `last_error`).
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_latency_us: Option<i64>,
}

/// One webhook endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointRecord {
    /// Public id (`whe_...`).
    pub id: String,
    pub owner: String,
    pub url: String,
    pub description: String,
    pub enabled: bool,
    /// Signature scheme: `v1` (HMAC-SHA256) or `v1a` (Ed25519).
    pub scheme: String,
    /// For `v1a`: the public key receivers verify with (not secret).
    pub public_key: Option<String>,
    /// The signing secret, sealed for this endpoint id.
    pub secret: SealedSecret,
    /// During a rotation: the previous secret, still used to sign until `previous_until`.
    pub previous_secret: Option<SealedSecret>,
    pub previous_until: Option<i64>,
    /// Per-endpoint overrides of `[alerts.delivery]` defaults.
    pub max_in_flight: Option<u32>,
    pub timeout_ms: Option<u32>,
    pub created_at: i64,
    pub updated_at: i64,
    pub rev: u64,
    /// Set by the store from recorded attempts; ignored on writes.
    pub stats: EndpointStats,
}

/// Filters for listing rules; `None` means any. Deleted rules are never listed.
#[derive(Debug, Clone, Default)]
pub struct RuleFilter {
    pub owner: Option<String>,
    pub partition: Option<String>,
    pub status: Option<RuleStatus>,
    /// At most this many, newest first (0: no limit).
    pub limit: usize,
}

/// Where rules and endpoints live. See the module documentation for the guarantees.
/// Calls block (SQLite is blocking): async callers use `spawn_blocking`.
pub trait AlertStore: Send + Sync + fmt::Debug {
    /// Inserts a rule (`rev` and counters are set by the store); `Conflict` if the id exists.
    fn insert_rule(&self, rule: &RuleRecord) -> Result<RuleRecord, StoreError>;

    /// Replaces a rule's user fields if its `rev` is still `expected_rev` (`Conflict`
    /// otherwise, `NotFound` if absent or deleted). Counters are kept.
    fn update_rule(&self, rule: &RuleRecord, expected_rev: u64) -> Result<RuleRecord, StoreError>;

    /// Sets a rule's status (expiry, deletion) unless it is already final; returns whether it
    /// changed. Deleting keeps a tombstone for the change feed.
    fn set_rule_status(&self, id: &str, status: RuleStatus, at: i64) -> Result<bool, StoreError>;

    /// A rule by id (deleted ones included, with status `deleted`).
    fn get_rule(&self, id: &str) -> Result<Option<RuleRecord>, StoreError>;

    fn list_rules(&self, filter: &RuleFilter) -> Result<Vec<RuleRecord>, StoreError>;

    /// Rules not deleted, final or not, of `owner` (for the per-owner limit).
    fn count_rules(&self, owner: &str) -> Result<u64, StoreError>;

    /// Rules of `partition` written after change number `since`, and the newest change number.
    fn rule_changes_since(
        &self,
        partition: &str,
        since: u64,
    ) -> Result<(u64, Vec<RuleRecord>), StoreError>;

    /// Inserts an endpoint; `Conflict` if the id exists.
    fn insert_endpoint(&self, endpoint: &EndpointRecord) -> Result<EndpointRecord, StoreError>;

    /// Replaces an endpoint's fields (secrets included) if its `rev` is still `expected_rev`.
    fn update_endpoint(
        &self,
        endpoint: &EndpointRecord,
        expected_rev: u64,
    ) -> Result<EndpointRecord, StoreError>;

    /// Deletes an endpoint: `Conflict` if an active or paused rule still names it. Its
    /// pending deliveries become dead (with the error `endpoint deleted`).
    fn delete_endpoint(&self, id: &str, at: i64) -> Result<(), StoreError>;

    fn get_endpoint(&self, id: &str) -> Result<Option<EndpointRecord>, StoreError>;

    /// Endpoints of `owner`, oldest first.
    fn list_endpoints(&self, owner: &str) -> Result<Vec<EndpointRecord>, StoreError>;

    /// Every endpoint of every owner, oldest first: for operator maintenance such as re-wrapping
    /// the sealed secrets under a new master key.
    fn list_all_endpoints(&self) -> Result<Vec<EndpointRecord>, StoreError>;
}
