//! The client WebSocket protocol parser: any text frame a client can send.
//!
//! Oracle: no panic; every refusal carries one of the documented codes of a client message
//! (docs/protocol.md); a frame that
//! parses also parses through the strict JSON reader (the protocol never accepts a document
//! the strict reader refuses, e.g. one with duplicate keys).
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{ErrorCode, parse_client_op};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_client_op(text) {
        Ok(_) => assert!(protocol::strict_json::parse(text).is_ok()),
        Err(e) => assert!(
            matches!(
                e.code,
                ErrorCode::BadJson
                    | ErrorCode::UnknownOp
                    | ErrorCode::BadRequest
                    | ErrorCode::MissingCredentials
                    | ErrorCode::SignatureMissing
            ),
            "unexpected code {:?}",
            e.code
        ),
    }
});
