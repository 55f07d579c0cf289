//! TOTP (RFC 6238) for critical admin operations: an admin principal enrolls a shared secret
//! (shown once as an `otpauth://` URI, stored sealed under the master key), and from then on
//! revocations, suspensions, master-key rewraps, scope and allow-list changes and deletions of
//! alert endpoints need a current code in `TOTP-Code` (covered by the request's signature:
//! see `server::auth::admin`).
//!
//! - Codes are HOTP (RFC 4226: HMAC over the big-endian step, dynamic truncation) of the step
//!   `floor(unix_time / period)`, with HMAC-SHA-1, -SHA-256 or -SHA-512.
//! - A code is accepted for the current step and one step either side (clock skew), and each
//!   step at most once per principal: the store keeps the last step used and moves it forward
//!   atomically, so a code seen on the wire (or typed twice) is refused.
//! - Time is a parameter everywhere (the tests run the RFC's vectors at their fixed times).

use crate::envelope::EnvelopeError;
use crate::secret::SecretString;
use crate::service::{KeyService, ServiceError, event, invalid};
use hmac::{KeyInit, Mac};
use protocol::ErrorCode;
use store::security::TotpEnrollment;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The HMAC hash of a TOTP secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl TotpAlgorithm {
    /// The name in `otpauth://` URIs (and in the store).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    /// The secret size the RFC's reference uses: the hash's output size.
    fn secret_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }
}

impl std::str::FromStr for TotpAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "SHA1" => Ok(Self::Sha1),
            "SHA256" => Ok(Self::Sha256),
            "SHA512" => Ok(Self::Sha512),
            _ => Err("algorithm: expected one of sha1, sha256, sha512".into()),
        }
    }
}

/// HOTP (RFC 4226 §5.3) of `counter` with `digits` digits (6 to 8).
pub fn hotp(algorithm: TotpAlgorithm, secret: &[u8], counter: u64, digits: u32) -> u32 {
    fn mac<M: Mac + KeyInit>(secret: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut m = <M as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    }
    let msg = counter.to_be_bytes();
    let hash = Zeroizing::new(match algorithm {
        TotpAlgorithm::Sha1 => mac::<hmac::Hmac<sha1::Sha1>>(secret, &msg),
        TotpAlgorithm::Sha256 => mac::<hmac::Hmac<sha2::Sha256>>(secret, &msg),
        TotpAlgorithm::Sha512 => mac::<hmac::Hmac<sha2::Sha512>>(secret, &msg),
    });
    let offset = usize::from(hash[hash.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        hash[offset] & 0x7f,
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ]);
    binary % 10u32.pow(digits)
}

/// The TOTP step of `unix_secs`.
pub fn step(unix_secs: i64, period: u32) -> u64 {
    u64::try_from(unix_secs.max(0)).unwrap_or(0) / u64::from(period.max(1))
}

/// The code (zero-padded to `digits`) at `unix_secs`.
pub fn code_at(
    algorithm: TotpAlgorithm,
    secret: &[u8],
    unix_secs: i64,
    period: u32,
    digits: u32,
) -> String {
    let value = hotp(algorithm, secret, step(unix_secs, period), digits);
    format!("{value:0width$}", width = digits as usize)
}

/// The step `code` is valid for at `unix_secs` (the current step, or one either side), if any.
/// The candidates are compared in constant time and all of them are computed.
pub fn matching_step(
    algorithm: TotpAlgorithm,
    secret: &[u8],
    code: &str,
    unix_secs: i64,
    period: u32,
    digits: u32,
) -> Option<u64> {
    if code.len() != digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step(unix_secs, period);
    let mut found = None;
    // Latest first, so that of two matching steps (impossible in practice) the later is used.
    for candidate in [now + 1, now, now.saturating_sub(1)] {
        let expected = format!(
            "{:0width$}",
            hotp(algorithm, secret, candidate, digits),
            width = digits as usize
        );
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && found.is_none() {
            found = Some(candidate);
        }
    }
    found
}

/// Decodes RFC 4648 base32 (upper case, padding optional): `None` for any other character.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// The secret of an `otpauth://totp/...?secret=...` URI, as an authenticator app reads it.
pub fn secret_from_uri(uri: &str) -> Option<Vec<u8>> {
    let query = uri.split_once('?')?.1;
    let b32 = query.split('&').find_map(|p| p.strip_prefix("secret="))?;
    base32_decode(b32)
}

/// RFC 4648 base32 without padding (what authenticator apps read).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Percent-encodes a URI label part (unreserved characters kept).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The `otpauth://totp/...` URI of an enrollment (Key Uri Format).
pub fn otpauth_uri(
    issuer: &str,
    account: &str,
    secret: &[u8],
    algorithm: TotpAlgorithm,
    digits: u32,
    period: u32,
) -> SecretString {
    SecretString::new(format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm={}&digits={digits}&period={period}",
        encode(issuer),
        encode(account),
        base32(secret),
        encode(issuer),
        algorithm.name()
    ))
}

/// Digits and period of new enrollments.
pub const DIGITS: u32 = 6;
pub const PERIOD: u32 = 30;

/// What [`KeyService::totp_check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpCheck {
    /// The principal has no enrollment: nothing to check.
    NotEnrolled,
    /// A valid code, now used.
    Passed,
}

/// The associated data binding a sealed TOTP secret to its principal.
pub(crate) fn seal_id(principal: &str) -> String {
    format!("totp:{principal}")
}

impl KeyService {
    /// Enrolls the principal of key `key_id` (which must hold `keys:admin`): a new random
    /// secret sealed under the master key. Returns the enrollment and its `otpauth://` URI,
    /// which holds the secret (show it once). Re-enrolling an enrolled principal needs
    /// `replace` (the admin API asks for a current code first).
    pub fn totp_enroll(
        &self,
        key_id: &str,
        algorithm: TotpAlgorithm,
        replace: bool,
        actor: &str,
        now: i64,
    ) -> Result<(TotpEnrollment, SecretString), ServiceError> {
        let key = self.get(key_id)?;
        if !key.scopes.iter().any(|s| s == "keys:admin") {
            return Err(invalid(format!(
                "key {key_id} lacks keys:admin: only admin principals enroll in TOTP"
            )));
        }
        if !replace && self.store().totp_get(&key.principal)?.is_some() {
            return Err(ServiceError::Conflict(format!(
                "principal {} is already enrolled in TOTP; re-enrolling replaces the secret \
                 (--replace, or the admin API with a current TOTP-Code)",
                key.principal
            )));
        }
        let mut secret = Zeroizing::new(vec![0u8; algorithm.secret_len()]);
        getrandom::fill(&mut secret)
            .map_err(|e| ServiceError::Envelope(EnvelopeError::Random(e)))?;
        let sealed = self.ring().seal(&seal_id(&key.principal), &secret)?;
        let enrollment = TotpEnrollment {
            principal: key.principal.clone(),
            sealed,
            algorithm: algorithm.name().into(),
            digits: DIGITS,
            period: PERIOD,
            last_step: 0,
            created_at: now,
            created_by: actor.into(),
        };
        let audit = event(
            now,
            actor,
            "totp.enrolled",
            key_id,
            serde_json::json!({
                "principal": key.principal, "algorithm": algorithm.name(),
                "digits": DIGITS, "period": PERIOD, "replaced": replace,
            }),
        );
        self.store().totp_put(&enrollment, &[audit])?;
        let uri = otpauth_uri(
            "tickgate",
            &key.principal,
            &secret,
            algorithm,
            DIGITS,
            PERIOD,
        );
        Ok((enrollment, uri))
    }

    /// Checks the second factor of `principal` for `operation` at `now` (µs): nothing to do
    /// when it is not enrolled; otherwise `code` must be a current, unused code, and it is
    /// used up. Refusals (`totp_required`, `totp_invalid`) are audited as `admin.totp_refused`.
    pub fn totp_check(
        &self,
        principal: &str,
        key_id: &str,
        code: Option<&str>,
        operation: &str,
        actor: &str,
        now: i64,
    ) -> Result<TotpCheck, ServiceError> {
        let Some(enrollment) = self.store().totp_get(principal)? else {
            return Ok(TotpCheck::NotEnrolled);
        };
        let refuse = |code: ErrorCode, message: String| -> Result<TotpCheck, ServiceError> {
            let audit = event(
                now,
                actor,
                "admin.totp_refused",
                key_id,
                serde_json::json!({"code": code.as_str(), "operation": operation}),
            );
            self.audit().append(&[audit])?;
            Err(ServiceError::Refused(code, message))
        };
        let Some(code) = code else {
            return refuse(
                ErrorCode::TotpRequired,
                format!(
                    "{operation} needs a TOTP code: send it in TOTP-Code and cover totp-code \
                     with the request's signature"
                ),
            );
        };
        let algorithm: TotpAlgorithm = enrollment.algorithm.parse().map_err(invalid)?;
        let secret = self.ring().open(&seal_id(principal), &enrollment.sealed)?;
        let unix = now.div_euclid(1_000_000);
        let Some(step) = matching_step(
            algorithm,
            &secret,
            code,
            unix,
            enrollment.period,
            enrollment.digits,
        ) else {
            return refuse(
                ErrorCode::TotpInvalid,
                "the TOTP code is not a current code".into(),
            );
        };
        let used = event(
            now,
            actor,
            "admin.totp_used",
            key_id,
            serde_json::json!({"operation": operation, "step": step}),
        );
        if !self.store().totp_use_step(principal, step, &[used])? {
            return refuse(
                ErrorCode::TotpInvalid,
                "this TOTP code was used already; wait for the next one".into(),
            );
        }
        Ok(TotpCheck::Passed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1_SEED: &[u8] = b"12345678901234567890";
    const SHA256_SEED: &[u8] = b"12345678901234567890123456789012";
    const SHA512_SEED: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    /// RFC 6238 Appendix B: (time, SHA-1, SHA-256, SHA-512), 8 digits, 30 s steps.
    const VECTORS: &[(i64, &str, &str, &str)] = &[
        (59, "94287082", "46119246", "90693936"),
        (1_111_111_109, "07081804", "68084774", "25091201"),
        (1_111_111_111, "14050471", "67062674", "99943326"),
        (1_234_567_890, "89005924", "91819424", "93441116"),
        (2_000_000_000, "69279037", "90698825", "38618901"),
        (20_000_000_000, "65353130", "77737706", "47863826"),
    ];

    #[test]
    fn rfc_6238_appendix_b_vectors() {
        for &(t, sha1, sha256, sha512) in VECTORS {
            assert_eq!(
                code_at(TotpAlgorithm::Sha1, SHA1_SEED, t, 30, 8),
                sha1,
                "t={t}"
            );
            assert_eq!(
                code_at(TotpAlgorithm::Sha256, SHA256_SEED, t, 30, 8),
                sha256,
                "t={t}"
            );
            assert_eq!(
                code_at(TotpAlgorithm::Sha512, SHA512_SEED, t, 30, 8),
                sha512,
                "t={t}"
            );
        }
    }

    #[test]
    fn a_code_matches_its_step_and_one_either_side_only() {
        let t = 1_111_111_111;
        let code = code_at(TotpAlgorithm::Sha1, SHA1_SEED, t, 30, 8);
        let s = step(t, 30);
        assert_eq!(
            matching_step(TotpAlgorithm::Sha1, SHA1_SEED, &code, t, 30, 8),
            Some(s)
        );
        assert_eq!(
            matching_step(TotpAlgorithm::Sha1, SHA1_SEED, &code, t + 30, 30, 8),
            Some(s)
        );
        assert_eq!(
            matching_step(TotpAlgorithm::Sha1, SHA1_SEED, &code, t - 30, 30, 8),
            Some(s)
        );
        assert_eq!(
            matching_step(TotpAlgorithm::Sha1, SHA1_SEED, &code, t + 60, 30, 8),
            None
        );
        assert_eq!(
            matching_step(TotpAlgorithm::Sha1, SHA1_SEED, &code, t - 60, 30, 8),
            None
        );
        for bad in ["", "1234567", "123456789", "1405047a", "١٤٠٥٠٤٧١"] {
            assert_eq!(
                matching_step(TotpAlgorithm::Sha1, SHA1_SEED, bad, t, 30, 8),
                None
            );
        }
    }

    #[test]
    fn base32_matches_rfc_4648() {
        // RFC 4648 §10 (padding removed).
        for (input, expected) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(input.as_bytes()), expected);
            assert_eq!(base32_decode(expected).unwrap(), input.as_bytes());
        }
        assert_eq!(base32_decode("MZXW6===").unwrap(), b"foo");
        assert_eq!(base32_decode("mzxw6"), None);
        assert_eq!(base32_decode("MZ1W6"), None);
        assert_eq!(
            secret_from_uri("otpauth://totp/tickgate:ops?secret=MZXW6YQ&digits=6").unwrap(),
            b"foob"
        );
        assert_eq!(
            secret_from_uri("otpauth://totp/tickgate:ops?digits=6"),
            None
        );
    }

    #[test]
    fn the_uri_names_the_parameters() {
        let uri = otpauth_uri("tickgate", "ops team", b"12345", TotpAlgorithm::Sha1, 6, 30);
        assert_eq!(
            uri.expose(),
            "otpauth://totp/tickgate:ops%20team?secret=GEZDGNBV&issuer=tickgate&algorithm=SHA1&digits=6&period=30"
        );
    }
}
