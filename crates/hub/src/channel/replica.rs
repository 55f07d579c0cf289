//! Replica channels: a copy of a channel sequenced on another node (an edge of a cluster fed
//! from NATS). Frames are inserted with the `seq` and `epoch` they carry, never renumbered, and
//! go through the same ring, history and joiners' state as a local channel's, so subscribe,
//! resume and book reads behave exactly as on the node that sequenced them.
//!
//! A replica starts unsynced. [`ChannelHandle::replica_base`] gives it a base at seq S (the
//! source's snapshot at S, or just the position for a trades channel); from then on
//! [`ChannelHandle::replicate`] accepts exactly S + 1, S + 2, … Anything else is reported, and a
//! gap, a checksum divergence or another epoch leave it unsynced until the next base.

use super::{BookState, ChannelHandle, HistoryLimits, Joiner, State, new_cache};
use crate::frame::{Frame, FrameKind, FrameText};
use book::ChecksumAlgo;
use bytes::Bytes;
use model::{BookDelta, BookSnapshot, Channel, Level, Timestamp};
use protocol::{DataMessage, ServerMessage, WireLevel};
use std::collections::VecDeque;
use std::sync::Arc;

/// What [`ChannelHandle::replicate`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicated {
    /// Inserted at the next seq and offered to subscribers.
    Applied,
    /// At or before the replica's seq: already applied (a redelivery), dropped.
    Duplicate,
}

/// Why a replica could not take a frame or a base. Every variant but `Invalid` leaves the
/// replica unsynced: it needs a new base ([`ChannelHandle::replica_base`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    #[error("replica has no base yet")]
    NotSynced,
    #[error("replica gap: expected seq {expected}, got {got}")]
    Gap { expected: u64, got: u64 },
    #[error("frame of epoch {got} on a replica of epoch {expected}")]
    EpochChanged { expected: String, got: String },
    #[error("replica book diverged at seq {seq}: checksum {got}, source says {expected}")]
    Diverged { seq: u64, expected: u32, got: u32 },
    #[error("invalid replicated frame: {0}")]
    Invalid(String),
}

impl ReplicaError {
    /// Stable code, for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotSynced => "replica_not_synced",
            Self::Gap { .. } => "replica_gap",
            Self::EpochChanged { .. } => "replica_epoch_changed",
            Self::Diverged { .. } => "replica_diverged",
            Self::Invalid(_) => "replica_invalid_frame",
        }
    }
}

/// A frame as the source published it, decoded: its kind, its message, its channel and epoch.
struct Decoded {
    kind: FrameKind,
    seq: u64,
    channel: String,
    epoch: Option<String>,
    recv_ts: i64,
    data: Option<DataMessage>,
}

/// A replicated frame's text, checked as UTF-8 once on its way in (sessions send it unchecked).
fn frame_text(bytes: Bytes) -> Result<FrameText, ReplicaError> {
    FrameText::try_from(bytes).map_err(|_| ReplicaError::Invalid("frame text is not UTF-8".into()))
}

/// Parses a frame's text, already checked as UTF-8 by [`frame_text`].
fn decode(text: &str) -> Result<Decoded, ReplicaError> {
    let msg: ServerMessage =
        serde_json::from_str(text).map_err(|e| ReplicaError::Invalid(e.to_string()))?;
    let decoded = |kind, data: DataMessage| Decoded {
        kind,
        seq: data.seq,
        channel: data.channel.clone(),
        epoch: Some(data.epoch.clone()),
        recv_ts: data.recv_ts,
        data: Some(data),
    };
    match msg {
        ServerMessage::Snapshot(data) => Ok(decoded(FrameKind::Snapshot, data)),
        ServerMessage::Update(data) => Ok(decoded(FrameKind::Update, data)),
        ServerMessage::Resync { channel, seq, .. } => Ok(Decoded {
            kind: FrameKind::Resync,
            seq,
            channel,
            epoch: None,
            recv_ts: Timestamp::now().0,
            data: None,
        }),
        _ => Err(ReplicaError::Invalid("not a channel message".into())),
    }
}

fn levels(wire: &Option<Vec<WireLevel>>) -> Vec<Level> {
    wire.iter().flatten().map(|l| Level::from(*l)).collect()
}

impl ChannelHandle {
    /// A replica of `channel`, whose frames are sequenced elsewhere in `epoch`.
    pub(crate) fn new_replica(
        channel: Channel,
        epoch: Arc<str>,
        capacity: usize,
        history: HistoryLimits,
        mode: crate::CacheMode,
    ) -> Self {
        let mut handle = Self::new(channel, epoch, capacity, history, mode);
        handle.replica = true;
        handle.state.get_mut().cache = replica_cache(mode);
        handle.state.get_mut().synced = false;
        handle
    }

    /// Whether this channel is a replica of one sequenced elsewhere.
    pub fn is_replica(&self) -> bool {
        self.replica
    }

    /// Whether a replica holds a base and follows its source without a gap (always true for a
    /// local channel).
    pub fn replica_synced(&self) -> bool {
        self.state.lock().synced
    }

    /// (Re)starts a replica at seq `seq` of `epoch` (the source's, possibly a new one): its
    /// state becomes the source's `snapshot` at `seq` (JSON text of a `snapshot` message, or of
    /// an update on a latest-value channel; `None` for channels without state, or a book that
    /// was not live), its history empties and the next frame it accepts is `seq + 1`.
    ///
    /// Subscribers already attached are told in place, never left on a mixed seq space: a book
    /// or latest-value channel sends them a `snapshot` with `"resync": true` at `seq` (a book
    /// without a base: a `resync` notice), a trades channel a `gap` notice up to `seq`
    /// (`epoch_changed` from 1 when the epoch moved, else `history_expired` from the old seq).
    /// That notice takes no seq of its own (like a join snapshot) and is not in the history.
    pub fn replica_base(
        &self,
        epoch: &str,
        seq: u64,
        snapshot: Option<&[u8]>,
    ) -> Result<(), ReplicaError> {
        if !self.replica {
            return Err(ReplicaError::Invalid("not a replica channel".into()));
        }
        let decoded = snapshot
            .map(|text| {
                let text = frame_text(Bytes::copy_from_slice(text))?;
                decode(text.as_str()).map(|d| (d, text))
            })
            .transpose()?;
        if let Some((d, _)) = &decoded {
            self.check(d, seq, epoch)?;
        }
        let mut state = self.state.lock();
        let epoch_changed = *state.epoch != *epoch;
        let old_seq = state.seq;
        state.epoch = epoch.into();
        state.cache = replica_cache(self.mode);
        state.history = VecDeque::new();
        state.snapshot_cache = None;
        state.seq = seq;
        state.synced = false;
        state.bus_stale = false;
        if let Some((d, text)) = decoded {
            let frame = Frame {
                seq,
                kind: d.kind,
                recv_ts: d.recv_ts,
                text,
            };
            Self::apply(&mut state, &d, &frame)?;
        }
        state.synced = true;
        let notice = match self.rejoin_frame(&mut state) {
            Some(frame) => Some(frame),
            None if self.mode == crate::CacheMode::None => {
                let (from_seq, reason) = if epoch_changed {
                    (1, "epoch_changed")
                } else {
                    (old_seq + 1, "history_expired")
                };
                (epoch_changed || from_seq <= seq).then(|| {
                    let gap = ServerMessage::Gap {
                        channel: self.name.to_string(),
                        from_seq,
                        to_seq: seq,
                        reason: reason.into(),
                    };
                    Frame::new(seq, FrameKind::Resync, Timestamp::now().0, gap.to_json())
                })
            }
            None => self.book_notice(&mut state, "requested"),
        };
        if let Some(frame) = notice {
            // An error only means nobody is subscribed right now.
            let _ = self.tx.send(frame);
        }
        Ok(())
    }

    /// What a live subscriber must be sent to start over at the replica's seq: the state as a
    /// resync snapshot (book, latest value), or `None` when there is no state.
    fn rejoin_frame(&self, state: &mut State) -> Option<Frame> {
        let epoch = state.epoch.clone();
        match state.cache.joiner(self.meta(&epoch), state.seq, true) {
            Joiner::Snapshot(msg) => Some(Frame::new(
                state.seq,
                FrameKind::Snapshot,
                msg.recv_ts,
                ServerMessage::Snapshot(*msg).to_json(),
            )),
            Joiner::Published(frame) => Some(frame),
            Joiner::Nothing => None,
        }
    }

    /// A `resync` notice at the replica's seq on a book channel (kept for joiners until the
    /// next snapshot); `None` on other channels.
    fn book_notice(&self, state: &mut State, reason: &str) -> Option<Frame> {
        let seq = state.seq;
        let b = state.cache.book_mut()?;
        let notice = ServerMessage::Resync {
            channel: self.name.to_string(),
            seq,
            reason: reason.into(),
        };
        let frame = Frame::new(seq, FrameKind::Resync, Timestamp::now().0, notice.to_json());
        b.stale_notice = Some(frame.clone());
        state.snapshot_cache = None;
        Some(frame)
    }

    /// The bus that feeds this replica is down: a live book's subscribers (and joiners) get a
    /// `resync` notice with `reason` at the current seq; nothing is sent on other channels
    /// (they just pause). Frames flowing again ([`ChannelHandle::replicate`]) or
    /// [`ChannelHandle::replica_fresh`] end it.
    pub fn replica_stale(&self, reason: &str) {
        let mut state = self.state.lock();
        if !self.replica || state.bus_stale {
            return;
        }
        state.bus_stale = true;
        if state.cache.book().is_some_and(|b| b.book.is_live())
            && let Some(frame) = self.book_notice(&mut state, reason)
        {
            let _ = self.tx.send(frame);
        }
    }

    /// The bus is back: a book that [`ChannelHandle::replica_stale`] marked sends its
    /// subscribers a resync snapshot at the current seq.
    pub fn replica_fresh(&self) {
        let mut state = self.state.lock();
        self.end_bus_stale(&mut state);
    }

    fn end_bus_stale(&self, state: &mut State) {
        if !std::mem::replace(&mut state.bus_stale, false) {
            return;
        }
        let Some(b) = state.cache.book_mut() else {
            return;
        };
        if !b.book.is_live() {
            return;
        }
        b.stale_notice = None;
        state.snapshot_cache = None;
        if let Some(frame) = self.rejoin_frame(state) {
            let _ = self.tx.send(frame);
        }
    }

    /// Whether the replica is marked as cut off from its bus.
    pub fn replica_bus_stale(&self) -> bool {
        self.state.lock().bus_stale
    }

    /// Inserts the source's frame `seq` (its JSON text, kept byte for byte) if it is the next
    /// one. See the module docs.
    pub fn replicate(&self, seq: u64, text: Bytes) -> Result<Replicated, ReplicaError> {
        if !self.replica {
            return Err(ReplicaError::Invalid("not a replica channel".into()));
        }
        let text = frame_text(text)?;
        let decoded = decode(text.as_str())?;
        let mut state = self.state.lock();
        // A frame of another channel or epoch (a stale writer) changes nothing.
        self.check(&decoded, seq, &state.epoch)?;
        if !state.synced {
            return Err(ReplicaError::NotSynced);
        }
        self.end_bus_stale(&mut state);
        if seq <= state.seq {
            return Ok(Replicated::Duplicate);
        }
        if seq != state.seq + 1 {
            state.synced = false;
            let expected = state.seq + 1;
            return Err(ReplicaError::Gap { expected, got: seq });
        }
        let frame = Frame {
            seq,
            kind: decoded.kind,
            recv_ts: decoded.recv_ts,
            text,
        };
        if let Err(error) = Self::apply(&mut state, &decoded, &frame) {
            state.synced = false;
            return Err(error);
        }
        self.send_frame(&mut state, frame);
        Ok(Replicated::Applied)
    }

    /// The frame belongs to this channel, at `seq`, in `epoch`.
    fn check(&self, d: &Decoded, seq: u64, epoch: &str) -> Result<(), ReplicaError> {
        if d.channel != *self.name || d.seq != seq {
            return Err(ReplicaError::Invalid(format!(
                "frame of {} at seq {} where {} at seq {seq} was expected",
                d.channel, d.seq, self.name
            )));
        }
        match &d.epoch {
            Some(got) if *got != *epoch => Err(ReplicaError::EpochChanged {
                expected: epoch.to_string(),
                got: got.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Updates the joiners' state with a decoded frame (`frame`: the same, as published).
    fn apply(state: &mut State, d: &Decoded, frame: &Frame) -> Result<(), ReplicaError> {
        let seq = d.seq;
        if let Some(b) = state.cache.book_mut() {
            match (d.kind, &d.data) {
                (FrameKind::Snapshot, Some(msg)) => {
                    let snap = BookSnapshot {
                        seq,
                        bids: levels(&msg.bids),
                        asks: levels(&msg.asks),
                        exchange_ts: Timestamp(msg.ts),
                        recv_ts: Timestamp(msg.recv_ts),
                        checksum: None,
                    };
                    b.book
                        .apply_snapshot(&snap)
                        .map_err(|e| ReplicaError::Invalid(e.to_string()))?;
                    b.was_live = true;
                    b.stale_notice = None;
                }
                (FrameKind::Update, Some(msg)) => {
                    let delta = BookDelta {
                        first_seq: seq,
                        last_seq: seq,
                        bids: levels(&msg.bids),
                        asks: levels(&msg.asks),
                        exchange_ts: Timestamp(msg.ts),
                        recv_ts: Timestamp(msg.recv_ts),
                        checksum: None,
                    };
                    b.book
                        .apply_delta(&delta)
                        .map_err(|e| ReplicaError::Invalid(e.to_string()))?;
                }
                _ => {
                    b.book.mark_stale(book::StaleReason::Requested);
                    b.stale_notice = Some(frame.clone());
                    return Ok(());
                }
            }
            if let Some(msg) = &d.data {
                b.ts = msg.ts;
                b.recv_ts = msg.recv_ts;
                let got = b.book.checksum_cached();
                if let Some(expected) = msg.checksum
                    && expected != got
                {
                    b.book.mark_stale(book::StaleReason::Requested);
                    return Err(ReplicaError::Diverged { seq, expected, got });
                }
            }
            return Ok(());
        }
        if let Some(msg) = &d.data {
            state.cache.on_update(msg);
        }
        Ok(())
    }
}

/// A replica's joiners' state: like the source's, but its book is never checked against a
/// venue checksum (the frames carry the source's tickgate checksum, compared in `apply`).
fn replica_cache(mode: crate::CacheMode) -> Box<dyn super::ChannelState> {
    match mode {
        crate::CacheMode::Book(_) => Box::new(BookState::new(ChecksumAlgo::None, false)),
        other => new_cache(other),
    }
}

#[cfg(test)]
mod tests {
    use super::{ReplicaError, Replicated};
    use crate::{CacheMode, ChannelHandle, Frame, Hub, HubConfig};
    use protocol::{DataMessage, ResumeFrom};
    use std::sync::Arc;

    /// A ticker channel on a source hub that has published `frames` values, the source's
    /// receiver (subscribed before them), and a replica of it on an edge hub.
    fn ticker_source_and_replica(
        frames: usize,
    ) -> (
        Arc<ChannelHandle>,
        tokio::sync::broadcast::Receiver<Frame>,
        Arc<ChannelHandle>,
    ) {
        let source = Hub::new(HubConfig::default());
        let ch: model::Channel = "ticker:sim:BTC-USDT".parse().expect("channel");
        let src = source.register(ch.clone(), CacheMode::Latest);
        let rx = src.subscribe(false).rx;
        for _ in 0..frames {
            src.publish(DataMessage::default());
        }
        let edge = Hub::new(HubConfig::default());
        let replica = edge
            .register_replica(ch, CacheMode::Latest, &src.epoch())
            .expect("replica");
        (src, rx, replica)
    }

    #[test]
    fn a_replicated_frame_that_is_not_utf8_is_refused_and_changes_nothing() {
        let (src, mut rx, replica) = ticker_source_and_replica(1);
        let first = rx.try_recv().expect("frame 1");
        replica.replica_base(&src.epoch(), 0, None).expect("base");
        // The source's JSON with one byte of a string replaced by a lone continuation byte.
        let mut bad = first.text.as_bytes().to_vec();
        let quote = bad.iter().position(|&b| b == b'"').expect("a string");
        bad[quote + 1] = 0x80;
        let err = replica.replicate(1, bad.into());
        assert_eq!(
            err,
            Err(ReplicaError::Invalid("frame text is not UTF-8".into()))
        );
        assert_eq!(err.unwrap_err().code(), "replica_invalid_frame");
        assert!(matches!(
            replica.replica_base(&src.epoch(), 1, Some(b"{\"type\":\"\xff\"}")),
            Err(ReplicaError::Invalid(_))
        ));
        // Nothing was applied: the good frame is still the next one.
        assert_eq!(
            replica.replicate(1, first.text.into()),
            Ok(Replicated::Applied)
        );
    }

    #[test]
    fn a_replica_serves_the_source_frames_with_their_seq_and_reports_gaps() {
        let (src, mut rx, replica) = ticker_source_and_replica(3);
        let first = rx.try_recv().expect("frame 1");
        assert_eq!(
            replica.replicate(1, first.text.clone().into()),
            Err(ReplicaError::NotSynced)
        );
        let base = src.subscribe(false);
        replica.replica_base(&src.epoch(), 0, None).expect("base");
        assert_eq!(
            replica.replicate(1, first.text.clone().into()),
            Ok(Replicated::Applied)
        );
        assert_eq!(
            replica.replicate(1, first.text.into()),
            Ok(Replicated::Duplicate)
        );
        let _second = rx.try_recv().expect("frame 2");
        let third = rx.try_recv().expect("frame 3");
        assert!(matches!(
            replica.replicate(3, third.text.into()),
            Err(ReplicaError::Gap {
                expected: 2,
                got: 3
            })
        ));
        assert!(!replica.replica_synced());
        let snapshot = base.initial.expect("latest value at 3");
        replica
            .replica_base(&src.epoch(), 3, Some(snapshot.text.as_bytes()))
            .expect("rebase");
        let joined = replica.subscribe(false);
        assert_eq!(joined.seq, 3);
        let resumed = replica.resume(&ResumeFrom {
            epoch: src.epoch().to_string(),
            seq: 3,
        });
        assert_eq!(resumed.outcome, Ok(()));
    }

    /// Guards the replica gaps of the first cut: a new epoch (or a rebase after a gap) used to
    /// leave live subscribers on a channel that got no more frames, or on a mixed seq space.
    #[test]
    fn live_subscribers_are_told_when_a_replica_rebases_or_its_bus_drops() {
        use crate::FrameKind;
        use book::ChecksumAlgo;
        use model::{BookSnapshot, Level, Timestamp, parse_decimal};
        let level =
            |p: &str| Level::new(parse_decimal(p).expect("p"), parse_decimal("1").expect("q"));
        let snapshot = BookSnapshot {
            seq: 1,
            bids: vec![level("99")],
            asks: vec![level("101")],
            exchange_ts: Timestamp(1),
            recv_ts: Timestamp(1),
            ..Default::default()
        };
        let edge = Hub::new(HubConfig::default());
        let book: model::Channel = "book:sim:BTC-USDT".parse().expect("channel");
        let trades: model::Channel = "trades:sim:BTC-USDT".parse().expect("channel");
        let mut text = None;
        let mut epochs = Vec::new();
        for _ in 0..2 {
            let source = Hub::new(HubConfig::default());
            let src = source.register(book.clone(), CacheMode::Book(ChecksumAlgo::None));
            src.book_snapshot(&snapshot).expect("snapshot");
            text = src.subscribe(false).initial.map(|f| f.text);
            epochs.push(src.epoch());
        }
        let (old, new) = (&epochs[0], &epochs[1]);
        let replica = edge
            .register_replica(book.clone(), CacheMode::Book(ChecksumAlgo::None), old)
            .expect("replica");
        let mut live = replica.subscribe(false).rx;
        // The last source's snapshot, which names the new epoch.
        let old_text = text.clone().expect("snapshot text");
        // The epoch in the text must match the base's epoch.
        let err = replica.replica_base(old, 1, Some(old_text.as_bytes()));
        assert!(matches!(err, Err(ReplicaError::EpochChanged { .. })));
        replica
            .replica_base(new, 1, Some(old_text.as_bytes()))
            .expect("base in the new epoch");
        let frame = live.try_recv().expect("resync snapshot");
        let msg: serde_json::Value = serde_json::from_str(frame.as_str()).expect("json");
        assert_eq!((frame.seq, frame.kind), (1, FrameKind::Snapshot));
        assert_eq!(
            (msg["resync"].as_bool(), msg["epoch"].as_str()),
            (Some(true), Some(&**new))
        );
        assert_eq!(
            replica.epoch(),
            *new,
            "the same handle moved to the new epoch"
        );

        replica.replica_stale("bus_down");
        let notice = live.try_recv().expect("resync notice");
        assert_eq!((notice.seq, notice.kind), (1, FrameKind::Resync));
        assert!(notice.as_str().contains("bus_down"));
        assert!(!replica.book_view(0).expect("book").live);
        replica.replica_fresh();
        let again = live.try_recv().expect("snapshot after the bus returns");
        assert_eq!((again.seq, again.kind), (1, FrameKind::Snapshot));
        assert!(replica.book_view(0).expect("book").live);

        let trades_replica = edge
            .register_replica(trades.clone(), CacheMode::None, old)
            .expect("replica");
        trades_replica.replica_base(old, 5, None).expect("base");
        let mut rx = trades_replica.subscribe(false).rx;
        trades_replica
            .replica_base(old, 9, None)
            .expect("rebase after a gap");
        let gap: serde_json::Value =
            serde_json::from_str(rx.try_recv().expect("gap").as_str()).expect("json");
        assert_eq!(
            (
                gap["type"].as_str(),
                gap["from_seq"].as_u64(),
                gap["to_seq"].as_u64(),
                gap["reason"].as_str()
            ),
            (Some("gap"), Some(6), Some(9), Some("history_expired"))
        );
        trades_replica
            .replica_base(new, 3, None)
            .expect("new epoch");
        let gap: serde_json::Value =
            serde_json::from_str(rx.try_recv().expect("gap").as_str()).expect("json");
        assert_eq!(
            (
                gap["from_seq"].as_u64(),
                gap["to_seq"].as_u64(),
                gap["reason"].as_str()
            ),
            (Some(1), Some(3), Some("epoch_changed"))
        );
    }
}
