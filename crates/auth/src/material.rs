//! [`KeyMaterial`]: what verifies one key's signatures (an HMAC secret opened once from its
//! sealed form and zeroized on drop, or an Ed25519 public key).

use crate::envelope::KeyRing;
use std::fmt;
use std::sync::OnceLock;
use store::keys::{KeyKind, KeyRecord, SealedSecret};
use zeroize::Zeroizing;

/// The verification material of one key.
pub(crate) struct KeyMaterial {
    sealed: Option<SealedSecret>,
    hmac: OnceLock<Zeroizing<Vec<u8>>>,
    pub(crate) ed25519: Option<Vec<u8>>,
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial(REDACTED)")
    }
}

impl KeyMaterial {
    pub(crate) fn of(record: &KeyRecord) -> Self {
        Self {
            sealed: (record.kind == KeyKind::Hmac)
                .then(|| record.sealed.clone())
                .flatten(),
            hmac: OnceLock::new(),
            ed25519: (record.kind == KeyKind::Ed25519)
                .then(|| record.public_key.clone())
                .flatten(),
        }
    }

    pub(crate) fn hmac_secret(&self, key_id: &str, ring: &KeyRing) -> Option<&[u8]> {
        if let Some(secret) = self.hmac.get() {
            return Some(secret);
        }
        let opened = ring.open(key_id, self.sealed.as_ref()?).ok()?;
        Some(self.hmac.get_or_init(|| opened))
    }
}
