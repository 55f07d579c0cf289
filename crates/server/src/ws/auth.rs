//! The session's key.
//!
//! A session is anonymous (only when `[auth] required = false`), pending (auth required, not
//! yet authenticated: the first message must be `auth`, within `ws_auth_timeout_secs`), or
//! bound to one key. A bound session holds one of its key's connection slots and one
//! subscription slot per channel, released when it ends. It listens to the key index's events:
//! revoked → `error key_revoked` and close 4003; expired (end of grace or expiry) → `error
//! key_expired` and close 4004; rotation started → a `key_expiring` notice with the end time;
//! `market:read` removed while subscribed → `error insufficient_scope` and close 4002.
//!
//! In a cluster (`[cluster] redis_url`) the key's slots are also taken in Redis
//! (`auth::wscaps_redis`), so the caps hold across nodes: the local counter is taken first (a
//! node never exceeds the cap alone), then the cluster's. A Redis that does not answer refuses
//! the connection or subscription `unavailable` (fail closed); slots are given back in the
//! background, and a give-back that fails is corrected by the node's next heartbeat.

use crate::auth::Principal;
use crate::auth::signed;
use crate::state::AppState;
use auth::wscaps_redis::{Cap, RedisWsCaps};
use auth::{KeyEntry, KeyEvent, KeyPrincipal, Rejection};
use axum::http::{HeaderMap, Method, Uri};
use protocol::ErrorCode;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct SessionAuth {
    pub key: Option<KeyPrincipal>,
    /// Set while the session must still authenticate.
    pub deadline: Option<Instant>,
    pub(super) events: Option<super::recv::OwnedRecv<KeyEvent>>,
    /// Subscription slots held on the key.
    pub subs_held: u32,
    /// Whether the upgrade request carried the key (an `authenticated` message is sent first).
    pub announce: bool,
    /// The upgrade request's target, which a signed `auth` op signs; kept only by sessions
    /// that did not authenticate on the upgrade (the others never send `auth`).
    pub(super) head: Option<UpgradeHead>,
    /// The client address's anonymous session slot and channels (`server::per_ip`), held
    /// while the session has no key.
    pub anonymous: Option<crate::per_ip::AnonymousSession>,
    /// Held while the session must still authenticate (`server.max_pending_upgrades`).
    pub pending: Option<super::limiter::PendingUpgrade>,
    /// The cluster's caps this session's slots were taken in, if they are shared.
    pub(super) caps: Option<Arc<RedisWsCaps>>,
}

/// What a signed `auth` op covers: the upgrade request (`GET`, its authority, path, query).
#[derive(Debug)]
pub(super) struct UpgradeHead {
    pub(super) authority: String,
    pub(super) path: String,
    pub(super) query: Option<String>,
}

impl SessionAuth {
    /// From the upgrade request's `Authorization` header or RFC 9421 signature, or a
    /// single-use `token` from the URL (`POST /v1/ws-token`).
    pub async fn from_upgrade(
        state: &AppState,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        token: Option<&str>,
        peer: SocketAddr,
    ) -> Result<Self, Rejection> {
        let auth = state.auth();
        // An address blocked by an anomaly rule gets no session, not even an anonymous one.
        auth.anomaly
            .check_blocked(Some(peer.ip()), model::Timestamp::now().0)?;
        let deadline = auth.required.then(|| Instant::now() + auth.ws_auth_timeout);
        let mut session = Self {
            key: None,
            deadline,
            events: None,
            subs_held: 0,
            announce: false,
            head: None,
            anonymous: None,
            pending: None,
            caps: None,
        };
        if signed::is_signed(headers) {
            if token.is_some() || crate::auth::bearer(headers)?.is_some() {
                return Err(Rejection::new(
                    ErrorCode::BadRequest,
                    "send one credential: a signature, a bearer token or a ?token=",
                ));
            }
            let principal =
                signed::verify_signed(auth, method, uri, headers, &[], None, Some(peer.ip()))
                    .await?;
            if let Principal::Key(key) = principal {
                session.bind(state, key).await?;
                session.announce = true;
            }
            return Ok(session);
        }
        if let Some(token) = token {
            let key = auth
                .ws_tokens
                .consume(
                    &auth.index,
                    token,
                    Some(peer.ip()),
                    model::Timestamp::now().0,
                )
                .inspect_err(|rejection| auth.audit_security(rejection, Some(peer.ip())))?;
            session.bind(state, key).await?;
            session.announce = true;
            return Ok(session);
        }
        if crate::auth::bearer(headers)?.is_none() {
            session.head = Some(UpgradeHead {
                authority: signed::authority(uri, headers).to_string(),
                path: uri.path().to_string(),
                query: uri.query().map(str::to_string),
            });
            return Ok(session);
        }
        if let Principal::Key(key) = auth.authenticate(headers, None, Some(peer.ip())).await? {
            session.bind(state, key).await?;
            session.announce = true;
        }
        Ok(session)
    }

    pub(super) async fn bind(
        &mut self,
        state: &AppState,
        key: KeyPrincipal,
    ) -> Result<(), Rejection> {
        let max = state.auth().ws_max_connections_per_key;
        let full = || {
            Rejection::new(
                ErrorCode::RateLimited,
                format!("key {} already has {max} open connections", key.view.id),
            )
        };
        if !KeyEntry::try_acquire(&key.entry.ws_connections, 1, max) {
            return Err(full());
        }
        let caps = state.auth().ws_caps.clone();
        if let Err(refused) = take_shared(caps.as_ref(), &key.view.id, Cap::Connections, 1, max)
            .await
            .and_then(|taken| if taken { Ok(()) } else { Err(full()) })
        {
            KeyEntry::release(&key.entry.ws_connections, 1);
            return Err(refused);
        }
        self.caps = caps;
        self.events = Some(super::recv::OwnedRecv::new(state.auth().index.subscribe()));
        self.deadline = None;
        // Limited per key from now on, not per address; no longer in progress.
        self.anonymous = None;
        self.pending = None;
        self.key = Some(key);
        Ok(())
    }

    /// Releases the key's slots (session end).
    pub fn release(&mut self) {
        self.anonymous = None;
        self.pending = None;
        if let Some(key) = self.key.take() {
            KeyEntry::release(&key.entry.ws_connections, 1);
            KeyEntry::release(&key.entry.ws_subscriptions, self.subs_held);
            give_back(self.caps.take(), &key.view.id, 1, self.subs_held);
            self.subs_held = 0;
        }
    }

    /// The next key event (pends forever for sessions without a key).
    pub async fn next_event(&mut self) -> Result<KeyEvent, broadcast::error::RecvError> {
        match &mut self.events {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }
}

/// Takes `n` of `key_id`'s `cap` in the cluster's caps (`true`: taken, `false`: the cap is
/// reached); `true` at once when the caps are this node's alone. Redis not answering is the
/// refusal `unavailable`.
pub(super) async fn take_shared(
    caps: Option<&Arc<RedisWsCaps>>,
    key_id: &str,
    cap: Cap,
    n: u32,
    max: u32,
) -> Result<bool, Rejection> {
    let Some(caps) = caps else {
        return Ok(true);
    };
    caps.acquire(key_id, cap, n, max).await.map_err(|error| {
        tracing::warn!(error = %error.0, key = key_id, "WebSocket cap refused: Redis is unavailable");
        let mut rejection = Rejection::new(
            ErrorCode::Unavailable,
            "the cluster's connection and subscription counts cannot be reached; retry shortly",
        );
        rejection.retry_after = Some(std::time::Duration::from_secs(1));
        rejection.key_id = Some(key_id.to_string());
        rejection
    })
}

/// Gives `connections` and `subscriptions` of `key_id` back to the cluster's caps, in the
/// background (the session is ending or unsubscribing and does not wait). A failure is
/// corrected by this node's next heartbeat, which writes its own counts.
pub(super) fn give_back(
    caps: Option<Arc<RedisWsCaps>>,
    key_id: &str,
    connections: u32,
    subscriptions: u32,
) {
    let Some(caps) = caps else { return };
    let key_id = key_id.to_string();
    tokio::spawn(async move {
        for (cap, n) in [
            (Cap::Connections, connections),
            (Cap::Subscriptions, subscriptions),
        ] {
            if let Err(error) = caps.release(&key_id, cap, n).await {
                tracing::debug!(error = %error.0, key = %key_id, "WebSocket cap give-back failed; the heartbeat corrects it");
            }
        }
    });
}
