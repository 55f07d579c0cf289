//! Validation of operator input: names, principals, durations, metadata, public keys. Every
//! error says what is wrong and what is accepted.

/// Longest key name.
pub const MAX_NAME: usize = 100;
/// Longest principal id.
pub const MAX_PRINCIPAL: usize = 64;
/// Longest revocation reason.
pub const MAX_REASON: usize = 500;
/// Largest serialized metadata object.
pub const MAX_METADATA_BYTES: usize = 4096;
/// Longest lifetime or grace period: 10 years.
pub const MAX_SECS: u64 = 10 * 365 * 86_400;

pub fn name(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_NAME {
        return Err(format!("name must be 1 to {MAX_NAME} characters"));
    }
    if text.chars().any(char::is_control) {
        return Err("name must not contain control characters".into());
    }
    Ok(text.to_string())
}

pub fn principal(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= MAX_PRINCIPAL
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:@-".contains(c));
    if ok {
        Ok(text.to_string())
    } else {
        Err(format!(
            "principal must be 1 to {MAX_PRINCIPAL} characters of A-Z a-z 0-9 . _ : @ -"
        ))
    }
}

/// A principal derived from a key name when none is given.
pub fn principal_from_name(name: &str) -> String {
    let derived: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._:@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(MAX_PRINCIPAL)
        .collect();
    if derived.is_empty() {
        "default".into()
    } else {
        derived
    }
}

pub fn reason(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_REASON {
        return Err(format!("reason must be 1 to {MAX_REASON} characters"));
    }
    Ok(text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect())
}

/// `90d`, `12h`, `30m`, `45s` or plain seconds, from 0 (only where `allow_zero`) to 10 years.
pub fn duration_secs(text: &str, allow_zero: bool) -> Result<u64, String> {
    let text = text.trim();
    let err = || {
        format!(
            "invalid duration {:?}: use e.g. 90d, 12h, 30m, 45s or seconds, up to {}d",
            text.chars().take(24).collect::<String>(),
            MAX_SECS / 86_400
        )
    };
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        Some(_) => (text, 's'),
        None => return Err(err()),
    };
    let value: u64 = digits.parse().map_err(|_| err())?;
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return Err(err()),
    };
    let secs = value.checked_mul(factor).ok_or_else(err)?;
    if secs > MAX_SECS || (secs == 0 && !allow_zero) {
        return Err(err());
    }
    Ok(secs)
}

pub fn seconds(value: u64, allow_zero: bool, what: &str) -> Result<u64, String> {
    if value > MAX_SECS || (value == 0 && !allow_zero) {
        return Err(format!(
            "{what} must be {} to {MAX_SECS} seconds",
            u64::from(!allow_zero)
        ));
    }
    Ok(value)
}

pub fn metadata(value: Option<serde_json::Value>) -> Result<serde_json::Value, String> {
    let value = value.unwrap_or_else(|| serde_json::json!({}));
    if !value.is_object() {
        return Err("metadata must be a JSON object".into());
    }
    if value.to_string().len() > MAX_METADATA_BYTES {
        return Err(format!(
            "metadata must be at most {MAX_METADATA_BYTES} bytes of JSON"
        ));
    }
    crate::ip_allow::from_metadata(&value)?;
    Ok(value)
}

pub fn rate_limit(limit: store::keys::RateLimit) -> Result<store::keys::RateLimit, String> {
    if !(1..=1_000_000).contains(&limit.per_sec) || !(1..=1_000_000).contains(&limit.burst) {
        return Err("rate_limit per_sec and burst must be 1 to 1000000".into());
    }
    Ok(limit)
}

/// The 32 key bytes of a PEM `PUBLIC KEY` holding an Ed25519 key (what `openssl pkey -pubout`
/// writes); see [`httpsig::pem::ed25519_public_key_from_pem`].
pub fn ed25519_public_key_pem(pem: &str) -> Result<Vec<u8>, String> {
    httpsig::pem::ed25519_public_key_from_pem(pem).map(|k| k.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("90d", Some(90 * 86_400)),
            ("12h", Some(43_200)),
            ("30m", Some(1800)),
            ("45s", Some(45)),
            ("3600", Some(3600)),
            ("2w", Some(14 * 86_400)),
            ("0", None),
            ("-5s", None),
            ("5y", None),
            ("", None),
            ("99999d", None),
            ("1.5h", None),
        ];
        for (text, want) in cases {
            assert_eq!(duration_secs(text, false).ok(), want, "{text}");
        }
        assert_eq!(duration_secs("0", true), Ok(0));
    }

    #[test]
    fn ed25519_pem() {
        // RFC 8410 §10.1 example public key.
        let pem = "-----BEGIN PUBLIC KEY-----\n\
                   MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
                   -----END PUBLIC KEY-----\n";
        let key = ed25519_public_key_pem(pem).unwrap();
        assert_eq!(key.len(), 32);
        assert_eq!(key[0], 0x19);
        assert!(
            ed25519_public_key_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
                .is_err()
        );
        assert!(ed25519_public_key_pem("ssh-ed25519 AAAA").is_err());
    }

    #[test]
    fn names_principals_metadata() {
        assert!(name("  ").is_err());
        assert!(name("bot\u{7}").is_err());
        assert_eq!(name(" ok ").unwrap(), "ok");
        assert!(principal("acme corp").is_err());
        assert_eq!(principal_from_name("acme corp"), "acme-corp");
        assert!(metadata(Some(serde_json::json!([1]))).is_err());
        assert!(metadata(Some(serde_json::json!({"a": "x".repeat(5000)}))).is_err());
    }
}
