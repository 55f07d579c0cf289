//! [`AlertError`]: why an alert operation failed, each with a stable code.

use auth::envelope::EnvelopeError;
use protocol::ErrorCode;
use store::StoreError;

/// Why an alert operation failed. Messages are safe to send to the caller: none contains a
/// secret (webhook URLs are shown without their query, which may carry a token).
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("{0}")]
    InvalidRule(String),
    #[error("{0}")]
    BadThreshold(String),
    #[error("{0}")]
    InvalidChannel(String),
    #[error("{0}")]
    UnknownChannel(String),
    #[error("at most {0} rules per principal")]
    TooManyRules(u64),
    #[error("no rule {0}")]
    UnknownRule(String),
    #[error("no webhook endpoint {0}")]
    UnknownEndpoint(String),
    #[error("at most {0} webhook endpoints per principal")]
    TooManyEndpoints(u64),
    #[error("no delivery {0}")]
    UnknownDelivery(String),
    #[error("{0}")]
    InvalidUrl(String),
    #[error("{0}")]
    AddressRefused(String),
    #[error("{0}")]
    UnresolvableHost(String),
    /// Malformed input that is not a rule (a bad id, an empty patch).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("store: {0}")]
    Store(#[source] StoreError),
}

impl From<StoreError> for AlertError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Self::Conflict(m),
            other => Self::Store(other),
        }
    }
}

impl AlertError {
    /// The stable code sent to the caller.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidRule(_) => ErrorCode::InvalidRule,
            Self::BadThreshold(_) => ErrorCode::BadThreshold,
            Self::InvalidChannel(_) => ErrorCode::InvalidChannel,
            Self::UnknownChannel(_) => ErrorCode::UnknownChannel,
            Self::TooManyRules(_) => ErrorCode::TooManyRules,
            Self::UnknownRule(_) => ErrorCode::UnknownRule,
            Self::UnknownEndpoint(_) => ErrorCode::UnknownEndpoint,
            Self::TooManyEndpoints(_) => ErrorCode::TooManyEndpoints,
            Self::UnknownDelivery(_) => ErrorCode::UnknownDelivery,
            Self::InvalidUrl(_) => ErrorCode::InvalidUrl,
            Self::AddressRefused(_) => ErrorCode::AddressRefused,
            Self::UnresolvableHost(_) => ErrorCode::UnresolvableHost,
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::Conflict(_) => ErrorCode::Conflict,
            // Like an hmac key: a webhook secret cannot be stored without a master key.
            Self::Envelope(EnvelopeError::NoMasterKey) => ErrorCode::BadRequest,
            // A shared store (PostgreSQL) that cannot be reached: retry later, like history.
            Self::Store(e) if e.is_unavailable() => ErrorCode::Unavailable,
            Self::Envelope(_) | Self::Store(_) => ErrorCode::Internal,
        }
    }

    /// Whether the store behind the operation is unreachable (`unavailable`, 503): logged,
    /// answered without its details.
    pub fn is_unavailable(&self) -> bool {
        self.code() == ErrorCode::Unavailable
    }

    /// Whether the caller can fix it (a 4xx) rather than the gateway (logged, `internal`).
    pub fn is_internal(&self) -> bool {
        self.code() == ErrorCode::Internal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_that_cannot_be_reached_is_unavailable_not_internal() {
        let cases = [
            (
                StoreError::Unavailable("connection refused".into()),
                ErrorCode::Unavailable,
            ),
            (StoreError::Corrupt("bad row".into()), ErrorCode::Internal),
            (StoreError::Conflict("rev".into()), ErrorCode::Conflict),
        ];
        for (error, code) in cases {
            assert_eq!(AlertError::from(error).code(), code);
        }
    }
}
