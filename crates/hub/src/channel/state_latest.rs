//! Ticker, candles and status channels: the latest value, replayed to joiners as a `snapshot`.

use super::state::{ChannelState, Joiner, Meta};
use protocol::DataMessage;

#[derive(Debug, Default)]
pub(crate) struct LatestState {
    latest: Option<Box<DataMessage>>,
}

impl ChannelState for LatestState {
    fn joiner(&self, _meta: Meta<'_>, _seq: u64, resync: bool) -> Joiner {
        let Some(latest) = &self.latest else {
            return Joiner::Nothing;
        };
        let mut msg = (**latest).clone();
        msg.resync = resync;
        Joiner::Snapshot(Box::new(msg))
    }

    fn on_update(&mut self, msg: &DataMessage) {
        self.latest = Some(Box::new(msg.clone()));
    }
}
