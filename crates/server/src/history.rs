//! The history store as the server uses it: opening it and its writer at start, the
//! concurrency bound on queries, and its `/metrics` section.
//!
//! - `[cluster] postgres_url` empty: `history.db` in the data directory (one node).
//! - set: PostgreSQL, in `cluster.postgres_schema` ([`store::history_postgres`]): every node
//!   reads the same history. Nodes that run venues (`all`, `ingest`) write it; an `edge` runs
//!   no writer (it has no venue) and serves what the ingest wrote. Two ingests of the same
//!   venues may both write: the store keeps one copy of each trade.

use crate::config::Config;
use crate::server_error::ServerError;
use crate::stores::Backend;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use store::history_postgres::PgHistory;
use store::{
    HistoryFilter, HistoryKind, HistoryStats, HistoryStore, HistoryWriter, SqliteHistory,
    WriterSettings,
};
use tokio::sync::Semaphore;

/// History queries running at once; more wait for a slot (each holds a blocking thread and a
/// database connection).
const MAX_CONCURRENT_QUERIES: usize = 8;

/// What request handlers need of the history store.
#[derive(Debug)]
pub struct History {
    pub store: Arc<dyn HistoryStore>,
    /// The writer's counters (all zero on an edge, which writes nothing).
    pub stats: Arc<HistoryStats>,
    pub filter: HistoryFilter,
    pub queries: Semaphore,
    pub backend: Backend,
    /// The PostgreSQL store, for the `/readyz` probe.
    pub postgres: Option<Arc<PgHistory>>,
    /// The last query failed because the store could not be reached.
    pub query_unavailable: AtomicBool,
}

impl History {
    /// Whether the store answers a trivial query (PostgreSQL only: an embedded SQLite store
    /// is always there). Blocks.
    pub fn probe(&self) -> Result<(), store::StoreError> {
        match &self.postgres {
            Some(pg) => pg.ping(),
            None => Ok(()),
        }
    }
}

/// Opens the store (`history.db` in the data directory, or PostgreSQL with
/// `cluster.postgres_url`, unless `store` is given) and, on a node that runs venues, starts
/// its writer. `None` when `history.enabled` is false.
pub(crate) async fn start(
    config: &Config,
    store: Option<Arc<dyn HistoryStore>>,
) -> Result<Option<(Arc<History>, Option<HistoryWriter>)>, ServerError> {
    if !config.history.enabled {
        return Ok(None);
    }
    let filter = config.history.validate().map_err(|(key, message)| {
        ServerError::Config(crate::config::ConfigError { key, message })
    })?;
    let mut postgres = None;
    let mut backend = Backend::Sqlite;
    let store = match (store, config.cluster.postgres()) {
        (Some(store), _) => store,
        (None, Some(url)) => {
            let (url, schema) = (url.to_string(), config.cluster.postgres_schema.clone());
            let opened = tokio::task::spawn_blocking(move || PgHistory::open(&url, &schema))
                .await
                .map_err(|e| ServerError::Spawn {
                    what: "the history store",
                    source: std::io::Error::other(e),
                })?;
            // The store's errors never contain the URL.
            let pg = Arc::new(opened.map_err(|e| {
                ServerError::History(store::StoreError::Config(format!(
                    "cluster.postgres_url: {e}"
                )))
            })?);
            tracing::info!(schema = %pg.schema(), "history is in PostgreSQL");
            backend = Backend::Postgres;
            postgres = Some(pg.clone());
            pg
        }
        (None, None) => {
            let dir = config.server.data_dir.clone();
            let opened = tokio::task::spawn_blocking(move || SqliteHistory::open_in(&dir))
                .await
                .map_err(|e| ServerError::Spawn {
                    what: "the history store",
                    source: std::io::Error::other(e),
                })?;
            Arc::new(opened.map_err(ServerError::History)?)
        }
    };
    // An edge has no venue, so nothing to write (and retention is the writers' job).
    let writer = if crate::cluster_node::runs_venues(config) {
        Some(
            HistoryWriter::start(
                store.clone(),
                filter.clone(),
                WriterSettings::from(&config.history),
            )
            .map_err(|source| ServerError::Spawn {
                what: "the history writer thread",
                source,
            })?,
        )
    } else {
        None
    };
    let stats = writer
        .as_ref()
        .map_or_else(Default::default, |w| w.stats().clone());
    let history = History {
        store,
        stats,
        filter,
        queries: Semaphore::new(MAX_CONCURRENT_QUERIES),
        backend,
        postgres,
        query_unavailable: AtomicBool::new(false),
    };
    Ok(Some((Arc::new(history), writer)))
}

/// Appends the history families to a Prometheus text body.
pub(crate) fn render_metrics(history: Option<&History>, out: &mut String) {
    let Some(history) = history else {
        return;
    };
    let stats = &history.stats;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let per_kind =
        |out: &mut String,
         name: &str,
         help: &str,
         values: &[std::sync::atomic::AtomicU64; HistoryKind::COUNT]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for kind in HistoryKind::ALL {
                let _ = writeln!(
                    out,
                    "{name}{{kind=\"{kind}\"}} {}",
                    load(&values[kind.index()])
                );
            }
        };
    per_kind(
        out,
        "tickgate_history_rows_written_total",
        "Rows written to the history store, by kind.",
        &stats.written,
    );
    per_kind(
        out,
        "tickgate_history_dropped_rows_total",
        "Rows not stored because the writer could not keep up (or a write failed), by kind. Live data is unaffected.",
        &stats.dropped,
    );
    per_kind(
        out,
        "tickgate_history_purged_rows_total",
        "Rows deleted by retention, by kind.",
        &stats.purged,
    );
    let int = |a: &std::sync::atomic::AtomicU64| load(a).to_string();
    let single = [
        (
            "tickgate_history_batches_total",
            "counter",
            "Write transactions.",
            int(&stats.batches),
        ),
        (
            "tickgate_history_duplicate_rows_total",
            "counter",
            "Rows the store already had (the same trade or candle written twice, e.g. by two ingest nodes), stored once.",
            int(&stats.duplicates),
        ),
        (
            "tickgate_history_store_unavailable",
            "gauge",
            "1 while the history store cannot be reached (the writer holds its batch and retries; queries answer 503 unavailable).",
            u64::from(
                stats.unavailable.load(Ordering::Relaxed)
                    || history.query_unavailable.load(Ordering::Relaxed),
            )
            .to_string(),
        ),
        (
            "tickgate_history_write_errors_total",
            "counter",
            "Failed writes or retention passes (details in the log).",
            int(&stats.write_errors),
        ),
        (
            "tickgate_history_write_seconds_total",
            "counter",
            "Time spent writing batches.",
            (load(&stats.write_micros) as f64 / 1e6).to_string(),
        ),
        (
            "tickgate_history_queue_rows",
            "gauge",
            "Rows waiting for the writer.",
            int(&stats.queued_rows),
        ),
        (
            "tickgate_history_queue_capacity_rows",
            "gauge",
            "Rows the writer queue holds before dropping.",
            int(&stats.queue_capacity),
        ),
        (
            "tickgate_history_disk_bytes",
            "gauge",
            "Bytes of the history database files (database, WAL, shared memory).",
            int(&stats.disk_bytes),
        ),
        (
            "tickgate_history_free_bytes",
            "gauge",
            "Bytes inside the history database free for reuse after retention.",
            int(&stats.free_bytes),
        ),
    ];
    for (name, kind, help, value) in single {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}
