//! Reads the few fields the benchmark needs from a server message without parsing the JSON.
//!
//! A full `serde_json` parse of a book update costs about 1 µs, which at two million messages
//! per second would take a whole core away from the server under test (the load generator runs
//! on the same machine). The gateway's messages are serialized by serde from fixed structs, so
//! their fields always come in the same order: `type`, `channel`, then `seq` (or `from_seq` and
//! `to_seq` for a `gap`), then `epoch`, `ts`, `recv_ts` and the optional `resync` flag. The
//! scanner walks forward through that prefix (about 150 bytes) with substring searches, never
//! looking at the levels or trades that follow, and allocates nothing. It works on bytes, so the
//! raw client needs no UTF-8 validation either.

/// The message type, for the benchmark's bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Update,
    Snapshot,
    Gap,
    Resync,
    Subscribed,
    Error,
    Other,
}

/// What the benchmark reads from one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scanned<'a> {
    pub kind: Kind,
    /// Empty for messages without a channel.
    pub channel: &'a [u8],
    /// `seq` of a data or resync message; `from_seq` of a gap.
    pub seq: u64,
    /// `to_seq` of a gap; 0 otherwise.
    pub to_seq: u64,
    /// `recv_ts` of a data message (µs); 0 otherwise.
    pub recv_ts: i64,
    /// A snapshot that replaces a book the client had (`"resync":true`).
    pub resync: bool,
}

use memchr::memmem::Finder;
use std::sync::LazyLock;

/// The searchers, built once (a `Finder` precomputes its needle's prefilter).
static TYPE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"type\":\""));
static CHANNEL: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"channel\":\""));
static SEQ: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"seq\":"));
static FROM_SEQ: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"from_seq\":"));
static TO_SEQ: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"to_seq\":"));
static RECV_TS: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"recv_ts\":"));

/// The position just after the first `needle` at or after `from`.
fn after(text: &[u8], from: usize, needle: &Finder<'_>) -> Option<usize> {
    needle
        .find(text.get(from..)?)
        .map(|at| from + at + needle.needle().len())
}

/// The decimal digits at `at` (an optional `-` first) and the position after them.
fn number(bytes: &[u8], at: usize) -> (i64, usize) {
    let (negative, mut i) = match bytes.get(at) {
        Some(b'-') => (true, at + 1),
        _ => (false, at),
    };
    let mut value: i64 = 0;
    while let Some(digit) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
        value = value.wrapping_mul(10).wrapping_add(i64::from(digit - b'0'));
        i += 1;
    }
    (if negative { -value } else { value }, i)
}

/// Scans one server message. Unknown or malformed text yields [`Kind::Other`].
pub fn scan(text: &[u8]) -> Scanned<'_> {
    let mut out = Scanned {
        kind: Kind::Other,
        channel: b"",
        seq: 0,
        to_seq: 0,
        recv_ts: 0,
        resync: false,
    };
    // serde writes the tag first, so the fast path is a prefix compare.
    const PREFIX: &[u8] = b"{\"type\":\"";
    let at = if text.starts_with(PREFIX) {
        PREFIX.len()
    } else {
        let Some(at) = after(text, 0, &TYPE) else {
            return out;
        };
        at
    };
    let rest = &text[at..];
    out.kind = if rest.starts_with(b"update\"") {
        Kind::Update
    } else if rest.starts_with(b"snapshot\"") {
        Kind::Snapshot
    } else if rest.starts_with(b"gap\"") {
        Kind::Gap
    } else if rest.starts_with(b"resync\"") {
        Kind::Resync
    } else if rest.starts_with(b"subscribed\"") {
        return Scanned {
            kind: Kind::Subscribed,
            ..out
        };
    } else if rest.starts_with(b"error\"") {
        return Scanned {
            kind: Kind::Error,
            ..out
        };
    } else {
        return out;
    };
    let Some(start) = after(text, at, &CHANNEL) else {
        return Scanned {
            kind: Kind::Other,
            ..out
        };
    };
    let Some(len) = memchr::memchr(b'"', &text[start..]) else {
        return Scanned {
            kind: Kind::Other,
            ..out
        };
    };
    out.channel = &text[start..start + len];
    let mut at = start + len;
    if out.kind == Kind::Gap {
        if let Some(from) = after(text, at, &FROM_SEQ) {
            let (from_seq, end) = number(text, from);
            out.seq = from_seq as u64;
            at = end;
        }
        if let Some(to) = after(text, at, &TO_SEQ) {
            out.to_seq = number(text, to).0 as u64;
        }
        return out;
    }
    if let Some(seq) = after(text, at, &SEQ) {
        let (seq, end) = number(text, seq);
        out.seq = seq as u64;
        at = end;
    }
    if out.kind == Kind::Resync {
        return out;
    }
    if let Some(ts) = after(text, at, &RECV_TS) {
        let (recv_ts, end) = number(text, ts);
        out.recv_ts = recv_ts;
        out.resync = text[end..].starts_with(b",\"resync\":true");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{DataMessage, ServerMessage, WireLevel};

    fn data(seq: u64, resync: bool) -> DataMessage {
        DataMessage {
            channel: "book:sim:BTC-USDT".into(),
            seq,
            epoch: "e-1".into(),
            ts: 5,
            recv_ts: 1_700_000_000_123_456,
            resync,
            bids: Some(vec![WireLevel(1.into(), 2.into())]),
            asks: Some(vec![]),
            checksum: Some(7),
            ..Default::default()
        }
    }

    /// The scanner relies on serde's field order; this fails if the wire format changes.
    #[test]
    fn reads_messages_the_server_serializes() {
        let cases = [
            (
                ServerMessage::Update(data(42, false)),
                Kind::Update,
                &b"book:sim:BTC-USDT"[..],
                42,
                0,
                1_700_000_000_123_456,
                false,
            ),
            (
                ServerMessage::Snapshot(data(7, true)),
                Kind::Snapshot,
                &b"book:sim:BTC-USDT"[..],
                7,
                0,
                1_700_000_000_123_456,
                true,
            ),
            (
                ServerMessage::Snapshot(data(8, false)),
                Kind::Snapshot,
                &b"book:sim:BTC-USDT"[..],
                8,
                0,
                1_700_000_000_123_456,
                false,
            ),
            (
                ServerMessage::Gap {
                    channel: "trades:sim:BTC-USDT".into(),
                    from_seq: 10,
                    to_seq: 19,
                    reason: "slow_consumer".into(),
                },
                Kind::Gap,
                &b"trades:sim:BTC-USDT"[..],
                10,
                19,
                0,
                false,
            ),
            (
                ServerMessage::Resync {
                    channel: "book:sim:ETH-USDT".into(),
                    seq: 99,
                    reason: "gap".into(),
                },
                Kind::Resync,
                &b"book:sim:ETH-USDT"[..],
                99,
                0,
                0,
                false,
            ),
            (
                ServerMessage::Subscribed {
                    id: None,
                    channels: vec!["book:sim:BTC-USDT".into()],
                },
                Kind::Subscribed,
                &b""[..],
                0,
                0,
                0,
                false,
            ),
            (
                ServerMessage::error(protocol::ErrorCode::BadRequest, "no", None),
                Kind::Error,
                &b""[..],
                0,
                0,
                0,
                false,
            ),
            (
                ServerMessage::Pong { id: None, ts: 1 },
                Kind::Other,
                &b""[..],
                0,
                0,
                0,
                false,
            ),
        ];
        for (message, kind, channel, seq, to_seq, recv_ts, resync) in cases {
            let text = message.to_json();
            let got = scan(text.as_bytes());
            let want = Scanned {
                kind,
                channel,
                seq,
                to_seq,
                recv_ts,
                resync,
            };
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn malformed_text_is_other() {
        for text in [
            "",
            "{",
            "{\"type\":\"update\"",
            "{\"type\":\"update\",\"channel\":\"x",
        ] {
            assert_eq!(scan(text.as_bytes()).kind, Kind::Other, "{text}");
        }
        assert_eq!(number(b"-12x", 0), (-12, 3));
    }
}
