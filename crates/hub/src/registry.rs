//! The set of channels the gateway serves.

use crate::channel::{CacheMode, ChannelHandle, HistoryLimits};
use model::{Channel, Timestamp};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// Hub settings (`[hub]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Frames each channel's ring keeps for subscribers that are momentarily behind. A
    /// subscriber further behind than this is conflated (book: fresh snapshot) or told about
    /// the gap (trades). Memory per channel is bounded by this many frames.
    pub channel_capacity: usize,
    /// Frames each channel keeps for clients that reconnect and `resume` (0: resume never
    /// recovers). A client whose missed messages are all still here gets them replayed.
    pub history_size: usize,
    /// Seconds a frame stays in the resume history, whatever `history_size` allows.
    pub history_ttl_secs: u64,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            channel_capacity: 1024,
            history_size: 1024,
            history_ttl_secs: 10,
        }
    }
}

/// A `[hub]` setting out of range: the key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} {message}")]
pub struct HubConfigError {
    pub key: &'static str,
    pub message: &'static str,
}

impl HubConfig {
    /// The smallest `channel_capacity` [`validate`](Self::validate) accepts.
    pub const MIN_CHANNEL_CAPACITY: usize = 16;

    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), HubConfigError> {
        let error = |key, message| Err(HubConfigError { key, message });
        if !(Self::MIN_CHANNEL_CAPACITY..=1_048_576).contains(&self.channel_capacity) {
            return error("hub.channel_capacity", "must be between 16 and 1048576");
        }
        if self.history_size > 1_048_576 {
            return error("hub.history_size", "must be between 0 and 1048576");
        }
        if !(1..=3600).contains(&self.history_ttl_secs) {
            return error("hub.history_ttl_secs", "must be between 1 and 3600");
        }
        Ok(())
    }

    pub fn history_limits(&self) -> HistoryLimits {
        HistoryLimits {
            size: self.history_size,
            ttl: Duration::from_secs(self.history_ttl_secs),
        }
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
    /// Private `alerts` channels, by owner (principal).
    private: RwLock<HashMap<String, Arc<ChannelHandle>>>,
}

impl Hub {
    pub fn new(config: HubConfig) -> Self {
        Self {
            config,
            epoch_prefix: format!("{:x}", Timestamp::now().0),
            channels: RwLock::new(BTreeMap::new()),
            private: RwLock::new(HashMap::new()),
        }
    }

    /// The `alerts` channel of `owner` (a principal), created on first use with the same
    /// seq, ring and resume history as any channel. Private channels are not listed by
    /// [`Hub::names`] nor found by [`Hub::get`]: a session reaches only its own principal's.
    pub fn private(&self, owner: &str) -> Arc<ChannelHandle> {
        if let Some(existing) = self.private.read().get(owner) {
            return existing.clone();
        }
        let mut private = self.private.write();
        let count = private.len();
        private
            .entry(owner.to_string())
            .or_insert_with(|| {
                let epoch = format!("{}-p{count:x}", self.epoch_prefix);
                Arc::new(ChannelHandle::new(
                    Channel::alerts(),
                    epoch.into(),
                    self.config.channel_capacity,
                    self.config.history_limits(),
                    CacheMode::None,
                ))
            })
            .clone()
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
                    self.config.history_limits(),
                    mode,
                ))
            })
            .clone()
    }

    /// The replica of a channel sequenced on another node (see `channel/replica.rs`), created
    /// with `mode` and `epoch` if there is none. An existing replica is returned whatever its
    /// epoch: a new epoch of the source is taken in place by `replica_base`, so subscribers
    /// are moved over (told with a resync) rather than left on a channel that gets no more
    /// frames. Returns `None` when a local (non-replica) channel has that name.
    pub fn register_replica(
        &self,
        channel: Channel,
        mode: CacheMode,
        epoch: &str,
    ) -> Option<Arc<ChannelHandle>> {
        let name = channel.to_string();
        let mut channels = self.channels.write();
        if let Some(existing) = channels.get(&name) {
            return existing.is_replica().then(|| existing.clone());
        }
        let handle = Arc::new(ChannelHandle::new_replica(
            channel,
            epoch.into(),
            self.config.channel_capacity,
            self.config.history_limits(),
            mode,
        ));
        channels.insert(name, handle.clone());
        Some(handle)
    }

    /// Every channel, by name (what a forwarder scans for new channels).
    pub fn handles(&self) -> Vec<Arc<ChannelHandle>> {
        self.channels.read().values().cloned().collect()
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
