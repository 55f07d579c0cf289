//! What a channel remembers for joiners, behind one small trait: nothing (trades,
//! [`NoState`]), the latest value ([`super::state_latest`]) or the live book
//! ([`super::state_book`]). The channel calls it under its lock, so a join sees the state at
//! exactly the channel's seq.

use super::state_book::BookState;
use crate::frame::Frame;
use protocol::DataMessage;
use std::fmt::Debug;

/// The channel's identity, as the state needs it to build snapshot messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta<'a> {
    pub name: &'a str,
    pub epoch: &'a str,
}

/// What a joiner at seq S gets first.
#[derive(Debug)]
pub(crate) enum Joiner {
    /// Nothing: the first frame it gets is S + 1.
    Nothing,
    /// A frame already published (a book's pending `resync` notice); not cached.
    Published(Frame),
    /// A snapshot at S for joiners, still to be encoded (the channel encodes it after
    /// releasing its lock, and caches the frame until the next publish).
    Snapshot(Box<DataMessage>),
}

/// A channel's cached state.
pub(crate) trait ChannelState: Send + Debug {
    /// What a joiner at `seq` gets first. `resync` marks a snapshot as replacing one the
    /// joiner had.
    fn joiner(&self, meta: Meta<'_>, seq: u64, resync: bool) -> Joiner;

    /// Called with each update published on the channel (before it is encoded).
    fn on_update(&mut self, _msg: &DataMessage) {}

    /// The live book, for book channels.
    fn book(&self) -> Option<&BookState> {
        None
    }

    fn book_mut(&mut self) -> Option<&mut BookState> {
        None
    }
}

/// Trades, on-chain and alerts channels: joiners get only what is published after they join.
#[derive(Debug)]
pub(crate) struct NoState;

impl ChannelState for NoState {
    fn joiner(&self, _meta: Meta<'_>, _seq: u64, _resync: bool) -> Joiner {
        Joiner::Nothing
    }
}
