//! The part of RFC 8941 (Structured Field Values) that `Signature-Input` and `Signature`
//! need: a dictionary whose members are inner lists of strings (with parameters) or byte
//! sequences. Strict: anything outside that subset, duplicate dictionary keys and duplicate
//! parameters are errors, so two parsers can never disagree about what was signed.

//!
//! Parsing borrows from the header text: keys, tokens and strings without escapes are slices of
//! it, and the lists are inline (`SmallVec`) up to the sizes a signature uses, so a signed
//! request's two headers parse without a heap allocation (the escapes and oversized lists that
//! need one are rare and still accepted).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use smallvec::SmallVec;
use std::borrow::Cow;

/// A bare item value of a parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bare<'a> {
    Integer(i64),
    /// Borrowed from the field unless it had escapes.
    String(Cow<'a, str>),
    Token(&'a str),
    Boolean(bool),
}

/// Parameters in the order sent (the scheme knows six; more spill to the heap).
pub type Params<'a> = SmallVec<[(&'a str, Bare<'a>); 6]>;

/// Parameters of an inner list's item: none in a signature (the scheme refuses component
/// parameters), so none are inline and the usual empty case costs nothing.
pub type ItemParams<'a> = SmallVec<[(&'a str, Bare<'a>); 0]>;

/// The strings of an inner list with their own parameters.
pub type Items<'a> = SmallVec<[(Cow<'a, str>, ItemParams<'a>); 8]>;

/// Decoded byte sequences up to 96 bytes stay inline (an Ed25519 signature is 64).
pub type ByteSeq = SmallVec<[u8; 96]>;

/// A dictionary member value.
// Inline on purpose: a member is built once per header and moved a few times; boxing the
// list would bring back the per-request allocation this layout avoids.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member<'a> {
    /// `("a" "b");p=1`: the strings with their own parameters, then the list's parameters.
    InnerList(Items<'a>, Params<'a>),
    /// `:base64:`
    Bytes(ByteSeq),
}

/// A parsed dictionary, members in the order sent (one inline: a signature has one label).
pub type Dictionary<'a> = SmallVec<[(&'a str, Member<'a>); 1]>;

struct Parser<'a> {
    text: &'a str,
    s: &'a [u8],
    i: usize,
}

type R<T> = Result<T, String>;

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn skip(&mut self, ows: bool) {
        while matches!(self.peek(), Some(b' ')) || (ows && self.peek() == Some(b'\t')) {
            self.i += 1;
        }
    }

    /// `text[start..self.i]`; every boundary the parser slices at follows an ASCII byte.
    fn slice(&self, start: usize) -> &'a str {
        &self.text[start..self.i]
    }

    fn key(&mut self) -> R<&'a str> {
        let start = self.i;
        match self.peek() {
            Some(c) if c.is_ascii_lowercase() || c == b'*' => self.i += 1,
            _ => return Err(format!("expected a key at byte {}", self.i)),
        }
        while matches!(self.peek(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit()
            || matches!(c, b'_' | b'-' | b'.' | b'*'))
        {
            self.i += 1;
        }
        Ok(self.slice(start))
    }

    fn string(&mut self) -> R<Cow<'a, str>> {
        if !self.eat(b'"') {
            return Err(format!("expected a string at byte {}", self.i));
        }
        let mut out = Cow::Borrowed("");
        loop {
            // A run of plain printable ASCII (usually the whole string): borrowed when it is
            // all there is, appended otherwise.
            let start = self.i;
            while matches!(self.peek(), Some(c) if (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\')
            {
                self.i += 1;
            }
            let run = self.slice(start);
            match &mut out {
                Cow::Borrowed("") => out = Cow::Borrowed(run),
                _ => out.to_mut().push_str(run),
            }
            match self.peek() {
                None => return Err("unterminated string".into()),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => out.to_mut().push(c as char),
                        _ => return Err("bad escape in string".into()),
                    }
                    self.i += 1;
                }
                Some(_) => return Err("non-printable character in string".into()),
            }
        }
    }

    fn bare(&mut self) -> R<Bare<'a>> {
        match self.peek() {
            Some(b'"') => Ok(Bare::String(self.string()?)),
            Some(b'?') => {
                self.i += 1;
                match self.peek() {
                    Some(b'1') => {
                        self.i += 1;
                        Ok(Bare::Boolean(true))
                    }
                    Some(b'0') => {
                        self.i += 1;
                        Ok(Bare::Boolean(false))
                    }
                    _ => Err("bad boolean".into()),
                }
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                self.eat(b'-');
                while matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
                    self.i += 1;
                }
                let digits = self.slice(start);
                if self.peek() == Some(b'.') {
                    return Err("decimals are not accepted here".into());
                }
                let n = digits.len() - usize::from(digits.starts_with('-'));
                if n == 0 || n > 15 {
                    return Err("integers have 1 to 15 digits".into());
                }
                digits
                    .parse()
                    .map(Bare::Integer)
                    .map_err(|_| "bad integer".into())
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'*' => {
                let start = self.i;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric()
                    || b"!#$%&'*+-.^_`|~:/".contains(&c))
                {
                    self.i += 1;
                }
                Ok(Bare::Token(self.slice(start)))
            }
            _ => Err(format!("unsupported value at byte {}", self.i)),
        }
    }

    /// Parameters into a list inline up to `A`'s size.
    fn params<A: smallvec::Array<Item = (&'a str, Bare<'a>)>>(&mut self) -> R<SmallVec<A>> {
        let mut params = SmallVec::<A>::new();
        while self.eat(b';') {
            self.skip(false);
            let key = self.key()?;
            let value = if self.eat(b'=') {
                self.bare()?
            } else {
                Bare::Boolean(true)
            };
            if params.iter().any(|(k, _)| *k == key) {
                return Err(format!("parameter {key} appears twice"));
            }
            params.push((key, value));
        }
        Ok(params)
    }

    fn member(&mut self) -> R<Member<'a>> {
        if self.eat(b'(') {
            let mut items = Items::new();
            loop {
                self.skip(false);
                if self.eat(b')') {
                    break;
                }
                let item = self.string()?;
                let params = self.params()?;
                items.push((item, params));
                match self.peek() {
                    Some(b' ') | Some(b')') => {}
                    _ => return Err("expected a space or ) in the inner list".into()),
                }
            }
            Ok(Member::InnerList(items, self.params()?))
        } else if self.eat(b':') {
            let start = self.i;
            while matches!(self.peek(), Some(c) if c != b':') {
                self.i += 1;
            }
            let text = &self.s[start..self.i];
            if !self.eat(b':') {
                return Err("unterminated byte sequence".into());
            }
            let bytes = decode_base64(text).ok_or("bad base64 in byte sequence")?;
            if !self.params::<[_; 0]>()?.is_empty() {
                return Err("parameters on a byte sequence are not accepted".into());
            }
            Ok(Member::Bytes(bytes))
        } else {
            Err(format!("expected ( or : at byte {}", self.i))
        }
    }
}

/// Standard base64 with padding, decoded in place when it fits inline.
fn decode_base64(text: &[u8]) -> Option<ByteSeq> {
    let mut buf = [0u8; 96];
    if base64::decoded_len_estimate(text.len()) <= buf.len() {
        let n = STANDARD.decode_slice(text, &mut buf).ok()?;
        Some(ByteSeq::from_buf_and_len(buf, n))
    } else {
        STANDARD.decode(text).ok().map(ByteSeq::from_vec)
    }
}

/// Why a field value is not a structured field tickgate accepts (the position and what was
/// expected; never the value itself beyond a key name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SfvError(String);

/// Parses a dictionary (the combined value of every line of the field).
pub fn dictionary(text: &str) -> Result<Dictionary<'_>, SfvError> {
    parse_dictionary(text).map_err(SfvError)
}

fn parse_dictionary(text: &str) -> R<Dictionary<'_>> {
    let mut p = Parser {
        text,
        s: text.as_bytes(),
        i: 0,
    };
    let mut out = Dictionary::new();
    p.skip(false);
    loop {
        let key = p.key()?;
        if !p.eat(b'=') {
            return Err(format!("member {key} has no value"));
        }
        let member = p.member()?;
        if out.iter().any(|(k, _)| *k == key) {
            return Err(format!("label {key} appears twice"));
        }
        out.push((key, member));
        p.skip(true);
        if p.peek().is_none() {
            return Ok(out);
        }
        if !p.eat(b',') {
            return Err(format!("expected , at byte {}", p.i));
        }
        p.skip(true);
        if p.peek().is_none() {
            return Err("trailing comma".into());
        }
    }
}

/// Serializes a string (RFC 8941 §4.1.6).
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    // Copy runs between the characters to escape (usually the whole string) at once.
    let mut rest = s;
    while let Some(i) = rest.find(['"', '\\']) {
        out.push_str(&rest[..i]);
        out.push('\\');
        out.push_str(&rest[i..=i]);
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

/// Decimal digits of `n` (without the formatting machinery: this runs per signed request).
fn write_integer(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for d in &digits[i..] {
        out.push(char::from(*d));
    }
}

/// Serializes parameters (RFC 8941 §4.1.1.2).
pub fn write_params(out: &mut String, params: &[(&str, Bare<'_>)]) {
    for (key, value) in params {
        out.push(';');
        out.push_str(key);
        match value {
            Bare::Boolean(true) => {}
            Bare::Boolean(false) => out.push_str("=?0"),
            Bare::Integer(n) => {
                out.push('=');
                write_integer(out, *n);
            }
            Bare::String(s) => {
                out.push('=');
                write_string(out, s);
            }
            Bare::Token(t) => {
                out.push('=');
                out.push_str(t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_strings_and_integers() {
        let mut out = String::new();
        for s in ["", "plain", "a\"b", "\\", "x\\\"y\"", "é\"ü"] {
            write_string(&mut out, s);
            out.push(' ');
        }
        assert_eq!(out, r#""" "plain" "a\"b" "\\" "x\\\"y\"" "é\"ü" "#);
        let mut out = String::new();
        for n in [0i64, 7, -7, 1_764_300_000, i64::MAX, i64::MIN] {
            write_integer(&mut out, n);
            out.push(' ');
        }
        assert_eq!(out, format!("0 7 -7 1764300000 {} {} ", i64::MAX, i64::MIN));
    }

    #[test]
    fn parses_signature_input_and_signature() {
        let d = dictionary(r#"sig1=("@method" "@path");created=1618884473;keyid="k";a"#).unwrap();
        let Member::InnerList(items, params) = &d[0].1 else {
            panic!("not a list")
        };
        assert_eq!(items.len(), 2);
        assert_eq!(params[0], ("created", Bare::Integer(1618884473)));
        assert_eq!(params[2], ("a", Bare::Boolean(true)));
        let d = dictionary("a=:AQID:, b=:BA==:").unwrap();
        assert_eq!(d[0].1, Member::Bytes(ByteSeq::from_slice(&[1, 2, 3])));
        assert_eq!(d[1].1, Member::Bytes(ByteSeq::from_slice(&[4])));
    }

    #[test]
    fn strict_rejections() {
        for bad in [
            r#"a=("x"), a=("y")"#,
            r#"a=("x");k=1;k=2"#,
            r#"a=("x"),"#,
            r#"A=("x")"#,
            r#"a=("x""y")"#,
            r#"a=("x");k=1.5"#,
            r#"a=("x");k=1234567890123456"#,
            "a=:not base64!:",
            "a=:AQID:;p=1",
            r#"a="x""#,
            r#"a=("x" y)"#,
            r#"a=("x\n")"#,
            r#"a=("x"#,
            r#"a=("x\y")"#,
            "a=(\"caf\u{e9}\")",
            "a=(\"tab\there\")",
            "",
        ] {
            assert!(dictionary(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn strings_with_escapes() {
        let d = dictionary(r#"a=("p\"q\\r" "" "plain");k="\"\"""#).unwrap();
        let Member::InnerList(items, params) = &d[0].1 else {
            panic!()
        };
        let names: Vec<&str> = items.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(names, ["p\"q\\r", "", "plain"]);
        assert_eq!(params[0].1, Bare::String("\"\"".into()));
    }

    /// Byte sequences decode alike inline (up to 96 bytes) and on the heap past it; the
    /// boundary lengths are where the inline buffer could be too small.
    #[test]
    fn byte_sequences_of_every_size() {
        for len in [
            0usize, 1, 2, 3, 32, 64, 70, 71, 72, 94, 95, 96, 97, 98, 200, 1000,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let field = format!("a=:{}:", STANDARD.encode(&bytes));
            let d = dictionary(&field).unwrap();
            assert_eq!(d[0].1, Member::Bytes(ByteSeq::from_slice(&bytes)), "{len}");
            assert_eq!(d[0].1.clone(), d[0].1, "{len}");
        }
        // Non-canonical padding bits and missing padding are refused at every size.
        for bad in ["a=:AB==:", "a=:AQI:", "a=:A===:"] {
            assert!(dictionary(bad).is_err(), "{bad} parsed");
        }
    }

    /// Strings without escapes, keys and tokens are slices of the field; only escapes copy.
    #[test]
    fn plain_strings_are_borrowed() {
        let field = r#"a=("@method" "x\"y");keyid="k1";alg=tok"#;
        let d = dictionary(field).unwrap();
        let Member::InnerList(items, params) = &d[0].1 else {
            panic!()
        };
        assert!(matches!(items[0].0, Cow::Borrowed("@method")));
        assert!(matches!(&items[1].0, Cow::Owned(s) if s == "x\"y"));
        assert!(matches!(
            params[0],
            ("keyid", Bare::String(Cow::Borrowed("k1")))
        ));
        assert_eq!(params[1], ("alg", Bare::Token("tok")));
    }

    #[test]
    fn params_round_trip() {
        let text = r#";created=1;keyid="a\"b";alg=x;f"#;
        let field = format!("s=(){text}");
        let d = dictionary(&field).unwrap();
        let Member::InnerList(_, params) = &d[0].1 else {
            panic!()
        };
        let mut out = String::new();
        write_params(&mut out, params);
        assert_eq!(out, text);
    }
}
