//! Types for secret material: zeroized on drop, `Debug` prints `REDACTED`, never `Display`.

use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// A secret text (a bearer token or an HMAC secret as issued). `==` compares in constant time
/// (no derived, short-circuiting `PartialEq`).
#[derive(Clone)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    /// The secret itself. Call sites are the few places that must see it: hashing, sealing,
    /// showing it once to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &str) -> bool {
        self.0.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

/// Constant-time: the comparison takes as long whichever byte differs (the length is not secret).
impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other.expose())
    }
}

impl Eq for SecretString {}

/// From a command-line flag or environment variable (clap parses with `FromStr`).
impl std::str::FromStr for SecretString {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(text.to_string()))
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(REDACTED)")
    }
}

impl serde::Serialize for SecretString {
    /// Serializes the secret: used only for the one response that shows it to its owner.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.expose())
    }
}

/// 32 secret bytes (a master key or a data key).
#[derive(Clone)]
pub struct SecretKey32(Box<[u8; 32]>);

impl SecretKey32 {
    pub fn from_bytes(mut bytes: [u8; 32]) -> Self {
        let key = Self(Box::new(bytes));
        bytes.zeroize();
        key
    }

    pub fn random() -> Result<Self, getrandom::Error> {
        let mut key = Self(Box::new([0; 32]));
        getrandom::fill(&mut key.0[..])?;
        Ok(key)
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Drop for SecretKey32 {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretKey32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey32(REDACTED)")
    }
}

/// Parses 64 hex digits (surrounding whitespace allowed). The error never contains the input.
pub fn parse_hex32(text: &str) -> Result<SecretKey32, &'static str> {
    let text = text.trim();
    if text.len() != 64 {
        return Err("expected 64 hex digits (32 bytes)");
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        match (digit(chunk[0]), digit(chunk[1])) {
            (Some(hi), Some(lo)) => bytes[i] = (hi * 16 + lo) as u8,
            _ => return Err("expected 64 hex digits (32 bytes)"),
        }
    }
    Ok(SecretKey32::from_bytes(*bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = SecretString::new("tg_test_supersecret".into());
        assert_eq!(format!("{s:?}"), "SecretString(REDACTED)");
        assert!(s.ct_eq("tg_test_supersecret"));
        assert!(!s.ct_eq("tg_test_supersecreT"));
        let k = parse_hex32(&"ab".repeat(32)).unwrap();
        assert_eq!(k.expose()[0], 0xab);
        assert!(!format!("{k:?}").contains("ab"));
        let err = parse_hex32(&"zz".repeat(32)).unwrap_err();
        assert!(!err.contains("zz"));
        assert!(parse_hex32("abcd").is_err());
    }

    /// Guards the hand-written constant-time `PartialEq` (it replaced a derived one).
    #[test]
    fn equality_is_the_constant_time_comparison() {
        let s = |t: &str| SecretString::new(t.into());
        for (a, b, equal) in [
            ("tg_test_abc", "tg_test_abc", true),
            ("tg_test_abc", "tg_test_abd", false),
            ("tg_test_abc", "Tg_test_abc", false),
            ("tg_test_abc", "tg_test_ab", false),
            ("", "", true),
            ("", "x", false),
        ] {
            assert_eq!(s(a) == s(b), equal, "{a:?} == {b:?}");
            assert_eq!(s(a).ct_eq(b), equal, "{a:?} ct_eq {b:?}");
        }
    }
}
