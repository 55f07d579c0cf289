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

/// Parses `[price, size]` string pairs into levels.
pub(crate) fn levels(field: &str, pairs: &[[Text<'_>; 2]]) -> Result<Vec<Level>, String> {
    pairs
        .iter()
        .map(|[p, s]| Ok(Level::new(decimal(field, p)?, decimal(field, s)?)))
        .collect()
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

    /// Regression (issue 15): Kraken's `"AAVE\/AUD"` failed as a borrowed `&str`.
    #[test]
    fn text_borrows_plain_strings_and_owns_escaped_ones() {
        let plain: Field = serde_json::from_str(r#"{"name":"AAVE/AUD","pairs":[]}"#).unwrap();
        assert!(matches!(plain.name.0, Cow::Borrowed("AAVE/AUD")));
        let slash: Field =
            serde_json::from_str(r#"{"name":"AAVE\/AUD","pairs":[["1\u002e5","2"]]}"#).unwrap();
        assert!(matches!(slash.name.0, Cow::Owned(_)));
        assert_eq!(slash.name.as_str(), "AAVE/AUD");
        let levels = levels("bid", &slash.pairs).unwrap();
        assert_eq!(levels[0].price.to_string(), "1.5");
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
