//! Timestamps: microseconds since the Unix epoch, UTC.

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time as microseconds since the Unix epoch (UTC). Serialized as a JSON integer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const MICROS_PER_SECOND: i64 = 1_000_000;

    /// The current wall-clock time.
    pub fn now() -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self(i64::try_from(since.as_micros()).unwrap_or(i64::MAX))
    }

    pub fn from_millis(ms: i64) -> Self {
        Self(ms.saturating_mul(1000))
    }

    pub fn as_micros(self) -> i64 {
        self.0
    }

    /// Microseconds elapsed from `earlier` to `self` (negative if `earlier` is later).
    pub fn micros_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Parses RFC 3339 `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` strictly: real calendar
    /// dates, at most 9 fraction digits (beyond microseconds they are truncated), `T`/`Z` in
    /// either case. The one parser for venue timestamps and the REST API's time parameters.
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        rfc3339_micros(text).map(Timestamp)
    }

    /// RFC 3339 in UTC with microseconds, e.g. `2023-10-06T17:35:55.440295Z`.
    pub fn format_rfc3339(self) -> String {
        let secs = self.0.div_euclid(Self::MICROS_PER_SECOND);
        let micros = self.0.rem_euclid(Self::MICROS_PER_SECOND);
        let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            rest / 3600,
            rest % 3600 / 60,
            rest % 60
        )
    }
}

/// (year, month, day) of a day count since 1970-01-01 (the inverse of `days_from_civil`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// RFC 3339 date-time to µs since the epoch; `None` if malformed or out of range.
fn rfc3339_micros(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b.len() > 40 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        part.iter().all(u8::is_ascii_digit).then_some(())?;
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut micros = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &text[start..i];
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        let kept = &digits[..digits.len().min(6)];
        micros = kept.parse::<i64>().ok()? * 10_i64.pow(6 - kept.len() as u32);
    }
    let offset_secs = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(secs * Timestamp::MICROS_PER_SECOND + micros)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod rfc3339_tests {
    use super::*;

    #[test]
    fn parses_venue_timestamps() {
        let cases = [
            ("1970-01-01T00:00:00Z", 0),
            ("2023-02-09T20:32:50.714964855Z", 1_675_974_770_714_964),
            ("2023-10-06T17:35:55.440295Z", 1_696_613_755_440_295),
            ("2019-08-14T20:42:27.265Z", 1_565_815_347_265_000),
            ("2023-10-06T19:35:55.440295+02:00", 1_696_613_755_440_295),
        ];
        for (text, micros) in cases {
            assert_eq!(
                Timestamp::parse_rfc3339(text),
                Some(Timestamp(micros)),
                "{text}"
            );
        }
    }

    #[test]
    fn formats_what_it_parses() {
        let cases = [
            (0, "1970-01-01T00:00:00.000000Z"),
            (1_696_613_755_440_295, "2023-10-06T17:35:55.440295Z"),
            (951_782_400_000_001, "2000-02-29T00:00:00.000001Z"),
            (-1, "1969-12-31T23:59:59.999999Z"),
        ];
        for (micros, text) in cases {
            assert_eq!(Timestamp(micros).format_rfc3339(), text);
            assert_eq!(Timestamp::parse_rfc3339(text), Some(Timestamp(micros)));
        }
    }

    #[test]
    fn rejects_malformed_text() {
        for text in [
            "",
            "2023-10-06",
            "2023-13-06T17:35:55Z",
            "2023-10-06T17:35:55",
            "2023-10-06T17:35:55.Z",
            "2023-10-06T17:35:55Zjunk",
            "2023-1a-06T17:35:55Z",
            "２０２３-10-06T17:35:55Z",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(text), None, "{text:?}");
        }
    }
}
