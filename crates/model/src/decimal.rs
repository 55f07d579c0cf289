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
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut seen_dot = false;
    let mut seen_digit = false;
    // Fast path: up to 19 digits accumulate exactly in a u64 (every venue price and size).
    let mut mantissa: u64 = 0;
    let mut scale: u32 = 0;
    let mut significant = 0u32;
    for b in digits.bytes() {
        match b {
            b'0'..=b'9' => {
                seen_digit = true;
                if significant > 0 || b != b'0' {
                    significant += 1;
                }
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
                if seen_dot {
                    scale += 1;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return Err(invalid("only digits and one '.' are allowed")),
        }
    }
    if !seen_digit {
        return Err(invalid("no digits"));
    }
    if significant <= 19 && scale <= 28 {
        let value = i128::from(mantissa);
        let value = if negative { -value } else { value };
        if let Ok(d) = Decimal::try_from_i128_with_scale(value, scale) {
            return Ok(d);
        }
    }
    Decimal::from_str_exact(text)
        .map_err(|_| invalid("out of range (more than 28 significant digits)"))
}

/// Appends `value` as ASCII exactly as its `Display` prints it (sign, digits, scale kept), without
/// going through `fmt`: about 5× cheaper, which matters for checksums computed on every delta.
pub fn write_decimal(out: &mut Vec<u8>, value: &Decimal) {
    let mut digits = [0u8; 40];
    let mantissa = value.mantissa().unsigned_abs();
    let mut len = 0;
    // Venue prices and sizes fit in 64 bits, where division by 10 is a multiply; 128-bit
    // division is a slow library call.
    match u64::try_from(mantissa) {
        Ok(mut n) => loop {
            digits[len] = b'0' + (n % 10) as u8;
            n /= 10;
            len += 1;
            if n == 0 {
                break;
            }
        },
        Err(_) => {
            let mut n = mantissa;
            loop {
                digits[len] = b'0' + (n % 10) as u8;
                n /= 10;
                len += 1;
                if n == 0 {
                    break;
                }
            }
        }
    }
    let scale = value.scale() as usize;
    // Display pads with leading zeros so that at least one digit precedes the point.
    while len <= scale {
        digits[len] = b'0';
        len += 1;
    }
    if value.is_sign_negative() && !value.is_zero() {
        out.push(b'-');
    }
    for i in (0..len).rev() {
        out.push(digits[i]);
        if i == scale && scale > 0 {
            out.push(b'.');
        }
    }
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

    /// The fast path and rust_decimal's own parser agree, scale included.
    #[test]
    fn fast_path_matches_the_reference_parser() {
        for s in [
            "0",
            "0.0",
            "00.10",
            "-0.5",
            "123456789.123456789",
            "9999999999999999999",
            "0.0000000000000000000000000001",
            "1234567890123456789.1",
            "79228162514264337593543950335",
            "45285.2",
            "0.00100000",
            "-12.340",
        ] {
            let fast = parse_decimal(s).unwrap();
            let reference = Decimal::from_str_exact(s).unwrap();
            assert_eq!(
                (fast, fast.scale(), fast.to_string()),
                (reference, reference.scale(), reference.to_string()),
                "{s}"
            );
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
    fn write_decimal_matches_display() {
        let cases = [
            "0",
            "0.00000",
            "0.00100000",
            "1",
            "10",
            "100.50",
            "45285.2",
            "-1.50",
            "-0.001",
            "0.1",
            "79228162514264337593543950335",
            "7.9228162514264337593543950335",
            "-79228162514264337593543950335",
        ];
        for text in cases {
            let d = parse_decimal(text).unwrap();
            let mut out = Vec::new();
            write_decimal(&mut out, &d);
            assert_eq!(String::from_utf8(out).unwrap(), d.to_string(), "{text}");
        }
        // Arithmetic results too (negative zero, large scales).
        for (a, b) in [("1.10", "1.10"), ("0.3", "-0.1"), ("1", "3")] {
            let d = parse_decimal(a).unwrap() - parse_decimal(b).unwrap();
            let mut out = Vec::new();
            write_decimal(&mut out, &d);
            assert_eq!(String::from_utf8(out).unwrap(), d.to_string());
        }
    }

    proptest::proptest! {
        #[test]
        fn write_decimal_matches_display_for_any_value(mantissa in proptest::num::i64::ANY, scale in 0u32..=28) {
            let d = Decimal::new(mantissa, scale);
            let mut out = Vec::new();
            write_decimal(&mut out, &d);
            proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), d.to_string());
        }
    }

    #[test]
    fn serializes_as_string() {
        let d = parse_decimal("0.00100000").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"0.00100000\"");
        let back: Decimal = serde_json::from_str("\"0.00100000\"").unwrap();
        assert_eq!(back.to_string(), "0.00100000");
    }
}
