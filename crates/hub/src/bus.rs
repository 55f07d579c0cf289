//! The [`Bus`] seam: how publishers (ingest, the consolidator, on-chain, alerts) hand frames to
//! the channels and how subscribers (WebSocket sessions, REST book reads, the alert evaluator)
//! read them, without knowing whether the channels live in this process ([`crate::Hub`], in
//! `bus_memory.rs`) or behind a message broker (the cluster issue's NATS JetStream bus).
//!
//! A bus hands out two views of a channel: a [`Publisher`] to whoever owns its input, and a
//! [`Topic`] to whoever reads it. In one process both are the same channel object; in a cluster
//! the publisher lives on the ingest node that owns the venue and the topics on every edge.
//!
//! # Guarantees (every implementation; checked by [`contract`])
//!
//! - **Sequencing is done once, by the publisher side.** Each frame's `seq` (and the channel's
//!   `epoch`) is assigned when it is published, and travels with the frame: every subscriber, on
//!   any node, sees the same `seq` for the same frame. An implementation that forwards frames
//!   (NATS) carries `seq`/`epoch` inside the frame and never renumbers.
//! - **Ordering per channel, gap-free**: on a channel every frame has `seq` = previous + 1
//!   (`resync` notices and resync snapshots included), and a subscriber receives them in that
//!   order. There is no ordering across channels.
//! - **Atomic join**: [`Topic::subscribe`] returns the channel state at `seq` S (a snapshot for
//!   book, ticker, candles and status channels; nothing for trades) and a receiver whose first
//!   frame is S + 1. No frame can fall between the two, nor be in both.
//! - **Publish and history are atomic**: a frame is in the resume history exactly when it has
//!   been offered to subscribers; a resume can never see a frame a live subscriber has not been
//!   offered, nor miss one it has.
//! - **Resume is exact or explicit**: [`Topic::resume`] from `(epoch, seq)` either replays every
//!   frame after `seq` and continues after the last of them (`Ok`), or replays nothing and joins
//!   fresh with a snapshot marked as a resync, saying why ([`Lost`]): another epoch, history
//!   expired, or a position ahead of the channel. Never a partial replay, never a silent hole.
//! - **After a gap** (a subscriber fell more than the ring's capacity behind): its receiver
//!   reports `Lagged` and yields nothing more from the old position; the subscriber rejoins
//!   through `subscribe(true)` and gets a resync snapshot at the current seq (or, for trades,
//!   nothing, and tells its client about the gap). A gap is never filled silently.
//! - **Publishing never waits for subscribers**: a slow subscriber cannot slow the publisher or
//!   the other subscribers; memory per channel is bounded by the ring and the history limits.
//! - **Epochs**: a channel's epoch changes whenever its seq space restarts (a gateway restart, or
//!   in a cluster a new owner of the venue), so positions from the old one are never replayed.

use crate::channel::{CacheMode, ChannelBook, Resumed, Subscription};
use book::{BookError, StaleReason};
use model::{BookDelta, BookSnapshot, Channel, Level};
use protocol::{DataMessage, ResumeFrom};
use std::fmt::Debug;
use std::sync::Arc;

/// The set of channels, seen by publishers and subscribers. See the module docs for the
/// guarantees every implementation keeps.
pub trait Bus: Send + Sync + Debug {
    /// The publishing side of `channel`, declared with `mode` if it does not exist yet
    /// (idempotent: a second call returns the same channel, whatever its `mode`).
    fn publisher(&self, channel: Channel, mode: CacheMode) -> Arc<dyn Publisher>;

    /// The reading side of a public channel, by canonical name; `None` if nobody publishes it.
    fn topic(&self, name: &str) -> Option<Arc<dyn Topic>>;

    /// The publishing side of `owner`'s private `alerts` channel (created on first use).
    fn private_publisher(&self, owner: &str) -> Arc<dyn Publisher>;

    /// The reading side of `owner`'s private `alerts` channel (created on first use). Private
    /// channels are not listed by [`Bus::names`] nor found by [`Bus::topic`].
    fn private_topic(&self, owner: &str) -> Arc<dyn Topic>;

    /// Every public channel name, sorted.
    fn names(&self) -> Vec<String>;

    /// The number of public channels.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The publishing side of one channel. Each method assigns the next `seq` (when it publishes)
/// and returns it; `channel`, `seq` and `epoch` of a message are filled in here.
///
/// A book channel's publisher is the book's one owner: it applies the venue's snapshots and
/// deltas and answers best-price reads ([`Publisher::book_best`]) from the same state, so the
/// ticker and consolidator never read a book back through the subscribers' side.
pub trait Publisher: Send + Sync + Debug {
    /// Canonical channel name.
    fn name(&self) -> &Arc<str>;

    /// Publishes an update on a trades/ticker/candles/status/alerts channel. Returns its seq.
    fn publish(&self, msg: DataMessage) -> u64;

    /// Replaces the book with a venue snapshot and publishes it (as a resync if the book was
    /// live before). On error the book is stale and a `resync` notice has been published.
    fn book_snapshot(&self, snap: &BookSnapshot) -> Result<u64, BookError>;

    /// Applies a venue delta and publishes the changed levels; `Ok(None)` when the delta was
    /// older than the book. On a terminal error the book is stale and a `resync` notice has
    /// been published; the caller must obtain a fresh snapshot.
    fn book_delta(&self, delta: &BookDelta) -> Result<Option<u64>, BookError>;

    /// Marks the book stale and tells subscribers (once, until the next snapshot).
    fn book_stale(&self, reason: StaleReason);

    /// Best bid and ask of a live book (both `None` otherwise).
    fn book_best(&self) -> (Option<Level>, Option<Level>);

    /// Whether the book is live (false while it is being rebuilt, or not a book channel).
    fn book_live(&self) -> bool;

    /// The owner's consistent copy of the top `depth` levels per side at the channel's seq
    /// (what the consolidator merges), or `None` if this is not a book channel.
    fn book_view(&self, depth: usize) -> Option<ChannelBook>;
}

/// The reading side of one channel.
pub trait Topic: Send + Sync + Debug {
    fn channel(&self) -> &Channel;

    /// Canonical channel name.
    fn name(&self) -> &Arc<str>;

    /// The epoch of the channel's seq space.
    fn epoch(&self) -> Arc<str>;

    /// The seq of the last published frame (0 before the first).
    fn seq(&self) -> u64;

    /// Joins the channel: state at seq S and a receiver from S + 1, atomically. `resync` marks
    /// the snapshot as replacing one the subscriber had (a rejoin after a gap).
    fn subscribe(&self, resync: bool) -> Subscription;

    /// Joins right after `from`: an exact replay, or a fresh resync join and why not.
    fn resume(&self, from: &ResumeFrom) -> Resumed;

    /// A consistent copy of the top `depth` levels per side (`usize::MAX`: all; 0: none, only
    /// seq, liveness and checksum) at the channel's seq, or `None` if this is not a book channel.
    fn book_view(&self, depth: usize) -> Option<ChannelBook>;

    /// Local subscribers right now.
    fn subscriber_count(&self) -> usize;

    /// The first seq still in the resume history (`seq + 1` when it is empty).
    fn history_start(&self) -> u64;
}

/// Contract tests every [`Bus`] must pass, given a fresh, empty bus with a ring of at least 16
/// frames and a resume history of at least 16 frames and 1 s. Panics on a violation.
pub fn contract(bus: &dyn Bus) {
    use crate::channel::Lost;
    use crate::frame::FrameKind;
    use book::ChecksumAlgo;
    use model::{Timestamp, parse_decimal};
    use tokio::sync::broadcast::error::TryRecvError;

    let trades: Channel = "trades:sim:BTC-USDT".parse().expect("channel name");
    assert!(bus.is_empty());
    assert!(
        bus.topic(&trades.to_string()).is_none(),
        "no topic before a publisher"
    );

    // Sequencing by the publisher, gap-free, in order, same seq for every subscriber.
    let publisher = bus.publisher(trades.clone(), CacheMode::None);
    let again = bus.publisher(trades.clone(), CacheMode::None);
    assert_eq!(publisher.name(), again.name(), "publisher is idempotent");
    let topic = bus
        .topic(&trades.to_string())
        .expect("topic after publisher");
    assert_eq!(topic.channel(), &trades);
    assert_eq!(topic.seq(), 0);
    let mut first = topic.subscribe(false);
    assert_eq!((first.seq, first.initial.is_none()), (0, true));
    for n in 1..=3u64 {
        assert_eq!(publisher.publish(DataMessage::default()), n);
    }
    let mut second = topic.subscribe(false);
    assert_eq!(
        second.seq, 3,
        "a late joiner starts after what was published"
    );
    assert_eq!(again.publish(DataMessage::default()), 4);
    for n in 1..=4u64 {
        let frame = first.rx.try_recv().expect("frame in order");
        assert_eq!((frame.seq, frame.kind), (n, FrameKind::Update));
        let msg: serde_json::Value = serde_json::from_str(frame.as_str()).expect("json frame");
        assert_eq!(msg["seq"], n, "seq travels inside the frame");
        assert_eq!(msg["epoch"].as_str(), Some(topic.epoch().as_ref()));
        assert_eq!(msg["channel"].as_str(), Some(topic.name().as_ref()));
    }
    assert!(matches!(first.rx.try_recv(), Err(TryRecvError::Empty)));
    assert_eq!(second.rx.try_recv().expect("after join").seq, 4);

    // Resume: exact replay, or a fresh join saying why.
    let at = |epoch: &str, seq| ResumeFrom {
        epoch: epoch.into(),
        seq,
    };
    let resumed = topic.resume(&at(&topic.epoch(), 1));
    assert_eq!(resumed.outcome, Ok(()));
    let replayed: Vec<u64> = resumed.subscription.replay.iter().map(|f| f.seq).collect();
    assert_eq!(replayed, vec![2, 3, 4]);
    assert_eq!(resumed.subscription.seq, 4);
    let resumed = topic.resume(&at("another-epoch", 1));
    assert_eq!(resumed.outcome, Err(Lost::EpochChanged));
    assert!(
        resumed.subscription.replay.is_empty(),
        "never a partial replay"
    );
    assert_eq!(
        topic.resume(&at(&topic.epoch(), 9)).outcome,
        Err(Lost::Ahead)
    );

    // Publish and history are atomic: everything offered is in the history.
    assert_eq!(topic.history_start(), 1);

    // Latest-value channels: joiners get the last value as a snapshot at S.
    let ticker: Channel = "ticker:sim:BTC-USDT".parse().expect("channel name");
    let ticker_pub = bus.publisher(ticker.clone(), CacheMode::Latest);
    let ticker_topic = bus.topic(&ticker.to_string()).expect("ticker topic");
    assert!(ticker_topic.subscribe(false).initial.is_none());
    ticker_pub.publish(DataMessage::default());
    let joined = ticker_topic.subscribe(false);
    let initial = joined.initial.expect("latest value");
    assert_eq!(
        (joined.seq, initial.seq, initial.kind),
        (1, 1, FrameKind::Snapshot)
    );

    // Book channels: the publisher owns the book and answers best-price reads; a joiner gets
    // the book at S and deltas from S + 1; a gap goes stale, explicitly.
    let books: Channel = "book:sim:BTC-USDT".parse().expect("channel name");
    let book_pub = bus.publisher(books.clone(), CacheMode::Book(ChecksumAlgo::None));
    let book_topic = bus.topic(&books.to_string()).expect("book topic");
    assert!(!book_pub.book_live());
    let level = |p: &str, q: &str| {
        Level::new(
            parse_decimal(p).expect("decimal"),
            parse_decimal(q).expect("decimal"),
        )
    };
    let snapshot = BookSnapshot {
        seq: 10,
        bids: vec![level("99", "1")],
        asks: vec![level("101", "1")],
        exchange_ts: Timestamp(1),
        recv_ts: Timestamp(1),
        ..Default::default()
    };
    assert_eq!(book_pub.book_snapshot(&snapshot), Ok(1));
    assert!(book_pub.book_live());
    assert_eq!(
        book_pub.book_best(),
        (Some(level("99", "1")), Some(level("101", "1")))
    );
    let mut joined = book_topic.subscribe(false);
    assert_eq!(joined.seq, 1);
    assert_eq!(
        joined.initial.as_ref().map(|f| f.kind),
        Some(FrameKind::Snapshot)
    );
    let delta = BookDelta {
        first_seq: 11,
        last_seq: 11,
        bids: vec![level("100", "2")],
        exchange_ts: Timestamp(2),
        recv_ts: Timestamp(2),
        ..Default::default()
    };
    assert_eq!(book_pub.book_delta(&delta), Ok(Some(2)));
    assert_eq!(joined.rx.try_recv().expect("delta").seq, 2);
    assert_eq!(book_pub.book_best().0, Some(level("100", "2")));
    let view = book_topic.book_view(10).expect("book view");
    assert_eq!((view.seq, view.live, view.bids.len()), (2, true, 2));
    let owned = book_pub.book_view(10).expect("owner's view");
    assert_eq!(
        (owned.seq, owned.bids, owned.checksum),
        (view.seq, view.bids, view.checksum)
    );
    book_pub.book_stale(StaleReason::Requested);
    let notice = joined.rx.try_recv().expect("resync notice");
    assert_eq!((notice.seq, notice.kind), (3, FrameKind::Resync));
    assert!(!book_pub.book_live());
    assert_eq!(book_pub.book_best(), (None, None));

    // Private channels are reached only by owner.
    let alerts = bus.private_publisher("acme");
    let mut acme = bus.private_topic("acme").subscribe(false);
    assert_eq!(alerts.publish(DataMessage::default()), 1);
    assert_eq!(acme.rx.try_recv().expect("alert").seq, 1);
    assert_eq!(bus.private_topic("other").seq(), 0);
    assert!(bus.topic(bus.private_topic("acme").name()).is_none());
    assert_eq!(bus.names().len(), 3, "private channels are not listed");
    assert_eq!(bus.len(), 3);
}
