//! Everything that can go wrong in the SDK, each with a stable code.

use protocol::{ErrorBody, ErrorCode};

/// An SDK error. [`code`](Self::code) is stable and machine-readable; for errors the gateway
/// reported it is the gateway's own code (see `protocol::ErrorCode`).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid URL {0:?}: expected http://, https://, ws:// or wss:// followed by host:port")]
    InvalidUrl(String),
    #[error("invalid URL list: no gateway URL given")]
    NoUrl,
    #[error("invalid option {0}")]
    InvalidOption(String),
    #[error("invalid credentials: {0}")]
    InvalidCredentials(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A signed request could not be signed (no randomness for its nonce).
    #[error("cannot sign the request: {0}")]
    Sign(String),
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The gateway answered with an error (WebSocket `error` message or REST error body).
    #[error("gateway error {code}: {message}")]
    Api {
        code: ErrorCode,
        message: String,
        /// HTTP status for REST calls.
        status: Option<u16>,
        /// The channel the error is about, if any.
        channel: Option<String>,
    },
    #[error("HTTP request failed: {0}")]
    Http(#[source] reqwest::Error),
    #[error("unreadable response: {0}")]
    Decode(String),
    /// The connection dropped before the request was answered; the client is reconnecting.
    #[error("not connected (reconnecting); retry")]
    Disconnected,
    /// The client was closed, or gave up reconnecting.
    #[error("client closed")]
    Closed,
}

impl ClientError {
    pub(crate) fn api(body: ErrorBody, status: Option<u16>) -> Self {
        Self::Api {
            code: body.code,
            message: body.message,
            status,
            channel: body.channel,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &str {
        match self {
            Self::InvalidUrl(_) | Self::NoUrl => "invalid_url",
            Self::InvalidOption(_) => "invalid_option",
            Self::InvalidCredentials(_) => "invalid_credentials",
            Self::InvalidArgument(_) => "invalid_argument",
            Self::Sign(_) => "sign_failed",
            Self::Connect { .. } => "connect_failed",
            Self::Timeout(_) => "timeout",
            Self::Api { code, .. } => code.as_str(),
            Self::Http(_) => "http_failed",
            Self::Decode(_) => "decode_failed",
            Self::Disconnected => "disconnected",
            Self::Closed => "closed",
        }
    }

    /// Whether the same call may succeed if retried later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout(_) | Self::Http(_) | Self::Disconnected => true,
            Self::Api { code, .. } => matches!(
                code,
                ErrorCode::RateLimited
                    | ErrorCode::Unavailable
                    | ErrorCode::BookUnavailable
                    | ErrorCode::Internal
            ),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_retryability() {
        let cases = [
            (ClientError::Disconnected, "disconnected", true),
            (ClientError::Closed, "closed", false),
            (ClientError::InvalidUrl("x".into()), "invalid_url", false),
            (
                ClientError::api(
                    ErrorBody {
                        code: ErrorCode::RateLimited,
                        message: "slow down".into(),
                        id: None,
                        channel: None,
                    },
                    Some(429),
                ),
                "rate_limited",
                true,
            ),
            (
                ClientError::api(
                    ErrorBody {
                        code: ErrorCode::UnknownChannel,
                        message: "no".into(),
                        id: None,
                        channel: Some("book:x:A-B".into()),
                    },
                    None,
                ),
                "unknown_channel",
                false,
            ),
        ];
        for (error, code, retry) in cases {
            assert_eq!(
                (error.code(), error.is_retryable()),
                (code, retry),
                "{error}"
            );
        }
    }
}
