//! What the client presents to the gateway: nothing, a bearer token, or an RFC 9421 signature
//! made with an `hmac` or `ed25519` key (docs/security.md, *Signed requests*).

use crate::ClientError;
use httpsig::sign::{SigningKey, Unsigned};
use std::fmt;
use std::sync::Arc;

/// How the client authenticates: on the WebSocket upgrade (every connection and reconnect)
/// and on every REST call. [`set_credentials`](crate::ClientHandle::set_credentials) swaps them
/// at run time. Signed variants sign each request afresh (`created` = now, a random nonce),
/// so the gateway's replay window and single-use nonces never refuse a legitimate request.
///
/// Build them with the constructors, which validate their input; `Debug` never shows a
/// secret.
#[derive(Clone, Default)]
pub enum Credentials {
    /// Anonymous (a gateway that allows unauthenticated market data).
    #[default]
    None,
    /// `Authorization: Bearer <token>` with an API key.
    Bearer(Secret),
    /// Requests signed with `hmac-sha256`; the HMAC key is the `tg_…` secret as issued.
    Hmac { key_id: String, secret: SignKey },
    /// Requests signed with `ed25519`; the gateway holds the matching public key.
    Ed25519 { key_id: String, key: SignKey },
}

/// Longest key id accepted (the gateway's are `key_` + 16 characters).
const MAX_KEY_ID: usize = 64;

fn invalid(message: impl Into<String>) -> ClientError {
    ClientError::InvalidCredentials(message.into())
}

fn key_id(id: impl Into<String>) -> Result<String, ClientError> {
    let id = id.into();
    let rest = id.strip_prefix("key_").unwrap_or_default();
    let ok = !rest.is_empty()
        && id.len() <= MAX_KEY_ID
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(invalid(
            "a key id looks like key_… (the id printed by `tickgate keys create`, not the secret)",
        ));
    }
    Ok(id)
}

impl Credentials {
    /// Bearer credentials; the token must be printable ASCII without spaces.
    pub fn bearer(token: impl Into<String>) -> Result<Self, ClientError> {
        let token = Secret(token.into());
        if token.0.is_empty() || !token.0.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "a bearer token must be non-empty printable ASCII without spaces",
            ));
        }
        Ok(Self::Bearer(token))
    }

    /// Signing with an `hmac` key: its id and the secret exactly as issued (`tg_test_…` or
    /// `tg_live_…`; surrounding whitespace, e.g. a file's final newline, is an error here:
    /// trim it first).
    pub fn hmac(
        key_id_text: impl Into<String>,
        secret: impl Into<String>,
    ) -> Result<Self, ClientError> {
        let key_id = key_id(key_id_text)?;
        let secret = Secret(secret.into());
        if !secret.0.starts_with("tg_") || !secret.0.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "an hmac secret is the tg_… text printed once by `tickgate keys create --type \
                 hmac` (printable ASCII, no spaces)",
            ));
        }
        let secret = SignKey(Arc::new(SigningKey::hmac(secret.0.as_bytes())));
        Ok(Self::Hmac { key_id, secret })
    }

    /// Signing with an `ed25519` key: its id and the private key as a PKCS#8 PEM
    /// (`-----BEGIN PRIVATE KEY-----`, what `openssl genpkey -algorithm ed25519` and
    /// `tickgate keys create --type ed25519 --generate-keypair` write).
    pub fn ed25519_pem(key_id_text: impl Into<String>, pem: &str) -> Result<Self, ClientError> {
        let key_id = key_id(key_id_text)?;
        let seed = httpsig::pem::ed25519_seed_from_pem(pem)
            .map_err(|e| invalid(format!("ed25519 private key: {e}")))?;
        let key = SignKey(Arc::new(SigningKey::ed25519(&seed)));
        Ok(Self::Ed25519 { key_id, key })
    }

    /// Signing with an `ed25519` key given as its raw 32-byte seed (RFC 8032 private key).
    pub fn ed25519_seed(key_id_text: impl Into<String>, seed: &[u8]) -> Result<Self, ClientError> {
        let key_id = key_id(key_id_text)?;
        let seed: &[u8; 32] = seed.try_into().map_err(|_| {
            invalid(format!(
                "an ed25519 private key seed is 32 bytes, not {}",
                seed.len()
            ))
        })?;
        let key = SignKey(Arc::new(SigningKey::ed25519(seed)));
        Ok(Self::Ed25519 { key_id, key })
    }

    /// The key id, for signed credentials.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Self::Hmac { key_id, .. } | Self::Ed25519 { key_id, .. } => Some(key_id),
            Self::None | Self::Bearer(_) => None,
        }
    }

    /// The headers that authenticate `request`: `Authorization` for a bearer token, or
    /// `Content-Digest` (with a body), `Signature-Input` and `Signature`, signed now with a
    /// fresh random nonce. `request.authority` must be exactly the `Host` header that will be
    /// sent (see [`Endpoint::authority`](crate::Endpoint::authority)). Names are lower case.
    pub fn headers(
        &self,
        request: &Unsigned<'_>,
    ) -> Result<Vec<(&'static str, String)>, ClientError> {
        self.headers_covering(request, &[])
    }

    /// Like [`headers`](Self::headers), with the header `fields` (lower-case name, value
    /// exactly as sent) also covered by the signature, e.g. the gateway's `totp-code` on
    /// critical admin operations. The caller sends the fields itself. A bearer token cannot
    /// cover anything: fields need signed credentials (`ClientError::Sign` otherwise).
    pub fn headers_covering(
        &self,
        request: &Unsigned<'_>,
        fields: &[(&str, &str)],
    ) -> Result<Vec<(&'static str, String)>, ClientError> {
        if !fields.is_empty() && matches!(self, Self::None | Self::Bearer(_)) {
            return Err(ClientError::Sign(
                "covered header fields (such as totp-code) need a signing key (hmac or ed25519), \
                 not a bearer token"
                    .into(),
            ));
        }
        let (key_id, key) = match self {
            Self::None => return Ok(Vec::new()),
            Self::Bearer(secret) => {
                return Ok(vec![("authorization", format!("Bearer {}", secret.0))]);
            }
            Self::Hmac { key_id, secret } => (key_id, secret),
            Self::Ed25519 { key_id, key } => (key_id, key),
        };
        let nonce = httpsig::sign::random_nonce()
            .map_err(|e| ClientError::Sign(format!("no random nonce: {e}")))?;
        let created = model::Timestamp::now().0.div_euclid(1_000_000);
        let signed = httpsig::sign::sign_covering(&key.0, key_id, request, fields, created, &nonce);
        let mut headers = Vec::with_capacity(3);
        if let Some(digest) = signed.content_digest {
            headers.push(("content-digest", digest));
        }
        headers.push(("signature-input", signed.signature_input));
        headers.push(("signature", signed.signature));
        Ok(headers)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Bearer(secret) => write!(f, "Bearer({secret:?})"),
            Self::Hmac { key_id, .. } => {
                write!(f, "Hmac {{ key_id: {key_id:?}, secret: REDACTED }}")
            }
            Self::Ed25519 { key_id, .. } => {
                write!(f, "Ed25519 {{ key_id: {key_id:?}, key: REDACTED }}")
            }
        }
    }
}

/// A secret string: `Debug` shows only a masked prefix, and the bytes are overwritten on drop.
/// `==` compares in constant time (no derived, short-circuiting `PartialEq`).
#[derive(Clone)]
pub struct Secret(String);

/// Constant-time: every byte is compared whichever differs first (the length is not secret).
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for Secret {}

/// Byte equality whose time depends only on the lengths. `black_box` keeps the optimizer from
/// turning the fold into an early exit.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl Secret {
    /// Up to the first 8 characters (a key's public prefix, e.g. `tg_live_`), then `…`.
    pub fn masked(&self) -> String {
        let prefix: String = self.0.chars().take(8).collect();
        format!("{prefix}…")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\" (REDACTED)", self.masked())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Overwrite in place; a best effort without `unsafe` (copies made by the HTTP stack
        // are out of our hands).
        let len = self.0.len();
        self.0.clear();
        self.0.extend(std::iter::repeat_n('\0', len));
    }
}

/// A signing key (hmac secret or ed25519 private key): shared by clones, zeroized when the
/// last clone drops, `Debug` prints `REDACTED`.
#[derive(Clone)]
pub struct SignKey(Arc<SigningKey>);

impl fmt::Debug for SignKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignKey(REDACTED)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use httpsig::{RequestParts, Signed, verify_ed25519, verify_hmac_sha256};

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
        -----END PRIVATE KEY-----\n";

    /// Guards the hand-written constant-time `PartialEq` (it replaced a derived one).
    #[test]
    fn secret_equality_is_constant_time_byte_equality() {
        let s = |t: &str| Secret(t.into());
        for (a, b, equal) in [
            ("tg_test_abc", "tg_test_abc", true),
            ("tg_test_abc", "tg_test_abd", false),
            ("tg_test_abc", "Tg_test_abc", false),
            ("tg_test_abc", "tg_test_ab", false),
            ("", "", true),
            ("", "x", false),
        ] {
            assert_eq!(s(a) == s(b), equal, "{a:?} == {b:?}");
            assert_eq!(
                ct_eq(a.as_bytes(), b.as_bytes()),
                equal,
                "{a:?} ct_eq {b:?}"
            );
        }
    }

    fn header<'a>(headers: &'a [(&str, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn bearer_sets_the_header_and_never_prints_the_token() {
        let creds = Credentials::bearer("tg_test_abcdefghijklmnop").unwrap();
        let request = Unsigned {
            method: "GET",
            authority: "h:1",
            path: "/v1/ws",
            query: None,
            body: b"",
        };
        let headers = creds.headers(&request).unwrap();
        assert_eq!(
            header(&headers, "authorization"),
            Some("Bearer tg_test_abcdefghijklmnop")
        );
        let shown = format!("{creds:?}");
        assert!(!shown.contains("abcdefghijklmnop"), "{shown}");
        assert!(shown.contains("REDACTED"));
        assert!(Credentials::None.headers(&request).unwrap().is_empty());
        for bad in ["", "has space", "new\nline", "ümlaut"] {
            assert!(Credentials::bearer(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn signed_credentials_sign_fresh_verifiable_requests() {
        let hmac = Credentials::hmac("key_Hmac01", "tg_test_s3cret-value").unwrap();
        let ed = Credentials::ed25519_pem("key_Ed01", PEM).unwrap();
        let request = Unsigned {
            method: "POST",
            authority: "gw.example:8080",
            path: "/admin/v1/keys",
            query: Some("a=1"),
            body: b"{}",
        };
        for (creds, id) in [(&hmac, "key_Hmac01"), (&ed, "key_Ed01")] {
            let first = creds.headers(&request).unwrap();
            let second = creds.headers(&request).unwrap();
            assert_ne!(
                header(&first, "signature-input"),
                header(&second, "signature-input"),
                "a fresh nonce each time"
            );
            let signed = Signed::parse(
                header(&first, "signature-input").unwrap(),
                header(&first, "signature").unwrap(),
            )
            .unwrap();
            assert_eq!(signed.keyid(), Some(id));
            let digest = header(&first, "content-digest").unwrap();
            let fields = [("content-digest", digest)];
            let parts = RequestParts {
                method: "POST",
                scheme: "http",
                authority: "gw.example:8080",
                path: "/admin/v1/keys",
                query: Some("a=1"),
                headers: &fields,
            };
            signed.check_policy(&parts, true).unwrap();
            let base = signed.base(&parts).unwrap();
            let now = model::Timestamp::now().0.div_euclid(1_000_000);
            assert!((now - signed.created().unwrap()).abs() <= 1);
            let ok = match creds {
                Credentials::Hmac { .. } => {
                    verify_hmac_sha256(b"tg_test_s3cret-value", base.as_bytes(), &signed.signature)
                }
                _ => {
                    let seed = httpsig::pem::ed25519_seed_from_pem(PEM).unwrap();
                    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
                    verify_ed25519(public.as_bytes(), base.as_bytes(), &signed.signature)
                }
            };
            assert!(ok, "{creds:?}");
        }
        let shown = format!("{hmac:?} {ed:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("key_Hmac01") && shown.contains("REDACTED"),
            "{shown}"
        );
        assert_eq!(ed.key_id(), Some("key_Ed01"));
    }

    /// One line per refused input: what was wrong is in the message, the secret never is.
    #[test]
    fn invalid_signed_credentials_say_why() {
        let seed = [7u8; 32];
        let cases: Vec<(Result<Credentials, ClientError>, &str)> = vec![
            (Credentials::hmac("", "tg_test_x"), "key id"),
            (Credentials::hmac("tg_test_x", "tg_test_x"), "key id"),
            (Credentials::hmac("key_", "tg_test_x"), "key id"),
            (Credentials::hmac("key_a b", "tg_test_x"), "key id"),
            (Credentials::hmac("key_a", "hunter2-secret"), "tg_"),
            (Credentials::hmac("key_a", "tg_test_x\n"), "tg_"),
            (
                Credentials::ed25519_seed("key_a", &seed[..31]),
                "32 bytes, not 31",
            ),
            (Credentials::ed25519_seed("nokey", &seed), "key id"),
            (
                Credentials::ed25519_pem("key_a", "not a pem"),
                "BEGIN PRIVATE KEY",
            ),
            (
                Credentials::ed25519_pem(
                    "key_a",
                    "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----",
                ),
                "BEGIN PRIVATE KEY",
            ),
        ];
        for (i, (result, want)) in cases.into_iter().enumerate() {
            let error = result.unwrap_err();
            assert_eq!(error.code(), "invalid_credentials", "case {i}");
            let text = error.to_string();
            assert!(text.contains(want), "case {i}: {text}");
            assert!(!text.contains("hunter2"), "case {i}: {text}");
        }
        assert!(Credentials::ed25519_seed("key_a", &seed).is_ok());
    }
}
