//! The configuration of one EVM chain source, and its validation.

use super::abi::event_topic;
use crate::ConnectorError;
use model::onchain::{Address, Hash32};
use model::{Symbol, Venue};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Largest `finality_depth`: the tracker keeps this many blocks (with their logs) in memory.
pub const MAX_FINALITY_DEPTH: u64 = 1024;

/// One EVM chain: where its node is, how deep an event must be, what to follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvmSpec {
    /// The chain's name: the venue of its `onchain.*` channels and the suffix of its DEX
    /// venues (`uniswap-v3-{chain}`). Lowercase letters, digits, `_` and inner `-`.
    pub chain: String,
    /// The chain id the node must report (`eth_chainId`); a node on another chain is refused.
    pub chain_id: u64,
    /// JSON-RPC over WebSocket: `eth_subscribe` `newHeads` and `logs`.
    pub ws_url: String,
    /// JSON-RPC over HTTP: backfill (`eth_getLogs`, headers), `eth_call`.
    pub http_url: String,
    /// Blocks on top of an event's block before it is emitted (0: as soon as seen, then
    /// confirmed or retracted).
    pub confirmations: u64,
    /// Blocks on top of an event's block before it is confirmed (never retracted after).
    /// At least 1 and at least `confirmations`; the tracker keeps this many blocks.
    pub finality_depth: u64,
    /// Blocks per `eth_getLogs` request and per batch of headers during a backfill.
    pub backfill_range: u64,
    /// After a reconnect, at most this many missed blocks are backfilled; older ones are
    /// skipped (logged, counted and reported on `status:{chain}`).
    pub max_backfill_blocks: u64,
    /// An HTTP request or subscription acknowledgement slower than this fails.
    pub request_timeout_secs: u64,
    /// No message on the WebSocket for this long replaces the connection (0: never; a
    /// chain that mines only on demand, like a test node, is often silent).
    pub silence_secs: u64,
    /// First reconnect delay ceiling, ms (full jitter, shared backoff).
    pub backoff_base_ms: u64,
    /// Largest reconnect delay ceiling, ms.
    pub backoff_cap_ms: u64,
    /// A connection that stayed up this long resets the backoff.
    pub stable_after_secs: u64,
    /// WebSocket handshake timeout.
    pub connect_timeout_secs: u64,
    /// Contracts whose logs are followed, each on `onchain.logs:{chain}:{address}`.
    pub contracts: Vec<ContractSpec>,
    /// DEX pools whose swaps become trades (their logs are followed too).
    pub pools: Vec<PoolSpec>,
}

/// A contract to follow, optionally only some of its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractSpec {
    pub address: Address,
    /// Event signatures (`Transfer(address,address,uint256)`) or topic hashes (`0x…`, 32
    /// bytes); empty: every event of the contract.
    #[serde(default)]
    pub events: Vec<String>,
}

/// Which DEX protocol a pool speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dex {
    #[serde(rename = "uniswap-v2")]
    UniswapV2,
    #[serde(rename = "uniswap-v3")]
    UniswapV3,
}

impl Dex {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UniswapV2 => "uniswap-v2",
            Self::UniswapV3 => "uniswap-v3",
        }
    }
}

/// A pool whose swaps are published as trades on `trades:{dex}-{chain}:{symbol}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    pub dex: Dex,
    pub address: Address,
    /// `BASE-QUOTE`, e.g. `WETH-USDC`.
    pub symbol: Symbol,
    /// The base token's address (one of the pool's `token0()` / `token1()`, checked).
    pub base: Address,
    /// The quote token's address (the other one).
    pub quote: Address,
}

impl Default for EvmSpec {
    fn default() -> Self {
        Self {
            chain: String::new(),
            chain_id: 0,
            ws_url: String::new(),
            http_url: String::new(),
            confirmations: 0,
            finality_depth: 64,
            backfill_range: 500,
            max_backfill_blocks: 10_000,
            request_timeout_secs: 10,
            silence_secs: 120,
            backoff_base_ms: 500,
            backoff_cap_ms: 30_000,
            stable_after_secs: 60,
            connect_timeout_secs: 10,
            contracts: Vec::new(),
            pools: Vec::new(),
        }
    }
}

impl EvmSpec {
    /// Checks every field; errors name the key under `prefix` (e.g. `venues[1].evm`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConnectorError> {
        let err = |key: &str, msg: String| ConnectorError::setting(format!("{prefix}.{key}"), msg);
        Venue::new(&self.chain).map_err(|e| err("chain", format!("is invalid: {e}")))?;
        if self.chain_id == 0 {
            return Err(err("chain_id", "must be set (e.g. 1 for Ethereum)".into()));
        }
        for (key, url, schemes) in [
            ("ws_url", &self.ws_url, ["ws://", "wss://"]),
            ("http_url", &self.http_url, ["http://", "https://"]),
        ] {
            if !schemes.iter().any(|s| url.starts_with(s))
                || url.len() > 512
                || url.chars().any(char::is_whitespace)
            {
                return Err(err(
                    key,
                    format!(
                        "must be a {} or {} URL without spaces, got {}",
                        schemes[0],
                        schemes[1],
                        redact_url(url)
                    ),
                ));
            }
        }
        let ranges: [(&str, u64, u64, u64); 9] = [
            ("finality_depth", self.finality_depth, 1, MAX_FINALITY_DEPTH),
            ("backfill_range", self.backfill_range, 1, 10_000),
            (
                "max_backfill_blocks",
                self.max_backfill_blocks,
                0,
                1_000_000,
            ),
            ("request_timeout_secs", self.request_timeout_secs, 1, 600),
            ("silence_secs", self.silence_secs, 0, 3600),
            ("backoff_base_ms", self.backoff_base_ms, 1, 3_600_000),
            ("backoff_cap_ms", self.backoff_cap_ms, 1, 3_600_000),
            ("stable_after_secs", self.stable_after_secs, 1, 86_400),
            ("connect_timeout_secs", self.connect_timeout_secs, 1, 600),
        ];
        for (key, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(err(
                    key,
                    format!("must be between {min} and {max}, got {value}"),
                ));
            }
        }
        if self.confirmations > self.finality_depth {
            return Err(err(
                "confirmations",
                format!(
                    "must be at most finality_depth ({}), got {}",
                    self.finality_depth, self.confirmations
                ),
            ));
        }
        if self.backoff_cap_ms < self.backoff_base_ms {
            return Err(err("backoff_cap_ms", "must be >= backoff_base_ms".into()));
        }
        if self.contracts.is_empty() && self.pools.is_empty() {
            return Err(err(
                "contracts",
                "or pools must list at least one contract to follow".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, c) in self.contracts.iter().enumerate() {
            if !seen.insert(c.address) {
                return Err(err(
                    &format!("contracts[{i}].address"),
                    format!("{} is listed twice", c.address),
                ));
            }
            for (j, event) in c.events.iter().enumerate() {
                parse_event(event).map_err(|m| err(&format!("contracts[{i}].events[{j}]"), m))?;
            }
        }
        for (i, p) in self.pools.iter().enumerate() {
            if !seen.insert(p.address) {
                return Err(err(
                    &format!("pools[{i}].address"),
                    format!("{} is listed twice", p.address),
                ));
            }
            if p.base == p.quote {
                return Err(err(
                    &format!("pools[{i}].quote"),
                    "must differ from base".into(),
                ));
            }
            Venue::new(&format!("{}-{}", p.dex.as_str(), self.chain))
                .map_err(|e| err("chain", format!("is too long for a DEX venue name: {e}")))?;
        }
        Ok(())
    }

    pub fn chain_venue(&self) -> Venue {
        // Validated by `validate`; a fallback keeps this total.
        Venue::new(&self.chain)
            .unwrap_or_else(|_| Venue::new("evm").unwrap_or_else(|_| unreachable!("valid name")))
    }

    /// The venue a pool's trades are published on: `{dex}-{chain}`.
    pub fn dex_venue(&self, dex: Dex) -> Venue {
        Venue::new(&format!("{}-{}", dex.as_str(), self.chain))
            .unwrap_or_else(|_| self.chain_venue())
    }

    pub fn backoff(&self) -> (Duration, Duration) {
        (
            Duration::from_millis(self.backoff_base_ms),
            Duration::from_millis(self.backoff_cap_ms),
        )
    }

    /// Every followed contract with its topic filter (empty: all events): the configured
    /// contracts, then the pools (all events).
    pub fn filters(&self) -> Vec<(Address, Vec<Hash32>)> {
        let contracts = self.contracts.iter().map(|c| {
            let topics = c
                .events
                .iter()
                .filter_map(|e| parse_event(e).ok())
                .collect();
            (c.address, topics)
        });
        contracts
            .chain(self.pools.iter().map(|p| (p.address, Vec::new())))
            .collect()
    }
}

/// An event filter entry: a signature (`Name(type,…)`) or a 32-byte topic hash.
pub fn parse_event(text: &str) -> Result<Hash32, String> {
    if text.starts_with("0x") {
        return Hash32::parse(text).map_err(|e| format!("is not a topic hash: {e}"));
    }
    let ok = text.len() <= 256
        && text.ends_with(')')
        && text.split_once('(').is_some_and(|(name, args)| {
            !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && args[..args.len() - 1]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"[](),".contains(&b))
        });
    if !ok {
        return Err(format!(
            "{:?} is not an event signature like Transfer(address,address,uint256) (no spaces, no names) or a 0x topic hash",
            text.chars().take(80).collect::<String>()
        ));
    }
    Ok(event_topic(text))
}

/// A URL for messages: scheme and host only (node URLs often carry an API key in the path
/// or query).
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    // Credentials before an `@` are secrets too.
    let host = host.rsplit('@').next().unwrap_or(host);
    let host: String = host.chars().take(100).collect();
    if scheme.is_empty() {
        "(not a URL)".into()
    } else {
        format!("{scheme}://{host}/…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> EvmSpec {
        EvmSpec {
            chain: "anvil".into(),
            chain_id: 31337,
            ws_url: "ws://127.0.0.1:8545".into(),
            http_url: "http://127.0.0.1:8545".into(),
            contracts: vec![ContractSpec {
                address: Address([1; 20]),
                events: vec!["Transfer(address,address,uint256)".into()],
            }],
            ..EvmSpec::default()
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        valid().validate("evm").unwrap();
        type Change = fn(&mut EvmSpec);
        let cases: [(Change, &str); 11] = [
            (|s| s.chain = "Main Net".into(), "evm.chain"),
            (|s| s.chain_id = 0, "evm.chain_id"),
            (|s| s.ws_url = "http://x".into(), "evm.ws_url"),
            (|s| s.http_url = "ws://x".into(), "evm.http_url"),
            (|s| s.finality_depth = 0, "evm.finality_depth"),
            (|s| s.confirmations = 65, "evm.confirmations"),
            (|s| s.backfill_range = 0, "evm.backfill_range"),
            (|s| s.contracts.clear(), "evm.contracts"),
            (
                |s| s.contracts[0].events[0] = "Transfer(address to)".into(),
                "evm.contracts[0].events[0]",
            ),
            (
                |s| s.contracts[0].events[0] = "0x12".into(),
                "evm.contracts[0].events[0]",
            ),
            (
                |s| {
                    let c = s.contracts[0].clone();
                    s.contracts.push(c);
                },
                "evm.contracts[1].address",
            ),
        ];
        for (change, key) in cases {
            let mut s = valid();
            change(&mut s);
            let error = s.validate("evm").unwrap_err().to_string();
            assert!(error.contains(key), "{key}: {error}");
        }
    }

    #[test]
    fn urls_in_messages_never_show_the_path_or_credentials() {
        let cases = [
            (
                "https://mainnet.example/v3/SECRETKEY",
                "https://mainnet.example/…",
            ),
            (
                "wss://user:pw@node.example:8546/ws?key=SECRET",
                "wss://node.example:8546/…",
            ),
            ("nonsense SECRET", "(not a URL)"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown);
        }
        let mut s = valid();
        s.ws_url = "https://node.example/SECRETKEY".into();
        assert!(
            !s.validate("evm")
                .unwrap_err()
                .to_string()
                .contains("SECRET")
        );
    }
}
