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
use crate::index::{KeyIndex, KeyPrincipal};
use crate::rejection::Rejection;
use crate::replay::ReplayGuard;
use crate::scope::Scope;
use protocol::ErrorCode;
use std::net::IpAddr;
use store::keys::KeyKind;

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
    pub async fn authenticate_signed(
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
        let verify = || -> Result<bool, Rejection> {
            if has_body {
                let digest = request.parts.field("content-digest");
                httpsig::check_content_digest(digest.as_deref(), request.body)
                    .map_err(|e| self.fail(Some(&entry), sig(e)))?;
            }
            let base = signed
                .base(&request.parts)
                .map_err(|e| self.fail(Some(&entry), sig(e)))?;
            Ok(match algorithm {
                Algorithm::HmacSha256 => match entry.material.hmac_secret(&view.id, ring) {
                    Some(secret) => {
                        httpsig::verify_hmac_sha256(secret, base.as_bytes(), &signed.signature)
                    }
                    None => {
                        tracing::warn!(key = %view.id, "cannot open the sealed secret of an hmac key");
                        false
                    }
                },
                Algorithm::Ed25519 => entry.material.ed25519.as_deref().is_some_and(|pk| {
                    httpsig::verify_ed25519(pk, base.as_bytes(), &signed.signature)
                }),
            })
        };
        if let Err(rejection) = guard.check_time(created, signed.expires(), now_secs) {
            let mut rejection = self.fail(Some(&entry), rejection);
            // A late (or early) request whose signature verifies is a real request of the key
            // replayed out of its window: it counts against the key (anomaly detection). One
            // that does not verify proves nothing, and only counts against its address.
            rejection.proven = matches!(verify(), Ok(true));
            return Err(rejection);
        }
        if !verify()? {
            return Err(self.fail(
                Some(&entry),
                Rejection::new(
                    ErrorCode::SignatureInvalid,
                    format!("the signature does not verify with key {}", view.id),
                ),
            ));
        }
        let nonce = signed.nonce().unwrap_or_default();
        // A replay is refused before it spends the key's rate limit; the nonce is recorded
        // only once the rate limit admitted the request, so refused requests take no room in
        // the store (issue 14: one key's flood had filled it for every key).
        guard
            .check_unused(&view.id, nonce, view.nonce_mode, now_secs)
            .await
            .map_err(|r| {
                let mut r = self.fail(Some(&entry), r);
                r.proven = true;
                r
            })?;
        // The view is shared (`Arc`): holding a second reference costs no copy of the id.
        let kept = view.clone();
        let principal = self.admit_async(entry, view, scope, addr, now).await?;
        guard
            .record(&kept.id, nonce, kept.nonce_mode, created, now_secs)
            .await
            .map_err(|r| {
                let mut r = self.fail(Some(&principal.entry), r);
                r.proven = true;
                r
            })?;
        Ok(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::MasterKey;
    use crate::httpsig::sign::{SigningKey, Unsigned, sign};
    use crate::index::AuthSettings;
    use crate::replay::{MemoryNonceStore, NonceMode, NonceStore, Window};
    use crate::secret::SecretKey32;
    use futures_util::FutureExt;
    use std::sync::Arc;
    use store::keys::{Environment, RateLimit};

    const SECRET: &[u8] = b"tg_test_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";

    fn setup(rate: u32) -> (KeyIndex, KeyRing, ReplayGuard) {
        let ring = KeyRing::new(
            Some(MasterKey::new(SecretKey32::from_bytes([9; 32]))),
            Vec::new(),
        );
        let mut r = crate::info::tests_support::record();
        r.kind = KeyKind::Hmac;
        r.scopes = vec!["market:read".into()];
        r.sealed = Some(ring.seal(&r.id, SECRET).unwrap());
        r.rate_limit = Some(RateLimit {
            per_sec: rate,
            burst: rate,
        });
        let index = KeyIndex::new(AuthSettings {
            environment: Environment::Test,
            default_rate: r.rate_limit.unwrap(),
            principal_rates: Default::default(),
            scope_rates: Default::default(),
            failure_burst: 10,
        });
        index.upsert(&r);
        let guard = ReplayGuard::new(
            Window::default(),
            Arc::new(MemoryNonceStore::new(10_000_000)),
        );
        (index, ring, guard)
    }

    fn check(
        index: &KeyIndex,
        ring: &KeyRing,
        guard: &ReplayGuard,
        nonce: &str,
        now: i64,
    ) -> Result<(), ErrorCode> {
        let req = Unsigned {
            method: "GET",
            authority: "gw.example:8080",
            path: "/v1/ticker",
            query: Some("venue=sim&symbol=BTC-USDT"),
            body: b"",
        };
        let h = sign(
            &SigningKey::hmac(SECRET),
            "key_a",
            &req,
            now / 1_000_000,
            nonce,
        );
        let signed = SignedRequest {
            signature_input: &h.signature_input,
            signature: &h.signature,
            parts: RequestParts {
                method: "GET",
                scheme: "http",
                authority: "gw.example:8080",
                path: "/v1/ticker",
                query: req.query,
                headers: &[("host", "gw.example:8080"), ("accept", "*/*")],
            },
            body: b"",
        };
        index
            .authenticate_signed(&signed, guard, ring, Some(Scope::MarketRead), None, now)
            .now_or_never()
            .expect("a local nonce store answers at once")
            .map(|_| ())
            .map_err(|r| r.code)
    }

    #[test]
    fn hmac_key_signs_once_per_nonce() {
        let (index, ring, guard) = setup(1000);
        let now = 1_700_000_000_000_000;
        assert_eq!(check(&index, &ring, &guard, "a", now), Ok(()));
        assert_eq!(
            check(&index, &ring, &guard, "a", now),
            Err(ErrorCode::NonceReused)
        );
        assert_eq!(check(&index, &ring, &guard, "b", now), Ok(()));
        // Only the two accepted requests were counted as usage.
        assert_eq!(
            index
                .get("key_a")
                .unwrap()
                .usage
                .requests
                .load(std::sync::atomic::Ordering::Relaxed),
            2
        );
    }

    /// Issue 14: 1.1 M valid signed requests from one key over its rate limit had filled the
    /// shared nonce store, locking every other key out. Requests the rate limit refuses now
    /// take no room, and a replay is refused before it spends the key's rate.
    #[test]
    fn a_flood_over_the_rate_limit_takes_no_room_in_the_nonce_store() {
        let (index, ring, _) = setup(10);
        let store = Arc::new(MemoryNonceStore::with_key_share(1_000, 100));
        let guard = ReplayGuard::new(Window::default(), store.clone());
        let now = 1_700_000_000_000_000;
        let mut accepted = 0;
        let mut limited = 0;
        for i in 0..5_000 {
            match check(&index, &ring, &guard, &format!("flood{i}"), now) {
                Ok(()) => accepted += 1,
                Err(ErrorCode::RateLimited) => limited += 1,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        // The burst, plus what 10/s refills while the loop runs (the limiter's clock is real).
        assert!((10..200).contains(&accepted), "{accepted}");
        assert_eq!(accepted + limited, 5_000);
        assert_eq!(store.len(), accepted, "only admitted requests hold a nonce");
        // A replay of an accepted request is refused as a replay, without spending rate.
        assert_eq!(
            check(&index, &ring, &guard, "flood0", now),
            Err(ErrorCode::NonceReused)
        );
    }

    #[test]
    fn a_key_over_its_share_of_the_store_is_refused_alone() {
        let (index, ring, _) = setup(1_000_000);
        let guard = ReplayGuard::new(
            Window::default(),
            Arc::new(MemoryNonceStore::with_key_share(10_000, 50)),
        );
        let now = 1_700_000_000_000_000;
        for i in 0..50 {
            assert_eq!(check(&index, &ring, &guard, &format!("n{i}"), now), Ok(()));
        }
        assert_eq!(
            check(&index, &ring, &guard, "one-more", now),
            Err(ErrorCode::RateLimited)
        );
        // Another key still records its nonces: the greedy key used only its own share.
        assert_eq!(
            guard
                .record(
                    "key_other",
                    "x",
                    NonceMode::Unique,
                    now / 1_000_000,
                    now / 1_000_000
                )
                .now_or_never(),
            Some(Ok(()))
        );
    }

    /// `cargo test --release -p auth --lib bench_hmac_verification -- --ignored --nocapture`
    #[test]
    #[ignore = "timing, run by hand in release mode"]
    fn bench_hmac_verification() {
        use std::time::Instant;
        let (index, ring, guard) = setup(1_000_000);
        let now = 1_700_000_000_000_000;
        let n = 200_000;
        // Headers signed ahead: what is timed is the server side only.
        let req = Unsigned {
            method: "GET",
            authority: "gw.example:8080",
            path: "/v1/ticker",
            query: Some("venue=sim&symbol=BTC-USDT"),
            body: b"",
        };
        let headers: Vec<_> = (0..n)
            .map(|i| {
                sign(
                    &SigningKey::hmac(SECRET),
                    "key_a",
                    &req,
                    now / 1_000_000,
                    &format!("n{i}"),
                )
            })
            .collect();
        let fields = [("host", "gw.example:8080"), ("accept", "*/*")];
        // Verifies every signed header set once; nanoseconds per request.
        let time = |headers: &[crate::httpsig::sign::SignatureHeaders]| {
            let start = Instant::now();
            for h in headers {
                let signed = SignedRequest {
                    signature_input: &h.signature_input,
                    signature: &h.signature,
                    parts: RequestParts {
                        method: "GET",
                        scheme: "http",
                        authority: "gw.example:8080",
                        path: "/v1/ticker",
                        query: req.query,
                        headers: &fields,
                    },
                    body: b"",
                };
                index
                    .authenticate_signed(&signed, &guard, &ring, Some(Scope::MarketRead), None, now)
                    .now_or_never()
                    .expect("a local nonce store answers at once")
                    .unwrap();
            }
            start.elapsed().as_nanos() / headers.len() as u128
        };
        let ns = time(&headers);
        println!("hmac-sha256 signed-request verification incl. nonce check: {ns} ns/request");
        // Ed25519: the same steps with a public-key verification.
        let seed = [5u8; 32];
        let signer = SigningKey::ed25519(&seed);
        let mut r = crate::info::tests_support::record();
        r.id = "key_e".into();
        r.kind = KeyKind::Ed25519;
        r.scopes = vec!["market:read".into()];
        r.public_key = Some(
            ed25519_dalek::SigningKey::from_bytes(&seed)
                .verifying_key()
                .as_bytes()
                .to_vec(),
        );
        r.rate_limit = Some(RateLimit {
            per_sec: 1_000_000,
            burst: 1_000_000,
        });
        index.upsert(&r);
        let n = 20_000;
        let headers: Vec<_> = (0..n)
            .map(|i| sign(&signer, "key_e", &req, now / 1_000_000, &format!("e{i}")))
            .collect();
        let ns = time(&headers);
        println!("ed25519 signed-request verification incl. nonce check: {ns} ns/request");
    }
}
