//! The history store as the server uses it: opening it and its writer at start, the
//! concurrency bound on queries, and its `/metrics` section.

use crate::config::Config;
use crate::server_error::ServerError;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
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
    pub stats: Arc<HistoryStats>,
    pub filter: HistoryFilter,
    pub queries: Semaphore,
}

/// Opens the store (`history.db` in the data directory unless `store` is given) and starts its
/// writer. `None` when `history.enabled` is false.
pub(crate) async fn start(
    config: &Config,
    store: Option<Arc<dyn HistoryStore>>,
) -> Result<Option<(Arc<History>, HistoryWriter)>, ServerError> {
    if !config.history.enabled {
        return Ok(None);
    }
    let filter = config.history.validate().map_err(|(key, message)| {
        ServerError::Config(crate::config::ConfigError { key, message })
    })?;
    let store = match store {
        Some(store) => store,
        None => {
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
    let writer = HistoryWriter::start(
        store.clone(),
        filter.clone(),
        WriterSettings::from(&config.history),
    )
    .map_err(|source| ServerError::Spawn {
        what: "the history writer thread",
        source,
    })?;
    let history = History {
        store,
        stats: writer.stats().clone(),
        filter,
        queries: Semaphore::new(MAX_CONCURRENT_QUERIES),
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
        |out: &mut String, name: &str, help: &str, values: &[std::sync::atomic::AtomicU64; 7]| {
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
