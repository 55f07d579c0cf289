//! Ingest side: every frame of the local hub's channels goes to JetStream with the `seq` and
//! `epoch` the hub gave it, plus a snapshot record per channel from which a late edge starts.
//!
//! One task per channel (found by scanning the hub every `scan_interval`). It joins the
//! channel like a subscriber (state at S, receiver from S + 1), writes the snapshot record at S,
//! then publishes the frames to `<p>.f.<channel>`: one publish in flight, the frames that
//! arrived meanwhile together in the next one (`batch`). Every publish names the subject's last
//! stream sequence it knows (`Nats-Expected-Last-Subject-Sequence`), so a second writer on the
//! same channel (a node that lost its venue's lease) is refused by JetStream, never merged. A
//! starting forwarder first appends a claim (`Tg-Claim`, no payload) to the frames subject, so
//! the previous writer's very next frame is refused even before this one has a frame to send.
//!
//! Snapshot records say where the frames after them start (`Tg-From`, a stream sequence):
//! - at the start (after the claim: `Tg-From` is the claim's sequence), and after falling behind the hub's ring (`Lagged`): the state at the new
//!   join position S, from the subject's last stream sequence (the frames up to S that were not
//!   published are covered by the snapshot; nothing is skipped silently);
//! - every `snapshot_interval` when the channel moved: a join's state at S, published once
//!   frame S itself is in the stream (so `Tg-From` is frame S's stream sequence).

use crate::batch::{self, Batch};
use crate::subject::{self, Names};
use crate::{ClusterError, ClusterOptions};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use bytes::Bytes;
use hub::{ChannelHandle, Frame, FrameKind, Hub};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Counters of a forwarder (for `/metrics` and `/readyz`).
#[derive(Debug, Default)]
pub struct ForwarderStats {
    pub channels: AtomicU64,
    pub frames: AtomicU64,
    /// JetStream messages the frames went in (several frames each when the channel is busy).
    pub batches: AtomicU64,
    pub snapshots: AtomicU64,
    /// Publishes that failed (NATS unreachable, timeout); the channel restarts from a snapshot.
    pub errors: AtomicU64,
    /// Channels stopped because JetStream refused them as a stale writer.
    pub fenced: AtomicU64,
    /// Times a channel fell behind the hub's ring and restarted from a snapshot record.
    pub lags: AtomicU64,
}

/// Decides, per venue, whether this node may publish (the venue lease, or [`Open`]).
pub trait Gate: Send + Sync + std::fmt::Debug {
    fn allowed(&self, venue: &str) -> bool;

    /// JetStream refused a publish for `venue` as a stale writer: another node writes it now.
    /// The gate must not allow the venue again until it is this node's anew (a lease).
    fn fenced(&self, venue: &str);
}

/// Every venue is this node's (one ingest, no failover) until JetStream refuses a publish for
/// it: then another writer owns the venue and this node stops publishing it for good (two
/// ingests without leases are a misconfiguration; the first writer keeps the channel).
#[derive(Debug, Default)]
pub struct Open {
    fenced: parking_lot::Mutex<HashSet<String>>,
}

impl Gate for Open {
    fn allowed(&self, venue: &str) -> bool {
        !self.fenced.lock().contains(venue)
    }

    fn fenced(&self, venue: &str) {
        self.fenced.lock().insert(venue.to_string());
    }
}

#[derive(Debug)]
struct Ctx {
    js: jetstream::Context,
    names: Names,
    options: ClusterOptions,
    frames: stream::Stream,
    snapshots: stream::Stream,
    stats: Arc<ForwarderStats>,
    gate: Arc<dyn Gate>,
    /// The connection, for the server's `max_payload` (known once connected).
    client: async_nats::Client,
}

impl Ctx {
    /// Most payload bytes of one batched publish: within half the server's `max_payload`
    /// (headers and a frame over the limit still fit), or a small default until the server's
    /// limit is known.
    fn batch_bytes(&self) -> usize {
        match self.client.server_info().max_payload {
            0 => 64 * 1024,
            max => batch::MAX_BYTES.min(max / 2),
        }
    }
}

/// Starts forwarding `hub` (creating the streams first). Runs until `shutdown`.
pub async fn start(
    client: async_nats::Client,
    hub: Arc<Hub>,
    options: ClusterOptions,
    gate: Arc<dyn Gate>,
    shutdown: CancellationToken,
) -> Result<Arc<ForwarderStats>, ClusterError> {
    let names = options.names()?;
    let js = jetstream::new(client.clone());
    let streams = crate::streams::ensure(&js, &names, &options).await?;
    let stats = Arc::new(ForwarderStats::default());
    let ctx = Arc::new(Ctx {
        js,
        names,
        options,
        frames: streams.frames,
        snapshots: streams.snapshots,
        stats: stats.clone(),
        gate,
        client,
    });
    tokio::spawn(scan(ctx, hub, shutdown));
    Ok(stats)
}

/// Starts a channel task for every local channel not yet forwarded.
async fn scan(ctx: Arc<Ctx>, hub: Arc<Hub>, shutdown: CancellationToken) {
    let mut known = HashSet::new();
    let mut tick = tokio::time::interval(ctx.options.scan_interval);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for handle in hub.handles() {
            if handle.is_replica() || !known.insert(handle.name().clone()) {
                continue;
            }
            ctx.stats.channels.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(run_channel(ctx.clone(), handle, shutdown.clone()));
        }
    }
}

/// Forwards one channel, restarting from a snapshot after a publish failure.
async fn run_channel(ctx: Arc<Ctx>, handle: Arc<ChannelHandle>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            result = forward(&ctx, &handle) => result,
        };
        let Err(error) = result;
        match error {
            ClusterError::Fenced { ref venue } | ClusterError::NotOwner { ref venue } => {
                if matches!(error, ClusterError::Fenced { .. }) {
                    ctx.stats.fenced.fetch_add(1, Ordering::Relaxed);
                    ctx.gate.fenced(venue);
                }
                tracing::warn!(channel = %handle.name(), code = error.code(), error = %error, "forwarding paused");
            }
            _ => {
                ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(channel = %handle.name(), code = error.code(), error = %error, "forwarding failed; restarting from a snapshot");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// One channel's subjects and where each ends in its stream.
struct Cursor {
    frames: String,
    snapshot: String,
    frames_last: u64,
    snapshot_last: u64,
    /// The seq of the last frame in the stream (or of the last snapshot record's base).
    seq: u64,
}

/// Forwards until an error (it never returns `Ok`: the channel lives as long as the hub).
///
/// One publish is in flight at a time; the frames that arrive meanwhile go together in the
/// next one ([`Batch`]), so the rate a channel can forward grows with its load instead of being
/// one frame per JetStream round trip, and every publish still names the subject's last
/// stream sequence (known exactly: it is the previous publish's acknowledgement).
async fn forward(
    ctx: &Ctx,
    handle: &ChannelHandle,
) -> Result<std::convert::Infallible, ClusterError> {
    let name = handle.name();
    let venue = handle.channel().venue.as_str().to_string();
    while !ctx.gate.allowed(&venue) {
        tokio::time::sleep(ctx.options.scan_interval).await;
    }
    let mut cursor = Cursor {
        frames: ctx.names.frames(name),
        snapshot: ctx.names.snapshot(name),
        frames_last: 0,
        snapshot_last: last_sequence(&ctx.snapshots, &ctx.names.snapshot(name)).await?,
        seq: 0,
    };
    let mut sub = handle.subscribe(false);
    claim(ctx, handle, &venue, &mut cursor, sub.seq).await?;
    publish_snapshot(ctx, handle, &mut cursor, sub.seq, sub.initial.as_ref()).await?;
    // A periodic snapshot at a seq the stream has not reached yet: (seq, state). Batches end
    // at that seq, so its record's `Tg-From` is the stream sequence of the batch ending there.
    let mut pending: Option<(u64, Option<Frame>)> = None;
    let period = ctx.options.snapshot_interval;
    let mut next_snapshot = Instant::now() + period;
    let mut snapshot_seq = cursor.seq;
    // A frame taken from the receiver that did not fit in the previous batch.
    let mut carry: Option<Frame> = None;
    loop {
        if Instant::now() >= next_snapshot {
            next_snapshot = Instant::now() + period;
            if pending.is_none() && handle.seq() != snapshot_seq {
                let join = handle.subscribe(false);
                if join.seq == cursor.seq {
                    publish_snapshot(ctx, handle, &mut cursor, join.seq, join.initial.as_ref())
                        .await?;
                    snapshot_seq = join.seq;
                } else {
                    pending = Some((join.seq, join.initial));
                }
            }
        }
        let received = match carry.take() {
            Some(frame) => Ok(frame),
            None => tokio::select! {
                () = tokio::time::sleep_until(next_snapshot) => continue,
                frame = sub.rx.recv() => frame,
            },
        };
        let first = match received {
            Ok(frame) => Some(frame),
            Err(RecvError::Lagged(_)) => None,
            Err(RecvError::Closed) => {
                // The hub never drops a channel's sender while the handle lives.
                std::future::pending::<()>().await;
                continue;
            }
        };
        let mut lagged = first.is_none();
        let mut batch = first.map(|frame| Batch::new(frame, ctx.batch_bytes()));
        let stop_at = pending.as_ref().map(|(seq, _)| *seq);
        while let Some(batch) = batch.as_mut().filter(|b| Some(b.last_seq()) != stop_at) {
            match sub.rx.try_recv() {
                Ok(frame) => {
                    if let Err(frame) = batch.push(frame) {
                        carry = Some(frame);
                        break;
                    }
                }
                Err(TryRecvError::Lagged(_)) => {
                    lagged = true;
                    break;
                }
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        let Some(batch) = batch.filter(|_| !lagged) else {
            // Frames are gone from the ring: restart from a fresh state, announced. The frames
            // collected but not sent are older than it, so the snapshot covers them.
            ctx.stats.lags.fetch_add(1, Ordering::Relaxed);
            (pending, carry) = (None, None);
            sub = handle.subscribe(false);
            publish_snapshot(ctx, handle, &mut cursor, sub.seq, sub.initial.as_ref()).await?;
            snapshot_seq = cursor.seq;
            continue;
        };
        if !ctx.gate.allowed(&venue) {
            return Err(ClusterError::NotOwner { venue });
        }
        let mut headers = channel_headers(handle, batch.first_seq());
        headers.insert(
            subject::EXPECTED_LAST_SUBJECT_SEQ,
            cursor.frames_last.to_string().as_str(),
        );
        let payload = batch.encode(&mut headers);
        cursor.frames_last = publish(ctx, &venue, cursor.frames.clone(), headers, payload).await?;
        cursor.seq = batch.last_seq();
        ctx.stats
            .frames
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        ctx.stats.batches.fetch_add(1, Ordering::Relaxed);
        if let Some((seq, initial)) = pending.take_if(|(seq, _)| *seq == cursor.seq) {
            publish_snapshot(ctx, handle, &mut cursor, seq, initial.as_ref()).await?;
            snapshot_seq = seq;
        }
    }
}

/// Appends a claim to the frames subject, so whoever wrote it before is refused from now on.
/// A write that slips in between the lookup and the claim is retried (a few times), not
/// taken as fencing: this node is the one starting.
async fn claim(
    ctx: &Ctx,
    handle: &ChannelHandle,
    venue: &str,
    cursor: &mut Cursor,
    seq: u64,
) -> Result<(), ClusterError> {
    let mut attempts = 0;
    loop {
        let last = last_sequence(&ctx.frames, &cursor.frames).await?;
        let mut headers = channel_headers(handle, seq);
        headers.insert(subject::CLAIM, ctx.options.node.as_str());
        headers.insert(
            subject::EXPECTED_LAST_SUBJECT_SEQ,
            last.to_string().as_str(),
        );
        match publish(ctx, venue, cursor.frames.clone(), headers, Bytes::new()).await {
            Ok(at) => {
                cursor.frames_last = at;
                return Ok(());
            }
            Err(ClusterError::Fenced { .. }) if attempts < 3 => attempts += 1,
            Err(error) => return Err(error),
        }
    }
}

/// Publishes the snapshot record of a join at `seq` (`initial`: what the join got): frames
/// after it follow the frames subject's current last sequence.
async fn publish_snapshot(
    ctx: &Ctx,
    handle: &ChannelHandle,
    cursor: &mut Cursor,
    seq: u64,
    initial: Option<&Frame>,
) -> Result<(), ClusterError> {
    let venue = handle.channel().venue.as_str().to_string();
    let body = match initial {
        Some(frame) if frame.kind == FrameKind::Snapshot => frame.text.clone().into(),
        // Trades, a book being rebuilt, a latest-value channel with no value yet.
        _ => Bytes::new(),
    };
    let mut headers = channel_headers(handle, seq);
    headers.insert(subject::MODE, subject::mode_name(handle.mode()));
    headers.insert(subject::FROM, cursor.frames_last.to_string().as_str());
    headers.insert(
        subject::EXPECTED_LAST_SUBJECT_SEQ,
        cursor.snapshot_last.to_string().as_str(),
    );
    cursor.snapshot_last = publish(ctx, &venue, cursor.snapshot.clone(), headers, body).await?;
    cursor.seq = seq;
    ctx.stats.snapshots.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn channel_headers(handle: &ChannelHandle, seq: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(subject::CHANNEL, handle.name().as_ref());
    headers.insert(subject::SEQ, seq.to_string().as_str());
    headers.insert(subject::EPOCH, handle.epoch().as_ref());
    headers
}

/// Publishes and waits for the stream's ack; returns the stored message's stream sequence.
async fn publish(
    ctx: &Ctx,
    venue: &str,
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
) -> Result<u64, ClusterError> {
    if !ctx.gate.allowed(venue) {
        return Err(ClusterError::NotOwner {
            venue: venue.to_string(),
        });
    }
    let ack = ctx
        .js
        .publish_with_headers(subject, headers, payload)
        .await
        .map_err(|e| ClusterError::JetStream {
            what: "publish",
            source: e.into(),
        })?
        .await;
    match ack {
        Ok(ack) => Ok(ack.sequence),
        Err(error) if error.kind() == PublishErrorKind::WrongLastSequence => {
            Err(ClusterError::Fenced {
                venue: venue.to_string(),
            })
        }
        Err(error) => Err(ClusterError::JetStream {
            what: "publish",
            source: error.into(),
        }),
    }
}

/// The stream sequence of `subject`'s last message (0: none).
pub(crate) async fn last_sequence(
    stream: &stream::Stream,
    subject: &str,
) -> Result<u64, ClusterError> {
    match stream.direct_get_last_for_subject(subject).await {
        Ok(message) => Ok(message.sequence),
        Err(error) if error.kind() == stream::DirectGetErrorKind::NotFound => Ok(0),
        Err(error) => Err(ClusterError::JetStream {
            what: "last message lookup",
            source: error.into(),
        }),
    }
}
