//! Which key store and audit log (and alert store) a node uses, and how it learns of key
//! changes made by other nodes.
//!
//! - `[cluster] postgres_url` empty: the embedded SQLite database in `server.data_dir`; other
//!   processes' changes (the CLI) arrive by the maintenance poll (`auth.poll_interval_ms`).
//! - set: PostgreSQL, in `cluster.postgres_schema`, shared by every node. Every key write also
//!   sends `NOTIFY`; a thread of this node keeps a `LISTEN` connection and wakes the maintenance
//!   task at once, so a key revoked through any node closes its sessions here within about a
//!   round trip, not a poll interval. When that connection is down the node says so
//!   (`/readyz` `key_store.changes = "polling"`, metric `tickgate_key_changes_listening 0`),
//!   keeps polling, and reconnects with a backoff.
//!
//! The alert store (rules, webhook endpoints and the outbox, [`open_alerts_blocking`]) follows
//! the same setting: `tickgate.db` on a single node, the cluster's PostgreSQL schema when
//! `postgres_url` is set, so every node lists the same rules and shares one outbox. Other
//! nodes' rule changes reach the evaluators by their poll of the rule change feed
//! (`alerts.poll_interval_ms`).

use crate::ServerError;
use crate::config::Config;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use store::audit::AuditLog;
use store::keys::KeyStore;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Where this node's keys live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// The key store's backend and the state of its change announcements, for `/readyz` and
/// `/metrics`.
#[derive(Debug)]
pub struct KeyStoreStatus {
    pub backend: Backend,
    /// PostgreSQL: the `LISTEN` connection is up (changes arrive at once).
    listening: AtomicBool,
    /// Times the `LISTEN` connection failed or dropped.
    listener_failures: AtomicU64,
    /// Notifications received.
    notifications: AtomicU64,
}

impl KeyStoreStatus {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            listening: AtomicBool::new(false),
            listener_failures: AtomicU64::new(0),
            notifications: AtomicU64::new(0),
        }
    }

    /// How key changes made elsewhere reach this node: `"notify"` (PostgreSQL `LISTEN` is up)
    /// or `"polling"` (SQLite, or the listener is down).
    pub fn changes(&self) -> &'static str {
        if self.listening.load(Ordering::Relaxed) {
            "notify"
        } else {
            "polling"
        }
    }

    /// Prometheus lines (PostgreSQL only: a single node has nothing to announce).
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        if self.backend != Backend::Postgres {
            return;
        }
        let _ = writeln!(
            out,
            "# HELP tickgate_key_changes_listening 1 while key changes of other nodes arrive \
             by PostgreSQL NOTIFY, 0 while this node only polls for them\n\
             # TYPE tickgate_key_changes_listening gauge\n\
             tickgate_key_changes_listening {}\n\
             # HELP tickgate_key_changes_listener_failures_total Times the LISTEN connection \
             failed or dropped\n\
             # TYPE tickgate_key_changes_listener_failures_total counter\n\
             tickgate_key_changes_listener_failures_total {}\n\
             # HELP tickgate_key_changes_notifications_total Key-change notifications received\n\
             # TYPE tickgate_key_changes_notifications_total counter\n\
             tickgate_key_changes_notifications_total {}",
            u8::from(self.listening.load(Ordering::Relaxed)),
            self.listener_failures.load(Ordering::Relaxed),
            self.notifications.load(Ordering::Relaxed),
        );
    }
}

/// The opened stores.
#[derive(Debug)]
pub struct KeyStores {
    pub keys: Arc<dyn KeyStore>,
    pub audit: Arc<dyn AuditLog>,
    /// Notified when another node changed a key: poll now.
    pub wake: Arc<Notify>,
    pub status: Arc<KeyStoreStatus>,
}

/// A key store (with its audit log) as opened from a configuration.
#[derive(Debug, Clone)]
pub enum Opened {
    Sqlite(store::keys_sqlite::SqliteKeyStore),
    Postgres(store::keys_postgres::PgKeyStore),
}

impl Opened {
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    pub fn keys(&self) -> Arc<dyn KeyStore> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(s) => Arc::new(s.clone()),
        }
    }

    pub fn audit(&self) -> Arc<dyn AuditLog> {
        match self {
            Self::Sqlite(s) => Arc::new(s.audit_log()),
            Self::Postgres(s) => Arc::new(s.audit_log()),
        }
    }

    /// Where the store is, for messages: the data directory, or the config key of the URL
    /// (never the URL: it may hold a password).
    pub fn describe(config: &Config) -> String {
        match config.cluster.postgres() {
            Some(_) => format!(
                "the PostgreSQL store (cluster.postgres_url, schema {})",
                config.cluster.postgres_schema
            ),
            None => config.server.data_dir.display().to_string(),
        }
    }
}

/// Opens (creating and migrating) the key store this configuration names. Blocks: the
/// server calls it on the blocking pool, the CLI directly.
pub fn open_blocking(config: &Config) -> Result<Opened, store::StoreError> {
    match config.cluster.postgres() {
        Some(url) => Ok(Opened::Postgres(store::keys_postgres::PgKeyStore::open(
            url,
            &config.cluster.postgres_schema,
        )?)),
        None => Ok(Opened::Sqlite(
            store::keys_sqlite::SqliteKeyStore::open_dir(&config.server.data_dir)?,
        )),
    }
}

/// Opens (creating and migrating) the alert store this configuration names: PostgreSQL in
/// `cluster.postgres_schema` when `cluster.postgres_url` is set, else `tickgate.db` in the
/// data directory. Blocks, like [`open_blocking`].
pub fn open_alerts_blocking(
    config: &Config,
) -> Result<Arc<dyn ::alerts::Store>, store::StoreError> {
    match config.cluster.postgres() {
        Some(url) => Ok(Arc::new(store::alerts_postgres::PgAlertStore::open(
            url,
            &config.cluster.postgres_schema,
        )?)),
        None => Ok(Arc::new(store::alerts_sqlite::SqliteAlertStore::open_dir(
            &config.server.data_dir,
        )?)),
    }
}

/// Opens the key store and audit log this configuration names (see the module documentation)
/// and, for PostgreSQL, starts the listener thread (it stops with `shutdown`).
pub async fn open(config: &Config, shutdown: &CancellationToken) -> Result<KeyStores, ServerError> {
    let wake = Arc::new(Notify::new());
    let owned = config.clone();
    let opened = tokio::task::spawn_blocking(move || open_blocking(&owned))
        .await
        .map_err(|e| ServerError::Auth(e.to_string()))?;
    let store = match opened {
        Ok(Opened::Postgres(store)) => store,
        Ok(sqlite) => {
            return Ok(KeyStores {
                keys: sqlite.keys(),
                audit: sqlite.audit(),
                wake,
                status: Arc::new(KeyStoreStatus::new(sqlite.backend())),
            });
        }
        // The store's errors never contain the URL.
        Err(e) if config.cluster.postgres().is_some() => {
            return Err(ServerError::Auth(format!("cluster.postgres_url: {e}")));
        }
        Err(e) => return Err(e.into()),
    };
    let status = Arc::new(KeyStoreStatus::new(Backend::Postgres));
    let listener = Listener {
        store: store.clone(),
        wake: wake.clone(),
        status: status.clone(),
        shutdown: shutdown.clone(),
    };
    std::thread::Builder::new()
        .name("tickgate-key-listen".into())
        .spawn(move || listener.run())
        .map_err(|e| ServerError::Auth(format!("cannot start the key-change listener: {e}")))?;
    tracing::info!(schema = %store.schema(), "keys and the audit log are in PostgreSQL");
    Ok(KeyStores {
        audit: Arc::new(store.audit_log()),
        keys: Arc::new(store),
        wake,
        status,
    })
}

/// How often the listener thread looks at `shutdown` while waiting.
const LISTEN_TICK: Duration = Duration::from_millis(250);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The `LISTEN` loop, on its own thread: the synchronous client blocks.
struct Listener {
    store: store::keys_postgres::PgKeyStore,
    wake: Arc<Notify>,
    status: Arc<KeyStoreStatus>,
    shutdown: CancellationToken,
}

impl Listener {
    fn run(self) {
        let mut backoff = Duration::from_millis(250);
        while !self.shutdown.is_cancelled() {
            let mut listener = match self.store.listen() {
                Ok(listener) => listener,
                Err(error) => {
                    self.failed(&error.to_string());
                    self.sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            self.status.listening.store(true, Ordering::Relaxed);
            // Changes made while nobody listened: poll once now.
            self.wake.notify_one();
            tracing::info!("listening for key changes (PostgreSQL NOTIFY)");
            backoff = Duration::from_millis(250);
            loop {
                if self.shutdown.is_cancelled() {
                    return;
                }
                match listener.wait(LISTEN_TICK) {
                    Ok(Some(_)) => {
                        self.status.notifications.fetch_add(1, Ordering::Relaxed);
                        self.wake.notify_one();
                    }
                    Ok(None) => {}
                    Err(error) => {
                        self.failed(&error.to_string());
                        break;
                    }
                }
            }
        }
    }

    fn failed(&self, error: &str) {
        self.status.listening.store(false, Ordering::Relaxed);
        self.status
            .listener_failures
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            error = %error,
            "key-change listener down: other nodes' key changes arrive by polling until it \
             reconnects"
        );
    }

    fn sleep(&self, total: Duration) {
        let mut left = total;
        while !left.is_zero() && !self.shutdown.is_cancelled() {
            let step = left.min(LISTEN_TICK);
            std::thread::sleep(step);
            left -= step;
        }
    }
}
