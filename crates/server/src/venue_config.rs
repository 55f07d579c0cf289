//! `[[venues]]`: [`VenueConfig`], one venue feed, and the validated specs built from it.

use crate::config_error::ConfigError;
use connectors::settings::{FeedSettings, VenueSpec};
use connectors::venue::evm::EvmSpec;
use connectors::venue::sim::{SimConfig, SimFaults};
use connectors::venue::{Transport, VenueKind};
use model::Symbol;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[[venues]]`: one venue feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VenueConfig {
    /// One of [`VenueKind::ALL`]: `sim`, `binance`, `coinbase`, `kraken`, `okx`, `bybit`,
    /// `hyperliquid`, `replay`, `evm`.
    pub name: String,
    /// Normalized `BASE-QUOTE` symbols to serve.
    pub symbols: Vec<String>,
    /// Override of the venue's WebSocket URL (testnets, proxies, local test servers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_url: Option<String>,
    /// Override of the venue's REST URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rest_url: Option<String>,
    /// `[venues.sim]`: settings of the simulated market (only for `name = "sim"`).
    pub sim: SimSettings,
    /// `[venues.feed]`: connection, recovery and limit settings of a real venue.
    pub feed: FeedSettings,
    /// `replay` only: the capture file written by `tickgate record`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// `replay` only: `1.0` (real time), any factor such as `10`, or `"max"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<ReplaySpeedConfig>,
    /// `evm` only: `[venues.evm]`, the chain (node URLs, chain id, contracts, pools,
    /// confirmations); see docs/onchain.md. `symbols` does not apply (pools name theirs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evm: Option<EvmSpec>,
}

/// `speed` of the replay venue: a factor or `"max"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReplaySpeedConfig {
    Factor(f64),
    Named(String),
}

impl Default for VenueConfig {
    fn default() -> Self {
        Self {
            name: VenueKind::Sim.name().into(),
            symbols: SimConfig::default()
                .symbols
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ws_url: None,
            rest_url: None,
            sim: SimSettings::default(),
            feed: FeedSettings::default(),
            path: None,
            speed: None,
            evm: None,
        }
    }
}

/// Settings of the simulated venue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimSettings {
    pub seed: u64,
    /// Events per second per symbol.
    pub rate: f64,
    /// Minimum book depth per side.
    pub levels: usize,
    /// Publish checksums the book engine verifies.
    pub checksum: bool,
    /// Fault injection probabilities per delta: drop, duplicate, reorder, corrupt.
    pub faults: SimFaults,
}

impl Default for SimSettings {
    fn default() -> Self {
        let d = SimConfig::default();
        Self {
            seed: d.seed,
            rate: d.rate,
            levels: d.levels,
            checksum: d.checksum,
            faults: d.faults,
        }
    }
}

impl VenueConfig {
    /// The venue's kind, if `name` is one this build supports (`Config::validate` refuses
    /// any other).
    pub fn kind(&self) -> Option<VenueKind> {
        VenueKind::from_name(&self.name)
    }

    /// The venue's kind; the error (key `venues[i].name`) lists the supported ones.
    pub fn checked_kind(&self, index: usize) -> Result<VenueKind, ConfigError> {
        let key = format!("venues[{index}].name");
        self.kind().ok_or_else(|| {
            ConfigError::new(
                key,
                format!(
                    "unsupported venue {:?}; this build supports: {}",
                    self.name,
                    VenueKind::names()
                ),
            )
        })
    }

    /// The venue names this entry serves: its own, or for an evm venue its chain and its DEX
    /// venues after it.
    pub fn served_names(&self, kind: VenueKind) -> Vec<String> {
        match (kind, &self.evm) {
            (VenueKind::Evm, Some(evm)) => {
                let mut names = vec![evm.chain.clone()];
                names.extend(evm.pools.iter().map(|p| evm.dex_venue(p.dex).to_string()));
                names.dedup();
                names
            }
            _ => vec![self.name.clone()],
        }
    }

    /// Checks the settings of this entry, of kind `kind` (from [`Self::checked_kind`]); errors
    /// name keys under `venues[index]`.
    pub fn validate(&self, kind: VenueKind, index: usize) -> Result<(), ConfigError> {
        if kind != VenueKind::Evm && self.evm.is_some() {
            return Err(ConfigError::new(
                format!("venues[{index}].evm"),
                "[venues.evm] only applies to an evm venue",
            ));
        }
        match kind.transport() {
            Transport::Simulated => {
                self.sim_config(index)?;
            }
            Transport::Capture => {
                if self.path.is_none() {
                    return Err(ConfigError::new(
                        format!("venues[{index}].path"),
                        "the replay venue needs the capture file to play",
                    ));
                }
                self.replay_speed(index)?;
            }
            Transport::Chain => {
                self.evm_spec(index)?;
            }
            Transport::WebSocket => {
                self.venue_spec(index)?;
            }
        }
        if kind != VenueKind::Replay && (self.path.is_some() || self.speed.is_some()) {
            return Err(ConfigError::new(
                format!("venues[{index}].path"),
                "path and speed only apply to the replay venue",
            ));
        }
        Ok(())
    }

    /// The spec of a WebSocket venue (`binance`, `coinbase`, `kraken`), validated.
    pub fn venue_spec(&self, index: usize) -> Result<VenueSpec, ConfigError> {
        let spec = VenueSpec {
            symbols: self.parsed_symbols(index)?,
            ws_url: self.ws_url.clone(),
            rest_url: self.rest_url.clone(),
            feed: self.feed.clone(),
        };
        spec.validate(&format!("venues[{index}]"))
            .map_err(|e| ConfigError::new(e.key().unwrap_or("venues"), e.to_string()))?;
        Ok(spec)
    }

    /// The chain of an `evm` venue, validated; errors name keys under `venues[i].evm`.
    pub fn evm_spec(&self, index: usize) -> Result<EvmSpec, ConfigError> {
        let key = format!("venues[{index}].evm");
        let spec = self.evm.clone().ok_or_else(|| {
            ConfigError::new(key.clone(), "an evm venue needs a [venues.evm] table")
        })?;
        spec.validate(&key)
            .map_err(|e| ConfigError::new(e.key().unwrap_or(&key), e.to_string()))?;
        Ok(spec)
    }

    /// The replay speed: `None` = as fast as possible.
    pub fn replay_speed(&self, index: usize) -> Result<Option<f64>, ConfigError> {
        let key = format!("venues[{index}].speed");
        match &self.speed {
            None => Ok(Some(1.0)),
            Some(ReplaySpeedConfig::Named(name)) if name == "max" => Ok(None),
            Some(ReplaySpeedConfig::Named(name)) => Err(ConfigError::new(
                key,
                format!("expected a number or \"max\", got {name:?}"),
            )),
            Some(ReplaySpeedConfig::Factor(f)) if f.is_finite() && *f > 0.0 && *f <= 1e6 => {
                Ok(Some(*f))
            }
            Some(ReplaySpeedConfig::Factor(f)) => Err(ConfigError::new(
                key,
                format!("must be > 0 and <= 1000000, got {f}"),
            )),
        }
    }

    /// Parsed symbols; errors name the key `venues[i].symbols`.
    pub fn parsed_symbols(&self, index: usize) -> Result<Vec<Symbol>, ConfigError> {
        let key = format!("venues[{index}].symbols");
        if self.symbols.is_empty() {
            return Err(ConfigError::new(key, "at least one symbol is required"));
        }
        self.symbols
            .iter()
            .map(|s| Symbol::new(s).map_err(|e| ConfigError::new(key.clone(), e.to_string())))
            .collect()
    }

    /// The simulator configuration for this venue.
    pub fn sim_config(&self, index: usize) -> Result<SimConfig, ConfigError> {
        let config = SimConfig {
            seed: self.sim.seed,
            symbols: self.parsed_symbols(index)?,
            rate: self.sim.rate,
            levels: self.sim.levels,
            checksum: self.sim.checksum,
            faults: self.sim.faults.clone(),
        };
        config
            .validate()
            .map_err(|e| ConfigError::new(format!("venues[{index}].sim"), e.to_string()))?;
        Ok(config)
    }
}
