//! Anomaly detection over key usage and authentication failures (`[auth.anomaly]`).
//!
//! Detectors, each over a sliding window (two fixed buckets, weighted: the count of the last
//! `window_secs` seconds, estimated to within one bucket's share):
//!
//! | kind | subject | counts |
//! | --- | --- | --- |
//! | `auth_failures` | IP | failures that prove nothing about a key: unknown or malformed keys, bad signatures, wrong tokens |
//! | `replay_burst` | key | `nonce_reused`, and stale/future/expired signatures **whose signature verified** |
//! | `rate_limit_saturation` | key | `rate_limited` refusals of a verified key |
//! | `usage_spike` | key | requests in a minute above `factor` × the key's own EWMA of past minutes |
//! | `new_network` | key | a use from a /24 (IPv4) or /48 (IPv6) the key was not seen on |
//! | `used_after_rotation` | key | a use of a key rotating out (its successor issued) |
//!
//! **Who can trigger what.** A rule acting on a key (`suspend`) must never fire on failures an
//! attacker can cause without the key's secret: anyone can send requests naming a key id with
//! a bad signature, or a wrong token. So only failures of a request whose credential was
//! proven ([`crate::Rejection::proven`]: the token matched, or the signature verified) count
//! against a key; every other failure counts against the address it came from.
//!
//! **Bounded memory.** At most `max_tracked_keys` keys and `max_tracked_ips` addresses are
//! tracked; when a table is full, the idlest eighth is evicted (counted in
//! [`AnomalyDetector::evictions`]), so a flood of new addresses costs amortized O(1) per
//! address and never grows the table. Each key remembers at most `max_networks_per_key`
//! networks (the idlest is dropped).
//!
//! An anomaly fires once per subject and kind per `cooldown_secs`, as one [`AnomalyEvent`];
//! what becomes of it (metric, audit entry, log line, response) is the caller's (the server's
//! `auth::anomaly`). Time is a parameter (µs since the epoch) throughout.

use crate::rejection::Rejection;
use parking_lot::Mutex;
use protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// What an anomaly is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    AuthFailures,
    ReplayBurst,
    RateLimitSaturation,
    UsageSpike,
    NewNetwork,
    UsedAfterRotation,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 6] = [
        Self::AuthFailures,
        Self::ReplayBurst,
        Self::RateLimitSaturation,
        Self::UsageSpike,
        Self::NewNetwork,
        Self::UsedAfterRotation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthFailures => "auth_failures",
            Self::ReplayBurst => "replay_burst",
            Self::RateLimitSaturation => "rate_limit_saturation",
            Self::UsageSpike => "usage_spike",
            Self::NewNetwork => "new_network",
            Self::UsedAfterRotation => "used_after_rotation",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// The automatic response of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Metric, audit entry, log line only.
    #[default]
    None,
    /// Suspend the key (reversible: `tickgate keys resume`). Key rules only.
    Suspend,
    /// Refuse the address for `block_secs`.
    BlockIp,
}

impl Action {
    /// The config and wire name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Suspend => "suspend",
            Self::BlockIp => "block_ip",
        }
    }
}

/// One detected anomaly.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyEvent {
    pub kind: AnomalyKind,
    pub key_id: Option<String>,
    pub ip: Option<IpAddr>,
    /// Counts and thresholds (never a credential).
    pub detail: serde_json::Value,
    /// The configured response.
    pub action: Action,
}

/// A counting rule: `threshold` events within `window_secs` fire.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CountRule {
    /// 0 disables the rule.
    pub threshold: u64,
    pub window_secs: u64,
    pub action: Action,
}

impl CountRule {
    const fn new(threshold: u64, window_secs: u64) -> Self {
        Self {
            threshold,
            window_secs,
            action: Action::None,
        }
    }
}

impl Default for CountRule {
    fn default() -> Self {
        Self::new(100, 60)
    }
}

/// Usage above a key's own baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpikeRule {
    /// A minute with more than `factor` × the key's EWMA of past minutes fires (0: disabled).
    pub factor: f64,
    /// ... and at least this many requests (small keys do not fire on noise).
    pub min_requests: u64,
    /// Minutes of history before the baseline counts.
    pub warmup_minutes: u32,
    /// EWMA weight of the newest minute (0 < alpha ≤ 1).
    pub alpha: f64,
    pub action: Action,
}

impl Default for SpikeRule {
    fn default() -> Self {
        Self {
            factor: 10.0,
            min_requests: 1_000,
            warmup_minutes: 10,
            alpha: 0.1,
            action: Action::None,
        }
    }
}

/// A rule with no parameters but its response.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventRule {
    pub enabled: bool,
    pub action: Action,
}

impl Default for EventRule {
    fn default() -> Self {
        Self {
            enabled: true,
            action: Action::None,
        }
    }
}

/// `[auth.anomaly]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnomalySettings {
    /// Failures per address that prove nothing about a key (default 50 per 60 s).
    pub auth_failures: CountRule,
    /// Replays and late signatures per verified key (default 10 per 60 s).
    pub replay_burst: CountRule,
    /// Rate-limit refusals per verified key (default 200 per 60 s).
    pub rate_limit_saturation: CountRule,
    pub usage_spike: SpikeRule,
    pub new_network: EventRule,
    pub used_after_rotation: EventRule,
    /// How long `block_ip` refuses an address.
    pub block_secs: u64,
    /// One event per subject and kind per this many seconds.
    pub cooldown_secs: u64,
    pub max_tracked_keys: usize,
    pub max_tracked_ips: usize,
    pub max_networks_per_key: usize,
    /// Alert webhook endpoints (`whe_…`, created with `POST /v1/webhooks`) every anomaly is
    /// delivered to as a signed Standard Webhook (`type` `anomaly.<kind>`). Empty: none.
    pub webhook_endpoints: Vec<String>,
}

impl Default for AnomalySettings {
    fn default() -> Self {
        Self {
            auth_failures: CountRule::new(50, 60),
            replay_burst: CountRule::new(10, 60),
            rate_limit_saturation: CountRule::new(200, 60),
            usage_spike: SpikeRule::default(),
            new_network: EventRule::default(),
            used_after_rotation: EventRule::default(),
            block_secs: 900,
            cooldown_secs: 300,
            max_tracked_keys: 100_000,
            max_tracked_ips: 100_000,
            max_networks_per_key: 16,
            webhook_endpoints: Vec::new(),
        }
    }
}

impl AnomalySettings {
    /// Checks every value; the error names its key (below `auth.anomaly.`).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |key: &str, message: String| Err((format!("auth.anomaly.{key}"), message));
        let range = |key: &str, v: u64, min: u64, max: u64| {
            if (min..=max).contains(&v) {
                Ok(())
            } else {
                err(key, format!("must be between {min} and {max}, got {v}"))
            }
        };
        for (name, rule) in [
            ("auth_failures", &self.auth_failures),
            ("replay_burst", &self.replay_burst),
            ("rate_limit_saturation", &self.rate_limit_saturation),
        ] {
            range(&format!("{name}.threshold"), rule.threshold, 0, 10_000_000)?;
            range(&format!("{name}.window_secs"), rule.window_secs, 1, 86_400)?;
        }
        if self.auth_failures.action == Action::Suspend {
            return err(
                "auth_failures.action",
                "cannot be \"suspend\": these failures name no proven key (they count per \
                 address); use \"block_ip\" or \"none\""
                    .into(),
            );
        }
        let s = &self.usage_spike;
        if !(s.factor == 0.0 || (1.0..=1_000_000.0).contains(&s.factor)) {
            return err(
                "usage_spike.factor",
                format!("must be 0 (off) or between 1 and 1000000, got {}", s.factor),
            );
        }
        if !(s.alpha > 0.0 && s.alpha <= 1.0) {
            return err(
                "usage_spike.alpha",
                format!("must be above 0 and at most 1, got {}", s.alpha),
            );
        }
        range("usage_spike.min_requests", s.min_requests, 1, u64::MAX)?;
        range(
            "usage_spike.warmup_minutes",
            u64::from(s.warmup_minutes),
            1,
            10_080,
        )?;
        range("block_secs", self.block_secs, 1, 30 * 86_400)?;
        range("cooldown_secs", self.cooldown_secs, 1, 86_400)?;
        range(
            "max_tracked_keys",
            self.max_tracked_keys as u64,
            16,
            10_000_000,
        )?;
        range(
            "max_tracked_ips",
            self.max_tracked_ips as u64,
            16,
            10_000_000,
        )?;
        range(
            "max_networks_per_key",
            self.max_networks_per_key as u64,
            1,
            1024,
        )?;
        if self.webhook_endpoints.len() > MAX_WEBHOOK_ENDPOINTS {
            return err(
                "webhook_endpoints",
                format!(
                    "at most {MAX_WEBHOOK_ENDPOINTS} endpoints, got {}",
                    self.webhook_endpoints.len()
                ),
            );
        }
        for (i, id) in self.webhook_endpoints.iter().enumerate() {
            if !is_endpoint_id(id) {
                return err(
                    &format!("webhook_endpoints[{i}]"),
                    format!(
                        "must be a webhook endpoint id (whe_ and 16 letters or digits, as                          POST /v1/webhooks returns it), got {:?}",
                        crate::token::redact(id)
                            .chars()
                            .take(40)
                            .collect::<String>()
                    ),
                );
            }
            if self.webhook_endpoints[..i].contains(id) {
                return err(
                    &format!("webhook_endpoints[{i}]"),
                    format!("{id} is listed twice"),
                );
            }
        }
        Ok(())
    }
}

/// Most operator endpoints anomalies go to.
pub const MAX_WEBHOOK_ENDPOINTS: usize = 16;

/// `whe_` and 16 base62 characters: the shape of the ids `POST /v1/webhooks` creates.
fn is_endpoint_id(id: &str) -> bool {
    id.strip_prefix("whe_")
        .is_some_and(|r| r.len() == 16 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// A sliding-window counter: the current bucket and the previous one, the previous weighted
/// by how much of it still lies in the window.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    bucket: i64,
    current: u64,
    previous: u64,
}

impl Window {
    /// Adds one at `now_secs` and returns the estimated count of the last `width` seconds.
    fn add(&mut self, now_secs: i64, width: u64) -> u64 {
        let width = width.max(1) as i64;
        let bucket = now_secs.div_euclid(width);
        if bucket != self.bucket {
            self.previous = if bucket == self.bucket + 1 {
                self.current
            } else {
                0
            };
            self.current = 0;
            self.bucket = bucket;
        }
        self.current += 1;
        let into = now_secs.rem_euclid(width) as u64;
        let weight = (width as u64 - into) as f64 / width as f64;
        self.current + (self.previous as f64 * weight) as u64
    }
}

/// A table of at most `cap` subjects; the idlest eighth goes when it is full.
#[derive(Debug)]
struct Tracked<K, V> {
    map: HashMap<K, (V, i64)>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V: Default> Tracked<K, V> {
    fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            cap,
        }
    }

    /// The entry of `key` (created, evicting if full) with its last-seen time set to `now`;
    /// adds evictions to `evicted`.
    fn entry<Q>(&mut self, key: &Q, now: i64, evicted: &AtomicU64) -> &mut V
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized + ToOwned<Owned = K>,
    {
        if !self.map.contains_key(key) {
            if self.map.len() >= self.cap {
                let mut seen: Vec<i64> = self.map.values().map(|(_, t)| *t).collect();
                let n = (self.cap / 8).max(1);
                let cut = n.min(seen.len()) - 1;
                let (_, limit, _) = seen.select_nth_unstable(cut);
                let limit = *limit;
                let before = self.map.len();
                let mut left = n;
                self.map.retain(|_, (_, t)| {
                    if left > 0 && *t <= limit {
                        left -= 1;
                        false
                    } else {
                        true
                    }
                });
                evicted.fetch_add((before - self.map.len()) as u64, Ordering::Relaxed);
            }
            self.map.insert(key.to_owned(), (V::default(), now));
        }
        let slot = self.map.get_mut(key).expect("just inserted");
        slot.1 = now;
        &mut slot.0
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// When each kind last fired for a subject (µs; 0: never).
#[derive(Debug, Default)]
struct Fired([i64; 6]);

impl Fired {
    /// Whether `kind` may fire at `now` (and marks it fired).
    fn allow(&mut self, kind: AnomalyKind, now: i64, cooldown_us: i64) -> bool {
        let last = &mut self.0[kind.index()];
        if *last != 0 && now - *last < cooldown_us {
            return false;
        }
        *last = now;
        true
    }
}

#[derive(Debug, Default)]
struct KeyTrack {
    replays: Window,
    rate_limited: Window,
    /// Requests in the current minute, and which minute.
    minute: i64,
    minute_requests: u64,
    /// EWMA of past minutes' requests, and how many minutes it has seen.
    baseline: f64,
    minutes: u32,
    /// Networks the key was used from, with their last use (µs).
    networks: Vec<(Network, i64)>,
    fired: Fired,
}

#[derive(Debug, Default)]
struct IpTrack {
    failures: Window,
    fired: Fired,
}

/// A /24 of IPv4 or a /48 of IPv6 (IPv4-mapped IPv6 counts as IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    V4([u8; 3]),
    V6([u16; 3]),
}

impl Network {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                Self::V4([o[0], o[1], o[2]])
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::of(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Self::V6([s[0], s[1], s[2]])
                }
            },
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::V4([a, b, c]) => write!(f, "{a}.{b}.{c}.0/24"),
            Self::V6([a, b, c]) => write!(f, "{a:x}:{b:x}:{c:x}::/48"),
        }
    }
}

/// The detectors; see the module documentation.
#[derive(Debug)]
pub struct AnomalyDetector {
    settings: AnomalySettings,
    keys: Mutex<Tracked<String, KeyTrack>>,
    ips: Mutex<Tracked<IpAddr, IpTrack>>,
    evictions: AtomicU64,
}

impl AnomalyDetector {
    pub fn new(settings: AnomalySettings) -> Self {
        Self {
            keys: Mutex::new(Tracked::new(settings.max_tracked_keys)),
            ips: Mutex::new(Tracked::new(settings.max_tracked_ips)),
            settings,
            evictions: AtomicU64::new(0),
        }
    }

    pub fn settings(&self) -> &AnomalySettings {
        &self.settings
    }

    /// Subjects evicted from the tables so far.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Keys and addresses tracked now.
    pub fn tracked(&self) -> (usize, usize) {
        (self.keys.lock().len(), self.ips.lock().len())
    }

    fn cooldown(&self) -> i64 {
        i64::try_from(self.settings.cooldown_secs)
            .unwrap_or(i64::MAX / 2_000_000)
            .saturating_mul(1_000_000)
    }

    /// A request by key `key_id` was admitted from `ip` at `now` (µs); `rotating`: the key is
    /// in rotation grace (its successor issued). Returns the anomalies it completes.
    pub fn observe_success(
        &self,
        key_id: &str,
        rotating: bool,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Vec<AnomalyEvent> {
        let mut out = Vec::new();
        let cooldown = self.cooldown();
        let s = &self.settings;
        let mut keys = self.keys.lock();
        let track = keys.entry(key_id, now, &self.evictions);
        let event = |kind, detail, action| AnomalyEvent {
            kind,
            key_id: Some(key_id.to_string()),
            ip,
            detail,
            action,
        };
        // Baseline: close finished minutes into the EWMA, then count this request.
        let minute = now.div_euclid(60_000_000);
        if minute != track.minute {
            if track.minute != 0 {
                let spike = &s.usage_spike;
                // Minutes without requests between the last one and this count as zero.
                let idle = (minute - track.minute - 1).clamp(0, 60) as i32;
                let a = spike.alpha;
                track.baseline = if track.minutes == 0 {
                    track.minute_requests as f64
                } else {
                    track.baseline * (1.0 - a) + a * track.minute_requests as f64
                };
                track.baseline *= (1.0 - a).powi(idle);
                track.minutes = track.minutes.saturating_add(1 + idle as u32);
            }
            track.minute = minute;
            track.minute_requests = 0;
        }
        track.minute_requests += 1;
        let spike = &s.usage_spike;
        if spike.factor > 0.0
            && track.minutes >= spike.warmup_minutes
            && track.minute_requests >= spike.min_requests
            && track.minute_requests as f64 > spike.factor * track.baseline.max(1.0)
            && track.fired.allow(AnomalyKind::UsageSpike, now, cooldown)
        {
            out.push(event(
                AnomalyKind::UsageSpike,
                serde_json::json!({
                    "requests_this_minute": track.minute_requests,
                    "baseline_per_minute": (track.baseline * 10.0).round() / 10.0,
                    "factor": spike.factor,
                }),
                spike.action,
            ));
        }
        if let Some(ip) = ip {
            let net = Network::of(ip);
            match track.networks.iter_mut().find(|(n, _)| *n == net) {
                Some((_, last)) => *last = now,
                None => {
                    let known = track.networks.len();
                    if track.networks.len() >= s.max_networks_per_key
                        && let Some(idlest) =
                            (0..track.networks.len()).min_by_key(|&i| track.networks[i].1)
                    {
                        track.networks.swap_remove(idlest);
                    }
                    track.networks.push((net, now));
                    // The first network a key is seen on is where it lives, not news.
                    if known > 0
                        && s.new_network.enabled
                        && track.fired.allow(AnomalyKind::NewNetwork, now, cooldown)
                    {
                        out.push(event(
                            AnomalyKind::NewNetwork,
                            serde_json::json!({
                                "network": net.to_string(), "known_networks": known,
                            }),
                            s.new_network.action,
                        ));
                    }
                }
            }
        }
        if rotating
            && s.used_after_rotation.enabled
            && track
                .fired
                .allow(AnomalyKind::UsedAfterRotation, now, cooldown)
        {
            out.push(event(
                AnomalyKind::UsedAfterRotation,
                serde_json::json!({
                    "note": "the old secret was used after its successor was issued",
                }),
                s.used_after_rotation.action,
            ));
        }
        out
    }

    /// A request was refused with `rejection` from `ip` at `now` (µs). Failures of a proven
    /// credential count against its key; all others against the address only.
    pub fn observe_failure(
        &self,
        rejection: &Rejection,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Vec<AnomalyEvent> {
        let s = &self.settings;
        let now_secs = now.div_euclid(1_000_000);
        let cooldown = self.cooldown();
        let proven_key = rejection.key_id.as_deref().filter(|_| rejection.proven);
        if let Some(key_id) = proven_key {
            let (kind, rule) = match rejection.code {
                ErrorCode::NonceReused
                | ErrorCode::NonceNotIncreasing
                | ErrorCode::TimestampStale
                | ErrorCode::TimestampFuture
                | ErrorCode::SignatureExpired => (AnomalyKind::ReplayBurst, &s.replay_burst),
                ErrorCode::RateLimited => {
                    (AnomalyKind::RateLimitSaturation, &s.rate_limit_saturation)
                }
                _ => return Vec::new(),
            };
            if rule.threshold == 0 {
                return Vec::new();
            }
            let mut keys = self.keys.lock();
            let track = keys.entry(key_id, now, &self.evictions);
            let window = match kind {
                AnomalyKind::ReplayBurst => &mut track.replays,
                _ => &mut track.rate_limited,
            };
            let count = window.add(now_secs, rule.window_secs);
            if count >= rule.threshold && track.fired.allow(kind, now, cooldown) {
                return vec![AnomalyEvent {
                    kind,
                    key_id: Some(key_id.to_string()),
                    ip,
                    detail: serde_json::json!({
                        "count": count, "window_secs": rule.window_secs,
                        "last_code": rejection.code.as_str(),
                    }),
                    action: rule.action,
                }];
            }
            return Vec::new();
        }
        // Refusals of a proven key that are not attacks (scope, allow-list, status) and
        // refusals of a request that never reached a credential do not count per address.
        let counts = !rejection.proven
            && !matches!(
                rejection.code,
                ErrorCode::MissingCredentials | ErrorCode::RateLimited | ErrorCode::IpBlocked
            );
        let (Some(ip), true) = (ip, counts) else {
            return Vec::new();
        };
        let rule = &s.auth_failures;
        if rule.threshold == 0 {
            return Vec::new();
        }
        let mut ips = self.ips.lock();
        let track = ips.entry(&ip, now, &self.evictions);
        let count = track.failures.add(now_secs, rule.window_secs);
        if count >= rule.threshold && track.fired.allow(AnomalyKind::AuthFailures, now, cooldown) {
            return vec![AnomalyEvent {
                kind: AnomalyKind::AuthFailures,
                key_id: None,
                ip: Some(ip),
                detail: serde_json::json!({
                    "count": count, "window_secs": rule.window_secs,
                    "last_code": rejection.code.as_str(),
                }),
                action: rule.action,
            }];
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000_000_000;
    const SEC: i64 = 1_000_000;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    fn rejection(code: ErrorCode, key: Option<&str>, proven: bool) -> Rejection {
        let mut r = Rejection::new(code, "x");
        r.key_id = key.map(str::to_string);
        r.proven = proven;
        r
    }

    fn small(f: impl FnOnce(&mut AnomalySettings)) -> AnomalyDetector {
        let mut s = AnomalySettings::default();
        f(&mut s);
        s.validate().unwrap();
        AnomalyDetector::new(s)
    }

    #[test]
    fn the_window_counts_the_last_seconds() {
        let mut w = Window::default();
        for i in 0..10 {
            assert_eq!(w.add(1000 + i, 60), i as u64 + 1);
        }
        // Two windows later, everything is gone.
        assert_eq!(w.add(1000 + 200, 60), 1);
    }

    #[test]
    fn unproven_failures_count_per_address_never_per_key() {
        let d = small(|s| {
            s.auth_failures.threshold = 5;
            s.replay_burst.threshold = 2;
            s.replay_burst.action = Action::Suspend;
        });
        let attacker = ip("198.51.100.9");
        let mut fired = Vec::new();
        for (i, code) in [
            ErrorCode::UnknownKey,
            ErrorCode::SignatureInvalid,
            ErrorCode::MalformedKey,
            // A stale signature that did not verify, naming a real key.
            ErrorCode::TimestampStale,
            ErrorCode::NonceReused,
        ]
        .into_iter()
        .enumerate()
        {
            let r = rejection(code, Some("key_victim"), false);
            fired.extend(d.observe_failure(&r, attacker, T + i as i64 * SEC));
        }
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(fired[0].kind, AnomalyKind::AuthFailures);
        assert_eq!(fired[0].key_id, None);
        assert_eq!(fired[0].ip, attacker);
        // Nothing about the key.
        assert_eq!(d.tracked().0, 0);
    }

    #[test]
    fn proven_replays_and_rate_limits_fire_per_key_once_per_cooldown() {
        let d = small(|s| {
            s.replay_burst.threshold = 3;
            s.replay_burst.action = Action::Suspend;
            s.rate_limit_saturation.threshold = 4;
        });
        let from = ip("203.0.113.5");
        let mut fired = Vec::new();
        for i in 0..10 {
            let code = if i % 2 == 0 {
                ErrorCode::NonceReused
            } else {
                ErrorCode::TimestampStale
            };
            fired.extend(d.observe_failure(&rejection(code, Some("key_a"), true), from, T + i));
        }
        assert_eq!(fired.len(), 1, "{fired:?}");
        assert_eq!(
            (fired[0].kind, fired[0].key_id.as_deref(), fired[0].action),
            (AnomalyKind::ReplayBurst, Some("key_a"), Action::Suspend)
        );
        // After the cooldown it can fire again.
        let later = T + 301 * SEC;
        let mut again = Vec::new();
        for i in 0..3 {
            again.extend(d.observe_failure(
                &rejection(ErrorCode::NonceReused, Some("key_a"), true),
                from,
                later + i,
            ));
        }
        assert_eq!(again.len(), 1);
        let mut rate = Vec::new();
        for i in 0..4 {
            rate.extend(d.observe_failure(
                &rejection(ErrorCode::RateLimited, Some("key_b"), true),
                from,
                T + i,
            ));
        }
        assert_eq!(rate[0].kind, AnomalyKind::RateLimitSaturation);
        // A proven key's scope refusal is neither.
        assert!(
            d.observe_failure(
                &rejection(ErrorCode::InsufficientScope, Some("key_c"), true),
                from,
                T
            )
            .is_empty()
        );
    }

    #[test]
    fn a_new_network_fires_but_the_first_and_known_ones_do_not() {
        let d = AnomalyDetector::new(AnomalySettings::default());
        assert!(
            d.observe_success("key_a", false, ip("203.0.113.5"), T)
                .is_empty()
        );
        // Same /24: nothing.
        assert!(
            d.observe_success("key_a", false, ip("203.0.113.77"), T + SEC)
                .is_empty()
        );
        let e = d.observe_success("key_a", false, ip("198.51.100.1"), T + 2 * SEC);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].kind, AnomalyKind::NewNetwork);
        assert_eq!(e[0].detail["network"], "198.51.100.0/24");
        // IPv6 by /48; IPv4-mapped counts as its IPv4 network.
        assert!(
            d.observe_success("key_b", false, ip("2001:db8:1:2::1"), T)
                .is_empty()
        );
        assert!(
            d.observe_success("key_b", false, ip("2001:db8:1:ffff::9"), T)
                .is_empty()
        );
        assert_eq!(
            Network::of("::ffff:203.0.113.5".parse().unwrap()).to_string(),
            "203.0.113.0/24"
        );
        assert_eq!(
            Network::of("2001:db8:1:2::1".parse().unwrap()).to_string(),
            "2001:db8:1::/48"
        );
    }

    #[test]
    fn usage_far_above_the_baseline_fires_after_warmup() {
        let d = small(|s| {
            s.usage_spike.min_requests = 50;
            s.usage_spike.warmup_minutes = 5;
            s.usage_spike.factor = 5.0;
            s.new_network.enabled = false;
        });
        let minute = 60 * SEC;
        // Ten quiet minutes at 10 requests each.
        for m in 0..10 {
            for r in 0..10 {
                assert!(
                    d.observe_success("key_a", false, None, T + m * minute + r)
                        .is_empty()
                );
            }
        }
        // Then a burst: fires once the minute passes 5 × ~10 and 50.
        let mut fired = Vec::new();
        for r in 0..200 {
            fired.extend(d.observe_success("key_a", false, None, T + 10 * minute + r));
        }
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].kind, AnomalyKind::UsageSpike);
        assert_eq!(fired[0].detail["requests_this_minute"], 51);
        // A key without history does not fire on its first busy minute.
        let mut fresh = Vec::new();
        for r in 0..500 {
            fresh.extend(d.observe_success("key_new", false, None, T + r));
        }
        assert!(fresh.is_empty());
    }

    #[test]
    fn use_during_rotation_fires_once_per_cooldown() {
        let d = AnomalyDetector::new(AnomalySettings::default());
        let e = d.observe_success("key_old", true, None, T);
        assert_eq!(e[0].kind, AnomalyKind::UsedAfterRotation);
        assert!(d.observe_success("key_old", true, None, T + SEC).is_empty());
        assert_eq!(
            d.observe_success("key_old", true, None, T + 301 * SEC)
                .len(),
            1
        );
        assert!(d.observe_success("key_new", false, None, T).is_empty());
    }

    #[test]
    fn memory_is_bounded_and_evictions_counted() {
        let d = small(|s| {
            s.max_tracked_ips = 64;
            s.max_tracked_keys = 16;
            s.auth_failures.threshold = 1_000;
        });
        for i in 0..10_000u32 {
            let addr = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            d.observe_failure(
                &rejection(ErrorCode::UnknownKey, None, false),
                Some(addr),
                T + i64::from(i),
            );
            d.observe_success(&format!("key_{i}"), false, None, T + i64::from(i));
        }
        let (keys, ips) = d.tracked();
        assert!(keys <= 16 && ips <= 64, "{keys} {ips}");
        assert!(d.evictions() >= 10_000 - 64 + 10_000 - 16);
        // The busiest (most recent) subject survives an eviction round.
        let recent = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + 9_999));
        assert!(d.ips.lock().map.contains_key(&recent));
    }

    #[test]
    fn settings_are_validated_with_their_key() {
        let mut s = AnomalySettings::default();
        assert_eq!(s.validate(), Ok(()));
        s.auth_failures.action = Action::Suspend;
        assert_eq!(
            s.validate().unwrap_err().0,
            "auth.anomaly.auth_failures.action"
        );
        let mut s = AnomalySettings::default();
        s.replay_burst.window_secs = 0;
        assert_eq!(
            s.validate().unwrap_err().0,
            "auth.anomaly.replay_burst.window_secs"
        );
        let mut s = AnomalySettings::default();
        s.usage_spike.alpha = 0.0;
        assert_eq!(
            s.validate().unwrap_err().0,
            "auth.anomaly.usage_spike.alpha"
        );
        for action in [Action::None, Action::Suspend, Action::BlockIp] {
            assert_eq!(serde_json::to_value(action).unwrap(), action.as_str());
        }
        let s = AnomalySettings {
            max_tracked_ips: 1,
            ..Default::default()
        };
        assert_eq!(s.validate().unwrap_err().0, "auth.anomaly.max_tracked_ips");
        let good = "whe_0123456789abcdEF".to_string();
        let with = |ids: Vec<String>| AnomalySettings {
            webhook_endpoints: ids,
            ..Default::default()
        };
        assert_eq!(with(vec![good.clone()]).validate(), Ok(()));
        for bad in [
            "whe_short",
            "alr_0123456789abcdEF",
            "whe_0123456789abcd-F",
            "",
        ] {
            let (key, message) = with(vec![good.clone(), bad.into()]).validate().unwrap_err();
            assert_eq!(key, "auth.anomaly.webhook_endpoints[1]", "{bad}");
            assert!(message.contains("webhook endpoint id"), "{message}");
        }
        let (key, message) = with(vec![good.clone(), good.clone()])
            .validate()
            .unwrap_err();
        assert_eq!(key, "auth.anomaly.webhook_endpoints[1]");
        assert!(message.contains("twice"), "{message}");
        let many = (0..=MAX_WEBHOOK_ENDPOINTS)
            .map(|i| format!("whe_{i:016}"))
            .collect();
        assert_eq!(
            with(many).validate().unwrap_err().0,
            "auth.anomaly.webhook_endpoints"
        );
        // A credential pasted by mistake is not echoed.
        let token = crate::token::generate(store::keys::Environment::Test)
            .unwrap()
            .expose()
            .to_string();
        let (_, message) = with(vec![token.clone()]).validate().unwrap_err();
        assert!(!message.contains(&token[8..]), "{message}");
    }
}
