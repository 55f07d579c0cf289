//! The key side of a session: `{"op":"auth"}` (token or signature), the first messages of a
//! session authenticated on the upgrade, and key events (revoked, expired, expiring, scopes
//! reduced) while it runs.

use super::{End, Session};
use crate::AppState;
use crate::auth::Principal;
use auth::wscaps_redis::Cap;
use auth::{KeyEntry, KeyEvent, KeyEventKind, KeyPrincipal, Rejection, Scope};
use protocol::{ErrorCode, Login, RequestId, ServerMessage};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use tokio::sync::broadcast;

fn welcome(key: &KeyPrincipal, id: Option<RequestId>) -> ServerMessage {
    ServerMessage::Authenticated {
        id,
        key_id: key.view.id.clone(),
        scopes: key.view.scopes.names(),
        expires_at: key.view.expires_at,
    }
}

fn expiring(key: &KeyPrincipal, at: i64) -> ServerMessage {
    ServerMessage::KeyExpiring {
        key_id: key.view.id.clone(),
        at,
        message: format!(
            "key {} is being rotated out and stops working at {}; reconnect with its successor",
            key.view.id,
            crate::auth::http_date(at)
        ),
    }
}

impl Session {
    /// First messages of a session authenticated on the upgrade request.
    pub(super) async fn announce_key(&mut self) -> Result<(), End> {
        let Some(key) = self.auth.key.clone().filter(|_| self.auth.announce) else {
            return Ok(());
        };
        self.feed_message(&welcome(&key, None)).await?;
        if let Some(at) = key.view.sunset() {
            self.feed_message(&expiring(&key, at)).await?;
        }
        self.flush().await
    }

    /// `{"op":"auth","token":...}` or `{"op":"auth","signature_input":...,"signature":...}`.
    pub(super) async fn on_auth(&mut self, id: Option<RequestId>, login: Login) -> Result<(), End> {
        if self.auth.key.is_some() {
            return self
                .reply_error(ErrorCode::BadRequest, "already authenticated", id, None)
                .await;
        }
        if self.subscription_count() > 0 {
            // Scopes and per-key budgets are checked at subscribe: authenticate first.
            return self
                .reply_error(
                    ErrorCode::BadRequest,
                    "authenticate before subscribing (unsubscribe everything or reconnect)",
                    id,
                    None,
                )
                .await;
        }
        let peer = Some(self.peer.ip());
        let result = match Self::login(&self.state, self.auth.head.as_ref(), &login, peer).await {
            Ok(key) => {
                let state = self.state.clone();
                self.auth.bind(&state, key.clone()).await.map(|()| key)
            }
            Err(rejection) => Err(rejection),
        };
        drop(login);
        match result {
            Ok(key) => {
                self.feed_message(&welcome(&key, id)).await?;
                if let Some(at) = key.view.sunset() {
                    self.feed_message(&expiring(&key, at)).await?;
                }
                self.flush().await
            }
            Err(rejection) => {
                // reply_error counts the code; this adds the per-key count.
                self.state.metrics().count_key_rejection(&rejection);
                self.reply_error(rejection.code, &rejection.message, id, None)
                    .await?;
                Err(End::AuthFailed(rejection.code))
            }
        }
    }

    /// Checks an `auth` op's credential. A signature signs the upgrade request this session
    /// arrived on (`GET`, its authority, path and query); it passes the same replay guard as a
    /// signed REST request, so a captured login cannot be replayed.
    /// (Not a method: the session is not `Sync`, and this future holds its borrows across the
    /// nonce store's await.)
    async fn login(
        state: &AppState,
        head: Option<&crate::ws::auth::UpgradeHead>,
        login: &Login,
        peer: Option<IpAddr>,
    ) -> Result<KeyPrincipal, Rejection> {
        let auth = state.auth();
        match login {
            Login::Token { token } => auth.authenticate_token(token.expose(), peer).await,
            Login::Signature {
                signature_input,
                signature,
            } => {
                let Some(head) = head else {
                    // Unreachable: only sessions bound on the upgrade lack it, and they get
                    // "already authenticated" first.
                    return Err(Rejection::new(
                        ErrorCode::BadRequest,
                        "this connection authenticated on its upgrade request",
                    ));
                };
                let parts = auth::httpsig::RequestParts {
                    method: "GET",
                    scheme: auth.signature_scheme,
                    authority: &head.authority,
                    path: &head.path,
                    query: head.query.as_deref(),
                    headers: &[],
                };
                let request = auth::SignedRequest {
                    signature_input,
                    signature,
                    parts,
                    body: &[],
                };
                match auth.authenticate_signed(&request, None, peer).await? {
                    Principal::Key(key) => Ok(key),
                    Principal::Anonymous => Err(Rejection::new(
                        ErrorCode::MissingCredentials,
                        "the signature did not name a key",
                    )),
                }
            }
        }
    }

    /// Gate for every op but `auth`: a pending session must authenticate first.
    pub(super) async fn require_auth(&mut self, id: Option<RequestId>) -> Result<(), End> {
        if self.auth.deadline.is_some() && self.auth.key.is_none() {
            let code = ErrorCode::MissingCredentials;
            self.reply_error(
                code,
                "authenticate first: send {\"op\":\"auth\",\"token\":\"...\"} or connect with Authorization: Bearer",
                id,
                None,
            )
            .await?;
            return Err(End::AuthFailed(code));
        }
        Ok(())
    }

    /// Checks that this session may subscribe to `new` more channels needing `scopes` (market
    /// data: `market:read`; the `alerts` channel: `alerts:write`) and takes the key's
    /// subscription slots (in the cluster's caps too, when they are shared). Returns an error
    /// to send.
    pub(super) async fn admit_channels(
        &mut self,
        new: u32,
        scopes: &[Scope],
    ) -> Result<(), (ErrorCode, String)> {
        let Some(key) = &self.auth.key else {
            if !scopes
                .iter()
                .all(|s| self.state.auth().anonymous_allows(*s))
            {
                return Err((ErrorCode::MissingCredentials, "authenticate first".into()));
            }
            // Without a key, the channels count against the client's address.
            if let Some(slot) = &mut self.auth.anonymous
                && !slot.take_subscriptions(new)
            {
                return Err((
                    ErrorCode::TooManyChannels,
                    format!(
                        "this address would exceed {} channels across its sessions without a key",
                        slot.max_subscriptions()
                    ),
                ));
            }
            return Ok(());
        };
        let view = key.entry.view();
        if let Some(missing) = scopes.iter().find(|s| !view.scopes.contains(**s)) {
            key.entry.usage.failures.fetch_add(1, Ordering::Relaxed);
            return Err((
                ErrorCode::InsufficientScope,
                format!("key {} lacks the scope {missing}", view.id),
            ));
        }
        let max = self.state.auth().ws_max_subscriptions_per_key;
        let full = || {
            (
                ErrorCode::TooManyChannels,
                format!(
                    "key {} would exceed {max} subscriptions across its connections",
                    view.id
                ),
            )
        };
        if !KeyEntry::try_acquire(&key.entry.ws_subscriptions, new, max) {
            return Err(full());
        }
        // Owned, so no borrow of the session is held across the Redis round trip.
        let (entry, caps) = (key.entry.clone(), self.auth.caps.clone());
        let shared =
            crate::ws::auth::take_shared(caps.as_ref(), &view.id, Cap::Subscriptions, new, max)
                .await;
        match shared {
            Ok(true) => {}
            Ok(false) => {
                KeyEntry::release(&entry.ws_subscriptions, new);
                return Err(full());
            }
            Err(rejection) => {
                KeyEntry::release(&entry.ws_subscriptions, new);
                return Err((rejection.code, rejection.message));
            }
        }
        self.auth.subs_held += new;
        Ok(())
    }

    pub(super) fn release_channels(&mut self, n: u32) {
        if let Some(slot) = &mut self.auth.anonymous {
            slot.release_subscriptions(n);
        }
        if let Some(key) = &self.auth.key {
            let n = n.min(self.auth.subs_held);
            KeyEntry::release(&key.entry.ws_subscriptions, n);
            crate::ws::auth::give_back(self.auth.caps.clone(), &key.view.id, 0, n);
            self.auth.subs_held -= n;
        }
    }

    pub(super) async fn on_key_event(
        &mut self,
        event: Result<KeyEvent, broadcast::error::RecvError>,
    ) -> Result<(), End> {
        let Some(key) = self.auth.key.clone() else {
            return Ok(());
        };
        let kind = match event {
            Ok(event) if event.key_id == key.view.id => event.kind,
            Ok(_) => return Ok(()),
            Err(broadcast::error::RecvError::Lagged(_)) => {
                // Missed events: look at the key itself.
                let view = key.entry.view();
                match view.unusable(model::Timestamp::now().0) {
                    Some(r) if r.code == ErrorCode::KeyRevoked => KeyEventKind::Revoked,
                    Some(r) if r.code == ErrorCode::KeySuspended => KeyEventKind::Suspended,
                    Some(_) => KeyEventKind::Expired,
                    None => return Ok(()),
                }
            }
            Err(broadcast::error::RecvError::Closed) => {
                self.auth.events = None;
                return Ok(());
            }
        };
        match kind {
            KeyEventKind::Revoked => {
                let message = format!("key {} was revoked", key.view.id);
                self.reply_error(ErrorCode::KeyRevoked, &message, None, None)
                    .await?;
                Err(End::KeyRevoked)
            }
            KeyEventKind::Expired => {
                let message = format!("key {} has expired", key.view.id);
                self.reply_error(ErrorCode::KeyExpired, &message, None, None)
                    .await?;
                Err(End::KeyExpired)
            }
            KeyEventKind::Suspended => {
                let message = format!("key {} was suspended", key.view.id);
                self.reply_error(ErrorCode::KeySuspended, &message, None, None)
                    .await?;
                Err(End::AuthFailed(ErrorCode::KeySuspended))
            }
            KeyEventKind::Expiring { at } => self.send_message(&expiring(&key, at)).await,
            KeyEventKind::Reinstated => Ok(()),
            KeyEventKind::ScopesReduced => {
                // A subscription whose scope the key lost ends the session, as at subscribe.
                let view = key.entry.view();
                let Some(lost) = self
                    .subscribed_scopes()
                    .into_iter()
                    .find(|s| !view.scopes.contains(*s))
                else {
                    return Ok(());
                };
                let message = format!("key {} no longer has the scope {lost}", view.id);
                self.reply_error(ErrorCode::InsufficientScope, &message, None, None)
                    .await?;
                Err(End::AuthFailed(ErrorCode::InsufficientScope))
            }
        }
    }

    /// Adds this session's delivered messages and bytes to its key's usage.
    pub(super) fn count_key_usage(&self, messages: u64, bytes: u64) {
        if let Some(key) = &self.auth.key {
            key.entry
                .usage
                .messages
                .fetch_add(messages, Ordering::Relaxed);
            key.entry.usage.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}
