//! The simulated venue `sim`: a deterministic market the gateway runs on by default, with no
//! network.
//!
//! For a given [`SimConfig`] (seed included) the sequence of events is always the same; only the
//! wall-clock timestamps and the batching differ between runs. Each symbol has a random-walk mid
//! price, an L2 book at least [`SimConfig::levels`] deep on each side, trades that take liquidity
//! at the best level, per-symbol sequence numbers and (by default) the tickgate checksum on
//! every book message. Faults (dropped, duplicated, reordered or corrupted deltas) can be switched
//! on to exercise the gap and checksum handling downstream; they never touch the sim's own book.
//!
//! # Layout
//!
//! - `rng`: the seeded PRNG (xoshiro256**); no external randomness anywhere.
//! - `spec`: start price, tick and lot of each instrument (built-in or derived from the symbol).
//! - `book`: one symbol's true book and its events; `book/moves.rs` is the market model.
//! - [`market`]: [`SimMarket`], the pure synchronous generator over all symbols.
//! - `faults`: drop, duplicate, reorder and corrupt deltas on their way out.
//! - [`feed`]: [`SimFeed`], the market plus faults: exactly what the venue sends.
//! - [`connector`]: [`SimConnector`], which paces the feed in time behind the `Connector` seam.

mod book;
pub mod connector;
mod faults;
pub mod feed;
pub mod market;
mod rng;
mod spec;

pub use connector::SimConnector;
pub use feed::SimFeed;
pub use market::SimMarket;

use crate::ConnectorError;
use model::{Symbol, Venue};
use serde::{Deserialize, Serialize};

/// The venue name of the simulated market.
pub const VENUE: &str = "sim";

/// Highest accepted `rate` (events per second per symbol).
pub const MAX_RATE: f64 = 10_000_000.0;

/// Accepted range of `levels` (book depth per side).
pub const LEVELS_RANGE: std::ops::RangeInclusive<usize> = 10..=1000;

/// The `sim` venue as a [`Venue`].
pub fn venue() -> Venue {
    // Invariant: "sim" is lowercase letters only, which `Venue::new` always accepts.
    Venue::new(VENUE).expect("\"sim\" is a valid venue name")
}

/// Configuration of the simulated venue (`[venues.sim]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Seed of every random choice: the same seed and config give the same events.
    pub seed: u64,
    /// Symbols to simulate. `BTC-USDT`, `ETH-USDT` and `SOL-USDT` have realistic prices; any
    /// other `BASE-QUOTE` gets a start price, tick and lot derived from its name.
    pub symbols: Vec<Symbol>,
    /// Market events per second per symbol. A trade counts as one event although it is
    /// delivered as a `Trade` plus the `BookDelta` it causes.
    pub rate: f64,
    /// Minimum book depth per side (10 to 1000).
    pub levels: usize,
    /// Publish the tickgate checksum on snapshots and deltas. Benchmarks may turn it off.
    pub checksum: bool,
    /// Fault injection; all off by default.
    pub faults: SimFaults,
}

/// Probabilities, per book delta, of each fault. All in `[0, 1]`; all 0 by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimFaults {
    /// Do not send the delta. Its sequence number is used up, so the receiver sees a gap.
    pub drop: f64,
    /// Send the delta twice in a row.
    pub duplicate: f64,
    /// Send the delta after the next delta of the same symbol.
    pub reorder: f64,
    /// Send one level with a wrong size. The published checksum stays the true one, so a
    /// verifying receiver detects it; without checksums the size is made negative instead.
    pub corrupt: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            symbols: spec::DEFAULT_SYMBOLS
                .iter()
                .map(|s| Symbol::new(s).expect("built-in symbols are valid"))
                .collect(),
            rate: 5.0,
            levels: 50,
            checksum: true,
            faults: SimFaults::default(),
        }
    }
}

impl SimConfig {
    /// Checks every value; each error names the offending key (`venues.sim.rate ...`).
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let err = |msg: String| Err(ConnectorError::Config(msg));
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return err(format!(
                "venues.sim.rate must be > 0 and finite, got {}",
                self.rate
            ));
        }
        if self.rate > MAX_RATE {
            return err(format!(
                "venues.sim.rate must be <= {MAX_RATE}, got {}",
                self.rate
            ));
        }
        if !LEVELS_RANGE.contains(&self.levels) {
            return err(format!(
                "venues.sim.levels must be between {} and {}, got {}",
                LEVELS_RANGE.start(),
                LEVELS_RANGE.end(),
                self.levels
            ));
        }
        if self.symbols.is_empty() {
            return err("venues.sim.symbols must list at least one symbol".into());
        }
        for (i, symbol) in self.symbols.iter().enumerate() {
            if self.symbols[..i].contains(symbol) {
                return err(format!("venues.sim.symbols lists {symbol} twice"));
            }
        }
        let faults = &self.faults;
        for (key, p) in [
            ("drop", faults.drop),
            ("duplicate", faults.duplicate),
            ("reorder", faults.reorder),
            ("corrupt", faults.corrupt),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return err(format!(
                    "venues.sim.faults.{key} must be between 0 and 1, got {p}"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(change: impl FnOnce(&mut SimConfig)) -> SimConfig {
        let mut config = SimConfig::default();
        change(&mut config);
        config
    }

    #[test]
    fn default_config_is_valid() {
        let config = SimConfig::default();
        config.validate().unwrap();
        assert_eq!(config.seed, 42);
        let symbols: Vec<&str> = config.symbols.iter().map(Symbol::as_str).collect();
        assert_eq!(symbols, ["BTC-USDT", "ETH-USDT", "SOL-USDT"]);
    }

    #[test]
    fn bad_values_are_rejected_naming_the_key() {
        let btc = Symbol::new("BTC-USDT").unwrap();
        let cases = [
            (with(|c| c.rate = 0.0), "venues.sim.rate"),
            (with(|c| c.rate = -1.0), "venues.sim.rate"),
            (with(|c| c.rate = f64::NAN), "venues.sim.rate"),
            (with(|c| c.rate = f64::INFINITY), "venues.sim.rate"),
            (with(|c| c.rate = 10_000_001.0), "venues.sim.rate"),
            (with(|c| c.levels = 9), "venues.sim.levels"),
            (with(|c| c.levels = 1001), "venues.sim.levels"),
            (with(|c| c.symbols.clear()), "venues.sim.symbols"),
            (with(|c| c.symbols.push(btc.clone())), "venues.sim.symbols"),
            (with(|c| c.faults.drop = -0.1), "venues.sim.faults.drop"),
            (
                with(|c| c.faults.duplicate = 1.5),
                "venues.sim.faults.duplicate",
            ),
            (
                with(|c| c.faults.reorder = f64::NAN),
                "venues.sim.faults.reorder",
            ),
            (
                with(|c| c.faults.corrupt = 2.0),
                "venues.sim.faults.corrupt",
            ),
        ];
        for (config, key) in cases {
            let error = config.validate().unwrap_err();
            assert!(matches!(error, ConnectorError::Config(_)), "{error}");
            assert!(error.to_string().contains(key), "{key}: {error}");
            assert!(error.is_terminal());
        }
    }

    #[test]
    fn boundary_values_are_accepted() {
        for config in [
            with(|c| c.rate = MAX_RATE),
            with(|c| c.rate = 0.001),
            with(|c| c.levels = 10),
            with(|c| c.levels = 1000),
            with(|c| {
                c.faults = SimFaults {
                    drop: 1.0,
                    duplicate: 1.0,
                    reorder: 1.0,
                    corrupt: 0.0,
                }
            }),
        ] {
            config.validate().unwrap();
        }
    }

    #[test]
    fn deserializes_with_defaults_and_rejects_unknown_keys() {
        let config: SimConfig =
            serde_json::from_str(r#"{"rate": 100.0, "faults": {"drop": 0.5}}"#).unwrap();
        assert_eq!(config.rate, 100.0);
        assert_eq!(config.faults.drop, 0.5);
        assert_eq!(config.levels, 50);
        assert_eq!(config.symbols.len(), 3);

        assert!(serde_json::from_str::<SimConfig>(r#"{"rat": 1.0}"#).is_err());
        assert!(serde_json::from_str::<SimConfig>(r#"{"faults": {"dorp": 1.0}}"#).is_err());
        assert!(serde_json::from_str::<SimConfig>(r#"{"symbols": ["btcusdt"]}"#).is_err());

        let text = serde_json::to_string(&SimConfig::default()).unwrap();
        assert_eq!(
            serde_json::from_str::<SimConfig>(&text).unwrap(),
            SimConfig::default()
        );
    }
}
