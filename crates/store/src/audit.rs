//! The [`AuditLog`] seam: an append-only, hash-chained log of security events.
//!
//! Entry `n` stores `hash = SHA-256(prev_hash ‖ encode(n, at, actor, action, key_id, detail))`
//! where `prev_hash` is entry `n-1`'s hash ([`GENESIS`] for entry 1) and `encode` prefixes each
//! field with its length (so no two different entries encode alike). Editing, inserting,
//! reordering or deleting a stored entry breaks the chain at that entry; [`verify_chain`] names
//! the first broken one. The log also keeps its head (last `seq` and hash) beside the entries,
//! updated in the same transaction, so cutting entries off the end is detected too.
//!
//! Guarantees of every backend: appends are serialized (concurrent writers, even in other
//! processes, never fork the chain); `seq` starts at 1 and has no holes; stored entries are
//! never updated or deleted by the store.

use crate::StoreError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// `prev_hash` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// An event to append. `detail` must not contain secret material.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEvent {
    /// µs since the epoch.
    pub at: i64,
    /// Who did it: `cli`, `admin:<key id>`, `system`.
    pub actor: String,
    /// Dotted action name, e.g. `key.created`, `key.revoked`.
    pub action: String,
    pub key_id: Option<String>,
    pub detail: serde_json::Value,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The detail as stored (JSON text): the hash covers these exact bytes.
    pub detail: String,
    #[serde(with = "hex32")]
    pub prev_hash: [u8; 32],
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
}

/// The chain hash of an entry.
pub fn entry_hash(
    prev_hash: &[u8; 32],
    seq: u64,
    at: i64,
    actor: &str,
    action: &str,
    key_id: Option<&str>,
    detail: &str,
) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"tickgate-audit-v1");
    hasher.update(prev_hash);
    hasher.update(seq.to_be_bytes());
    hasher.update(at.to_be_bytes());
    for field in [actor, action, key_id.unwrap_or("\u{0}"), detail] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hasher.finalize().into()
}

impl AuditEntry {
    /// Recomputes this entry's hash from its fields and `prev_hash`.
    pub fn computed_hash(&self) -> [u8; 32] {
        entry_hash(
            &self.prev_hash,
            self.seq,
            self.at,
            &self.actor,
            &self.action,
            self.key_id.as_deref(),
            &self.detail,
        )
    }
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreak {
    /// The first entry that does not verify (for a truncated log: the first missing `seq`).
    pub seq: u64,
    pub reason: String,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "audit entry {}: {}", self.seq, self.reason)
    }
}

/// Incremental chain verifier: feed entries in `seq` order, then [`ChainVerifier::finish`]
/// with the stored head.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    expected_seq: u64,
    prev: [u8; 32],
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            expected_seq: 1,
            prev: GENESIS,
        }
    }
}

impl ChainVerifier {
    pub fn push(&mut self, entry: &AuditEntry) -> Result<(), ChainBreak> {
        let fail = |reason: String| ChainBreak {
            seq: self.expected_seq,
            reason,
        };
        if entry.seq != self.expected_seq {
            return Err(fail(format!(
                "missing: the next stored entry is {} (entries deleted or reordered)",
                entry.seq
            )));
        }
        if entry.prev_hash != self.prev {
            return Err(fail(
                "prev_hash does not match the previous entry's hash (an entry before it was \
                 removed or replaced)"
                    .into(),
            ));
        }
        if entry.computed_hash() != entry.hash {
            return Err(fail(
                "content does not match its hash (the entry was edited)".into(),
            ));
        }
        self.prev = entry.hash;
        self.expected_seq += 1;
        Ok(())
    }

    /// Entries verified so far.
    pub fn verified(&self) -> u64 {
        self.expected_seq - 1
    }

    /// Checks the stored head against the last verified entry (detects a cut-off tail).
    pub fn finish(&self, head: Option<(u64, [u8; 32])>) -> Result<u64, ChainBreak> {
        let last = self.expected_seq - 1;
        match head {
            None if last == 0 => Ok(0),
            None => Err(ChainBreak {
                seq: 1,
                reason: "the log's head record is missing".into(),
            }),
            Some((seq, hash)) if seq == last && hash == self.prev => Ok(last),
            Some((seq, _)) if seq > last => Err(ChainBreak {
                seq: last + 1,
                reason: format!("missing: the head says the log has {seq} entries, found {last}"),
            }),
            Some((seq, _)) => Err(ChainBreak {
                seq: seq.max(1),
                reason: "the head record does not match the last entry".into(),
            }),
        }
    }
}

/// Verifies a whole chain read from `log` in pages; returns the number of entries.
pub fn verify_chain(log: &dyn AuditLog) -> Result<Result<u64, ChainBreak>, StoreError> {
    let mut verifier = ChainVerifier::default();
    let mut after = 0;
    loop {
        let page = log.read(after, 1000)?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for entry in &page {
            if let Err(broken) = verifier.push(entry) {
                return Ok(Err(broken));
            }
        }
    }
    Ok(verifier.finish(log.head()?))
}

/// The append-only audit log.
pub trait AuditLog: Send + Sync + fmt::Debug {
    /// Appends events in order, atomically, extending the chain; returns the stored entries.
    fn append(&self, events: &[NewAuditEvent]) -> Result<Vec<AuditEntry>, StoreError>;

    /// Entries with `seq > after`, oldest first, at most `limit`.
    fn read(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    /// The last entry's `seq` and hash as recorded beside the log, if any entry exists.
    fn head(&self) -> Result<Option<(u64, [u8; 32])>, StoreError>;
}

/// Lower-case hex for hashes in JSON.
pub mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn encode(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn decode(text: &str) -> Option<[u8; 32]> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(out)
    }

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        decode(&text).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}
