//! Why a snapshot or delta was rejected.

use crate::StaleReason;
use model::Decimal;

/// A rejected snapshot or delta. Every variant except [`NotLive`](Self::NotLive) is terminal:
/// the book is already `Stale` and must be rebuilt from a fresh snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    #[error("sequence gap: expected update {expected}, delta starts at {first}")]
    Gap { expected: u64, first: u64 },
    #[error("crossed book: best bid {bid} >= best ask {ask}")]
    Crossed { bid: Decimal, ask: Decimal },
    /// `expected` is the venue's value, `computed` the book's.
    #[error("checksum mismatch: venue sent {expected}, book computes {computed}")]
    ChecksumMismatch { expected: u32, computed: u32 },
    #[error("invalid level (price {price}, size {size}): {reason}")]
    InvalidLevel {
        price: Decimal,
        size: Decimal,
        reason: &'static str,
    },
    /// The book is awaiting a snapshot or stale; the caller is (or should be) resyncing.
    #[error("book is not live: waiting for a snapshot")]
    NotLive,
}

impl BookError {
    /// True when the book has gone stale and must be rebuilt from a fresh snapshot.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, Self::NotLive)
    }

    /// The state reason this error put the book in; `None` for [`NotLive`](Self::NotLive).
    pub fn stale_reason(&self) -> Option<StaleReason> {
        match self {
            Self::Gap { .. } => Some(StaleReason::Gap),
            Self::Crossed { .. } => Some(StaleReason::Crossed),
            Self::ChecksumMismatch { .. } => Some(StaleReason::ChecksumMismatch),
            Self::InvalidLevel { .. } => Some(StaleReason::InvalidLevel),
            Self::NotLive => None,
        }
    }

    /// Stable machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self.stale_reason() {
            Some(reason) => reason.as_str(),
            None => "not_live",
        }
    }
}
