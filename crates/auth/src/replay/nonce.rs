//! In-process nonce stores: the [`NonceStore`] trait and its in-memory implementation.
//!
//! # Memory bound of [`MemoryNonceStore`]
//!
//! An entry `(key, nonce)` is kept until its `expires_at` (the replay guard passes the
//! signature's `created` + the past window: after that, a replay of the same request is
//! refused as stale anyway). Since `created` is at most `future` seconds ahead of the clock,
//! no entry outlives `past + future` seconds. Entries are indexed by a hash map and grouped in
//! per-second buckets by expiry, so expired ones are dropped in order, a bucket at a time, on
//! the next insert: at any moment the store holds at most the nonces accepted in the last
//! `past + future + 1` seconds, i.e. `Σ over keys (rate limit/s × (past + future + 1) + burst)`.
//! A hard cap (`capacity`) bounds it regardless of rate limits: when full, new nonces are
//! refused ([`Recorded::Full`]) rather than old ones forgotten early, so the cap can never
//! open a replay window. Each key also has its own share (`per_key`): a key holding that many
//! live nonces gets [`Recorded::KeyFull`] for its next ones, so no single key can fill the
//! store for the others. (The signed path records a nonce only after the key's rate limit
//! admitted the request, so a key normally holds at most `rate × (past + future + 1) + burst`.)
//! A key's nonces all live in one shard, which keeps its count local to that shard's lock.
//!
//! Entries are not the key and nonce text but a 128-bit fingerprint of the pair under two
//! random SipHash keys chosen at start: no allocation per request, and about 40 bytes per
//! entry (16 in the map's slot plus its control byte and load-factor slack, 16 in the expiry
//! bucket). Two distinct pairs share a fingerprint with probability about n²/2¹²⁹ (n = live
//! entries; below 10⁻²⁶ for a million), and the keys are secret, so nobody can aim for a
//! collision; and a collision could only refuse a fresh nonce as `nonce_reused`, never accept
//! a replay.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The outcome of recording a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Fresh,
    Reused,
    NotIncreasing,
    /// The store is at capacity and refuses new nonces until entries expire.
    Full,
    /// This key holds its whole share of the store; its new nonces are refused until some of
    /// its entries expire (other keys are not affected).
    KeyFull,
}

/// Where accepted nonces are remembered, in this process (synchronous: answered inline). A
/// store shared by several gateway processes is a [`super::SharedNonceStore`]; both are
/// checked by [`super::shared::contract`].
pub trait NonceStore: Send + Sync + std::fmt::Debug {
    /// Records `(key, nonce)` until `expires_at` (seconds) unless it is already recorded and
    /// not expired at `now`. Atomic: of two concurrent calls with one pair, one is `Fresh`.
    fn record(&self, key: &str, nonce: &str, expires_at: i64, now: i64) -> Recorded;
    /// Whether `(key, nonce)` is recorded and not expired at `now`, without recording it (the
    /// signed path checks this before spending the key's rate limit, and records after).
    fn seen(&self, key: &str, nonce: &str, now: i64) -> bool;
    /// Monotonic mode: records `value` if it is greater than the last one of `key`.
    fn record_increasing(&self, key: &str, value: u64) -> Recorded;
    /// Monotonic mode: the last value recorded for `key`, without recording anything.
    fn last_increasing(&self, key: &str) -> Option<u64>;
    /// Entries currently held (for the memory bound and metrics).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A fingerprint is already uniformly random: the map uses its low 64 bits as the hash.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used; fold anything else in case.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

#[derive(Debug, Default)]
struct Shard {
    /// fingerprint of (key, nonce) → expiry (seconds).
    entries: HashMap<u128, i64, BuildHasherDefault<Prehashed>>,
    /// expiry second → the entries expiring then, with their key's fingerprint.
    buckets: BTreeMap<i64, Vec<(u128, u64)>>,
    /// key fingerprint → live entries of that key.
    per_key: HashMap<u64, usize, BuildHasherDefault<Prehashed>>,
}

impl Shard {
    /// Drops expired entries; returns how many.
    fn prune(&mut self, now: i64) -> usize {
        let mut dropped = 0;
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() >= now {
                break;
            }
            for (id, key) in entry.remove() {
                if self.entries.remove(&id).is_some() {
                    dropped += 1;
                    if let Some(count) = self.per_key.get_mut(&key) {
                        *count -= 1;
                        if *count == 0 {
                            self.per_key.remove(&key);
                        }
                    }
                }
            }
        }
        dropped
    }
}

const SHARDS: usize = 16;

/// The in-memory store: 16 shards, each a map plus expiry buckets. See the module docs.
#[derive(Debug)]
pub struct MemoryNonceStore {
    shards: [Mutex<Shard>; SHARDS],
    /// Two independent SipHash keys: the fingerprint's high and low halves.
    hashers: [RandomState; 2],
    capacity: usize,
    per_key: usize,
    /// Live entries over all shards (checked against `capacity`).
    held: AtomicUsize,
    last: Mutex<HashMap<Box<str>, u64>>,
}

impl MemoryNonceStore {
    /// A store holding at most `capacity` live nonces, any key up to all of them.
    pub fn new(capacity: usize) -> Self {
        Self::with_key_share(capacity, capacity)
    }

    /// A store holding at most `capacity` live nonces, and at most `per_key` of one key.
    pub fn with_key_share(capacity: usize, per_key: usize) -> Self {
        Self {
            shards: Default::default(),
            hashers: [RandomState::new(), RandomState::new()],
            capacity: capacity.max(1),
            per_key: per_key.clamp(1, capacity.max(1)),
            held: AtomicUsize::new(0),
            last: Mutex::default(),
        }
    }

    /// (fingerprint of the pair, fingerprint of the key, shard index).
    fn locate(&self, key: &str, nonce: &str) -> (u128, u64, usize) {
        // `str` hashing ends each string with a terminator, so ("a","bc") ≠ ("ab","c").
        let [high, low] = &self.hashers;
        let id = (u128::from(high.hash_one((key, nonce))) << 64)
            | u128::from(low.hash_one((key, nonce)));
        let key_fp = low.hash_one(key);
        // The shard from the key (bits the maps do not use as their hash), so a key's count
        // lives in one shard.
        (id, key_fp, (key_fp >> 58) as usize % SHARDS)
    }
}

impl NonceStore for MemoryNonceStore {
    fn record(&self, key: &str, nonce: &str, expires_at: i64, now: i64) -> Recorded {
        let (id, key_fp, shard) = self.locate(key, nonce);
        let mut shard = self.shards[shard].lock();
        let dropped = shard.prune(now);
        if dropped > 0 {
            self.held.fetch_sub(dropped, Ordering::Relaxed);
        }
        if shard.entries.get(&id).is_some_and(|e| *e >= now) {
            return Recorded::Reused;
        }
        if shard.per_key.get(&key_fp).copied().unwrap_or(0) >= self.per_key {
            return Recorded::KeyFull;
        }
        if self.held.load(Ordering::Relaxed) >= self.capacity {
            return Recorded::Full;
        }
        if shard.entries.insert(id, expires_at).is_none() {
            self.held.fetch_add(1, Ordering::Relaxed);
            *shard.per_key.entry(key_fp).or_default() += 1;
        }
        shard
            .buckets
            .entry(expires_at)
            .or_default()
            .push((id, key_fp));
        Recorded::Fresh
    }

    fn seen(&self, key: &str, nonce: &str, now: i64) -> bool {
        let (id, _, shard) = self.locate(key, nonce);
        self.shards[shard]
            .lock()
            .entries
            .get(&id)
            .is_some_and(|e| *e >= now)
    }

    fn record_increasing(&self, key: &str, value: u64) -> Recorded {
        let mut last = self.last.lock();
        match last.get_mut(key) {
            Some(prev) if value <= *prev => Recorded::NotIncreasing,
            Some(prev) => {
                *prev = value;
                Recorded::Fresh
            }
            None => {
                last.insert(key.into(), value);
                Recorded::Fresh
            }
        }
    }

    fn last_increasing(&self, key: &str) -> Option<u64> {
        self.last.lock().get(key).copied()
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().entries.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_meets_the_contract() {
        crate::replay::shared::contract(&crate::replay::Immediate(MemoryNonceStore::new(1000)))
            .await;
    }

    #[test]
    fn memory_stays_within_its_bound_under_a_stream_of_unique_nonces() {
        // 50 keys × 100 nonces/s for 10 minutes of (paused) clock, window 30 s + 5 s.
        let (past, future, rate, keys) = (30i64, 5i64, 100usize, 50usize);
        let store = MemoryNonceStore::new(1_000_000);
        let bound = keys * rate * (past + future + 1) as usize;
        let mut max = 0;
        let mut n = 0u64;
        for now in 1_000..1_600i64 {
            for k in 0..keys {
                for i in 0..rate {
                    // created anywhere in the window; expiry = created + past.
                    let created = now - past + ((n as i64 + i as i64) % (past + future + 1));
                    n += 1;
                    let r = store.record(&format!("key{k}"), &n.to_string(), created + past, now);
                    assert_eq!(r, Recorded::Fresh);
                }
            }
            max = max.max(store.len());
        }
        assert!(max <= bound, "held {max} > bound {bound}");
        // And it really forgets: far in the future an insert in each shard prunes it (a key's
        // nonces share a shard, so many keys reach them all).
        for i in 0..10_000 {
            store.record(&format!("x{i}"), "n", 10_000, 5_000);
        }
        assert_eq!(store.len(), 10_000);
    }

    #[test]
    fn one_key_cannot_take_another_keys_share() {
        let store = MemoryNonceStore::with_key_share(1000, 10);
        for i in 0..10 {
            assert_eq!(
                store.record("greedy", &i.to_string(), 100, 10),
                Recorded::Fresh
            );
        }
        for i in 10..500 {
            assert_eq!(
                store.record("greedy", &i.to_string(), 100, 10),
                Recorded::KeyFull
            );
        }
        assert_eq!(store.len(), 10, "refused nonces take no room");
        for key in 0..50 {
            assert_eq!(
                store.record(&format!("other{key}"), "n", 100, 10),
                Recorded::Fresh
            );
        }
        // Its share frees as its entries expire, and the global count follows.
        assert_eq!(store.record("greedy", "later", 300, 101), Recorded::Fresh);
        assert_eq!(store.held.load(Ordering::Relaxed), store.len());
    }

    #[test]
    fn a_full_store_refuses_rather_than_forgets() {
        let store = MemoryNonceStore::new(SHARDS);
        let mut fresh = Vec::new();
        for i in 0..200 {
            if store.record("k", &i.to_string(), 100, 10) == Recorded::Fresh {
                fresh.push(i);
            }
        }
        assert!(fresh.len() <= SHARDS);
        assert!(store.len() <= SHARDS);
        for i in fresh {
            assert_eq!(store.record("k", &i.to_string(), 100, 11), Recorded::Reused);
        }
    }
}
