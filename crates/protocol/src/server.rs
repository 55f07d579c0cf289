//! Server → client messages. Every message is a JSON object with a `type`.
//!
//! Data messages (`snapshot`, `update`) carry `channel`, a per-channel gap-free `seq`, the
//! channel's `epoch`, the exchange time `ts` and the gateway receive time `recv_ts` (both µs
//! since the epoch), and one body depending on the channel kind:
//! - book: `bids`, `asks` (arrays of `["price","size"]`, size `"0"` removes a level in an
//!   update) and `checksum` (see `book::checksum`);
//! - trades: `trades` (array of `{id, price, size, side, ts}`);
//! - ticker: `ticker`; candles: `candle`; status: `status`;
//! - onchain.blocks: `blocks`; onchain.logs: `logs` (each item with its `status`: `pending`,
//!   `confirmed` or `retracted`).
//! - alerts (the caller's private `alerts` channel): `alert`.

use crate::{AlertBody, ErrorCode, RequestId, ResumeFrom};
use model::onchain::{ChainBlock, ChainLog};
use model::{
    Decimal, DecimalBuf, Funding, Level, Liquidation, MarkPrice, OpenInterest, Side, Ticker, Trade,
    VenueFunding, write_decimal,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A book level on the wire: `["price", "size"]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WireLevel(
    #[serde(serialize_with = "decimal_text")] pub Decimal,
    #[serde(serialize_with = "decimal_text")] pub Decimal,
);

/// The same text as `Decimal`'s own `Serialize` (its `Display`), formatted on the stack
/// without `fmt`: every level of every book frame goes through here.
fn decimal_text<S: serde::Serializer>(value: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = DecimalBuf::new();
    s.serialize_str(buf.format(value))
}

impl From<Level> for WireLevel {
    fn from(l: Level) -> Self {
        Self(l.price, l.size)
    }
}

impl From<WireLevel> for Level {
    fn from(w: WireLevel) -> Self {
        Level::new(w.0, w.1)
    }
}

/// A trade on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WireTrade {
    pub id: String,
    #[serde(serialize_with = "decimal_text")]
    pub price: Decimal,
    #[serde(serialize_with = "decimal_text")]
    pub size: Decimal,
    /// Aggressor side.
    pub side: Side,
    /// Exchange time, µs since the epoch.
    pub ts: i64,
}

impl From<&Trade> for WireTrade {
    fn from(t: &Trade) -> Self {
        Self {
            id: t.id.clone(),
            price: t.price,
            size: t.size,
            side: t.side,
            ts: t.exchange_ts.0,
        }
    }
}

/// A candle on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CandleBody {
    /// Bucket start, µs since the epoch.
    pub start: i64,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub volume: Decimal,
    /// Number of trades in the bucket.
    pub trades: u64,
    /// False while the bucket is still open.
    pub closed: bool,
    /// False when the gateway did not observe the whole interval.
    pub complete: bool,
}

impl From<&model::Candle> for CandleBody {
    fn from(c: &model::Candle) -> Self {
        Self {
            start: c.start.0,
            open: c.open,
            high: c.high,
            low: c.low,
            close: c.close,
            volume: c.volume,
            trades: c.trades,
            closed: c.closed,
            complete: c.complete,
        }
    }
}

/// A venue connection state on `status:{venue}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusBody {
    /// `connecting`, `connected`, `resyncing`, `disconnected` or `stopped`.
    pub state: String,
    pub detail: String,
}

/// Body of a `snapshot` or `update` message.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DataMessage {
    pub channel: String,
    pub seq: u64,
    pub epoch: String,
    /// Exchange time of the newest input, µs.
    pub ts: i64,
    /// Gateway receive time of the newest input, µs.
    pub recv_ts: i64,
    /// On a `snapshot`: true when it replaces a book the client already had (after a venue
    /// gap, or because this client fell behind).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resync: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bids: Option<Vec<WireLevel>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asks: Option<Vec<WireLevel>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trades: Option<Vec<WireTrade>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticker: Option<Ticker>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candle: Option<CandleBody>,
    /// `funding:{venue}:{symbol}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funding: Option<Funding>,
    /// `funding:all:{symbol}`: each member venue's latest funding, by venue name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funding_all: Option<Vec<VenueFunding>>,
    /// `mark:{venue}:{symbol}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<MarkPrice>,
    /// `oi:{venue}:{symbol}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oi: Option<OpenInterest>,
    /// `liquidations:{venue}:{symbol}`: the liquidations of one venue message, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liquidations: Option<Vec<Liquidation>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusBody>,
    /// `onchain.blocks:{chain}`: blocks, oldest change first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<ChainBlock>>,
    /// `onchain.logs:{chain}:{contract}`: the contract's logs, in the order decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<Vec<ChainLog>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<Box<AlertBody>>,
}

/// Body of an `error` message and of every REST error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// For humans. Serialized through [`crate::redact::scrub`]: text that looks like a
    /// credential (whole or truncated) is replaced, whatever code path built the message.
    #[serde(serialize_with = "crate::redact::serialize_scrubbed")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<RequestId>,
    /// The channel the error is about, when there is one (scrubbed like `message`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::redact::serialize_scrubbed_opt"
    )]
    pub channel: Option<String>,
}

/// Every server → client message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Ack of a `subscribe`: every listed channel is now subscribed.
    Subscribed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        channels: Vec<String>,
        /// For each channel the request had a `resume` position for (and was not already
        /// subscribed on this connection): `true` when every message after that position
        /// follows this ack, in order, with none missing; `false` when the client starts over.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        recovered: BTreeMap<String, bool>,
        /// For each channel this request joined without a replay: its `(epoch, seq)` at the
        /// join. The channel's next message is a snapshot (or `resync` notice) at `seq`, or
        /// an update at `seq + 1`. A client resumes from here even if it has received nothing
        /// yet (a quiet trades channel), so it never misses a message silently.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        positions: BTreeMap<String, ResumeFrom>,
    },
    /// Ack of an `unsubscribe`.
    Unsubscribed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        channels: Vec<String>,
    },
    /// Full state of a channel (book, latest ticker/candle/status).
    Snapshot(DataMessage),
    /// A change after the previous message on the channel.
    Update(DataMessage),
    /// The channel's book is no longer trustworthy and is being rebuilt; a `snapshot` with
    /// `resync: true` follows. `seq` is the channel seq this notice occupies.
    Resync {
        channel: String,
        seq: u64,
        reason: String,
    },
    /// Messages `from_seq..=to_seq` on a trades channel were not delivered to
    /// this client: it fell behind (`slow_consumer`), or its `resume` position could not be
    /// recovered (`history_expired`, `epoch_changed`: then the range is the part of the
    /// current epoch the client missed and may be empty, but anything of the old epoch after
    /// its position is lost too).
    Gap {
        channel: String,
        from_seq: u64,
        to_seq: u64,
        reason: String,
    },
    Error(ErrorBody),
    /// Ack of an `auth` (or of a successful upgrade-request authentication, sent first).
    Authenticated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The key's public id.
        key_id: String,
        scopes: Vec<String>,
        /// µs since the epoch, when the key expires (absent: never).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<i64>,
    },
    /// The session's key is being rotated out and stops working at `at` (µs since the epoch,
    /// the same instant as the REST `Sunset` header). Reconnect with the successor key before.
    KeyExpiring {
        key_id: String,
        at: i64,
        message: String,
    },
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Server time, µs.
        ts: i64,
    },
}

/// A book `update` frame's fields, encoded by [`BookUpdate::to_json`] straight from the
/// delta's levels: byte for byte the text of `ServerMessage::Update` with the same
/// `DataMessage` (tested), without building that message (two level lists, the channel and
/// epoch strings) or going through serde's escaping of every decimal. Every venue delta the
/// gateway publishes is encoded here.
#[derive(Debug, Clone, Copy)]
pub struct BookUpdate<'a> {
    pub channel: &'a str,
    pub seq: u64,
    pub epoch: &'a str,
    pub ts: i64,
    pub recv_ts: i64,
    pub bids: &'a [Level],
    pub asks: &'a [Level],
    pub checksum: u32,
}

impl BookUpdate<'_> {
    /// Bytes per level reserved up front (`["65000.01","0.12345678"],` is 26).
    const LEVEL_BYTES: usize = 32;

    pub fn to_json(&self) -> String {
        let levels = self.bids.len() + self.asks.len();
        let mut out = update_head(
            levels * Self::LEVEL_BYTES,
            self.channel,
            self.seq,
            self.epoch,
            self.ts,
            self.recv_ts,
        );
        for (key, side) in [
            (&br#","bids":["#[..], self.bids),
            (br#"],"asks":["#, self.asks),
        ] {
            out.extend_from_slice(key);
            for (i, level) in side.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                // A decimal's text is digits, `.` and `-`: nothing to escape.
                out.extend_from_slice(br#"[""#);
                write_decimal(&mut out, &level.price);
                out.extend_from_slice(br#"",""#);
                write_decimal(&mut out, &level.size);
                out.extend_from_slice(br#""]"#);
            }
        }
        out.extend_from_slice(br#"],"checksum":"#);
        out.extend_from_slice(itoa::Buffer::new().format(self.checksum).as_bytes());
        out.push(b'}');
        finish_frame(out)
    }
}

/// The text every serializer here answers with if it cannot produce a message (it never
/// fails: no maps with non-string keys, no custom errors, only valid UTF-8 written).
const SERIALIZATION_FAILED: &str =
    r#"{"type":"error","code":"internal","message":"serialization failed"}"#;

/// A hand-written `update` frame's start, as serde writes it: the type, channel, seq, epoch,
/// ts and recv_ts fields; `body` bytes reserved for the rest.
fn update_head(
    body: usize,
    channel: &str,
    seq: u64,
    epoch: &str,
    ts: i64,
    recv_ts: i64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + channel.len() + epoch.len() + body);
    let mut int = itoa::Buffer::new();
    out.extend_from_slice(br#"{"type":"update","channel":"#);
    push_json_str(&mut out, channel);
    out.extend_from_slice(br#","seq":"#);
    out.extend_from_slice(int.format(seq).as_bytes());
    out.extend_from_slice(br#","epoch":"#);
    push_json_str(&mut out, epoch);
    out.extend_from_slice(br#","ts":"#);
    out.extend_from_slice(int.format(ts).as_bytes());
    out.extend_from_slice(br#","recv_ts":"#);
    out.extend_from_slice(int.format(recv_ts).as_bytes());
    out
}

/// A hand-written frame as text: bytes, not a `String`, while it is built, so decimals are
/// written in place (`write_decimal`); checked once here (ASCII, a few ns), never copied.
fn finish_frame(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap_or_else(|_| String::from(SERIALIZATION_FAILED))
}

/// Appends `text` as a JSON string, escaped as serde_json escapes it.
fn push_json_str(out: &mut Vec<u8>, text: &str) {
    if text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        // Rare (channel names and epochs are plain ASCII): serde's own escaping.
        out.extend_from_slice(serde_json::to_string(text).unwrap_or_default().as_bytes());
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// The text of an `update` that carries trades and nothing else (every trades frame):
/// byte for byte serde's (tested), without serde's per-field dispatch and escaping of every
/// decimal. `None` for any other message.
fn trades_update_json(msg: &DataMessage) -> Option<String> {
    // Every field named, so a new one cannot be silently left out of this encoding.
    let DataMessage {
        channel,
        seq,
        epoch,
        ts,
        recv_ts,
        resync: false,
        bids: None,
        asks: None,
        checksum: None,
        trades: Some(trades),
        ticker: None,
        candle: None,
        funding: None,
        funding_all: None,
        mark: None,
        oi: None,
        liquidations: None,
        status: None,
        blocks: None,
        logs: None,
        alert: None,
    } = msg
    else {
        return None;
    };
    // `{"id":"…","price":"65000.01","size":"0.90076068","side":"sell","ts":…},` is ~90.
    let mut out = update_head(trades.len() * 96, channel, *seq, epoch, *ts, *recv_ts);
    let mut int = itoa::Buffer::new();
    out.extend_from_slice(br#","trades":["#);
    for (i, trade) in trades.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"id":"#);
        push_json_str(&mut out, &trade.id);
        out.extend_from_slice(br#","price":""#);
        write_decimal(&mut out, &trade.price);
        out.extend_from_slice(br#"","size":""#);
        write_decimal(&mut out, &trade.size);
        out.extend_from_slice(match trade.side {
            Side::Buy => br#"","side":"buy","ts":"#,
            Side::Sell => br#"","side":"sell","ts":"#,
        });
        out.extend_from_slice(int.format(trade.ts).as_bytes());
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Some(finish_frame(out))
}

impl ServerMessage {
    /// Serializes to the JSON text sent on the wire.
    pub fn to_json(&self) -> String {
        if let Self::Update(msg) = self
            && let Some(text) = trades_update_json(msg)
        {
            return text;
        }
        serde_json::to_string(self).unwrap_or_else(|_| String::from(SERIALIZATION_FAILED))
    }

    pub fn error(code: ErrorCode, message: impl Into<String>, id: Option<RequestId>) -> Self {
        Self::Error(ErrorBody {
            code,
            message: message.into(),
            id,
            channel: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::parse_decimal;

    /// The hand-written trades update is byte for byte serde's text; any other message goes
    /// through serde.
    #[test]
    fn trades_update_frames_are_serdes_text() {
        let d = |t: &str| parse_decimal(t).unwrap();
        let mut negative_zero = d("0.00");
        negative_zero.set_sign_negative(true);
        let trade = |id: &str, price, size, side, ts| WireTrade {
            id: id.into(),
            price,
            size,
            side,
            ts,
        };
        let trades = vec![
            trade(
                "1",
                d("65000.01"),
                d("0.90076068"),
                Side::Buy,
                1_672_515_782_136_000,
            ),
            trade(
                "id \"quoted\" \\ \u{1}\n\u{7f} é ε 🦀",
                d("0.0000000000000000000000000001"),
                d("79228162514264337593543950335"),
                Side::Sell,
                i64::MIN,
            ),
            trade("", d("-1.50"), negative_zero, Side::Buy, i64::MAX),
            trade("9", d("18446744073709551616.5"), d("100"), Side::Sell, 0),
        ];
        for (channel, epoch, list) in [
            ("trades:binance:BTC-USDT", "662010bee5e4c-8", trades.clone()),
            ("trades:\"q\":\u{2}", "ep\noch", trades[1..].to_vec()),
            ("trades:é:Ü", "", Vec::new()),
        ] {
            let msg = DataMessage {
                channel: channel.into(),
                seq: u64::MAX,
                epoch: epoch.into(),
                ts: -7,
                recv_ts: 1_796_642_597_034_922,
                trades: Some(list),
                ..Default::default()
            };
            let update = ServerMessage::Update(msg.clone());
            let text = update.to_json();
            assert_eq!(text, serde_json::to_string(&update).unwrap(), "{channel}");
            assert_eq!(
                serde_json::from_str::<ServerMessage>(&text).unwrap(),
                update
            );
            // Not an update of trades alone: serde's text, with its own fields.
            let snapshot = ServerMessage::Snapshot(msg.clone());
            assert!(snapshot.to_json().starts_with(r#"{"type":"snapshot","#));
            let resync = ServerMessage::Update(DataMessage {
                resync: true,
                ..msg.clone()
            });
            assert!(resync.to_json().contains(r#""resync":true"#));
            let with_status = ServerMessage::Update(DataMessage {
                status: Some(StatusBody {
                    state: "connected".into(),
                    detail: String::new(),
                }),
                ..msg
            });
            assert_eq!(
                with_status.to_json(),
                serde_json::to_string(&with_status).unwrap()
            );
            assert!(with_status.to_json().contains(r#""status":"#));
        }
    }

    /// The hand-written book update is byte for byte serde's `update` of the same message.
    #[test]
    fn book_update_frames_are_serdes_text() {
        let d = |t: &str| parse_decimal(t).unwrap();
        let mut negative_zero = d("0.00");
        negative_zero.set_sign_negative(true);
        let levels = [
            Level::new(d("65000.01"), d("0.12345678")),
            Level::new(
                d("0.0000000000000000000000000001"),
                d("79228162514264337593543950335"),
            ),
            Level::new(d("100"), d("0")),
            Level::new(d("-1.50"), negative_zero),
            Level::new(d("18446744073709551616.5"), d("1.00000000")),
        ];
        // channel, epoch, ts, bids, asks
        type Case<'a> = (&'a str, &'a str, i64, &'a [Level], &'a [Level]);
        let cases: [Case; 5] = [
            (
                "book:binance:BTC-USDT",
                "662010bee5e4c-7",
                1_672_515_782_136_000,
                &levels[..1],
                &levels[1..],
            ),
            ("book:x:Y", "e", -5, &[], &[]),
            (
                "book:\"quoted\"\\\u{1}:Z",
                "ep\noch",
                i64::MIN,
                &levels,
                &[],
            ),
            ("book:a:B", "", i64::MAX, &[], &levels),
            ("book:é:Ü", "ε", 0, &levels[2..], &levels[..2]),
        ];
        for (channel, epoch, ts, bids, asks) in cases {
            let update = BookUpdate {
                channel,
                seq: u64::MAX,
                epoch,
                ts,
                recv_ts: ts.wrapping_add(1),
                bids,
                asks,
                checksum: u32::MAX,
            };
            let by_serde = ServerMessage::Update(DataMessage {
                channel: channel.into(),
                seq: u64::MAX,
                epoch: epoch.into(),
                ts,
                recv_ts: ts.wrapping_add(1),
                bids: Some(bids.iter().map(|l| WireLevel::from(*l)).collect()),
                asks: Some(asks.iter().map(|l| WireLevel::from(*l)).collect()),
                checksum: Some(u32::MAX),
                ..Default::default()
            })
            .to_json();
            assert_eq!(update.to_json(), by_serde, "{channel}");
        }
    }

    /// Levels and trades print their decimals exactly as `Decimal`'s own `Serialize` does
    /// (trailing zeros, tiny and huge values, negative zero), and read back equal.
    #[test]
    fn wire_decimals_serialize_like_decimal_serde() {
        let mut negative_zero = parse_decimal("0.00").unwrap();
        negative_zero.set_sign_negative(true);
        let values = [
            "0",
            "0.00000000",
            "100.50",
            "65000.01",
            "1.00000000",
            "0.0000000000000000000000000001",
            "79228162514264337593543950335",
            "-1.5",
            "18446744073709551616.5",
        ]
        .map(|t| parse_decimal(t).unwrap())
        .into_iter()
        .chain([negative_zero]);
        for d in values {
            let level = WireLevel(d, d);
            let json = serde_json::to_string(&level).unwrap();
            assert_eq!(json, serde_json::to_string(&(d, d)).unwrap(), "{d}");
            assert_eq!(serde_json::from_str::<WireLevel>(&json).unwrap(), level);
            let trade = WireTrade {
                id: "1".into(),
                price: d,
                size: d,
                side: Side::Buy,
                ts: 1,
            };
            let json = serde_json::to_value(&trade).unwrap();
            assert_eq!(json["price"], serde_json::to_value(d).unwrap(), "{d}");
            assert_eq!(json["size"], serde_json::to_value(d).unwrap(), "{d}");
        }
    }

    #[test]
    fn book_update_has_documented_shape() {
        let msg = ServerMessage::Update(DataMessage {
            channel: "book:sim:BTC-USDT".into(),
            seq: 7,
            epoch: "e1".into(),
            ts: 1,
            recv_ts: 2,
            bids: Some(vec![WireLevel(
                parse_decimal("100.50").unwrap(),
                parse_decimal("0").unwrap(),
            )]),
            asks: Some(vec![]),
            checksum: Some(42),
            ..Default::default()
        });
        let json = msg.to_json();
        assert_eq!(
            json,
            r#"{"type":"update","channel":"book:sim:BTC-USDT","seq":7,"epoch":"e1","ts":1,"recv_ts":2,"bids":[["100.50","0"]],"asks":[],"checksum":42}"#
        );
        let back: ServerMessage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn error_has_code_and_message() {
        let json =
            ServerMessage::error(ErrorCode::UnknownOp, "nope", Some(RequestId::Num(3))).to_json();
        assert_eq!(
            json,
            r#"{"type":"error","code":"unknown_op","message":"nope","id":3}"#
        );
    }
}
