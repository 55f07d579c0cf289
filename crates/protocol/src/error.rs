//! Stable error codes. A code, once published, keeps its meaning; new codes may be added.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Every machine-readable error code the gateway sends, on WebSocket `error` messages and in
/// REST error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The message was not valid JSON, or not a JSON object.
    BadJson,
    /// Valid JSON, but a field is missing or has the wrong type.
    BadRequest,
    /// `op` is missing or not one of the documented operations.
    UnknownOp,
    /// The channel name is malformed (wrong shape, kind, venue or symbol syntax).
    InvalidChannel,
    /// The channel name is well formed but the gateway does not serve it.
    UnknownChannel,
    /// Subscribing would exceed the per-connection channel limit.
    TooManyChannels,
    /// Too many requests in a short time; retry later.
    RateLimited,
    /// The inbound message exceeds the maximum size.
    MessageTooLarge,
    /// The client fell too far behind and was disconnected (close reason).
    SlowConsumer,
    /// A query parameter is missing or invalid (REST).
    BadParam,
    /// The venue/symbol pair is not served (REST).
    UnknownInstrument,
    /// The candle interval is not one of 1s, 1m, 5m, 15m, 1h, 1d.
    UnknownInterval,
    /// The requested book is being rebuilt after a gap; retry shortly.
    BookUnavailable,
    /// No such route (REST).
    NotFound,
    /// The route exists but not for this HTTP method (REST).
    MethodNotAllowed,
    /// The gateway cannot take this connection now (connection limit reached); retry later.
    Unavailable,
    /// Something failed inside the gateway (e.g. the history or key store); details are in its
    /// logs, not here.
    Internal,
    /// History: `from` or `to` is neither RFC 3339 nor epoch milliseconds.
    InvalidTime,
    /// History: `from` is not before `to`.
    InvalidRange,
    /// History: the venue/symbol pair is neither served nor in the store.
    UnknownSymbol,
    /// History: `limit` is not an integer within the documented bounds.
    LimitOutOfRange,
    /// History: the cursor is malformed or belongs to a different query.
    InvalidCursor,
    /// History: this kind of data is not stored for the instrument (`[history]` settings).
    NotStored,
    /// The route or operation needs an API key and none was presented.
    MissingCredentials,
    /// The presented key is not a well-formed tickgate key (wrong shape or checksum).
    MalformedKey,
    /// A well-formed key the gateway does not know.
    UnknownKey,
    /// The key was revoked.
    KeyRevoked,
    /// The key passed its expiry or the end of its rotation grace period.
    KeyExpired,
    /// The key lacks the scope this route or channel needs.
    InsufficientScope,
    /// A `tg_live_` key presented to a test deployment, or the reverse.
    WrongEnvironment,
    /// The key has an IP allow-list and the request came from another address.
    IpNotAllowed,
    /// The key is suspended (by an operator or the anomaly responder) until it is resumed.
    KeySuspended,
    /// The client's address is blocked for a while (the anomaly responder's `block_ip`).
    IpBlocked,
    /// A critical operation of a principal enrolled in TOTP came without a `TOTP-Code` header
    /// covered by the request's signature.
    TotpRequired,
    /// The `TOTP-Code` is not a current code of the principal, or was used already.
    TotpInvalid,
    /// The request conflicts with the resource's state (e.g. rotating a revoked key).
    Conflict,
    /// The key's type (`hmac`, `ed25519`) must sign: the request has no `Signature`/`Signature-Input`.
    SignatureMissing,
    /// The signature headers are malformed, or the signature does not verify.
    SignatureInvalid,
    /// The signature does not cover every required component.
    SignatureIncomplete,
    /// `Content-Digest` is missing, malformed, or does not match the body.
    DigestMismatch,
    /// The signature's `created` is older than the accepted window.
    TimestampStale,
    /// The signature's `created` is further in the future than the allowed clock skew.
    TimestampFuture,
    /// The signature's `expires` has passed.
    SignatureExpired,
    /// This key already used this nonce within the window (a replay).
    NonceReused,
    /// Monotonic mode: the nonce is not an integer greater than the last accepted one.
    NonceNotIncreasing,
    /// The signed `@authority` (the `Host`) is not one of `[auth] authorities`.
    WrongAuthority,
    /// The signature's algorithm does not match the key's type.
    WrongKeyType,
    /// The route's scope needs a signed request; a bearer token alone is refused.
    SignatureRequired,
    /// A single-use WebSocket token presented a second time.
    TokenUsed,
    /// A single-use WebSocket token presented after its expiry.
    TokenExpired,
    /// The dashboard's session cookie is missing where a session is needed, malformed, not
    /// signed by this deployment, or past its end: log in again.
    SessionInvalid,
    /// A cookie-authenticated dashboard request that changes state came without proof that
    /// the dashboard's own page sent it (its `Origin` or its CSRF token).
    CsrfRejected,
    /// Alerts: the rule is malformed (unknown kind, missing field, a value out of range).
    InvalidRule,
    /// Alerts: a level, percent, multiple, ratio, bps or hysteresis is not an exact decimal
    /// string in range.
    BadThreshold,
    /// Alerts: creating the rule would exceed the per-principal rule limit.
    TooManyRules,
    /// Alerts: no rule with this id belongs to the caller.
    UnknownRule,
    /// Alerts: no webhook endpoint with this id belongs to the caller.
    UnknownEndpoint,
    /// Alerts: creating the endpoint would exceed the per-principal endpoint limit.
    TooManyEndpoints,
    /// Alerts: no delivery with this id belongs to the endpoint.
    UnknownDelivery,
    /// Alerts: the webhook URL is malformed, not http(s), or carries credentials.
    InvalidUrl,
    /// Alerts: the webhook host resolves to an address the gateway refuses to call
    /// (loopback, private, link-local, shared, metadata, ...) and the operator has not
    /// allow-listed it.
    AddressRefused,
    /// Alerts: the webhook host does not resolve.
    UnresolvableHost,
    /// The request head (request line plus headers) exceeds 16 KiB, or one header line 8 KiB.
    HeadersTooLarge,
    /// The request target exceeds 8 KiB.
    UriTooLong,
    /// A browser request (a WebSocket upgrade) whose `Origin` is neither the gateway's own nor
    /// listed in `server.allowed_origins`.
    OriginNotAllowed,
    /// A trusted proxy sent a `Forwarded` or `X-Forwarded-For` header that does not parse.
    InvalidForwarded,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 66] = [
        Self::BadJson,
        Self::BadRequest,
        Self::UnknownOp,
        Self::InvalidChannel,
        Self::UnknownChannel,
        Self::TooManyChannels,
        Self::RateLimited,
        Self::MessageTooLarge,
        Self::SlowConsumer,
        Self::BadParam,
        Self::UnknownInstrument,
        Self::UnknownInterval,
        Self::BookUnavailable,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::Unavailable,
        Self::Internal,
        Self::InvalidTime,
        Self::InvalidRange,
        Self::UnknownSymbol,
        Self::LimitOutOfRange,
        Self::InvalidCursor,
        Self::NotStored,
        Self::MissingCredentials,
        Self::MalformedKey,
        Self::UnknownKey,
        Self::KeyRevoked,
        Self::KeyExpired,
        Self::InsufficientScope,
        Self::WrongEnvironment,
        Self::IpNotAllowed,
        Self::KeySuspended,
        Self::IpBlocked,
        Self::TotpRequired,
        Self::TotpInvalid,
        Self::Conflict,
        Self::SignatureMissing,
        Self::SignatureInvalid,
        Self::SignatureIncomplete,
        Self::DigestMismatch,
        Self::TimestampStale,
        Self::TimestampFuture,
        Self::SignatureExpired,
        Self::NonceReused,
        Self::NonceNotIncreasing,
        Self::WrongAuthority,
        Self::WrongKeyType,
        Self::SignatureRequired,
        Self::TokenUsed,
        Self::TokenExpired,
        Self::SessionInvalid,
        Self::CsrfRejected,
        Self::InvalidRule,
        Self::BadThreshold,
        Self::TooManyRules,
        Self::UnknownRule,
        Self::UnknownEndpoint,
        Self::TooManyEndpoints,
        Self::UnknownDelivery,
        Self::InvalidUrl,
        Self::AddressRefused,
        Self::UnresolvableHost,
        Self::HeadersTooLarge,
        Self::UriTooLong,
        Self::OriginNotAllowed,
        Self::InvalidForwarded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadJson => "bad_json",
            Self::BadRequest => "bad_request",
            Self::UnknownOp => "unknown_op",
            Self::InvalidChannel => "invalid_channel",
            Self::UnknownChannel => "unknown_channel",
            Self::TooManyChannels => "too_many_channels",
            Self::RateLimited => "rate_limited",
            Self::MessageTooLarge => "message_too_large",
            Self::SlowConsumer => "slow_consumer",
            Self::BadParam => "bad_param",
            Self::UnknownInstrument => "unknown_instrument",
            Self::UnknownInterval => "unknown_interval",
            Self::BookUnavailable => "book_unavailable",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
            Self::InvalidTime => "invalid_time",
            Self::InvalidRange => "invalid_range",
            Self::UnknownSymbol => "unknown_symbol",
            Self::LimitOutOfRange => "limit_out_of_range",
            Self::InvalidCursor => "invalid_cursor",
            Self::NotStored => "not_stored",
            Self::MissingCredentials => "missing_credentials",
            Self::MalformedKey => "malformed_key",
            Self::UnknownKey => "unknown_key",
            Self::KeyRevoked => "key_revoked",
            Self::KeyExpired => "key_expired",
            Self::InsufficientScope => "insufficient_scope",
            Self::WrongEnvironment => "wrong_environment",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::KeySuspended => "key_suspended",
            Self::IpBlocked => "ip_blocked",
            Self::TotpRequired => "totp_required",
            Self::TotpInvalid => "totp_invalid",
            Self::Conflict => "conflict",
            Self::SignatureMissing => "signature_missing",
            Self::SignatureInvalid => "signature_invalid",
            Self::SignatureIncomplete => "signature_incomplete",
            Self::DigestMismatch => "digest_mismatch",
            Self::TimestampStale => "timestamp_stale",
            Self::TimestampFuture => "timestamp_future",
            Self::SignatureExpired => "signature_expired",
            Self::NonceReused => "nonce_reused",
            Self::NonceNotIncreasing => "nonce_not_increasing",
            Self::WrongAuthority => "wrong_authority",
            Self::WrongKeyType => "wrong_key_type",
            Self::SignatureRequired => "signature_required",
            Self::TokenUsed => "token_used",
            Self::TokenExpired => "token_expired",
            Self::SessionInvalid => "session_invalid",
            Self::CsrfRejected => "csrf_rejected",
            Self::InvalidRule => "invalid_rule",
            Self::BadThreshold => "bad_threshold",
            Self::TooManyRules => "too_many_rules",
            Self::UnknownRule => "unknown_rule",
            Self::UnknownEndpoint => "unknown_endpoint",
            Self::TooManyEndpoints => "too_many_endpoints",
            Self::UnknownDelivery => "unknown_delivery",
            Self::InvalidUrl => "invalid_url",
            Self::AddressRefused => "address_refused",
            Self::UnresolvableHost => "unresolvable_host",
            Self::HeadersTooLarge => "headers_too_large",
            Self::UriTooLong => "uri_too_long",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::InvalidForwarded => "invalid_forwarded",
        }
    }

    /// HTTP status for this code on REST routes.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadJson
            | Self::BadRequest
            | Self::UnknownOp
            | Self::InvalidChannel
            | Self::BadParam
            | Self::UnknownInterval
            | Self::InvalidTime
            | Self::InvalidRange
            | Self::UnknownSymbol
            | Self::LimitOutOfRange
            | Self::InvalidCursor
            | Self::InvalidRule
            | Self::BadThreshold
            | Self::InvalidUrl
            | Self::AddressRefused
            | Self::UnresolvableHost
            | Self::InvalidForwarded => 400,
            Self::UriTooLong => 414,
            Self::HeadersTooLarge => 431,
            Self::UnknownChannel
            | Self::UnknownInstrument
            | Self::NotFound
            | Self::NotStored
            | Self::UnknownRule
            | Self::UnknownEndpoint
            | Self::UnknownDelivery => 404,
            Self::MethodNotAllowed => 405,
            Self::MessageTooLarge => 413,
            Self::TooManyChannels
            | Self::RateLimited
            | Self::SlowConsumer
            | Self::TooManyRules
            | Self::TooManyEndpoints => 429,
            Self::BookUnavailable | Self::Unavailable => 503,
            Self::Internal => 500,
            Self::MissingCredentials
            | Self::MalformedKey
            | Self::UnknownKey
            | Self::KeyRevoked
            | Self::KeyExpired
            | Self::WrongEnvironment
            | Self::SignatureMissing
            | Self::SignatureInvalid
            | Self::SignatureIncomplete
            | Self::DigestMismatch
            | Self::TimestampStale
            | Self::TimestampFuture
            | Self::SignatureExpired
            | Self::NonceReused
            | Self::NonceNotIncreasing
            | Self::WrongAuthority
            | Self::WrongKeyType
            | Self::TokenUsed
            | Self::TokenExpired
            | Self::SessionInvalid => 401,
            Self::SignatureRequired
            | Self::CsrfRejected
            | Self::IpNotAllowed
            | Self::KeySuspended
            | Self::IpBlocked
            | Self::TotpRequired
            | Self::TotpInvalid
            | Self::OriginNotAllowed => 403,
            Self::InsufficientScope => 403,
            Self::Conflict => 409,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes the gateway uses (RFC 6455 §7.4 plus the 4000–4999 private range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// 1001: the gateway is shutting down.
    GoingAway,
    /// 1002: the client broke RFC 6455 framing (an unmasked frame, RSV bits, an unknown
    /// opcode, a fragmented or oversized control frame).
    ProtocolError,
    /// 1007: a text message is not valid UTF-8.
    InvalidPayload,
    /// 1008: policy violation (e.g. repeated abuse).
    PolicyViolation,
    /// 1009: a frame exceeded the hard size limit.
    TooBig,
    /// 4000: no message or pong within the idle timeout.
    IdleTimeout,
    /// 4001: the client could not keep up and the slow-consumer policy is `disconnect`.
    SlowConsumer,
    /// 4002: authentication failed or did not happen in time (reason: the error code).
    AuthFailed,
    /// 4003: the session's key was revoked.
    KeyRevoked,
    /// 4004: the session's key expired (its expiry, or the end of its rotation grace period).
    KeyExpired,
}

impl CloseCode {
    pub fn code(self) -> u16 {
        match self {
            Self::GoingAway => 1001,
            Self::ProtocolError => 1002,
            Self::InvalidPayload => 1007,
            Self::PolicyViolation => 1008,
            Self::TooBig => 1009,
            Self::IdleTimeout => 4000,
            Self::SlowConsumer => 4001,
            Self::AuthFailed => 4002,
            Self::KeyRevoked => 4003,
            Self::KeyExpired => 4004,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_codes_have_their_documented_statuses() {
        let cases = [
            ("missing_credentials", 401),
            ("malformed_key", 401),
            ("unknown_key", 401),
            ("key_revoked", 401),
            ("key_expired", 401),
            ("insufficient_scope", 403),
            ("wrong_environment", 401),
            ("rate_limited", 429),
            ("conflict", 409),
            ("signature_missing", 401),
            ("signature_invalid", 401),
            ("signature_incomplete", 401),
            ("digest_mismatch", 401),
            ("timestamp_stale", 401),
            ("timestamp_future", 401),
            ("signature_expired", 401),
            ("nonce_reused", 401),
            ("nonce_not_increasing", 401),
            ("wrong_key_type", 401),
            ("signature_required", 403),
        ];
        for (name, status) in cases {
            let code: ErrorCode = serde_json::from_str(&format!("\"{name}\"")).unwrap();
            assert_eq!((code.as_str(), code.http_status()), (name, status));
        }
    }

    #[test]
    fn codes_serialize_as_their_string() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
            assert!((400..600).contains(&code.http_status()));
        }
    }
}
