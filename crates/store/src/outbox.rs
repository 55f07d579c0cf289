//! The [`Outbox`] seam: firings and their webhook deliveries, durable before anything is sent.
//!
//! A firing is stored with one `pending` delivery per endpoint in the same transaction as the
//! rule's firing counter ([`Outbox::record_firings`]). A delivery worker then claims due
//! deliveries ([`Outbox::claim`]: their `next_attempt_at` moves to the lease's end, so a
//! worker that dies mid-attempt leaves them due again once the lease runs out), attempts them,
//! and records each attempt ([`Outbox::record_attempt`]): `delivered`, retried later
//! (`pending` with a new `next_attempt_at`), or `dead` after the last attempt. Dead (and
//! delivered) deliveries can be sent again ([`Outbox::redeliver`]); the firing id, which is
//! the `webhook-id`, stays the same, so a receiver can tell a redelivery from a new alert.
//!
//! Guarantees of every backend (checked by `tests/alerts_contract.rs`):
//!
//! - **Nothing is lost**: a delivery leaves `pending` only through a recorded attempt or an
//!   explicit deletion of its endpoint (then it is `dead`, with the reason).
//! - **A claim is exclusive while its lease lasts**: two workers (two gateway processes) never
//!   claim the same delivery at once; an attempt's outcome is recorded only if no other claim
//!   recorded one since ([`Outbox::record_attempt`] returns `false` for a stale outcome).
//! - Deliveries are at least once: a worker killed after sending but before recording sends
//!   the same firing again (same `webhook-id`) after the lease.

use crate::StoreError;
use crate::keys::text_enum;
use serde::{Deserialize, Serialize};
use std::fmt;

text_enum!(
    /// Where a delivery stands.
    DeliveryState { Pending => "pending", Delivered => "delivered", Dead => "dead" }
);

/// A firing to store: its payload (the exact webhook body) and the endpoints to deliver it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFiring {
    /// Public id (`msg_...`), also the `webhook-id` of every delivery of it.
    pub id: String,
    pub rule_id: String,
    pub owner: String,
    pub fired_at: i64,
    /// The JSON body sent to endpoints, byte for byte on every attempt.
    pub payload: String,
    pub endpoints: Vec<String>,
}

/// A stored firing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiringRecord {
    pub id: String,
    pub rule_id: String,
    pub owner: String,
    pub fired_at: i64,
    pub payload: String,
}

/// One delivery of one firing to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// Public id (`dlv_...`).
    pub id: String,
    pub firing_id: String,
    pub endpoint_id: String,
    pub owner: String,
    pub state: DeliveryState,
    /// Attempts made so far (reset to 0 by a redelivery).
    pub attempts: u32,
    /// While pending: when the next attempt is due (or the current claim's lease ends).
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_latency_us: Option<i64>,
    pub delivered_at: Option<i64>,
}

/// A claimed delivery and the payload to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub delivery: DeliveryRecord,
    pub payload: String,
}

/// One attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub delivery_id: String,
    /// 1 for the first attempt (after a redelivery, numbering starts over).
    pub attempt: u32,
    pub started_at: i64,
    pub finished_at: i64,
    /// HTTP status, when the endpoint answered.
    pub status: Option<u16>,
    /// Why it failed (no answer, non-2xx, refused address), when it did.
    pub error: Option<String>,
    pub latency_us: i64,
    /// After a failure: when the next attempt is due; `None` when this one succeeded or was
    /// the last (the delivery is then dead).
    pub next_attempt_at: Option<i64>,
}

impl AttemptRecord {
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

/// Filters for listing deliveries; newest first.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub owner: Option<String>,
    pub endpoint_id: Option<String>,
    pub firing_id: Option<String>,
    pub state: Option<DeliveryState>,
    /// At most this many (0: no limit).
    pub limit: usize,
}

/// Deliveries by state, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub pending: u64,
    pub delivered: u64,
    pub dead: u64,
}

/// The durable outbox. Calls block: async callers use `spawn_blocking`.
pub trait Outbox: Send + Sync + fmt::Debug {
    /// Stores each firing, a pending delivery per endpoint (due at `fired_at`) and the rule's
    /// counter (`firings + 1`, `last_fired_at`; status `completed` when `max_firings` is
    /// reached), all in one transaction.
    fn record_firings(&self, firings: &[NewFiring]) -> Result<(), StoreError>;

    fn get_firing(&self, id: &str) -> Result<Option<FiringRecord>, StoreError>;

    /// Firings of `owner`'s rules (`alr_…`; of one rule when given), newest first, at most
    /// `limit`, strictly before `before` (µs) when given. Operator notices (firings of a
    /// pseudo-rule such as `anomaly`) are delivered like firings but never listed here.
    fn list_firings(
        &self,
        owner: &str,
        rule_id: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<FiringRecord>, StoreError>;

    /// Endpoints with deliveries due at `now` (enabled endpoints only), with how many are due.
    fn due_endpoints(&self, now: i64) -> Result<Vec<(String, u64)>, StoreError>;

    /// When the earliest pending delivery of an enabled endpoint is due.
    fn next_due(&self) -> Result<Option<i64>, StoreError>;

    /// Claims up to `limit` due deliveries of one endpoint, oldest due first, until
    /// `lease_until`.
    fn claim(
        &self,
        endpoint_id: &str,
        now: i64,
        limit: usize,
        lease_until: i64,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Records an attempt of a claimed delivery (whose `attempts` was `attempt.attempt - 1`
    /// when claimed) and updates its endpoint's statistics: delivered on success, pending
    /// until `next_attempt_at` after a failure, dead when `next_attempt_at` is `None`.
    /// Returns `false`, recording nothing, if the delivery moved on meanwhile (its lease ran
    /// out and another claim recorded an attempt, or it was redelivered).
    fn record_attempt(&self, attempt: &AttemptRecord) -> Result<bool, StoreError>;

    fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError>;

    fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Attempts of one delivery, oldest first (since its last redelivery and before).
    fn attempts(&self, delivery_id: &str) -> Result<Vec<AttemptRecord>, StoreError>;

    /// Makes dead or delivered deliveries of `endpoint_id` pending again, due at `now`, with
    /// their attempt count reset: one (`delivery_id`) or every dead one. Returns how many.
    fn redeliver(
        &self,
        endpoint_id: &str,
        delivery_id: Option<&str>,
        now: i64,
    ) -> Result<u64, StoreError>;

    fn delivery_counts(&self) -> Result<DeliveryCounts, StoreError>;

    /// Retention: deletes delivered deliveries (and their attempts) last updated before
    /// `delivered_before`, dead ones before `dead_before`, and firings left with no delivery
    /// older than `delivered_before`. Returns how many deliveries were deleted.
    fn prune(&self, delivered_before: i64, dead_before: i64) -> Result<u64, StoreError>;
}
