//! Client → server operations.
//!
//! ```json
//! {"op":"subscribe","id":1,"channels":["book:sim:BTC-USDT","trades:sim:BTC-USDT"]}
//! {"op":"unsubscribe","id":2,"channels":["trades:sim:BTC-USDT"]}
//! {"op":"ping","id":3}
//! {"op":"subscribe","id":4,"channels":["trades:sim:BTC-USDT"],
//!  "resume":{"trades:sim:BTC-USDT":{"epoch":"18c2f0a1b2c3-4","seq":1041}}}
//! ```
//!
//! `resume` (optional) asks the server to continue each listed channel right after the given
//! position instead of starting from a fresh snapshot; see [`ResumeFrom`].
//!
//! ```json
//! {"op":"auth","id":4,"token":"tg_test_..."}
//! ```
//!
//! `auth` must be the first message on a connection that did not authenticate on the upgrade
//! request (`Authorization: Bearer ...` or an RFC 9421 signature). Its token is a
//! [`Credential`]: it never prints, and a malformed `auth` is answered with a fixed message that
//! never echoes what was sent. An `hmac` or `ed25519` key logs in with a signature instead of a
//! token: the values of the `Signature-Input` and `Signature` headers it would have put on the
//! upgrade request, signing that request (`GET`, the upgrade's authority and path):
//!
//! ```json
//! {"op":"auth","id":5,"signature_input":"sig1=(\"@method\" \"@authority\" \"@path\");created=1764300000;keyid=\"key_...\";nonce=\"...\"",
//!  "signature":"sig1=:...:"}
//! ```
//!
//! `id` is optional; when present (a non-negative integer or a string of at most 64 characters)
//! every reply to the request echoes it.

use crate::ErrorCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use zeroize::Zeroize;

/// A credential carried by a client message. `Debug` prints `REDACTED`; the text is wiped from
/// memory when dropped.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Credential(String);

impl Credential {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The credential text, for the verifier only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(REDACTED)")
    }
}

impl Drop for Credential {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Request id echoed in replies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum RequestId {
    Num(u64),
    Text(String),
}

/// Longest accepted string request id.
pub const MAX_ID_LEN: usize = 64;

/// Longest accepted `epoch` in a resume position.
pub const MAX_EPOCH_LEN: usize = 64;

/// A position on a channel: the last message a client processed, as `(epoch, seq)`.
///
/// On `subscribe`, the server replays every message after `seq` from the channel's history
/// and acks the channel with `recovered: true` if, and only if, the epoch is the channel's
/// current one and the history still holds all of them; otherwise it acks `recovered: false`
/// and the client starts over (a fresh snapshot, a `gap` notice or the latest value). It never
/// replays part of what was missed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeFrom {
    pub epoch: String,
    pub seq: u64,
}

/// A parsed client operation. Channel names are kept as text here; the server validates them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ClientOp {
    Subscribe {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        channels: Vec<String>,
        /// Positions to resume from, keyed by a name listed in `channels`.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        resume: BTreeMap<String, ResumeFrom>,
    },
    Unsubscribe {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        channels: Vec<String>,
    },
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
    },
    /// Authenticates the connection (first message only) with a bearer `token` or a signature.
    Auth {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        #[serde(flatten)]
        login: Login,
    },
}

/// What an `auth` op carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Login {
    /// A bearer API key or a single-use WebSocket token's key.
    Token { token: Credential },
    /// An RFC 9421 signature over the upgrade request (`GET`, its authority and path), given
    /// as the values of the two headers. Neither holds a secret.
    Signature {
        signature_input: String,
        signature: String,
    },
}

impl ClientOp {
    pub fn id(&self) -> Option<&RequestId> {
        match self {
            Self::Subscribe { id, .. }
            | Self::Unsubscribe { id, .. }
            | Self::Ping { id }
            | Self::Auth { id, .. } => id.as_ref(),
        }
    }
}

/// Why a client message was rejected: the code, a human message, and the request id if one
/// could be read (so the error can echo it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    pub code: ErrorCode,
    pub message: String,
    pub id: Option<RequestId>,
}

/// `auth`: exactly one of `token` or `signature_input` + `signature`. Never echoes a
/// credential back, even a malformed one.
fn parse_auth(
    map: &serde_json::Map<String, serde_json::Value>,
    id: Option<RequestId>,
) -> Result<ClientOp, OpError> {
    let string = |k: &str| match map.get(k) {
        Some(serde_json::Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let only = |allowed: &[&str]| map.keys().all(|k| allowed.contains(&k.as_str()));
    let err = |code, message: &str| OpError {
        code,
        message: message.into(),
        id: id.clone(),
    };
    if map.contains_key("token") {
        let Some(token) = string("token") else {
            return Err(err(
                ErrorCode::MissingCredentials,
                "auth needs a string field token",
            ));
        };
        if !only(&["op", "id", "token"]) {
            return Err(err(
                ErrorCode::BadRequest,
                "auth takes op, id and either token or signature_input and signature",
            ));
        }
        let token = Credential::new(token);
        return Ok(ClientOp::Auth {
            id,
            login: Login::Token { token },
        });
    }
    if map.contains_key("signature_input") || map.contains_key("signature") {
        let (Some(input), Some(signature)) = (string("signature_input"), string("signature"))
        else {
            return Err(err(
                ErrorCode::SignatureMissing,
                "a signed auth needs the string fields signature_input and signature",
            ));
        };
        if !only(&["op", "id", "signature_input", "signature"]) {
            return Err(err(
                ErrorCode::BadRequest,
                "auth takes op, id and either token or signature_input and signature",
            ));
        }
        return Ok(ClientOp::Auth {
            id,
            login: Login::Signature {
                signature_input: input.to_string(),
                signature: signature.to_string(),
            },
        });
    }
    Err(err(
        ErrorCode::MissingCredentials,
        "auth needs a string field token, or signature_input and signature",
    ))
}

/// Parses one text frame into an operation, classifying failures as `bad_json` (not a JSON
/// object), `unknown_op` (missing or unknown `op`) or `bad_request` (fields of the wrong shape).
pub fn parse_client_op(text: &str) -> Result<ClientOp, OpError> {
    let value: serde_json::Value = crate::strict_json::parse(text).map_err(|e| OpError {
        code: ErrorCode::BadJson,
        message: format!("message is not valid JSON: {e}"),
        id: None,
    })?;
    let serde_json::Value::Object(map) = &value else {
        return Err(OpError {
            code: ErrorCode::BadJson,
            message: "message must be a JSON object".into(),
            id: None,
        });
    };
    let id = match map.get("id") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Number(n)) if n.as_u64().is_some() => {
            n.as_u64().map(RequestId::Num)
        }
        Some(serde_json::Value::String(s)) if s.len() <= MAX_ID_LEN => {
            Some(RequestId::Text(s.clone()))
        }
        Some(_) => {
            return Err(OpError {
                code: ErrorCode::BadRequest,
                message: format!(
                    "id must be a non-negative integer or a string of at most {MAX_ID_LEN} characters"
                ),
                id: None,
            });
        }
    };
    let op = match map.get("op") {
        Some(serde_json::Value::String(op)) => op.clone(),
        Some(_) => {
            return Err(OpError {
                code: ErrorCode::UnknownOp,
                message: "op must be a string".into(),
                id,
            });
        }
        None => {
            return Err(OpError {
                code: ErrorCode::UnknownOp,
                message: "missing field op".into(),
                id,
            });
        }
    };
    if !matches!(op.as_str(), "subscribe" | "unsubscribe" | "ping" | "auth") {
        let shown: String = op.chars().take(32).collect();
        return Err(OpError {
            code: ErrorCode::UnknownOp,
            message: format!("unknown op {shown:?}: expected subscribe, unsubscribe, ping or auth"),
            id,
        });
    }
    if op == "auth" {
        return parse_auth(map, id);
    }
    let op: ClientOp = serde_json::from_value(value).map_err(|e| OpError {
        code: ErrorCode::BadRequest,
        message: format!("invalid {op}: {e}"),
        id: id.clone(),
    })?;
    if let ClientOp::Subscribe {
        channels, resume, ..
    } = &op
    {
        check_resume(channels, resume).map_err(|message| OpError {
            code: ErrorCode::BadRequest,
            message,
            id,
        })?;
    }
    Ok(op)
}

/// Every resume key must be one of the subscribed names; epochs are bounded.
fn check_resume(channels: &[String], resume: &BTreeMap<String, ResumeFrom>) -> Result<(), String> {
    for (name, from) in resume {
        let shown: String = name.chars().take(96).collect();
        if !channels.iter().any(|c| c == name) {
            return Err(format!("resume names {shown:?}, which is not in channels"));
        }
        if from.epoch.is_empty() || from.epoch.len() > MAX_EPOCH_LEN {
            return Err(format!(
                "resume epoch of {shown:?} must be 1 to {MAX_EPOCH_LEN} characters"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_ops() {
        let op = parse_client_op(r#"{"op":"subscribe","id":1,"channels":["book:sim:BTC-USDT"]}"#)
            .unwrap();
        assert_eq!(
            op,
            ClientOp::Subscribe {
                id: Some(RequestId::Num(1)),
                channels: vec!["book:sim:BTC-USDT".into()],
                resume: BTreeMap::new(),
            }
        );
        let op = parse_client_op(
            r#"{"op":"subscribe","channels":["trades:sim:BTC-USDT"],"resume":{"trades:sim:BTC-USDT":{"epoch":"e-1","seq":9}}}"#,
        )
        .unwrap();
        let ClientOp::Subscribe { resume, .. } = &op else {
            panic!("subscribe")
        };
        assert_eq!(
            resume["trades:sim:BTC-USDT"],
            ResumeFrom {
                epoch: "e-1".into(),
                seq: 9
            }
        );
        assert_eq!(
            parse_client_op(&serde_json::to_string(&op).unwrap()).unwrap(),
            op
        );
        let op = parse_client_op(r#"{"op":"ping","id":"abc"}"#).unwrap();
        assert_eq!(
            op,
            ClientOp::Ping {
                id: Some(RequestId::Text("abc".into()))
            }
        );
        assert_eq!(
            parse_client_op(r#"{"op":"ping"}"#).unwrap(),
            ClientOp::Ping { id: None }
        );
    }

    #[test]
    fn auth_op_never_prints_its_token() {
        let op = parse_client_op(r#"{"op":"auth","id":1,"token":"tg_test_secret"}"#).unwrap();
        let ClientOp::Auth {
            login: Login::Token { token },
            ..
        } = &op
        else {
            panic!("expected auth, got {op:?}");
        };
        assert_eq!(token.expose(), "tg_test_secret");
        assert!(!format!("{op:?}").contains("secret"));
        for bad in [
            r#"{"op":"auth","id":2}"#,
            r#"{"op":"auth","token":7}"#,
            r#"{"op":"auth","token":"tg_test_secret","extra":"tg_test_secret"}"#,
        ] {
            let err = parse_client_op(bad).unwrap_err();
            assert!(!err.message.contains("secret"), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn signed_auth_op() {
        let op = parse_client_op(
            r#"{"op":"auth","id":3,"signature_input":"sig1=(\"@method\");created=1","signature":"sig1=:AA==:"}"#,
        )
        .unwrap();
        assert_eq!(
            op,
            ClientOp::Auth {
                id: Some(RequestId::Num(3)),
                login: Login::Signature {
                    signature_input: "sig1=(\"@method\");created=1".into(),
                    signature: "sig1=:AA==:".into(),
                },
            }
        );
        // Serializes back to the same fields (the SDK sends it).
        let text = serde_json::to_string(&op).unwrap();
        assert_eq!(parse_client_op(&text).unwrap(), op);
        let cases = [
            (
                r#"{"op":"auth","signature":"sig1=:AA==:"}"#,
                ErrorCode::SignatureMissing,
            ),
            (
                r#"{"op":"auth","signature_input":"x","signature":7}"#,
                ErrorCode::SignatureMissing,
            ),
            (
                r#"{"op":"auth","token":"tg_test_secret","signature":"sig1=:AA==:"}"#,
                ErrorCode::BadRequest,
            ),
            (
                r#"{"op":"auth","signature_input":"x","signature":"y","nonce":"n"}"#,
                ErrorCode::BadRequest,
            ),
            (r#"{"op":"auth"}"#, ErrorCode::MissingCredentials),
        ];
        for (text, code) in cases {
            let err = parse_client_op(text).unwrap_err();
            assert_eq!(err.code, code, "{text}");
            assert!(!err.message.contains("secret"), "{text}: {}", err.message);
        }
    }

    #[test]
    fn a_duplicate_key_names_the_key_and_where() {
        let err = parse_client_op(r#"{"op":"ping","op":"subscribe"}"#).unwrap_err();
        assert_eq!(
            err.message,
            "message is not valid JSON: key \"op\" appears twice at line 1 column 17"
        );
    }

    #[test]
    fn classifies_bad_messages() {
        let cases = [
            ("not json", ErrorCode::BadJson, None),
            ("[1,2]", ErrorCode::BadJson, None),
            ("\"subscribe\"", ErrorCode::BadJson, None),
            // a key given twice is refused, not last-wins (issue 14)
            (
                r#"{"op":"ping","op":"subscribe"}"#,
                ErrorCode::BadJson,
                None,
            ),
            (
                r#"{"op":"subscribe","channels":["a"],"channels":["b"]}"#,
                ErrorCode::BadJson,
                None,
            ),
            (r#"{"id":4}"#, ErrorCode::UnknownOp, Some(RequestId::Num(4))),
            (
                r#"{"op":"trade","id":5}"#,
                ErrorCode::UnknownOp,
                Some(RequestId::Num(5)),
            ),
            (r#"{"op":7}"#, ErrorCode::UnknownOp, None),
            (
                r#"{"op":"subscribe","id":6}"#,
                ErrorCode::BadRequest,
                Some(RequestId::Num(6)),
            ),
            (
                r#"{"op":"subscribe","channels":"book:sim:BTC-USDT"}"#,
                ErrorCode::BadRequest,
                None,
            ),
            (
                r#"{"op":"subscribe","channels":[1]}"#,
                ErrorCode::BadRequest,
                None,
            ),
            (r#"{"op":"ping","id":-1}"#, ErrorCode::BadRequest, None),
            (r#"{"op":"ping","id":{"a":1}}"#, ErrorCode::BadRequest, None),
            // resume: a key not subscribed, a wrong shape, an unknown field, an empty epoch
            (
                r#"{"op":"subscribe","id":7,"channels":["a"],"resume":{"b":{"epoch":"e","seq":1}}}"#,
                ErrorCode::BadRequest,
                Some(RequestId::Num(7)),
            ),
            (
                r#"{"op":"subscribe","channels":["a"],"resume":{"a":5}}"#,
                ErrorCode::BadRequest,
                None,
            ),
            (
                r#"{"op":"subscribe","channels":["a"],"resume":{"a":{"epoch":"e","seq":1,"x":1}}}"#,
                ErrorCode::BadRequest,
                None,
            ),
            (
                r#"{"op":"subscribe","channels":["a"],"resume":{"a":{"epoch":"","seq":1}}}"#,
                ErrorCode::BadRequest,
                None,
            ),
            (
                r#"{"op":"subscribe","channels":["a"],"resume":{"a":{"epoch":"e","seq":-1}}}"#,
                ErrorCode::BadRequest,
                None,
            ),
        ];
        for (text, code, id) in cases {
            let err = parse_client_op(text).unwrap_err();
            assert_eq!((err.code, err.id), (code, id), "{text}");
            assert!(!err.message.is_empty());
        }
    }
}
