//! JSON parsing that refuses an object with the same key twice.
//!
//! `serde_json::Value` keeps the last of duplicate keys, so `{"op":"ping","op":"subscribe"}`
//! would be read as a subscribe by us and possibly as a ping by a proxy or log filter that keeps
//! the first: two readers disagreeing about one message. Client messages are parsed with
//! [`parse`] instead, which refuses the message (RFC 8259 §4: names SHOULD be unique).

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Parses `text` like `serde_json::from_str::<Value>`, failing on a duplicate key at any depth.
pub fn parse(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str::<Strict>(text).map(|s| s.0)
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number must be finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                // The key is the client's own text; bounded so an error never carries much.
                let shown: String = key.chars().take(32).collect();
                return Err(de::Error::custom(format_args!(
                    "key {shown:?} appears twice"
                )));
            }
            let Strict(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for text in [
            r#"{"op":"ping","op":"subscribe"}"#,
            r#"{"op":"subscribe","channels":["a"],"resume":{"a":{"seq":1,"seq":2}}}"#,
            r#"[{"x":1,"x":1}]"#,
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains("appears twice"), "{text}: {error}");
        }
    }

    #[test]
    fn everything_else_parses_like_serde_json() {
        for text in [
            r#"{"op":"subscribe","id":18446744073709551615,"channels":["book:sim:BTC-USDT"]}"#,
            r#"{"a":-1,"b":1.5,"c":null,"d":true,"e":[1,"x",{"f":[]}],"g":"\u00e9\n"}"#,
            r#"{"same":{"k":1},"other":{"k":2}}"#,
            "[]",
            "\"text\"",
        ] {
            let strict = parse(text).unwrap();
            let plain: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(strict, plain, "{text}");
        }
        assert!(parse("{").is_err());
        assert!(parse(r#"{"a":1}x"#).is_err());
    }
}
