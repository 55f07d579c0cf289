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
    /// An optimistic update that changed no row: `Conflict` when the record (`what` `id`)
    /// still exists (someone else wrote it first), `NotFound` when it does not.
    pub(crate) fn lost_update(what: &str, id: &str, exists: bool) -> Self {
        if exists {
            Self::Conflict(format!(
                "{what} {id} was changed by someone else; reload and retry"
            ))
        } else {
            Self::NotFound(format!("{what} {id}"))
        }
    }

    /// True when the service behind the store cannot be reached or dropped the connection
    /// (PostgreSQL down, restarting or out of connections), as opposed to a bad query or bad
    /// data: the API answers `unavailable` (503) and the history writer keeps its batch and
    /// retries. An embedded SQLite store is never unavailable.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            #[cfg(feature = "postgres")]
            Self::Postgres(e) => {
                use postgres::error::SqlState;
                let io = std::error::Error::source(e)
                    .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some());
                e.is_closed()
                    || io
                    || e.code().is_some_and(|c| {
                        c.code().starts_with("08")
                            || *c == SqlState::ADMIN_SHUTDOWN
                            || *c == SqlState::CRASH_SHUTDOWN
                            || *c == SqlState::CANNOT_CONNECT_NOW
                            || *c == SqlState::TOO_MANY_CONNECTIONS
                    })
            }
            _ => false,
        }
    }

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
                self.is_unavailable()
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
