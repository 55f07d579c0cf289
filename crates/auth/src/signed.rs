//! Authentication of signed requests (RFC 9421; see [`crate::httpsig`] and [`crate::replay`]):
//! the key is found by the signature's `keyid`, the signature verified with the key's HMAC
//! secret (opened from its sealed form once, then kept in memory, zeroized on drop) or
//! Ed25519 public key, the nonce recorded, and then the same status, scope, rate-limit and
//! usage steps as for bearer tokens.
//!
//! Order: policy (required parameters and components) → key → key type and `alg` → key
//! status → timestamp window and `expires` → `Content-Digest` → signature → nonce → scope and
//! rate limit. The nonce is recorded only after the signature verified.

use crate::envelope::KeyRing;
use crate::httpsig::{self, Algorithm, RequestParts, SigError, Signed};
use crate::index::{KeyIndex, KeyPrincipal, Rejection};
use crate::replay::ReplayGuard;
use crate::scope::Scope;
use protocol::ErrorCode;
use std::fmt;
use std::net::IpAddr;
use std::sync::OnceLock;
use store::keys::{KeyKind, KeyRecord, SealedSecret};
use zeroize::Zeroizing;

/// The verification material of one key.
pub(crate) struct KeyMaterial {
    sealed: Option<SealedSecret>,
    hmac: OnceLock<Zeroizing<Vec<u8>>>,
    ed25519: Option<Vec<u8>>,
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial(REDACTED)")
    }
}

impl KeyMaterial {
    pub(crate) fn of(record: &KeyRecord) -> Self {
        Self {
            sealed: (record.kind == KeyKind::Hmac)
                .then(|| record.sealed.clone())
                .flatten(),
            hmac: OnceLock::new(),
            ed25519: (record.kind == KeyKind::Ed25519)
                .then(|| record.public_key.clone())
                .flatten(),
        }
    }

    fn hmac_secret(&self, key_id: &str, ring: &KeyRing) -> Option<&[u8]> {
        if let Some(secret) = self.hmac.get() {
            return Some(secret);
        }
        let opened = ring.open(key_id, self.sealed.as_ref()?).ok()?;
        Some(self.hmac.get_or_init(|| opened))
    }
}

/// A signed request as the server received it.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub signature_input: &'a str,
    pub signature: &'a str,
    pub parts: RequestParts<'a>,
    /// The body received (empty: none).
    pub body: &'a [u8],
}

fn sig(e: SigError) -> Rejection {
    Rejection::new(e.code(), e.to_string())
}

impl KeyIndex {
    /// Authenticates a signed request needing `scope`. `now` in µs since the epoch.
    pub fn authenticate_signed(
        &self,
        request: &SignedRequest<'_>,
        guard: &ReplayGuard,
        ring: &KeyRing,
        scope: Option<Scope>,
        addr: Option<IpAddr>,
        now: i64,
    ) -> Result<KeyPrincipal, Rejection> {
        let has_body = !request.body.is_empty();
        let signed = Signed::parse(request.signature_input, request.signature)
            .and_then(|s| s.check_policy(&request.parts, has_body).map(|()| s))
            .map_err(|e| self.fail(None, sig(e)))?;
        let key_id = signed.keyid().unwrap_or_default();
        let Some(entry) = self.get(key_id) else {
            return Err(self.fail(None, Rejection::new(ErrorCode::UnknownKey, "no such key")));
        };
        let view = entry.view();
        let algorithm = match view.kind {
            KeyKind::Hmac => Algorithm::HmacSha256,
            KeyKind::Ed25519 => Algorithm::Ed25519,
            KeyKind::Bearer => {
                return Err(self.fail(
                    Some(&entry),
                    Rejection::new(
                        ErrorCode::WrongKeyType,
                        format!(
                            "key {} is a bearer key: send it as Authorization: Bearer, or \
                             sign with an hmac or ed25519 key",
                            view.id
                        ),
                    ),
                ));
            }
        };
        signed
            .check_alg(algorithm)
            .map_err(|e| self.fail(Some(&entry), sig(e)))?;
        if let Some(rejection) = view.unusable(now) {
            return Err(self.fail(Some(&entry), rejection));
        }
        let now_secs = now.div_euclid(1_000_000);
        let created = signed.created().unwrap_or_default();
        guard
            .check_time(created, signed.expires(), now_secs)
            .map_err(|r| self.fail(Some(&entry), r))?;
        if has_body {
            let digest = request.parts.field("content-digest");
            httpsig::check_content_digest(digest.as_deref(), request.body)
                .map_err(|e| self.fail(Some(&entry), sig(e)))?;
        }
        let base = signed
            .base(&request.parts)
            .map_err(|e| self.fail(Some(&entry), sig(e)))?;
        let valid = match algorithm {
            Algorithm::HmacSha256 => match entry.material.hmac_secret(&view.id, ring) {
                Some(secret) => {
                    httpsig::verify_hmac_sha256(secret, base.as_bytes(), &signed.signature)
                }
                None => {
                    tracing::warn!(key = %view.id, "cannot open the sealed secret of an hmac key");
                    false
                }
            },
            Algorithm::Ed25519 => {
                entry.material.ed25519.as_deref().is_some_and(|pk| {
                    httpsig::verify_ed25519(pk, base.as_bytes(), &signed.signature)
                })
            }
        };
        if !valid {
            return Err(self.fail(
                Some(&entry),
                Rejection::new(
                    ErrorCode::SignatureInvalid,
                    format!("the signature does not verify with key {}", view.id),
                ),
            ));
        }
        let nonce = signed.nonce().unwrap_or_default();
        guard
            .record(&view.id, nonce, view.nonce_mode, created, now_secs)
            .map_err(|r| self.fail(Some(&entry), r))?;
        self.admit(entry, view, scope, addr, now)
    }
}
