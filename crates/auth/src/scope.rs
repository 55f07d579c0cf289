//! Scopes: what a key may do. Least privilege: a key has only the scopes it was given.

use std::fmt;

/// One permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Live market data: REST `/v1/instruments|ticker|book|candles` and every WS channel.
    MarketRead,
    /// Stored history (trades, candles) over REST.
    HistoryRead,
    /// Creating and changing alerts.
    AlertsWrite,
    /// The admin API (`/admin/v1/...`): keys and audit.
    KeysAdmin,
    /// `/metrics` when `[auth] public_metrics = false`.
    MetricsRead,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Self::MarketRead,
        Self::HistoryRead,
        Self::AlertsWrite,
        Self::KeysAdmin,
        Self::MetricsRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MarketRead => "market:read",
            Self::HistoryRead => "history:read",
            Self::AlertsWrite => "alerts:write",
            Self::KeysAdmin => "keys:admin",
            Self::MetricsRead => "metrics:read",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                let shown: String = s.chars().take(32).collect();
                format!(
                    "unknown scope {shown:?}; scopes are: {}",
                    Self::ALL.map(Scope::as_str).join(", ")
                )
            })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes (a bit set: checking one is a single AND).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ScopeSet(u8);

impl ScopeSet {
    pub const EMPTY: ScopeSet = ScopeSet(0);

    pub fn of(scopes: &[Scope]) -> Self {
        Self(scopes.iter().fold(0, |acc, s| acc | s.bit()))
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    pub fn names(self) -> Vec<String> {
        self.iter().map(|s| s.as_str().to_string()).collect()
    }

    /// Parses scope names (each must be known); an empty list is an error.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        if names.is_empty() {
            return Err("at least one scope is required".into());
        }
        let mut set = Self::EMPTY;
        for name in names {
            set.0 |= name.as_ref().trim().parse::<Scope>()?.bit();
        }
        Ok(set)
    }

    /// Parses `a,b,c` (commas and/or spaces).
    pub fn parse_list(text: &str) -> Result<Self, String> {
        let names: Vec<&str> = text.split([',', ' ']).filter(|s| !s.is_empty()).collect();
        Self::parse(&names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_check() {
        let set = ScopeSet::parse_list("market:read, keys:admin").unwrap();
        assert!(set.contains(Scope::MarketRead) && set.contains(Scope::KeysAdmin));
        assert!(!set.contains(Scope::HistoryRead));
        assert_eq!(set.names(), ["market:read", "keys:admin"]);
        assert!(ScopeSet::parse_list("").is_err());
        assert!(
            ScopeSet::parse_list("market:write")
                .unwrap_err()
                .contains("market:read")
        );
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
        }
    }
}
