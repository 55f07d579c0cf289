//! `[cluster]`: how this node takes part in a cluster of gateways (issue 12). The default,
//! `role = "all"` with no URLs, is one self-contained node: every store stays in memory or in
//! the embedded database.
//!
//! Each URL is checked for its scheme here, at load time; an error names the key and never
//! echoes the URL (it may carry a password).

use crate::config_error::ConfigError;
use serde::{Deserialize, Serialize};

/// What a node does in a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterRole {
    /// Venue connections and the client API in one process (single node).
    #[default]
    All,
    /// Venue connections only: publishes market data on the bus (`nats_url`).
    Ingest,
    /// Client API only: reads market data from the bus; several edges serve the same keys.
    Edge,
}

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    pub role: ClusterRole,
    /// The NATS server of the market-data bus (`nats://` or `tls://`); empty: none.
    pub nats_url: String,
    /// Prefix of every subject, stream and bucket this cluster uses on NATS
    /// (`[A-Za-z0-9_-]{1,32}`): the ingest and edge nodes of one cluster share it; several
    /// clusters may share one NATS with different prefixes.
    pub nats_prefix: String,
    /// Time-to-live of a venue's ingest lease on the bus, in ms: a dead ingest's venues are
    /// taken over by a standby within this long (the owner stops publishing after half of it
    /// without a renewal).
    pub lease_ttl_ms: u64,
    /// Redis shared by all nodes (`redis://`); empty: none. When set, signed-request nonces,
    /// key rate limits and per-key WebSocket caps are kept there, not in this process.
    pub redis_url: String,
    /// Prefix of every Redis key this cluster writes (several clusters may share a Redis).
    pub redis_prefix: String,
    /// The longest one Redis call (nonce, rate limit, WebSocket cap) may take before the
    /// request it serves is refused `unavailable`, in ms.
    pub redis_timeout_ms: u64,
    /// PostgreSQL shared by all nodes for keys, the audit log, the history and alerts
    /// (`postgres://` or `postgresql://`); empty: the embedded databases under
    /// `server.data_dir`.
    pub postgres_url: String,
    /// The schema (in `postgres_url`'s database) holding this cluster's tables; created if
    /// missing. Clusters sharing one database use different schemas.
    pub postgres_schema: String,
    /// This node's name in logs, metrics and the bus; empty: a random one at start.
    pub node_id: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            role: ClusterRole::All,
            nats_url: String::new(),
            nats_prefix: "tg".into(),
            lease_ttl_ms: DEFAULT_LEASE_TTL_MS,
            redis_url: String::new(),
            redis_prefix: "tickgate:".into(),
            redis_timeout_ms: DEFAULT_REDIS_TIMEOUT_MS,
            postgres_url: String::new(),
            postgres_schema: store::postgres::DEFAULT_SCHEMA.into(),
            node_id: String::new(),
        }
    }
}

/// `redis_timeout_ms` by default: a loopback or same-rack round trip is well under 1 ms, so
/// this only trips on a Redis that is down, partitioned or stalled.
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 500;

/// Accepted `redis_timeout_ms`: below 10 ms a busy but healthy Redis would refuse requests;
/// above 10 s a request waits longer than any client would.
pub const REDIS_TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u64> = 10..=10_000;

/// `lease_ttl_ms` by default: a standby takes a dead ingest's venues over within 3 s.
pub const DEFAULT_LEASE_TTL_MS: u64 = 3_000;

/// Accepted `lease_ttl_ms`: below 1 s a NATS hiccup would move venues between ingests (each
/// move is a new epoch for every client); above 60 s a dead ingest leaves its venues dark too
/// long.
pub const LEASE_TTL_MS_RANGE: std::ops::RangeInclusive<u64> = 1_000..=60_000;

/// Longest accepted `node_id`.
pub const MAX_NODE_ID_LEN: usize = 64;

impl ClusterConfig {
    /// The Redis URL, if one is set.
    pub fn redis(&self) -> Option<&str> {
        Some(self.redis_url.as_str()).filter(|u| !u.is_empty())
    }

    /// `redis_timeout_ms` as a duration.
    pub fn redis_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.redis_timeout_ms)
    }

    /// `lease_ttl_ms` as a duration.
    pub fn lease_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.lease_ttl_ms)
    }

    /// The PostgreSQL URL, if one is set.
    pub fn postgres(&self) -> Option<&str> {
        Some(self.postgres_url.as_str()).filter(|u| !u.is_empty())
    }

    /// Whether more than one node can serve the same key: then nonces and rate limits must
    /// be shared (`redis_url` set, or a role other than `all`).
    pub fn is_shared(&self) -> bool {
        self.redis().is_some() || self.role != ClusterRole::All
    }

    /// `node_id`, or a random `node-<16 hex>` when it is empty.
    pub fn resolved_node_id(&self) -> String {
        if !self.node_id.is_empty() {
            return self.node_id.clone();
        }
        let mut bytes = [0u8; 8];
        // A name, not a secret: a clock-derived fallback is enough if the OS has no entropy.
        if getrandom::fill(&mut bytes).is_err() {
            bytes = model::Timestamp::now().0.to_le_bytes();
        }
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("node-{hex}")
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        check_scheme("cluster.nats_url", &self.nats_url, &["nats", "tls"])?;
        check_scheme("cluster.redis_url", &self.redis_url, &["redis"])?;
        if cluster::Names::new(&self.nats_prefix).is_err() {
            return Err(ConfigError::new(
                "cluster.nats_prefix",
                "must be 1 to 32 characters of A-Z a-z 0-9 _ -",
            ));
        }
        check_scheme(
            "cluster.postgres_url",
            &self.postgres_url,
            &["postgres", "postgresql"],
        )?;
        if !store::postgres::valid_schema(&self.postgres_schema) {
            return Err(ConfigError::new(
                "cluster.postgres_schema",
                "must be 1 to 63 characters of a-z 0-9 _, not starting with a digit",
            ));
        }
        if self.redis_prefix.is_empty()
            || self.redis_prefix.len() > MAX_NODE_ID_LEN
            || !self.redis_prefix.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ConfigError::new(
                "cluster.redis_prefix",
                format!("must be 1 to {MAX_NODE_ID_LEN} printable ASCII characters, no spaces"),
            ));
        }
        check_ms(
            "cluster.redis_timeout_ms",
            self.redis_timeout_ms,
            &REDIS_TIMEOUT_MS_RANGE,
        )?;
        check_ms(
            "cluster.lease_ttl_ms",
            self.lease_ttl_ms,
            &LEASE_TTL_MS_RANGE,
        )?;
        if self.node_id.len() > MAX_NODE_ID_LEN
            || !self
                .node_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(ConfigError::new(
                "cluster.node_id",
                format!(
                    "must be at most {MAX_NODE_ID_LEN} characters of A-Z a-z 0-9 - _ . \
                     (empty: random)"
                ),
            ));
        }
        if self.role != ClusterRole::All && self.nats_url.is_empty() {
            return Err(ConfigError::new(
                "cluster.nats_url",
                "an ingest or edge node needs the market-data bus: set cluster.nats_url",
            ));
        }
        if self.role == ClusterRole::Edge && self.redis_url.is_empty() {
            return Err(ConfigError::new(
                "cluster.redis_url",
                "edge nodes serve the same keys, so they must share nonces and rate limits: \
                 set cluster.redis_url",
            ));
        }
        Ok(())
    }
}

/// A duration in ms within `range`, or an error naming `key` and the range.
fn check_ms(
    key: &'static str,
    value: u64,
    range: &std::ops::RangeInclusive<u64>,
) -> Result<(), ConfigError> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(ConfigError::new(
        key,
        format!("must be {} to {} (ms)", range.start(), range.end()),
    ))
}

/// An empty `url` passes; otherwise it must be `<scheme>://<something>` with a listed scheme.
fn check_scheme(key: &str, url: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    if url.is_empty() {
        return Ok(());
    }
    let ok = url
        .split_once("://")
        .is_some_and(|(scheme, rest)| schemes.contains(&scheme) && !rest.is_empty());
    if ok {
        return Ok(());
    }
    let expected: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
    // The URL itself is not repeated: it may hold a password.
    Err(ConfigError::new(
        key,
        format!("must start with {}", expected.join(" or ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn cluster_values_are_checked_and_errors_name_their_key() {
        // (toml, expected error key or None for valid)
        let cases: &[(&str, Option<&str>)] = &[
            ("", None),
            ("redis_url = \"redis://127.0.0.1:6379\"", None),
            ("postgres_url = \"postgresql://u@h/db\"", None),
            (
                "role = \"edge\"\nnats_url = \"nats://n:4222\"\nredis_url = \"redis://r\"",
                None,
            ),
            ("role = \"ingest\"\nnats_url = \"tls://n:4222\"", None),
            ("node_id = \"edge-1.eu\"", None),
            (
                "redis_url = \"http://127.0.0.1:6379\"",
                Some("cluster.redis_url"),
            ),
            (
                "redis_url = \"rediss://secret@h\"",
                Some("cluster.redis_url"),
            ),
            ("redis_url = \"redis://\"", Some("cluster.redis_url")),
            ("nats_url = \"127.0.0.1:4222\"", Some("cluster.nats_url")),
            (
                "postgres_url = \"mysql://h/db\"",
                Some("cluster.postgres_url"),
            ),
            ("node_id = \"a b\"", Some("cluster.node_id")),
            ("redis_prefix = \"\"", Some("cluster.redis_prefix")),
            ("redis_prefix = \"a b\"", Some("cluster.redis_prefix")),
            ("redis_prefix = \"eu-1:\"", None),
            ("redis_timeout_ms = 10", None),
            ("redis_timeout_ms = 10000", None),
            ("redis_timeout_ms = 9", Some("cluster.redis_timeout_ms")),
            ("redis_timeout_ms = 10001", Some("cluster.redis_timeout_ms")),
            ("redis_timeout_ms = -1", Some("cluster.redis_timeout_ms")),
            ("lease_ttl_ms = 1000", None),
            ("lease_ttl_ms = 60000", None),
            ("lease_ttl_ms = 999", Some("cluster.lease_ttl_ms")),
            ("lease_ttl_ms = 60001", Some("cluster.lease_ttl_ms")),
            ("lease_ttl_ms = \"3s\"", Some("cluster.lease_ttl_ms")),
            ("postgres_schema = \"tickgate_eu\"", None),
            (
                "postgres_schema = \"Eu-1\"",
                Some("cluster.postgres_schema"),
            ),
            ("postgres_schema = \"\"", Some("cluster.postgres_schema")),
            ("postgres_schema = \"1x\"", Some("cluster.postgres_schema")),
            (
                "role = \"edge\"\nnats_url = \"nats://n\"",
                Some("cluster.redis_url"),
            ),
            ("role = \"ingest\"", Some("cluster.nats_url")),
            ("role = \"primary\"", Some("cluster.role")),
            ("nats_prefix = \"eu_1-a\"", None),
            ("nats_prefix = \"\"", Some("cluster.nats_prefix")),
            ("nats_prefix = \"a.b\"", Some("cluster.nats_prefix")),
        ];
        for (body, expected) in cases {
            let result = Config::from_toml(&format!("[cluster]\n{body}\n"));
            match expected {
                None => assert!(result.is_ok(), "{body}: {result:?}"),
                Some(key) => assert_eq!(result.unwrap_err().key, *key, "{body}"),
            }
        }
    }

    #[test]
    fn a_bad_url_error_does_not_echo_the_url() {
        let err =
            Config::from_toml("[cluster]\nredis_url = \"http://user:hunter2@h\"\n").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn sharing_follows_the_redis_url_and_the_role() {
        let mut c = ClusterConfig::default();
        assert!(!c.is_shared());
        c.redis_url = "redis://r".into();
        assert!(c.is_shared());
        let a = ClusterConfig::default().resolved_node_id();
        assert!(a.starts_with("node-") && a.len() == 21, "{a}");
        assert_ne!(a, ClusterConfig::default().resolved_node_id());
        c.node_id = "n1".into();
        assert_eq!(c.resolved_node_id(), "n1");
    }
}
