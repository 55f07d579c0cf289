//! `[auth]`: API keys, the deployment environment, the master key and limits.

use crate::config_error::ConfigError;
use auth::{AuthSettings, MasterKeySources, Scope};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use store::keys::{Environment, RateLimit};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether every API call needs a key. `false`: anonymous clients may read public market
    /// data (REST market routes and WS market channels). Unset: `true` when `environment` is
    /// `live`, `false` for `test`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// `live` or `test`: the key prefix (`tg_live_` / `tg_test_`) this deployment issues and
    /// accepts. A live deployment refuses to start without a master key.
    pub environment: Environment,
    /// File holding the master key (64 hex digits, mode 0600). `TICKGATE_MASTER_KEY` wins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key_file: Option<PathBuf>,
    /// Previous master keys, still accepted for decryption until `tickgate keys rewrap`.
    pub previous_master_key_files: Vec<PathBuf>,
    /// Serve `/metrics` without a key; `false` requires the `metrics:read` scope. Unset:
    /// public only where keys are not required (`required`), since the metrics list key ids
    /// with their rejection codes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_metrics: Option<bool>,
    /// How often the key index reads the store's change feed, ms (bounds how long a
    /// revocation made by another process takes to apply).
    pub poll_interval_ms: u64,
    /// How often in-memory usage counters are written, seconds.
    pub usage_flush_secs: u64,
    /// Authentication failures of one key within one flush that write an audit entry.
    pub failure_burst: u64,
    /// Seconds a WebSocket client that did not authenticate on the upgrade request has to
    /// send its `auth` message, when auth is required.
    pub ws_auth_timeout_secs: u64,
    /// Open WebSocket connections per key.
    pub ws_max_connections_per_key: u32,
    /// Channel subscriptions per key, across its connections.
    pub ws_max_subscriptions_per_key: u32,
    /// Scopes whose routes refuse a bearer token (`signature_required`): only signed requests
    /// pass. Default: `keys:admin` and `alerts:write` (docs/security.md).
    pub signature_required_scopes: Vec<String>,
    /// Seconds a single-use WebSocket token (`POST /v1/ws-token`) stays valid.
    pub ws_token_ttl_secs: u64,
    /// Signed requests: how old `created` may be, seconds (1..=120).
    pub signature_past_secs: u32,
    /// Signed requests: how far `created` may be ahead (clock skew), seconds (0..=120).
    pub signature_future_secs: u32,
    /// Signed requests: most nonces remembered at once (see docs/security.md for the bound).
    pub nonce_capacity: u64,
    /// Signed requests: most live nonces of one key, so no key can fill the store for the
    /// others (at most `nonce_capacity`).
    pub nonce_capacity_per_key: u64,
    /// Signed requests: the scheme clients reach the gateway with, as they sign it (`@scheme`,
    /// `@target-uri`, and the default port `@authority` leaves out). `https` behind a
    /// TLS-terminating proxy; `http` when clients connect to the gateway directly.
    pub signature_scheme: String,
    /// Signed requests: the names clients may sign as `@authority` (the `Host` they send,
    /// `host` or `host:port`, compared case-insensitively); others are refused
    /// `wrong_authority`. Empty: any. Set it when several nodes serve one name.
    pub authorities: Vec<String>,
    /// Default request rate per key (per scope a request needs).
    pub rate_limit: RateLimit,
    /// Rate per scope, e.g. `"keys:admin" = { per_sec = 5, burst = 10 }`.
    pub scope_rate_limits: BTreeMap<String, RateLimit>,
    /// Rate per principal; wins over the scope rate. A key's own limit wins over both.
    pub principal_rate_limits: BTreeMap<String, RateLimit>,
    /// `[auth.anomaly]`: detectors, thresholds and automatic responses.
    pub anomaly: auth::anomaly::AnomalySettings,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            required: None,
            environment: Environment::Test,
            master_key_file: None,
            previous_master_key_files: Vec::new(),
            public_metrics: None,
            poll_interval_ms: 250,
            usage_flush_secs: 10,
            failure_burst: 20,
            ws_auth_timeout_secs: 10,
            ws_max_connections_per_key: 50,
            ws_max_subscriptions_per_key: 2000,
            signature_required_scopes: vec!["keys:admin".into(), "alerts:write".into()],
            ws_token_ttl_secs: 30,
            signature_past_secs: 30,
            signature_future_secs: 5,
            nonce_capacity: 1_000_000,
            nonce_capacity_per_key: 100_000,
            signature_scheme: "http".into(),
            authorities: Vec::new(),
            rate_limit: RateLimit {
                per_sec: 100,
                burst: 200,
            },
            scope_rate_limits: BTreeMap::new(),
            principal_rate_limits: BTreeMap::new(),
            anomaly: auth::anomaly::AnomalySettings::default(),
        }
    }
}

impl AuthConfig {
    /// `required`, with the environment's default applied.
    pub fn is_required(&self) -> bool {
        self.required
            .unwrap_or(self.environment == Environment::Live)
    }

    /// Whether `/metrics` is served without a key: as configured, else only when keys are
    /// not required.
    pub fn is_metrics_public(&self) -> bool {
        self.public_metrics.unwrap_or(!self.is_required())
    }

    pub fn master_key_sources(&self) -> MasterKeySources {
        MasterKeySources {
            file: self.master_key_file.clone(),
            previous_files: self.previous_master_key_files.clone(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let ranges: [(&str, u64, u64, u64); 11] = [
            ("auth.ws_token_ttl_secs", self.ws_token_ttl_secs, 1, 300),
            (
                "auth.signature_past_secs",
                u64::from(self.signature_past_secs),
                1,
                120,
            ),
            (
                "auth.signature_future_secs",
                u64::from(self.signature_future_secs),
                0,
                120,
            ),
            (
                "auth.nonce_capacity",
                self.nonce_capacity,
                1_000,
                100_000_000,
            ),
            (
                "auth.nonce_capacity_per_key",
                self.nonce_capacity_per_key,
                100,
                self.nonce_capacity.max(100),
            ),
            ("auth.poll_interval_ms", self.poll_interval_ms, 20, 900),
            ("auth.usage_flush_secs", self.usage_flush_secs, 1, 60),
            ("auth.failure_burst", self.failure_burst, 1, 1_000_000),
            (
                "auth.ws_auth_timeout_secs",
                self.ws_auth_timeout_secs,
                1,
                300,
            ),
            (
                "auth.ws_max_connections_per_key",
                u64::from(self.ws_max_connections_per_key),
                1,
                1_000_000,
            ),
            (
                "auth.ws_max_subscriptions_per_key",
                u64::from(self.ws_max_subscriptions_per_key),
                1,
                10_000_000,
            ),
        ];
        for (key, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::new(
                    key,
                    format!("must be between {min} and {max}, got {value}"),
                ));
            }
        }
        let check_rate = |key: String, rate: &RateLimit| {
            auth::input::rate_limit(*rate)
                .map(|_| ())
                .map_err(|m| ConfigError::new(key, m))
        };
        if !matches!(self.signature_scheme.as_str(), "http" | "https") {
            return Err(ConfigError::new(
                "auth.signature_scheme",
                format!(
                    "must be \"http\" or \"https\", got {:?}",
                    self.signature_scheme
                ),
            ));
        }
        for name in &self.authorities {
            let ok = !name.is_empty()
                && name.len() <= 255
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
            if !ok {
                return Err(ConfigError::new(
                    "auth.authorities",
                    format!("{name:?} is not a host or host:port"),
                ));
            }
        }
        check_rate("auth.rate_limit".into(), &self.rate_limit)?;
        for scope in &self.signature_required_scopes {
            scope.parse::<Scope>().map_err(|m| {
                ConfigError::new(format!("auth.signature_required_scopes.{scope}"), m)
            })?;
        }
        for (scope, rate) in &self.scope_rate_limits {
            let key = format!("auth.scope_rate_limits.{scope}");
            scope
                .parse::<Scope>()
                .map_err(|m| ConfigError::new(key.clone(), m))?;
            check_rate(key, rate)?;
        }
        self.anomaly
            .validate()
            .map_err(|(key, message)| ConfigError::new(key, message))?;
        for (principal, rate) in &self.principal_rate_limits {
            let key = format!("auth.principal_rate_limits.{principal}");
            auth::input::principal(principal).map_err(|m| ConfigError::new(key.clone(), m))?;
            check_rate(key, rate)?;
        }
        Ok(())
    }

    /// What the key index applies.
    pub fn settings(&self) -> AuthSettings {
        AuthSettings {
            environment: self.environment,
            default_rate: self.rate_limit,
            principal_rates: self
                .principal_rate_limits
                .iter()
                .map(|(p, r)| (p.clone(), *r))
                .collect(),
            scope_rates: self
                .scope_rate_limits
                .iter()
                .filter_map(|(s, r)| Some((s.parse::<Scope>().ok()?, *r)))
                .collect::<HashMap<_, _>>(),
            failure_burst: self.failure_burst,
        }
    }
}
