//! Limits per client address for clients without a key (`[server.anonymous]`), so an open
//! `test` deployment (or the public routes of any) cannot be exhausted by one address:
//!
//! - REST requests and WebSocket upgrades: GCRA (`auth::ratelimit::Gcra`, the per-key limiter's
//!   algorithm) at `requests_per_sec` with a burst of `burst` → `429 rate_limited` with
//!   `Retry-After`;
//! - anonymous WebSocket sessions open at once (`ws_connections_per_ip`) → the upgrade gets
//!   `429 rate_limited`; a session that authenticates with `auth` gives its slot back, since a
//!   keyed client is limited per key, not per address;
//! - channels subscribed across the address's anonymous sessions (`subscriptions_per_ip`) →
//!   `too_many_channels`.
//!
//! The address is the client's (after `server.trusted_proxies`); IPv6 addresses count per /64,
//! which is what one host normally gets. Memory is bounded: at most `max_tracked_addresses`
//! entries in 16 shards; a full shard forgets the idlest of a sample of entries that hold no
//! session (an entry holding sessions is bounded by the sockets it holds). A forgotten address
//! starts again with a full burst.

use crate::config::AnonymousLimits;
use auth::ratelimit::Gcra;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use store::keys::RateLimit;

const SHARDS: usize = 16;
/// Entries looked at to pick one to forget.
const EVICTION_SAMPLE: usize = 32;

#[derive(Debug, Default)]
struct Entry {
    gcra: Gcra,
    sessions: u32,
    subscriptions: u32,
    last_seen: u64,
}

/// Which limit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Requests,
    Sessions,
    Subscriptions,
}

#[derive(Debug)]
pub struct AnonymousLimiter {
    limits: AnonymousLimits,
    shards: Vec<Mutex<HashMap<IpAddr, Entry>>>,
    per_shard: usize,
    origin: Instant,
    refused: [AtomicU64; 3],
    forgotten: AtomicU64,
}

/// The address an entry is kept under: IPv4 (IPv4-mapped included) as is, IPv6 by /64.
pub fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

impl AnonymousLimiter {
    pub fn new(limits: AnonymousLimits) -> Self {
        let per_shard = limits.max_tracked_addresses.div_ceil(SHARDS).max(1);
        Self {
            limits,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard,
            origin: Instant::now(),
            refused: Default::default(),
            forgotten: AtomicU64::new(0),
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn shard(&self, key: &IpAddr) -> &Mutex<HashMap<IpAddr, Entry>> {
        let index = match key {
            IpAddr::V4(v4) => u32::from(*v4) as usize,
            IpAddr::V6(v6) => (u128::from(*v6) >> 64) as usize,
        };
        // Mix the bits so neighbouring addresses spread over the shards.
        let mixed = index.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize) >> 7;
        &self.shards[mixed % SHARDS]
    }

    /// Runs `f` on the entry of `ip`, creating it (and forgetting an idle one) if needed.
    fn with_entry<T>(&self, ip: IpAddr, f: impl FnOnce(&mut Entry, u64) -> T) -> T {
        let key = bucket(ip);
        let now = self.now_ns();
        let mut shard = self.shard(&key).lock();
        if !shard.contains_key(&key) && shard.len() >= self.per_shard {
            let idlest = shard
                .iter()
                .filter(|(_, e)| e.sessions == 0 && e.subscriptions == 0)
                .take(EVICTION_SAMPLE)
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(k, _)| *k);
            if let Some(idlest) = idlest {
                shard.remove(&idlest);
                self.forgotten.fetch_add(1, Ordering::Relaxed);
            }
        }
        let entry = shard.entry(key).or_default();
        entry.last_seen = now;
        f(entry, now)
    }

    fn refuse(&self, limit: Limit) {
        self.refused[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Admits one anonymous REST request (or WebSocket upgrade) from `ip`, or says how long
    /// to wait.
    pub fn check_request(&self, ip: IpAddr) -> Result<(), Duration> {
        if self.limits.requests_per_sec == 0 {
            return Ok(());
        }
        let limit = RateLimit {
            per_sec: self.limits.requests_per_sec,
            burst: self.limits.burst.max(1),
        };
        let result = self.with_entry(ip, |entry, now| entry.gcra.check(now, limit));
        if result.is_err() {
            self.refuse(Limit::Requests);
        }
        result
    }

    /// Takes one anonymous session slot of `ip`; `None` when it has `ws_connections_per_ip`.
    pub fn open_session(self: &Arc<Self>, ip: IpAddr) -> Option<AnonymousSession> {
        let max = self.limits.ws_connections_per_ip;
        let admitted = self.with_entry(ip, |entry, _| {
            if max != 0 && entry.sessions >= max {
                return false;
            }
            entry.sessions += 1;
            true
        });
        if !admitted {
            self.refuse(Limit::Sessions);
            return None;
        }
        Some(AnonymousSession {
            limiter: self.clone(),
            ip,
            subscriptions: 0,
        })
    }

    pub fn limits(&self) -> &AnonymousLimits {
        &self.limits
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Appends this limiter's families to a Prometheus text body.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let name = "tickgate_anonymous_refused_total";
        let _ = writeln!(
            out,
            "# HELP {name} Requests and sessions without a key refused by a per-address limit \
             ([server.anonymous]).\n# TYPE {name} counter"
        );
        for (limit, label) in [
            (Limit::Requests, "requests"),
            (Limit::Sessions, "ws_connections"),
            (Limit::Subscriptions, "subscriptions"),
        ] {
            let value = self.refused[limit as usize].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{limit=\"{label}\"}} {value}");
        }
        for (name, kind, help, value) in [
            (
                "tickgate_anonymous_tracked_addresses",
                "gauge",
                "Client addresses the per-address limits keep state for.",
                self.tracked() as u64,
            ),
            (
                "tickgate_anonymous_forgotten_total",
                "counter",
                "Idle addresses forgotten to stay within server.anonymous.max_tracked_addresses.",
                self.forgotten.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
    }
}

/// The `429 rate_limited` answer to a refused anonymous request (with `Retry-After`).
pub fn refused_response(
    metrics: &crate::metrics::Metrics,
    message: String,
    wait: Option<Duration>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    metrics.count_error(protocol::ErrorCode::RateLimited);
    let mut response =
        crate::api_error::ApiError::new(protocol::ErrorCode::RateLimited, message).into_response();
    let secs = wait.map_or(1, |w| w.as_secs() + u64::from(w.subsec_nanos() > 0));
    if let Ok(value) = axum::http::HeaderValue::from_str(&secs.max(1).to_string()) {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, value);
    }
    response
}

/// One anonymous WebSocket session's hold on its address: a session slot and the channels it
/// subscribed; given back when dropped (session end, or the session authenticating).
#[derive(Debug)]
pub struct AnonymousSession {
    limiter: Arc<AnonymousLimiter>,
    ip: IpAddr,
    subscriptions: u32,
}

impl AnonymousSession {
    /// Takes `n` channel slots of the address; false (nothing taken) beyond the limit.
    pub fn take_subscriptions(&mut self, n: u32) -> bool {
        let max = self.limiter.limits.subscriptions_per_ip;
        let taken = self.limiter.with_entry(self.ip, |entry, _| {
            if max != 0 && entry.subscriptions.saturating_add(n) > max {
                return false;
            }
            entry.subscriptions += n;
            true
        });
        if taken {
            self.subscriptions += n;
        } else {
            self.limiter.refuse(Limit::Subscriptions);
        }
        taken
    }

    /// Gives back `n` channel slots (an unsubscribe).
    pub fn release_subscriptions(&mut self, n: u32) {
        let n = n.min(self.subscriptions);
        self.subscriptions -= n;
        self.limiter.with_entry(self.ip, |entry, _| {
            entry.subscriptions = entry.subscriptions.saturating_sub(n);
        });
    }

    pub fn max_subscriptions(&self) -> u32 {
        self.limiter.limits.subscriptions_per_ip
    }
}

impl Drop for AnonymousSession {
    fn drop(&mut self) {
        let n = self.subscriptions;
        self.limiter.with_entry(self.ip, |entry, _| {
            entry.sessions = entry.sessions.saturating_sub(1);
            entry.subscriptions = entry.subscriptions.saturating_sub(n);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u32, burst: u32, sessions: u32, subs: u32, tracked: usize) -> AnonymousLimits {
        AnonymousLimits {
            requests_per_sec: rate,
            burst,
            ws_connections_per_ip: sessions,
            subscriptions_per_ip: subs,
            max_tracked_addresses: tracked,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn requests_are_limited_per_address() {
        let limiter = AnonymousLimiter::new(limits(10, 5, 0, 0, 1024));
        let a = ip("192.0.2.1");
        assert_eq!(
            (0..20).filter(|_| limiter.check_request(a).is_ok()).count(),
            5
        );
        let wait = limiter.check_request(a).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(
            limiter.check_request(ip("192.0.2.2")).is_ok(),
            "another address"
        );
        // IPv6 counts per /64; IPv4-mapped as IPv4.
        let v6 = AnonymousLimiter::new(limits(10, 2, 0, 0, 1024));
        assert!(v6.check_request(ip("2001:db8::1")).is_ok());
        assert!(v6.check_request(ip("2001:db8::ffff:2")).is_ok());
        assert!(v6.check_request(ip("2001:db8::3")).is_err(), "same /64");
        assert!(
            v6.check_request(ip("2001:db8:0:1::1")).is_ok(),
            "another /64"
        );
        assert!(v6.check_request(ip("::ffff:192.0.2.9")).is_ok());
        assert!(v6.check_request(ip("192.0.2.9")).is_ok());
        assert!(v6.check_request(ip("192.0.2.9")).is_err());
        // 0 turns the limit off.
        let off = AnonymousLimiter::new(limits(0, 0, 0, 0, 16));
        assert!((0..10_000).all(|_| off.check_request(a).is_ok()));
    }

    #[test]
    fn sessions_and_subscriptions_are_held_and_given_back() {
        let limiter = Arc::new(AnonymousLimiter::new(limits(0, 0, 2, 10, 1024)));
        let a = ip("192.0.2.1");
        let mut one = limiter.open_session(a).unwrap();
        let mut two = limiter.open_session(a).unwrap();
        assert!(limiter.open_session(a).is_none());
        assert!(limiter.open_session(ip("192.0.2.2")).is_some());
        assert!(one.take_subscriptions(6));
        assert!(
            !two.take_subscriptions(5),
            "6 + 5 > 10 across the address's sessions"
        );
        assert!(two.take_subscriptions(4));
        one.release_subscriptions(3);
        assert!(two.take_subscriptions(3));
        drop(one);
        assert!(
            two.take_subscriptions(3),
            "the dropped session's channels came back"
        );
        let again = limiter.open_session(a);
        assert!(again.is_some(), "its session slot too");
        drop((two, again));
        let mut fresh = limiter.open_session(a).unwrap();
        assert!(fresh.take_subscriptions(10));
    }

    #[test]
    fn memory_is_bounded_and_busy_addresses_are_kept() {
        let limiter = Arc::new(AnonymousLimiter::new(limits(1, 1, 0, 0, 64)));
        let held = limiter.open_session(ip("10.0.0.1")).unwrap();
        assert!(limiter.check_request(ip("10.0.0.2")).is_ok());
        for i in 0..10_000u32 {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            let _ = limiter.check_request(addr);
        }
        let tracked = limiter.tracked();
        assert!(tracked <= 64 + SHARDS, "{tracked} addresses tracked");
        assert!(limiter.forgotten.load(Ordering::Relaxed) > 9_000);
        // The address holding a session was never forgotten.
        let key = bucket(ip("10.0.0.1"));
        assert_eq!(
            limiter.shard(&key).lock().get(&key).map(|e| e.sessions),
            Some(1)
        );
        drop(held);
    }
}
