//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>, "Verifying webhook
//! authenticity").
//!
//! Every delivery carries `webhook-id` (the firing id, the same on every retry),
//! `webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`: space-separated
//! `version,base64` signatures of `{id}.{timestamp}.{body}`:
//!
//! - `v1`: HMAC-SHA256 with the endpoint's `whsec_` secret (base64 after the prefix is the
//!   key), the scheme every Standard Webhooks library verifies;
//! - `v1a`: Ed25519 with a key only the gateway holds; receivers verify with the endpoint's
//!   `whpk_` public key (32 bytes, base64).
//!
//! During a secret rotation the header carries one signature per live secret (new first), so
//! receivers holding either one accept the delivery.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signer as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use zeroize::Zeroizing;

/// Prefix of an HMAC (`v1`) secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Prefix of an Ed25519 (`v1a`) signing key (never leaves the gateway).
pub const SIGNING_KEY_PREFIX: &str = "whsk_";
/// Prefix of an Ed25519 (`v1a`) public key.
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";
/// Bytes of a generated secret.
const SECRET_BYTES: usize = 32;

/// A signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    V1,
    V1a,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V1a => "v1a",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "v1" => Some(Self::V1),
            "v1a" => Some(Self::V1a),
            _ => None,
        }
    }
}

/// An endpoint's signing secret. `Debug` prints `REDACTED`; the bytes are wiped on drop.
#[derive(Clone)]
pub struct WebhookSecret {
    scheme: Scheme,
    key: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecret({}, REDACTED)", self.scheme.as_str())
    }
}

impl WebhookSecret {
    /// A new random secret and its text form (`whsec_…` or `whsk_…`), to seal and, for `v1`,
    /// to show once.
    pub fn generate(scheme: Scheme) -> Result<(Self, Zeroizing<String>), getrandom::Error> {
        let mut key = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        getrandom::fill(&mut key)?;
        let prefix = match scheme {
            Scheme::V1 => SECRET_PREFIX,
            Scheme::V1a => SIGNING_KEY_PREFIX,
        };
        let text = Zeroizing::new(format!("{prefix}{}", STANDARD.encode(&*key)));
        Ok((Self { scheme, key }, text))
    }

    /// Parses `whsec_<base64>` or `whsk_<base64 of a 32-byte Ed25519 seed>`. The error never
    /// contains the input.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let (scheme, encoded) = if let Some(rest) = text.strip_prefix(SECRET_PREFIX) {
            (Scheme::V1, rest)
        } else if let Some(rest) = text.strip_prefix(SIGNING_KEY_PREFIX) {
            (Scheme::V1a, rest)
        } else {
            return Err("a webhook secret starts with whsec_ or whsk_");
        };
        let key = Zeroizing::new(
            STANDARD
                .decode(encoded.trim())
                .map_err(|_| "a webhook secret is base64 after its prefix")?,
        );
        match scheme {
            Scheme::V1 if key.len() < 16 || key.len() > 64 => {
                Err("a whsec_ secret is 16 to 64 bytes")
            }
            Scheme::V1a if key.len() != 32 => Err("a whsk_ key is a 32-byte Ed25519 seed"),
            _ => Ok(Self { scheme, key }),
        }
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    fn ed25519(&self) -> Option<ed25519_dalek::SigningKey> {
        let seed: [u8; 32] = self.key.as_slice().try_into().ok()?;
        Some(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// For `v1a`: the `whpk_` public key receivers verify with.
    pub fn public_key(&self) -> Option<String> {
        match self.scheme {
            Scheme::V1 => None,
            Scheme::V1a => self.ed25519().map(|k| {
                format!(
                    "{PUBLIC_KEY_PREFIX}{}",
                    STANDARD.encode(k.verifying_key().as_bytes())
                )
            }),
        }
    }

    /// `v1,<base64>` or `v1a,<base64>` over `{id}.{timestamp}.{body}`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut content = Vec::with_capacity(id.len() + body.len() + 24);
        content.extend_from_slice(id.as_bytes());
        content.push(b'.');
        content.extend_from_slice(timestamp.to_string().as_bytes());
        content.push(b'.');
        content.extend_from_slice(body);
        match self.scheme {
            Scheme::V1 => {
                // HMAC takes keys of any length.
                let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
                    .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
                mac.update(&content);
                format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
            }
            Scheme::V1a => match self.ed25519() {
                Some(key) => format!("v1a,{}", STANDARD.encode(key.sign(&content).to_bytes())),
                None => String::new(),
            },
        }
    }
}

/// The `webhook-signature` header: one signature per secret, space-separated.
pub fn signature_header(
    secrets: &[WebhookSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `header` holds a `v1` signature of `secret` over the message, compared in
/// constant time (what a receiver does; the gateway uses it in tests and `tickgate` tools).
pub fn verify_v1(
    secret: &WebhookSecret,
    id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> bool {
    use subtle::ConstantTimeEq;
    let expected = secret.sign(id, timestamp, body);
    header
        .split(' ')
        .any(|candidate| bool::from(candidate.as_bytes().ct_eq(expected.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed example, cross-checked with Python's `hmac` module (CI also verifies live
    /// deliveries with the independent `standardwebhooks` package).
    #[test]
    fn matches_the_standard_webhooks_reference_signature() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let sig = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify_v1(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &format!("v1,bogus {sig}")
        ));
        assert!(!verify_v1(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265331,
            body,
            &sig
        ));
    }

    #[test]
    fn rotation_sends_both_signatures_and_v1a_verifies_with_the_public_key() {
        let (new, new_text) = WebhookSecret::generate(Scheme::V1).unwrap();
        let (old, _) = WebhookSecret::generate(Scheme::V1).unwrap();
        assert!(new_text.starts_with("whsec_") && !format!("{new:?}").contains(&new_text[6..]));
        let header = signature_header(&[new.clone(), old.clone()], "msg_1", 10, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify_v1(&new, "msg_1", 10, b"{}", &header));
        assert!(verify_v1(&old, "msg_1", 10, b"{}", &header));
        assert_eq!(
            WebhookSecret::parse(&new_text).unwrap().sign("m", 1, b"x"),
            new.sign("m", 1, b"x")
        );

        let (ed, ed_text) = WebhookSecret::generate(Scheme::V1a).unwrap();
        assert!(ed_text.starts_with("whsk_"));
        let public = ed.public_key().unwrap();
        let key = STANDARD
            .decode(public.strip_prefix("whpk_").unwrap())
            .unwrap();
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key.try_into().unwrap()).unwrap();
        let sig = ed.sign("msg_2", 20, b"{}");
        let raw = STANDARD.decode(sig.strip_prefix("v1a,").unwrap()).unwrap();
        let sig = ed25519_dalek::Signature::from_bytes(&raw.try_into().unwrap());
        assert!(key.verify_strict(b"msg_2.20.{}", &sig).is_ok());
        for bad in [
            "",
            "whsec_",
            "whsec_!!!",
            "whsec_YWJj",
            "whsk_YWJj",
            "sk_live_x",
        ] {
            let err = WebhookSecret::parse(bad).unwrap_err();
            assert!(bad.len() < 8 || !err.contains(bad));
        }
    }
}
