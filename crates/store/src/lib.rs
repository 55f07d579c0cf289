//! Persistence: history, keys and audit behind narrow traits, with an embedded SQLite
//! implementation (the default, no service needed) and room for Postgres (cluster mode).
//!
//! # Layout
//!
//! - [`sqlite`]: opening a database file in the data directory (WAL mode, sane pragmas) and
//!   applying each module's schema migrations exactly once.
//! - [`error`]: [`StoreError`], shared by every store.
//! - [`keys`] / [`keys_sqlite`]: the [`keys::KeyStore`] seam (API keys, lifecycle state, usage
//!   buckets) and its SQLite backend.
//! - [`audit`] / [`audit_sqlite`]: the hash-chained [`audit::AuditLog`] seam, its chain verifier,
//!   and its SQLite backend.
//!
//! Each concept gets a trait file and one file per backend, named `<concept>.rs` and
//! `<concept>_sqlite.rs` (later `<concept>_postgres.rs`), with one contract test suite that every
//! backend must pass.

pub mod audit;
pub mod audit_sqlite;
pub mod error;
pub mod keys;
pub mod keys_sqlite;
pub mod sqlite;

pub use error::StoreError;
