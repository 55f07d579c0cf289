//! [`Rejection`]: why an authentication failed, as every credential path reports it.

use protocol::ErrorCode;
use std::time::Duration;

/// A rejected authentication: the stable code, a message safe to send (never the credential),
/// and for `rate_limited` how long to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after: Option<Duration>,
    /// The key the rejected request named, when it names one that exists (for per-key
    /// rejection counts; never a token or secret).
    pub key_id: Option<String>,
    /// The request proved it holds the key (the token matched, or the signature verified):
    /// only such failures may count against the key (`anomaly`); anyone can send a request
    /// naming a key id with a bad signature.
    pub proven: bool,
}

impl Rejection {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
            key_id: None,
            proven: false,
        }
    }
}
