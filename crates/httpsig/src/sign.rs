//! The signing side: the headers a client adds to sign a request the way the gateway
//! requires (label `sig1`; covers `@method`, `@authority`, `@path`, `@query` when there is a
//! query, `content-digest` when there is a body; parameters `created`, `keyid`, `nonce`, `alg`).

use super::{Algorithm, RequestParts, content_digest, sfv::Bare, sign_hmac_sha256, signature_base};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::fmt;
use zeroize::Zeroizing;

/// A key that signs: an `hmac` key's secret (the `tg_…` text as issued, used as bytes) or an
/// `ed25519` private key (32-byte seed).
pub enum SigningKey {
    Hmac(Zeroizing<Vec<u8>>),
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(REDACTED)")
    }
}

impl SigningKey {
    pub fn hmac(secret: &[u8]) -> Self {
        Self::Hmac(Zeroizing::new(secret.to_vec()))
    }

    pub fn ed25519(seed: &[u8; 32]) -> Self {
        Self::Ed25519(Box::new(ed25519_dalek::SigningKey::from_bytes(seed)))
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Hmac(_) => Algorithm::HmacSha256,
            Self::Ed25519(_) => Algorithm::Ed25519,
        }
    }
}

/// The request to sign.
#[derive(Debug, Clone, Copy)]
pub struct Unsigned<'a> {
    pub method: &'a str,
    /// `host[:port]` exactly as the `Host` header will carry it.
    pub authority: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub body: &'a [u8],
}

/// Headers to add: `Content-Digest` (when there is a body), `Signature-Input`, `Signature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    pub content_digest: Option<String>,
    pub signature_input: String,
    pub signature: String,
}

/// Signs `request` with `key` (id `keyid`) at `created` (seconds since the epoch).
pub fn sign(
    key: &SigningKey,
    keyid: &str,
    request: &Unsigned<'_>,
    created: i64,
    nonce: &str,
) -> SignatureHeaders {
    sign_covering(key, keyid, request, &[], created, nonce)
}

/// Like [`sign`], also covering the header `fields` (lower-case name, value exactly as sent),
/// e.g. the gateway's `totp-code` on critical admin operations.
pub fn sign_covering(
    key: &SigningKey,
    keyid: &str,
    request: &Unsigned<'_>,
    fields: &[(&str, &str)],
    created: i64,
    nonce: &str,
) -> SignatureHeaders {
    let digest = (!request.body.is_empty()).then(|| content_digest(request.body));
    let mut components: Vec<String> = vec!["@method".into(), "@authority".into(), "@path".into()];
    if request.query.is_some() {
        components.push("@query".into());
    }
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(d) = &digest {
        components.push("content-digest".into());
        headers.push(("content-digest", d));
    }
    for (name, value) in fields {
        components.push((*name).to_string());
        headers.push((name, value));
    }
    let params = vec![
        ("created", Bare::Integer(created)),
        ("keyid", Bare::String(keyid.into())),
        ("nonce", Bare::String(nonce.into())),
        ("alg", Bare::String(key.algorithm().name().into())),
    ];
    let parts = RequestParts {
        method: request.method,
        scheme: "http",
        authority: request.authority,
        path: request.path,
        query: request.query,
        headers: &headers,
    };
    let base = signature_base(&parts, &components, &params)
        .expect("every component of the base is present");
    let signature = match key {
        SigningKey::Hmac(secret) => sign_hmac_sha256(secret, base.as_bytes()),
        SigningKey::Ed25519(k) => ed25519_dalek::Signer::sign(k.as_ref(), base.as_bytes())
            .to_bytes()
            .to_vec(),
    };
    SignatureHeaders {
        content_digest: digest,
        signature_input: format!(
            "sig1={}",
            super::base::signature_params(&components, &params)
        ),
        signature: format!("sig1=:{}:", STANDARD.encode(signature)),
    }
}

/// A random nonce (128 bits, base64url without padding).
pub fn random_nonce() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Signed, verify_ed25519, verify_hmac_sha256};

    #[test]
    fn signed_headers_verify_and_meet_the_policy() {
        let request = Unsigned {
            method: "POST",
            authority: "127.0.0.1:8080",
            path: "/admin/v1/keys",
            query: Some("a=1"),
            body: b"{}",
        };
        let seed = [7u8; 32];
        for key in [
            SigningKey::hmac(b"tg_test_secret"),
            SigningKey::ed25519(&seed),
        ] {
            let h = sign(&key, "key_1", &request, 1_700_000_000, "n-1");
            let signed = Signed::parse(&h.signature_input, &h.signature).unwrap();
            let digest = h.content_digest.clone().unwrap();
            let headers = [("content-digest", digest.as_str())];
            let parts = RequestParts {
                method: "POST",
                scheme: "http",
                authority: "127.0.0.1:8080",
                path: "/admin/v1/keys",
                query: Some("a=1"),
                headers: &headers,
            };
            signed.check_policy(&parts, true).unwrap();
            signed.check_alg(key.algorithm()).unwrap();
            let base = signed.base(&parts).unwrap();
            let ok = match &key {
                SigningKey::Hmac(s) => verify_hmac_sha256(s, base.as_bytes(), &signed.signature),
                SigningKey::Ed25519(k) => verify_ed25519(
                    k.verifying_key().as_bytes(),
                    base.as_bytes(),
                    &signed.signature,
                ),
            };
            assert!(ok);
            assert_eq!(signed.nonce(), Some("n-1"));
        }
        assert_ne!(random_nonce().unwrap(), random_nonce().unwrap());
    }

    /// The worked example of docs/security.md (computed independently with Python's hmac).
    #[test]
    fn docs_worked_example() {
        let request = Unsigned {
            method: "POST",
            authority: "gw.example:8080",
            path: "/admin/v1/keys",
            query: None,
            body: br#"{"name":"bot","scopes":["market:read"]}"#,
        };
        let key = SigningKey::hmac(b"tg_test_docs-example-secret-not-a-real-one");
        let h = sign(
            &key,
            "key_DocsExample0001",
            &request,
            1_764_300_000,
            "q2Zf1cPbNl0Kd3Yx",
        );
        assert_eq!(
            h.content_digest.as_deref(),
            Some("sha-256=:mI2sLLH6lsol3w3ufs1JLXajYVjvB8M2oXWBxgK1Hw4=:")
        );
        assert_eq!(
            h.signature_input,
            "sig1=(\"@method\" \"@authority\" \"@path\" \"content-digest\");created=1764300000;\
             keyid=\"key_DocsExample0001\";nonce=\"q2Zf1cPbNl0Kd3Yx\";alg=\"hmac-sha256\""
        );
        assert_eq!(
            h.signature,
            "sig1=:WZW1z1/04WnI/E5cuyvWaYOumhqu+ArjqeC6+oxyuxs=:"
        );
    }
}
