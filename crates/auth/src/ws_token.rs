//! Single-use WebSocket tokens (`POST /v1/ws-token`): a short-lived token a browser page can
//! put in the WebSocket URL (`/v1/ws?token=…`) instead of holding a long-lived key. The first
//! connection that presents it consumes it; a second use is `token_used`, a late one
//! `token_expired`.
//!
//! Only the SHA-256 of a token is kept. A used or expired token is remembered until one more
//! TTL has passed (so a second use gets `token_used`, not `unknown_key`), then dropped on the
//! next issue: memory is bounded by the tokens issued in the last two TTLs, which the
//! per-key rate limit of the issuing route bounds.

use crate::index::{KeyIndex, KeyPrincipal, Rejection, token_hash};
use crate::scope::Scope;
use parking_lot::Mutex;
use protocol::ErrorCode;
use std::collections::HashMap;
use std::net::IpAddr;
use subtle::ConstantTimeEq;

/// Prefix of WebSocket tokens (they are not API keys: `tgws_` + 43 base62 characters).
pub const PREFIX: &str = "tgws_";

#[derive(Debug)]
struct Issued {
    key_id: String,
    hash: [u8; 32],
    expires_at: i64,
    used: bool,
}

/// The token store. Times in µs since the epoch.
#[derive(Debug)]
pub struct WsTokens {
    ttl_micros: i64,
    tokens: Mutex<HashMap<[u8; 32], Issued>>,
}

impl WsTokens {
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl_micros: i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX),
            tokens: Mutex::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.tokens.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Issues a token for `key_id`; returns it and its expiry.
    pub fn issue(&self, key_id: &str, now: i64) -> Result<(String, i64), getrandom::Error> {
        let token = format!("{PREFIX}{}", crate::token::random_base62(43)?);
        let hash = token_hash(&token);
        let expires_at = now + self.ttl_micros;
        let mut tokens = self.tokens.lock();
        let keep_until = now - self.ttl_micros;
        tokens.retain(|_, t| t.expires_at > keep_until);
        tokens.insert(
            hash,
            Issued {
                key_id: key_id.into(),
                hash,
                expires_at,
                used: false,
            },
        );
        Ok((token, expires_at))
    }

    /// Consumes `token`: the key it was issued for, then the key's usual checks.
    pub fn consume(
        &self,
        index: &KeyIndex,
        token: &str,
        addr: Option<IpAddr>,
        now: i64,
    ) -> Result<KeyPrincipal, Rejection> {
        let hash = token_hash(token);
        let key_id = {
            let mut tokens = self.tokens.lock();
            let entry = tokens
                .get_mut(&hash)
                .filter(|t| bool::from(t.hash.ct_eq(&hash)));
            let Some(entry) = entry else {
                return Err(Rejection::new(ErrorCode::UnknownKey, "no such token"));
            };
            if entry.used {
                return Err(Rejection::new(
                    ErrorCode::TokenUsed,
                    "this WebSocket token was already used; request a new one",
                ));
            }
            if entry.expires_at <= now {
                return Err(Rejection::new(
                    ErrorCode::TokenExpired,
                    "this WebSocket token has expired; request a new one",
                ));
            }
            entry.used = true;
            entry.key_id.clone()
        };
        index.authenticate_id(&key_id, None, addr, now)
    }
}

impl KeyIndex {
    /// Authenticates the key `key_id` (already proven by other means, e.g. a single-use
    /// WebSocket token): status, scope, rate limit and usage, as for a bearer token.
    pub fn authenticate_id(
        &self,
        key_id: &str,
        scope: Option<Scope>,
        addr: Option<IpAddr>,
        now: i64,
    ) -> Result<KeyPrincipal, Rejection> {
        let Some(entry) = self.get(key_id) else {
            return Err(self.fail(None, Rejection::new(ErrorCode::UnknownKey, "no such key")));
        };
        let view = entry.view();
        if let Some(rejection) = view.unusable(now) {
            return Err(self.fail(Some(&entry), rejection));
        }
        self.admit(entry, view, scope, addr, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::AuthSettings;
    use store::keys::{Environment, RateLimit};

    #[test]
    fn single_use_and_expiry() {
        let index = KeyIndex::new(AuthSettings {
            environment: Environment::Test,
            default_rate: RateLimit {
                per_sec: 100,
                burst: 100,
            },
            principal_rates: Default::default(),
            scope_rates: Default::default(),
            failure_burst: 10,
        });
        index.upsert(&crate::info::tests_support::record());
        let tokens = WsTokens::new(std::time::Duration::from_secs(30));
        let now = 1_000_000_000;
        let (t, expires) = tokens.issue("key_a", now).unwrap();
        assert!(t.starts_with(PREFIX) && t.len() == PREFIX.len() + 43);
        assert_eq!(expires, now + 30_000_000);
        let code =
            |r: Result<KeyPrincipal, Rejection>| r.map(|k| k.view.id.clone()).map_err(|e| e.code);
        assert_eq!(
            code(tokens.consume(&index, &t, None, now + 1)),
            Ok("key_a".into())
        );
        assert_eq!(
            code(tokens.consume(&index, &t, None, now + 2)),
            Err(ErrorCode::TokenUsed)
        );
        let (late, _) = tokens.issue("key_a", now).unwrap();
        assert_eq!(
            code(tokens.consume(&index, &late, None, now + 30_000_000)),
            Err(ErrorCode::TokenExpired)
        );
        assert_eq!(
            code(tokens.consume(&index, "tgws_nope", None, now)),
            Err(ErrorCode::UnknownKey)
        );
        // Tokens of a key that no longer exists, or is revoked, do not authenticate.
        let (orphan, _) = tokens.issue("key_gone", now).unwrap();
        assert_eq!(
            code(tokens.consume(&index, &orphan, None, now)),
            Err(ErrorCode::UnknownKey)
        );
        // Old tokens are dropped two TTLs after issue.
        assert_eq!(tokens.len(), 3);
        tokens.issue("key_a", now + 61_000_000).unwrap();
        assert_eq!(tokens.len(), 1);
    }
}
