//! Where `tickgate keys ...` and `tickgate audit verify` act: offline on the configured store
//! (the data directory, or the cluster's PostgreSQL when `[cluster] postgres_url` is set; the
//! same lifecycle code the server runs), or online against a running gateway's admin API.
//! Both return the admin API's JSON shapes, so output is the same either way.

use super::credentials::{SignArgs, resolve};
use anyhow::{Context, bail};
use auth::SecretString;
use auth::{KeyInfo, KeyRing, KeyService, KeyUpdate, NewKey, issued_json};
use clap::Args;
use client::Credentials;
use serde_json::{Value, json};
use server::Config;
use std::path::PathBuf;
use store::audit::hex32;
use store::keys::{Granularity, KeyFilter, KeyKind, KeyStatus};

#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// Configuration file: `[auth]` environment and master key file, `server.data_dir`.
    #[arg(long, short, env = "TICKGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Work offline on this data directory (default: `server.data_dir` of the config).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Talk to a running gateway's admin API instead, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub url: Option<String>,
    /// Bearer key with the keys:admin scope, for --url (refused by default: the gateway's
    /// signature_required_scopes include keys:admin; sign with --key-id instead). Prefer the
    /// environment variable: command lines are visible to other users.
    #[arg(long, env = "TICKGATE_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<SecretString>,
    #[command(flatten)]
    pub sign: SignArgs,
    /// With --url: the current TOTP code of the signing key's principal, sent in `TOTP-Code`
    /// and covered by the signature (needed for critical operations once the principal is
    /// enrolled: revoke, suspend, rewrap, scope or allow-list changes). Six to ten digits.
    #[arg(long, env = "TICKGATE_TOTP_CODE", hide_env_values = true)]
    pub totp_code: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug)]
pub enum Backend {
    Offline {
        service: KeyService,
        actor: String,
        /// Where the offline stores live (the alert store is opened only by `rewrap`).
        config: Box<Config>,
    },
    Online {
        client: reqwest::Client,
        base: String,
        /// The `Host` header sent to `base`, covered by signatures as `@authority`.
        authority: String,
        credentials: Credentials,
        /// `--totp-code`, sent and covered on every call.
        totp_code: Option<String>,
    },
}

/// A TOTP code as `--totp-code` takes it: 6 to 10 ASCII digits (RFC 6238 codes).
fn totp_code(text: &str) -> anyhow::Result<String> {
    let code = text.trim();
    if !(6..=10).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
        bail!("--totp-code must be the 6 to 10 digits your authenticator shows");
    }
    Ok(code.to_string())
}

fn now() -> i64 {
    model::Timestamp::now().0
}

impl Backend {
    pub fn open(args: &TargetArgs) -> anyhow::Result<Self> {
        if let Some(url) = &args.url {
            let base = url.trim_end_matches('/').to_string();
            if !base.starts_with("http://") && !base.starts_with("https://") {
                bail!("--url must start with http:// or https://");
            }
            let credentials = resolve(&args.sign, args.admin_key.as_ref())?.context(
                "--url needs a keys:admin key: sign with --key-id (TICKGATE_KEY_ID) and \
                 --ed25519-key or an hmac secret, or set TICKGATE_ADMIN_KEY",
            )?;
            let authority = client::Endpoint::parse(&base)?.authority()?;
            let totp_code = args.totp_code.as_deref().map(totp_code).transpose()?;
            if totp_code.is_some() && credentials.key_id().is_none() {
                bail!(
                    "--totp-code must be covered by a signature: sign with --key-id and \
                     --ed25519-key or an hmac secret instead of a bearer key"
                );
            }
            return Ok(Self::Online {
                client: reqwest::Client::new(),
                base,
                authority,
                credentials,
                totp_code,
            });
        }
        if args.totp_code.is_some() {
            bail!(
                "--totp-code is for --url (the admin API); offline commands on the data \
                 directory need none"
            );
        }
        let mut config = Config::load(args.config.as_deref())?;
        if let Some(dir) = &args.data_dir {
            config.server.data_dir = dir.clone();
        }
        let ring = KeyRing::load(&config.auth.master_key_sources())?;
        // SQLite in the data directory, or the cluster's PostgreSQL (`[cluster] postgres_url`).
        let store = server::stores::open_blocking(&config).with_context(|| {
            format!("cannot open {}", server::stores::Opened::describe(&config))
        })?;
        let service = KeyService::new(store.keys(), store.audit(), ring, config.auth.environment);
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        Ok(Self::Offline {
            service,
            actor: format!("cli:{user}"),
            config: Box::new(config),
        })
    }

    pub fn offline(&self) -> Option<&KeyService> {
        match self {
            Self::Offline { service, .. } => Some(service),
            Self::Online { .. } => None,
        }
    }

    /// One admin API call; a non-2xx answer becomes an error naming its code.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let Self::Online {
            client,
            base,
            authority,
            credentials,
            totp_code,
        } = self
        else {
            bail!("not connected to a server");
        };
        // Sign what is sent: the URL's path and query as reqwest will write them, the exact
        // body bytes.
        let url = reqwest::Url::parse(&format!("{base}{path}"))
            .with_context(|| format!("invalid URL {base}{path}"))?;
        let body = body.map(|b| serde_json::to_vec(&b)).transpose()?;
        let unsigned = client::Unsigned {
            method: method.as_str(),
            authority,
            path: url.path(),
            query: url.query(),
            body: body.as_deref().unwrap_or_default(),
        };
        let covered: Vec<(&str, &str)> = totp_code
            .as_deref()
            .map(|code| ("totp-code", code))
            .into_iter()
            .collect();
        let headers = credentials.headers_covering(&unsigned, &covered)?;
        let mut request = client.request(method, url);
        for (name, value) in &covered {
            request = request.header(*name, *value);
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {base} (is `tickgate serve` running?)"))?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "{} {}: {}",
                status.as_u16(),
                value["code"].as_str().unwrap_or("error"),
                value["message"].as_str().unwrap_or("")
            );
        }
        Ok(value)
    }

    pub async fn create(&self, request: NewKey) -> anyhow::Result<Value> {
        match self {
            Self::Offline { service, actor, .. } => {
                let issued = service.create(request, actor, now())?;
                Ok(issued_json(&issued.record, issued.secret, now()))
            }
            Self::Online { .. } => {
                let mut body = json!({
                    "name": request.name,
                    "scopes": request.scopes,
                    "type": request.kind.unwrap_or(KeyKind::Bearer),
                });
                if let Some(p) = request.principal {
                    body["principal"] = p.into();
                }
                if let Some(pem) = request.public_key_pem {
                    body["public_key"] = pem.into();
                }
                if let Some(s) = request.expires_in_secs {
                    body["expires_in"] = s.to_string().into();
                }
                if let Some(s) = request.max_age_secs {
                    body["max_age"] = s.to_string().into();
                }
                if let Some(m) = request.metadata {
                    body["metadata"] = m;
                }
                if let Some(r) = request.rate_limit {
                    body["rate_limit"] = json!(r);
                }
                self.call(reqwest::Method::POST, "/admin/v1/keys", Some(body))
                    .await
            }
        }
    }

    pub async fn list(&self, filter: KeyFilter) -> anyhow::Result<Value> {
        match self {
            Self::Offline { service, .. } => {
                let at = now();
                let keys: Vec<KeyInfo> = service
                    .store()
                    .list(&filter)?
                    .iter()
                    .map(|r| KeyInfo::new(r, at))
                    .collect();
                Ok(json!({ "keys": keys }))
            }
            Self::Online { .. } => {
                let mut query = Vec::new();
                if let Some(p) = &filter.principal {
                    query.push(format!("principal={p}"));
                }
                if let Some(s) = filter.status {
                    query.push(format!("status={s}"));
                }
                if let Some(k) = filter.kind {
                    query.push(format!("type={k}"));
                }
                if let Some(h) = filter.token_hash {
                    query.push(format!("token_sha256={}", hex32::encode(&h)));
                }
                let path = format!("/admin/v1/keys?{}", query.join("&"));
                self.call(reqwest::Method::GET, &path, None).await
            }
        }
    }

    pub async fn show(&self, id: &str) -> anyhow::Result<Value> {
        match self {
            Self::Offline { service, .. } => Ok(json!(KeyInfo::new(&service.get(id)?, now()))),
            Self::Online { .. } => {
                self.call(reqwest::Method::GET, &format!("/admin/v1/keys/{id}"), None)
                    .await
            }
        }
    }

    pub async fn rotate(
        &self,
        id: &str,
        grace_secs: u64,
        public_key: Option<String>,
    ) -> anyhow::Result<Value> {
        match self {
            Self::Offline { service, actor, .. } => {
                let (old, issued) =
                    service.rotate(id, grace_secs, public_key.as_deref(), actor, now())?;
                let mut out = issued_json(&issued.record, issued.secret, now());
                out["previous"] = json!(KeyInfo::new(&old, now()));
                Ok(out)
            }
            Self::Online { .. } => {
                let mut body = json!({ "grace_seconds": grace_secs });
                if let Some(pem) = public_key {
                    body["public_key"] = pem.into();
                }
                self.call(
                    reqwest::Method::POST,
                    &format!("/admin/v1/keys/{id}/rotate"),
                    Some(body),
                )
                .await
            }
        }
    }

    pub async fn cancel_rotation(&self, id: &str) -> anyhow::Result<Value> {
        match self {
            Self::Offline { service, actor, .. } => {
                let (key, revoked) = service.cancel_rotation(id, actor, now())?;
                Ok(
                    json!({ "key": KeyInfo::new(&key, now()), "revoked_successor": KeyInfo::new(&revoked, now()) }),
                )
            }
            Self::Online { .. } => {
                self.call(
                    reqwest::Method::POST,
                    &format!("/admin/v1/keys/{id}/rotate/cancel"),
                    Some(json!({})),
                )
                .await
            }
        }
    }

    pub async fn revoke(&self, id: &str, reason: &str) -> anyhow::Result<Value> {
        match self {
            Self::Offline { service, actor, .. } => Ok(json!(KeyInfo::new(
                &service.revoke(id, reason, actor, now())?,
                now()
            ))),
            Self::Online { .. } => {
                self.call(
                    reqwest::Method::POST,
                    &format!("/admin/v1/keys/{id}/revoke"),
                    Some(json!({ "reason": reason })),
                )
                .await
            }
        }
    }

    pub async fn leaked(&self, id: &str, public_key: Option<String>) -> anyhow::Result<Value> {
        match self {
            Self::Offline { service, actor, .. } => {
                let leaked = service.leaked(id, public_key.as_deref(), actor, now())?;
                Ok(leaked.json(now()))
            }
            Self::Online { .. } => {
                self.call(
                    reqwest::Method::POST,
                    &format!("/admin/v1/keys/{id}/leaked"),
                    Some(json!({ "public_key": public_key })),
                )
                .await
            }
        }
    }

    pub async fn suspend(&self, id: &str, reason: &str) -> anyhow::Result<Value> {
        match self {
            Self::Offline { service, actor, .. } => Ok(json!(KeyInfo::new(
                &service.suspend(id, reason, actor, now())?,
                now()
            ))),
            Self::Online { .. } => {
                self.call(
                    reqwest::Method::POST,
                    &format!("/admin/v1/keys/{id}/suspend"),
                    Some(json!({ "reason": reason })),
                )
                .await
            }
        }
    }

    pub async fn resume(&self, id: &str) -> anyhow::Result<Value> {
        match self {
            Self::Offline { service, actor, .. } => Ok(json!(KeyInfo::new(
                &service.resume(id, actor, now())?,
                now()
            ))),
            Self::Online { .. } => {
                self.call(
                    reqwest::Method::POST,
                    &format!("/admin/v1/keys/{id}/resume"),
                    None,
                )
                .await
            }
        }
    }

    pub async fn totp_enroll(
        &self,
        id: &str,
        algorithm: auth::totp::TotpAlgorithm,
        replace: bool,
    ) -> anyhow::Result<Value> {
        match self {
            Self::Offline { service, actor, .. } => {
                let (e, uri) = service.totp_enroll(id, algorithm, replace, actor, now())?;
                Ok(json!({
                    "principal": e.principal, "algorithm": e.algorithm, "digits": e.digits,
                    "period": e.period, "otpauth_uri": uri.expose(),
                }))
            }
            Self::Online { .. } => {
                self.call(
                    reqwest::Method::POST,
                    &format!("/admin/v1/keys/{id}/totp"),
                    Some(
                        json!({ "algorithm": algorithm.name().to_lowercase(), "replace": replace }),
                    ),
                )
                .await
            }
        }
    }

    pub async fn update(&self, id: &str, change: KeyUpdate) -> anyhow::Result<Value> {
        match self {
            Self::Offline { service, actor, .. } => Ok(json!(KeyInfo::new(
                &service.update(id, change, actor, now())?,
                now()
            ))),
            Self::Online { .. } => {
                let mut body = json!({});
                if let Some(s) = change.scopes {
                    body["scopes"] = json!(s);
                }
                if let Some(n) = change.name {
                    body["name"] = n.into();
                }
                if let Some(m) = change.metadata {
                    body["metadata"] = m;
                }
                if let Some(r) = change.rate_limit {
                    body["rate_limit"] = json!(r);
                }
                if let Some(a) = change.max_age_secs {
                    body["max_age"] = a.to_string().into();
                }
                self.call(
                    reqwest::Method::PATCH,
                    &format!("/admin/v1/keys/{id}"),
                    Some(body),
                )
                .await
            }
        }
    }

    pub async fn usage(
        &self,
        id: &str,
        granularity: Granularity,
        since: i64,
    ) -> anyhow::Result<Value> {
        match self {
            Self::Offline { service, .. } => {
                let record = service.get(id)?;
                let buckets = service.store().usage(id, granularity, since)?;
                Ok(json!({
                    "key_id": record.id, "granularity": granularity,
                    "last_used_at": record.last_used_at, "last_used_addr": record.last_used_addr,
                    "buckets": buckets,
                }))
            }
            Self::Online { .. } => {
                let path =
                    format!("/admin/v1/keys/{id}/usage?granularity={granularity}&since={since}");
                self.call(reqwest::Method::GET, &path, None).await
            }
        }
    }

    pub async fn rewrap(&self) -> anyhow::Result<Value> {
        match self {
            Self::Offline {
                service,
                actor,
                config,
            } => {
                let count = service.rewrap(actor, now())?;
                // Webhook signing secrets (docs/alerts.md) are sealed under the same master keys.
                // In the data directory, or the cluster's PostgreSQL (`[cluster] postgres_url`).
                let alerts = server::stores::open_alerts_blocking(config).with_context(|| {
                    format!("cannot open {}", server::stores::Opened::describe(config))
                })?;
                let webhooks = alerts::webhook::rewrap::rewrap_endpoint_secrets(
                    &*alerts,
                    service.ring(),
                    service.audit().as_ref(),
                    actor,
                    now(),
                )?;
                Ok(json!({
                    "rewrapped": count,
                    "webhook_secrets_rewrapped": webhooks,
                    "master_key_id": service.ring().current().map(|k| k.id().to_string()),
                }))
            }
            Self::Online { .. } => {
                self.call(
                    reqwest::Method::POST,
                    "/admin/v1/keys/rewrap",
                    Some(json!({})),
                )
                .await
            }
        }
    }
}

/// Parses `--status`.
pub fn status(text: &str) -> anyhow::Result<KeyStatus> {
    text.parse()
        .map_err(|e: String| anyhow::anyhow!("--status: {e}"))
}
