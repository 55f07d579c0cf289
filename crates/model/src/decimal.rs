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
    if let Some((value, read)) = parse_plain_decimal(text.as_bytes())
        && read == text.len()
    {
        return Ok(value);
    }
    parse_general(text, invalid)
}

/// [`parse_decimal`] for any text (the plain reader refused it, or tests compare the two).
fn parse_general(
    text: &str,
    invalid: impl Fn(&'static str) -> ModelError,
) -> Result<Decimal, ModelError> {
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

/// The decimal at the start of `bytes` in the plain form venues send (`-`? digits, then `.`
/// and digits, 19 digits at most, a digit on at least one side of the point), and how many
/// bytes it took; `None` when the text there is not of that form. Whatever follows is left to
/// the caller (e.g. a JSON reader checks for the closing quote).
///
/// When it reads a whole string, the value is exactly [`parse_decimal`]'s (scale kept, `-0`
/// read as `0`); anything else should go to `parse_decimal`, which accepts the rarer forms
/// (more digits, leading zeros beyond 19 digits) and names what is wrong. One pass, no
/// allocation: this is the inner loop of every book level a venue sends.
#[inline]
pub fn parse_plain_decimal(bytes: &[u8]) -> Option<(Decimal, usize)> {
    let negative = bytes.first() == Some(&b'-');
    let mut at = usize::from(negative);
    let mut mantissa = 0;
    let whole = digit_run(bytes, &mut at, &mut mantissa);
    let mut fraction = 0;
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        fraction = digit_run(bytes, &mut at, &mut mantissa);
    }
    let digits = whole + fraction;
    if digits == 0 || digits > PLAIN_DIGITS {
        return None;
    }
    let scale = fraction as u32;
    let lo = mantissa as u32;
    let mid = (mantissa >> 32) as u32;
    let value = Decimal::from_parts(lo, mid, 0, negative && mantissa != 0, scale);
    Some((value, at))
}

/// Most digits [`parse_plain_decimal`] reads (10^19 - 1 fits in a `u64`).
const PLAIN_DIGITS: usize = 19;

/// The run of ASCII digits at `bytes[*at..]` appended to `value`, and its length, moving `at`
/// past it. Wraps beyond [`PLAIN_DIGITS`] digits in all; the caller checks the count.
#[inline]
fn digit_run(bytes: &[u8], at: &mut usize, value: &mut u64) -> usize {
    let start = *at;
    while let Some(&b) = bytes.get(*at) {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        *value = value.wrapping_mul(10).wrapping_add(u64::from(digit));
        *at += 1;
    }
    *at - start
}

/// Appends `value` as ASCII exactly as its `Display` prints it (sign, digits, scale kept), without
/// going through `fmt`: about 5× cheaper, which matters for checksums computed on every delta.
///
/// The text is written straight into `out`: its length is known from the mantissa and the
/// scale, so the digits go to their final place. (Formatting on the stack and appending the
/// result was a `memcpy` call per number, and its wide loads of bytes just stored one or two
/// at a time stalled on store forwarding: most of a book frame's encoding time.)
pub fn write_decimal(out: &mut Vec<u8>, value: &Decimal) {
    let start = out.len();
    let len = text_len(value);
    // A fixed-size append is a few stores, not a library call; the tail is cut off below.
    out.extend_from_slice(&[0; DECIMAL_TEXT]);
    if let Some(slot) = out[start..].first_chunk_mut::<DECIMAL_TEXT>() {
        let begin = format_into(slot, len, value);
        debug_assert_eq!(begin, 0, "text_len and format_into disagree");
    }
    out.truncate(start + len);
}

/// The length of `value`'s `Display` text: sign, the integer digits (at least one), and the
/// point and `scale` digits when the scale is not 0.
fn text_len(value: &Decimal) -> usize {
    let scale = value.scale() as usize;
    let mantissa = value.mantissa().unsigned_abs();
    let digits = match u64::try_from(mantissa) {
        Ok(m) => m.checked_ilog10().map_or(1, |d| d as usize + 1),
        Err(_) => mantissa.checked_ilog10().map_or(1, |d| d as usize + 1),
    };
    let int_digits = digits.saturating_sub(scale).max(1);
    usize::from(value.is_sign_negative()) + int_digits + if scale > 0 { 1 + scale } else { 0 }
}

/// Room for any [`Decimal`] as text: sign, 29 digits, a point and a leading `0` at most.
const DECIMAL_TEXT: usize = 40;

/// A stack buffer that formats a [`Decimal`] as its `Display` text without `fmt`, for the hot
/// paths that print prices (checksums on every delta, every level of every frame).
#[derive(Debug)]
pub struct DecimalBuf {
    buf: [u8; DECIMAL_TEXT],
}

impl Default for DecimalBuf {
    fn default() -> Self {
        Self::new()
    }
}

/// `"00" "01" … "99"`: two digits per division.
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

impl DecimalBuf {
    pub const fn new() -> Self {
        Self {
            buf: [0; DECIMAL_TEXT],
        }
    }

    /// `value` as `Display` prints it, in this buffer.
    pub fn format(&mut self, value: &Decimal) -> &str {
        // Only ASCII digits, `.` and `-` are written.
        std::str::from_utf8(self.format_ascii(value)).unwrap_or_default()
    }

    /// [`DecimalBuf::format`]'s text as bytes (no UTF-8 check: checksums hash bytes).
    pub fn format_ascii(&mut self, value: &Decimal) -> &[u8] {
        let at = format_into(&mut self.buf, DECIMAL_TEXT, value);
        &self.buf[at..]
    }
}

/// Writes `value` as `Display` prints it into `buf`, ending just before `end`; returns where
/// the text starts.
fn format_into(buf: &mut [u8; DECIMAL_TEXT], end: usize, value: &Decimal) -> usize {
    let scale = value.scale() as usize;
    let mantissa = value.mantissa().unsigned_abs();
    let mut at = end;
    // Venue prices and sizes fit in 64 bits, where division is a multiply; 128-bit
    // division is a slow library call. Display pads with leading zeros so that at least
    // one digit precedes the point.
    match u64::try_from(mantissa) {
        Ok(m) if scale <= 19 => {
            // 10^19 still fits a u64.
            let unit = 10u64.pow(scale as u32);
            let (int, frac) = (m / unit, m % unit);
            if scale > 0 {
                at = digits(buf, at, frac, scale);
                at -= 1;
                buf[at] = b'.';
            }
            at = digits(buf, at, int, 1);
        }
        _ => {
            let mut n = mantissa;
            let mut written = 0;
            while n > 0 || written <= scale {
                if written == scale && scale > 0 {
                    at -= 1;
                    buf[at] = b'.';
                }
                at -= 1;
                buf[at] = b'0' + (n % 10) as u8;
                n /= 10;
                written += 1;
            }
        }
    }
    // `Display` keeps the sign of a negative zero (`-0.00`).
    if value.is_sign_negative() {
        at -= 1;
        buf[at] = b'-';
    }
    at
}

/// Writes `n` in decimal into `buf` ending just before `end`, zero-padded to at least `min`
/// digits; returns where the digits start.
fn digits(buf: &mut [u8; DECIMAL_TEXT], end: usize, mut n: u64, min: usize) -> usize {
    let mut at = end;
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else if n > 0 || at == end {
        at -= 1;
        buf[at] = b'0' + n as u8;
    }
    while end - at < min {
        at -= 1;
        buf[at] = b'0';
    }
    at
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

        /// Mantissas of 64 bits (the integer path) and up to 96 (the wide path), any sign.
        #[test]
        fn decimal_buf_matches_display_for_wide_values(
            low in proptest::num::u64::ANY,
            high in 0u64..(1 << 32),
            wide in proptest::bool::ANY,
            negative in proptest::bool::ANY,
            scale in 0u32..=28,
        ) {
            let magnitude = if wide { (i128::from(high) << 64) | i128::from(low) } else { i128::from(low) };
            let mantissa = if negative { -magnitude } else { magnitude };
            let d = Decimal::from_i128_with_scale(mantissa, scale);
            let mut buf = DecimalBuf::new();
            proptest::prop_assert_eq!(buf.format(&d), d.to_string());
            // Written in place after other text: exactly the text appended, nothing else.
            let mut out = b"x:".to_vec();
            write_decimal(&mut out, &d);
            proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), format!("x:{d}"));
        }
    }

    #[test]
    fn decimal_buf_edges() {
        for (mantissa, scale) in [
            (0i128, 0u32),
            (0, 19),
            (0, 28),
            (9, 19),
            (10_000_000_000_000_000_000, 19),
            (u64::MAX as i128, 19),
            (u64::MAX as i128, 20),
            (u64::MAX as i128, 0),
            (1, 28),
            (-1, 28),
            (99, 1),
            (100, 2),
            (5, 1),
            (-0, 2),
        ] {
            let mut d = Decimal::from_i128_with_scale(mantissa, scale);
            if mantissa == 0 && scale == 2 {
                d.set_sign_negative(true); // negative zero
            }
            let mut buf = DecimalBuf::new();
            assert_eq!(buf.format(&d), d.to_string(), "{mantissa}e-{scale}");
            let mut out = b"x:".to_vec();
            write_decimal(&mut out, &d);
            assert_eq!(out, format!("x:{d}").into_bytes(), "{mantissa}e-{scale}");
        }
    }

    #[test]
    fn serializes_as_string() {
        let d = parse_decimal("0.00100000").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"0.00100000\"");
        let back: Decimal = serde_json::from_str("\"0.00100000\"").unwrap();
        assert_eq!(back.to_string(), "0.00100000");
    }

    fn general(text: &str) -> Result<Decimal, ModelError> {
        parse_general(text, |reason| ModelError::InvalidDecimal {
            value: text.into(),
            reason,
        })
    }

    /// The plain reader, wherever it accepts a prefix, reads the value the general parser
    /// reads from that prefix, bit for bit (scale and sign included); random texts over the
    /// characters that matter, at lengths on both sides of the 19-digit limit.
    #[test]
    fn plain_reader_agrees_with_the_general_parser() {
        const ALPHABET: &[u8] = b"0000123456789999..--e+ \"/:";
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut whole = 0;
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "-0.00",
            "1.",
            ".5",
            "-.5",
            ".",
            "-",
            "",
            "-.",
            "00.5",
            "0.00100000",
            "65000.01",
            "1234567890123456789",
            "12345678901234567890",
            "0.0000000000000000001",
            "9999999999999999999",
            "-9999999999.999999999",
            "1.5e3",
            "12345678.12345678\"",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for _ in 0..300_000 {
            let len = (next() % 26) as usize;
            let digits_only = next().is_multiple_of(3);
            cases.push(
                (0..len)
                    .map(|_| {
                        let pick = next() as usize;
                        if digits_only && !pick.is_multiple_of(7) {
                            char::from(b'0' + (pick % 10) as u8)
                        } else {
                            char::from(ALPHABET[pick % ALPHABET.len()])
                        }
                    })
                    .collect(),
            );
        }
        for text in &cases {
            let Some((value, read)) = parse_plain_decimal(text.as_bytes()) else {
                continue;
            };
            let reference = general(&text[..read]).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(value.serialize(), reference.serialize(), "{text:?}");
            assert_eq!(value.to_string(), reference.to_string(), "{text:?}");
            if read == text.len() {
                whole += 1;
            }
            // It stops at the first byte that cannot continue a plain decimal.
            if let Some(&after) = text.as_bytes().get(read) {
                assert!(!after.is_ascii_digit() || read >= PLAIN_DIGITS, "{text:?}");
            }
        }
        assert!(whole > 50_000, "the plain form is well covered ({whole})");
        // And parse_decimal (plain reader first) still gives the general answers (the empty
        // text is refused before either runs).
        for text in cases.iter().filter(|t| !t.is_empty()) {
            match (parse_decimal(text), general(text)) {
                (Ok(a), Ok(b)) => assert_eq!(a.serialize(), b.serialize(), "{text:?}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{text:?}"),
                (a, b) => panic!("{text:?}: {a:?} vs {b:?}"),
            }
        }
    }
}
