//! The dashboard over real HTTP: the page and its security headers, the login that turns a key
//! into a signed session cookie, CSRF and Origin checks, the cookie checked against the live
//! key index (revocation at once), anonymous access only where the deployment allows it, and
//! the admin overview. The page's behaviour in a browser is tested by
//! `crates/server/ui/test/browser.mjs` (`.ci/dashboard.sh`).

use crate::auth_support::*;
use crate::support::*;
use protocol::ServerMessage;
use reqwest::header::HeaderMap;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

struct Page {
    client: reqwest::Client,
    base: String,
    origin: String,
}

impl Page {
    fn new(gateway: &server::Gateway) -> Self {
        let base = format!("http://{}", gateway.local_addr());
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            origin: base.clone(),
            base,
        }
    }

    fn authority(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// A request as the page sends it: same Origin, the cookie if any.
    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut r = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("origin", &self.origin);
        if let Some(c) = cookie {
            r = r.header("cookie", format!("tg_ui={c}"));
        }
        r
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> (u16, HeaderMap, serde_json::Value) {
        done(self.request(reqwest::Method::GET, path, cookie)).await
    }

    /// Logs in with a bearer token; returns (cookie value, Set-Cookie, session JSON).
    async fn login(&self, token: &str) -> (String, String, serde_json::Value) {
        let (status, headers, json) = done(
            self.request(reqwest::Method::POST, "/ui/api/login", None)
                .bearer_auth(token),
        )
        .await;
        assert_eq!(status, 200, "{json}");
        let set = set_cookie(&headers);
        (cookie_value(&set), set, json)
    }

    async fn ws_token(&self, cookie: &str, csrf: &str) -> (u16, serde_json::Value) {
        let (status, _, json) = done(
            self.request(reqwest::Method::POST, "/ui/api/ws-token", Some(cookie))
                .header("x-csrf-token", csrf),
        )
        .await;
        (status, json)
    }
}

async fn done(request: reqwest::RequestBuilder) -> (u16, HeaderMap, serde_json::Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let json = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, headers, json)
}

fn set_cookie(headers: &HeaderMap) -> String {
    headers
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn cookie_value(set_cookie: &str) -> String {
    let first = set_cookie.split(';').next().unwrap();
    first
        .strip_prefix("tg_ui=")
        .expect("the tg_ui cookie")
        .to_string()
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_content_security_policy() {
    let gateway = start(config(5.0)).await;
    let page = Page::new(&gateway);
    for path in ["/", "/ui/"] {
        let response = page
            .client
            .get(format!("{}{path}", page.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let h = response.headers().clone();
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        let csp = h["content-security-policy"].to_str().unwrap();
        for part in [
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(part), "{csp} lacks {part}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["cache-control"], "no-store");
        let html = response.text().await.unwrap();
        // No inline script, style or event handler: the CSP would block them anyway.
        for tag in html.split("<script").skip(1) {
            assert!(
                tag.split('>').next().unwrap().contains("src="),
                "inline script in {path}"
            );
        }
        assert!(!html.contains("<style"), "inline style block");
        assert!(!html.contains(" style="), "inline style attribute");
        assert!(
            !html.contains(" onclick=") && !html.contains(" onload="),
            "inline handler"
        );
    }
    let response = page
        .client
        .get(format!("{}/ui/js/book.js", page.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(response.headers()["cache-control"], "no-cache");
    assert!(response.headers().contains_key("content-security-policy"));
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("export class BookMirror")
    );
    // The vendored chart library, with its licence, is served from the binary.
    let (status, _, _) = page
        .get("/ui/vendor/LICENSE-lightweight-charts.txt", None)
        .await;
    assert_eq!(status, 200);
    let (status, _, json) = page.get("/ui/nope.js", None).await;
    assert_eq!((status, code(&json)), (404, "not_found"));
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_login_turns_a_key_into_a_signed_session_cookie() {
    let config = auth_config("ui-login");
    let dir = config.server.data_dir.clone();
    let (key_id, token) = offline_key(&dir, "viewer", &["market:read", "history:read"]);
    let gateway = start(config).await;
    let page = Page::new(&gateway);

    let (cookie, set, session) = page.login(&token).await;
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui/", "Max-Age=1800"] {
        assert!(set.contains(attribute), "{set} lacks {attribute}");
    }
    assert!(
        !set.contains("Secure"),
        "plain http: no Secure flag ({set})"
    );
    assert!(
        !cookie.contains(&token) && !cookie.contains("tg_test_"),
        "the cookie holds no key"
    );
    assert_eq!(session["key_id"], key_id.as_str());
    let csrf = session["csrf"].as_str().unwrap().to_string();
    assert!(
        session["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "market:read")
    );

    let (status, headers, state) = page.get("/ui/api/session", Some(&cookie)).await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(state["auth_required"], true);
    assert_eq!(state["session"]["key_id"], key_id.as_str());
    assert_eq!(state["session"]["csrf"], csrf.as_str());

    // The page's reads work with the cookie, exactly as /v1 answers them.
    let (status, _, json) = page.get("/ui/api/instruments", Some(&cookie)).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["instruments"].as_array().unwrap().len(), 3);
    let (status, _, json) = page
        .get(
            "/ui/api/candles?venue=sim&symbol=BTC-USDT&interval=1s&limit=5",
            Some(&cookie),
        )
        .await;
    assert_eq!(status, 200, "{json}");
    assert!(json["candles"].is_array());
    let (status, _, json) = page
        .get(
            "/ui/api/candles?venue=sim&symbol=BTC-USDT&interval=2m",
            Some(&cookie),
        )
        .await;
    assert_eq!((status, code(&json)), (400, "unknown_interval"));
    let (status, _, json) = page
        .get(
            "/ui/api/trades?venue=sim&symbol=BTC-USDT&bogus=1",
            Some(&cookie),
        )
        .await;
    assert_eq!((status, code(&json)), (400, "bad_param"));

    // A single-use WebSocket token for the session's key.
    let (status, json) = page.ws_token(&cookie, &csrf).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["key_id"], key_id.as_str());
    let url = format!(
        "ws://{}/v1/ws?token={}",
        gateway.local_addr(),
        json["token"].as_str().unwrap()
    );
    match connect_outcome(url.into_client_request().unwrap()).await {
        Ok((_, ServerMessage::Authenticated { key_id: k, .. })) => assert_eq!(k, key_id),
        other => panic!("expected authenticated, got {:?}", other.map(|(_, m)| m)),
    }

    // Log out: the cookie is cleared.
    let (status, headers, _) =
        done(page.request(reqwest::Method::POST, "/ui/api/logout", Some(&cookie))).await;
    assert_eq!(status, 200);
    assert!(set_cookie(&headers).contains("Max-Age=0"));
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn cookie_requests_that_change_state_need_the_page_origin_and_the_csrf_token() {
    let config = auth_config("ui-csrf");
    let dir = config.server.data_dir.clone();
    let (_, token) = offline_key(&dir, "viewer", &["market:read"]);
    let gateway = start(config).await;
    let page = Page::new(&gateway);
    let (cookie, _, session) = page.login(&token).await;
    let csrf = session["csrf"].as_str().unwrap();
    let url = format!("{}/ui/api/ws-token", page.base);
    let post = || {
        page.client
            .post(&url)
            .header("cookie", format!("tg_ui={cookie}"))
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "no Origin",
            post().header("x-csrf-token", csrf),
            403,
            "csrf_rejected",
        ),
        (
            "another Origin",
            post()
                .header("origin", "http://evil.example")
                .header("x-csrf-token", csrf),
            403,
            "csrf_rejected",
        ),
        (
            "https Origin on an http gateway",
            post()
                .header("origin", page.base.replace("http", "https"))
                .header("x-csrf-token", csrf),
            403,
            "csrf_rejected",
        ),
        (
            "no CSRF token",
            post().header("origin", &page.origin),
            403,
            "csrf_rejected",
        ),
        (
            "a wrong CSRF token",
            post()
                .header("origin", &page.origin)
                .header("x-csrf-token", "AAAA"),
            403,
            "csrf_rejected",
        ),
        (
            "no cookie",
            page.client
                .post(&url)
                .header("origin", &page.origin)
                .header("x-csrf-token", csrf),
            401,
            "session_invalid",
        ),
    ];
    for (name, request, status, want) in cases {
        let (got, _, json) = done(request).await;
        assert_eq!((got, code(&json)), (status, want), "{name}: {json}");
    }
    // Login and logout check the Origin too.
    let (status, _, json) = done(
        page.client
            .post(format!("{}/ui/api/login", page.base))
            .header("origin", "http://evil.example")
            .bearer_auth(&token),
    )
    .await;
    assert_eq!((status, code(&json)), (403, "csrf_rejected"));
    let (status, _, json) = done(page.client.post(format!("{}/ui/api/logout", page.base))).await;
    assert_eq!((status, code(&json)), (403, "csrf_rejected"));
    // The refusals are counted by code.
    assert!(metric(&gateway, "tickgate_errors_total{code=\"csrf_rejected\"}").await >= 7);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_tampered_cookie_is_refused_and_cleared() {
    let config = auth_config("ui-tamper");
    let dir = config.server.data_dir.clone();
    let (_, token) = offline_key(&dir, "viewer", &["market:read"]);
    let (other_id, _) = offline_key(&dir, "other", &["market:read"]);
    let gateway = start(config).await;
    let page = Page::new(&gateway);
    let (cookie, _, session) = page.login(&token).await;
    let key_id = session["key_id"].as_str().unwrap();
    let forged = [
        cookie.replace(key_id, &other_id),
        format!("{cookie}A"),
        "v1.key_x.99999999999.AAAAAAAAAAAAAAAAAAAAAA.AAAA".to_string(),
        "garbage".to_string(),
    ];
    for bad in &forged {
        let (status, headers, json) = page.get("/ui/api/instruments", Some(bad)).await;
        assert_eq!((status, code(&json)), (401, "session_invalid"), "{bad}");
        assert!(set_cookie(&headers).contains("Max-Age=0"));
        let (status, headers, state) = page.get("/ui/api/session", Some(bad)).await;
        assert_eq!(status, 200);
        assert_eq!(state["session"], serde_json::Value::Null);
        assert_eq!(state["reason"], "session_invalid");
        assert!(set_cookie(&headers).contains("Max-Age=0"));
    }
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn revoking_the_key_ends_its_dashboard_sessions_at_once() {
    let config = auth_config("ui-revoke");
    let dir = config.server.data_dir.clone();
    let (key_id, token) = offline_key(&dir, "viewer", &["market:read"]);
    let admin = offline_signer(&dir, "ops", &["keys:admin"]);
    let gateway = start(config).await;
    let page = Page::new(&gateway);
    let http = Http::new(&gateway);
    let (cookie, _, session) = page.login(&token).await;
    let (status, _, _) = page.get("/ui/api/instruments", Some(&cookie)).await;
    assert_eq!(status, 200);
    let (status, json) = Http::json(
        http.post(
            &format!("/admin/v1/keys/{key_id}/revoke"),
            Some(&admin),
            serde_json::json!({"reason": "test"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{json}");
    // No poll interval to wait for: the cookie names the key, the index says it is revoked.
    let (status, _, json) = page.get("/ui/api/instruments", Some(&cookie)).await;
    assert_eq!((status, code(&json)), (401, "key_revoked"));
    let (status, json) = page
        .ws_token(&cookie, session["csrf"].as_str().unwrap())
        .await;
    assert_eq!((status, code(&json)), (401, "key_revoked"));
    let (_, _, state) = page.get("/ui/api/session", Some(&cookie)).await;
    assert_eq!(state["reason"], "key_revoked");
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_session_a_required_deployment_shows_nothing_but_the_login() {
    let config = auth_config("ui-anon");
    let gateway = start(config).await;
    let page = Page::new(&gateway);
    let (status, _, _) = page.get("/ui/", None).await;
    assert_eq!(
        status, 200,
        "the page itself (with its login form) is public"
    );
    let (_, _, state) = page.get("/ui/api/session", None).await;
    assert_eq!(
        state,
        serde_json::json!({"auth_required": true, "session": null})
    );
    for path in [
        "/ui/api/instruments",
        "/ui/api/candles?venue=sim&symbol=BTC-USDT",
        "/ui/api/trades?venue=sim&symbol=BTC-USDT",
    ] {
        let (status, _, json) = page.get(path, None).await;
        assert_eq!(
            (status, code(&json)),
            (401, "missing_credentials"),
            "{path}"
        );
    }
    let (status, _, json) = done(page.request(reqwest::Method::POST, "/ui/api/login", None)).await;
    assert_eq!((status, code(&json)), (401, "missing_credentials"));
    let (status, _, json) = done(
        page.request(reqwest::Method::POST, "/ui/api/login", None)
            .bearer_auth("tg_test_nope"),
    )
    .await;
    assert_eq!((status, code(&json)), (401, "malformed_key"));
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn anonymous_reads_where_the_deployment_allows_them() {
    let gateway = start(config(5.0)).await;
    let page = Page::new(&gateway);
    let (_, _, state) = page.get("/ui/api/session", None).await;
    assert_eq!(
        state,
        serde_json::json!({"auth_required": false, "session": null})
    );
    let (status, _, _) = page.get("/ui/api/instruments", None).await;
    assert_eq!(status, 200);
    // Anonymous visitors connect without a token; a token needs a session.
    let (status, _, json) =
        done(page.request(reqwest::Method::POST, "/ui/api/ws-token", None)).await;
    assert_eq!((status, code(&json)), (401, "session_invalid"));
    // Logging in needs a key even here.
    let (status, _, json) = done(page.request(reqwest::Method::POST, "/ui/api/login", None)).await;
    assert_eq!((status, code(&json)), (401, "missing_credentials"));
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_signing_key_logs_in_with_a_signature_and_the_session_ends_with_the_key() {
    let mut config = auth_config("ui-signed");
    config.auth.signature_scheme = "https".into();
    let dir = config.server.data_dir.clone();
    let signer = offline_signer(&dir, "viewer", &["market:read"]);
    // A bearer key that expires in 90 s: its session cannot outlive it.
    let issued = offline_service(&dir)
        .create(
            auth::NewKey {
                name: "short".into(),
                scopes: vec!["market:read".into()],
                expires_in_secs: Some(90),
                ..Default::default()
            },
            "test",
            model::Timestamp::now().0,
        )
        .unwrap();
    let short = issued.secret.unwrap().expose().to_string();
    let gateway = start(config).await;
    let mut page = Page::new(&gateway);
    // Behind a TLS proxy the page's origin is https.
    page.origin = page.base.replace("http://", "https://");

    let request = page.request(reqwest::Method::POST, "/ui/api/login", None);
    let request = signer.apply(request, "POST", page.authority(), "/ui/api/login", b"");
    let (status, headers, json) = done(request).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["key_id"], signer.id.as_str());
    let set = set_cookie(&headers);
    assert!(set.contains("; Secure"), "https deployment: Secure ({set})");

    let (status, headers, _) = done(
        page.request(reqwest::Method::POST, "/ui/api/login", None)
            .bearer_auth(&short),
    )
    .await;
    assert_eq!(status, 200);
    let max_age: i64 = set_cookie(&headers)
        .split("Max-Age=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (80..=90).contains(&max_age),
        "session capped at the key's expiry: {max_age}"
    );
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_disabled_dashboard_serves_nothing() {
    let mut config = config(5.0);
    config.ui.enabled = false;
    let gateway = start(config).await;
    let page = Page::new(&gateway);
    for path in ["/", "/ui/", "/ui/js/app.js", "/ui/api/instruments"] {
        let (status, _, json) = page.get(path, None).await;
        assert_eq!((status, code(&json)), (404, "not_found"), "{path}");
    }
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn the_admin_overview_shows_live_sessions_and_rejections() {
    let config = auth_config("ui-overview");
    let dir = config.server.data_dir.clone();
    let (key_id, token) = offline_key(&dir, "viewer", &["market:read"]);
    let admin = offline_signer(&dir, "ops", &["keys:admin"]);
    let gateway = start(config).await;
    let http = Http::new(&gateway);
    let _ws = connect_with(&gateway, &token).await;
    let _ = http.get("/v1/instruments", Some("tg_test_nope")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let json = loop {
        let (status, json) = Http::json(http.get("/admin/v1/overview", Some(&admin)).await).await;
        assert_eq!(status, 200, "{json}");
        if json["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["key_id"] == key_id.as_str())
            || tokio::time::Instant::now() > deadline
        {
            break json;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mine = json["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key_id"] == key_id.as_str())
        .unwrap_or_else(|| panic!("no session for {key_id}: {json}"));
    assert_eq!(mine["connections"], 1);
    assert!(
        json["rejections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["code"] == "malformed_key" && r["key"] == "none"),
        "{json}"
    );
    assert!(json["audit_head"]["seq"].as_u64().unwrap() >= 2, "{json}");
    assert_eq!(json["keys"], 2);
    assert_eq!(json["connections_open"], 1);
    // An admin route like the others: a reader's bearer key lacks the scope (and a bearer key
    // with it would be told to sign), parameters checked.
    let (status, json) = Http::json(http.get("/admin/v1/overview", Some(&token)).await).await;
    assert_eq!((status, code(&json)), (403, "insufficient_scope"));
    let (status, json) = Http::json(http.get("/admin/v1/overview?x=1", Some(&admin)).await).await;
    assert_eq!((status, code(&json)), (400, "bad_param"));
    gateway.stop().await.unwrap();
}
