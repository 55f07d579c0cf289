//! The tickgate client protocol, version 1: every message, field and error code that crosses
//! the wire between the gateway and its clients. Both the server and the SDK depend on this
//! crate; it depends on neither. `docs/protocol.md` is the prose version of this crate.
//!
//! # Layout
//!
//! - [`client`]: client → server operations (`subscribe`, `unsubscribe`, `ping`, `auth`) and their
//!   parser.
//! - [`server`]: server → client messages (acks, `snapshot`/`update` data, notices, errors).
//! - [`rest`]: bodies of the public REST responses.
//! - [`error`]: the closed set of stable error codes, with HTTP statuses and close codes.
//! - [`history`]: REST history pages (`/v1/trades`, `/v1/candles`).
//! - [`alerts`]: alert rules and webhook endpoints (`/v1/alerts`, `/v1/webhooks`), and the
//!   alert carried by the `alerts` channel and by webhook deliveries.

pub mod alerts;
pub mod client;
pub mod error;
pub mod history;
pub mod redact;
pub mod rest;
pub mod server;
pub mod strict_json;

pub use alerts::AlertBody;
pub use client::{ClientOp, Credential, Login, OpError, RequestId, ResumeFrom, parse_client_op};
pub use error::{CloseCode, ErrorCode};
pub use history::{
    CandlesPage, FundingPage, HistoryCandle, LiquidationsPage, OpenInterestPage, TradesPage,
};
pub use server::{
    BookUpdate, CandleBody, DataMessage, ErrorBody, ServerMessage, StatusBody, WireLevel, WireTrade,
};

/// Protocol version served at `/v1/...`.
pub const PROTOCOL_VERSION: u32 = 1;
