//! The venue-wide connection state, aggregated over the venue's connections.

use crate::ConnectionState;
use std::sync::Mutex;

/// What each connection of a venue last reported, so every report can carry the venue state:
/// `connected` while every connection is up and every book in sync, `resyncing` while some
/// connection is down or some book is being rebuilt but data still flows, `disconnected` when
/// no connection is up. (Ingest treats `disconnected` as "every book of the venue is lost",
/// which is then true.)
#[derive(Debug)]
pub(crate) struct StatusBoard {
    shards: Mutex<Vec<ShardState>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct ShardState {
    connected: bool,
    syncing: usize,
}

impl StatusBoard {
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            shards: Mutex::new(vec![ShardState::default(); shards]),
        }
    }

    /// Records one connection's state; returns the venue state and whether it changed.
    pub(crate) fn update(&self, shard: usize, connected: bool, syncing: usize) -> ConnectionState {
        // A poisoned lock only means another shard task panicked; the data is still plain.
        let mut shards = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = shards.get_mut(shard) {
            *s = ShardState { connected, syncing };
        }
        let up = shards.iter().filter(|s| s.connected).count();
        if up == 0 {
            ConnectionState::Disconnected
        } else if up < shards.len() || shards.iter().any(|s| s.syncing > 0) {
            ConnectionState::Resyncing
        } else {
            ConnectionState::Connected
        }
    }
}
