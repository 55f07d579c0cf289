//! Channel names: `{kind}:{venue}:{symbol}`, or `status:{venue}`.

use crate::{Interval, ModelError, Symbol, Venue};
use std::fmt;
use std::str::FromStr;

/// What a channel carries. Closed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKind {
    Trades,
    Ticker,
    Book,
    Candles(Interval),
    /// Connection state changes of a venue's feeds; has no symbol.
    Status,
}

impl ChannelKind {
    /// Label used in metrics (`candles` for every interval).
    pub fn label(self) -> &'static str {
        match self {
            Self::Trades => "trades",
            Self::Ticker => "ticker",
            Self::Book => "book",
            Self::Candles(_) => "candles",
            Self::Status => "status",
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Candles(i) => write!(f, "candles.{i}"),
            other => f.write_str(other.label()),
        }
    }
}

impl FromStr for ChannelKind {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "trades" => Self::Trades,
            "ticker" => Self::Ticker,
            "book" => Self::Book,
            "status" => Self::Status,
            other => match other.strip_prefix("candles.") {
                Some(interval) => Self::Candles(interval.parse()?),
                None => return Err(ModelError::UnknownKind(other.chars().take(32).collect())),
            },
        })
    }
}

/// A parsed channel name. Display gives back the canonical text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel {
    pub kind: ChannelKind,
    pub venue: Venue,
    /// `None` only for `status` channels.
    pub symbol: Option<Symbol>,
}

/// Longest channel name accepted.
pub const MAX_CHANNEL_LEN: usize = 96;

impl Channel {
    pub fn new(kind: ChannelKind, venue: Venue, symbol: Symbol) -> Self {
        Self {
            kind,
            venue,
            symbol: Some(symbol),
        }
    }

    pub fn status(venue: Venue) -> Self {
        Self {
            kind: ChannelKind::Status,
            venue,
            symbol: None,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.symbol {
            Some(symbol) => write!(f, "{}:{}:{}", self.kind, self.venue, symbol),
            None => write!(f, "{}:{}", self.kind, self.venue),
        }
    }
}

impl FromStr for Channel {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ModelError::InvalidChannel(s.chars().take(MAX_CHANNEL_LEN).collect());
        if s.len() > MAX_CHANNEL_LEN {
            return Err(invalid());
        }
        let mut parts = s.split(':');
        let (Some(kind), Some(venue)) = (parts.next(), parts.next()) else {
            return Err(invalid());
        };
        let symbol = parts.next();
        if parts.next().is_some() {
            return Err(invalid());
        }
        let kind: ChannelKind = kind.parse()?;
        let venue = Venue::new(venue)?;
        match (kind, symbol) {
            (ChannelKind::Status, None) => Ok(Self::status(venue)),
            (ChannelKind::Status, Some(_)) | (_, None) => Err(invalid()),
            (kind, Some(symbol)) => Ok(Self::new(kind, venue, Symbol::new(symbol)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_canonical_names() {
        for name in [
            "trades:binance:BTC-USDT",
            "book:sim:ETH-USDT",
            "ticker:all:BTC-USDT",
            "candles.1m:sim:SOL-USDT",
            "candles.1d:kraken:BTC-USD",
            "status:sim",
        ] {
            assert_eq!(name.parse::<Channel>().unwrap().to_string(), name);
        }
    }

    #[test]
    fn rejects_bad_names_with_codes() {
        let cases = [
            ("", "invalid_channel"),
            ("book", "invalid_channel"),
            ("book:sim", "invalid_channel"),
            ("status:sim:BTC-USDT", "invalid_channel"),
            ("book:sim:BTC-USDT:x", "invalid_channel"),
            ("orders:sim:BTC-USDT", "unknown_channel_kind"),
            ("candles.2m:sim:BTC-USDT", "unknown_interval"),
            ("book:SIM:BTC-USDT", "invalid_venue"),
            ("book:sim:btcusdt", "invalid_symbol"),
        ];
        for (name, code) in cases {
            assert_eq!(
                name.parse::<Channel>().unwrap_err().code(),
                code,
                "{name:?}"
            );
        }
        assert_eq!(
            "x".repeat(200).parse::<Channel>().unwrap_err().code(),
            "invalid_channel"
        );
    }
}
