//! Parsing helpers every venue uses: exact decimals, level lists, and [`Text`], the string
//! type of every venue message field.

use model::{Decimal, Level, parse_decimal};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

/// A JSON string field of a venue message: borrowed from the frame when the venue wrote it
/// without escapes (the hot path allocates nothing), owned when it did not.
///
/// Never deserialize a venue field into `&str`: serde can only borrow a string that contains
/// no escape sequence, and venues do escape (Kraken's REST writes `"AAVE\/AUD"`), which fails
/// with `expected a borrowed string`. Fields of this type need `#[serde(borrow)]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Text<'a>(pub Cow<'a, str>);

impl Text<'_> {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// Parses a venue decimal exactly, naming the field in the error.
pub(crate) fn decimal(field: &str, text: &str) -> Result<Decimal, String> {
    parse_decimal(text).map_err(|e| format!("{field}: {e}"))
}

/// A non-negative JSON integer at the start of `bytes`, in the only form the hand-written
/// fast paths take: 1 to `max_digits` (at most 19, so it fits a `u64`) digits, no leading
/// zero, not continued as a float (`.`, `e`, `E`). The value and the digits' length; `None`
/// for anything else, which the fast path then leaves to serde.
pub(crate) fn json_uint(bytes: &[u8], max_digits: usize) -> Option<(u64, usize)> {
    debug_assert!(max_digits <= 19);
    let mut value: u64 = 0;
    let mut digits = 0;
    while let Some(&b) = bytes.get(digits).filter(|b| b.is_ascii_digit()) {
        if digits == max_digits {
            return None;
        }
        value = value * 10 + u64::from(b - b'0');
        digits += 1;
    }
    let leading_zero = digits > 1 && bytes[0] == b'0';
    let float = matches!(bytes.get(digits), Some(b'.' | b'e' | b'E'));
    (digits > 0 && !leading_zero && !float).then_some((value, digits))
}

/// A JSON list of book levels, `[["price","size", …], …]`, parsed straight into [`Level`]s in
/// the frame's single pass: no intermediate list of strings, and the price and size strings
/// are borrowed from the frame unless escaped. Elements after the size (OKX's deprecated
/// field and order count) are skipped. A bad decimal fails the whole frame, naming the level.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Levels(pub Vec<Level>);

impl<'de> Deserialize<'de> for Levels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = Levels;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of [price, size] levels")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Levels, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(1024));
                while let Some(OneLevel(level)) = seq.next_element()? {
                    out.push(level);
                }
                Ok(Levels(out))
            }
        }
        deserializer.deserialize_seq(ListVisitor)
    }
}

/// One `["price","size", …]` element of [`Levels`].
struct OneLevel(Level);

impl<'de> Deserialize<'de> for OneLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LevelVisitor;
        impl<'de> Visitor<'de> for LevelVisitor {
            type Value = OneLevel;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a level [price, size, …]")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneLevel, A::Error> {
                let mut next = |what: &str, at: usize| -> Result<Decimal, A::Error> {
                    let text: Text = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(at, &self))?;
                    parse_decimal(&text).map_err(|e| de::Error::custom(format_args!("{what}: {e}")))
                };
                let price = next("level price", 0)?;
                let size = next("level size", 1)?;
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(OneLevel(Level::new(price, size)))
            }
        }
        deserializer.deserialize_seq(LevelVisitor)
    }
}

/// Text for a log line: at most 200 characters of a venue message.
pub(crate) fn excerpt(text: &str) -> String {
    text.chars().take(200).collect()
}

/// Test helper: `json` with every character inside every string literal written as a `\uXXXX`
/// escape, as a venue's serializer is free to. A parser that borrows `&str` fails on it.
#[cfg(test)]
pub(crate) fn escaped(json: &str) -> String {
    let mut out = String::with_capacity(json.len() * 3);
    let (mut in_string, mut chars) = (false, json.chars());
    while let Some(c) = chars.next() {
        match (in_string, c) {
            (false, '"') | (true, '"') => {
                in_string = !in_string;
                out.push('"');
            }
            (true, '\\') => {
                out.push('\\');
                out.extend(chars.next());
            }
            (true, c) if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            (_, c) => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Field<'a> {
        #[serde(borrow)]
        name: Text<'a>,
        #[serde(borrow)]
        pairs: Vec<[Text<'a>; 2]>,
    }

    #[derive(serde::Deserialize)]
    struct Book {
        b: Levels,
    }

    /// Levels parse in one pass like pairs of strings do: escapes, extra elements skipped,
    /// and every malformed shape refused with the reason.
    #[test]
    fn levels_parse_in_one_pass_and_refuse_bad_shapes() {
        let book: Book =
            serde_json::from_str(r#"{"b":[["1.50","2"],["1\u002e4","3","0","7"]]}"#).unwrap();
        assert_eq!(
            book.b.0,
            [
                Level::new(parse_decimal("1.50").unwrap(), Decimal::from(2)),
                Level::new(parse_decimal("1.4").unwrap(), Decimal::from(3)),
            ]
        );
        assert_eq!(book.b.0[0].price.scale(), 2, "scale kept");
        let empty: Book = serde_json::from_str(r#"{"b":[]}"#).unwrap();
        assert!(empty.b.0.is_empty());
        for (bad, why) in [
            (r#"{"b":[["1x","2"]]}"#, "level price"),
            (r#"{"b":[["1","-"]]}"#, "level size"),
            (r#"{"b":[["1"]]}"#, "invalid length 1"),
            (r#"{"b":[[1,"2"]]}"#, "invalid type"),
            (r#"{"b":["1","2"]}"#, "invalid type"),
            (r#"{"b":{"1":"2"}}"#, "invalid type"),
        ] {
            let error = serde_json::from_str::<Book>(bad).err().unwrap().to_string();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    /// Regression (issue 15): Kraken's `"AAVE\/AUD"` failed as a borrowed `&str`.
    #[test]
    fn json_uints_take_only_the_plain_form() {
        assert_eq!(json_uint(b"0,", 18), Some((0, 1)));
        assert_eq!(
            json_uint(b"1672515782136}", 18),
            Some((1_672_515_782_136, 13))
        );
        assert_eq!(
            json_uint(b"9999999999999999999", 19),
            Some((9_999_999_999_999_999_999, 19))
        );
        for bad in [
            &b""[..],
            b"x",
            b"-1",
            b"01",
            b"00",
            b"1.5",
            b"1e3",
            b"2E1",
            b"1234567890123456789",
        ] {
            assert_eq!(json_uint(bad, 18), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn text_borrows_plain_strings_and_owns_escaped_ones() {
        let plain: Field = serde_json::from_str(r#"{"name":"AAVE/AUD","pairs":[]}"#).unwrap();
        assert!(matches!(plain.name.0, Cow::Borrowed("AAVE/AUD")));
        let slash: Field =
            serde_json::from_str(r#"{"name":"AAVE\/AUD","pairs":[["1\u002e5","2"]]}"#).unwrap();
        assert!(matches!(slash.name.0, Cow::Owned(_)));
        assert_eq!(slash.name.as_str(), "AAVE/AUD");
        let price = decimal("bid", &slash.pairs[0][0]).unwrap();
        assert_eq!(price.to_string(), "1.5");
        assert!(serde_json::from_str::<Field>(r#"{"name":5,"pairs":[]}"#).is_err());
        let all = escaped(r#"{"name":"A\/B","pairs":[["1","2"]]}"#);
        assert_eq!(
            all,
            r#"{"\u006e\u0061\u006d\u0065":"\u0041\/\u0042","\u0070\u0061\u0069\u0072\u0073":[["\u0031","\u0032"]]}"#
        );
        let field: Field = serde_json::from_str(&all).unwrap();
        assert_eq!(
            (field.name.as_str(), field.pairs[0][1].as_str()),
            ("A/B", "2")
        );
    }
}
