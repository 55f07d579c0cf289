//! Persistence: history, keys, audit and alerts behind narrow traits, with an embedded SQLite
//! implementation (the default, no service needed) and PostgreSQL for each of them (cluster
//! mode, feature `postgres`).
//!
//! # Layout
//!
//! - [`sqlite`]: opening a database file in the data directory (WAL mode, sane pragmas) and
//!   applying each module's schema migrations exactly once.
//! - [`error`]: [`StoreError`], shared by every store.
//! - [`history`]: the [`HistoryStore`] seam (trades and candles), its query and page types and
//!   its documented guarantees.
//! - [`history_sqlite`]: [`SqliteHistory`], the embedded implementation (`history.db`).
//! - `history_postgres` (feature `postgres`): `PgHistory`, the cluster implementation: one
//!   store every node reads, idempotent batched writes.
//! - [`history_writer`]: [`HistoryWriter`], the bounded queue and writer thread that persist
//!   off the hot path and enforce retention; [`HistorySink`] is the producers' end.
//! - [`history_config`]: `[history]` settings: what is stored, retention per kind, batching.
//! - [`keys`] / [`keys_sqlite`]: the [`keys::KeyStore`] seam (API keys, lifecycle state, usage
//!   buckets) and its SQLite backend.
//! - [`audit`] / [`audit_sqlite`]: the hash-chained [`audit::AuditLog`] seam, its chain verifier,
//!   and its SQLite backend.
//! - [`security`] / [`security_sqlite`]: the [`security::SecurityStore`] seam (TOTP
//!   enrollments, IP blocks, addresses seen per key), a supertrait of `KeyStore`, on the keys
//!   database.
//! - [`alerts`] / [`alerts_sqlite`]: the [`alerts::AlertStore`] seam (alert rules with a change
//!   feed, webhook endpoints with sealed secrets and delivery statistics) and its SQLite backend.
//! - [`outbox`] / [`outbox_sqlite`]: the [`outbox::Outbox`] seam (firings, their webhook
//!   deliveries with leases, attempts, dead letters and redelivery), on the same SQLite store.
//!
//! - `postgres` (feature `postgres`): connection settings, a small pool and schema migrations
//!   for the cluster backends: `keys_postgres` (keys, with a commit-ordered change counter
//!   and a `NOTIFY` wake-up), `security_postgres` and `audit_postgres` (one chain across
//!   nodes, appends serialized in the database), `history_postgres`, and `alerts_postgres`
//!   / `outbox_postgres` (rules with a commit-ordered change number, an outbox whose claims
//!   are exclusive across nodes by `FOR UPDATE SKIP LOCKED`).
//!
//! Each concept gets a trait file and one file per backend, named `<concept>.rs`,
//! `<concept>_sqlite.rs` and `<concept>_postgres.rs` (keys, security, audit, history, alerts and the outbox), with one
//! contract test suite that every backend must pass (`tests/history/contract.rs` for history,
//! `tests/keys_contract.rs` and `tests/audit_tamper.rs`, `tests/alerts_contract.rs`).

pub mod alerts;
#[cfg(feature = "postgres")]
pub mod alerts_postgres;
pub mod alerts_sqlite;
pub mod audit;
#[cfg(feature = "postgres")]
pub mod audit_postgres;
pub mod audit_sqlite;
pub mod error;
pub mod history;
pub mod history_config;
#[cfg(feature = "postgres")]
pub mod history_postgres;
pub mod history_sqlite;
pub mod history_writer;
pub mod keys;
#[cfg(feature = "postgres")]
pub mod keys_postgres;
pub mod keys_sqlite;
pub mod outbox;
#[cfg(feature = "postgres")]
pub mod outbox_postgres;
pub mod outbox_sqlite;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod security;
#[cfg(feature = "postgres")]
pub mod security_postgres;
pub mod security_sqlite;
pub mod sqlite;

pub use error::StoreError;
pub use history::{
    CandleQuery, DiskUsage, HistoryBatch, HistoryKind, HistoryStore, Order, Page, PerpQuery,
    Record, StoredLiquidation, StoredTrade, TradeKey, TradeQuery, merge_candle,
};
pub use history_config::{HistoryConfig, HistoryFilter, Retention, RetentionConfig};
pub use history_sqlite::{HISTORY_DB_FILE, SqliteHistory};
pub use history_writer::{HistorySink, HistoryStats, HistoryWriter, WriterSettings};
