//! Errors of the EVM source, each with a stable code (logs, metrics and `status` details).

/// What went wrong talking to a node or following its chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvmError {
    /// The node's answer is not the JSON-RPC the method promises (not JSON, a missing or
    /// mistyped field, bad hex). The text names the field.
    #[error("malformed RPC answer: {0}")]
    Malformed(String),
    /// The node answered with a JSON-RPC error object.
    #[error("RPC error {code} from {method}: {message}")]
    Rpc {
        method: &'static str,
        code: i64,
        message: String,
    },
    /// A well-formed answer that does not fit the conversation (an id never sent, a
    /// notification for an unknown subscription, a chain id other than the configured one).
    #[error("unexpected RPC answer: {0}")]
    Unexpected(String),
    /// The chain contradicts itself (a header whose number does not follow its parent's, a
    /// log whose block number differs from its block's).
    #[error("inconsistent chain data: {0}")]
    Inconsistent(String),
    /// The connection failed or closed, or an HTTP request failed.
    #[error("RPC transport: {0}")]
    Transport(String),
    /// No answer in time.
    #[error("RPC timeout: {0}")]
    Timeout(String),
}

impl EvmError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "rpc_malformed",
            Self::Rpc { .. } => "rpc_error",
            Self::Unexpected(_) => "rpc_unexpected",
            Self::Inconsistent(_) => "chain_inconsistent",
            Self::Transport(_) => "rpc_transport",
            Self::Timeout(_) => "rpc_timeout",
        }
    }

    pub(crate) fn malformed(what: &str, detail: impl std::fmt::Display) -> Self {
        let detail = detail.to_string();
        let detail: String = detail.chars().take(200).collect();
        Self::Malformed(format!("{what}: {detail}"))
    }
}
