//! Store errors.

/// Why a store operation failed. Messages never contain secret material.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot open the database at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid data in the store: {0}")]
    Corrupt(String),
    /// A PostgreSQL error. Its text comes from the client or the server and never contains
    /// the connection URL (nor, therefore, its password).
    #[cfg(feature = "postgres")]
    #[error("postgres error: {0}")]
    Postgres(#[from] postgres::Error),
    /// The service behind the store is unreachable or dropped the connection.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The store cannot be opened with these settings (a bad URL, an unsupported `sslmode`,
    /// a bad schema name). The message names the setting, never its value.
    #[error("store settings: {0}")]
    Config(String),
}

impl StoreError {
    /// True for transient failures (the database is busy or locked) worth retrying.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            | Self::Open {
                source: rusqlite::Error::SqliteFailure(e, _),
                ..
            } => {
                matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                )
            }
            Self::Unavailable(_) => true,
            #[cfg(feature = "postgres")]
            Self::Postgres(e) => {
                use postgres::error::SqlState;
                e.is_closed()
                    || matches!(
                        e.code(),
                        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
                            || *c == SqlState::T_R_DEADLOCK_DETECTED
                    )
            }
            _ => false,
        }
    }
}
