//! Helpers for the auth tests: gateways that require keys, keys made offline (as the CLI
//! does), an HTTP client that sends bearer tokens or signs requests (RFC 9421, as the SDK
//! does: the admin API refuses bearer tokens by default), WebSocket connections with a key.

use crate::support::{Ws, config};
use auth::httpsig::sign::{SigningKey, Unsigned, random_nonce, sign, sign_covering};
use auth::{KeyRing, KeyService, NewKey};
use protocol::ServerMessage;
use server::{Config, Gateway};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use store::keys::{Environment, KeyKind};
use store::keys_sqlite::SqliteKeyStore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A config requiring keys, with its own data directory and fast polling/flushing.
pub fn auth_config(name: &str) -> Config {
    let mut config = config(5.0);
    let dir = std::env::temp_dir().join(format!("tickgate-auth-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    config.server.data_dir = dir;
    config.auth.required = Some(true);
    // These tests read counters from /metrics without a key; with keys required it would
    // otherwise need metrics:read (it::auth_rejections::metrics_follow_required_by_default).
    config.auth.public_metrics = Some(true);
    config.auth.poll_interval_ms = 100;
    config.auth.usage_flush_secs = 1;
    config
}

/// The lifecycle service on a data directory, as `tickgate keys ... --data-dir` uses it.
pub fn offline_service(dir: &Path) -> KeyService {
    let store = SqliteKeyStore::open_dir(dir).unwrap();
    KeyService::new(
        Arc::new(store.clone()),
        Arc::new(store.audit_log()),
        KeyRing::default(),
        Environment::Test,
    )
}

/// Creates a key offline and returns (id, token).
pub fn offline_key(dir: &Path, name: &str, scopes: &[&str]) -> (String, String) {
    let issued = offline_service(dir)
        .create(
            NewKey {
                name: name.into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            "test",
            model::Timestamp::now().0,
        )
        .unwrap();
    let token = issued.secret.unwrap().expose().to_string();
    (issued.record.id, token)
}

/// An `ed25519` key made offline that signs requests: what an admin uses by default, since
/// `keys:admin` refuses bearer tokens (`signature_required_scopes`).
pub struct Signer {
    pub id: String,
    pub key: SigningKey,
}

/// Creates an `ed25519` key offline with a fresh key pair.
pub fn offline_signer(dir: &Path, name: &str, scopes: &[&str]) -> Signer {
    offline_principal_signer(&offline_service(dir), name, scopes, None)
}

/// Creates an `ed25519` key with `service` (e.g. one with a master key), for `principal`
/// (default: derived from the name).
pub fn offline_principal_signer(
    service: &KeyService,
    name: &str,
    scopes: &[&str],
    principal: Option<&str>,
) -> Signer {
    let seed = auth::httpsig::pem::random_ed25519_seed().unwrap();
    let issued = service
        .create(
            NewKey {
                name: name.into(),
                principal: principal.map(str::to_string),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                kind: Some(KeyKind::Ed25519),
                public_key_pem: Some(auth::httpsig::pem::ed25519_public_pem(&seed)),
                ..Default::default()
            },
            "test",
            model::Timestamp::now().0,
        )
        .unwrap();
    Signer {
        id: issued.record.id,
        key: SigningKey::ed25519(&seed),
    }
}

/// No credentials (for the generic [`Http`] methods).
pub const NO_KEY: Option<&str> = None;

/// How a test request authenticates: a bearer token (`str`, `String`) or a [`Signer`].
pub trait Credential {
    /// Adds the credential to `request` (`target`: path and query; `body`: the exact bytes).
    fn apply(
        &self,
        request: reqwest::RequestBuilder,
        method: &str,
        authority: &str,
        target: &str,
        body: &[u8],
    ) -> reqwest::RequestBuilder;
}

impl Credential for str {
    fn apply(
        &self,
        request: reqwest::RequestBuilder,
        _: &str,
        _: &str,
        _: &str,
        _: &[u8],
    ) -> reqwest::RequestBuilder {
        request.bearer_auth(self)
    }
}

impl Credential for String {
    fn apply(
        &self,
        request: reqwest::RequestBuilder,
        method: &str,
        authority: &str,
        target: &str,
        body: &[u8],
    ) -> reqwest::RequestBuilder {
        self.as_str()
            .apply(request, method, authority, target, body)
    }
}

impl Credential for Signer {
    fn apply(
        &self,
        request: reqwest::RequestBuilder,
        method: &str,
        authority: &str,
        target: &str,
        body: &[u8],
    ) -> reqwest::RequestBuilder {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let unsigned = Unsigned {
            method,
            authority,
            path,
            query,
            body,
        };
        let created = model::Timestamp::now().0.div_euclid(1_000_000);
        let h = sign(
            &self.key,
            &self.id,
            &unsigned,
            created,
            &random_nonce().unwrap(),
        );
        let mut request = request
            .header("signature-input", h.signature_input)
            .header("signature", h.signature);
        if let Some(digest) = h.content_digest {
            request = request.header("content-digest", digest);
        }
        request
    }
}

/// A [`Signer`] sending `TOTP-Code: code`, covered by the signature or (to test the refusal)
/// not.
pub struct WithTotp<'a> {
    pub signer: &'a Signer,
    pub code: String,
    pub covered: bool,
}

impl Credential for WithTotp<'_> {
    fn apply(
        &self,
        request: reqwest::RequestBuilder,
        method: &str,
        authority: &str,
        target: &str,
        body: &[u8],
    ) -> reqwest::RequestBuilder {
        if !self.covered {
            return self
                .signer
                .apply(request, method, authority, target, body)
                .header("totp-code", &self.code);
        }
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let unsigned = Unsigned {
            method,
            authority,
            path,
            query,
            body,
        };
        let created = model::Timestamp::now().0.div_euclid(1_000_000);
        let h = sign_covering(
            &self.signer.key,
            &self.signer.id,
            &unsigned,
            &[("totp-code", &self.code)],
            created,
            &random_nonce().unwrap(),
        );
        let mut request = request
            .header("signature-input", h.signature_input)
            .header("signature", h.signature)
            .header("totp-code", &self.code);
        if let Some(digest) = h.content_digest {
            request = request.header("content-digest", digest);
        }
        request
    }
}

/// An HTTP client for one gateway.
pub struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    pub fn new(gateway: &Gateway) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: format!("http://{}", gateway.local_addr()),
        }
    }

    fn authority(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    pub async fn get<C: Credential + ?Sized>(
        &self,
        path: &str,
        token: Option<&C>,
    ) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = token.apply(request, "GET", self.authority(), path, b"");
        }
        request.send().await.expect("request")
    }

    pub async fn send<C: Credential + ?Sized>(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&C>,
        body: serde_json::Value,
    ) -> reqwest::Response {
        let body = serde_json::to_vec(&body).unwrap();
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = token.apply(request, method.as_str(), self.authority(), path, &body);
        }
        request.body(body).send().await.expect("request")
    }

    pub async fn post<C: Credential + ?Sized>(
        &self,
        path: &str,
        token: Option<&C>,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, token, body).await
    }

    /// Status and JSON body.
    pub async fn json(response: reqwest::Response) -> (u16, serde_json::Value) {
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    /// Creates a key through the admin API; returns (id, token).
    pub async fn create_key<C: Credential + ?Sized>(
        &self,
        admin: &C,
        body: serde_json::Value,
    ) -> (String, String) {
        let (status, json) = Self::json(self.post("/admin/v1/keys", Some(admin), body).await).await;
        assert_eq!(status, 201, "{json}");
        (
            json["id"].as_str().unwrap().to_string(),
            json["token"].as_str().unwrap().to_string(),
        )
    }
}

/// `"code"` of a JSON error body.
pub fn code(json: &serde_json::Value) -> &str {
    json["code"].as_str().unwrap_or("")
}

/// Connects with `Authorization: Bearer <token>`.
pub async fn connect_with(gateway: &Gateway, token: &str) -> Ws {
    let mut request = format!("ws://{}/v1/ws", gateway.local_addr())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket connects");
    ws
}

/// Opens a WebSocket with `request`: Ok((socket, first message)) or, when the upgrade is
/// refused, Err((HTTP status, error code of the JSON body)).
pub async fn connect_outcome(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> Result<(Ws, ServerMessage), (u16, String)> {
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut ws, _)) => match next(&mut ws, Duration::from_secs(2)).await {
            Next::Msg(m) => Ok((ws, *m)),
            other => panic!("no first message: {other:?}"),
        },
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            Err((response.status().as_u16(), code(&json).to_string()))
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// What came next on a socket.
#[derive(Debug)]
pub enum Next {
    Msg(Box<ServerMessage>),
    Closed(u16),
    Nothing,
}

pub async fn next(ws: &mut Ws, limit: Duration) -> Next {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let Ok(item) = tokio::time::timeout_at(deadline, ws.next()).await else {
            return Next::Nothing;
        };
        match item {
            Some(Ok(Message::Text(text))) => {
                return Next::Msg(Box::new(
                    serde_json::from_str(&text).expect("parseable message"),
                ));
            }
            Some(Ok(Message::Close(frame))) => {
                return Next::Closed(frame.map_or(1005, |f| u16::from(f.code)));
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Next::Closed(1006),
        }
    }
}

/// Skips data messages until an error and then a close arrive; returns (code, close code) and
/// the time it took.
pub async fn until_error_and_close(ws: &mut Ws, limit: Duration) -> (String, u16, Duration) {
    let start = tokio::time::Instant::now();
    let mut error = String::new();
    loop {
        match next(ws, limit.saturating_sub(start.elapsed())).await {
            Next::Msg(m) if matches!(*m, ServerMessage::Error(_)) => {
                if let ServerMessage::Error(e) = *m {
                    error = e.code.as_str().to_string();
                }
            }
            Next::Msg(_) => continue,
            Next::Closed(code) => return (error, code, start.elapsed()),
            Next::Nothing => panic!("no close within {limit:?} (last error {error:?})"),
        }
    }
}
