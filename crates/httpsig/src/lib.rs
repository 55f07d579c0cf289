//! HTTP Message Signatures (RFC 9421) for tickgate signed requests: parsing `Signature-Input` and
//! `Signature`, building the signature base, `Content-Digest` (RFC 9530, `sha-256`), and
//! signing and verifying `hmac-sha256` and `ed25519` signatures. One implementation for both
//! sides: the gateway verifies with it (the replay guard, window and nonces, is in the `auth`
//! crate); the SDK, the CLI and the examples sign with [`sign`]. This crate only answers "is
//! this signature over this request valid", and holds no key store.
//!
//! Scheme rules on top of RFC 9421 (see docs/security.md): exactly one signature per request;
//! parameters `keyid`, `created` and `nonce` are required, `expires`, `alg` and `tag`
//! optional, any other parameter is rejected; the covered components must include `@method`,
//! `@path`, `@authority`, `@query` when the target has a query, and `content-digest` when the
//! request has a body.
//!
//! # Layout
//!
//! - `lib` (this file): [`Signed`] (parsing, policy), [`Algorithm`], MACs, signatures, digests.
//! - `base`: the signature base and `@signature-params`.
//! - `sfv`: the RFC 8941 structured-field subset the scheme uses.
//! - `sign`: the client side: [`sign::sign`] adds the headers, [`sign::random_nonce`].
//! - `pem`: Ed25519 keys as PEM files (PKCS#8 private keys, SPKI public keys), by hand.

pub mod base;
pub mod pem;
pub mod sfv;
pub mod sign;

pub use base::{RequestParts, signature_base};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use protocol::ErrorCode;
use sfv::{Bare, ByteSeq, Member, Params};
use sha2::{Digest, Sha256};
use smallvec::SmallVec;
use std::borrow::Cow;

/// Why a signature was not accepted. Messages never contain key material or signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Incomplete(String),
    #[error("{0}")]
    Digest(String),
    #[error("{0}")]
    WrongKeyType(String),
    /// A signature or digest header that is not a valid structured field; `header` is its
    /// name as sent (`Signature-Input`, `Signature`, `Content-Digest`).
    #[error("{header}: {source}")]
    Malformed {
        header: &'static str,
        #[source]
        source: sfv::SfvError,
    },
}

impl SigError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::SignatureInvalid,
            Self::Incomplete(_) => ErrorCode::SignatureIncomplete,
            Self::Digest(_) => ErrorCode::DigestMismatch,
            Self::WrongKeyType(_) => ErrorCode::WrongKeyType,
            Self::Malformed {
                header: "Content-Digest",
                ..
            } => ErrorCode::DigestMismatch,
            Self::Malformed { .. } => ErrorCode::SignatureInvalid,
        }
    }
}

/// Signature algorithms (RFC 9421 §6.2.2 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HmacSha256,
    Ed25519,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Self::HmacSha256 => "hmac-sha256",
            Self::Ed25519 => "ed25519",
        }
    }
}

/// A parsed signature: its label, covered components, parameters and signature bytes,
/// borrowed from the two header values (nothing is allocated for a usual signature).
#[derive(Debug, Clone)]
pub struct Signed<'a> {
    pub label: &'a str,
    pub components: SmallVec<[Cow<'a, str>; 8]>,
    pub params: Params<'a>,
    pub signature: ByteSeq,
}

const KNOWN_PARAMS: [&str; 6] = ["created", "expires", "nonce", "alg", "keyid", "tag"];

impl<'a> Signed<'a> {
    /// Parses the two headers (each the combined value of all its lines). Exactly one
    /// signature label is accepted, present in both.
    pub fn parse(signature_input: &'a str, signature: &'a str) -> Result<Self, SigError> {
        let bad = |m: String| SigError::Invalid(m);
        let malformed = |header| move |source| SigError::Malformed { header, source };
        let mut inputs = sfv::dictionary(signature_input).map_err(malformed("Signature-Input"))?;
        let mut sigs = sfv::dictionary(signature).map_err(malformed("Signature"))?;
        if inputs.len() != 1 || sigs.len() != 1 {
            return Err(bad("send exactly one signature per request".into()));
        }
        let (label, input) = inputs.swap_remove(0);
        let (sig_label, sig) = sigs.swap_remove(0);
        if sig_label != label {
            return Err(bad(format!(
                "Signature has no label {label} matching Signature-Input"
            )));
        }
        let Member::InnerList(items, params) = input else {
            return Err(bad("Signature-Input must be an inner list".into()));
        };
        let Member::Bytes(signature) = sig else {
            return Err(bad("Signature must be a byte sequence".into()));
        };
        let mut components = SmallVec::with_capacity(items.len());
        for (name, item_params) in items {
            if !item_params.is_empty() {
                return Err(bad(format!(
                    "component parameters on {name} are not supported"
                )));
            }
            if name == "@signature-params" || name.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(bad(format!("{name} cannot be a covered component")));
            }
            if components.contains(&name) {
                return Err(bad(format!("{name} is covered twice")));
            }
            components.push(name);
        }
        for (key, value) in &params {
            let ok = match (*key, value) {
                ("created" | "expires", Bare::Integer(n)) => *n >= 0,
                ("nonce" | "alg" | "keyid" | "tag", Bare::String(_)) => true,
                _ => false,
            };
            if !ok {
                let known = KNOWN_PARAMS.contains(key);
                return Err(bad(if known {
                    format!("signature parameter {key} has the wrong type")
                } else {
                    format!("unknown signature parameter {key}")
                }));
            }
        }
        Ok(Self {
            label,
            components,
            params,
            signature,
        })
    }

    fn param(&self, key: &str) -> Option<&Bare<'a>> {
        self.params.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    fn string(&self, key: &str) -> Option<&str> {
        match self.param(key) {
            Some(Bare::String(s)) => Some(s),
            _ => None,
        }
    }

    fn integer(&self, key: &str) -> Option<i64> {
        match self.param(key) {
            Some(Bare::Integer(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn keyid(&self) -> Option<&str> {
        self.string("keyid")
    }

    pub fn nonce(&self) -> Option<&str> {
        self.string("nonce")
    }

    pub fn alg(&self) -> Option<&str> {
        self.string("alg")
    }

    /// `created`, seconds since the epoch.
    pub fn created(&self) -> Option<i64> {
        self.integer("created")
    }

    pub fn expires(&self) -> Option<i64> {
        self.integer("expires")
    }

    pub fn covers(&self, component: &str) -> bool {
        self.components.iter().any(|c| c == component)
    }

    /// The scheme's policy: required parameters, and the components that must be covered.
    pub fn check_policy(&self, req: &RequestParts<'_>, has_body: bool) -> Result<(), SigError> {
        for p in ["keyid", "created", "nonce"] {
            if self.param(p).is_none() {
                return Err(SigError::Incomplete(format!(
                    "the signature parameter {p} is required"
                )));
            }
        }
        let required = [
            Some("@method"),
            Some("@path"),
            Some("@authority"),
            req.query.is_some().then_some("@query"),
            has_body.then_some("content-digest"),
        ];
        // `@target-uri` and `@request-target` cover path and query (and the authority, for
        // `@target-uri`) as well.
        let full = self.covers("@target-uri");
        let target = full || self.covers("@request-target");
        for c in required.into_iter().flatten() {
            let covered = self.covers(c)
                || (target && matches!(c, "@path" | "@query"))
                || (full && c == "@authority");
            if !covered {
                return Err(SigError::Incomplete(format!(
                    "the signature must cover {c}"
                )));
            }
        }
        Ok(())
    }

    /// The signature base of `req` for this signature.
    pub fn base(&self, req: &RequestParts<'_>) -> Result<String, SigError> {
        signature_base(req, &self.components, &self.params)
    }

    /// Checks that `alg`, when present, names the algorithm of the key.
    pub fn check_alg(&self, key: Algorithm) -> Result<(), SigError> {
        match self.alg() {
            Some(a) if a != key.name() => Err(SigError::WrongKeyType(format!(
                "the key is an {} key; the signature says alg=\"{a}\"",
                key.name()
            ))),
            _ => Ok(()),
        }
    }
}

/// Verifies an `hmac-sha256` signature in constant time (the MAC's own `verify_slice`).
pub fn verify_hmac_sha256(secret: &[u8], base: &[u8], signature: &[u8]) -> bool {
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(base);
    mac.verify_slice(signature).is_ok()
}

/// The `hmac-sha256` signature of `base`.
pub fn sign_hmac_sha256(secret: &[u8], base: &[u8]) -> Vec<u8> {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(base);
    mac.finalize().into_bytes().to_vec()
}

/// Verifies an `ed25519` signature with `verify_strict` (rejects weak keys and
/// non-canonical signatures, so a signature has exactly one valid encoding).
pub fn verify_ed25519(public_key: &[u8], base: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = <&[u8; 32]>::try_from(public_key) else {
        return false;
    };
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(key) else {
        return false;
    };
    let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
        return false;
    };
    key.verify_strict(base, &signature).is_ok()
}

/// `sha-256=:<base64>:`, the `Content-Digest` of `body`.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(body)))
}

/// Checks a `Content-Digest` value against the body received. The `sha-256` member is
/// required (other algorithms may be present and are ignored); its value must match.
pub fn check_content_digest(header: Option<&str>, body: &[u8]) -> Result<(), SigError> {
    let err = |m: &str| SigError::Digest(m.into());
    let header = header.ok_or_else(|| err("a request with a body needs Content-Digest"))?;
    let dict = sfv::dictionary(header).map_err(|source| SigError::Malformed {
        header: "Content-Digest",
        source,
    })?;
    let Some((_, Member::Bytes(digest))) = dict.iter().find(|(k, _)| *k == "sha-256") else {
        return Err(err("Content-Digest needs a sha-256 member"));
    };
    let actual = Sha256::digest(body);
    if bool::from(subtle::ConstantTimeEq::ct_eq(
        digest.as_slice(),
        actual.as_slice(),
    )) {
        Ok(())
    } else {
        Err(err("Content-Digest does not match the body"))
    }
}

#[cfg(test)]
mod tests;
