//! Connecting to PostgreSQL (`[cluster] postgres_url`): settings, a small connection pool and
//! schema migrations, shared by the key, security and audit backends.
//!
//! - **Blocking, like SQLite.** The store traits are synchronous and callers run them on the
//!   blocking pool (`spawn_blocking`). The `postgres` client drives each connection with its own
//!   small runtime, which panics if entered from a thread already inside a tokio runtime; so
//!   [`PgPool::with`] checks, and a call made from async code by mistake runs on a scoped
//!   helper thread instead of panicking (it still blocks its caller: a bug to fix, not a crash).
//! - **One schema per deployment.** Every connection sets `search_path` to the configured
//!   schema, so several clusters (or parallel tests) can share one database. Migrations run in
//!   one transaction under an advisory lock keyed by the schema name: nodes starting together
//!   apply each step exactly once.
//! - **No TLS.** The client is built without TLS: `sslmode=require` (or stricter) is refused
//!   at open with a clear error rather than silently sent in the clear; use a loopback or
//!   private-network server (`sslmode=disable` or the default `prefer`).
//! - **Stale connections.** A pooled connection idle for more than 5 s is checked with an
//!   empty query before reuse, so a database restart costs a reconnect rather than a failed
//!   call. A call already under way when the connection drops fails (it is not retried: a
//!   write's commit may or may not have happened); callers retry (key maintenance does).
//! - **No secret in errors.** The URL is parsed once and never echoed; errors name the setting.

use crate::StoreError;
use parking_lot::Mutex;
use postgres::config::SslMode;
use postgres::{Client, NoTls};
use std::fmt;
use std::time::{Duration, Instant};

/// The default schema when none is configured.
pub const DEFAULT_SCHEMA: &str = "public";

/// Idle connections kept per pool; more are opened on demand and closed after use.
const MAX_IDLE: usize = 4;

/// How long opening one connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A pooled connection idle longer than this is checked (an empty query) before reuse: a
/// database restart or a dropped connection then costs a reconnect, not a failed call.
const IDLE_CHECK_AFTER: Duration = Duration::from_secs(5);

/// How long that check may take.
const IDLE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether `name` is a schema name this store accepts: 1 to 63 of `a-z 0-9 _`, not starting
/// with a digit (so it never needs quoting rules beyond double quotes, and never collides with
/// case folding).
pub fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.as_bytes()[0].is_ascii_digit()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A pool of connections to one schema of one PostgreSQL database.
pub struct PgPool {
    config: postgres::Config,
    schema: String,
    /// Idle connections and when each was last returned.
    idle: Mutex<Vec<(Client, Instant)>>,
}

impl fmt::Debug for PgPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the config: it holds the password.
        f.debug_struct("PgPool")
            .field("schema", &self.schema)
            .field("idle", &self.idle.lock().len())
            .finish()
    }
}

impl PgPool {
    /// Parses `url`, checks the settings and opens one connection to prove them; creates
    /// `schema` if it does not exist. Does not migrate (each backend applies its own steps).
    pub fn open(url: &str, schema: &str) -> Result<Self, StoreError> {
        if !valid_schema(schema) {
            return Err(StoreError::Config(
                "the PostgreSQL schema must be 1 to 63 characters of a-z 0-9 _, not starting \
                 with a digit"
                    .into(),
            ));
        }
        let tls_refused = || {
            StoreError::Config(
                "the PostgreSQL URL asks for TLS (sslmode other than disable or prefer), which \
                 this build does not support: use a loopback or private-network server with \
                 sslmode=disable"
                    .into(),
            )
        };
        // Checked before parsing: the client does not know verify-ca/verify-full at all.
        if sslmode_of(url).is_some_and(|mode| !matches!(mode, "disable" | "prefer")) {
            return Err(tls_refused());
        }
        let mut config: postgres::Config = url.parse().map_err(|_: postgres::Error| {
            // Not the parser's message: the URL is never echoed, and neither is any part of it.
            StoreError::Config(
                "the PostgreSQL URL is not valid (expected postgres://user[:password]@host[:port]/database[?options])"
                    .into(),
            )
        })?;
        if !matches!(config.get_ssl_mode(), SslMode::Disable | SslMode::Prefer) {
            return Err(tls_refused());
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let options = match config.get_options() {
            Some(existing) => format!("{existing} -c search_path={schema}"),
            None => format!("-c search_path={schema}"),
        };
        config.options(&options);
        config.application_name("tickgate");
        let pool = Self {
            config,
            schema: schema.to_string(),
            idle: Mutex::new(Vec::new()),
        };
        pool.with(|client| {
            client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))?;
            Ok(())
        })
        .or_else(|e| match &e {
            // Two nodes creating the schema at once: one wins, the other sees it exists.
            StoreError::Postgres(pe)
                if pe.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) =>
            {
                Ok(())
            }
            _ => Err(e),
        })?;
        Ok(pool)
    }

    /// The schema this pool works in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// A new connection outside the pool (for `LISTEN`, which needs its own).
    pub fn connect(&self) -> Result<Client, StoreError> {
        Ok(self.config.connect(NoTls)?)
    }

    /// Runs `f` with a pooled connection. Safe to call from any thread (see the module doc).
    pub fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send,
        F: FnOnce(&mut Client) -> Result<T, StoreError> + Send,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            return std::thread::scope(|s| match s.spawn(|| self.with_here(f)).join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            });
        }
        self.with_here(f)
    }

    fn with_here<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut client = loop {
            // Most recently returned first: the likeliest to be alive.
            let popped = self.idle.lock().pop();
            let Some((mut client, since)) = popped else {
                break self.connect()?;
            };
            if client.is_closed() {
                continue;
            }
            if since.elapsed() < IDLE_CHECK_AFTER || client.is_valid(IDLE_CHECK_TIMEOUT).is_ok() {
                break client;
            }
        };
        let result = f(&mut client);
        if !client.is_closed() {
            let mut idle = self.idle.lock();
            if idle.len() < MAX_IDLE {
                idle.push((client, Instant::now()));
            }
        }
        result
    }
}

impl Drop for PgPool {
    /// Closing a connection blocks on its own runtime, which panics on a runtime thread (a
    /// store dropped at the end of an async function): close them on a helper thread then.
    fn drop(&mut self) {
        let idle = std::mem::take(&mut *self.idle.lock());
        if !idle.is_empty() && tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| {
                let _ = s.spawn(move || drop(idle)).join();
            });
        }
    }
}

/// Applies `module`'s migration steps not applied yet, in order, in one transaction that holds
/// an advisory lock for this schema (nodes starting together apply each step once). Steps are
/// append-only: never edit a released step, add a new one.
pub(crate) fn migrate(pool: &PgPool, module: &str, steps: &[&str]) -> Result<(), StoreError> {
    pool.with(|client| {
        let mut tx = client.transaction()?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.tickgate_migrate'))",
            &[],
        )?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                module TEXT NOT NULL,
                step BIGINT NOT NULL,
                applied_at_us BIGINT NOT NULL,
                PRIMARY KEY (module, step)
            )",
        )?;
        for (index, sql) in steps.iter().enumerate() {
            let step = index as i64;
            let done = tx
                .query_opt(
                    "SELECT 1 FROM schema_migrations WHERE module = $1 AND step = $2",
                    &[&module, &step],
                )?
                .is_some();
            if done {
                continue;
            }
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (module, step, applied_at_us) VALUES ($1, $2, $3)",
                &[&module, &step, &model::Timestamp::now().0],
            )?;
        }
        tx.commit()?;
        Ok(())
    })
}

/// The `sslmode` query parameter of a URL, if any.
fn sslmode_of(url: &str) -> Option<&str> {
    let (_, query) = url.split_once('?')?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("sslmode="))
}

/// `u64` → `BIGINT`, refusing values that do not fit.
pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Conflict(format!("{what} out of range")))
}

/// `BIGINT` → `u64` (negative values, which the store never writes, read as 0).
pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A stored 32-byte hash; a wrong length reads as all-ones so the chain check names the entry.
pub(crate) fn hash32(bytes: &[u8]) -> [u8; 32] {
    <[u8; 32]>::try_from(bytes).unwrap_or([0xff; 32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// Guards the idle check: a pooled connection the server closed (restart, idle timeout,
    /// a proxy) is replaced before use instead of failing the next call.
    #[test]
    fn a_connection_closed_while_idle_is_replaced_not_failed() {
        let Ok(url) = std::env::var("TICKGATE_TEST_POSTGRES_URL") else {
            eprintln!("skipped: TICKGATE_TEST_POSTGRES_URL not set");
            return;
        };
        let schema = format!("tg_test_idle_{}", std::process::id());
        let pool = PgPool::open(&url, &schema).unwrap();
        let pid: i32 = pool
            .with(|c| Ok(c.query_one("SELECT pg_backend_pid()", &[])?.get(0)))
            .unwrap();
        let mut admin = postgres::Config::from_str(&url)
            .unwrap()
            .connect(NoTls)
            .unwrap();
        admin
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .unwrap();
        // As if it had been idle for a while.
        for (_, since) in pool.idle.lock().iter_mut() {
            *since -= IDLE_CHECK_AFTER * 2;
        }
        let again: i32 = pool
            .with(|c| Ok(c.query_one("SELECT pg_backend_pid()", &[])?.get(0)))
            .unwrap();
        assert_ne!(again, pid);
        admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .unwrap();
    }

    #[test]
    fn schema_names_are_checked() {
        for (name, ok) in [
            ("public", true),
            ("tg_test_1", true),
            ("_x", true),
            ("", false),
            ("1abc", false),
            ("Upper", false),
            ("a-b", false),
            ("a\"b", false),
            (&"x".repeat(64), false),
        ] {
            assert_eq!(valid_schema(name), ok, "{name}");
        }
    }

    #[test]
    fn bad_settings_are_refused_without_echoing_the_url() {
        let cases = [
            (
                "postgres://u:hunter2@127.0.0.1/db?sslmode=require",
                "sslmode",
            ),
            (
                "postgres://u:hunter2@127.0.0.1/db?sslmode=verify-full",
                "sslmode",
            ),
            ("postgres://u:hunter2@127.0.0.1:notaport/db", "not valid"),
        ];
        for (url, expected) in cases {
            let err = PgPool::open(url, "public").unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, StoreError::Config(_)), "{url}: {err:?}");
            assert!(text.contains(expected), "{url}: {text}");
            assert!(!text.contains("hunter2"), "{url}: {text}");
        }
        let err = PgPool::open("postgres://u@127.0.0.1/db", "Bad-Name").unwrap_err();
        assert!(err.to_string().contains("schema"), "{err}");
    }
}
