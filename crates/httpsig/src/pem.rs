//! Ed25519 keys as PEM files, parsed and written by hand: the DER of an RFC 8410 key is a
//! fixed prefix followed by the 32 key bytes, so no ASN.1 crate is needed.
//!
//! - Private keys: PKCS#8 `PRIVATE KEY` (48 bytes of DER), what `openssl genpkey -algorithm
//!   ed25519` writes.
//! - Public keys: SubjectPublicKeyInfo `PUBLIC KEY` (44 bytes of DER), what `openssl pkey
//!   -pubout` writes and what the gateway registers.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// DER of a PKCS#8 v1 Ed25519 private key (RFC 8410 §7) before the 32-byte seed:
/// `SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }`.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// DER of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4) before the 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

const PRIVATE_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PRIVATE_END: &str = "-----END PRIVATE KEY-----";

/// Why a private key PEM was refused. Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error(
        "not a PEM private key: expected \"-----BEGIN PRIVATE KEY-----\" (PKCS#8, as written \
         by `openssl genpkey -algorithm ed25519`)"
    )]
    NotPem,
    #[error(
        "an encrypted private key: decrypt it first (`openssl pkey -in KEY.pem -out PLAIN.pem`)"
    )]
    Encrypted,
    #[error("the PEM body is not valid base64")]
    Base64,
    #[error(
        "not an Ed25519 PKCS#8 private key: expected 48 bytes of DER for algorithm 1.3.101.112 \
         (got {0} bytes; RSA, EC and PKCS#8 v2 keys with an embedded public key are not accepted)"
    )]
    NotEd25519(usize),
}

/// The 32-byte seed of an Ed25519 private key in PKCS#8 PEM.
pub fn ed25519_seed_from_pem(pem: &str) -> Result<Zeroizing<[u8; 32]>, PemError> {
    let pem = pem.trim();
    if pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(PemError::Encrypted);
    }
    let body = pem
        .strip_prefix(PRIVATE_BEGIN)
        .and_then(|rest| rest.strip_suffix(PRIVATE_END))
        .ok_or(PemError::NotPem)?;
    let b64: Zeroizing<String> =
        Zeroizing::new(body.chars().filter(|c| !c.is_whitespace()).collect());
    let der = Zeroizing::new(
        STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| PemError::Base64)?,
    );
    match der.strip_prefix(&PKCS8_PREFIX[..]) {
        Some(seed) if seed.len() == 32 => {
            let mut out = Zeroizing::new([0u8; 32]);
            out.copy_from_slice(seed);
            Ok(out)
        }
        _ => Err(PemError::NotEd25519(der.len())),
    }
}

/// `seed` as a PKCS#8 PEM private key (the format [`ed25519_seed_from_pem`] and openssl read).
pub fn ed25519_seed_to_pem(seed: &[u8; 32]) -> Zeroizing<String> {
    let mut der = Zeroizing::new(Vec::with_capacity(48));
    der.extend_from_slice(&PKCS8_PREFIX);
    der.extend_from_slice(seed);
    let b64 = Zeroizing::new(STANDARD.encode(der.as_slice()));
    Zeroizing::new(format!(
        "{PRIVATE_BEGIN}\n{}\n{PRIVATE_END}\n",
        b64.as_str()
    ))
}

/// The public key of `seed` as a PEM `PUBLIC KEY` (what `tickgate keys create --type ed25519
/// --public-key` registers).
pub fn ed25519_public_pem(seed: &[u8; 32]) -> String {
    let public = ed25519_dalek::SigningKey::from_bytes(seed).verifying_key();
    let mut der = SPKI_PREFIX.to_vec();
    der.extend_from_slice(public.as_bytes());
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(der)
    )
}

/// The 32 key bytes of a PEM `PUBLIC KEY` holding an Ed25519 key (what `openssl pkey -pubout`
/// writes). Curve-point validation happens when signatures are verified (strict verification).
pub fn ed25519_public_key_from_pem(pem: &str) -> Result<[u8; 32], String> {
    const BAD: &str = "public key must be a PEM \"PUBLIC KEY\" holding an Ed25519 key \
                       (e.g. from `openssl pkey -in key.pem -pubout`)";
    let pem = pem.trim();
    let body = pem
        .strip_prefix("-----BEGIN PUBLIC KEY-----")
        .and_then(|rest| rest.strip_suffix("-----END PUBLIC KEY-----"))
        .ok_or(BAD)?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD.decode(b64).map_err(|_| BAD.to_string())?;
    match der.strip_prefix(&SPKI_PREFIX[..]) {
        Some(key) if key.len() == 32 && key.iter().any(|b| *b != 0) => {
            let mut out = [0u8; 32];
            out.copy_from_slice(key);
            Ok(out)
        }
        _ => Err(BAD.into()),
    }
}

/// A fresh random Ed25519 seed from the operating system.
pub fn random_ed25519_seed() -> Result<Zeroizing<[u8; 32]>, getrandom::Error> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut())?;
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8410 §10.3: the example private key and (§10.1) its public key.
    const RFC_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
        -----END PRIVATE KEY-----\n";
    const RFC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\n\
        MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
        -----END PUBLIC KEY-----\n";

    #[test]
    fn rfc_8410_private_key_parses_and_derives_its_public_key() {
        let seed = ed25519_seed_from_pem(RFC_PRIVATE).unwrap();
        assert_eq!(seed[0], 0xd4);
        assert_eq!(ed25519_public_pem(&seed), RFC_PUBLIC);
        assert_eq!(ed25519_seed_to_pem(&seed).as_str(), RFC_PRIVATE);
    }

    /// A key from `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` of it.
    #[test]
    fn openssl_keys_parse() {
        let private = "-----BEGIN PRIVATE KEY-----\n\
            MC4CAQAwBQYDK2VwBCIEICCJE61AII6s5zsRZdZP23SFNv8ht0o6xdc8jOMMvf06\n\
            -----END PRIVATE KEY-----\n";
        let public = "-----BEGIN PUBLIC KEY-----\n\
            MCowBQYDK2VwAyEA1NhrZ973ILDoTvW129Jb7v6Qydh5ad26mTS9KIogt14=\n\
            -----END PUBLIC KEY-----\n";
        let seed = ed25519_seed_from_pem(private).unwrap();
        assert_eq!(ed25519_public_pem(&seed), public);
        let key = ed25519_public_key_from_pem(public).unwrap();
        let derived = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        assert_eq!(&key, derived.as_bytes());
        assert!(ed25519_public_key_from_pem(private).is_err());
        assert!(ed25519_public_key_from_pem("ssh-ed25519 AAAA").is_err());
    }

    #[test]
    fn generated_keys_round_trip() {
        let seed = random_ed25519_seed().unwrap();
        let pem = ed25519_seed_to_pem(&seed);
        assert_eq!(*ed25519_seed_from_pem(&pem).unwrap(), *seed);
        assert_ne!(*random_ed25519_seed().unwrap(), *seed);
    }

    #[test]
    fn bad_private_keys_are_refused_with_a_reason() {
        // A P-256 key (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`).
        let ec = "-----BEGIN PRIVATE KEY-----\n\
            MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg+SNYicCtWqAIOXcg\n\
            OuwsQdRE63HoLHFRdhSIn90P6UuhRANCAATAnvBJATs1eHfwDzHCk0zfYDhqnsWD\n\
            l6n04b1uGd5jPGKne4JmJuJwjIWli3HxKbknW8BjIM8HllBLuwifqqn8\n\
            -----END PRIVATE KEY-----";
        let truncated = "-----BEGIN PRIVATE KEY-----\n\
            MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU\n\
            -----END PRIVATE KEY-----";
        let cases: [(&str, PemError); 7] = [
            ("", PemError::NotPem),
            (RFC_PUBLIC, PemError::NotPem),
            ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", PemError::NotPem),
            (
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----",
                PemError::Encrypted,
            ),
            (
                "-----BEGIN PRIVATE KEY-----\n!!not base64!!\n-----END PRIVATE KEY-----",
                PemError::Base64,
            ),
            (truncated, PemError::NotEd25519(39)),
            (ec, PemError::NotEd25519(138)),
        ];
        for (pem, want) in cases {
            let got = ed25519_seed_from_pem(pem).unwrap_err();
            assert_eq!(got, want, "{pem}");
        }
        assert!(PemError::NotPem.to_string().contains("openssl genpkey"));
    }
}
