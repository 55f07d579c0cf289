//! The in-process [`Bus`]: the [`Hub`]'s channels are both publisher and topic, so publishing,
//! sequencing, the ring and the resume history all happen under one channel lock.

use crate::bus::{Bus, Publisher, Topic};
use crate::channel::{CacheMode, ChannelBook, ChannelHandle, Resumed, Subscription};
use crate::registry::Hub;
use book::{BookError, StaleReason};
use model::{BookDelta, BookSnapshot, Channel, Level};
use protocol::{DataMessage, ResumeFrom};
use std::sync::Arc;

impl Bus for Hub {
    fn publisher(&self, channel: Channel, mode: CacheMode) -> Arc<dyn Publisher> {
        self.register(channel, mode)
    }

    fn topic(&self, name: &str) -> Option<Arc<dyn Topic>> {
        self.get_by_name(name).map(|h| h as Arc<dyn Topic>)
    }

    fn private_publisher(&self, owner: &str) -> Arc<dyn Publisher> {
        self.private(owner)
    }

    fn private_topic(&self, owner: &str) -> Arc<dyn Topic> {
        self.private(owner)
    }

    fn names(&self) -> Vec<String> {
        Hub::names(self)
    }

    fn len(&self) -> usize {
        Hub::len(self)
    }
}

impl Publisher for ChannelHandle {
    fn name(&self) -> &Arc<str> {
        ChannelHandle::name(self)
    }

    fn publish(&self, msg: DataMessage) -> u64 {
        ChannelHandle::publish(self, msg)
    }

    fn book_snapshot(&self, snap: &BookSnapshot) -> Result<u64, BookError> {
        ChannelHandle::book_snapshot(self, snap)
    }

    fn book_delta(&self, delta: &BookDelta) -> Result<Option<u64>, BookError> {
        ChannelHandle::book_delta(self, delta)
    }

    fn book_stale(&self, reason: StaleReason) {
        ChannelHandle::book_stale(self, reason)
    }

    fn book_best(&self) -> (Option<Level>, Option<Level>) {
        ChannelHandle::book_best(self)
    }

    fn book_live(&self) -> bool {
        ChannelHandle::book_live(self)
    }

    fn book_view(&self, depth: usize) -> Option<ChannelBook> {
        ChannelHandle::book_view(self, depth)
    }
}

impl Topic for ChannelHandle {
    fn channel(&self) -> &Channel {
        ChannelHandle::channel(self)
    }

    fn name(&self) -> &Arc<str> {
        ChannelHandle::name(self)
    }

    fn epoch(&self) -> Arc<str> {
        ChannelHandle::epoch(self)
    }

    fn seq(&self) -> u64 {
        ChannelHandle::seq(self)
    }

    fn subscribe(&self, resync: bool) -> Subscription {
        ChannelHandle::subscribe(self, resync)
    }

    fn resume(&self, from: &ResumeFrom) -> Resumed {
        ChannelHandle::resume(self, from)
    }

    fn book_view(&self, depth: usize) -> Option<ChannelBook> {
        ChannelHandle::book_view(self, depth)
    }

    fn subscriber_count(&self) -> usize {
        ChannelHandle::subscriber_count(self)
    }

    fn history_start(&self) -> u64 {
        ChannelHandle::history_start(self)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Hub, HubConfig, bus::contract};

    #[test]
    fn memory_bus_meets_the_contract() {
        contract(&Hub::new(HubConfig::default()));
    }
}
