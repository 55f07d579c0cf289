//! One channel: sequencing, the broadcast ring and the cached state snapshots come from.

use crate::frame::{Frame, FrameKind};
use book::{BookError, ChecksumAlgo, DeltaOutcome, StaleReason};
use model::{BookDelta, BookSnapshot, Channel, Level};
use parking_lot::Mutex;
use protocol::{BookUpdate, DataMessage, ServerMessage};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio::time::Instant;

mod history;
mod replica;
mod state;
mod state_book;
mod state_latest;

pub use history::{HistoryLimits, Lost, Resumed};
pub use replica::{ReplicaError, Replicated};
use state::{ChannelState, Joiner, Meta, NoState};
use state_book::BookState;
use state_latest::LatestState;

/// What a channel remembers for subscribers that join (or rejoin after lagging).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// Nothing: joiners get only what is published after they join (trades).
    None,
    /// The latest published value, replayed as a `snapshot` (ticker, candles, status).
    Latest,
    /// The live order book, verified with the given venue checksum algorithm.
    Book(ChecksumAlgo),
    /// A book merged from several venues (`book:all:…`): like `Book`, but it may cross.
    MergedBook,
}

/// A consistent read of a book channel: the levels are exactly the state after frame `seq`.
#[derive(Debug, Clone)]
pub struct ChannelBook {
    pub seq: u64,
    pub epoch: Arc<str>,
    /// False while the book is being rebuilt (levels are then empty).
    pub live: bool,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
    /// Tickgate checksum of the whole book's top levels (not of the truncated view).
    pub checksum: u32,
    pub ts: i64,
    pub recv_ts: i64,
}

/// What a new subscriber gets: frames to send first, then the live receiver whose first frame
/// follows them without a gap.
#[derive(Debug)]
pub struct Subscription {
    /// The channel's seq at the moment of joining: `initial` (if any) is at this seq and the
    /// receiver's first frame is `seq + 1`.
    pub seq: u64,
    pub initial: Option<Frame>,
    /// On a recovered resume: every frame after the resume position up to `seq`, in order
    /// (`initial` is then `None`). Empty otherwise.
    pub replay: Vec<Frame>,
    pub rx: broadcast::Receiver<Frame>,
}

/// A join taken under the channel lock: the subscription, and the snapshot message still to be
/// encoded into its `initial` frame (with its `resync` flag) once the lock is released.
#[derive(Debug)]
struct PendingJoin {
    subscription: Subscription,
    snapshot: Option<(Box<DataMessage>, bool)>,
}

impl PendingJoin {
    fn ready(seq: u64, initial: Option<Frame>, rx: broadcast::Receiver<Frame>) -> Self {
        Self {
            subscription: Subscription {
                seq,
                initial,
                replay: Vec::new(),
                rx,
            },
            snapshot: None,
        }
    }
}

#[derive(Debug)]
struct State {
    seq: u64,
    /// The last frames published, oldest first, with when they were published; their seqs
    /// are consecutive and the newest is `seq`.
    history: VecDeque<(Instant, Frame)>,
    /// What joiners get (see `state.rs`).
    cache: Box<dyn ChannelState>,
    /// The last snapshot frame built for joiners: `(seq, resync, frame)`.
    snapshot_cache: Option<(u64, bool, Frame)>,
    /// A replica (see `replica.rs`): whether it holds a base state and follows its source's
    /// frames without a gap. Always true for a channel that sequences its own frames.
    synced: bool,
    /// The epoch of the seq space. Fixed for a local channel; a replica moves to its source's
    /// new epoch in place (`replica.rs`), so live subscribers are told instead of orphaned.
    epoch: Arc<str>,
    /// A replica whose bus is down: its subscribers were sent a `resync` notice and get a
    /// resync snapshot when frames flow again (`replica.rs`).
    bus_stale: bool,
}

/// A channel. Publishers and subscribers share it through an `Arc`.
#[derive(Debug)]
pub struct ChannelHandle {
    channel: Channel,
    name: Arc<str>,
    mode: CacheMode,
    /// Frames come from another node with their seq (`replica.rs`); never sequenced here.
    replica: bool,
    tx: broadcast::Sender<Frame>,
    history: HistoryLimits,
    state: Mutex<State>,
}

impl ChannelHandle {
    pub(crate) fn new(
        channel: Channel,
        epoch: Arc<str>,
        capacity: usize,
        history: HistoryLimits,
        mode: CacheMode,
    ) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self {
            name: channel.to_string().into(),
            channel,
            mode,
            replica: false,
            tx,
            history,
            state: Mutex::new(State {
                seq: 0,
                history: VecDeque::new(),
                cache: new_cache(mode),
                snapshot_cache: None,
                synced: true,
                epoch,
                bus_stale: false,
            }),
        }
    }

    /// How the channel was declared (what its joiners get).
    pub fn mode(&self) -> CacheMode {
        self.mode
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Canonical channel name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The epoch of the channel's seq space (a replica's changes with its source's).
    pub fn epoch(&self) -> Arc<str> {
        self.state.lock().epoch.clone()
    }

    /// The seq of the last published frame (0 before the first).
    pub fn seq(&self) -> u64 {
        self.state.lock().seq
    }

    pub fn subscriber_count(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Joins the channel. `resync` marks the snapshot as replacing a book the subscriber had
    /// (used when a lagging subscriber rejoins).
    pub fn subscribe(&self, resync: bool) -> Subscription {
        let mut state = self.state.lock();
        let rx = self.tx.subscribe();
        let pending = self.join(&mut state, rx, resync);
        drop(state);
        self.finish(pending)
    }

    /// Encodes a join's snapshot outside the channel lock (its content was fixed at the join's
    /// seq under the lock) and caches the frame for the next joiners if no frame was published
    /// meanwhile.
    fn finish(&self, pending: PendingJoin) -> Subscription {
        let PendingJoin {
            mut subscription,
            snapshot,
        } = pending;
        if let Some((msg, resync)) = snapshot {
            let seq = subscription.seq;
            let frame = Frame::new(
                seq,
                FrameKind::Snapshot,
                msg.recv_ts,
                ServerMessage::Snapshot(*msg).to_json(),
            );
            let mut state = self.state.lock();
            if state.seq == seq {
                state.snapshot_cache = Some((seq, resync, frame.clone()));
            }
            drop(state);
            subscription.initial = Some(frame);
        }
        subscription
    }

    fn join(&self, state: &mut State, rx: broadcast::Receiver<Frame>, resync: bool) -> PendingJoin {
        let seq = state.seq;
        if let Some((cached_seq, cached_resync, frame)) = &state.snapshot_cache
            && *cached_seq == seq
            && *cached_resync == resync
        {
            return PendingJoin::ready(seq, Some(frame.clone()), rx);
        }
        let epoch = state.epoch.clone();
        match state.cache.joiner(self.meta(&epoch), seq, resync) {
            Joiner::Nothing => PendingJoin::ready(seq, None, rx),
            Joiner::Published(notice) => PendingJoin::ready(seq, Some(notice), rx),
            Joiner::Snapshot(msg) => PendingJoin {
                subscription: Subscription {
                    seq,
                    initial: None,
                    replay: Vec::new(),
                    rx,
                },
                snapshot: Some((msg, resync)),
            },
        }
    }

    /// Publishes an update on a trades/ticker/candles/status channel. `channel`, `seq` and
    /// `epoch` are filled in here. Returns the frame's seq.
    pub fn publish(&self, mut msg: DataMessage) -> u64 {
        let mut state = self.state.lock();
        msg.channel = self.name.to_string();
        msg.seq = state.seq + 1;
        msg.epoch = state.epoch.to_string();
        let recv_ts = msg.recv_ts;
        // A latest-value channel keeps the value so joiners get it as a `snapshot`.
        state.cache.on_update(&msg);
        let text = ServerMessage::Update(msg).to_json();
        self.send(&mut state, FrameKind::Update, recv_ts, text).seq
    }

    /// Replaces the book with a venue snapshot and publishes it (as a resync if the book was
    /// live before). On error the book is stale and a `resync` notice is published.
    pub fn book_snapshot(&self, snap: &BookSnapshot) -> Result<u64, BookError> {
        let mut state = self.state.lock();
        let seq = state.seq;
        let epoch = state.epoch.clone();
        let meta = self.meta(&epoch);
        let Some(b) = state.cache.book_mut() else {
            return Err(BookError::NotLive);
        };
        if let Err(error) = b.book.apply_snapshot(snap) {
            let reason = error.stale_reason().unwrap_or(StaleReason::InvalidLevel);
            self.publish_stale(&mut state, reason);
            return Err(error);
        }
        b.ts = snap.exchange_ts.0;
        b.recv_ts = snap.recv_ts.0;
        b.stale_notice = None;
        let resync = std::mem::replace(&mut b.was_live, true);
        let next = seq + 1;
        let msg = b.message(meta, next, resync);
        let recv_ts = b.recv_ts;
        Ok(self
            .send(
                &mut state,
                FrameKind::Snapshot,
                recv_ts,
                ServerMessage::Snapshot(msg).to_json(),
            )
            .seq)
    }

    /// Applies a venue delta and publishes the changed levels. `Ok(None)` when the delta was
    /// older than the book (ignored). On a terminal error the book is stale and a `resync`
    /// notice has been published; the caller must obtain a fresh snapshot.
    pub fn book_delta(&self, delta: &BookDelta) -> Result<Option<u64>, BookError> {
        let mut state = self.state.lock();
        let next = state.seq + 1;
        let epoch = state.epoch.clone();
        let Some(b) = state.cache.book_mut() else {
            return Err(BookError::NotLive);
        };
        match b.book.apply_delta(delta) {
            Ok(DeltaOutcome::Ignored) => Ok(None),
            Ok(DeltaOutcome::Applied) => {
                b.ts = delta.exchange_ts.0;
                b.recv_ts = delta.recv_ts.0;
                let text = BookUpdate {
                    channel: &self.name,
                    seq: next,
                    epoch: &epoch,
                    ts: delta.exchange_ts.0,
                    recv_ts: delta.recv_ts.0,
                    bids: &delta.bids,
                    asks: &delta.asks,
                    checksum: b.book.checksum_cached(),
                }
                .to_json();
                let recv_ts = delta.recv_ts.0;
                Ok(Some(
                    self.send(&mut state, FrameKind::Update, recv_ts, text).seq,
                ))
            }
            Err(error) => {
                if error.is_terminal() {
                    let reason = error.stale_reason().unwrap_or(StaleReason::InvalidLevel);
                    self.publish_stale(&mut state, reason);
                }
                Err(error)
            }
        }
    }

    /// Marks the book stale (e.g. the venue connection dropped) and tells subscribers.
    pub fn book_stale(&self, reason: StaleReason) {
        let mut state = self.state.lock();
        if let Some(b) = state.cache.book_mut() {
            if b.stale_notice.is_some() {
                return;
            }
            b.book.mark_stale(reason);
        }
        self.publish_stale(&mut state, reason);
    }

    /// A consistent copy of the top `depth` levels per side, or `None` if this is not a book
    /// channel.
    pub fn book_view(&self, depth: usize) -> Option<ChannelBook> {
        let state = self.state.lock();
        let b = state.cache.book()?;
        let live = b.book.is_live() && !state.bus_stale;
        let (bids, asks) = if live {
            b.book.top(depth)
        } else {
            (Vec::new(), Vec::new())
        };
        Some(ChannelBook {
            seq: state.seq,
            epoch: state.epoch.clone(),
            live,
            bids,
            asks,
            checksum: if live { b.book.checksum() } else { 0 },
            ts: b.ts,
            recv_ts: b.recv_ts,
        })
    }

    /// Whether this is a book channel whose book is live.
    pub fn book_live(&self) -> bool {
        self.state
            .lock()
            .cache
            .book()
            .is_some_and(|b| b.book.is_live())
    }

    /// Best bid and ask of a live book channel.
    pub fn book_best(&self) -> (Option<Level>, Option<Level>) {
        let state = self.state.lock();
        match state.cache.book() {
            Some(b) if b.book.is_live() => (b.book.best_bid(), b.book.best_ask()),
            _ => (None, None),
        }
    }

    fn publish_stale(&self, state: &mut State, reason: StaleReason) {
        let seq = state.seq + 1;
        let notice = ServerMessage::Resync {
            channel: self.name.to_string(),
            seq,
            reason: reason.as_str().to_string(),
        };
        let frame = self.send(
            state,
            FrameKind::Resync,
            model::Timestamp::now().0,
            notice.to_json(),
        );
        if let Some(b) = state.cache.book_mut() {
            b.stale_notice = Some(frame);
        }
    }

    fn meta<'a>(&'a self, epoch: &'a str) -> Meta<'a> {
        Meta {
            name: &self.name,
            epoch,
        }
    }

    /// Assigns the next seq, sends, and invalidates the joiners' snapshot cache.
    fn send(&self, state: &mut State, kind: FrameKind, recv_ts: i64, text: String) -> Frame {
        let frame = Frame::new(state.seq + 1, kind, recv_ts, text);
        self.send_frame(state, frame.clone());
        frame
    }

    /// Sends a frame whose seq is the next one (`state.seq + 1`): history, ring, and the
    /// joiners' snapshot cache invalidated.
    fn send_frame(&self, state: &mut State, frame: Frame) {
        state.seq = frame.seq;
        state.snapshot_cache = None;
        if self.history.size > 0 {
            let now = Instant::now();
            state.history.push_back((now, frame.clone()));
            self.prune(state, now);
        }
        // An error only means nobody is subscribed right now.
        let _ = self.tx.send(frame);
    }
}

/// The empty joiners' state of a channel declared with `mode`.
fn new_cache(mode: CacheMode) -> Box<dyn ChannelState> {
    match mode {
        CacheMode::None => Box::new(NoState),
        CacheMode::Latest => Box::<LatestState>::default(),
        CacheMode::Book(algo) => Box::new(BookState::new(algo, false)),
        CacheMode::MergedBook => Box::new(BookState::new(ChecksumAlgo::None, true)),
    }
}
