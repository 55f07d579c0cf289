//! Ticker, candles and status channels: the latest value, replayed to joiners as a `snapshot`.

use super::state::{ChannelState, Joiner, Meta};
use crate::frame::{Frame, FrameKind};
use protocol::{DataMessage, ServerMessage};

#[derive(Debug, Default)]
pub(crate) struct LatestState {
    latest: Option<Box<DataMessage>>,
}

impl ChannelState for LatestState {
    fn joiner(&self, _meta: Meta<'_>, seq: u64, resync: bool) -> Joiner {
        let Some(latest) = &self.latest else {
            return Joiner::Nothing;
        };
        let mut msg = (**latest).clone();
        msg.resync = resync;
        Joiner::Snapshot(Frame::new(
            seq,
            FrameKind::Snapshot,
            msg.recv_ts,
            ServerMessage::Snapshot(msg).to_json(),
        ))
    }

    fn on_update(&mut self, msg: &DataMessage) {
        self.latest = Some(Box::new(msg.clone()));
    }
}
