//! Envelope encryption of HMAC secrets at rest.
//!
//! Each secret is encrypted with XChaCha20-Poly1305 under its own random 256-bit data key
//! (DEK); the DEK is encrypted (wrapped) under the master key. Both use random 192-bit nonces
//! and bind the key id as associated data, so a sealed secret moved onto another key record
//! does not open. The store keeps `master_key_id`, the wrapped DEK and the ciphertext.
//!
//! Master key rotation: configure the new key as current and the old one as previous; every
//! secret still opens, and `tickgate keys rewrap` re-wraps each DEK under the current key
//! (the secret ciphertext is untouched). Then drop the old key from the configuration.
//!
//! The master key comes from `TICKGATE_MASTER_KEY` (64 hex digits) or a file holding the same,
//! readable by its owner only (mode 0600 or stricter on Unix).

use crate::secret::{SecretKey32, parse_hex32};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use store::keys::SealedSecret;
use zeroize::Zeroizing;

/// Environment variable holding the current master key.
pub const MASTER_KEY_ENV: &str = "TICKGATE_MASTER_KEY";
/// Environment variable holding previous master keys (comma-separated), still accepted for
/// decryption while `keys rewrap` moves everything to the current key.
pub const PREVIOUS_MASTER_KEYS_ENV: &str = "TICKGATE_MASTER_KEY_PREVIOUS";

/// Why a master key could not be loaded or a secret sealed or opened. No message contains key
/// material.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error(
        "no master key configured: set {MASTER_KEY_ENV} (64 hex digits) or [auth] master_key_file"
    )]
    NoMasterKey,
    #[error("{source_name}: {message}")]
    BadMasterKey {
        source_name: String,
        message: String,
    },
    #[error("the secret was sealed under master key {0}, which is not configured")]
    UnknownMasterKey(String),
    #[error("a sealed secret failed to decrypt (wrong master key, or the record was altered)")]
    Decrypt,
    #[error("the OS random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// A master key and its public id (a fingerprint; reveals nothing about the key).
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    key: SecretKey32,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({}, REDACTED)", self.id)
    }
}

impl MasterKey {
    pub fn new(key: SecretKey32) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"tickgate-master-key-id-v1");
        hasher.update(key.expose());
        let digest: [u8; 32] = hasher.finalize().into();
        let id = format!("mk_{}", store::audit::hex32::encode(&digest[..6]));
        Self { id, key }
    }

    pub fn random() -> Result<Self, EnvelopeError> {
        Ok(Self::new(
            SecretKey32::random().map_err(EnvelopeError::Random)?,
        ))
    }

    pub fn from_hex(text: &str, source_name: &str) -> Result<Self, EnvelopeError> {
        parse_hex32(text)
            .map(Self::new)
            .map_err(|message| EnvelopeError::BadMasterKey {
                source_name: source_name.into(),
                message: message.into(),
            })
    }

    /// Reads a key file, refusing one that others can read.
    pub fn from_file(path: &Path) -> Result<Self, EnvelopeError> {
        let name = path.display().to_string();
        let bad = |message: String| EnvelopeError::BadMasterKey {
            source_name: name.clone(),
            message,
        };
        let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        if !meta.is_file() {
            return Err(bad("not a regular file".into()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(bad(format!(
                    "permissions {mode:o} let others read the master key; run chmod 600"
                )));
            }
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?,
        );
        Self::from_hex(&text, &name)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// A key for another purpose, derived from this one: HMAC-SHA256(master key, `label`).
    /// Labels name the purpose and its version (`tickgate-ui-session-v1`), so a derived key
    /// reveals nothing about the master key or about keys derived for other labels. Every
    /// gateway sharing the master key derives the same key (cluster mode).
    pub fn derive(&self, label: &str) -> SecretKey32 {
        let mac = Zeroizing::new(crate::httpsig::sign_hmac_sha256(
            self.key.expose(),
            label.as_bytes(),
        ));
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&mac[..32]);
        SecretKey32::from_bytes(bytes)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.expose().into())
    }
}

/// The current master key (seals) and previous ones (still open).
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    current: Option<MasterKey>,
    previous: Vec<MasterKey>,
}

/// Where to find master keys.
#[derive(Debug, Clone, Default)]
pub struct MasterKeySources {
    pub file: Option<PathBuf>,
    pub previous_files: Vec<PathBuf>,
}

impl KeyRing {
    pub fn new(current: Option<MasterKey>, previous: Vec<MasterKey>) -> Self {
        Self { current, previous }
    }

    /// Loads `TICKGATE_MASTER_KEY` (wins over the file), the configured file, and previous
    /// keys from `TICKGATE_MASTER_KEY_PREVIOUS` and the configured previous files.
    pub fn load(sources: &MasterKeySources) -> Result<Self, EnvelopeError> {
        let current = match std::env::var(MASTER_KEY_ENV).map(Zeroizing::new) {
            Ok(text) if !text.trim().is_empty() => {
                Some(MasterKey::from_hex(&text, MASTER_KEY_ENV)?)
            }
            _ => match &sources.file {
                Some(path) => Some(MasterKey::from_file(path)?),
                None => None,
            },
        };
        let mut previous = Vec::new();
        if let Ok(text) = std::env::var(PREVIOUS_MASTER_KEYS_ENV) {
            let text = Zeroizing::new(text);
            for part in text.split(',').filter(|p| !p.trim().is_empty()) {
                previous.push(MasterKey::from_hex(part, PREVIOUS_MASTER_KEYS_ENV)?);
            }
        }
        for path in &sources.previous_files {
            previous.push(MasterKey::from_file(path)?);
        }
        Ok(Self::new(current, previous))
    }

    pub fn current(&self) -> Option<&MasterKey> {
        self.current.as_ref()
    }

    fn find(&self, id: &str) -> Option<&MasterKey> {
        self.current
            .iter()
            .chain(&self.previous)
            .find(|k| k.id == id)
    }

    /// Seals `secret` for the key record `key_id` under the current master key.
    pub fn seal(&self, key_id: &str, secret: &[u8]) -> Result<SealedSecret, EnvelopeError> {
        let master = self.current.as_ref().ok_or(EnvelopeError::NoMasterKey)?;
        let dek = SecretKey32::random().map_err(EnvelopeError::Random)?;
        let ciphertext = encrypt(
            &XChaCha20Poly1305::new(dek.expose().into()),
            secret,
            &aad("secret", key_id),
        )?;
        Ok(SealedSecret {
            master_key_id: master.id.clone(),
            wrapped_dek: encrypt(&master.cipher(), dek.expose(), &aad("dek", key_id))?,
            ciphertext,
        })
    }

    /// Opens a sealed secret of the key record `key_id`.
    pub fn open(
        &self,
        key_id: &str,
        sealed: &SealedSecret,
    ) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        let dek = self.unwrap_dek(key_id, sealed)?;
        decrypt(
            &XChaCha20Poly1305::new(dek.expose().into()),
            &sealed.ciphertext,
            &aad("secret", key_id),
        )
    }

    /// Re-wraps the data key under the current master key; `None` if it already is.
    pub fn rewrap(
        &self,
        key_id: &str,
        sealed: &SealedSecret,
    ) -> Result<Option<SealedSecret>, EnvelopeError> {
        let master = self.current.as_ref().ok_or(EnvelopeError::NoMasterKey)?;
        if sealed.master_key_id == master.id {
            return Ok(None);
        }
        let dek = self.unwrap_dek(key_id, sealed)?;
        Ok(Some(SealedSecret {
            master_key_id: master.id.clone(),
            wrapped_dek: encrypt(&master.cipher(), dek.expose(), &aad("dek", key_id))?,
            ciphertext: sealed.ciphertext.clone(),
        }))
    }

    fn unwrap_dek(
        &self,
        key_id: &str,
        sealed: &SealedSecret,
    ) -> Result<SecretKey32, EnvelopeError> {
        let master = self
            .find(&sealed.master_key_id)
            .ok_or_else(|| EnvelopeError::UnknownMasterKey(sealed.master_key_id.clone()))?;
        let bytes = decrypt(&master.cipher(), &sealed.wrapped_dek, &aad("dek", key_id))?;
        let array: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| EnvelopeError::Decrypt)?;
        Ok(SecretKey32::from_bytes(array))
    }
}

fn aad(what: &str, key_id: &str) -> Vec<u8> {
    format!("tickgate-{what}-v1:{key_id}").into_bytes()
}

/// `nonce ‖ ciphertext+tag`.
fn encrypt(cipher: &XChaCha20Poly1305, msg: &[u8], aad: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).map_err(EnvelopeError::Random)?;
    let ct = cipher
        .encrypt(&XNonce::from(nonce), Payload { msg, aad })
        .map_err(|_| EnvelopeError::Decrypt)?;
    let mut out = Vec::with_capacity(24 + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

fn decrypt(
    cipher: &XChaCha20Poly1305,
    data: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    if data.len() < 24 + 16 {
        return Err(EnvelopeError::Decrypt);
    }
    let (nonce, ct) = data.split_at(24);
    let nonce: [u8; 24] = nonce.try_into().map_err(|_| EnvelopeError::Decrypt)?;
    cipher
        .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad })
        .map(Zeroizing::new)
        .map_err(|_| EnvelopeError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_depend_on_the_master_key_and_the_label() {
        let a = MasterKey::from_hex(&"11".repeat(32), "test").unwrap();
        let b = MasterKey::from_hex(&"22".repeat(32), "test").unwrap();
        let again = MasterKey::from_hex(&"11".repeat(32), "test").unwrap();
        let x = a.derive("tickgate-ui-session-v1");
        assert_eq!(x.expose(), again.derive("tickgate-ui-session-v1").expose());
        assert_ne!(x.expose(), b.derive("tickgate-ui-session-v1").expose());
        assert_ne!(x.expose(), a.derive("tickgate-other-v1").expose());
        assert_ne!(x.expose(), &[0x11; 32]);
    }

    #[test]
    fn seal_open_rewrap() {
        let old = MasterKey::random().unwrap();
        let new = MasterKey::random().unwrap();
        let ring = KeyRing::new(Some(old.clone()), vec![]);
        let sealed = ring.seal("key_a", b"tg_test_secret").unwrap();
        assert_eq!(sealed.master_key_id, old.id());
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"secret"));
        assert_eq!(&*ring.open("key_a", &sealed).unwrap(), b"tg_test_secret");
        // Bound to its record.
        assert!(matches!(
            ring.open("key_b", &sealed),
            Err(EnvelopeError::Decrypt)
        ));
        // Any flipped bit fails.
        let mut altered = sealed.clone();
        altered.ciphertext[30] ^= 1;
        assert!(ring.open("key_a", &altered).is_err());
        // Rotation: new current, old previous; rewrap moves the DEK only.
        let rotated = KeyRing::new(Some(new.clone()), vec![old.clone()]);
        assert_eq!(&*rotated.open("key_a", &sealed).unwrap(), b"tg_test_secret");
        let rewrapped = rotated.rewrap("key_a", &sealed).unwrap().unwrap();
        assert_eq!(rewrapped.master_key_id, new.id());
        assert_eq!(rewrapped.ciphertext, sealed.ciphertext);
        assert!(rotated.rewrap("key_a", &rewrapped).unwrap().is_none());
        let only_new = KeyRing::new(Some(new), vec![]);
        assert_eq!(
            &*only_new.open("key_a", &rewrapped).unwrap(),
            b"tg_test_secret"
        );
        assert!(matches!(
            only_new.open("key_a", &sealed),
            Err(EnvelopeError::UnknownMasterKey(_))
        ));
        assert!(matches!(
            KeyRing::default().seal("k", b"x"),
            Err(EnvelopeError::NoMasterKey)
        ));
    }

    #[test]
    fn master_key_files_must_be_private() {
        let dir = std::env::temp_dir().join(format!("tickgate-mk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("master.key");
        let hex = "0f".repeat(32);
        std::fs::write(&path, format!("{hex}\n")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = MasterKey::from_file(&path).unwrap_err().to_string();
            assert!(err.contains("chmod 600"), "{err}");
            assert!(!err.contains(&hex));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let key = MasterKey::from_file(&path).unwrap();
        assert!(key.id().starts_with("mk_"));
        assert!(!format!("{key:?}").contains("0f0f"));
        std::fs::write(&path, "not hex").unwrap();
        let err = MasterKey::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("64 hex digits"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
