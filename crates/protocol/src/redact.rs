//! Error text never carries a credential back to the client.
//!
//! Errors name what was wrong, and that sometimes means quoting the client's input: a channel
//! name, a query parameter, a scope. A client that pastes a key into the wrong field (a channel
//! `book:sim:tg_live_…`, `?symbol=tg_live_…`) would get its secret back in the response, where
//! proxies, browser consoles and logs keep it. [`scrub`] replaces every run that starts with a
//! credential prefix, whole or truncated, and [`ErrorBody`](crate::server::ErrorBody) applies
//! it to its `message` and `channel` whenever it is serialized, so no code path can forget.

use std::borrow::Cow;

/// Prefixes of tickgate's secrets: API keys, single-use WebSocket tokens, webhook secrets.
pub const SECRET_PREFIXES: [&str; 4] = ["tg_live_", "tg_test_", "tgws_", "whsec_"];

/// What a scrubbed credential is replaced with.
pub const REDACTED: &str = "[redacted: looks like a credential]";

/// Characters of a secret's body after its prefix.
fn is_secret_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '+' || c == '/' || c == '='
}

/// Fewer characters than this after a prefix are not treated as a credential (so a message may
/// still say "a tg_live_ key"): three characters of a 49-character secret reveal nothing.
const MIN_BODY: usize = 4;

/// `text` with every `prefix + at least 4 secret characters` replaced by [`REDACTED`].
pub fn scrub(text: &str) -> Cow<'_, str> {
    if !SECRET_PREFIXES.iter().any(|p| text.contains(p)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        // The earliest prefix occurrence whose body is long enough.
        let mut best: Option<(usize, usize)> = None; // (start, end)
        for prefix in SECRET_PREFIXES {
            let mut from = 0;
            while let Some(found) = rest[from..].find(prefix) {
                let start = from + found;
                let body = &rest[start + prefix.len()..];
                let len = body
                    .find(|c: char| !is_secret_char(c))
                    .unwrap_or(body.len());
                if len >= MIN_BODY {
                    if best.is_none_or(|(s, _)| start < s) {
                        best = Some((start, start + prefix.len() + len));
                    }
                    break;
                }
                from = start + prefix.len();
            }
        }
        match best {
            Some((start, end)) => {
                out.push_str(&rest[..start]);
                out.push_str(REDACTED);
                rest = &rest[end..];
            }
            None => {
                out.push_str(rest);
                break 'outer;
            }
        }
    }
    Cow::Owned(out)
}

/// `serialize_with` for error text.
pub fn serialize_scrubbed<S: serde::Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&scrub(text))
}

/// `serialize_with` for optional error text.
pub fn serialize_scrubbed_opt<S: serde::Serializer>(
    text: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match text {
        Some(text) => s.serialize_some(&*scrub(text)),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "tg_live_4eC39HqLyjWDarjtT1zdp7dcQ1pBkV2HYyxW1fK5TiyPRbmA8Qx";

    #[test]
    fn whole_and_truncated_credentials_are_replaced() {
        let cases = [
            (
                format!("channel book:sim:{KEY} is not served"),
                format!("channel book:sim:{REDACTED} is not served"),
            ),
            (
                format!("invalid symbol \"{}\"", &KEY[..40]),
                format!("invalid symbol \"{REDACTED}\""),
            ),
            (
                "unknown scope \"tgws_AbCdEfGh\"".to_string(),
                format!("unknown scope \"{REDACTED}\""),
            ),
            (
                "x whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw= y".to_string(),
                format!("x {REDACTED} y"),
            ),
            (format!("{KEY},{KEY}"), format!("{REDACTED},{REDACTED}")),
        ];
        for (input, expected) in cases {
            assert_eq!(scrub(&input), expected, "{input}");
            assert!(!scrub(&input).contains(&KEY[8..20]));
        }
    }

    #[test]
    fn ordinary_text_is_untouched() {
        for text in [
            "a tg_live_ key on a test deployment",
            "expected tg_live_… or tg_test_…",
            "channel book:sim:NOPE-USDT is not served by this gateway",
            "tg_test_abc is too short to be anything",
            "",
        ] {
            assert!(
                matches!(scrub(text), Cow::Borrowed(_)) || scrub(text) == text,
                "{text}"
            );
            assert_eq!(scrub(text), text);
        }
    }

    #[test]
    fn error_bodies_are_scrubbed_when_serialized() {
        let body = crate::server::ErrorBody {
            code: crate::ErrorCode::UnknownChannel,
            message: format!("channel book:sim:{KEY} is not served"),
            id: None,
            channel: Some(format!("book:sim:{KEY}")),
        };
        let json = serde_json::to_string(&body).unwrap();
        assert!(!json.contains(&KEY[8..]), "{json}");
        assert!(json.contains(REDACTED));
    }
}
