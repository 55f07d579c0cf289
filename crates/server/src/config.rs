//! The typed configuration tree: the single source of truth for every setting.
//!
//! Layers, later ones winning: built-in defaults, the TOML file (`--config`), environment
//! variables `TICKGATE_<SECTION>__<KEY>` (e.g. `TICKGATE_SERVER__LISTEN=0.0.0.0:8080`), then CLI
//! flags. `tickgate config default` prints [`DEFAULT_CONFIG_TOML`], a commented file equal to
//! [`Config::default`] (a test keeps the two in sync).

pub use crate::auth_config::AuthConfig;
pub use crate::config_error::ConfigError;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use hub::HubConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use store::HistoryConfig;

pub use crate::consolidated_config::{ConsolidatedConfig, GroupConfig};

/// The commented default configuration, as printed by `tickgate config default`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default_config.toml");

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub ws: WsConfig,
    pub hub: HubConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
    /// `[history]`: persisted trades and candles (see `store::HistoryConfig`).
    pub history: HistoryConfig,
    /// `[consolidated]`: cross-venue `book:all:SYM` / `ticker:all:SYM` channels.
    pub consolidated: ConsolidatedConfig,
    /// `[ui]`: the built-in dashboard at `/ui/`.
    pub ui: crate::ui::config::UiConfig,
    /// `[alerts]`: rules on live data, delivered on the `alerts` channel and as webhooks
    /// (see `alerts::AlertsConfig`).
    pub alerts: alerts::config::AlertsConfig,
    /// `[cluster]`: this node's role and the shared services (see `cluster_config`).
    pub cluster: crate::cluster_config::ClusterConfig,
    pub venues: Vec<VenueConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            ws: WsConfig::default(),
            hub: HubConfig::default(),
            auth: AuthConfig::default(),
            log: LogConfig::default(),
            history: HistoryConfig::default(),
            consolidated: ConsolidatedConfig::default(),
            ui: crate::ui::config::UiConfig::default(),
            alerts: alerts::config::AlertsConfig::default(),
            cluster: crate::cluster_config::ClusterConfig::default(),
            venues: vec![VenueConfig::default()],
        }
    }
}

/// `[server]`: where the gateway listens and keeps its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP + WebSocket listener.
    pub listen: SocketAddr,
    /// Directory for the embedded databases (`tickgate.db`: keys and audit; `history.db`).
    pub data_dir: PathBuf,
    /// Open sockets (HTTP and WebSocket) served normally; the next `connection_reserve` serve
    /// only health, metrics and the admin API; beyond, 503. Clamped to the open-file limit at
    /// start.
    pub max_connections: usize,
    /// Open sockets from one peer address beyond this are refused with 429.
    pub max_connections_per_ip: usize,
    /// Sockets above `max_connections` kept for `/healthz`, `/readyz`, `/metrics` and
    /// `/admin/`, so an operator still gets in when the gateway is full.
    pub connection_reserve: usize,
    /// Seconds a client has to send a request's headers (slowloris); also how long an idle
    /// keep-alive connection waits for its next request.
    pub header_read_timeout_secs: u64,
    /// Seconds to wait for sessions to close on shutdown.
    pub shutdown_grace_secs: u64,
    /// Kernel send buffer per accepted connection, bytes (0: the OS default, which autotunes up
    /// to several MiB). A smaller value bounds the kernel memory a stalled client can pin and
    /// makes the slow-consumer policy act sooner.
    pub socket_send_buffer: usize,
    /// Reverse proxies (CIDR blocks) whose `Forwarded`/`X-Forwarded-For` is believed; empty:
    /// none (`server::forwarded`).
    pub trusted_proxies: Vec<String>,
    /// Browser origins (`https://app.example.com`, or `"*"`) allowed to open WebSocket
    /// sessions and read the REST API cross-site (CORS); empty: same origin only
    /// (`server::origin`).
    pub allowed_origins: Vec<String>,
    /// WebSocket upgrades accepted but whose session has not started yet; beyond, 503.
    pub max_pending_upgrades: usize,
    /// `[server.anonymous]`: limits per client address for requests and sessions without a key.
    pub anonymous: AnonymousLimits,
    /// `[server.tls]`: terminate TLS here (`https://`, `wss://` on the same listener).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

/// `[server.anonymous]`: what one client address may do without a key (`server::per_ip`).
/// A keyed client is limited per key instead. 0 turns a limit off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnonymousLimits {
    /// Anonymous REST requests (and WebSocket upgrades) per second per address.
    pub requests_per_sec: u32,
    /// The burst allowed above that rate.
    pub burst: u32,
    /// Anonymous WebSocket sessions open at once per address.
    pub ws_connections_per_ip: u32,
    /// Channels subscribed at once per address, across its anonymous sessions.
    pub subscriptions_per_ip: u32,
    /// Addresses tracked at most (memory bound); the idlest is forgotten first.
    pub max_tracked_addresses: usize,
}

impl Default for AnonymousLimits {
    fn default() -> Self {
        Self {
            requests_per_sec: 100,
            burst: 200,
            ws_connections_per_ip: 100,
            subscriptions_per_ip: 2_000,
            max_tracked_addresses: 65_536,
        }
    }
}

/// `[server.tls]`: the gateway's certificate chain and private key, PEM files. Both are read at
/// start, again on SIGHUP, and whenever either file changes; live connections are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            max_connections: 100_000,
            max_connections_per_ip: 1_000,
            connection_reserve: 64,
            header_read_timeout_secs: 10,
            shutdown_grace_secs: 5,
            socket_send_buffer: 0,
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
            max_pending_upgrades: 256,
            anonymous: AnonymousLimits::default(),
            tls: None,
        }
    }
}

/// What happens to a client that cannot keep up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowConsumerPolicy {
    /// Book subscribers get a fresh snapshot marked as a resync, trades subscribers a `gap`
    /// notice; a client that lags more than `max_lags_per_minute` times is disconnected.
    Conflate,
    /// Disconnect on the first lag with close code 4001 (`slow_consumer`).
    Disconnect,
}

/// `[ws]`: per-connection limits of the WebSocket API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsConfig {
    /// Channels one connection may subscribe to.
    pub max_channels_per_connection: usize,
    /// `subscribe`/`unsubscribe`/`ping` messages per second per connection (burst of the same).
    pub max_requests_per_sec: u32,
    /// Largest client message answered with an error instead of being processed, bytes.
    pub max_message_bytes: usize,
    /// Seconds between server pings.
    pub ping_interval_secs: u64,
    /// A client silent (no message, no pong) for this many seconds is closed with 4000.
    pub idle_timeout_secs: u64,
    /// A write to a client that takes longer than this many seconds closes it as slow.
    pub write_timeout_secs: u64,
    pub slow_consumer: SlowConsumerPolicy,
    /// Under `conflate`, a client lagging more often than this in a minute is disconnected.
    pub max_lags_per_minute: u32,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            max_channels_per_connection: 200,
            max_requests_per_sec: 20,
            max_message_bytes: 16 * 1024,
            ping_interval_secs: 20,
            idle_timeout_secs: 60,
            write_timeout_secs: 10,
            slow_consumer: SlowConsumerPolicy::Conflate,
            max_lags_per_minute: 10,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter, e.g. `info` or `info,server=debug`. `RUST_LOG` overrides it.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

pub use crate::venue_config::{ReplaySpeedConfig, SimSettings, VenueConfig};

impl Config {
    /// Loads defaults, then `file` (if any), then `TICKGATE_*` environment variables, and
    /// validates the result.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::new(
                    "--config",
                    format!("file {} does not exist", path.display()),
                ));
            }
            figment = figment.merge(Toml::file(path));
        }
        // Only `TICKGATE_<SECTION>__<KEY>` variables are configuration; others such as
        // TICKGATE_CONFIG (the file path) or TICKGATE_URL (for `tail`) are not.
        figment = figment.merge(
            Env::prefixed("TICKGATE_")
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        );
        let config: Config = figment.extract().map_err(|e| {
            let key = e.path.join(".");
            ConfigError::new(
                if key.is_empty() {
                    "config".to_string()
                } else {
                    key
                },
                e.kind.to_string(),
            )
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML document on top of the defaults (no environment), and validates it.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError::new(e.path.join("."), e.kind.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every cross-field rule and range; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_limits()?;
        self.validate_sections()?;
        self.cluster.validate()?;
        self.validate_venues()?;
        if self.consolidated.enabled {
            self.consolidated_groups()?;
        }
        Ok(())
    }

    /// `[server]` and `[ws]` numeric limits, and how they relate.
    fn validate_limits(&self) -> Result<(), ConfigError> {
        let ws = &self.ws;
        let anonymous = &self.server.anonymous;
        let ranges: [(&str, u64, u64, u64); 17] = [
            (
                "ws.max_channels_per_connection",
                ws.max_channels_per_connection as u64,
                1,
                10_000,
            ),
            (
                "ws.max_requests_per_sec",
                u64::from(ws.max_requests_per_sec),
                1,
                10_000,
            ),
            (
                "ws.max_message_bytes",
                ws.max_message_bytes as u64,
                256,
                1024 * 1024,
            ),
            ("ws.ping_interval_secs", ws.ping_interval_secs, 1, 3600),
            ("ws.idle_timeout_secs", ws.idle_timeout_secs, 2, 86_400),
            ("ws.write_timeout_secs", ws.write_timeout_secs, 1, 3600),
            (
                "server.max_connections",
                self.server.max_connections as u64,
                1,
                10_000_000,
            ),
            (
                "server.max_connections_per_ip",
                self.server.max_connections_per_ip as u64,
                1,
                10_000_000,
            ),
            (
                "server.connection_reserve",
                self.server.connection_reserve as u64,
                0,
                100_000,
            ),
            (
                "server.header_read_timeout_secs",
                self.server.header_read_timeout_secs,
                1,
                300,
            ),
            (
                "server.shutdown_grace_secs",
                self.server.shutdown_grace_secs,
                0,
                3600,
            ),
            (
                "server.max_pending_upgrades",
                self.server.max_pending_upgrades as u64,
                1,
                1_000_000,
            ),
            (
                "server.anonymous.requests_per_sec",
                u64::from(anonymous.requests_per_sec),
                0,
                10_000_000,
            ),
            (
                "server.anonymous.burst",
                u64::from(anonymous.burst),
                0,
                10_000_000,
            ),
            (
                "server.anonymous.ws_connections_per_ip",
                u64::from(anonymous.ws_connections_per_ip),
                0,
                10_000_000,
            ),
            (
                "server.anonymous.max_tracked_addresses",
                anonymous.max_tracked_addresses as u64,
                16,
                10_000_000,
            ),
            (
                "ws.max_lags_per_minute",
                u64::from(ws.max_lags_per_minute),
                1,
                1_000_000,
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
        let send_buffer = self.server.socket_send_buffer;
        if send_buffer != 0 && !(4096..=64 * 1024 * 1024).contains(&send_buffer) {
            return Err(ConfigError::new(
                "server.socket_send_buffer",
                format!("must be 0 (OS default) or between 4096 and 67108864, got {send_buffer}"),
            ));
        }
        if ws.idle_timeout_secs <= ws.ping_interval_secs {
            return Err(ConfigError::new(
                "ws.idle_timeout_secs",
                "must be greater than ws.ping_interval_secs",
            ));
        }
        Ok(())
    }

    /// The sections that validate themselves, in the order their errors are reported.
    fn validate_sections(&self) -> Result<(), ConfigError> {
        crate::forwarded::TrustedProxies::parse(&self.server.trusted_proxies)
            .map_err(|message| ConfigError::new("server.trusted_proxies", message))?;
        crate::origin::AllowedOrigins::parse(&self.server.allowed_origins)
            .map_err(|message| ConfigError::new("server.allowed_origins", message))?;
        self.hub
            .validate()
            .map_err(|e| ConfigError::new(e.key, e.message))?;
        self.auth.validate()?;
        self.ui.validate()?;
        if !matches!(self.log.level.trim(), "") && tracing_filter_invalid(&self.log.level) {
            return Err(ConfigError::new(
                "log.level",
                format!("not a valid filter: {:?}", self.log.level),
            ));
        }
        self.history
            .validate()
            .map_err(|(key, message)| ConfigError::new(key, message))?;
        self.consolidated.validate()?;
        self.alerts
            .validate()
            .map_err(|(key, message)| ConfigError::new(key, message))?;
        if !self.auth.anomaly.webhook_endpoints.is_empty() && !self.alerts.enabled {
            return Err(ConfigError::new(
                "auth.anomaly.webhook_endpoints",
                "anomaly webhooks are sent by the alerts' delivery worker: set [alerts] \
                 enabled = true, or leave webhook_endpoints empty",
            ));
        }
        Ok(())
    }

    /// `[[venues]]`: at least one, each supported and valid, no venue name served twice.
    fn validate_venues(&self) -> Result<(), ConfigError> {
        if self.venues.is_empty() {
            return Err(ConfigError::new("venues", "at least one venue is required"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, venue) in self.venues.iter().enumerate() {
            let kind = venue.checked_kind(i)?;
            for name in venue.served_names(kind) {
                if !seen.insert(name.clone()) {
                    return Err(ConfigError::new(
                        format!("venues[{i}].name"),
                        format!("venue {name:?} is listed twice"),
                    ));
                }
            }
            venue.validate(kind, i)?;
        }
        Ok(())
    }

    /// The consolidated groups: defaults for every configured symbol, replaced by explicit
    /// groups of the same symbol. Errors name the key.
    pub fn consolidated_groups(&self) -> Result<Vec<ingest::consolidate::Group>, ConfigError> {
        self.consolidated.groups(&self.venues)
    }

    /// The configuration as TOML (what `tickgate config check` shows after layering).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

/// Filter syntax check without installing anything: directives are `target=level` or `level`.
fn tracing_filter_invalid(filter: &str) -> bool {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .any(|directive| {
            let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
            let target_only = !directive.contains('=')
                && !LEVELS.contains(&directive.to_ascii_lowercase().as_str());
            let valid_target = directive
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_:=".contains(c));
            !valid_target
                || (directive.contains('=')
                    && !LEVELS.contains(&level.to_ascii_lowercase().as_str()))
                || (target_only && directive.contains(':'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commented_default_file_equals_the_built_in_defaults() {
        let parsed: Config = toml::from_str(DEFAULT_CONFIG_TOML).expect("default config parses");
        assert_eq!(parsed, Config::default());
        Config::default().validate().expect("defaults are valid");
    }

    #[test]
    fn partial_files_keep_defaults_for_the_rest() {
        let config = Config::from_toml("[ws]\nidle_timeout_secs = 120\n").unwrap();
        assert_eq!(config.ws.idle_timeout_secs, 120);
        assert_eq!(
            config.ws.ping_interval_secs,
            WsConfig::default().ping_interval_secs
        );
        assert_eq!(config.venues, Config::default().venues);
    }

    #[test]
    fn invalid_values_name_their_key() {
        let cases = [
            ("[server]\nlisten = \"nowhere\"", "server.listen"),
            ("[server]\nbogus = 1", "server"),
            (
                "[ws]\nmax_channels_per_connection = 0",
                "ws.max_channels_per_connection",
            ),
            (
                "[ws]\nping_interval_secs = 30\nidle_timeout_secs = 20",
                "ws.idle_timeout_secs",
            ),
            ("[ws]\nslow_consumer = \"ignore\"", "ws.slow_consumer"),
            ("[ws]\nmax_lags_per_minute = 0", "ws.max_lags_per_minute"),
            (
                "[server]\nsocket_send_buffer = 100",
                "server.socket_send_buffer",
            ),
            (
                "[server]\nmax_connections_per_ip = 0",
                "server.max_connections_per_ip",
            ),
            (
                "[server]\nconnection_reserve = 200000",
                "server.connection_reserve",
            ),
            (
                "[server]\nheader_read_timeout_secs = 0",
                "server.header_read_timeout_secs",
            ),
            ("[server.tls]\ncert_file = \"c.pem\"", "server.tls"),
            (
                "[auth]\nnonce_capacity_per_key = 10",
                "auth.nonce_capacity_per_key",
            ),
            ("[auth]\npublic_metrics = \"yes\"", "auth.public_metrics"),
            ("[auth]\nauthorities = [\"a b\"]", "auth.authorities"),
            ("[auth]\nauthorities = [\"\"]", "auth.authorities"),
            (
                "[auth.anomaly]\nwebhook_endpoints = [\"https://ops.example\"]",
                "auth.anomaly.webhook_endpoints[0]",
            ),
            (
                "[alerts]\nenabled = false\n[auth.anomaly]\nwebhook_endpoints = [\"whe_0123456789abcdef\"]",
                "auth.anomaly.webhook_endpoints",
            ),
            ("[hub]\nchannel_capacity = 1", "hub.channel_capacity"),
            ("[hub]\nhistory_ttl_secs = 0", "hub.history_ttl_secs"),
            ("[hub]\nhistory_size = 2000000", "hub.history_size"),
            ("[log]\nlevel = \"info,server=loud\"", "log.level"),
            ("[auth]\nenvironment = \"prod\"", "auth.environment"),
            ("[auth]\npoll_interval_ms = 5000", "auth.poll_interval_ms"),
            (
                "[auth]\nsignature_scheme = \"ftp\"",
                "auth.signature_scheme",
            ),
            (
                "[auth]\nsignature_past_secs = 121",
                "auth.signature_past_secs",
            ),
            (
                "[auth]\nsignature_required_scopes = [\"keys:all\"]",
                "auth.signature_required_scopes",
            ),
            (
                "[auth.scope_rate_limits]\n\"market:write\" = { per_sec = 1, burst = 1 }",
                "auth.scope_rate_limits",
            ),
            (
                "[auth.rate_limit]\nper_sec = 0\nburst = 1",
                "auth.rate_limit",
            ),
            ("venues = []", "venues"),
            ("[history]\nqueue_rows = 10", "history.queue_rows"),
            (
                "[history]\nperp_sample_secs = 0",
                "history.perp_sample_secs",
            ),
            (
                "[history.retention]\nliquidations = \"3y\"",
                "history.retention.liquidations",
            ),
            ("[history]\ninclude = [\"trades:*\"]", "history.include[0]"),
            (
                "[history.retention]\ntrades = \"7w\"",
                "history.retention.trades",
            ),
            ("[history.retention]\nbogus = \"7d\"", "history.retention"),
            (
                "[[venues]]\nname = \"mtgox\"\nsymbols = [\"BTC-USD\"]",
                "venues[0].name",
            ),
            (
                "[[venues]]\nname = \"sim\"\nsymbols = [\"btcusd\"]",
                "venues[0].symbols",
            ),
            (
                "[[venues]]\nname = \"sim\"\nsymbols = []",
                "venues[0].symbols",
            ),
            (
                "[[venues]]\nname = \"sim\"\nsymbols = [\"BTC-USD\"]\n[venues.sim]\nrate = -1.0",
                "venues[0].sim",
            ),
            (
                "[[venues]]\nname = \"sim\"\nsymbols = [\"BTC-USD\"]\n[venues.sim.faults]\ndrop = 2.0",
                "venues[0].sim",
            ),
            (
                "[[venues]]\nname = \"sim\"\nsymbols = [\"BTC-USD\"]\n[[venues]]\nname = \"sim\"\nsymbols = [\"ETH-USD\"]",
                "venues[1].name",
            ),
        ];
        for (text, key) in cases {
            let error = Config::from_toml(text).expect_err(text);
            assert!(
                error.key.starts_with(key),
                "{text:?}: got key {:?} ({})",
                error.key,
                error.message
            );
            assert!(error.to_string().contains(&error.key));
        }
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let error = Config::load(Some(Path::new("/nonexistent/tickgate.toml"))).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/tickgate.toml"));
    }
}
