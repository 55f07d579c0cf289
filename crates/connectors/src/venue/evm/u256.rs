//! The 256-bit integers of ABI words, with only what decoding needs: comparison, subtraction,
//! two's-complement sign, and exact decimal text (scaled by a token's decimals).

use model::Decimal;
use std::cmp::Ordering;

/// An unsigned 256-bit integer, four 64-bit limbs, least significant first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct U256([u64; 4]);

impl U256 {
    pub const ZERO: Self = Self([0; 4]);

    /// From a big-endian ABI word.
    pub fn from_be_bytes(word: &[u8; 32]) -> Self {
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let start = 32 - 8 * (i + 1);
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&word[start..start + 8]);
            *limb = u64::from_be_bytes(bytes);
        }
        Self(limbs)
    }

    /// As a big-endian ABI word.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, limb) in self.0.iter().enumerate() {
            let start = 32 - 8 * (i + 1);
            out[start..start + 8].copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    pub fn from_u128(value: u128) -> Self {
        Self([value as u64, (value >> 64) as u64, 0, 0])
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 4]
    }

    /// The value if it fits in 128 bits.
    pub fn to_u128(&self) -> Option<u128> {
        (self.0[2] == 0 && self.0[3] == 0)
            .then(|| u128::from(self.0[0]) | (u128::from(self.0[1]) << 64))
    }

    /// Number of significant bits.
    pub fn bits(&self) -> u32 {
        for i in (0..4).rev() {
            if self.0[i] != 0 {
                return 64 * i as u32 + (64 - self.0[i].leading_zeros());
            }
        }
        0
    }

    /// `self - other`, or `None` if it would be negative.
    pub fn checked_sub(&self, other: &Self) -> Option<Self> {
        if self < other {
            return None;
        }
        let mut out = [0u64; 4];
        let mut borrow = false;
        for (i, limb) in out.iter_mut().enumerate() {
            let (d, b1) = self.0[i].overflowing_sub(other.0[i]);
            let (d, b2) = d.overflowing_sub(u64::from(borrow));
            *limb = d;
            borrow = b1 || b2;
        }
        Some(Self(out))
    }

    /// Two's-complement negation (used to read `int256` words).
    pub fn wrapping_neg(&self) -> Self {
        let mut out = [0u64; 4];
        let mut carry = true;
        for (i, limb) in out.iter_mut().enumerate() {
            let (v, c) = (!self.0[i]).overflowing_add(u64::from(carry));
            *limb = v;
            carry = c;
        }
        Self(out)
    }

    /// The top bit, i.e. negative when the word is read as `int256`.
    pub fn sign_bit(&self) -> bool {
        self.0[3] >> 63 == 1
    }

    /// Divides in place by a small divisor, returning the remainder.
    fn div_rem_small(&mut self, divisor: u64) -> u64 {
        let mut rem: u128 = 0;
        for i in (0..4).rev() {
            let cur = (rem << 64) | u128::from(self.0[i]);
            self.0[i] = (cur / u128::from(divisor)) as u64;
            rem = cur % u128::from(divisor);
        }
        rem as u64
    }

    /// Exact decimal digits, no sign, no leading zeros (`"0"` for zero).
    pub fn to_decimal_string(&self) -> String {
        if let Some(small) = self.to_u128() {
            return small.to_string();
        }
        // Chunks of 19 digits, least significant first.
        const CHUNK: u64 = 10_000_000_000_000_000_000;
        let mut value = *self;
        let mut chunks = Vec::with_capacity(5);
        while !value.is_zero() {
            chunks.push(value.div_rem_small(CHUNK));
        }
        let mut text = String::with_capacity(chunks.len() * 19);
        for (i, chunk) in chunks.iter().rev().enumerate() {
            if i == 0 {
                text.push_str(&chunk.to_string());
            } else {
                text.push_str(&format!("{chunk:019}"));
            }
        }
        text
    }
}

impl PartialOrd for U256 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for U256 {
    fn cmp(&self, other: &Self) -> Ordering {
        for i in (0..4).rev() {
            match self.0[i].cmp(&other.0[i]) {
                Ordering::Equal => {}
                other => return other,
            }
        }
        Ordering::Equal
    }
}

/// A signed ABI value (`int256` and narrower, sign-extended): magnitude and sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct I256 {
    pub negative: bool,
    pub magnitude: U256,
}

impl I256 {
    /// Reads a two's-complement word.
    pub fn from_word(word: &U256) -> Self {
        if word.sign_bit() {
            Self {
                negative: true,
                magnitude: word.wrapping_neg(),
            }
        } else {
            Self {
                negative: false,
                magnitude: *word,
            }
        }
    }

    pub fn to_decimal_string(&self) -> String {
        let digits = self.magnitude.to_decimal_string();
        if self.negative && !self.magnitude.is_zero() {
            format!("-{digits}")
        } else {
            digits
        }
    }
}

/// `digits` (an optional `-` and decimal digits) divided by `10^decimals`, exactly, without
/// trailing fraction zeros: `("1500000", 6)` is `"1.5"`, `("-5", 3)` is `"-0.005"`.
pub fn scale_decimal(digits: &str, decimals: u8) -> String {
    let (sign, digits) = match digits.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", digits),
    };
    let decimals = usize::from(decimals);
    if decimals == 0 {
        return format!("{sign}{digits}");
    }
    let padded = if digits.len() <= decimals {
        format!("{}{digits}", "0".repeat(decimals + 1 - digits.len()))
    } else {
        digits.to_string()
    };
    let (int, frac) = padded.split_at(padded.len() - decimals);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// `value / 10^decimals` as an exact [`Decimal`], when it fits (96-bit mantissa, scale ≤ 28).
pub fn to_decimal(value: &U256, decimals: u8) -> Option<Decimal> {
    let raw = value.to_u128()?;
    if raw >= 1u128 << 96 || decimals > 28 {
        return None;
    }
    let raw = i128::try_from(raw).ok()?;
    Decimal::try_from_i128_with_scale(raw, u32::from(decimals))
        .ok()
        .map(|d| d.normalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(hex: &str) -> U256 {
        let mut bytes = [0u8; 32];
        model::onchain::decode_hex_into(&format!("{hex:0>64}"), &mut bytes).unwrap();
        U256::from_be_bytes(&bytes)
    }

    #[test]
    fn decimal_text_is_exact_for_every_size() {
        let cases = [
            ("0", "0"),
            ("de0b6b3a7640000", "1000000000000000000"),
            (
                "ffffffffffffffffffffffffffffffff",
                "340282366920938463463374607431768211455",
            ),
            (
                "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                "115792089237316195423570985008687907853269984665640564039457584007913129639935",
            ),
            (
                "100000000000000000000000000000000",
                "340282366920938463463374607431768211456",
            ),
        ];
        for (hex, text) in cases {
            assert_eq!(word(hex).to_decimal_string(), text, "{hex}");
        }
    }

    #[test]
    fn signed_words_read_as_twos_complement() {
        let minus_one = word(&"f".repeat(64));
        assert_eq!(I256::from_word(&minus_one).to_decimal_string(), "-1");
        let minus_1500 = U256::from_u128(1500).wrapping_neg();
        assert_eq!(I256::from_word(&minus_1500).to_decimal_string(), "-1500");
        assert_eq!(I256::from_word(&word("2a")).to_decimal_string(), "42");
    }

    #[test]
    fn arithmetic_and_scaling() {
        let a = U256::from_u128(u128::MAX);
        let b = a.checked_sub(&U256::from_u128(5)).unwrap();
        assert_eq!(b.to_u128(), Some(u128::MAX - 5));
        assert_eq!(U256::from_u128(1).checked_sub(&U256::from_u128(2)), None);
        assert_eq!(word("100000000000000000000000000000000").bits(), 129);
        let cases = [
            ("1500000", 6, "1.5"),
            ("1", 18, "0.000000000000000001"),
            ("-5", 3, "-0.005"),
            ("1000000", 6, "1"),
            ("42", 0, "42"),
        ];
        for (digits, decimals, text) in cases {
            assert_eq!(scale_decimal(digits, decimals), text, "{digits}/{decimals}");
        }
        assert_eq!(
            to_decimal(&U256::from_u128(1_500_000), 6)
                .unwrap()
                .to_string(),
            "1.5"
        );
        assert_eq!(to_decimal(&U256::from_u128(1u128 << 100), 18), None);
    }
}
