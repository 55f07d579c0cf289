//! The tickgate client protocol, version 1: every message, field and error code that crosses
//! the wire between the gateway and its clients. Both the server and the SDK depend on this
//! crate; it depends on neither. `docs/protocol.md` is the prose version of this crate.
//!
//! # Layout
//!
//! - [`client`]: client → server operations (`subscribe`, `unsubscribe`, `ping`, `auth`) and their
//!   parser.
//! - [`server`]: server → client messages (acks, `snapshot`/`update` data, notices, errors).
//! - [`error`]: the closed set of stable error codes, with HTTP statuses and close codes.

pub mod client;
pub mod error;
pub mod server;

pub use client::{ClientOp, Credential, OpError, RequestId, parse_client_op};
pub use error::{CloseCode, ErrorCode};
pub use server::{
    CandleBody, DataMessage, ErrorBody, ServerMessage, StatusBody, WireLevel, WireTrade,
};

/// Protocol version served at `/v1/...`.
pub const PROTOCOL_VERSION: u32 = 1;
