//! The dashboard's login session: a stateless cookie signed by the gateway.
//!
//! `v1.<key id>.<expires>.<nonce>.<mac>`: the key the browser proved once (a bearer token or a
//! signed login request), when the session ends (Unix seconds), 16 random bytes and an
//! HMAC-SHA256 of everything before it under the session key. Nothing is stored per session:
//! any gateway with the same session key accepts it (cluster mode), and the key it names is
//! checked against the live key index on every use, so a revocation, expiry, end of grace or
//! lost scope applies at once. The cookie holds no secret of the key, only its public id.
//!
//! The session key is derived from the current master key (`tickgate-ui-session-v1`), so
//! every node sharing the master key shares it and it survives restarts; without a master key
//! (a `test` deployment) it is random per process, and a restart logs everyone out. Rotating
//! the master key ends every session.
//!
//! The CSRF token is a second MAC over the session's nonce (a different label, so neither can
//! stand in for the other): the page reads it from `GET /ui/api/session` (same-origin only:
//! no CORS) and sends it in `X-CSRF-Token` on every cookie-authenticated POST.

use auth::httpsig::{sign_hmac_sha256, verify_hmac_sha256};
use auth::secret::SecretKey32;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use protocol::ErrorCode;
use std::fmt;
use subtle::ConstantTimeEq;

/// The cookie's name. Its `Path` is `/ui/`, so it never reaches `/v1` or `/admin` routes.
pub const COOKIE: &str = "tg_ui";
/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// What the session key is derived for.
pub const LABEL: &str = "tickgate-ui-session-v1";
const VERSION: &str = "v1";
const NONCE_BYTES: usize = 16;
/// HMAC-SHA256 output: the only MAC length a cookie of ours carries.
const MAC_BYTES: usize = 32;

/// A verified session: the key it was issued to and when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub key_id: String,
    /// Unix seconds.
    pub expires: i64,
    nonce: String,
}

/// Why a cookie was refused (`session_invalid`; the message says which, never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionError(pub &'static str);

impl SessionError {
    pub fn code(&self) -> ErrorCode {
        ErrorCode::SessionInvalid
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The session key. `Debug` prints `REDACTED`.
pub struct SessionKeys {
    key: SecretKey32,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKeys(REDACTED)")
    }
}

fn valid_key_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl SessionKeys {
    pub fn new(key: SecretKey32) -> Self {
        Self { key }
    }

    fn mac(&self, text: &str) -> String {
        B64.encode(sign_hmac_sha256(self.key.expose(), text.as_bytes()))
    }

    /// A cookie value for `key_id`, valid until `expires` (Unix seconds).
    pub fn mint(&self, key_id: &str, expires: i64) -> Result<(String, Session), SessionError> {
        if !valid_key_id(key_id) {
            return Err(SessionError("not a key id"));
        }
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|_| SessionError("no randomness for a session"))?;
        let nonce = B64.encode(nonce);
        let body = format!("{VERSION}.{key_id}.{expires}.{nonce}");
        let value = format!("{body}.{}", self.mac(&body));
        let session = Session {
            key_id: key_id.to_string(),
            expires,
            nonce,
        };
        Ok((value, session))
    }

    /// Checks a cookie value's shape, signature and expiry at `now` (Unix seconds).
    pub fn verify(&self, value: &str, now: i64) -> Result<Session, SessionError> {
        let malformed = SessionError("the session cookie is malformed; log in again");
        if value.len() > 256 {
            return Err(malformed);
        }
        let Some((body, mac)) = value.rsplit_once('.') else {
            return Err(malformed);
        };
        let parts: Vec<&str> = body.split('.').collect();
        let [version, key_id, expires, nonce] = parts[..] else {
            return Err(malformed);
        };
        let nonce_ok = B64.decode(nonce).is_ok_and(|n| n.len() == NONCE_BYTES);
        let expires = expires
            .parse::<i64>()
            .ok()
            .filter(|_| expires.bytes().all(|b| b.is_ascii_digit()));
        let (Some(expires), true, true, true) =
            (expires, version == VERSION, valid_key_id(key_id), nonce_ok)
        else {
            return Err(malformed);
        };
        // A MAC of any other length is not one of ours (a truncated cookie can still decode:
        // 42 base64 characters are 31 bytes when the dropped bits were zero).
        let Some(mac) = B64.decode(mac).ok().filter(|m| m.len() == MAC_BYTES) else {
            return Err(malformed);
        };
        if !verify_hmac_sha256(self.key.expose(), body.as_bytes(), &mac) {
            return Err(SessionError(
                "the session cookie's signature does not verify; log in again",
            ));
        }
        if expires <= now {
            return Err(SessionError("the session has ended; log in again"));
        }
        Ok(Session {
            key_id: key_id.to_string(),
            expires,
            nonce: nonce.to_string(),
        })
    }

    /// The CSRF token of `session`.
    pub fn csrf(&self, session: &Session) -> String {
        self.mac(&format!("csrf.{}", session.nonce))
    }

    /// Whether `token` is `session`'s CSRF token (constant time).
    pub fn csrf_matches(&self, session: &Session, token: &str) -> bool {
        bool::from(self.csrf(session).as_bytes().ct_eq(token.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(byte: u8) -> SessionKeys {
        SessionKeys::new(SecretKey32::from_bytes([byte; 32]))
    }

    #[test]
    fn a_minted_cookie_verifies_until_it_expires() {
        let k = keys(1);
        let (value, session) = k.mint("key_abc", 1_000).unwrap();
        assert!(!value.contains("tg_test_"), "{value}");
        assert_eq!(k.verify(&value, 999).unwrap(), session);
        assert_eq!(session.key_id, "key_abc");
        assert_eq!(
            k.verify(&value, 1_000).unwrap_err().0,
            "the session has ended; log in again"
        );
        // Two logins of the same key are two sessions.
        let (other, _) = k.mint("key_abc", 1_000).unwrap();
        assert_ne!(value, other);
    }

    /// `value` with the MAC's first character replaced (same length, another MAC).
    fn flip_mac_char(value: &str) -> String {
        let at = value.rfind('.').unwrap() + 1;
        let mut bytes = value.as_bytes().to_vec();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn tampered_or_foreign_cookies_are_refused() {
        let k = keys(1);
        let (value, _) = k.mint("key_abc", 1_000).unwrap();
        let bad_sig = "the session cookie's signature does not verify; log in again";
        let malformed = "the session cookie is malformed; log in again";
        // Another gateway's session key.
        assert_eq!(keys(2).verify(&value, 0).unwrap_err().0, bad_sig);
        // One line per tampering.
        let cases: Vec<(String, &str)> = vec![
            (value.replace("key_abc", "key_abd"), bad_sig),
            (value.replace(".1000.", ".9999."), bad_sig),
            (value.replacen("v1.", "v2.", 1), malformed),
            (value.replace(".1000.", ".-1000."), malformed),
            (value.replace(".1000.", ".+1000."), malformed),
            (value.replace("key_abc", "key.abc"), malformed),
            (value.replace("key_abc", "key abc"), malformed),
            // A MAC one byte too long or too short is not a MAC of ours: malformed, whatever
            // its bits; one of the right length that is wrong does not verify.
            (format!("{value}x"), malformed),
            (flip_mac_char(&value), bad_sig),
            (value[..value.len() - 1].to_string(), malformed),
            (format!("{value}."), malformed),
            (String::new(), malformed),
            ("v1.key_abc.1000".into(), malformed),
            ("x".repeat(300), malformed),
        ];
        for (cookie, expected) in cases {
            assert_eq!(k.verify(&cookie, 0).unwrap_err().0, expected, "{cookie}");
        }
    }

    #[test]
    fn csrf_tokens_belong_to_one_session_and_are_not_its_mac() {
        let k = keys(1);
        let (value, a) = k.mint("key_abc", 1_000).unwrap();
        let (_, b) = k.mint("key_abc", 1_000).unwrap();
        let token = k.csrf(&a);
        assert!(k.csrf_matches(&a, &token));
        assert!(!k.csrf_matches(&b, &token));
        assert!(!k.csrf_matches(&a, ""));
        assert!(!value.ends_with(&token));
        assert!(!keys(2).csrf_matches(&a, &token));
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", keys(7)), "SessionKeys(REDACTED)");
    }
}
