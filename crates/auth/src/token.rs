//! The key format: `tg_<env>_<43 base62 random chars><6 base62 checksum chars>`.
//!
//! - 43 base62 characters carry 256.03 bits from the OS CSPRNG (rejection sampling: no bias).
//! - The checksum is CRC-32 (IEEE) of everything before it (`tg_test_` + body), as 6 base62
//!   digits, most significant first. A scanner recognises a leaked key offline, and a mistyped
//!   key is rejected before any lookup, as GitHub's and npm's tokens do.
//! - `_` is not base62, so a double-click selects the whole token and the prefix is unambiguous.
//!
//! Bearer tokens and HMAC secrets share the format; the store knows which is which.

use crate::secret::SecretString;
use store::keys::Environment;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Random characters in a token body.
pub const BODY_LEN: usize = 43;
/// Checksum characters.
pub const CHECKSUM_LEN: usize = 6;
/// `tg_live_` / `tg_test_`.
pub const PREFIX_LEN: usize = 8;
/// Total token length.
pub const TOKEN_LEN: usize = PREFIX_LEN + BODY_LEN + CHECKSUM_LEN;

/// Why a text is not a tickgate key. Messages never contain the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a tickgate key: it must start with tg_live_ or tg_test_")]
    Prefix,
    #[error("not a tickgate key: expected {TOKEN_LEN} characters of [A-Za-z0-9_]")]
    Shape,
    #[error("the key's checksum does not match: it was mistyped or truncated")]
    Checksum,
}

pub fn prefix(environment: Environment) -> &'static str {
    match environment {
        Environment::Live => "tg_live_",
        Environment::Test => "tg_test_",
    }
}

/// `n` uniformly random base62 characters from the OS CSPRNG.
pub fn random_base62(n: usize) -> Result<String, getrandom::Error> {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf)?;
        // 248 = 4 × 62: bytes at or above it are dropped, so every character is equally likely.
        for &b in buf.iter().filter(|b| **b < 248) {
            if out.len() == n {
                break;
            }
            out.push(ALPHABET[usize::from(b % 62)] as char);
        }
    }
    buf.fill(0);
    Ok(out)
}

fn checksum_chars(text: &str) -> [u8; CHECKSUM_LEN] {
    let mut crc = u64::from(crc32fast::hash(text.as_bytes()));
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(crc % 62) as usize];
        crc /= 62;
    }
    out
}

/// A fresh token for `environment`.
pub fn generate(environment: Environment) -> Result<SecretString, getrandom::Error> {
    let mut token = String::with_capacity(TOKEN_LEN);
    token.push_str(prefix(environment));
    token.push_str(&random_base62(BODY_LEN)?);
    let check = checksum_chars(&token);
    token.extend(check.iter().map(|&b| b as char));
    Ok(SecretString::new(token))
}

/// Checks the shape and checksum of `text` and returns the environment its prefix names.
pub fn parse(text: &str) -> Result<Environment, TokenError> {
    let environment = if text.starts_with("tg_live_") {
        Environment::Live
    } else if text.starts_with("tg_test_") {
        Environment::Test
    } else {
        return Err(TokenError::Prefix);
    };
    if text.len() != TOKEN_LEN
        || !text[PREFIX_LEN..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
    {
        return Err(TokenError::Shape);
    }
    let (head, check) = text.split_at(PREFIX_LEN + BODY_LEN);
    if checksum_chars(head) != check.as_bytes() {
        return Err(TokenError::Checksum);
    }
    Ok(environment)
}

/// A display form that identifies a token without revealing it: `tg_test_AbCd…wXyZ`.
pub fn mask(text: &str) -> String {
    if text.len() < PREFIX_LEN + 8 || !text.is_ascii() {
        return "REDACTED".into();
    }
    format!("{}…{}", &text[..PREFIX_LEN + 4], &text[text.len() - 4..])
}

/// Replaces anything shaped like a tickgate key (valid checksum or not) with its masked form,
/// so that error messages built from client input never carry a key back out.
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("tg_live_") && !text.contains("tg_test_") {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest
        .find("tg_live_")
        .into_iter()
        .chain(rest.find("tg_test_"))
        .min()
    {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos + PREFIX_LEN..];
        let body = tail
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(tail.len());
        let candidate = &rest[pos..pos + PREFIX_LEN + body];
        if body >= 8 {
            out.push_str(&mask(candidate));
        } else {
            out.push_str(candidate);
        }
        rest = &rest[pos + PREFIX_LEN + body..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// A key found by [`scan`]: its byte offset and the token text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub offset: usize,
    pub token: SecretString,
    pub environment: Environment,
}

/// Finds every tickgate key in `text`: the prefix, then exactly 49 base62 characters not
/// followed by another, with a valid checksum. Look-alikes (right shape, wrong checksum) are
/// not reported.
pub fn scan(text: &str) -> Vec<Found> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(pos) = text[from..].find("tg_").map(|p| p + from) {
        from = pos + 3;
        let end = pos + TOKEN_LEN;
        if end > bytes.len() || bytes.get(end).is_some_and(|b| b.is_ascii_alphanumeric()) {
            continue;
        }
        let Some(candidate) = text.get(pos..end) else {
            continue;
        };
        if let Ok(environment) = parse(candidate) {
            found.push(Found {
                offset: pos,
                token: SecretString::new(candidate.to_string()),
                environment,
            });
            from = end;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_carry_their_environment() {
        for env in [Environment::Live, Environment::Test] {
            let token = generate(env).unwrap();
            assert_eq!(token.expose().len(), TOKEN_LEN);
            assert!(token.expose().starts_with(prefix(env)));
            assert_eq!(parse(token.expose()), Ok(env));
        }
        assert_ne!(
            generate(Environment::Test).unwrap().expose(),
            generate(Environment::Test).unwrap().expose()
        );
    }

    #[test]
    fn checksum_rejects_every_one_character_typo() {
        let token = generate(Environment::Test).unwrap().expose().to_string();
        for i in PREFIX_LEN..TOKEN_LEN {
            let original = token.as_bytes()[i];
            for &replacement in ALPHABET.iter().filter(|&&c| c != original) {
                let mut typo = token.clone().into_bytes();
                typo[i] = replacement;
                let typo = String::from_utf8(typo).unwrap();
                assert_eq!(parse(&typo), Err(TokenError::Checksum), "position {i}");
            }
        }
        // Swapped neighbours, truncation and the wrong prefix too.
        let mut swapped = token.clone().into_bytes();
        swapped.swap(20, 21);
        if swapped != token.as_bytes() {
            assert!(parse(std::str::from_utf8(&swapped).unwrap()).is_err());
        }
        assert_eq!(parse(&token[..TOKEN_LEN - 1]), Err(TokenError::Shape));
        assert_eq!(
            parse(&token.replace("tg_test_", "tg_prod_")),
            Err(TokenError::Prefix)
        );
        assert_eq!(parse(&format!("{token}x")), Err(TokenError::Shape));
    }

    #[test]
    fn body_characters_are_spread_over_the_alphabet() {
        let text = random_base62(62 * 200).unwrap();
        let mut counts = [0u32; 62];
        for b in text.bytes() {
            counts[ALPHABET.iter().position(|&a| a == b).unwrap()] += 1;
        }
        // Expected 200 each; a biased mapping (b % 62 over 0..=255) would skew the first eight.
        assert!(
            counts.iter().all(|&c| (120..=290).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn redact_masks_key_shaped_text() {
        let token = generate(Environment::Test).unwrap();
        let text = format!("invalid type: string \"{}\", expected u64", token.expose());
        let redacted = redact(&text);
        assert!(!redacted.contains(&token.expose()[12..40]), "{redacted}");
        assert!(redacted.contains("tg_test_") && redacted.contains("expected u64"));
        assert_eq!(redact("no keys here"), "no keys here");
        assert_eq!(redact("tg_test_ab"), "tg_test_ab");
    }

    #[test]
    fn scan_finds_real_keys_only() {
        let a = generate(Environment::Live).unwrap();
        let b = generate(Environment::Test).unwrap();
        let mut look_alike = b.expose().to_string().into_bytes();
        look_alike[30] = if look_alike[30] == b'a' { b'b' } else { b'a' };
        let look_alike = String::from_utf8(look_alike).unwrap();
        let text = format!(
            "export KEY={}\n{{\"token\":\"{}\"}} {} tg_test_short {}x",
            a.expose(),
            b.expose(),
            look_alike,
            a.expose()
        );
        let found = scan(&text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].token.expose(), a.expose());
        assert_eq!(found[0].environment, Environment::Live);
        assert_eq!(found[1].token.expose(), b.expose());
        assert_eq!(mask(a.expose()).len(), PREFIX_LEN + 4 + 3 + 4);
        assert!(!mask(a.expose()).contains(&a.expose()[20..30]));
    }
}
