//! OHLCV candles.

use crate::{Decimal, ModelError, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Candle interval. The set is closed: these are the intervals the gateway aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Interval {
    #[serde(rename = "1s")]
    S1,
    #[serde(rename = "1m")]
    M1,
    #[serde(rename = "5m")]
    M5,
    #[serde(rename = "15m")]
    M15,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "1d")]
    D1,
}

impl Interval {
    pub const ALL: [Interval; 6] = [Self::S1, Self::M1, Self::M5, Self::M15, Self::H1, Self::D1];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::S1 => "1s",
            Self::M1 => "1m",
            Self::M5 => "5m",
            Self::M15 => "15m",
            Self::H1 => "1h",
            Self::D1 => "1d",
        }
    }

    pub fn micros(self) -> i64 {
        let seconds = match self {
            Self::S1 => 1,
            Self::M1 => 60,
            Self::M5 => 300,
            Self::M15 => 900,
            Self::H1 => 3600,
            Self::D1 => 86_400,
        };
        seconds * Timestamp::MICROS_PER_SECOND
    }

    /// Start of the interval bucket containing `ts` (UTC-aligned).
    pub fn bucket_start(self, ts: Timestamp) -> Timestamp {
        let len = self.micros();
        Timestamp(ts.0.div_euclid(len) * len)
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Interval {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|i| i.as_str() == s)
            .ok_or_else(|| ModelError::UnknownInterval(s.chars().take(16).collect()))
    }
}

/// One OHLCV candle. `start` is the bucket start; `closed` is false while the bucket is still
/// open; `complete` is false when the gateway did not observe the whole interval (it started
/// mid-interval or lost the feed), so the figures may be partial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candle {
    pub interval: Interval,
    pub start: Timestamp,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub volume: Decimal,
    pub trades: u64,
    pub closed: bool,
    pub complete: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_align_to_utc() {
        let ts = Timestamp(1_700_000_123_456_789);
        assert_eq!(
            Interval::M1.bucket_start(ts),
            Timestamp(1_700_000_100_000_000)
        );
        assert_eq!(
            Interval::S1.bucket_start(ts),
            Timestamp(1_700_000_123_000_000)
        );
        assert_eq!(Interval::D1.bucket_start(ts).0 % Interval::D1.micros(), 0);
        assert_eq!(
            Interval::M1.bucket_start(Timestamp(-1)),
            Timestamp(-60_000_000)
        );
    }

    #[test]
    fn parses_every_interval_and_rejects_others() {
        for i in Interval::ALL {
            assert_eq!(i.as_str().parse::<Interval>().unwrap(), i);
        }
        for bad in ["", "2m", "1M", "1w", "60s"] {
            assert_eq!(
                bad.parse::<Interval>().unwrap_err().code(),
                "unknown_interval"
            );
        }
    }
}
