//! The replay guard against a naive reference model, with a paused clock.

use super::*;
use futures_util::FutureExt;
use proptest::prelude::*;

/// The guard over a local store never waits: its futures are ready on the first poll.
fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    f.now_or_never().expect("a local store answers at once")
}

#[derive(Debug, Clone)]
struct Req {
    key: usize,
    nonce: u8,
    /// `created` relative to the clock.
    created: i64,
    /// `expires` relative to the clock.
    expires: Option<i64>,
    /// Whether the signature verifies.
    valid: bool,
    /// Seconds the clock moves before this request.
    advance: i64,
}

fn req() -> impl Strategy<Value = Req> {
    (
        0..6usize,
        0..12u8,
        -45..12i64,
        proptest::option::of(-5..40i64),
        proptest::bool::weighted(0.85),
        0..4i64,
    )
        .prop_map(|(key, nonce, created, expires, valid, advance)| Req {
            key,
            nonce,
            created,
            expires,
            valid,
            advance,
        })
}

/// Keys 4 and 5 are in monotonic mode.
fn mode(key: usize) -> NonceMode {
    if key >= 4 {
        NonceMode::Monotonic
    } else {
        NonceMode::Unique
    }
}

/// The same decisions, the obvious way: a list of everything ever accepted.
#[derive(Default)]
struct Model {
    accepted: Vec<(usize, u8, i64)>,
}

impl Model {
    fn decide(
        &mut self,
        w: Window,
        r: &Req,
        created: i64,
        expires: Option<i64>,
        now: i64,
    ) -> Result<(), ErrorCode> {
        if created < now - i64::from(w.past) {
            return Err(ErrorCode::TimestampStale);
        }
        if created > now + i64::from(w.future) {
            return Err(ErrorCode::TimestampFuture);
        }
        if expires.is_some_and(|e| e <= now) {
            return Err(ErrorCode::SignatureExpired);
        }
        if !r.valid {
            return Err(ErrorCode::SignatureInvalid);
        }
        let same_key = self.accepted.iter().filter(|a| a.0 == r.key);
        match mode(r.key) {
            NonceMode::Unique => {
                let live = same_key
                    .filter(|a| a.1 == r.nonce)
                    .any(|a| a.2 + i64::from(w.past) >= now);
                if live {
                    return Err(ErrorCode::NonceReused);
                }
            }
            NonceMode::Monotonic => {
                if same_key.map(|a| a.1).max().is_some_and(|m| r.nonce <= m) {
                    return Err(ErrorCode::NonceNotIncreasing);
                }
            }
        }
        self.accepted.push((r.key, r.nonce, created));
        Ok(())
    }
}

fn guard_decides(
    g: &ReplayGuard,
    r: &Req,
    created: i64,
    expires: Option<i64>,
    now: i64,
) -> Result<(), ErrorCode> {
    g.check_time(created, expires, now).map_err(|e| e.code)?;
    if !r.valid {
        // The signature failed: the nonce is not recorded.
        return Err(ErrorCode::SignatureInvalid);
    }
    let key = format!("key_{}", r.key);
    block(g.record(&key, &r.nonce.to_string(), mode(r.key), created, now)).map_err(|e| e.code)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn guard_matches_the_reference_model(
        reqs in proptest::collection::vec(req(), 1..300),
        past in 1..40u32,
        future in 0..8u32,
    ) {
        let w = Window::new(past, future).unwrap();
        let guard = ReplayGuard::new(w, Arc::new(MemoryNonceStore::new(100_000)));
        let mut model = Model::default();
        let mut now = 1_700_000_000i64;
        for (i, r) in reqs.iter().enumerate() {
            now += r.advance;
            let created = now + r.created;
            let expires = r.expires.map(|e| now + e);
            let want = model.decide(w, r, created, expires, now);
            let got = guard_decides(&guard, r, created, expires, now);
            prop_assert_eq!(got, want, "request {} {:?} at {}", i, r, now);
        }
    }
}

#[test]
fn window_bounds_and_default() {
    assert_eq!(
        Window::default(),
        Window {
            past: 30,
            future: 5
        }
    );
    assert!(Window::new(120, 120).is_ok());
    assert!(Window::new(121, 5).is_err());
    assert!(Window::new(30, 121).is_err());
    assert!(Window::new(0, 5).is_err());
}

#[test]
fn codes_and_edges() {
    let g = ReplayGuard::new(Window::default(), Arc::new(MemoryNonceStore::new(1000)));
    let now = 1_000;
    assert!(g.check_time(now - 30, None, now).is_ok());
    assert_eq!(
        g.check_time(now - 31, None, now).unwrap_err().code,
        ErrorCode::TimestampStale
    );
    assert!(g.check_time(now + 5, None, now).is_ok());
    assert_eq!(
        g.check_time(now + 6, None, now).unwrap_err().code,
        ErrorCode::TimestampFuture
    );
    assert_eq!(
        g.check_time(now, Some(now), now).unwrap_err().code,
        ErrorCode::SignatureExpired
    );
    assert!(g.check_time(now, Some(now + 1), now).is_ok());
    block(g.record("k", "abc", NonceMode::Unique, now, now)).unwrap();
    assert_eq!(
        block(g.record("k", "abc", NonceMode::Unique, now, now))
            .unwrap_err()
            .code,
        ErrorCode::NonceReused
    );
    let long = "x".repeat(MAX_NONCE_LEN + 1);
    assert_eq!(
        block(g.record("k", &long, NonceMode::Unique, now, now))
            .unwrap_err()
            .code,
        ErrorCode::SignatureInvalid
    );
    assert_eq!(
        block(g.record("m", "+5", NonceMode::Monotonic, now, now))
            .unwrap_err()
            .code,
        ErrorCode::NonceNotIncreasing
    );
    block(g.record("m", "5", NonceMode::Monotonic, now, now)).unwrap();
    assert_eq!(
        block(g.record("m", "5", NonceMode::Monotonic, now, now))
            .unwrap_err()
            .code,
        ErrorCode::NonceNotIncreasing
    );
}
