//! Serialized messages.

/// A frame's JSON text, valid UTF-8 by construction and already in the form the WebSocket layer
/// sends: a session hands it to its socket as is (a reference-count bump), with no UTF-8 check
/// per client and message. Converts into [`bytes::Bytes`] for the bus and the output taps.
pub type FrameText = axum::extract::ws::Utf8Bytes;

/// What a frame is, for the subscriber's bookkeeping (the bytes say the same in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Snapshot,
    Update,
    /// A `resync` notice: the channel's book is being rebuilt.
    Resync,
}

/// One message on a channel, already serialized as JSON text. Cloning is a reference-count bump,
/// so fan-out to N subscribers costs N pointer copies, not N encodings.
#[derive(Debug, Clone)]
pub struct Frame {
    pub seq: u64,
    pub kind: FrameKind,
    /// Gateway receive time of the input this frame reflects (µs); drives the latency metric.
    pub recv_ts: i64,
    /// UTF-8 JSON text of a [`protocol::ServerMessage`].
    pub text: FrameText,
}

impl Frame {
    pub fn new(seq: u64, kind: FrameKind, recv_ts: i64, text: String) -> Self {
        Self {
            seq,
            kind,
            recv_ts,
            text: FrameText::from(text),
        }
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        self.text.as_str()
    }
}
