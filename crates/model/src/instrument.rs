//! Venues, normalized symbols and instrument metadata.

use crate::{Decimal, ModelError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A venue name: lowercase letters, digits, `_` and `-` (not first or last), 1–32 characters
/// (`binance`, `sim`, `all`, `uniswap-v3-ethereum`). Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Venue(Arc<str>);

impl Venue {
    /// The consolidated cross-venue pseudo-venue.
    pub const ALL: &'static str = "all";

    pub fn new(name: &str) -> Result<Self, ModelError> {
        let ok = !name.is_empty()
            && name.len() <= 32
            && !name.starts_with('-')
            && !name.ends_with('-')
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(name.into()))
        } else {
            Err(ModelError::InvalidVenue(name.chars().take(40).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A normalized symbol `BASE-QUOTE` (spot), or `BASE-QUOTE-PERP` (the perpetual swap
/// settled in `QUOTE`); `BASE` and `QUOTE` are uppercase ASCII letters or digits, 1–16 each.
/// Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol(Arc<str>);

/// The suffix of a perpetual swap's normalized symbol.
pub const PERP_SUFFIX: &str = "-PERP";

impl Symbol {
    pub fn new(text: &str) -> Result<Self, ModelError> {
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 16
                && p.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        };
        let pair = text.strip_suffix(PERP_SUFFIX).unwrap_or(text);
        match pair.split_once('-') {
            Some((base, quote)) if part_ok(base) && part_ok(quote) => Ok(Self(text.into())),
            _ => Err(ModelError::InvalidSymbol(text.chars().take(40).collect())),
        }
    }

    /// Whether this is a perpetual swap (`BTC-USDT-PERP`).
    pub fn is_perpetual(&self) -> bool {
        self.0.ends_with(PERP_SUFFIX)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn base(&self) -> &str {
        self.0.split_once('-').map_or("", |(b, _)| b)
    }

    /// The quote (for a perpetual, the settlement) currency: `USDT` for `BTC-USDT-PERP`.
    pub fn quote(&self) -> &str {
        let pair = self.0.strip_suffix(PERP_SUFFIX).unwrap_or(&self.0);
        pair.split_once('-').map_or("", |(_, q)| q)
    }
}

macro_rules! string_newtype_impls {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }
        impl FromStr for $t {
            type Err = ModelError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::new(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}
string_newtype_impls!(Venue);
string_newtype_impls!(Symbol);

/// A tradable instrument on one venue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Instrument {
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "binance"))]
    pub venue: Venue,
    /// Normalized `BASE-QUOTE` symbol.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "BTC-USDT"))]
    pub symbol: Symbol,
    /// The venue's own spelling (`BTCUSDT`, `BTC/USD`, `XBT/USD`).
    pub native_symbol: String,
    /// Smallest price increment.
    pub tick_size: Decimal,
    /// Smallest size increment.
    pub lot_size: Decimal,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_validate() {
        let s = Symbol::new("BTC-USDT").unwrap();
        assert_eq!(
            (s.base(), s.quote(), s.is_perpetual()),
            ("BTC", "USDT", false)
        );
        let p = Symbol::new("BTC-USDT-PERP").unwrap();
        assert_eq!(
            (p.base(), p.quote(), p.is_perpetual()),
            ("BTC", "USDT", true)
        );
        for bad in [
            "",
            "BTCUSDT",
            "btc-usdt",
            "BTC-",
            "-USDT",
            "BTC-USD-T",
            "BTC-USD-SWAP",
            "BTC-PERP",
            "BTC-USD-PERP-PERP",
            "BTC-USD-perp",
            "BTC/USD",
            "BTC -USD",
        ] {
            assert_eq!(
                Symbol::new(bad).unwrap_err().code(),
                "invalid_symbol",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn venues_validate() {
        assert!(Venue::new("binance").is_ok());
        assert!(Venue::new("uniswap-v3-anvil").is_ok());
        for bad in [
            "",
            "Binance",
            "bin ance",
            "a:b",
            "-dex",
            "dex-",
            &"x".repeat(33),
        ] {
            assert_eq!(
                Venue::new(bad).unwrap_err().code(),
                "invalid_venue",
                "{bad:?}"
            );
        }
    }
}
