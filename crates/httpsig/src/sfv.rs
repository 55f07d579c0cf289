//! The part of RFC 8941 (Structured Field Values) that `Signature-Input` and `Signature`
//! need: a dictionary whose members are inner lists of strings (with parameters) or byte
//! sequences. Strict: anything outside that subset, duplicate dictionary keys and duplicate
//! parameters are errors, so two parsers can never disagree about what was signed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A bare item value of a parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bare {
    Integer(i64),
    String(String),
    Token(String),
    Boolean(bool),
}

pub type Params = Vec<(String, Bare)>;

/// A dictionary member value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    /// `("a" "b");p=1`: the strings with their own parameters, then the list's parameters.
    InnerList(Vec<(String, Params)>, Params),
    /// `:base64:`
    Bytes(Vec<u8>),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

type R<T> = Result<T, String>;

impl Parser<'_> {
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

    fn key(&mut self) -> R<String> {
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
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn string(&mut self) -> R<String> {
        if !self.eat(b'"') {
            return Err(format!("expected a string at byte {}", self.i));
        }
        let mut out = String::new();
        loop {
            // A run of plain printable ASCII is copied at once (usually the whole string).
            let start = self.i;
            while matches!(self.peek(), Some(c) if (0x20..0x7f).contains(&c) && c != b'"' && c != b'\\')
            {
                self.i += 1;
            }
            let run = std::str::from_utf8(&self.s[start..self.i])
                .map_err(|_| "non-printable character in string".to_string())?;
            out.push_str(run);
            match self.peek() {
                None => return Err("unterminated string".into()),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => out.push(c as char),
                        _ => return Err("bad escape in string".into()),
                    }
                    self.i += 1;
                }
                Some(_) => return Err("non-printable character in string".into()),
            }
        }
    }

    fn bare(&mut self) -> R<Bare> {
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
                let digits = &self.s[start..self.i];
                if self.peek() == Some(b'.') {
                    return Err("decimals are not accepted here".into());
                }
                let n = digits.len() - usize::from(digits[0] == b'-');
                if n == 0 || n > 15 {
                    return Err("integers have 1 to 15 digits".into());
                }
                std::str::from_utf8(digits)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .map(Bare::Integer)
                    .ok_or_else(|| "bad integer".into())
            }
            Some(c) if c.is_ascii_alphabetic() || c == b'*' => {
                let start = self.i;
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric()
                    || b"!#$%&'*+-.^_`|~:/".contains(&c))
                {
                    self.i += 1;
                }
                Ok(Bare::Token(
                    String::from_utf8_lossy(&self.s[start..self.i]).into_owned(),
                ))
            }
            _ => Err(format!("unsupported value at byte {}", self.i)),
        }
    }

    fn params(&mut self) -> R<Params> {
        let mut params: Params = Vec::new();
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

    fn member(&mut self) -> R<Member> {
        if self.eat(b'(') {
            let mut items = Vec::new();
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
            let bytes = STANDARD
                .decode(text)
                .map_err(|_| "bad base64 in byte sequence".to_string())?;
            if !self.params()?.is_empty() {
                return Err("parameters on a byte sequence are not accepted".into());
            }
            Ok(Member::Bytes(bytes))
        } else {
            Err(format!("expected ( or : at byte {}", self.i))
        }
    }
}

/// Why a field value is not a structured field tickgate accepts (the position and what was
/// expected; never the value itself beyond a key name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SfvError(String);

/// Parses a dictionary (the combined value of every line of the field).
pub fn dictionary(text: &str) -> Result<Vec<(String, Member)>, SfvError> {
    parse_dictionary(text).map_err(SfvError)
}

fn parse_dictionary(text: &str) -> R<Vec<(String, Member)>> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let mut out: Vec<(String, Member)> = Vec::new();
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
pub fn write_params(out: &mut String, params: &Params) {
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
        assert_eq!(params[0], ("created".into(), Bare::Integer(1618884473)));
        assert_eq!(params[2], ("a".into(), Bare::Boolean(true)));
        let d = dictionary("a=:AQID:, b=:BA==:").unwrap();
        assert_eq!(d[0].1, Member::Bytes(vec![1, 2, 3]));
        assert_eq!(d[1].1, Member::Bytes(vec![4]));
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
        let names: Vec<&str> = items.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["p\"q\\r", "", "plain"]);
        assert_eq!(params[0].1, Bare::String("\"\"".into()));
    }

    #[test]
    fn params_round_trip() {
        let text = r#";created=1;keyid="a\"b";alg=x;f"#;
        let d = dictionary(&format!("s=(){text}")).unwrap();
        let Member::InnerList(_, params) = &d[0].1 else {
            panic!()
        };
        let mut out = String::new();
        write_params(&mut out, params);
        assert_eq!(out, text);
    }
}
