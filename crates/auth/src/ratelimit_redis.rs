//! GCRA (see [`crate::ratelimit`]) kept in Redis, so every gateway node spends one budget per
//! key. One Lua script per check: read the theoretical arrival time, admit or refuse, write it
//! back, atomically in Redis, on Redis's own clock (`TIME`), so node clocks do not matter.
//!
//! Times are in units of 100 µs since the epoch (about 1.7·10¹³: exact in Lua's doubles and in
//! their 14-digit text form, where µs would not be).
//!
//! Not wired into the request path yet: the key index's admission is synchronous (issue 12).

use crate::replay::Unavailable;
use redis::aio::ConnectionManager;
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
        }
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
        let wait: u64 =
            match tokio::time::timeout(self.timeout, invocation.invoke_async(&mut conn)).await {
                Ok(result) => result.map_err(|e| Unavailable(e.to_string()))?,
                Err(_) => return Err(Unavailable("no answer in time".into())),
            };
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
}
