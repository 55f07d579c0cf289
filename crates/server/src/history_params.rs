//! Query parameters of the history endpoints: times (RFC 3339 or epoch milliseconds), limits,
//! order, and the opaque pagination cursor. Every failure is an [`ApiError`] with its own code.

use crate::api_error::ApiError;
use crate::time_param::parse_time;
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
