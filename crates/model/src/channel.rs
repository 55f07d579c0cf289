//! Channel names: `{kind}:{venue}:{symbol}`, `status:{venue}`, the on-chain
//! `onchain.blocks:{chain}` and `onchain.logs:{chain}:{contract}`, and `alerts` (the caller's
//! own alerts: the same name for every client, each sees only its own).

use crate::onchain::Address;
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
    /// Funding rate of a perpetual (`funding`); the last value is the snapshot.
    Funding,
    /// Mark and index price of a perpetual (`mark`); the last value is the snapshot.
    Mark,
    /// Open interest of a perpetual (`oi`); the last value is the snapshot.
    OpenInterest,
    /// Forced closes of positions on a perpetual (`liquidations`); no snapshot, like trades.
    Liquidations,
    /// Connection state changes of a venue's feeds; has no symbol.
    Status,
    /// Blocks of an EVM chain (the venue is the chain's name); has no symbol.
    OnchainBlocks,
    /// Logs of one contract on an EVM chain; named by the contract address, not a symbol.
    OnchainLogs,
    /// The firings of the subscriber's own alert rules; has neither venue nor symbol.
    Alerts,
}

impl ChannelKind {
    /// Label used in metrics (`candles` for every interval).
    pub fn label(self) -> &'static str {
        match self {
            Self::Trades => "trades",
            Self::Ticker => "ticker",
            Self::Book => "book",
            Self::Candles(_) => "candles",
            Self::Funding => "funding",
            Self::Mark => "mark",
            Self::OpenInterest => "oi",
            Self::Liquidations => "liquidations",
            Self::Status => "status",
            Self::OnchainBlocks => "onchain.blocks",
            Self::OnchainLogs => "onchain.logs",
            Self::Alerts => "alerts",
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
            "funding" => Self::Funding,
            "mark" => Self::Mark,
            "oi" => Self::OpenInterest,
            "liquidations" => Self::Liquidations,
            "status" => Self::Status,
            "onchain.blocks" => Self::OnchainBlocks,
            "onchain.logs" => Self::OnchainLogs,
            "alerts" => Self::Alerts,
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
    /// `None` for `status`, `onchain.blocks` and `onchain.logs` channels.
    pub symbol: Option<Symbol>,
    /// The contract of an `onchain.logs` channel; `None` for every other kind.
    pub contract: Option<Address>,
}

/// Longest channel name accepted.
pub const MAX_CHANNEL_LEN: usize = 96;

impl Channel {
    pub fn new(kind: ChannelKind, venue: Venue, symbol: Symbol) -> Self {
        Self {
            kind,
            venue,
            symbol: Some(symbol),
            contract: None,
        }
    }

    pub fn status(venue: Venue) -> Self {
        Self {
            kind: ChannelKind::Status,
            venue,
            symbol: None,
            contract: None,
        }
    }

    /// `onchain.blocks:{chain}`.
    pub fn onchain_blocks(chain: Venue) -> Self {
        Self {
            kind: ChannelKind::OnchainBlocks,
            venue: chain,
            symbol: None,
            contract: None,
        }
    }

    /// `onchain.logs:{chain}:{contract}`.
    pub fn onchain_logs(chain: Venue, contract: Address) -> Self {
        Self {
            kind: ChannelKind::OnchainLogs,
            venue: chain,
            symbol: None,
            contract: Some(contract),
        }
    }

    /// `alerts`. Its venue is the placeholder [`ALERTS_VENUE`]; the name has none.
    pub fn alerts() -> Self {
        Self {
            kind: ChannelKind::Alerts,
            venue: Venue::new(ALERTS_VENUE).unwrap_or_else(|_| unreachable!("a valid name")),
            symbol: None,
            contract: None,
        }
    }
}

/// The venue field of the `alerts` channel (never printed).
pub const ALERTS_VENUE: &str = "alerts";

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.symbol, &self.contract, self.kind) {
            (_, _, ChannelKind::Alerts) => f.write_str("alerts"),
            (Some(symbol), _, _) => write!(f, "{}:{}:{}", self.kind, self.venue, symbol),
            (None, Some(contract), _) => write!(f, "{}:{}:{}", self.kind, self.venue, contract),
            (None, None, _) => write!(f, "{}:{}", self.kind, self.venue),
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
        if s == "alerts" {
            return Ok(Self::alerts());
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
            (ChannelKind::OnchainBlocks, None) => Ok(Self::onchain_blocks(venue)),
            (ChannelKind::OnchainLogs, Some(contract)) => {
                Ok(Self::onchain_logs(venue, Address::parse(contract)?))
            }
            (ChannelKind::Alerts, _)
            | (ChannelKind::Status | ChannelKind::OnchainBlocks, Some(_))
            | (_, None) => Err(invalid()),
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
            "funding:bybit:BTC-USDT-PERP",
            "mark:okx:BTC-USDT-PERP",
            "oi:hyperliquid:BTC-USDC-PERP",
            "liquidations:bybit:ETH-USDT-PERP",
            "funding:all:BTC-USDT-PERP",
            "status:sim",
            "trades:uniswap-v3-anvil:WETH-USDC",
            "onchain.blocks:anvil",
            "onchain.logs:anvil:0x5fbdb2315678afecb367f032d93f642f64180aa3",
            "alerts",
        ] {
            assert_eq!(name.parse::<Channel>().unwrap().to_string(), name);
        }
        // Addresses are case-insensitive; the canonical name is lowercase.
        let upper = "onchain.logs:anvil:0x5FbDB2315678afecb367f032d93F642f64180aa3";
        assert_eq!(
            upper.parse::<Channel>().unwrap().to_string(),
            upper.to_lowercase()
        );
    }

    #[test]
    fn rejects_bad_names_with_codes() {
        let cases = [
            ("", "invalid_channel"),
            ("book", "invalid_channel"),
            ("book:sim", "invalid_channel"),
            ("status:sim:BTC-USDT", "invalid_channel"),
            ("funding:bybit", "invalid_channel"),
            ("open_interest:bybit:BTC-USDT-PERP", "unknown_channel_kind"),
            ("book:sim:BTC-USDT:x", "invalid_channel"),
            ("orders:sim:BTC-USDT", "unknown_channel_kind"),
            ("candles.2m:sim:BTC-USDT", "unknown_interval"),
            ("book:SIM:BTC-USDT", "invalid_venue"),
            ("book:sim:btcusdt", "invalid_symbol"),
            ("onchain.blocks:anvil:BTC-USDT", "invalid_channel"),
            ("onchain.logs:anvil", "invalid_channel"),
            ("onchain.logs:anvil:BTC-USDT", "invalid_hex"),
            ("onchain.logs:anvil:0x1234", "invalid_hex"),
            ("alerts:sim", "invalid_channel"),
            ("alerts:sim:BTC-USDT", "invalid_channel"),
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
