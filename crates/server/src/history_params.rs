//! Query parameters of the history endpoints: times (RFC 3339 or epoch milliseconds), limits,
//! order, and the opaque pagination cursor. Every failure is an [`ApiError`] with its own code.

use crate::rest::ApiError;
use model::{Symbol, Timestamp, Venue};
use protocol::ErrorCode;
use store::{HistoryKind, Order};

/// Rows per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 500;
/// Largest `limit` accepted (a day of 1-minute candles, 1,440, fits in one page).
pub const MAX_LIMIT: usize = 5000;
/// Longest cursor accepted, characters.
const MAX_CURSOR_LEN: usize = 512;

/// A history request after validation: the instrument, the resolved range and position.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub kind: HistoryKind,
    pub venue: Venue,
    pub symbol: Symbol,
    pub from: Timestamp,
    pub to: Timestamp,
    pub order: Order,
    pub limit: usize,
    /// Position after which rows are returned: `(ts, seq)` for trades, `(start, 0)` for candles.
    pub after: Option<(i64, i64)>,
}

/// The raw parameters shared by both endpoints.
#[derive(Debug, Default)]
pub(crate) struct Raw<'a> {
    pub venue: &'a str,
    pub symbol: &'a str,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub limit: Option<&'a str>,
    pub cursor: Option<&'a str>,
    pub order: Option<&'a str>,
}

/// Validates `raw` for `kind`. Without `to`, the range ends at `now` (frozen in the cursor, so
/// paging through "everything until now" terminates while inserts continue).
pub(crate) fn resolve(
    raw: &Raw<'_>,
    kind: HistoryKind,
    now: Timestamp,
) -> Result<Resolved, ApiError> {
    let bad = |code, message: String| ApiError::new(code, message);
    let venue = Venue::new(raw.venue).map_err(|e| bad(ErrorCode::BadParam, e.to_string()))?;
    let symbol = Symbol::new(raw.symbol).map_err(|e| bad(ErrorCode::BadParam, e.to_string()))?;
    let limit = match raw.limit {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(bad(
                    ErrorCode::LimitOutOfRange,
                    format!("limit must be an integer from 1 to {MAX_LIMIT}"),
                ));
            }
        },
    };
    let order = raw
        .order
        .map(str::parse::<Order>)
        .transpose()
        .map_err(|e| bad(ErrorCode::BadParam, e))?;
    let from = raw.from.map(|t| parse_time("from", t)).transpose()?;
    let to = raw.to.map(|t| parse_time("to", t)).transpose()?;
    let mut resolved = Resolved {
        kind,
        venue,
        symbol,
        from: from.unwrap_or(Timestamp(0)),
        to: to.unwrap_or(now),
        order: order.unwrap_or_default(),
        limit,
        after: None,
    };
    if let Some(text) = raw.cursor {
        let cursor = Cursor::decode(text)?;
        let differs = cursor.kind != kind
            || cursor.venue != resolved.venue
            || cursor.symbol != resolved.symbol
            || from.is_some_and(|f| f != cursor.from)
            || to.is_some_and(|t| t != cursor.to)
            || order.is_some_and(|o| o != cursor.order);
        if differs {
            return Err(bad(
                ErrorCode::InvalidCursor,
                "the cursor belongs to a different query; repeat the first request's parameters or omit them".into(),
            ));
        }
        resolved.from = cursor.from;
        resolved.to = cursor.to;
        resolved.order = cursor.order;
        resolved.after = Some(cursor.after);
    }
    if resolved.from >= resolved.to {
        return Err(bad(
            ErrorCode::InvalidRange,
            format!(
                "from ({}) must be before to ({}); the range is [from, to)",
                resolved.from.0, resolved.to.0
            ),
        ));
    }
    Ok(resolved)
}

impl Resolved {
    /// The cursor for the page after the one ending at `after`.
    pub(crate) fn next_cursor(&self, after: (i64, i64)) -> String {
        Cursor {
            kind: self.kind,
            venue: self.venue.clone(),
            symbol: self.symbol.clone(),
            from: self.from,
            to: self.to,
            order: self.order,
            after,
        }
        .encode()
    }
}

/// Parses a time parameter: epoch milliseconds (digits only) or RFC 3339
/// (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00.250+02:00`). Sub-microsecond digits are
/// truncated.
pub fn parse_time(name: &str, text: &str) -> Result<Timestamp, ApiError> {
    let invalid = || {
        ApiError::new(
            ErrorCode::InvalidTime,
            format!(
                "{name} {:?} is neither RFC 3339 (e.g. 2024-05-01T12:00:00Z) nor epoch milliseconds",
                text.chars().take(40).collect::<String>()
            ),
        )
    };
    if !text.is_empty() && text.len() <= 15 && text.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i64 = text.parse().map_err(|_| invalid())?;
        return Ok(Timestamp::from_millis(ms));
    }
    rfc3339_micros(text).map(Timestamp).ok_or_else(invalid)
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

/// The pagination position plus the query it belongs to. Encoded as base64url text; clients
/// treat it as opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    kind: HistoryKind,
    venue: Venue,
    symbol: Symbol,
    from: Timestamp,
    to: Timestamp,
    order: Order,
    after: (i64, i64),
}

const CURSOR_VERSION: &str = "1";

impl Cursor {
    fn encode(&self) -> String {
        let text = format!(
            "{CURSOR_VERSION}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.kind,
            self.venue,
            self.symbol,
            self.from.0,
            self.to.0,
            self.order.as_str(),
            self.after.0,
            self.after.1
        );
        base64url_encode(text.as_bytes())
    }

    fn decode(text: &str) -> Result<Self, ApiError> {
        let invalid = || {
            ApiError::new(
                ErrorCode::InvalidCursor,
                "malformed cursor; pass next_cursor from the previous page unchanged",
            )
        };
        if text.len() > MAX_CURSOR_LEN {
            return Err(invalid());
        }
        let bytes = base64url_decode(text).ok_or_else(invalid)?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let parts: Vec<&str> = text.split('|').collect();
        let [CURSOR_VERSION, kind, venue, symbol, from, to, order, a, b] = parts[..] else {
            return Err(invalid());
        };
        let int = |s: &str| s.parse::<i64>().map_err(|_| invalid());
        Ok(Self {
            kind: kind.parse().map_err(|_| invalid())?,
            venue: Venue::new(venue).map_err(|_| invalid())?,
            symbol: Symbol::new(symbol).map_err(|_| invalid())?,
            from: Timestamp(int(from)?),
            to: Timestamp(int(to)?),
            order: order.parse().map_err(|_| invalid())?,
            after: (int(a)?, int(b)?),
        })
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let v = B64.iter().position(|x| x == c)? as u32;
            n |= v << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339_or_epoch_millis() {
        let ok = [
            ("0", 0),
            ("1700000000123", 1_700_000_000_123_000),
            ("1970-01-01T00:00:00Z", 0),
            ("2023-11-14T22:13:20Z", 1_700_000_000_000_000),
            ("2023-11-14t22:13:20.5z", 1_700_000_000_500_000),
            ("2023-11-14T22:13:20.123456789Z", 1_700_000_000_123_456),
            ("2023-11-15T00:13:20+02:00", 1_700_000_000_000_000),
            ("2023-11-14T20:43:20-01:30", 1_700_000_000_000_000),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000_000),
            ("1969-12-31T23:59:59Z", -1_000_000),
        ];
        for (text, micros) in ok {
            assert_eq!(
                parse_time("from", text).unwrap(),
                Timestamp(micros),
                "{text}"
            );
        }
        let bad = [
            "",
            "-5",
            "1e9",
            "1234567890123456",
            "yesterday",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-11-14 22:13:20Z",
            "2023-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:60:00Z",
            "2023-11-14T22:13:60Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+0200",
            "2023-11-14T22:13:20+24:00",
            "2023-11-14T22:13:20.1234567890Z",
            "२०२३-11-14T22:13:20Z",
        ];
        for text in bad {
            let error = parse_time("to", text).unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidTime, "{text:?}");
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_tampering() {
        for len in 0..8 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 200) as u8).collect();
            assert_eq!(base64url_decode(&base64url_encode(&bytes)).unwrap(), bytes);
        }
        let raw = Raw {
            venue: "sim",
            symbol: "BTC-USDT",
            from: Some("1000"),
            ..Raw::default()
        };
        let first = resolve(&raw, HistoryKind::Trades, Timestamp(5_000_000)).unwrap();
        let cursor = first.next_cursor((2_000_000, 42));
        assert!(
            cursor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let next = Raw {
            cursor: Some(&cursor),
            ..raw
        };
        let second = resolve(&next, HistoryKind::Trades, Timestamp(9_000_000)).unwrap();
        assert_eq!(second.after, Some((2_000_000, 42)));
        assert_eq!(
            second.to,
            Timestamp(5_000_000),
            "to stays frozen at the first request's now"
        );
        let cases = [
            (
                Raw {
                    cursor: Some("!!!"),
                    ..raw
                },
                HistoryKind::Trades,
            ),
            (
                Raw {
                    cursor: Some(&cursor[1..]),
                    ..raw
                },
                HistoryKind::Trades,
            ),
            (
                Raw {
                    cursor: Some("eA"),
                    ..raw
                },
                HistoryKind::Trades,
            ),
            (
                Raw {
                    cursor: Some(&cursor),
                    symbol: "ETH-USDT",
                    ..raw
                },
                HistoryKind::Trades,
            ),
            (
                Raw {
                    cursor: Some(&cursor),
                    ..raw
                },
                HistoryKind::Candles(model::Interval::M1),
            ),
            (
                Raw {
                    cursor: Some(&cursor),
                    from: Some("2000"),
                    ..raw
                },
                HistoryKind::Trades,
            ),
            (
                Raw {
                    cursor: Some(&cursor),
                    order: Some("desc"),
                    ..raw
                },
                HistoryKind::Trades,
            ),
        ];
        for (raw, kind) in cases {
            let error = resolve(&raw, kind, Timestamp(1)).unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidCursor, "{raw:?}");
        }
    }

    #[test]
    fn limits_orders_and_ranges_have_their_codes() {
        let raw = Raw {
            venue: "sim",
            symbol: "BTC-USDT",
            ..Raw::default()
        };
        let now = Timestamp(10_000_000);
        let cases = [
            (
                Raw {
                    limit: Some("0"),
                    ..raw
                },
                ErrorCode::LimitOutOfRange,
            ),
            (
                Raw {
                    limit: Some("5001"),
                    ..raw
                },
                ErrorCode::LimitOutOfRange,
            ),
            (
                Raw {
                    limit: Some("ten"),
                    ..raw
                },
                ErrorCode::LimitOutOfRange,
            ),
            (
                Raw {
                    order: Some("up"),
                    ..raw
                },
                ErrorCode::BadParam,
            ),
            (
                Raw {
                    venue: "SIM",
                    ..raw
                },
                ErrorCode::BadParam,
            ),
            (
                Raw {
                    from: Some("5000"),
                    to: Some("5000"),
                    ..raw
                },
                ErrorCode::InvalidRange,
            ),
            (
                Raw {
                    from: Some("20000"),
                    ..raw
                },
                ErrorCode::InvalidRange,
            ),
            (
                Raw {
                    to: Some("soon"),
                    ..raw
                },
                ErrorCode::InvalidTime,
            ),
        ];
        for (raw, code) in cases {
            assert_eq!(
                resolve(&raw, HistoryKind::Trades, now).unwrap_err().code(),
                code,
                "{raw:?}"
            );
        }
        let ok = resolve(
            &Raw {
                limit: Some("5000"),
                order: Some("desc"),
                ..raw
            },
            HistoryKind::Trades,
            now,
        )
        .unwrap();
        assert_eq!(
            (ok.limit, ok.order, ok.from, ok.to),
            (5000, Order::Desc, Timestamp(0), now)
        );
    }
}
