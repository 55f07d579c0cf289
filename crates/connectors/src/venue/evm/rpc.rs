//! JSON-RPC 2.0 messages of the Ethereum node API: requests we build, and the parsing (with
//! validation of every field we use) of responses, subscription notifications, block headers
//! and logs. Everything that does not parse is an [`EvmError::Malformed`] naming the field.

use super::error::EvmError;
use model::Timestamp;
use model::onchain::{Address, ChainLog, ChainStatus, Hash32, HexBytes};
use serde::Deserialize;
use serde_json::value::RawValue;

/// One parsed message from a node.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// The answer to request `id`: its `result` (JSON text; `null` included), or the node's
    /// error object.
    Response {
        id: u64,
        result: Result<&'a RawValue, RpcFailure>,
    },
    /// An `eth_subscription` notification.
    Notification {
        subscription: &'a str,
        result: &'a RawValue,
    },
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RpcFailure {
    pub code: i64,
    pub message: String,
}

impl RpcFailure {
    pub fn into_error(self, method: &'static str) -> EvmError {
        EvmError::Rpc {
            method,
            code: self.code,
            message: self.message.chars().take(200).collect(),
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    jsonrpc: Option<&'a str>,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default, borrow)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<RpcFailure>,
    #[serde(default)]
    method: Option<&'a str>,
    #[serde(default, borrow)]
    params: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct NotificationParams<'a> {
    subscription: &'a str,
    #[serde(borrow)]
    result: &'a RawValue,
}

const NULL: &str = "null";

/// Parses one message (a WebSocket text frame or an HTTP body).
pub fn parse_incoming(text: &str) -> Result<Incoming<'_>, EvmError> {
    let env: Envelope<'_> =
        serde_json::from_str(text).map_err(|e| EvmError::malformed("JSON-RPC message", e))?;
    if env.jsonrpc != Some("2.0") {
        return Err(EvmError::malformed("jsonrpc", "missing or not \"2.0\""));
    }
    match (env.id, env.method) {
        (Some(id), None) => {
            let result = match (env.result, env.error) {
                (_, Some(error)) => Err(error),
                (Some(result), None) => Ok(result),
                // `"result": null` (a block not found) parses as absent.
                (None, None) => Ok(null_value()),
            };
            Ok(Incoming::Response { id, result })
        }
        (None, Some("eth_subscription")) => {
            let params = env
                .params
                .ok_or_else(|| EvmError::malformed("params", "missing in a notification"))?;
            let params: NotificationParams<'_> = serde_json::from_str(params.get())
                .map_err(|e| EvmError::malformed("notification params", e))?;
            Ok(Incoming::Notification {
                subscription: params.subscription,
                result: params.result,
            })
        }
        (None, Some(other)) => Err(EvmError::Unexpected(format!(
            "notification method {:?}",
            other.chars().take(40).collect::<String>()
        ))),
        (Some(_), Some(_)) | (None, None) => Err(EvmError::malformed(
            "JSON-RPC message",
            "neither a response (id) nor a notification (method)",
        )),
    }
}

fn null_value() -> &'static RawValue {
    // A literal that is valid JSON: cannot fail.
    serde_json::from_str::<&RawValue>(NULL).unwrap_or_else(|_| unreachable!("null is JSON"))
}

/// True when a result is JSON `null`.
pub fn is_null(result: &RawValue) -> bool {
    result.get() == NULL
}

/// A JSON-RPC request text.
pub fn request(id: u64, method: &str, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
}

/// Parses a hex quantity (`0x1b4`) as `u64`.
pub fn quantity(field: &str, text: &str) -> Result<u64, EvmError> {
    let digits = text
        .strip_prefix("0x")
        .ok_or_else(|| EvmError::malformed(field, format!("{text:?} is not 0x-hex")))?;
    if digits.is_empty() || digits.len() > 16 {
        return Err(EvmError::malformed(
            field,
            format!("{text:?} is not a 64-bit quantity"),
        ));
    }
    u64::from_str_radix(digits, 16)
        .map_err(|_| EvmError::malformed(field, format!("{text:?} is not 0x-hex")))
}

/// Formats a block number as a quantity.
pub fn to_quantity(n: u64) -> String {
    format!("0x{n:x}")
}

/// Parses a result that is a single quantity (`eth_blockNumber`, `eth_chainId`).
pub fn parse_quantity_result(field: &str, result: &RawValue) -> Result<u64, EvmError> {
    let text: &str =
        serde_json::from_str(result.get()).map_err(|e| EvmError::malformed(field, e))?;
    quantity(field, text)
}

/// Parses a result that is a hex byte string (`eth_call`).
pub fn parse_bytes_result(field: &str, result: &RawValue) -> Result<Vec<u8>, EvmError> {
    let text: &str =
        serde_json::from_str(result.get()).map_err(|e| EvmError::malformed(field, e))?;
    HexBytes::parse(text)
        .map(|b| b.0)
        .map_err(|e| EvmError::malformed(field, e))
}

/// A block header: what the tracker needs of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub number: u64,
    pub hash: Hash32,
    pub parent: Hash32,
    /// Block time, µs since the epoch.
    pub ts: Timestamp,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawHeader<'a> {
    number: Option<&'a str>,
    hash: Option<&'a str>,
    parent_hash: &'a str,
    timestamp: &'a str,
}

fn hash(field: &str, text: &str) -> Result<Hash32, EvmError> {
    Hash32::parse(text).map_err(|e| EvmError::malformed(field, e))
}

/// Parses a `newHeads` notification or an `eth_getBlockBy*` result (`null`: not found).
pub fn parse_header(result: &RawValue) -> Result<Option<Header>, EvmError> {
    if is_null(result) {
        return Ok(None);
    }
    let raw: RawHeader<'_> =
        serde_json::from_str(result.get()).map_err(|e| EvmError::malformed("block header", e))?;
    let (Some(number), Some(block_hash)) = (raw.number, raw.hash) else {
        return Err(EvmError::malformed(
            "block header",
            "a pending block (no number or hash)",
        ));
    };
    let seconds = quantity("block.timestamp", raw.timestamp)?;
    let ts = i64::try_from(seconds)
        .ok()
        .and_then(|s| s.checked_mul(Timestamp::MICROS_PER_SECOND))
        .ok_or_else(|| EvmError::malformed("block.timestamp", "out of range"))?;
    Ok(Some(Header {
        number: quantity("block.number", number)?,
        hash: hash("block.hash", block_hash)?,
        parent: hash("block.parentHash", raw.parent_hash)?,
        ts: Timestamp(ts),
    }))
}

/// A log as a node reports it, with its `removed` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLog {
    /// `block_ts` is 0 here: nodes do not send it; the tracker fills it from the header.
    pub log: ChainLog,
    /// The node says this log's block left the canonical chain.
    pub removed: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog<'a> {
    address: &'a str,
    topics: Vec<&'a str>,
    data: &'a str,
    block_number: Option<&'a str>,
    block_hash: Option<&'a str>,
    transaction_hash: Option<&'a str>,
    transaction_index: Option<&'a str>,
    log_index: Option<&'a str>,
    #[serde(default)]
    removed: bool,
}

/// At most 4 topics per log (LOG0..LOG4).
const MAX_TOPICS: usize = 4;

fn parse_raw_log(raw: RawLog<'_>) -> Result<NodeLog, EvmError> {
    let required = |field: &'static str, v: Option<&str>| -> Result<String, EvmError> {
        v.map(str::to_string)
            .ok_or_else(|| EvmError::malformed(field, "missing (a pending log?)"))
    };
    if raw.topics.len() > MAX_TOPICS {
        return Err(EvmError::malformed(
            "log.topics",
            format!("{} topics, at most {MAX_TOPICS}", raw.topics.len()),
        ));
    }
    let topics = raw
        .topics
        .iter()
        .map(|t| hash("log.topics", t))
        .collect::<Result<Vec<_>, _>>()?;
    let log = ChainLog {
        status: ChainStatus::Pending,
        block_number: quantity(
            "log.blockNumber",
            &required("log.blockNumber", raw.block_number)?,
        )?,
        block_hash: hash("log.blockHash", &required("log.blockHash", raw.block_hash)?)?,
        block_ts: Timestamp(0),
        tx_hash: hash(
            "log.transactionHash",
            &required("log.transactionHash", raw.transaction_hash)?,
        )?,
        tx_index: quantity(
            "log.transactionIndex",
            &required("log.transactionIndex", raw.transaction_index)?,
        )?,
        log_index: quantity("log.logIndex", &required("log.logIndex", raw.log_index)?)?,
        address: Address::parse(raw.address).map_err(|e| EvmError::malformed("log.address", e))?,
        topics,
        data: HexBytes::parse(raw.data).map_err(|e| EvmError::malformed("log.data", e))?,
        event: None,
    };
    Ok(NodeLog {
        log,
        removed: raw.removed,
    })
}

/// Parses a `logs` notification (one log).
pub fn parse_log(result: &RawValue) -> Result<NodeLog, EvmError> {
    let raw: RawLog<'_> =
        serde_json::from_str(result.get()).map_err(|e| EvmError::malformed("log", e))?;
    parse_raw_log(raw)
}

/// Parses an `eth_getLogs` result (an array of logs).
pub fn parse_logs(result: &RawValue) -> Result<Vec<NodeLog>, EvmError> {
    let raws: Vec<RawLog<'_>> =
        serde_json::from_str(result.get()).map_err(|e| EvmError::malformed("eth_getLogs", e))?;
    raws.into_iter().map(parse_raw_log).collect()
}

/// Parses a subscription id (`eth_subscribe` result).
pub fn parse_subscription_id(result: &RawValue) -> Result<String, EvmError> {
    let id: &str = serde_json::from_str(result.get())
        .map_err(|e| EvmError::malformed("eth_subscribe result", e))?;
    if id.is_empty() || id.len() > 128 {
        return Err(EvmError::malformed(
            "eth_subscribe result",
            "empty or over 128 characters",
        ));
    }
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"{"number":"0x1b4","hash":"0xdc0818cf78f21a8e70579cb46a43643f78291264dda342ae31049421c82d21ae","parentHash":"0xe99e022112df268087ea7eafaf4790497fd21dbeeb6bd7a1721df161a6657a54","timestamp":"0x55ba467c","miner":"0x0000000000000000000000000000000000000000"}"#;

    #[test]
    fn parses_responses_notifications_and_headers() {
        let Incoming::Response { id, result } =
            parse_incoming(r#"{"jsonrpc":"2.0","id":7,"result":"0x2a"}"#).unwrap()
        else {
            panic!("not a response");
        };
        assert_eq!(id, 7);
        assert_eq!(parse_quantity_result("r", result.unwrap()).unwrap(), 42);
        let text = format!(
            r#"{{"jsonrpc":"2.0","method":"eth_subscription","params":{{"subscription":"0xabc","result":{HEADER}}}}}"#
        );
        let Incoming::Notification {
            subscription,
            result,
        } = parse_incoming(&text).unwrap()
        else {
            panic!("not a notification");
        };
        assert_eq!(subscription, "0xabc");
        let header = parse_header(result).unwrap().unwrap();
        assert_eq!(header.number, 436);
        assert_eq!(header.ts, Timestamp(0x55ba467c * 1_000_000));
        let Incoming::Response { result, .. } =
            parse_incoming(r#"{"jsonrpc":"2.0","id":1,"result":null}"#).unwrap()
        else {
            panic!("not a response");
        };
        assert_eq!(parse_header(result.unwrap()).unwrap(), None);
        let Incoming::Response { result, .. } =
            parse_incoming(r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"boom"}}"#)
                .unwrap()
        else {
            panic!("not a response");
        };
        assert_eq!(result.unwrap_err().into_error("eth_x").code(), "rpc_error");
    }

    #[test]
    fn parses_a_recorded_log_notification() {
        let text = include_str!("../../../test_data/evm/ws_logs_transfer.json");
        let Incoming::Notification { result, .. } = parse_incoming(text).unwrap() else {
            panic!("not a notification");
        };
        let node = parse_log(result).unwrap();
        assert!(!node.removed);
        let log = node.log;
        assert_eq!((log.block_number, log.tx_index, log.log_index), (2, 0, 0));
        assert_eq!(
            log.address.to_string(),
            "0x5fbdb2315678afecb367f032d93f642f64180aa3"
        );
        assert_eq!(log.topics.len(), 3);
        assert_eq!(log.data.0[29..], [0x16, 0xe3, 0x60]);
        let event = super::super::abi::decode(
            &log,
            &super::super::abi::Topics::default(),
            super::super::abi::Scales {
                token: Some(6),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"name":"transfer","from":"0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266","to":"0x4242424242424242424242424242424242424242","value":{"raw":"1500000","value":"1.5"}}"#
        );
    }

    #[test]
    fn malformed_messages_are_rejected_with_stable_codes() {
        let log_ok = r#"{"address":"0x5fbdb2315678afecb367f032d93f642f64180aa3","topics":[],"data":"0x","blockNumber":"0x1","blockHash":"0xdc0818cf78f21a8e70579cb46a43643f78291264dda342ae31049421c82d21ae","transactionHash":"0xdc0818cf78f21a8e70579cb46a43643f78291264dda342ae31049421c82d21ae","transactionIndex":"0x0","logIndex":"0x0","removed":true}"#;
        assert!(
            parse_log(&serde_json::from_str::<Box<RawValue>>(log_ok).unwrap())
                .unwrap()
                .removed
        );
        // One line per case: (message, code).
        let incoming = [
            ("not json", "rpc_malformed"),
            (r#"{"id":1,"result":"0x1"}"#, "rpc_malformed"),
            (
                r#"{"jsonrpc":"2.0","id":"one","result":"0x1"}"#,
                "rpc_malformed",
            ),
            (
                r#"{"jsonrpc":"2.0","method":"eth_subscription"}"#,
                "rpc_malformed",
            ),
            (
                r#"{"jsonrpc":"2.0","method":"other","params":{}}"#,
                "rpc_unexpected",
            ),
            (r#"{"jsonrpc":"2.0"}"#, "rpc_malformed"),
        ];
        for (text, code) in incoming {
            assert_eq!(parse_incoming(text).unwrap_err().code(), code, "{text}");
        }
        let raw = |t: &str| serde_json::from_str::<Box<RawValue>>(t).unwrap();
        let headers = [
            r#"{"number":"0x1","hash":"0x12","parentHash":"0x12","timestamp":"0x1"}"#,
            r#"{"number":"1","hash":"0xdc0818cf78f21a8e70579cb46a43643f78291264dda342ae31049421c82d21ae","parentHash":"0xdc0818cf78f21a8e70579cb46a43643f78291264dda342ae31049421c82d21ae","timestamp":"0x1"}"#,
            r#"{"number":null,"hash":null,"parentHash":"0xdc0818cf78f21a8e70579cb46a43643f78291264dda342ae31049421c82d21ae","timestamp":"0x1"}"#,
            r#"{"number":"0x1"}"#,
            r#"[]"#,
        ];
        for text in headers {
            assert_eq!(
                parse_header(&raw(text)).unwrap_err().code(),
                "rpc_malformed",
                "{text}"
            );
        }
        let logs = [
            log_ok.replace(r#""logIndex":"0x0","#, ""),
            log_ok.replace(r#""data":"0x""#, r#""data":"0x1""#),
            log_ok.replace(r#""topics":[]"#, r#""topics":["0x1"]"#),
            log_ok.replace(r#""blockHash":"0xdc"#, r#""blockHash":"0xzz"#),
            log_ok.replace(r#""address":"0x5f"#, r#""address":"0x5"#),
            log_ok.replace(
                r#""blockNumber":"0x1""#,
                r#""blockNumber":"0x11111111111111111""#,
            ),
        ];
        for text in &logs {
            assert_eq!(
                parse_log(&raw(text)).unwrap_err().code(),
                "rpc_malformed",
                "{text}"
            );
        }
        assert_eq!(quantity("q", "0x").unwrap_err().code(), "rpc_malformed");
        assert_eq!(
            parse_subscription_id(&raw("5")).unwrap_err().code(),
            "rpc_malformed"
        );
    }
}
