//! `[history]` settings: what is stored, how long, and how the writer batches.

use crate::history::HistoryKind;
use model::{Interval, Symbol, Timestamp, Venue};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// `[history]` in the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Persist trades and closed candles to `<data_dir>/history.db`.
    pub enabled: bool,
    /// What to store: patterns `kind:venue:symbol`, each part exact or `*`; the kind may also
    /// be `candles.*` (every interval).
    pub include: Vec<String>,
    /// Patterns removed from what `include` selects.
    pub exclude: Vec<String>,
    /// Rows the writer queue holds; beyond it new rows are dropped and counted (never waited
    /// for). Memory is about 100 bytes per queued trade.
    pub queue_rows: usize,
    /// Most rows written in one transaction.
    pub batch_rows: usize,
    /// Longest a row waits in the queue before its batch is written, milliseconds.
    pub flush_interval_ms: u64,
    /// Seconds between retention passes.
    pub retention_interval_secs: u64,
    /// Funding and open interest: the least time between two stored rows of one instrument
    /// (venues push them up to 10 times a second). A change inside the interval is stored with
    /// the first push after it; a new funding interval (`next_funding_ts` moved) is stored at
    /// once. 1 to 86,400.
    pub perp_sample_secs: u64,
    pub retention: RetentionConfig,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            include: vec![
                "trades:*:*".into(),
                "candles.*:*:*".into(),
                "funding:*:*".into(),
                "oi:*:*".into(),
                "liquidations:*:*".into(),
            ],
            exclude: Vec::new(),
            queue_rows: 200_000,
            batch_rows: 10_000,
            flush_interval_ms: 200,
            retention_interval_secs: 60,
            perp_sample_secs: 60,
            retention: RetentionConfig::default(),
        }
    }
}

/// `[history.retention]`: how long each kind is kept, as `<n>s|m|h|d` or `forever`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    pub trades: Retention,
    pub candles_1s: Retention,
    pub candles_1m: Retention,
    pub candles_5m: Retention,
    pub candles_15m: Retention,
    pub candles_1h: Retention,
    pub candles_1d: Retention,
    /// Perpetuals' funding rates (a row when the venue's figures change, at most one per
    /// instrument per `perp_sample_secs`).
    pub funding: Retention,
    /// Perpetuals' open interest (sampled like funding).
    pub oi: Retention,
    /// Perpetuals' liquidations (every one).
    pub liquidations: Retention,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        let days = |d: i64| Retention::Micros(d * 86_400 * Timestamp::MICROS_PER_SECOND);
        Self {
            trades: days(7),
            candles_1s: days(1),
            candles_1m: days(90),
            candles_5m: days(365),
            candles_15m: days(365),
            candles_1h: Retention::Forever,
            candles_1d: Retention::Forever,
            funding: Retention::Forever,
            oi: days(90),
            liquidations: days(90),
        }
    }
}

impl RetentionConfig {
    pub fn get(&self, kind: HistoryKind) -> Retention {
        match kind {
            HistoryKind::Trades => self.trades,
            HistoryKind::Candles(Interval::S1) => self.candles_1s,
            HistoryKind::Candles(Interval::M1) => self.candles_1m,
            HistoryKind::Candles(Interval::M5) => self.candles_5m,
            HistoryKind::Candles(Interval::M15) => self.candles_15m,
            HistoryKind::Candles(Interval::H1) => self.candles_1h,
            HistoryKind::Candles(Interval::D1) => self.candles_1d,
            HistoryKind::Funding => self.funding,
            HistoryKind::OpenInterest => self.oi,
            HistoryKind::Liquidations => self.liquidations,
        }
    }
}

/// How long rows of one kind are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    Forever,
    /// Rows whose time is more than this many µs before now are deleted.
    Micros(i64),
}

impl Retention {
    /// Rows strictly before this time are expired at `now`; `None` for `Forever`.
    pub fn cutoff(self, now: Timestamp) -> Option<Timestamp> {
        match self {
            Self::Forever => None,
            Self::Micros(m) => Some(Timestamp(now.0.saturating_sub(m))),
        }
    }
}

impl fmt::Display for Retention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self::Micros(m) = *self else {
            return f.write_str("forever");
        };
        let s = m / Timestamp::MICROS_PER_SECOND;
        for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if s % len == 0 {
                return write!(f, "{}{unit}", s / len);
            }
        }
        write!(f, "{s}s")
    }
}

impl FromStr for Retention {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "forever" {
            return Ok(Self::Forever);
        }
        let bad =
            || format!("{text:?} is not a duration: expected e.g. 90s, 30m, 12h, 7d or forever");
        // The unit is the last character, whatever its width: a multi-byte one (found by
        // fuzzing the config loader, `4ě`) must be refused, not split inside.
        let unit_at = text.char_indices().last().map(|(i, _)| i).ok_or_else(bad)?;
        let (number, unit) = text.split_at(unit_at);
        let unit_secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: i64 = number.parse().map_err(|_| bad())?;
        let micros = n
            .checked_mul(unit_secs * Timestamp::MICROS_PER_SECOND)
            .filter(|m| *m > 0 && *m <= 100 * 365 * 86_400 * Timestamp::MICROS_PER_SECOND)
            .ok_or_else(|| format!("{text:?} must be between 1s and 100 years, or forever"))?;
        Ok(Self::Micros(micros))
    }
}

impl Serialize for Retention {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Retention {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One `kind:venue:symbol` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// `None` matches every kind; `Some(None)` every candle interval.
    kind: Option<KindPattern>,
    venue: Option<Venue>,
    symbol: Option<Symbol>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KindPattern {
    Exact(HistoryKind),
    AnyCandles,
}

impl FromStr for Pattern {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.split(':').collect();
        let [kind, venue, symbol] = parts[..] else {
            return Err(format!(
                "{:?} is not a pattern: expected kind:venue:symbol, e.g. trades:*:* or candles.1m:binance:BTC-USDT",
                text.chars().take(64).collect::<String>()
            ));
        };
        let kind = match kind {
            "*" => None,
            "candles.*" => Some(KindPattern::AnyCandles),
            exact => Some(KindPattern::Exact(exact.parse()?)),
        };
        let venue = match venue {
            "*" => None,
            v => Some(Venue::new(v).map_err(|e| e.to_string())?),
        };
        let symbol = match symbol {
            "*" => None,
            s => Some(Symbol::new(s).map_err(|e| e.to_string())?),
        };
        Ok(Self {
            kind,
            venue,
            symbol,
        })
    }
}

impl Pattern {
    pub fn matches(&self, kind: HistoryKind, venue: &Venue, symbol: &Symbol) -> bool {
        let kind_ok = match self.kind {
            None => true,
            Some(KindPattern::AnyCandles) => matches!(kind, HistoryKind::Candles(_)),
            Some(KindPattern::Exact(k)) => k == kind,
        };
        kind_ok
            && self.venue.as_ref().is_none_or(|v| v == venue)
            && self.symbol.as_ref().is_none_or(|s| s == symbol)
    }
}

/// The compiled `include`/`exclude` lists.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    enabled: bool,
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
    /// `perp_sample_secs` in µs.
    perp_sample_micros: i64,
}

impl HistoryFilter {
    /// The least time between two stored funding or open-interest rows of one instrument, µs.
    pub fn perp_sample_micros(&self) -> i64 {
        self.perp_sample_micros
    }

    /// Whether rows of `kind` for this instrument are stored.
    pub fn wants(&self, kind: HistoryKind, venue: &Venue, symbol: &Symbol) -> bool {
        self.enabled
            && self.include.iter().any(|p| p.matches(kind, venue, symbol))
            && !self.exclude.iter().any(|p| p.matches(kind, venue, symbol))
    }
}

impl HistoryConfig {
    /// Checks every value; the error is `(dotted key, message)`.
    pub fn validate(&self) -> Result<HistoryFilter, (String, String)> {
        let ranges: [(&str, u64, u64, u64); 5] = [
            (
                "history.queue_rows",
                self.queue_rows as u64,
                1_000,
                100_000_000,
            ),
            ("history.batch_rows", self.batch_rows as u64, 1, 1_000_000),
            (
                "history.flush_interval_ms",
                self.flush_interval_ms,
                1,
                60_000,
            ),
            (
                "history.retention_interval_secs",
                self.retention_interval_secs,
                1,
                86_400,
            ),
            ("history.perp_sample_secs", self.perp_sample_secs, 1, 86_400),
        ];
        for (key, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err((
                    key.into(),
                    format!("must be between {min} and {max}, got {value}"),
                ));
            }
        }
        let compile = |key: &str, list: &[String]| -> Result<Vec<Pattern>, (String, String)> {
            list.iter()
                .enumerate()
                .map(|(i, p)| p.parse().map_err(|e| (format!("history.{key}[{i}]"), e)))
                .collect()
        };
        Ok(HistoryFilter {
            enabled: self.enabled,
            include: compile("include", &self.include)?,
            exclude: compile("exclude", &self.exclude)?,
            perp_sample_micros: self.perp_sample_secs as i64 * Timestamp::MICROS_PER_SECOND,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_parses_and_prints() {
        let cases = [
            ("forever", Some("forever")),
            ("7d", Some("7d")),
            ("48h", Some("2d")),
            ("90s", Some("90s")),
            ("30m", Some("30m")),
            ("0d", None),
            ("7", None),
            ("d", None),
            ("-1d", None),
            ("1w", None),
            ("", None),
            ("36501d", None),
            // Regressions from fuzz/artifacts/config: a multi-byte last character.
            ("4ě", None),
            ("ě", None),
            ("1dé", None),
        ];
        for (text, printed) in cases {
            match (text.parse::<Retention>(), printed) {
                (Ok(r), Some(p)) => assert_eq!(r.to_string(), p, "{text}"),
                (Err(_), None) => {}
                (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
            }
        }
        let r: Retention = "1h".parse().unwrap();
        assert_eq!(
            r.cutoff(Timestamp(10_000_000_000)),
            Some(Timestamp(10_000_000_000 - 3_600_000_000))
        );
        assert_eq!(Retention::Forever.cutoff(Timestamp(1)), None);
    }

    #[test]
    fn patterns_select_kinds_venues_symbols() {
        let v = |s| Venue::new(s).unwrap();
        let s = |s| Symbol::new(s).unwrap();
        let config = HistoryConfig {
            include: vec![
                "trades:*:*".into(),
                "candles.*:binance:*".into(),
                "candles.1m:*:ETH-USD".into(),
            ],
            exclude: vec!["*:*:DOGE-USD".into()],
            ..HistoryConfig::default()
        };
        let filter = config.validate().unwrap();
        let m1 = HistoryKind::Candles(Interval::M1);
        let h1 = HistoryKind::Candles(Interval::H1);
        let cases = [
            (HistoryKind::Trades, "kraken", "BTC-USD", true),
            (HistoryKind::Trades, "kraken", "DOGE-USD", false),
            (h1, "binance", "BTC-USDT", true),
            (h1, "kraken", "BTC-USD", false),
            (m1, "kraken", "ETH-USD", true),
            (m1, "kraken", "BTC-USD", false),
        ];
        for (kind, venue, symbol, want) in cases {
            assert_eq!(
                filter.wants(kind, &v(venue), &s(symbol)),
                want,
                "{kind} {venue} {symbol}"
            );
        }
        let off = HistoryConfig {
            enabled: false,
            ..HistoryConfig::default()
        }
        .validate()
        .unwrap();
        assert!(!off.wants(HistoryKind::Trades, &v("sim"), &s("BTC-USDT")));
        for (bad, key) in [
            ("trades:*", "history.include[0]"),
            ("orders:*:*", "history.include[0]"),
            ("trades:SIM:*", "history.include[0]"),
            ("trades:*:btc", "history.include[0]"),
        ] {
            let config = HistoryConfig {
                include: vec![bad.into()],
                ..HistoryConfig::default()
            };
            assert_eq!(config.validate().unwrap_err().0, key, "{bad}");
        }
    }
}
