//! Per-key WebSocket connection and subscription caps counted across every node of a cluster,
//! in Redis, so a key's `ws_max_connections_per_key` holds for the cluster, not per node.
//!
//! Each node process (an *instance*: the node id plus a random suffix per start, so a restarted
//! node never inherits its predecessor's counts) keeps its own count per key in a hash field,
//! and holds a lease it renews every [`RedisWsCaps::heartbeat_every`]:
//!
//! - `P ws:nodes` (sorted set): instance → lease expiry (ms, Redis's clock).
//! - `P ws:k:<key id>` (hash): `<instance>:c` → that instance's open connections of the key,
//!   `<instance>:s` → its channel subscriptions; a Redis TTL of three leases, renewed by every
//!   node that holds some, so an abandoned key's hash goes away.
//!
//! A check (one Lua script, atomic) sums the fields of live instances only and deletes those of
//! instances whose lease ran out: a node killed with `kill -9` stops counting within one lease
//! (5 s in the gateway). The heartbeat also rewrites this instance's fields from the node's own
//! counters (the key index's), so a release that failed (Redis unreachable), or a Redis that
//! lost its data, is corrected within one heartbeat; between two heartbeats a count may be off
//! by the connections opened or closed during one round trip.
//!
//! Every call has a deadline; an error or a miss is [`Unavailable`] (counted in
//! [`RedisWsCaps::failures`]) and the caller refuses the connection or subscription (fail
//! closed: a cap that cannot be counted is not granted).

use crate::index::KeyIndex;
use crate::replay::Unavailable;
use parking_lot::Mutex;
use redis::aio::ConnectionManager;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// KEYS[1] the lease set, KEYS[2] the key's hash; ARGV instance, kind (`c`/`s`), n, max, hash
/// TTL (ms). Returns {1, total} when `n` more fit under `max` (and takes them), else {0, total}.
const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local me, kind = ARGV[1], ARGV[2]
local n, max = tonumber(ARGV[3]), tonumber(ARGV[4])
local fields = redis.call('HGETALL', KEYS[2])
local total = 0
for i = 1, #fields, 2 do
  local inst, k = string.match(fields[i], '^(.+):(%a)$')
  local alive = inst == me
  if inst and not alive then
    local lease = redis.call('ZSCORE', KEYS[1], inst)
    alive = lease and tonumber(lease) >= now
  end
  if not alive then
    redis.call('HDEL', KEYS[2], fields[i])
  elseif k == kind then
    total = total + tonumber(fields[i + 1])
  end
end
if total + n > max then return {0, total} end
redis.call('HINCRBY', KEYS[2], me .. ':' .. kind, n)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return {1, total + n}
";

/// KEYS[1] the key's hash; ARGV the field, n. Never leaves a field at or below zero.
const RELEASE: &str = r"
local v = redis.call('HINCRBY', KEYS[1], ARGV[1], -tonumber(ARGV[2]))
if v <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return v
";

/// KEYS[1] the lease set, KEYS[2..] key hashes; ARGV instance, lease (ms), hash TTL (ms), then
/// (connections, subscriptions) per key hash. Renews the lease, forgets expired instances and
/// sets this instance's fields to the node's own counts.
const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local me = ARGV[1]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), me)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
for i = 2, #KEYS do
  local counts = {c = ARGV[2 * i], s = ARGV[2 * i + 1]}
  for kind, v in pairs(counts) do
    if tonumber(v) > 0 then
      redis.call('HSET', KEYS[i], me .. ':' .. kind, v)
    else
      redis.call('HDEL', KEYS[i], me .. ':' .. kind)
    end
  end
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
end
return 1
";

/// What a cap counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// Open WebSocket sessions of a key.
    Connections,
    /// Channel subscriptions across those sessions.
    Subscriptions,
}

impl Cap {
    fn field(self) -> &'static str {
        match self {
            Self::Connections => "c",
            Self::Subscriptions => "s",
        }
    }
}

/// See the module docs.
pub struct RedisWsCaps {
    conn: ConnectionManager,
    prefix: String,
    instance: String,
    lease: Duration,
    timeout: Duration,
    acquire: redis::Script,
    release: redis::Script,
    heartbeat: redis::Script,
    /// Keys this instance may hold a field of (written since their last heartbeat at zero).
    held: Mutex<BTreeSet<String>>,
    failures: AtomicU64,
    /// When the lease was last renewed (ms since the epoch, this node's clock); 0: never.
    renewed_at: AtomicI64,
}

impl std::fmt::Debug for RedisWsCaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisWsCaps")
            .field("prefix", &self.prefix)
            .field("instance", &self.instance)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    model::Timestamp::now().0.div_euclid(1_000)
}

impl RedisWsCaps {
    /// Over an open connection (shared with the nonce store); keys start with `prefix`. The
    /// instance is `node_id` plus a random suffix. Call [`Self::heartbeat`] once before use,
    /// then run [`Self::run`].
    pub fn new(
        conn: ConnectionManager,
        prefix: &str,
        node_id: &str,
        lease: Duration,
        timeout: Duration,
    ) -> Result<Self, Unavailable> {
        let suffix = crate::token::random_base62(8)
            .map_err(|e| Unavailable(format!("no randomness for the instance id: {e}")))?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            instance: format!("{node_id}.{suffix}"),
            lease,
            timeout,
            acquire: redis::Script::new(ACQUIRE),
            release: redis::Script::new(RELEASE),
            heartbeat: redis::Script::new(HEARTBEAT),
            held: Mutex::default(),
            failures: AtomicU64::new(0),
            renewed_at: AtomicI64::new(0),
        })
    }

    /// Over a connection of its own to `url` (a tool, a test, a node without a nonce store):
    /// see [`Self::new`]. Fails when Redis cannot be reached now.
    pub async fn connect(
        url: &str,
        prefix: &str,
        node_id: &str,
        lease: Duration,
        timeout: Duration,
    ) -> Result<Self, Unavailable> {
        let client = redis::Client::open(url).map_err(|e| Unavailable(e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| Unavailable(e.to_string()))?;
        Self::new(conn, prefix, node_id, lease, timeout)
    }

    /// This process's name in Redis.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// How often [`Self::run`] renews the lease: a fifth of it, so four renewals in a row may
    /// fail before other nodes stop counting this one.
    pub fn heartbeat_every(&self) -> Duration {
        self.lease / 5
    }

    /// Calls that got no answer since start (`/metrics`).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Whether this node's lease is current (renewed within one lease): when it is not, the
    /// other nodes no longer count this node's sessions (`/readyz`).
    pub fn lease_current(&self) -> bool {
        let at = self.renewed_at.load(Ordering::Relaxed);
        at > 0 && now_ms() - at < i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }

    fn nodes(&self) -> String {
        format!("{}ws:nodes", self.prefix)
    }

    fn hash(&self, key_id: &str) -> String {
        format!("{}ws:k:{key_id}", self.prefix)
    }

    fn hash_ttl_ms(&self) -> u64 {
        u64::try_from(self.lease.as_millis())
            .unwrap_or(u64::MAX / 4)
            .saturating_mul(3)
            .max(1)
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, Unavailable> {
        crate::redis_deadline::bounded(self.timeout, &self.failures, call).await
    }

    /// Takes `n` of `key_id`'s `cap` if the cluster-wide total stays within `max`. Ok(false):
    /// the cap is reached (nothing taken).
    pub async fn acquire(
        &self,
        key_id: &str,
        cap: Cap,
        n: u32,
        max: u32,
    ) -> Result<bool, Unavailable> {
        self.held.lock().insert(key_id.to_owned());
        let mut conn = self.conn.clone();
        let mut invocation = self.acquire.key(self.nodes());
        invocation
            .key(self.hash(key_id))
            .arg(&self.instance)
            .arg(cap.field())
            .arg(n)
            .arg(max)
            .arg(self.hash_ttl_ms());
        let (taken, _total): (i64, i64) = self.bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(taken == 1)
    }

    /// Gives back `n` of `key_id`'s `cap`. A failure is corrected by the next heartbeat.
    pub async fn release(&self, key_id: &str, cap: Cap, n: u32) -> Result<(), Unavailable> {
        if n == 0 {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let mut invocation = self.release.key(self.hash(key_id));
        invocation
            .arg(format!("{}:{}", self.instance, cap.field()))
            .arg(n);
        let _: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
        Ok(())
    }

    /// Renews the lease and writes this instance's counts per key: `live` (key id,
    /// connections, subscriptions) from the key index; keys held before and absent from it are
    /// written as zero (their fields deleted).
    pub async fn heartbeat(&self, live: &[(String, u32, u32)]) -> Result<(), Unavailable> {
        let mut rows: Vec<(String, u32, u32)> = live.to_vec();
        let zeroed: Vec<String> = {
            let held = self.held.lock();
            held.iter()
                .filter(|k| !live.iter().any(|(id, _, _)| id == *k))
                .cloned()
                .collect()
        };
        rows.extend(zeroed.iter().map(|k| (k.clone(), 0, 0)));
        let mut invocation = self.heartbeat.key(self.nodes());
        invocation
            .arg(&self.instance)
            .arg(u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX / 4))
            .arg(self.hash_ttl_ms());
        for (id, connections, subscriptions) in &rows {
            invocation
                .key(self.hash(id))
                .arg(connections)
                .arg(subscriptions);
        }
        let mut conn = self.conn.clone();
        let _: i64 = self.bounded(invocation.invoke_async(&mut conn)).await?;
        self.renewed_at.store(now_ms(), Ordering::Relaxed);
        let mut held = self.held.lock();
        for key in zeroed {
            held.remove(&key);
        }
        for (id, _, _) in live {
            held.insert(id.clone());
        }
        Ok(())
    }

    /// Renews the lease every [`Self::heartbeat_every`] from `index`'s live sessions until
    /// `shutdown`; then gives this instance's counts back (best effort: the lease would end
    /// them anyway).
    pub async fn run(self: Arc<Self>, index: Arc<KeyIndex>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.heartbeat_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => break,
            }
            match self.heartbeat(&index.live_sessions()).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("the WebSocket cap lease in Redis is renewed again");
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(error = %error.0, "cannot renew the WebSocket cap lease in Redis");
                }
                Err(_) => {}
            }
        }
        let _ = self.heartbeat(&[]).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_prefix() -> String {
        format!("tg_test_{}:", crate::httpsig::sign::random_nonce().unwrap())
    }

    async fn node(url: &str, prefix: &str, lease: Duration) -> RedisWsCaps {
        let client = redis::Client::open(url).unwrap();
        let conn = ConnectionManager::new(client).await.unwrap();
        let caps = RedisWsCaps::new(conn, prefix, "n", lease, Duration::from_secs(2)).unwrap();
        caps.heartbeat(&[]).await.unwrap();
        caps
    }

    /// The scripts' contract: one total per key and cap across instances, refusals take
    /// nothing, releases give back, and each cap and key is counted apart.
    #[tokio::test]
    async fn two_instances_share_one_cap_per_key() {
        let Ok(url) = std::env::var("TICKGATE_TEST_REDIS_URL") else {
            eprintln!("skipped: TICKGATE_TEST_REDIS_URL not set");
            return;
        };
        let prefix = test_prefix();
        let lease = Duration::from_secs(30);
        let (a, b) = (
            node(&url, &prefix, lease).await,
            node(&url, &prefix, lease).await,
        );
        assert_ne!(a.instance(), b.instance());
        // (node, cap, n, max, admitted)
        let steps: &[(&RedisWsCaps, Cap, u32, u32, bool)] = &[
            (&a, Cap::Connections, 1, 3, true),
            (&b, Cap::Connections, 1, 3, true),
            (&a, Cap::Connections, 1, 3, true),
            (&b, Cap::Connections, 1, 3, false),
            (&a, Cap::Connections, 1, 3, false),
            (&a, Cap::Subscriptions, 5, 6, true),
            (&b, Cap::Subscriptions, 2, 6, false),
            (&b, Cap::Subscriptions, 1, 6, true),
        ];
        for (i, (node, cap, n, max, admitted)) in steps.iter().enumerate() {
            assert_eq!(
                node.acquire("k", *cap, *n, *max).await.unwrap(),
                *admitted,
                "step {i}"
            );
        }
        // Another key has its own count.
        assert!(b.acquire("other", Cap::Connections, 3, 3).await.unwrap());
        // A release on one node makes room for the other.
        a.release("k", Cap::Connections, 1).await.unwrap();
        assert!(b.acquire("k", Cap::Connections, 1, 3).await.unwrap());
        assert!(!a.acquire("k", Cap::Connections, 1, 3).await.unwrap());
        // Releasing more than held never goes below zero.
        b.release("other", Cap::Connections, 10).await.unwrap();
        assert!(a.acquire("other", Cap::Connections, 3, 3).await.unwrap());
    }

    /// A node that dies without releasing (kill -9: no heartbeat, no release) stops counting
    /// once its lease runs out.
    #[tokio::test]
    async fn a_dead_instance_stops_counting_after_its_lease() {
        let Ok(url) = std::env::var("TICKGATE_TEST_REDIS_URL") else {
            eprintln!("skipped: TICKGATE_TEST_REDIS_URL not set");
            return;
        };
        let prefix = test_prefix();
        let dead = node(&url, &prefix, Duration::from_millis(600)).await;
        let live = node(&url, &prefix, Duration::from_secs(30)).await;
        assert!(dead.acquire("k", Cap::Connections, 2, 2).await.unwrap());
        assert!(!live.acquire("k", Cap::Connections, 1, 2).await.unwrap());
        drop(dead);
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(live.acquire("k", Cap::Connections, 2, 2).await.unwrap());
    }

    /// The heartbeat writes the node's own counts: a release lost while Redis was unreachable
    /// is corrected, and a key no longer held is cleared.
    #[tokio::test]
    async fn the_heartbeat_corrects_this_instances_counts() {
        let Ok(url) = std::env::var("TICKGATE_TEST_REDIS_URL") else {
            eprintln!("skipped: TICKGATE_TEST_REDIS_URL not set");
            return;
        };
        let prefix = test_prefix();
        let lease = Duration::from_secs(30);
        let (a, b) = (
            node(&url, &prefix, lease).await,
            node(&url, &prefix, lease).await,
        );
        assert!(a.acquire("k", Cap::Connections, 2, 2).await.unwrap());
        assert!(a.acquire("k", Cap::Subscriptions, 4, 4).await.unwrap());
        // The node really holds 1 connection and 1 subscription (one release was lost).
        a.heartbeat(&[("k".into(), 1, 1)]).await.unwrap();
        assert!(b.acquire("k", Cap::Connections, 1, 2).await.unwrap());
        assert!(b.acquire("k", Cap::Subscriptions, 3, 4).await.unwrap());
        // Then none: the key is written as zero although absent from the live list.
        a.heartbeat(&[]).await.unwrap();
        assert!(b.acquire("k", Cap::Connections, 1, 2).await.unwrap());
        assert!(a.lease_current());
    }

    #[tokio::test]
    async fn a_lost_redis_is_unavailable_and_counted() {
        let Ok(url) = std::env::var("TICKGATE_TEST_REDIS_URL") else {
            eprintln!("skipped: TICKGATE_TEST_REDIS_URL not set");
            return;
        };
        let mut link = crate::test_link::Link::to(&url).await;
        let conn = ConnectionManager::new(redis::Client::open(link.url.as_str()).unwrap())
            .await
            .unwrap();
        let caps = RedisWsCaps::new(
            conn,
            &test_prefix(),
            "n",
            Duration::from_millis(300),
            Duration::from_millis(300),
        )
        .unwrap();
        caps.heartbeat(&[]).await.unwrap();
        assert!(caps.acquire("k", Cap::Connections, 1, 1).await.unwrap());
        link.cut();
        assert!(caps.acquire("k", Cap::Connections, 1, 5).await.is_err());
        assert!(caps.heartbeat(&[]).await.is_err());
        assert_eq!(caps.failures(), 2);
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(!caps.lease_current(), "the lease ran out without renewal");
    }
}
