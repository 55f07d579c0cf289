//! Exact decimal numbers for prices and sizes.
//!
//! [`Decimal`] is `rust_decimal::Decimal`: a 96-bit integer mantissa with a base-10 scale, so
//! `"0.00100000"` parses to a value that remembers its 8 decimal places and prints back as
//! `"0.00100000"`. Equality and ordering ignore the scale (`1.0 == 1.00`), which is what an order
//! book keyed by price needs; the original text is still recoverable from the value itself.
//! No price or size in tickgate is ever an `f64`.

use crate::ModelError;

pub use rust_decimal::Decimal;

/// Longest decimal string accepted, in bytes. Venues send at most ~30 characters.
pub const MAX_DECIMAL_LEN: usize = 40;

/// Parses a venue decimal string exactly, keeping its scale (trailing zeros).
///
/// Accepts an optional leading `-`, digits, and at most one `.` with digits on at least one
/// side. Rejects exponents, `+`, whitespace, underscores, empty strings and values that do not
/// fit in 28 significant digits: a venue that sends those is sending something we cannot
/// represent exactly, and the caller should treat the message as corrupt.
pub fn parse_decimal(text: &str) -> Result<Decimal, ModelError> {
    let invalid = |reason| ModelError::InvalidDecimal {
        value: truncate(text),
        reason,
    };
    if text.is_empty() {
        return Err(invalid("empty"));
    }
    if text.len() > MAX_DECIMAL_LEN {
        return Err(invalid("too long"));
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    let mut seen_dot = false;
    let mut seen_digit = false;
    for b in digits.bytes() {
        match b {
            b'0'..=b'9' => seen_digit = true,
            b'.' if !seen_dot => seen_dot = true,
            _ => return Err(invalid("only digits and one '.' are allowed")),
        }
    }
    if !seen_digit {
        return Err(invalid("no digits"));
    }
    Decimal::from_str_exact(text)
        .map_err(|_| invalid("out of range (more than 28 significant digits)"))
}

fn truncate(text: &str) -> String {
    text.chars().take(MAX_DECIMAL_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_venue_strings_exactly() {
        for s in [
            "0.00100000",
            "45285.2",
            "67123.45000000",
            "0",
            "100",
            "-1.50",
            "0.1",
            ".5",
            "5.",
        ] {
            let d = parse_decimal(s).unwrap();
            let expected = match s {
                ".5" => "0.5",
                "5." => "5",
                other => other,
            };
            assert_eq!(d.to_string(), expected, "round trip of {s}");
        }
    }

    #[test]
    fn equality_ignores_scale() {
        assert_eq!(
            parse_decimal("1.0").unwrap(),
            parse_decimal("1.000").unwrap()
        );
        assert!(parse_decimal("1.01").unwrap() > parse_decimal("1.009999").unwrap());
    }

    #[test]
    fn rejects_non_decimal_text() {
        for s in [
            "", "-", ".", "1e5", "+1", " 1", "1 ", "1_000", "1.2.3", "abc", "NaN", "0x10", "1,5",
        ] {
            let err = parse_decimal(s).unwrap_err();
            assert_eq!(err.code(), "invalid_decimal", "{s:?}");
        }
        let huge = "1".repeat(35);
        assert!(parse_decimal(&huge).is_err());
        assert!(parse_decimal(&"1".repeat(41)).is_err());
    }

    #[test]
    fn serializes_as_string() {
        let d = parse_decimal("0.00100000").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"0.00100000\"");
        let back: Decimal = serde_json::from_str("\"0.00100000\"").unwrap();
        assert_eq!(back.to_string(), "0.00100000");
    }
}
