//! The Redis [`SharedNonceStore`]: one Redis for every gateway node, so a signed request
//! accepted by one node and replayed to another is refused.
//!
//! Layout under the store's key prefix `P` (each test and each deployment its own):
//! - `P n:<len(key)>:<key>:<nonce>` → the entry's `expires_at` (seconds, the caller's clock),
//!   with a Redis TTL of `expires_at − now + 1` s so Redis forgets it soon after it expires;
//!   the length prefix keeps (`a`, `bc`) and (`ab`, `c`) apart.
//! - `P m:<key>` → the last accepted monotonic nonce (decimal), kept without TTL like the
//!   in-memory store's.
//!
//! Both writes are Lua scripts, so each check-and-set runs atomically in Redis. Expiry is
//! judged from the stored `expires_at` and the `now` passed in (the replay guard's clock), not
//! from Redis's clock alone, so the store gives the same answers as the in-memory one.
//!
//! Every call has a deadline ([`RedisNonceStore::connect`]'s `timeout`); an error or a
//! timeout is [`Unavailable`] and the replay guard refuses the request (fail closed).

use super::nonce::Recorded;
use super::shared::{SharedNonceStore, StoreFuture, Unavailable};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Check-and-set of one `(key, nonce)`: KEYS[1] the entry; ARGV expires_at, now, ttl.
const RECORD: &str = r"
local e = redis.call('GET', KEYS[1])
if e and tonumber(e) >= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
";

/// Monotonic mode: KEYS[1] the key's last value; ARGV[1] the new value (decimal, no leading
/// zeros). Compared as digit strings (length, then text), exact for all of u64 where Lua
/// numbers (doubles) are not.
const INCREASING: &str = r"
local v = redis.call('GET', KEYS[1])
local a = ARGV[1]
if v and (#v > #a or (#v == #a and v >= a)) then return 0 end
redis.call('SET', KEYS[1], a)
return 1
";

/// See the module docs.
#[derive(Clone)]
pub struct RedisNonceStore {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    record: redis::Script,
    increasing: redis::Script,
    /// Calls that got no answer (error or deadline), since start; shared by clones.
    failures: Arc<AtomicU64>,
}

impl std::fmt::Debug for RedisNonceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL (which may hold a password) is not kept.
        f.debug_struct("RedisNonceStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn unavailable(error: redis::RedisError) -> Unavailable {
    // The error's text names the failure (connection refused, timeout), never the URL.
    Unavailable(error.to_string())
}

impl RedisNonceStore {
    /// Connects to `url` (`redis://…`); keys start with `prefix` (e.g. `tickgate:`). Each call
    /// waits at most `timeout`; the connection is re-established in the background after a
    /// loss. Fails when Redis cannot be reached now.
    pub async fn connect(url: &str, prefix: &str, timeout: Duration) -> Result<Self, Unavailable> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(unavailable)?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            timeout,
            record: redis::Script::new(RECORD),
            increasing: redis::Script::new(INCREASING),
            failures: Arc::default(),
        })
    }

    /// The connection, for the other shared state of a cluster on the same Redis (rate
    /// limits, WebSocket caps): one reconnecting connection per node.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Calls that got no answer since start (`/metrics`).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    fn entry(&self, key: &str, nonce: &str) -> String {
        format!("{}n:{}:{key}:{nonce}", self.prefix, key.len())
    }

    fn last(&self, key: &str) -> String {
        format!("{}m:{key}", self.prefix)
    }

    /// Runs `call` under the store's deadline.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Unavailable> {
        crate::redis_deadline::bounded(self.timeout, &self.failures, call).await
    }
}

impl SharedNonceStore for RedisNonceStore {
    fn record<'a>(
        &'a self,
        key: &'a str,
        nonce: &'a str,
        expires_at: i64,
        now: i64,
    ) -> StoreFuture<'a, Recorded> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let ttl = (expires_at - now).max(0) + 1;
            let mut invocation = self.record.key(self.entry(key, nonce));
            invocation.arg(expires_at).arg(now).arg(ttl);
            let fresh: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
            Ok(if fresh == 1 {
                Recorded::Fresh
            } else {
                Recorded::Reused
            })
        })
    }

    fn seen<'a>(&'a self, key: &'a str, nonce: &'a str, now: i64) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let expires: Option<i64> = self
                .bounded(
                    redis::cmd("GET")
                        .arg(self.entry(key, nonce))
                        .query_async(&mut conn),
                )
                .await?;
            Ok(expires.is_some_and(|e| e >= now))
        })
    }

    fn record_increasing<'a>(&'a self, key: &'a str, value: u64) -> StoreFuture<'a, Recorded> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let mut invocation = self.increasing.key(self.last(key));
            invocation.arg(value.to_string());
            let fresh: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
            Ok(if fresh == 1 {
                Recorded::Fresh
            } else {
                Recorded::NotIncreasing
            })
        })
    }

    fn last_increasing<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<u64>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let last: Option<String> = self
                .bounded(redis::cmd("GET").arg(self.last(key)).query_async(&mut conn))
                .await?;
            last.map(|v| {
                v.parse()
                    .map_err(|_| Unavailable(format!("{} holds a non-number", self.last(key))))
            })
            .transpose()
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let _: String = self
                .bounded(redis::cmd("PING").query_async(&mut conn))
                .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh prefix per test, so tests sharing one Redis never collide.
    fn test_prefix() -> String {
        format!("tg_test_{}:", crate::httpsig::sign::random_nonce().unwrap())
    }

    #[tokio::test]
    async fn redis_store_meets_the_contract() {
        let Ok(url) = std::env::var("TICKGATE_TEST_REDIS_URL") else {
            eprintln!("skipped: TICKGATE_TEST_REDIS_URL not set");
            return;
        };
        let store = RedisNonceStore::connect(&url, &test_prefix(), Duration::from_secs(2))
            .await
            .unwrap();
        super::super::shared::contract(&store).await;
    }

    #[tokio::test]
    async fn two_connections_share_one_set_of_nonces_and_race_safely() {
        let Ok(url) = std::env::var("TICKGATE_TEST_REDIS_URL") else {
            eprintln!("skipped: TICKGATE_TEST_REDIS_URL not set");
            return;
        };
        let prefix = test_prefix();
        let a = RedisNonceStore::connect(&url, &prefix, Duration::from_secs(2))
            .await
            .unwrap();
        let b = RedisNonceStore::connect(&url, &prefix, Duration::from_secs(2))
            .await
            .unwrap();
        // 200 nonces, each recorded at once through both connections: exactly one wins.
        for i in 0..200 {
            let nonce = i.to_string();
            let (x, y) = tokio::join!(
                a.record("k", &nonce, 1_100, 1_000),
                b.record("k", &nonce, 1_100, 1_000)
            );
            let fresh = [x.unwrap(), y.unwrap()]
                .iter()
                .filter(|r| **r == Recorded::Fresh)
                .count();
            assert_eq!(fresh, 1, "nonce {i}");
        }
        assert!(b.seen("k", "7", 1_001).await.unwrap());
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_unavailable_not_fresh() {
        // Nothing listens on port 1 of loopback: connecting fails at once.
        let error = RedisNonceStore::connect(
            "redis://127.0.0.1:1",
            "tg_test_none:",
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
        assert!(!error.0.is_empty());
    }
}
