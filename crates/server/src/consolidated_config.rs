//! `[consolidated]`: settings of the cross-venue channels and the groups they merge.

use crate::config_error::ConfigError;
use crate::venue_config::VenueConfig;
use connectors::venue::VenueKind;
use model::Symbol;
use serde::{Deserialize, Serialize};

/// `[consolidated]`: the cross-venue `book:all:SYM` and `ticker:all:SYM` channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsolidatedConfig {
    pub enabled: bool,
    /// Levels per side of a consolidated book.
    pub depth: usize,
    /// How often consolidated channels are recomputed, ms.
    pub interval_ms: u64,
    /// Explicit groups. By default each symbol merges only the venues serving exactly that
    /// symbol (USD and USDT apart); a group here replaces the default one of its symbol.
    pub groups: Vec<GroupConfig>,
}

/// `[[consolidated.groups]]`: `symbol = "BTC-USD"`, `members = ["coinbase:BTC-USD",
/// "binance:BTC-USDT"]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub symbol: String,
    pub members: Vec<String>,
}

impl Default for ConsolidatedConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            depth: 50,
            interval_ms: 100,
            groups: Vec::new(),
        }
    }
}

impl ConsolidatedConfig {
    /// `consolidated.depth` and `consolidated.interval_ms` within their ranges (the groups are
    /// checked against the venues by [`Self::groups`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=1000).contains(&self.depth) {
            return Err(ConfigError::new(
                "consolidated.depth",
                "must be between 1 and 1000",
            ));
        }
        if !(10..=60_000).contains(&self.interval_ms) {
            return Err(ConfigError::new(
                "consolidated.interval_ms",
                "must be between 10 and 60000",
            ));
        }
        Ok(())
    }

    /// The consolidated groups over `venues`: defaults for every configured symbol, replaced
    /// by explicit groups of the same symbol. Errors name the key.
    pub fn groups(
        &self,
        venues: &[VenueConfig],
    ) -> Result<Vec<ingest::consolidate::Group>, ConfigError> {
        use ingest::consolidate::{Group, default_groups};
        let mut served = Vec::new();
        for (i, venue) in venues.iter().enumerate() {
            if venue.kind() == Some(VenueKind::Replay) {
                continue;
            }
            let name = model::Venue::new(&venue.name)
                .map_err(|e| ConfigError::new(format!("venues[{i}].name"), e.to_string()))?;
            served.push((name, venue.parsed_symbols(i)?));
        }
        let mut groups = default_groups(&served);
        for (g, group) in self.groups.iter().enumerate() {
            let key = format!("consolidated.groups[{g}]");
            let symbol = Symbol::new(&group.symbol)
                .map_err(|e| ConfigError::new(format!("{key}.symbol"), e.to_string()))?;
            let mut members = Vec::new();
            for member in &group.members {
                let parsed = member
                    .split_once(':')
                    .and_then(|(v, s)| Some((model::Venue::new(v).ok()?, Symbol::new(s).ok()?)));
                let Some((venue, sym)) = parsed else {
                    return Err(ConfigError::new(
                        format!("{key}.members"),
                        format!("{member:?} is not venue:SYMBOL, e.g. binance:BTC-USDT"),
                    ));
                };
                if !served
                    .iter()
                    .any(|(v, syms)| *v == venue && syms.contains(&sym))
                {
                    return Err(ConfigError::new(
                        format!("{key}.members"),
                        format!("{member} is not served by any configured venue"),
                    ));
                }
                members.push((venue, sym));
            }
            if members.is_empty() {
                return Err(ConfigError::new(
                    format!("{key}.members"),
                    "at least one member is required",
                ));
            }
            groups.retain(|existing| existing.symbol != symbol);
            groups.push(Group { symbol, members });
        }
        Ok(groups)
    }
}
