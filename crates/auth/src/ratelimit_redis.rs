//! GCRA (see [`crate::ratelimit`]) kept in Redis, so every gateway node spends one budget per
//! key. One Lua script per check: read the theoretical arrival time, admit or refuse, write it
//! back, atomically in Redis, on Redis's own clock (`TIME`), so node clocks do not matter.
//!
//! Times are in units of 100 µs since the epoch (about 1.7·10¹³: exact in Lua's doubles and in
//! their 14-digit text form, where µs would not be).
//!
//! Layout under the cluster's key prefix `P`: `P rl:<key id>:<scope>` → the TAT (decimal, 100 µs
//! units), with a Redis TTL of the time until it is reached (an idle key holds nothing).
//!
//! Admission ([`crate::KeyIndex::authenticate_bearer_in`], signed requests) awaits it when the
//! key index's budget is [`crate::ratelimit::RateBudget::Shared`]: the synchronous checks (key,
//! status, allow-list, scope) run first, then this one round trip. It fails closed: an error or
//! a deadline miss is [`Unavailable`], counted in [`RedisGcra::failures`], and the request is
//! refused `unavailable` — never admitted on a local budget, which would give a key one budget
//! per node.

use crate::replay::Unavailable;
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use store::keys::RateLimit;

/// KEYS[1] the key's TAT; ARGV interval and tolerance (100 µs units). Returns 0 (admitted) or
/// the wait in 100 µs units.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 10000 + math.floor(tonumber(t[2]) / 100)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local nxt = tat + interval
if nxt - now > tolerance then return nxt - tolerance - now end
redis.call('SET', KEYS[1], string.format('%.0f', nxt), 'PX', math.floor((nxt - now) / 10) + 1)
return 0
";

/// See the module docs.
#[derive(Clone)]
pub struct RedisGcra {
    conn: ConnectionManager,
    prefix: String,
    script: redis::Script,
    timeout: Duration,
    /// Checks that got no answer (error or deadline), since start; shared by clones.
    failures: Arc<AtomicU64>,
}

impl std::fmt::Debug for RedisGcra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisGcra")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisGcra {
    /// Over an open connection (shared with the nonce store); keys start with `prefix`.
    pub fn new(conn: ConnectionManager, prefix: &str, timeout: Duration) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            script: redis::Script::new(GCRA),
            timeout,
            failures: Arc::default(),
        }
    }

    /// Checks (and pings) that got no answer since start (`/metrics`).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Whether Redis answers now, within the deadline (`/readyz`).
    pub async fn ping(&self) -> Result<(), Unavailable> {
        let mut conn = self.conn.clone();
        let ping = redis::cmd("PING");
        self.bounded(ping.query_async::<String>(&mut conn))
            .await
            .map(drop)
    }

    /// Runs `call` under the deadline; a failure is counted.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Unavailable> {
        crate::redis_deadline::bounded(self.timeout, &self.failures, call).await
    }

    /// Admits one request of `key` under `limit`, or says how long to wait.
    pub async fn check(
        &self,
        key: &str,
        limit: RateLimit,
    ) -> Result<Result<(), Duration>, Unavailable> {
        let interval = (10_000 / u64::from(limit.per_sec.max(1))).max(1);
        let tolerance = interval.saturating_mul(u64::from(limit.burst.max(1)));
        let mut conn = self.conn.clone();
        let mut invocation = self.script.key(format!("{}rl:{key}", self.prefix));
        invocation.arg(interval).arg(tolerance);
        let wait: u64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(if wait == 0 {
            Ok(())
        } else {
            Err(Duration::from_micros(wait * 100))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_nodes_share_one_keys_budget() {
        let Ok(url) = std::env::var("TICKGATE_TEST_REDIS_URL") else {
            eprintln!("skipped: TICKGATE_TEST_REDIS_URL not set");
            return;
        };
        let prefix = format!("tg_test_{}:", crate::httpsig::sign::random_nonce().unwrap());
        let node = || async {
            let client = redis::Client::open(url.as_str()).unwrap();
            let conn = ConnectionManager::new(client).await.unwrap();
            RedisGcra::new(conn, &prefix, Duration::from_secs(2))
        };
        let (a, b) = (node().await, node().await);
        // 1 per second, burst 10: the two nodes together admit 10, not 20.
        let limit = RateLimit {
            per_sec: 1,
            burst: 10,
        };
        let mut admitted = 0;
        for i in 0..40 {
            let node = if i % 2 == 0 { &a } else { &b };
            if node.check("k", limit).await.unwrap().is_ok() {
                admitted += 1;
            }
        }
        assert!((10..=11).contains(&admitted), "{admitted}");
        let wait = a.check("k", limit).await.unwrap().unwrap_err();
        assert!(
            wait > Duration::from_millis(500) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another key has its own budget.
        assert!(b.check("other", limit).await.unwrap().is_ok());
    }

    /// Admission through two key indexes (two nodes) sharing one budget: the (burst+1)th
    /// request is refused `rate_limited` with a wait, on whichever node; a budget that does not
    /// answer refuses `unavailable` (never a local fallback); a synchronous admission with a
    /// shared budget is refused too.
    #[tokio::test]
    async fn admission_spends_the_shared_budget_and_fails_closed() {
        use crate::index::{AuthSettings, KeyIndex, token_hash};
        use crate::scope::Scope;
        use protocol::ErrorCode;
        let Ok(url) = std::env::var("TICKGATE_TEST_REDIS_URL") else {
            eprintln!("skipped: TICKGATE_TEST_REDIS_URL not set");
            return;
        };
        let prefix = format!("tg_test_{}:", crate::httpsig::sign::random_nonce().unwrap());
        let token = crate::token::generate(store::keys::Environment::Test).unwrap();
        let mut record = crate::info::tests_support::record();
        record.token_hash = Some(token_hash(token.expose()));
        record.rate_limit = Some(RateLimit {
            per_sec: 1,
            burst: 4,
        });
        let node = || {
            let (url, prefix, record) = (url.clone(), prefix.clone(), record.clone());
            async move {
                let client = redis::Client::open(url.as_str()).unwrap();
                let conn = ConnectionManager::new(client).await.unwrap();
                let index = KeyIndex::new(AuthSettings {
                    environment: store::keys::Environment::Test,
                    default_rate: record.rate_limit.unwrap(),
                    principal_rates: Default::default(),
                    scope_rates: Default::default(),
                    failure_burst: 10,
                });
                index.upsert(&record);
                index
                    .share_budget(RedisGcra::new(conn, &prefix, Duration::from_secs(2)))
                    .unwrap();
                index
            }
        };
        let (a, b) = (node().await, node().await);
        let check = async |index: &KeyIndex| {
            index
                .authenticate_bearer_async(token.expose(), Some(Scope::MarketRead), None, 0)
                .await
                .map(drop)
                .map_err(|r| (r.code, r.retry_after.is_some()))
        };
        // Burst 4 split over two nodes: 4 admitted in all, the 5th refused with a wait.
        for (i, index) in [&a, &b, &a, &b].into_iter().enumerate() {
            assert_eq!(check(index).await, Ok(()), "request {i}");
        }
        assert_eq!(check(&b).await, Err((ErrorCode::RateLimited, true)));
        assert_eq!(check(&a).await, Err((ErrorCode::RateLimited, true)));
        // A scope-less admission (a WebSocket upgrade) spends no rate, as locally.
        assert!(
            a.authenticate_bearer_async(token.expose(), None, None, 0)
                .await
                .is_ok()
        );
        // The synchronous path cannot consult the shared budget: refused, not admitted.
        let sync = a.authenticate_bearer(token.expose(), Some(Scope::MarketRead), None, 0);
        assert_eq!(sync.unwrap_err().code, ErrorCode::Unavailable);
        // A budget that cannot be reached refuses `unavailable`, naming the key.
        let mut link = crate::test_link::Link::to(&url).await;
        let late = {
            let client = redis::Client::open(link.url.as_str()).unwrap();
            let conn = ConnectionManager::new(client).await.unwrap();
            let index = KeyIndex::new(a.settings().clone());
            index.upsert(&record);
            let gcra = RedisGcra::new(conn, &prefix, Duration::from_millis(300));
            index.share_budget(gcra).unwrap();
            index
        };
        link.cut();
        let refused = late
            .authenticate_bearer_async(token.expose(), Some(Scope::MarketRead), None, 0)
            .await
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::Unavailable);
        assert_eq!(refused.key_id.as_deref(), Some("key_a"));
        assert!(late.shared_budget().unwrap().failures() >= 1);
    }

    /// The cost of one shared check, sequential, on the Redis of TICKGATE_TEST_REDIS_URL:
    /// `TICKGATE_TEST_REDIS_URL=redis://127.0.0.1:6379 cargo test -p auth --lib
    /// bench_shared_check -- --ignored --nocapture`
    #[tokio::test]
    #[ignore = "timing, run by hand"]
    async fn bench_shared_check() {
        let Ok(url) = std::env::var("TICKGATE_TEST_REDIS_URL") else {
            eprintln!("skipped: TICKGATE_TEST_REDIS_URL not set");
            return;
        };
        let prefix = format!("tg_test_{}:", crate::httpsig::sign::random_nonce().unwrap());
        let client = redis::Client::open(url.as_str()).unwrap();
        let conn = ConnectionManager::new(client).await.unwrap();
        let gcra = RedisGcra::new(conn, &prefix, Duration::from_secs(2));
        let limit = RateLimit {
            per_sec: 1_000_000,
            burst: 1_000_000,
        };
        let n = 20_000u32;
        let mut samples = Vec::with_capacity(n as usize);
        for i in 0..n {
            let start = std::time::Instant::now();
            gcra.check(&format!("k{}", i % 100), limit)
                .await
                .unwrap()
                .unwrap();
            samples.push(start.elapsed());
        }
        samples.sort();
        let p = |q: f64| samples[((f64::from(n) - 1.0) * q) as usize];
        println!(
            "shared GCRA check, sequential, {n} checks: p50 {:?}, p99 {:?}, max {:?}",
            p(0.5),
            p(0.99),
            samples[samples.len() - 1]
        );
    }
}
