//! Start price, tick and lot of each simulated instrument.
//!
//! Prices are whole ticks and sizes whole lots internally; ticks and lots are powers of ten, so a
//! price of `n` ticks is the decimal `n × 10^-price_scale` and always prints with exactly
//! `price_scale` decimals (`65000.10`), like a real venue's strings.

use super::rng::fnv1a;
use model::{Decimal, Instrument, Symbol};

/// The symbols simulated when the config names none.
pub(crate) const DEFAULT_SYMBOLS: [&str; 3] = ["BTC-USDT", "ETH-USDT", "SOL-USDT"];

/// Quote-currency value of a typical level near the top of the book.
const LEVEL_NOTIONAL: i128 = 25_000;

/// How one instrument trades in the sim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spec {
    /// Start mid price, in ticks.
    pub start_ticks: i64,
    /// Decimals of a price: the tick is `10^-price_scale`.
    pub price_scale: u32,
    /// Decimals of a size: the lot is `10^-size_scale`.
    pub size_scale: u32,
}

impl Spec {
    /// The built-in spec for the well-known symbols; any other symbol gets one derived from its
    /// name, so every `BASE-QUOTE` works and always gets the same market.
    pub(crate) fn for_symbol(symbol: &Symbol) -> Self {
        let (start_ticks, price_scale, size_scale) = match symbol.as_str() {
            "BTC-USDT" => (6_500_000, 2, 5),
            "ETH-USDT" => (350_000, 2, 4),
            "SOL-USDT" => (150_000, 3, 2),
            other => {
                // A price of 1.00 to 9.99 times 10^0..10^4, always 100_000..999_000 ticks, with
                // a lot worth 0.1 to 1 quote unit.
                let hash = fnv1a(other);
                let magnitude = (hash % 5) as u32;
                let mantissa = 100 + ((hash >> 8) % 900) as i64;
                (mantissa * 1000, 5 - magnitude, magnitude + 1)
            }
        };
        Self {
            start_ticks,
            price_scale,
            size_scale,
        }
    }

    /// Price in ticks as a decimal with the instrument's fixed scale.
    pub(crate) fn price(&self, ticks: i64) -> Decimal {
        Decimal::new(ticks, self.price_scale)
    }

    /// Size in lots as a decimal with the instrument's fixed scale.
    pub(crate) fn size(&self, lots: i64) -> Decimal {
        Decimal::new(lots, self.size_scale)
    }

    /// Typical distance between neighbouring levels, in ticks (about 0.001 % of the price).
    pub(crate) fn level_gap(&self) -> i64 {
        (self.start_ticks / 100_000).max(1)
    }

    /// Lots of a typical level near the top: about [`LEVEL_NOTIONAL`] quote units.
    pub(crate) fn base_lots(&self) -> i64 {
        let scale = 10i128.pow(self.size_scale + self.price_scale);
        let lots = LEVEL_NOTIONAL * scale / i128::from(self.start_ticks.max(1));
        lots.clamp(1, 1_000_000_000) as i64
    }

    pub(crate) fn instrument(&self, symbol: &Symbol) -> Instrument {
        Instrument {
            venue: super::venue(),
            symbol: symbol.clone(),
            native_symbol: format!("{}{}", symbol.base(), symbol.quote()),
            tick_size: Decimal::new(1, self.price_scale),
            lot_size: Decimal::new(1, self.size_scale),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_instruments_look_like_a_real_venue() {
        let cases = [
            ("BTC-USDT", "65000.00", "0.01", "0.00001", "BTCUSDT"),
            ("ETH-USDT", "3500.00", "0.01", "0.0001", "ETHUSDT"),
            ("SOL-USDT", "150.000", "0.001", "0.01", "SOLUSDT"),
        ];
        for (symbol, start, tick, lot, native) in cases {
            let symbol = Symbol::new(symbol).unwrap();
            let spec = Spec::for_symbol(&symbol);
            let instrument = spec.instrument(&symbol);
            assert_eq!(spec.price(spec.start_ticks).to_string(), start);
            assert_eq!(instrument.tick_size.to_string(), tick);
            assert_eq!(instrument.lot_size.to_string(), lot);
            assert_eq!(instrument.native_symbol, native);
            assert_eq!(instrument.venue.as_str(), "sim");
        }
    }

    #[test]
    fn unknown_symbols_get_a_stable_sensible_spec() {
        for name in ["DOGE-USDT", "XRP-EUR", "A-B", "PEPE1000-USDC"] {
            let symbol = Symbol::new(name).unwrap();
            let spec = Spec::for_symbol(&symbol);
            assert_eq!(spec, Spec::for_symbol(&symbol), "{name}");
            assert!((100_000..1_000_000).contains(&spec.start_ticks), "{name}");
            assert!(spec.price_scale <= 5 && (1..=5).contains(&spec.size_scale));
            assert!(spec.base_lots() > 1000, "{name}: {}", spec.base_lots());
        }
    }
}
