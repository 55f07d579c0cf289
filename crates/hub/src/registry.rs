//! The set of channels the gateway serves.

use crate::channel::{CacheMode, ChannelHandle};
use model::{Channel, Timestamp};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Hub settings (`[hub]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Frames each channel's ring keeps for subscribers that are momentarily behind. A
    /// subscriber further behind than this is conflated (book: fresh snapshot) or told about
    /// the gap (trades). Memory per channel is bounded by this many frames.
    pub channel_capacity: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            channel_capacity: 1024,
        }
    }
}

impl HubConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(16..=1_048_576).contains(&self.channel_capacity) {
            return Err("hub.channel_capacity must be between 16 and 1048576".into());
        }
        Ok(())
    }
}

/// All channels, by canonical name. Channels are registered by the ingest stage when it learns
/// an instrument and are never removed while the gateway runs (their epoch is fixed for the
/// life of the process and changes on restart).
#[derive(Debug)]
pub struct Hub {
    config: HubConfig,
    /// Prefix of every channel's epoch: the process start time, so a restart changes epochs.
    epoch_prefix: String,
    channels: RwLock<BTreeMap<String, Arc<ChannelHandle>>>,
}

impl Hub {
    pub fn new(config: HubConfig) -> Self {
        Self {
            config,
            epoch_prefix: format!("{:x}", Timestamp::now().0),
            channels: RwLock::new(BTreeMap::new()),
        }
    }

    /// Returns the channel, creating it with `mode` if it does not exist yet.
    pub fn register(&self, channel: Channel, mode: CacheMode) -> Arc<ChannelHandle> {
        let name = channel.to_string();
        if let Some(existing) = self.channels.read().get(&name) {
            return existing.clone();
        }
        let mut channels = self.channels.write();
        let count = channels.len();
        channels
            .entry(name)
            .or_insert_with(|| {
                let epoch = format!("{}-{count:x}", self.epoch_prefix);
                Arc::new(ChannelHandle::new(
                    channel,
                    epoch.into(),
                    self.config.channel_capacity,
                    mode,
                ))
            })
            .clone()
    }

    pub fn get(&self, channel: &Channel) -> Option<Arc<ChannelHandle>> {
        self.get_by_name(&channel.to_string())
    }

    pub fn get_by_name(&self, name: &str) -> Option<Arc<ChannelHandle>> {
        self.channels.read().get(name).cloned()
    }

    /// Every channel name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.channels.read().keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.channels.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
