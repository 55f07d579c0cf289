//! Signed requests (RFC 9421) over real HTTP: valid ones pass once; replays, tampering,
//! stale or future timestamps, another key's signature and wrong digests are refused with
//! their codes, and the refusals are counted in /metrics.

use crate::auth_support::*;
use crate::support::*;
use auth::httpsig::sign::{SigningKey, Unsigned, sign};
use auth::{KeyRing, KeyService, MasterKey, NewKey};
use base64::Engine;
use std::path::Path;
use std::sync::Arc;
use store::keys::{Environment, KeyKind};
use store::keys_sqlite::SqliteKeyStore;

pub(crate) const MASTER_HEX: &str =
    "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

pub(crate) fn now_secs() -> i64 {
    model::Timestamp::now().0.div_euclid(1_000_000)
}

/// [`auth_config`] with a master key file (`MASTER_HEX`, mode 0600) the gateway loads, so
/// hmac secrets sealed by [`sealing_service`] open there.
pub(crate) fn sealing_config(name: &str) -> server::Config {
    let mut config = auth_config(name);
    let dir = config.server.data_dir.clone();
    std::fs::create_dir_all(&dir).unwrap();
    let master_file = dir.join("master.key");
    std::fs::write(&master_file, MASTER_HEX).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&master_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    config.auth.master_key_file = Some(master_file);
    config
}

/// The offline service with the master key the gateway will also load.
pub(crate) fn sealing_service(dir: &Path) -> KeyService {
    let store = SqliteKeyStore::open_dir(dir).unwrap();
    let master = MasterKey::from_hex(MASTER_HEX, "test").unwrap();
    KeyService::new(
        Arc::new(store.clone()),
        Arc::new(store.audit_log()),
        KeyRing::new(Some(master), Vec::new()),
        Environment::Test,
    )
}

pub(crate) fn public_pem(key: &ed25519_dalek::SigningKey) -> String {
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(key.verifying_key().as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
}

pub(crate) fn create(
    service: &KeyService,
    name: &str,
    kind: KeyKind,
    pem: Option<String>,
) -> (String, Option<String>) {
    let issued = service
        .create(
            NewKey {
                name: name.into(),
                scopes: vec!["market:read".into(), "keys:admin".into()],
                kind: Some(kind),
                public_key_pem: pem,
                ..Default::default()
            },
            "test",
            model::Timestamp::now().0,
        )
        .unwrap();
    (
        issued.record.id,
        issued.secret.map(|s| s.expose().to_string()),
    )
}

struct Client {
    http: reqwest::Client,
    addr: String,
}

impl Client {
    /// Sends `method path?query` with `body`, signed over `signed` (what the signer saw).
    async fn send(
        &self,
        method: &str,
        target: &str,
        body: &[u8],
        headers: &auth::httpsig::sign::SignatureHeaders,
        host: Option<&str>,
    ) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("http://{}{target}", self.addr))
            .header("signature-input", &headers.signature_input)
            .header("signature", &headers.signature)
            .body(body.to_vec());
        if let Some(d) = &headers.content_digest {
            request = request.header("content-digest", d);
        }
        if !body.is_empty() {
            request = request.header("content-type", "application/json");
        }
        if let Some(host) = host {
            request = request.header("host", host);
        }
        let (status, json) = Http::json(request.send().await.unwrap()).await;
        (status, code(&json).to_string())
    }
}

fn unsigned<'a>(
    method: &'a str,
    authority: &'a str,
    target: &'a str,
    body: &'a [u8],
) -> Unsigned<'a> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    Unsigned {
        method,
        authority,
        path,
        query,
        body,
    }
}

const TICKER: &str = "/v1/ticker?venue=sim&symbol=BTC-USDT";

#[tokio::test]
async fn signed_requests_over_http() {
    let config = sealing_config("signed");
    let dir = config.server.data_dir.clone();
    let service = sealing_service(&dir);
    let ed = ed25519_dalek::SigningKey::from_bytes(&[11u8; 32]);
    let other = ed25519_dalek::SigningKey::from_bytes(&[12u8; 32]);
    let (ed_id, _) = create(&service, "signer", KeyKind::Ed25519, Some(public_pem(&ed)));
    let (hmac_id, hmac_secret) = create(&service, "mac", KeyKind::Hmac, None);
    let hmac_secret = hmac_secret.unwrap();
    let (bearer_id, _) = create(&service, "bearer", KeyKind::Bearer, None);
    let gateway = start(config).await;
    let addr = gateway.local_addr().to_string();
    let client = Client {
        http: reqwest::Client::new(),
        addr: addr.clone(),
    };
    let ed_key = SigningKey::ed25519(&ed.to_bytes());
    let other_key = SigningKey::ed25519(&other.to_bytes());
    let mac_key = SigningKey::hmac(hmac_secret.as_bytes());
    let mut n = 0;
    let mut nonce = || {
        n += 1;
        format!("nonce-{n}")
    };
    let get = unsigned("GET", &addr, TICKER, b"");

    // Valid (both algorithms) pass; the same request again is a replay.
    let h = sign(&ed_key, &ed_id, &get, now_secs(), &nonce());
    assert_eq!(
        client.send("GET", TICKER, b"", &h, None).await,
        (200, String::new())
    );
    assert_eq!(
        client.send("GET", TICKER, b"", &h, None).await,
        (401, "nonce_reused".into())
    );
    let h = sign(&mac_key, &hmac_id, &get, now_secs(), &nonce());
    assert_eq!(
        client.send("GET", TICKER, b"", &h, None).await,
        (200, String::new())
    );
    assert_eq!(
        client.send("GET", TICKER, b"", &h, None).await.1,
        "nonce_reused"
    );

    // A forged request does not burn the nonce: the genuine one with it still passes.
    let shared = nonce();
    let forged = sign(&other_key, &ed_id, &get, now_secs(), &shared);
    assert_eq!(
        client.send("GET", TICKER, b"", &forged, None).await,
        (401, "signature_invalid".into())
    );
    let genuine = sign(&ed_key, &ed_id, &get, now_secs(), &shared);
    assert_eq!(client.send("GET", TICKER, b"", &genuine, None).await.0, 200);

    // Changed method, path, query or covered header (Host → @authority).
    let keys = "/admin/v1/keys";
    let h = sign(
        &ed_key,
        &ed_id,
        &unsigned("POST", &addr, keys, b""),
        now_secs(),
        &nonce(),
    );
    assert_eq!(
        client.send("GET", keys, b"", &h, None).await.1,
        "signature_invalid"
    );
    let h = sign(&ed_key, &ed_id, &get, now_secs(), &nonce());
    assert_eq!(
        client
            .send("GET", "/v1/book?venue=sim&symbol=BTC-USDT", b"", &h, None)
            .await
            .1,
        "signature_invalid"
    );
    let h = sign(&mac_key, &hmac_id, &get, now_secs(), &nonce());
    assert_eq!(
        client
            .send("GET", "/v1/ticker?venue=sim&symbol=ETH-USDT", b"", &h, None)
            .await
            .1,
        "signature_invalid"
    );
    let h = sign(&mac_key, &hmac_id, &get, now_secs(), &nonce());
    assert_eq!(
        client
            .send("GET", TICKER, b"", &h, Some("evil.example"))
            .await
            .1,
        "signature_invalid"
    );
    // Signed without the query, sent with one: the signature does not cover @query.
    let h = sign(
        &ed_key,
        &ed_id,
        &unsigned("GET", &addr, "/v1/ticker", b""),
        now_secs(),
        &nonce(),
    );
    assert_eq!(
        client.send("GET", TICKER, b"", &h, None).await.1,
        "signature_incomplete"
    );

    // Bodies: the right body passes; a changed body fails on its digest, or, with a fresh
    // digest, on the signature (content-digest is covered).
    let body = br#"{"name":"made-by-signature","scopes":["market:read"]}"#;
    let h = sign(
        &ed_key,
        &ed_id,
        &unsigned("POST", &addr, keys, body),
        now_secs(),
        &nonce(),
    );
    assert_eq!(client.send("POST", keys, body, &h, None).await.0, 201);
    let other_body = br#"{"name":"made-by-attacker","scopes":["keys:admin"]}"#;
    let h = sign(
        &ed_key,
        &ed_id,
        &unsigned("POST", &addr, keys, body),
        now_secs(),
        &nonce(),
    );
    assert_eq!(
        client.send("POST", keys, other_body, &h, None).await.1,
        "digest_mismatch"
    );
    let mut h = sign(
        &ed_key,
        &ed_id,
        &unsigned("POST", &addr, keys, body),
        now_secs(),
        &nonce(),
    );
    h.content_digest = Some(auth::httpsig::content_digest(other_body));
    assert_eq!(
        client.send("POST", keys, other_body, &h, None).await.1,
        "signature_invalid"
    );
    // Signed without a body, sent with one: content-digest is not covered.
    let h = sign(
        &ed_key,
        &ed_id,
        &unsigned("POST", &addr, keys, b""),
        now_secs(),
        &nonce(),
    );
    assert_eq!(
        client.send("POST", keys, body, &h, None).await.1,
        "signature_incomplete"
    );

    // Time window.
    let h = sign(&ed_key, &ed_id, &get, now_secs() - 60, &nonce());
    assert_eq!(
        client.send("GET", TICKER, b"", &h, None).await.1,
        "timestamp_stale"
    );
    let h = sign(&ed_key, &ed_id, &get, now_secs() + 60, &nonce());
    assert_eq!(
        client.send("GET", TICKER, b"", &h, None).await.1,
        "timestamp_future"
    );

    // Key types: a bearer key cannot sign; an hmac key cannot be sent as a bearer token;
    // the hmac secret of one key does not sign for another.
    let h = sign(&mac_key, &bearer_id, &get, now_secs(), &nonce());
    assert_eq!(
        client.send("GET", TICKER, b"", &h, None).await.1,
        "wrong_key_type"
    );
    let h = sign(&mac_key, &ed_id, &get, now_secs(), &nonce());
    assert_eq!(
        client.send("GET", TICKER, b"", &h, None).await.1,
        "wrong_key_type"
    );
    let h = sign(
        &SigningKey::hmac(b"tg_test_not_the_secret"),
        &hmac_id,
        &get,
        now_secs(),
        &nonce(),
    );
    assert_eq!(
        client.send("GET", TICKER, b"", &h, None).await.1,
        "signature_invalid"
    );
    let http = Http::new(&gateway);
    let (status, json) = Http::json(http.get(TICKER, Some(&hmac_secret)).await).await;
    assert_eq!((status, code(&json)), (401, "signature_missing"));
    let h = sign(&ed_key, "key_doesnotexist", &get, now_secs(), &nonce());
    assert_eq!(
        client.send("GET", TICKER, b"", &h, None).await.1,
        "unknown_key"
    );

    // Replays are security events in the audit log (written within about a second).
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let audit = "/admin/v1/audit?limit=1000";
    let h = sign(
        &ed_key,
        &ed_id,
        &unsigned("GET", &addr, audit, b""),
        now_secs(),
        &nonce(),
    );
    let response = client
        .http
        .get(format!("http://{addr}{audit}"))
        .header("signature-input", &h.signature_input)
        .header("signature", &h.signature)
        .send()
        .await
        .unwrap();
    let (status, json) = Http::json(response).await;
    assert_eq!(status, 200, "{json}");
    let replays: Vec<_> = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.replay_refused")
        .collect();
    assert!(!replays.is_empty(), "{json}");
    assert!(
        replays
            .iter()
            .all(|e| e["key_id"] == ed_id.as_str() || e["key_id"] == hmac_id.as_str())
    );

    // Counted in /metrics by code.
    let metrics = http.get("/metrics", NO_KEY).await.text().await.unwrap();
    for code in [
        "nonce_reused",
        "signature_invalid",
        "digest_mismatch",
        "timestamp_stale",
    ] {
        let line = metrics
            .lines()
            .find(|l| l.starts_with("tickgate_errors_total") && l.contains(&format!("\"{code}\"")))
            .unwrap_or_else(|| panic!("no metric for {code}"));
        let count: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(count >= 1, "{line}");
    }
}

#[tokio::test]
async fn admin_routes_refuse_bearer_tokens_by_default() {
    let config = auth_config("sigrequired");
    assert_eq!(
        config.auth.signature_required_scopes,
        ["keys:admin", "alerts:write"],
        "the default"
    );
    let dir = config.server.data_dir.clone();
    let (_, admin) = offline_key(&dir, "admin", &["keys:admin", "market:read"]);
    let ed = ed25519_dalek::SigningKey::from_bytes(&[21u8; 32]);
    let (ed_id, _) = create(
        &sealing_service(&dir),
        "signer",
        KeyKind::Ed25519,
        Some(public_pem(&ed)),
    );
    let gateway = start(config).await;
    let addr = gateway.local_addr().to_string();
    let http = Http::new(&gateway);
    let (status, json) = Http::json(http.get("/admin/v1/keys", Some(&admin)).await).await;
    assert_eq!((status, code(&json)), (403, "signature_required"));
    // Other scopes still take the bearer token; a signed admin request passes.
    assert_eq!(http.get(TICKER, Some(&admin)).await.status().as_u16(), 200);
    let client = Client {
        http: reqwest::Client::new(),
        addr: addr.clone(),
    };
    let key = SigningKey::ed25519(&ed.to_bytes());
    let h = sign(
        &key,
        &ed_id,
        &unsigned("GET", &addr, "/admin/v1/keys", b""),
        now_secs(),
        "only-once",
    );
    assert_eq!(
        client.send("GET", "/admin/v1/keys", b"", &h, None).await.0,
        200
    );
}

/// Behind a TLS-terminating proxy the client signs `https://…` while the gateway receives
/// plain HTTP: with `[auth] signature_scheme = "https"` signatures over `@target-uri` and
/// `@scheme` verify, and `Host: name:443` matches an `@authority` signed without the port
/// (RFC 9421 §2.2.3). With the default (`http`) the same request is refused.
#[tokio::test]
async fn signatures_made_for_https_verify_behind_a_tls_proxy() {
    use auth::httpsig::sfv::Bare;
    for (scheme, expected) in [("https", 200), ("http", 401)] {
        let mut config = sealing_config(&format!("tlsproxy-{scheme}"));
        config.auth.signature_scheme = scheme.into();
        let (key_id, secret) = create(
            &sealing_service(&config.server.data_dir),
            "behind-proxy",
            KeyKind::Hmac,
            None,
        );
        let secret = secret.unwrap();
        let gateway = start(config).await;
        // What the client saw: https://gw.example/v1/ticker?..., signed like the Python
        // library's defaults (@method, @authority, @target-uri) plus @scheme.
        let (path, query) = TICKER.split_once('?').unwrap();
        let components: Vec<String> = ["@method", "@authority", "@target-uri", "@scheme"]
            .map(String::from)
            .to_vec();
        let params = vec![
            ("created", Bare::Integer(now_secs())),
            ("keyid", Bare::String(key_id.clone().into())),
            ("nonce", Bare::String(format!("tls-{scheme}").into())),
        ];
        let client_view = auth::httpsig::RequestParts {
            method: "GET",
            scheme: "https",
            authority: "gw.example",
            path,
            query: Some(query),
            headers: &[],
        };
        let base = auth::httpsig::signature_base(&client_view, &components, &params).unwrap();
        let mac = auth::httpsig::sign_hmac_sha256(secret.as_bytes(), base.as_bytes());
        let input = format!(
            "sig1={}",
            auth::httpsig::base::signature_params(&components, &params)
        );
        let signature = format!(
            "sig1=:{}:",
            base64::engine::general_purpose::STANDARD.encode(mac)
        );
        // What the proxy forwards: plain HTTP, Host with the default port spelled out.
        let response = reqwest::Client::new()
            .get(format!("http://{}{TICKER}", gateway.local_addr()))
            .header("host", "gw.example:443")
            .header("signature-input", input)
            .header("signature", signature)
            .send()
            .await
            .unwrap();
        let (status, json) = Http::json(response).await;
        assert_eq!(status, expected, "signature_scheme = {scheme}: {json}");
        if expected == 401 {
            assert_eq!(code(&json), "signature_invalid");
        }
    }
}
