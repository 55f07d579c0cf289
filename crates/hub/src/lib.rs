//! The hub: named channels, per-channel sequencing and fan-out to any number of subscribers.
//!
//! # Layout
//!
//! - [`bus`]: the [`Bus`] seam between publishers and subscribers ([`Publisher`] and [`Topic`]
//!   views of a channel), its guarantees, and the [`bus::contract`] tests every implementation
//!   passes. `bus_memory` implements it in-process over the [`Hub`]'s channels.
//! - [`frame`]: a serialized message ([`Frame`]), encoded once and shared by every subscriber.
//! - [`channel`]: one channel ([`ChannelHandle`]): its `seq`/`epoch`, its broadcast ring, and
//!   its cached state from which new and lagging subscribers get a consistent snapshot, behind
//!   the small `ChannelState` trait (`channel/state.rs`: nothing for trades; `state_latest.rs`:
//!   the latest value for tickers, candles and status; `state_book.rs`: the live book), and its
//!   resume history (`channel/history.rs`).
//! - [`registry`]: the [`Hub`], the set of channels the gateway serves.
//!
//! # Guarantees
//!
//! - **Ordering and gap-freedom**: on a channel, every published frame has `seq` = previous + 1
//!   (`resync` notices and resync snapshots included). Publishing holds the channel's lock, so
//!   frames enter the ring in `seq` order.
//! - **Consistent joins**: [`ChannelHandle::subscribe`] returns the snapshot at `seq` S and a
//!   receiver whose first frame is S + 1, taken atomically under the same lock.
//! - **Bounded memory**: each channel's ring holds at most `capacity` frames whatever the number
//!   or speed of subscribers. A subscriber that falls more than `capacity` frames behind is told
//!   so (`Lagged`) and must rejoin through `subscribe`, which the server does (conflation).
//! - **Resume without loss or partial replay**: each channel keeps its last frames (bounded by
//!   count and age). [`ChannelHandle::resume`] replays exactly the frames after a client's
//!   `(epoch, seq)` and hands over a receiver that continues after them, atomically under the
//!   channel lock; if any of them is gone (or the epoch differs) it replays nothing and joins
//!   fresh instead.
//! - **Publishing never waits for subscribers**: a slow subscriber cannot slow the publisher or
//!   the other subscribers.

pub mod bus;
mod bus_memory;
pub mod channel;
pub mod frame;
pub mod registry;

pub use bus::{Bus, Publisher, Topic};
pub use channel::{
    CacheMode, ChannelBook, ChannelHandle, HistoryLimits, Lost, Resumed, Subscription,
};
pub use frame::{Frame, FrameKind, FrameText};
pub use registry::{Hub, HubConfig, HubConfigError};
