//! Authentication at the API edge: who is calling, and may they do this?
//!
//! - [`AuthState`]: the key index (the verification cache), the lifecycle service, and the
//!   `[auth]` settings, shared by REST, WebSocket and admin handlers.
//! - `layer`: the middleware that guards each REST route with the scope it needs.
//! - `signed`: reading an RFC 9421 signed request (REST or WebSocket upgrade), once.
//! - `admin`: the admin API under `/admin/v1/`.
//!
//! Credentials are read in [`AuthState::authenticate`] (bearer) and
//! [`AuthState::authenticate_signed`] (RFC 9421, called by `signed::verify_signed` for REST
//! requests and WebSocket upgrades that carry `Signature`/`Signature-Input`);
//! `ws_token_route` is `POST /v1/ws-token`, which issues single-use WebSocket tokens (the
//! auth crate's `auth::ws_token` keeps them).

pub(crate) mod admin;
pub mod anomaly;
pub(crate) mod layer;
pub(crate) mod signed;
pub(crate) mod ws_token_route;

use auth::replay::{MemoryNonceStore, ReplayGuard, Window};
use auth::{KeyIndex, KeyPrincipal, KeyService, Rejection, Scope, SignedRequest};
use axum::http::HeaderMap;
use protocol::ErrorCode;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use store::audit::NewAuditEvent;
use tokio::sync::mpsc;

/// Who a request is from.
#[derive(Debug, Clone)]
pub enum Principal {
    /// No key, where `[auth] required = false` allows it (public market data only).
    Anonymous,
    Key(KeyPrincipal),
}

/// Shared authentication state.
#[derive(Debug)]
pub struct AuthState {
    pub index: Arc<KeyIndex>,
    pub service: KeyService,
    pub required: bool,
    pub public_metrics: bool,
    pub ws_auth_timeout: Duration,
    pub ws_max_connections_per_key: u32,
    pub ws_max_subscriptions_per_key: u32,
    /// Timestamp window and nonce store of signed requests.
    pub replay: ReplayGuard,
    /// Scopes that refuse bearer tokens: only signed requests pass.
    pub signature_required: Vec<Scope>,
    /// The scheme signatures are verified with (`[auth] signature_scheme`).
    pub signature_scheme: &'static str,
    /// `[auth] authorities`, lowercased; empty: any.
    pub authorities: Vec<String>,
    /// Single-use WebSocket tokens (`POST /v1/ws-token`).
    pub ws_tokens: auth::ws_token::WsTokens,
    /// Anomaly detectors, their responses and the IP block cache (`[auth.anomaly]`).
    pub anomaly: Arc<anomaly::Anomalies>,
    /// Per-key WebSocket caps counted across the cluster (`[cluster] redis_url`); None: the
    /// key index's counters of this process are the caps.
    pub ws_caps: Option<Arc<auth::wscaps_redis::RedisWsCaps>>,
    /// The shared nonce store, when it is Redis (its failure count, for `/metrics`).
    pub redis_nonces: Option<auth::replay::RedisNonceStore>,
    /// The key store's backend and how other nodes' key changes arrive (`crate::stores`).
    pub key_store: Arc<crate::stores::KeyStoreStatus>,
    audit: mpsc::Sender<NewAuditEvent>,
}

impl AuthState {
    pub fn new(
        index: Arc<KeyIndex>,
        service: KeyService,
        config: &crate::config::AuthConfig,
        audit: mpsc::Sender<NewAuditEvent>,
    ) -> Self {
        Self {
            index,
            service,
            required: config.is_required(),
            public_metrics: config.is_metrics_public(),
            ws_auth_timeout: Duration::from_secs(config.ws_auth_timeout_secs),
            ws_max_connections_per_key: config.ws_max_connections_per_key,
            ws_max_subscriptions_per_key: config.ws_max_subscriptions_per_key,
            replay: ReplayGuard::new(
                // Validated with the config; the default is the documented fallback.
                Window::new(config.signature_past_secs, config.signature_future_secs)
                    .unwrap_or_default(),
                Arc::new(MemoryNonceStore::with_key_share(
                    usize::try_from(config.nonce_capacity).unwrap_or(usize::MAX),
                    usize::try_from(config.nonce_capacity_per_key).unwrap_or(usize::MAX),
                )),
            ),
            signature_required: config
                .signature_required_scopes
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
            signature_scheme: if config.signature_scheme == "https" {
                "https"
            } else {
                "http"
            },
            authorities: config
                .authorities
                .iter()
                .map(|a| a.to_ascii_lowercase())
                .collect(),
            ws_tokens: auth::ws_token::WsTokens::new(Duration::from_secs(config.ws_token_ttl_secs)),
            anomaly: Arc::new(anomaly::Anomalies::new(config.anomaly.clone())),
            ws_caps: None,
            redis_nonces: None,
            key_store: Arc::new(crate::stores::KeyStoreStatus::new(
                crate::stores::Backend::Sqlite,
            )),
            audit,
        }
    }

    /// Appends `tickgate_cluster_redis_failures_total{use}` to a Prometheus text body, when
    /// this node shares its security state in Redis: calls that got no answer in time (each
    /// refused a request or a session `unavailable`, or missed a heartbeat).
    pub fn render_redis(&self, out: &mut String) {
        use std::fmt::Write;
        let Some(caps) = &self.ws_caps else { return };
        let name = "tickgate_cluster_redis_failures_total";
        let _ = writeln!(
            out,
            "# HELP {name} Redis calls that failed or missed cluster.redis_timeout_ms, by use \
             (fail closed: the request or session was refused unavailable).\n# TYPE {name} counter"
        );
        let uses = [
            (
                "nonces",
                self.redis_nonces.as_ref().map_or(0, |s| s.failures()),
            ),
            (
                "rate_limits",
                self.index.shared_budget().map_or(0, |g| g.failures()),
            ),
            ("ws_caps", caps.failures()),
        ];
        for (what, n) in uses {
            let _ = writeln!(out, "{name}{{use=\"{what}\"}} {n}");
        }
    }

    /// May an anonymous caller use `scope`?
    pub fn anonymous_allows(&self, scope: Scope) -> bool {
        !self.required && matches!(scope, Scope::MarketRead | Scope::HistoryRead)
    }

    /// Authenticates a request needing `scope` (None: any valid key, e.g. a WS upgrade whose
    /// channels are checked one by one). A blocked address is refused first (`ip_blocked`).
    /// Async: with a cluster's shared rate budget the key's limit is checked in Redis.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        scope: Option<Scope>,
        addr: Option<IpAddr>,
    ) -> Result<Principal, Rejection> {
        let now = model::Timestamp::now().0;
        self.anomaly.check_blocked(addr, now)?;
        match bearer(headers).inspect_err(|r| self.observe_failure(r, addr, now))? {
            Some(token) if let Some(s) = scope.filter(|s| self.signature_required.contains(s)) => {
                let rejection = self.index.refuse_unsigned_bearer(token, s, now);
                self.observe_failure(&rejection, addr, now);
                Err(rejection)
            }
            Some(token) => {
                let result = self
                    .index
                    .authenticate_bearer_async(token, scope, addr, now)
                    .await;
                self.observe(result, addr, now)
                    .map(Principal::Key)
                    .inspect_err(|rejection| self.audit_security(rejection, addr))
            }
            None if scope.is_none_or(|s| self.anonymous_allows(s)) && !self.required => {
                Ok(Principal::Anonymous)
            }
            None => Err(Rejection::new(
                ErrorCode::MissingCredentials,
                "this needs an API key: send Authorization: Bearer <key>",
            )),
        }
    }

    /// Authenticates a bearer token sent in a WebSocket `auth` message (any valid key).
    pub async fn authenticate_token(
        &self,
        token: &str,
        addr: Option<IpAddr>,
    ) -> Result<KeyPrincipal, Rejection> {
        let now = model::Timestamp::now().0;
        self.anomaly.check_blocked(addr, now)?;
        let result = self
            .index
            .authenticate_bearer_async(token, None, addr, now)
            .await;
        self.observe(result, addr, now)
    }

    /// Authenticates a signed request (RFC 9421) needing `scope`.
    pub async fn authenticate_signed(
        &self,
        request: &SignedRequest<'_>,
        scope: Option<Scope>,
        addr: Option<IpAddr>,
    ) -> Result<Principal, Rejection> {
        let now = model::Timestamp::now().0;
        self.anomaly.check_blocked(addr, now)?;
        let authority = request.parts.authority;
        if !self.authorities.is_empty()
            && !self
                .authorities
                .iter()
                .any(|a| a.eq_ignore_ascii_case(authority))
        {
            let rejection = Rejection::new(
                ErrorCode::WrongAuthority,
                "the request was signed for a name this gateway does not serve (@authority / \
                 Host): sign for one of its [auth] authorities",
            );
            self.observe_failure(&rejection, addr, now);
            return Err(rejection);
        }
        let result = self
            .index
            .authenticate_signed(request, &self.replay, self.service.ring(), scope, addr, now)
            .await;
        self.observe(result, addr, now)
            .map(Principal::Key)
            .inspect_err(|rejection| self.audit_security(rejection, addr))
    }

    /// Feeds an authentication outcome to the anomaly detectors and acts on what they find.
    fn observe(
        &self,
        result: Result<KeyPrincipal, Rejection>,
        addr: Option<IpAddr>,
        now: i64,
    ) -> Result<KeyPrincipal, Rejection> {
        let events = match &result {
            Ok(key) => self.anomaly.detector.observe_success(
                &key.view.id,
                key.view.status == store::keys::KeyStatus::Grace,
                addr,
                now,
            ),
            Err(rejection) => self.anomaly.detector.observe_failure(rejection, addr, now),
        };
        if !events.is_empty() {
            anomaly::handle(
                &self.anomaly,
                events,
                &self.service,
                &self.index,
                &self.audit,
            );
        }
        result
    }

    fn observe_failure(&self, rejection: &Rejection, addr: Option<IpAddr>, now: i64) {
        let events = self.anomaly.detector.observe_failure(rejection, addr, now);
        if !events.is_empty() {
            anomaly::handle(
                &self.anomaly,
                events,
                &self.service,
                &self.index,
                &self.audit,
            );
        }
    }

    /// Writes a security refusal to the audit log (aggregated per second and address by the
    /// audit writer, so a flood makes one entry with a count): a refused replay
    /// (`auth.replay_refused`) or a key used from an address outside its allow-list
    /// (`auth.ip_refused`). The key is the one the rejection names (a nonce is checked only
    /// after the signature verified with a known key, so the headers are not parsed again).
    pub fn audit_security(&self, rejection: &Rejection, addr: Option<IpAddr>) {
        let action = match rejection.code {
            ErrorCode::NonceReused => "auth.replay_refused",
            ErrorCode::IpNotAllowed => "auth.ip_refused",
            _ => return,
        };
        let event = NewAuditEvent {
            at: model::Timestamp::now().0,
            actor: addr.map_or_else(|| "unknown".into(), |a| a.to_string()),
            action: action.into(),
            key_id: rejection.key_id.clone(),
            detail: serde_json::json!({ "code": rejection.code.as_str(), "count": 1 }),
        };
        if self.audit.try_send(event).is_err() {
            tracing::warn!(
                action,
                "audit queue full: a security refusal was not recorded"
            );
        }
    }

    /// Records a failed admin authentication in the audit log (aggregated per second).
    pub fn audit_admin_failure(&self, code: ErrorCode, addr: Option<IpAddr>) {
        let event = NewAuditEvent {
            at: model::Timestamp::now().0,
            actor: addr.map_or_else(|| "unknown".into(), |a| a.to_string()),
            action: "admin.auth_failed".into(),
            key_id: None,
            detail: serde_json::json!({ "code": code.as_str(), "count": 1 }),
        };
        if self.audit.try_send(event).is_err() {
            tracing::warn!("audit queue full: an admin authentication failure was not recorded");
        }
    }
}

/// The bearer token of `Authorization: Bearer <token>`, if the header is present.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Rejection> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| {
        Rejection::new(
            ErrorCode::MalformedKey,
            "the Authorization header is not ASCII",
        )
    })?;
    match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(Rejection::new(
            ErrorCode::MissingCredentials,
            "use Authorization: Bearer <key>",
        )),
    }
}

/// Writes queued audit events, merging identical admin failures within one second into one
/// entry with a count, so a flood of bad admin requests cannot flood the log.
pub async fn run_audit_writer(service: KeyService, mut rx: mpsc::Receiver<NewAuditEvent>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        tokio::time::sleep(Duration::from_secs(1)).await;
        while let Ok(event) = rx.try_recv() {
            batch.push(event);
        }
        let mut merged: BTreeMap<(String, String, String), NewAuditEvent> = BTreeMap::new();
        for event in batch {
            let code = event.detail["code"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let key = (event.action.clone(), event.actor.clone(), code);
            match merged.get_mut(&key) {
                Some(existing) => {
                    let n = existing.detail["count"].as_u64().unwrap_or(1) + 1;
                    existing.detail["count"] = n.into();
                }
                None => {
                    merged.insert(key, event);
                }
            }
        }
        let events: Vec<_> = merged.into_values().collect();
        let audit = service.audit().clone();
        match tokio::task::spawn_blocking(move || audit.append(&events)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(error = %error, "cannot write audit events"),
            Err(error) => tracing::error!(error = %error, "audit writer panicked"),
        }
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 IMF-fixdate) for µs since the epoch.
pub fn http_date(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(
            http_date(784_111_777_000_000),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(951_782_400_000_000),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
    }

    #[test]
    fn bearer_header_parsing() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers).unwrap(), None);
        headers.insert("authorization", "Bearer tg_test_x".parse().unwrap());
        assert_eq!(bearer(&headers).unwrap(), Some("tg_test_x"));
        headers.insert("authorization", "Basic dXNlcg==".parse().unwrap());
        assert_eq!(
            bearer(&headers).unwrap_err().code,
            ErrorCode::MissingCredentials
        );
    }
}
