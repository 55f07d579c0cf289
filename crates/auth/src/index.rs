//! The in-process key index: what the request path reads to authenticate.
//!
//! It holds every key (a few hundred bytes each) in two hash maps: by token hash and by id.
//! It is the verification cache, and it is kept exact rather than timed out: a change made
//! through this process (admin API) updates it before the response is sent, and a change
//! made by another process (the CLI on the same data directory) is picked up by polling the
//! store's change feed every `poll_interval` (250 ms by default; see `maintenance`). So a
//! revocation takes effect within one poll interval plus the poll's own time, well under the
//! 1 s bound the integration tests check. Time-based transitions (expiry, end of grace) are
//! checked against the clock on every request, so they need no write to take effect.
//!
//! Each key also carries its live state: GCRA rate limiters (one per scope), usage counters
//! drained by the maintenance task, and WebSocket connection/subscription counts.

use crate::ratelimit::Gcra;
use crate::ratelimit_redis::RedisGcra;
pub use crate::rejection::Rejection;
use crate::scope::{Scope, ScopeSet};
use crate::token;
use parking_lot::{Mutex, RwLock};
use protocol::ErrorCode;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use store::audit::NewAuditEvent;
use store::keys::{Environment, KeyKind, KeyRecord, KeyStatus, RateLimit, UsageDelta};
use subtle::ConstantTimeEq;
use tokio::sync::broadcast;

/// SHA-256 of a token: what the store keeps instead of the token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Settings the index applies (from `[auth]`).
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub environment: Environment,
    /// Rate limit of a key with no per-key, per-principal or per-scope limit.
    pub default_rate: RateLimit,
    pub principal_rates: HashMap<String, RateLimit>,
    pub scope_rates: HashMap<Scope, RateLimit>,
    /// Authentication failures of one key within one usage flush that make an audit entry.
    pub failure_burst: u64,
}

/// A key's state as the request path sees it (immutable; replaced on change).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyView {
    pub id: String,
    pub principal: String,
    pub kind: KeyKind,
    pub scopes: ScopeSet,
    pub status: KeyStatus,
    pub grace_until: Option<i64>,
    pub expires_at: Option<i64>,
    /// When the rotation that put this key in grace started.
    pub rotated_at: Option<i64>,
    /// Signed requests: unique nonces or increasing integers (`metadata.nonce_mode`).
    pub nonce_mode: crate::replay::NonceMode,
    /// The addresses the key may be used from (`metadata.allowed_ips`); None: any.
    pub allowed_ips: Option<Vec<crate::ip_allow::Cidr>>,
    /// Rate limit per scope (index: position in [`Scope::ALL`]).
    rates: [RateLimit; 5],
}

impl KeyView {
    /// Why this key cannot be used at `now`, if it cannot.
    pub fn unusable(&self, now: i64) -> Option<Rejection> {
        match self.status {
            KeyStatus::Revoked => Some(Rejection::new(
                ErrorCode::KeyRevoked,
                format!("key {} was revoked", self.id),
            )),
            KeyStatus::Expired => Some(Rejection::new(
                ErrorCode::KeyExpired,
                format!("key {} has expired", self.id),
            )),
            KeyStatus::Suspended => Some(Rejection::new(
                ErrorCode::KeySuspended,
                format!(
                    "key {} is suspended; an operator can resume it (tickgate keys resume)",
                    self.id
                ),
            )),
            _ if self.expires_at.is_some_and(|t| t <= now) => Some(Rejection::new(
                ErrorCode::KeyExpired,
                format!("key {} has expired", self.id),
            )),
            KeyStatus::Grace if self.grace_until.is_some_and(|t| t <= now) => Some(Rejection::new(
                ErrorCode::KeyExpired,
                format!(
                    "key {} was rotated and its grace period is over; use its successor",
                    self.id
                ),
            )),
            _ => None,
        }
    }

    /// When this key stops working, if it is rotating out: the `Sunset` time.
    pub fn sunset(&self) -> Option<i64> {
        (self.status == KeyStatus::Grace)
            .then_some(self.grace_until)
            .flatten()
    }
}

/// Live counters of one key since the last flush.
#[derive(Debug, Default)]
pub struct Usage {
    pub requests: AtomicU64,
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub failures: AtomicU64,
    last_used_at: AtomicI64,
    addrs: Mutex<Addresses>,
}

/// The addresses a key was used from since the last flush (at most
/// [`MAX_ADDRESSES_PER_FLUSH`] distinct ones; more in one interval are not itemized).
#[derive(Debug, Default)]
struct Addresses {
    last: Option<IpAddr>,
    /// (address, requests, last use µs)
    seen: Vec<(IpAddr, u64, i64)>,
}

/// Distinct addresses per key and usage flush written to the store (`key_addresses`).
pub const MAX_ADDRESSES_PER_FLUSH: usize = 32;

impl Usage {
    pub fn touch(&self, now: i64, addr: Option<IpAddr>) {
        self.last_used_at.fetch_max(now, Ordering::Relaxed);
        if let Some(addr) = addr {
            let mut guard = self.addrs.lock();
            let a = &mut *guard;
            a.last = Some(addr);
            let full = a.seen.len() >= MAX_ADDRESSES_PER_FLUSH;
            match a.seen.iter_mut().find(|e| e.0 == addr) {
                Some(e) => {
                    e.1 += 1;
                    e.2 = e.2.max(now);
                }
                None if !full => a.seen.push((addr, 1, now)),
                None => {}
            }
        }
    }
}

/// One key in the index.
#[derive(Debug)]
pub struct KeyEntry {
    view: RwLock<Arc<KeyView>>,
    /// The stored token hash, compared in constant time after the map lookup.
    token_hash: Option<[u8; 32]>,
    /// What verifies this key's signatures (hmac: sealed secret, opened once; ed25519).
    pub(crate) material: crate::material::KeyMaterial,
    pub usage: Usage,
    limiters: [Gcra; 5],
    /// Open WebSocket sessions authenticated with this key.
    pub ws_connections: AtomicU32,
    /// Channel subscriptions across those sessions.
    pub ws_subscriptions: AtomicU32,
}

impl KeyEntry {
    pub fn view(&self) -> Arc<KeyView> {
        self.view.read().clone()
    }

    /// Takes `n` from a counter if it stays within `max`.
    pub fn try_acquire(counter: &AtomicU32, n: u32, max: u32) -> bool {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                c.checked_add(n).filter(|v| *v <= max)
            })
            .is_ok()
    }

    pub fn release(counter: &AtomicU32, n: u32) {
        let _ = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
            Some(c.saturating_sub(n))
        });
    }
}

/// A change of a key's usability, for live sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyEventKind {
    Revoked,
    Expired,
    /// Rotation started: the key stops working at `at`.
    Expiring {
        at: i64,
    },
    /// Rotation cancelled: the key works again without an end.
    Reinstated,
    /// The key lost one or more scopes; sessions re-check what they hold.
    ScopesReduced,
    /// Suspended (reversibly): sessions end like on revocation.
    Suspended,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEvent {
    pub key_id: String,
    pub kind: KeyEventKind,
}

/// A successfully authenticated key.
#[derive(Debug, Clone)]
pub struct KeyPrincipal {
    pub entry: Arc<KeyEntry>,
    pub view: Arc<KeyView>,
}

/// The index. See the module docs.
#[derive(Debug)]
pub struct KeyIndex {
    settings: AuthSettings,
    by_hash: RwLock<HashMap<[u8; 32], Arc<KeyEntry>>>,
    by_id: RwLock<HashMap<String, Arc<KeyEntry>>>,
    events: broadcast::Sender<KeyEvent>,
    origin: Instant,
    /// Failures that name no known key (malformed, unknown, wrong environment).
    unattributed_failures: AtomicU64,
    /// The cluster's rate budget (Redis), once set: every node spends one budget per key and
    /// scope, and the local limiters are not used.
    shared_budget: OnceLock<RedisGcra>,
}

impl KeyIndex {
    pub fn new(settings: AuthSettings) -> Self {
        Self {
            settings,
            by_hash: RwLock::default(),
            by_id: RwLock::default(),
            events: broadcast::channel(1024).0,
            origin: Instant::now(),
            unattributed_failures: AtomicU64::new(0),
            shared_budget: OnceLock::new(),
        }
    }

    /// Keeps rate limits in `gcra` (Redis, one budget for every node) from now on. Set once,
    /// at start, before requests are served; a second call is refused.
    pub fn share_budget(&self, gcra: RedisGcra) -> Result<(), &'static str> {
        self.shared_budget
            .set(gcra)
            .map_err(|_| "the rate budget is already shared")
    }

    /// The cluster's rate budget, if rate limits are shared.
    pub fn shared_budget(&self) -> Option<&RedisGcra> {
        self.shared_budget.get()
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    pub fn subscribe(&self) -> broadcast::Receiver<KeyEvent> {
        self.events.subscribe()
    }

    pub fn len(&self) -> usize {
        self.by_id.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn view_of(&self, r: &KeyRecord) -> KeyView {
        let rates = Scope::ALL.map(|scope| {
            r.rate_limit
                .or_else(|| self.settings.principal_rates.get(&r.principal).copied())
                .or_else(|| self.settings.scope_rates.get(&scope).copied())
                .unwrap_or(self.settings.default_rate)
        });
        KeyView {
            id: r.id.clone(),
            principal: r.principal.clone(),
            kind: r.kind,
            // Unknown names (from a newer version) grant nothing.
            scopes: ScopeSet::of(
                &r.scopes
                    .iter()
                    .filter_map(|s| s.parse().ok())
                    .collect::<Vec<Scope>>(),
            ),
            status: r.status,
            grace_until: r.grace_until,
            expires_at: r.expires_at,
            rotated_at: r.rotated_at,
            nonce_mode: if r.metadata.get("nonce_mode").and_then(|m| m.as_str())
                == Some("monotonic")
            {
                crate::replay::NonceMode::Monotonic
            } else {
                crate::replay::NonceMode::Unique
            },
            // Validated when written; a list that no longer parses (edited in the database by
            // hand) allows nothing rather than everything.
            allowed_ips: match crate::ip_allow::from_metadata(&r.metadata) {
                Ok(list) => list,
                Err(_) => Some(Vec::new()),
            },
            rates,
        }
    }

    /// Inserts or replaces a key, keeping its live counters, and tells sessions when its
    /// usability changed.
    pub fn upsert(&self, record: &KeyRecord) {
        let view = Arc::new(self.view_of(record));
        let existing = self.by_id.read().get(&record.id).cloned();
        let old = match &existing {
            Some(entry) => {
                let old = std::mem::replace(&mut *entry.view.write(), view.clone());
                Some(old)
            }
            None => {
                let entry = Arc::new(KeyEntry {
                    view: RwLock::new(view.clone()),
                    token_hash: record.token_hash,
                    material: crate::material::KeyMaterial::of(record),
                    usage: Usage::default(),
                    limiters: Default::default(),
                    ws_connections: AtomicU32::new(0),
                    ws_subscriptions: AtomicU32::new(0),
                });
                if let Some(hash) = record.token_hash {
                    self.by_hash.write().insert(hash, entry.clone());
                }
                self.by_id.write().insert(record.id.clone(), entry);
                None
            }
        };
        let old_status = old.as_ref().map(|v| v.status);
        let kind = match (old_status, view.status) {
            (Some(KeyStatus::Revoked), KeyStatus::Revoked) => None,
            (_, KeyStatus::Revoked) if old_status.is_some() => Some(KeyEventKind::Revoked),
            (Some(KeyStatus::Expired), KeyStatus::Expired) => None,
            (_, KeyStatus::Expired) if old_status.is_some() => Some(KeyEventKind::Expired),
            (Some(KeyStatus::Active), KeyStatus::Grace) => {
                view.grace_until.map(|at| KeyEventKind::Expiring { at })
            }
            (Some(KeyStatus::Grace), KeyStatus::Active) => Some(KeyEventKind::Reinstated),
            (Some(KeyStatus::Suspended), KeyStatus::Suspended) => None,
            (Some(_), KeyStatus::Suspended) => Some(KeyEventKind::Suspended),
            _ => None,
        };
        let reduced = old
            .as_ref()
            .is_some_and(|o| o.scopes.iter().any(|s| !view.scopes.contains(s)));
        let kind = kind.or(reduced.then_some(KeyEventKind::ScopesReduced));
        if let Some(kind) = kind {
            // No receivers is fine: no live session uses keys.
            let _ = self.events.send(KeyEvent {
                key_id: record.id.clone(),
                kind,
            });
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<KeyEntry>> {
        self.by_id.read().get(id).cloned()
    }

    /// Keys with open WebSocket sessions: (key id, connections, channel subscriptions), by id.
    pub fn live_sessions(&self) -> Vec<(String, u32, u32)> {
        let mut out: Vec<_> = self
            .by_id
            .read()
            .iter()
            .filter_map(|(id, e)| {
                let connections = e.ws_connections.load(Ordering::Relaxed);
                (connections > 0).then(|| {
                    let subscriptions = e.ws_subscriptions.load(Ordering::Relaxed);
                    (id.clone(), connections, subscriptions)
                })
            })
            .collect();
        out.sort();
        out
    }

    pub(crate) fn fail(&self, entry: Option<&KeyEntry>, mut rejection: Rejection) -> Rejection {
        match entry {
            Some(e) => {
                e.usage.failures.fetch_add(1, Ordering::Relaxed);
                rejection.key_id = Some(e.view().id.clone());
            }
            None => {
                self.unattributed_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        rejection
    }

    /// Authenticates a bearer token for a request that needs `scope` (None: any valid key),
    /// counting the request (or the failure) against the key and applying its rate limit.
    pub fn authenticate_bearer(
        &self,
        token: &str,
        scope: Option<Scope>,
        addr: Option<IpAddr>,
        now: i64,
    ) -> Result<KeyPrincipal, Rejection> {
        let (entry, view) = self.bearer_entry(token, now)?;
        self.admit(entry, view, scope, addr, now)
    }

    /// [`Self::authenticate_bearer`] for a node whose rate budget may be shared
    /// ([`Self::share_budget`]): the cluster's budget is awaited after the synchronous checks.
    pub async fn authenticate_bearer_async(
        &self,
        token: &str,
        scope: Option<Scope>,
        addr: Option<IpAddr>,
        now: i64,
    ) -> Result<KeyPrincipal, Rejection> {
        let (entry, view) = self.bearer_entry(token, now)?;
        self.admit_async(entry, view, scope, addr, now).await
    }

    /// The refusal of a bearer token on a route whose `scope` accepts only signed requests,
    /// counted against the key: `insufficient_scope` when the key lacks the scope anyway (so
    /// a client is never told to sign a request that would still be refused),
    /// `signature_required` when signing is all it lacks, or why the token is no key at all.
    pub fn refuse_unsigned_bearer(&self, token: &str, scope: Scope, now: i64) -> Rejection {
        let (entry, view) = match self.bearer_entry(token, now) {
            Ok(found) => found,
            Err(rejection) => return rejection,
        };
        let rejection = if view.scopes.contains(scope) {
            Rejection::new(
                ErrorCode::SignatureRequired,
                "this route needs a signed request (RFC 9421); a bearer token is refused",
            )
        } else {
            Rejection::new(
                ErrorCode::InsufficientScope,
                format!("key {} lacks the scope {scope}", view.id),
            )
        };
        self.fail(Some(&entry), rejection)
    }

    /// The usable bearer key `token` names (failures counted).
    fn bearer_entry(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(Arc<KeyEntry>, Arc<KeyView>), Rejection> {
        let environment = token::parse(token)
            .map_err(|e| self.fail(None, Rejection::new(ErrorCode::MalformedKey, e.to_string())))?;
        if environment != self.settings.environment {
            return Err(self.fail(
                None,
                Rejection::new(
                    ErrorCode::WrongEnvironment,
                    format!(
                        "this is a {environment} key; this deployment accepts {} keys only",
                        self.settings.environment
                    ),
                ),
            ));
        }
        let hash = token_hash(token);
        let entry = self.by_hash.read().get(&hash).cloned();
        // The map already matched the hash; the explicit constant-time comparison keeps the
        // rule "secrets are compared in constant time" true without relying on that argument.
        let entry = entry.filter(|e| {
            e.token_hash
                .is_some_and(|stored| bool::from(stored.ct_eq(&hash)))
        });
        let Some(entry) = entry else {
            return Err(self.fail(None, Rejection::new(ErrorCode::UnknownKey, "no such key")));
        };
        let view = entry.view();
        if view.kind != KeyKind::Bearer {
            return Err(self.fail(
                Some(&entry),
                Rejection::new(
                    ErrorCode::SignatureMissing,
                    format!(
                        "key {} is an {} key: sign requests with it, do not send it",
                        view.id, view.kind
                    ),
                ),
            ));
        }
        if let Some(rejection) = view.unusable(now) {
            return Err(self.fail(Some(&entry), rejection));
        }
        Ok((entry, view))
    }

    pub(crate) fn admit(
        &self,
        entry: Arc<KeyEntry>,
        view: Arc<KeyView>,
        scope: Option<Scope>,
        addr: Option<IpAddr>,
        now: i64,
    ) -> Result<KeyPrincipal, Rejection> {
        // Every refusal here follows a verified credential: it may count against the key.
        let slot = self
            .admit_checks(&entry, &view, scope, addr)
            .map_err(proven)?;
        if let Some((_, scope)) = slot
            && self.shared_budget.get().is_some()
        {
            // Guards the invariant "a shared budget is never replaced by a local one": every
            // request path of the server admits through `admit_async`.
            tracing::error!(key = %view.id, "synchronous admission with a shared rate budget: refused");
            return Err(proven(budget_unavailable(&view, scope)));
        }
        if let Some((slot, scope)) = slot {
            let now_ns = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
            if let Err(wait) = entry.limiters[slot].check(now_ns, view.rates[slot]) {
                let rejection = rate_limited(&view, slot, scope, wait);
                return Err(proven(self.fail(Some(&entry), rejection)));
            }
        }
        Ok(Self::admitted(entry, view, addr, now))
    }

    /// [`Self::admit`] with the rate limit taken from the cluster's budget when it is shared,
    /// awaited after the synchronous checks. A shared budget that does not answer refuses the
    /// request `unavailable` (fail closed; not counted as the key's failure).
    pub(crate) async fn admit_async(
        &self,
        entry: Arc<KeyEntry>,
        view: Arc<KeyView>,
        scope: Option<Scope>,
        addr: Option<IpAddr>,
        now: i64,
    ) -> Result<KeyPrincipal, Rejection> {
        let Some(gcra) = self.shared_budget.get() else {
            return self.admit(entry, view, scope, addr, now);
        };
        let slot = self
            .admit_checks(&entry, &view, scope, addr)
            .map_err(proven)?;
        if let Some((slot, scope)) = slot {
            match gcra
                .check(&format!("{}:{scope}", view.id), view.rates[slot])
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(wait)) => {
                    let rejection = rate_limited(&view, slot, scope, wait);
                    return Err(proven(self.fail(Some(&entry), rejection)));
                }
                Err(error) => {
                    tracing::warn!(error = %error.0, key = %view.id, "request refused: the shared rate limiter is unavailable");
                    return Err(proven(budget_unavailable(&view, scope)));
                }
            }
        }
        Ok(Self::admitted(entry, view, addr, now))
    }

    /// Counts an admitted request against its key.
    fn admitted(
        entry: Arc<KeyEntry>,
        view: Arc<KeyView>,
        addr: Option<IpAddr>,
        now: i64,
    ) -> KeyPrincipal {
        entry.usage.requests.fetch_add(1, Ordering::Relaxed);
        entry.usage.touch(now, addr);
        KeyPrincipal { entry, view }
    }

    /// The synchronous checks (allow-list, scope); the rate-limit slot to charge, if a scope
    /// is asked for.
    fn admit_checks(
        &self,
        entry: &KeyEntry,
        view: &KeyView,
        scope: Option<Scope>,
        addr: Option<IpAddr>,
    ) -> Result<Option<(usize, Scope)>, Rejection> {
        if let Some(allowed) = &view.allowed_ips
            && !addr.is_some_and(|ip| allowed.iter().any(|block| block.contains(ip)))
        {
            let from = addr.map_or_else(|| "an unknown address".to_string(), |a| a.to_string());
            let mut rejection = Rejection::new(
                ErrorCode::IpNotAllowed,
                format!("key {} may not be used from {from}", view.id),
            );
            rejection.key_id = Some(view.id.clone());
            return Err(self.fail(Some(entry), rejection));
        }
        let Some(scope) = scope else {
            return Ok(None);
        };
        if !view.scopes.contains(scope) {
            return Err(self.fail(
                Some(entry),
                Rejection::new(
                    ErrorCode::InsufficientScope,
                    format!("key {} lacks the scope {scope}", view.id),
                ),
            ));
        }
        let slot = Scope::ALL.iter().position(|s| *s == scope).unwrap_or(0);
        Ok(Some((slot, scope)))
    }

    /// Keys whose expiry or grace end has passed but whose stored status does not say so yet.
    pub fn due_expiries(&self, now: i64) -> Vec<String> {
        self.by_id
            .read()
            .values()
            .map(|e| e.view())
            .filter(|v| {
                matches!(v.status, KeyStatus::Active | KeyStatus::Grace)
                    && v.unusable(now).is_some()
            })
            .map(|v| v.id.clone())
            .collect()
    }

    /// Takes the usage counted since the last call, and an audit event for each key (and for
    /// unknown keys together) whose failures reached the burst threshold.
    pub fn drain_usage(&self, now: i64) -> (Vec<UsageDelta>, Vec<NewAuditEvent>) {
        let (deltas, bursts, _) = self.drain_usage_and_addresses(now);
        (deltas, bursts)
    }

    /// [`Self::drain_usage`], and the requests per address of each key since the last call.
    pub fn drain_usage_and_addresses(
        &self,
        now: i64,
    ) -> (
        Vec<UsageDelta>,
        Vec<NewAuditEvent>,
        Vec<store::security::AddressDelta>,
    ) {
        let mut addresses = Vec::new();
        let mut deltas = Vec::new();
        let mut bursts = Vec::new();
        let threshold = self.settings.failure_burst.max(1);
        for (id, entry) in self.by_id.read().iter() {
            let u = &entry.usage;
            let take = |a: &AtomicU64| a.swap(0, Ordering::Relaxed);
            let (requests, messages, bytes, failures) = (
                take(&u.requests),
                take(&u.messages),
                take(&u.bytes),
                take(&u.failures),
            );
            let used_at = u.last_used_at.swap(0, Ordering::Relaxed);
            if requests + messages + bytes + failures == 0 && used_at == 0 {
                continue;
            }
            let addr = {
                let mut a = u.addrs.lock();
                for (ip, requests, at) in a.seen.drain(..) {
                    addresses.push(store::security::AddressDelta {
                        key_id: id.clone(),
                        addr: ip.to_string(),
                        requests,
                        at,
                    });
                }
                a.last.map(|a| a.to_string()).unwrap_or_default()
            };
            deltas.push(UsageDelta {
                key_id: id.clone(),
                at: now,
                requests,
                messages,
                bytes,
                auth_failures: failures,
                last_used: (used_at > 0).then_some((used_at, addr)),
            });
            if failures >= threshold {
                bursts.push(NewAuditEvent {
                    at: now,
                    actor: "system".into(),
                    action: "auth.failure_burst".into(),
                    key_id: Some(id.clone()),
                    detail: serde_json::json!({ "failures": failures }),
                });
            }
        }
        let unknown = self.unattributed_failures.swap(0, Ordering::Relaxed);
        if unknown >= threshold {
            bursts.push(NewAuditEvent {
                at: now,
                actor: "system".into(),
                action: "auth.failure_burst".into(),
                key_id: None,
                detail: serde_json::json!({
                    "failures": unknown,
                    "note": "malformed, unknown or wrong-environment keys",
                }),
            });
        }
        (deltas, bursts, addresses)
    }
}

/// Marks a refusal that follows a verified credential (it may count against the key).
fn proven(mut rejection: Rejection) -> Rejection {
    rejection.proven = true;
    rejection
}

/// The refusal when the cluster's rate budget cannot be consulted: `unavailable`, naming the
/// key (so it is not counted against the client's address) without counting as its failure.
fn budget_unavailable(view: &KeyView, scope: Scope) -> Rejection {
    let mut rejection = Rejection::new(
        ErrorCode::Unavailable,
        format!(
            "the cluster's rate limiter cannot be reached, so requests needing {scope} are \
             refused; retry shortly"
        ),
    );
    rejection.retry_after = Some(std::time::Duration::from_secs(1));
    rejection.key_id = Some(view.id.clone());
    rejection
}

fn rate_limited(view: &KeyView, slot: usize, scope: Scope, wait: std::time::Duration) -> Rejection {
    let limit = view.rates[slot];
    let mut rejection = Rejection::new(
        ErrorCode::RateLimited,
        format!(
            "key {} exceeds {} requests/s (burst {}) for {scope}",
            view.id, limit.per_sec, limit.burst
        ),
    );
    rejection.retry_after = Some(wait);
    rejection
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_resolution_order() {
        let rate = |per_sec| RateLimit { per_sec, burst: 1 };
        let index = KeyIndex::new(AuthSettings {
            environment: Environment::Test,
            default_rate: rate(1),
            principal_rates: [("acme".to_string(), rate(2))].into_iter().collect(),
            scope_rates: [(Scope::KeysAdmin, rate(3))].into_iter().collect(),
            failure_burst: 1,
        });
        let mut r = crate::info::tests_support::record();
        let slot = |s: Scope| Scope::ALL.iter().position(|x| *x == s).unwrap();
        let view = index.view_of(&r);
        assert_eq!(view.rates[slot(Scope::MarketRead)], rate(1));
        assert_eq!(view.rates[slot(Scope::KeysAdmin)], rate(3));
        r.principal = "acme".into();
        assert_eq!(index.view_of(&r).rates[slot(Scope::KeysAdmin)], rate(2));
        r.rate_limit = Some(rate(4));
        assert_eq!(index.view_of(&r).rates[slot(Scope::MarketRead)], rate(4));
    }
}
