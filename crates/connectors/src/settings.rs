//! Settings shared by every WebSocket venue (`[venues.feed]` in the config file).

use crate::ConnectorError;
use model::{Decimal, Instrument, Symbol, Venue};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Connection, recovery and limit settings of one venue. Every field has a default that suits
/// the live venue; tests shorten the timers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedSettings {
    /// First reconnect delay ceiling, ms (full jitter: the actual wait is random below it).
    pub backoff_base_ms: u64,
    /// Largest reconnect delay ceiling, ms.
    pub backoff_cap_ms: u64,
    /// A connection that stayed up this long resets the backoff schedule.
    pub stable_after_secs: u64,
    /// Opening a connection (TCP + TLS + WebSocket handshake) longer than this fails it.
    pub connect_timeout_secs: u64,
    /// A subscription the venue has not acknowledged within this time reconnects.
    pub ack_timeout_secs: u64,
    /// A symbol with no data for this long is resubscribed; still nothing after as long again,
    /// the connection is replaced.
    pub stale_after_secs: u64,
    /// A connection with no frame at all (data, heartbeat or ping) for this long is replaced.
    pub silence_secs: u64,
    /// Book depth: Binance REST snapshot `limit`, Kraken subscription `depth`. 0 = the venue
    /// default (Binance 1000, Kraken 10).
    pub depth: usize,
    /// Binance: streams per connection (the venue allows 1024); symbols beyond are sharded
    /// onto more connections.
    pub max_streams_per_connection: usize,
    /// Coinbase: products per connection. `sequence_num` is per connection, so with one
    /// product per connection a gap names exactly the product to resubscribe.
    pub products_per_connection: usize,
    /// Binance: replace each connection make-before-break after this long (the venue closes
    /// connections at 24 h).
    pub rotate_after_secs: u64,
    /// Instrument metadata used when the venue's REST metadata endpoint is unreachable:
    /// `"BTC-USDT" = { tick_size = "0.01", lot_size = "0.00001" }`.
    pub instruments: BTreeMap<String, InstrumentOverride>,
}

/// Tick and lot size of one instrument, from the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentOverride {
    pub tick_size: Decimal,
    pub lot_size: Decimal,
    /// OKX swaps: base units per contract (OKX's `ctVal`, 0.01 for `BTC-USDT-PERP`), used to
    /// convert contract sizes when the metadata endpoint is unreachable. Positive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract_size: Option<Decimal>,
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self {
            backoff_base_ms: 500,
            backoff_cap_ms: 30_000,
            stable_after_secs: 60,
            connect_timeout_secs: 10,
            ack_timeout_secs: 10,
            stale_after_secs: 60,
            silence_secs: 30,
            depth: 0,
            max_streams_per_connection: 1024,
            products_per_connection: 1,
            rotate_after_secs: 23 * 3600,
            instruments: BTreeMap::new(),
        }
    }
}

impl FeedSettings {
    /// Checks ranges; errors name the key under `prefix` (e.g. `venues[1].feed`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConnectorError> {
        let checks: [(&str, u64, u64, u64); 10] = [
            ("backoff_base_ms", self.backoff_base_ms, 1, 3_600_000),
            ("backoff_cap_ms", self.backoff_cap_ms, 1, 3_600_000),
            ("stable_after_secs", self.stable_after_secs, 1, 86_400),
            ("connect_timeout_secs", self.connect_timeout_secs, 1, 600),
            ("ack_timeout_secs", self.ack_timeout_secs, 1, 600),
            ("stale_after_secs", self.stale_after_secs, 1, 86_400),
            ("silence_secs", self.silence_secs, 1, 3600),
            (
                "max_streams_per_connection",
                self.max_streams_per_connection as u64,
                2,
                1024,
            ),
            (
                "products_per_connection",
                self.products_per_connection as u64,
                1,
                1000,
            ),
            ("rotate_after_secs", self.rotate_after_secs, 10, 86_000),
        ];
        for (key, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(ConnectorError::setting(
                    format!("{prefix}.{key}"),
                    format!("must be between {min} and {max}, got {value}"),
                ));
            }
        }
        if self.backoff_cap_ms < self.backoff_base_ms {
            return Err(ConnectorError::setting(
                format!("{prefix}.backoff_cap_ms"),
                "must be >= backoff_base_ms",
            ));
        }
        if self.depth > 5000 {
            return Err(ConnectorError::setting(
                format!("{prefix}.depth"),
                format!("must be at most 5000, got {}", self.depth),
            ));
        }
        for (symbol, o) in &self.instruments {
            Symbol::new(symbol).map_err(|e| {
                ConnectorError::setting(
                    format!("{prefix}.instruments"),
                    format!("has an invalid symbol: {e}"),
                )
            })?;
            if o.tick_size <= Decimal::ZERO || o.lot_size <= Decimal::ZERO {
                return Err(ConnectorError::setting(
                    format!("{prefix}.instruments.{symbol}"),
                    "must have a positive tick_size and lot_size",
                ));
            }
            if o.contract_size.is_some_and(|c| c <= Decimal::ZERO) {
                return Err(ConnectorError::setting(
                    format!("{prefix}.instruments.{symbol}.contract_size"),
                    "must be positive",
                ));
            }
        }
        Ok(())
    }

    pub fn backoff(&self) -> (Duration, Duration) {
        (
            Duration::from_millis(self.backoff_base_ms),
            Duration::from_millis(self.backoff_cap_ms),
        )
    }

    /// The configured instrument for `symbol`, or a placeholder with unknown (zero) tick and
    /// lot until the venue's metadata arrives.
    pub fn instrument(&self, venue: &Venue, symbol: &Symbol, native: String) -> Instrument {
        let o = self.instruments.get(symbol.as_str());
        Instrument {
            venue: venue.clone(),
            symbol: symbol.clone(),
            native_symbol: native,
            tick_size: o.map_or(Decimal::ZERO, |o| o.tick_size),
            lot_size: o.map_or(Decimal::ZERO, |o| o.lot_size),
        }
    }
}

/// What a WebSocket venue connector is built from: the `[[venues]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct VenueSpec {
    pub symbols: Vec<Symbol>,
    /// Overrides the venue's WebSocket base URL.
    pub ws_url: Option<String>,
    /// Overrides the venue's REST base URL.
    pub rest_url: Option<String>,
    pub feed: FeedSettings,
}

impl VenueSpec {
    pub fn new(symbols: Vec<Symbol>) -> Self {
        Self {
            symbols,
            ws_url: None,
            rest_url: None,
            feed: FeedSettings::default(),
        }
    }

    /// Validates symbols, URLs and settings; errors name keys under `prefix`.
    pub fn validate(&self, prefix: &str) -> Result<(), ConnectorError> {
        if self.symbols.is_empty() {
            return Err(ConnectorError::setting(
                format!("{prefix}.symbols"),
                "must list at least one symbol",
            ));
        }
        for (i, symbol) in self.symbols.iter().enumerate() {
            if self.symbols[..i].contains(symbol) {
                return Err(ConnectorError::setting(
                    format!("{prefix}.symbols"),
                    format!("lists {symbol} twice"),
                ));
            }
        }
        for (key, url, schemes) in [
            ("ws_url", &self.ws_url, ["ws://", "wss://"]),
            ("rest_url", &self.rest_url, ["http://", "https://"]),
        ] {
            if let Some(url) = url
                && (!schemes.iter().any(|s| url.starts_with(s))
                    || url.len() > 512
                    || url.chars().any(char::is_whitespace))
            {
                return Err(ConnectorError::setting(
                    format!("{prefix}.{key}"),
                    format!(
                        "must be a {} or {} URL without spaces, got {url:?}",
                        schemes[0], schemes[1]
                    ),
                ));
            }
        }
        self.feed.validate(&format!("{prefix}.feed"))
    }

    /// [`VenueSpec::validate`] for a venue that serves spot markets only: a perpetual
    /// (`BTC-USDT-PERP`) is refused with the key named.
    pub fn validate_spot(&self, prefix: &str) -> Result<(), ConnectorError> {
        self.validate(prefix)?;
        match self.symbols.iter().find(|s| s.is_perpetual()) {
            Some(symbol) => Err(ConnectorError::setting(
                format!("{prefix}.symbols"),
                format!("{symbol} is a perpetual; this venue serves spot markets only"),
            )),
            None => Ok(()),
        }
    }

    /// `url` override or the venue default, without a trailing `/`.
    pub(crate) fn ws_base<'a>(&'a self, default: &'a str) -> &'a str {
        self.ws_url
            .as_deref()
            .unwrap_or(default)
            .trim_end_matches('/')
    }

    pub(crate) fn rest_base<'a>(&'a self, default: &'a str) -> &'a str {
        self.rest_url
            .as_deref()
            .unwrap_or(default)
            .trim_end_matches('/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        FeedSettings::default().validate("feed").unwrap();
        type Change = fn(&mut FeedSettings);
        let cases: [(Change, &str); 6] = [
            (|f| f.backoff_base_ms = 0, "feed.backoff_base_ms"),
            (|f| f.backoff_cap_ms = 10, "feed.backoff_cap_ms"),
            (|f| f.max_streams_per_connection = 2000, "feed.max_streams"),
            (|f| f.depth = 9000, "feed.depth"),
            (
                |f| {
                    f.instruments.insert(
                        "btcusd".into(),
                        InstrumentOverride {
                            tick_size: Decimal::ONE,
                            lot_size: Decimal::ONE,
                            contract_size: None,
                        },
                    );
                },
                "feed.instruments",
            ),
            (
                |f| {
                    f.instruments.insert(
                        "BTC-USDT-PERP".into(),
                        InstrumentOverride {
                            tick_size: Decimal::ONE,
                            lot_size: Decimal::ONE,
                            contract_size: Some(Decimal::ZERO),
                        },
                    );
                },
                "feed.instruments.BTC-USDT-PERP.contract_size",
            ),
        ];
        for (change, key) in cases {
            let mut f = FeedSettings::default();
            change(&mut f);
            let error = f.validate("feed").unwrap_err().to_string();
            assert!(error.contains(key), "{key}: {error}");
        }
    }

    /// Guards the structured key: `server::config` reads it instead of parsing the message.
    #[test]
    fn errors_carry_the_key_apart_from_the_message() {
        let mut f = FeedSettings {
            silence_secs: 0,
            ..FeedSettings::default()
        };
        let error = f.validate("venues[2].feed").unwrap_err();
        assert_eq!(error.key(), Some("venues[2].feed.silence_secs"));
        assert!(error.is_terminal());
        assert_eq!(
            error.to_string(),
            "invalid connector configuration: venues[2].feed.silence_secs must be between 1 \
             and 3600, got 0"
        );
        f.silence_secs = FeedSettings::default().silence_secs;
        f.depth = 5001;
        assert_eq!(f.validate("x").unwrap_err().key(), Some("x.depth"), "{f:?}");
        let spec = VenueSpec::new(Vec::new());
        assert_eq!(spec.validate("v").unwrap_err().key(), Some("v.symbols"));
    }

    #[test]
    fn spec_rejects_bad_urls_and_duplicates() {
        let btc = Symbol::new("BTC-USD").unwrap();
        let mut spec = VenueSpec::new(vec![btc.clone()]);
        spec.validate("v").unwrap();
        spec.ws_url = Some("http://x".into());
        assert!(
            spec.validate("v")
                .unwrap_err()
                .to_string()
                .contains("v.ws_url")
        );
        spec.ws_url = Some("ws://127.0.0.1:1".into());
        spec.rest_url = Some("ftp://x".into());
        assert!(
            spec.validate("v")
                .unwrap_err()
                .to_string()
                .contains("v.rest_url")
        );
        spec.rest_url = None;
        spec.symbols.push(btc);
        assert!(
            spec.validate("v")
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }
}
