//! Edge side: replica channels in the local hub, fed from JetStream, so sessions and REST reads
//! on this node see the ingest's frames with the ingest's seq and epoch.
//!
//! - One ordered consumer on the snapshot stream, starting with the last record of every
//!   subject, tells the edge which channels exist and hands each channel task its newest record.
//! - One task per channel: from a record at S (`Tg-From` = stream sequence Q) it bases the
//!   replica at S (`replica_base`) and reads the channel's frames with an ordered consumer from
//!   stream sequence Q + 1, inserting each with `replicate`. A gap, another epoch or a checksum
//!   divergence makes it look up the channel's newest record and rebase from it (live
//!   sessions get a resync snapshot or `gap` notice, from the hub); a record of another epoch
//!   (a new owner of the venue) always rebases. A record ahead of the replica whose `Tg-From`
//!   the frames consumer has not reached yet waits: it applies once those frames are read
//!   (the forwarder fell behind and restarted from it), even if no frame follows.
//! - Connection events: when NATS goes away every replica is marked bus-stale (books tell
//!   their sessions with a `resync` notice, reason `bus_down`); when it comes back the ordered
//!   consumers continue where they were and books send a fresh resync snapshot.

use crate::batch;
use crate::subject::{self, Names};
use crate::{ClusterError, ClusterOptions};
use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{DeliverPolicy, push};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use hub::channel::ReplicaError;
use hub::{CacheMode, ChannelHandle, Hub};
use model::Channel;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Counters and state of a feeder (for `/metrics` and `/readyz`).
#[derive(Debug, Default)]
pub struct FeederStats {
    /// Whether the NATS connection is up.
    pub connected: AtomicBool,
    pub channels: AtomicU64,
    pub frames: AtomicU64,
    /// Replica (re)bases from a snapshot record.
    pub rebases: AtomicU64,
    /// Gaps, epoch changes and divergences seen in the frames (each leads to a rebase).
    pub breaks: AtomicU64,
    /// Messages that could not be read (bad headers or JSON); counted and skipped.
    pub invalid: AtomicU64,
}

/// A channel's snapshot record: its state at `seq` and where the frames after it start.
#[derive(Debug, Clone)]
struct Record {
    channel: Channel,
    seq: u64,
    epoch: String,
    mode: CacheMode,
    from: u64,
    body: Bytes,
}

impl Record {
    fn parse(headers: Option<&HeaderMap>, payload: Bytes) -> Result<Self, ClusterError> {
        let bad = |what| ClusterError::BadMessage { what };
        let headers = headers.ok_or(bad("snapshot record without headers"))?;
        let channel = header(headers, subject::CHANNEL)
            .and_then(|c| c.parse::<Channel>().ok())
            .ok_or(bad("snapshot record channel"))?;
        let mode = header(headers, subject::MODE)
            .and_then(subject::parse_mode)
            .ok_or(bad("snapshot record mode"))?;
        let epoch = header(headers, subject::EPOCH)
            .filter(|e| (1..=64).contains(&e.len()))
            .ok_or(bad("snapshot record epoch"))?
            .to_string();
        Ok(Self {
            channel,
            seq: number(headers, subject::SEQ).ok_or(bad("snapshot record seq"))?,
            from: number(headers, subject::FROM).ok_or(bad("snapshot record from"))?,
            epoch,
            mode,
            body: payload,
        })
    }

    fn body(&self) -> Option<&[u8]> {
        (!self.body.is_empty()).then_some(&self.body[..])
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.as_str())
}

fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
    header(headers, name).and_then(|v| v.parse().ok())
}

#[derive(Debug)]
struct Ctx {
    client: async_nats::Client,
    names: Names,
    frames: stream::Stream,
    snapshots: stream::Stream,
    stats: Arc<FeederStats>,
}

/// Starts feeding `hub` from the cluster's streams (created if missing). `connected` follows
/// the NATS connection ([`crate::connect_watched`]). Runs until `shutdown`.
pub async fn start(
    client: async_nats::Client,
    connected: watch::Receiver<bool>,
    hub: Arc<Hub>,
    options: ClusterOptions,
    shutdown: CancellationToken,
) -> Result<Arc<FeederStats>, ClusterError> {
    let names = options.names()?;
    let js = jetstream::new(client.clone());
    let streams = crate::streams::ensure(&js, &names, &options).await?;
    let stats = Arc::new(FeederStats::default());
    stats
        .connected
        .store(*connected.borrow(), Ordering::Relaxed);
    let ctx = Arc::new(Ctx {
        client,
        names,
        frames: streams.frames,
        snapshots: streams.snapshots,
        stats: stats.clone(),
    });
    tokio::spawn(run(ctx, hub, connected, shutdown));
    Ok(stats)
}

/// Follows the snapshot records and the connection state.
async fn run(
    ctx: Arc<Ctx>,
    hub: Arc<Hub>,
    mut connected: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    let mut channels: HashMap<String, watch::Sender<Option<Arc<Record>>>> = HashMap::new();
    loop {
        let config = push::OrderedConfig {
            deliver_subject: ctx.client.new_inbox(),
            filter_subject: ctx.names.all_snapshots(),
            deliver_policy: DeliverPolicy::LastPerSubject,
            ..Default::default()
        };
        let records = match ctx.snapshots.create_consumer(config).await {
            Ok(consumer) => consumer.messages().await.map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        let mut records = match records {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(error = %error, "cannot follow the snapshot records; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = connected.changed() => {
                    if changed.is_err() {
                        // The client is gone (closed): nothing will come back.
                        mark(&hub, false);
                        ctx.stats.connected.store(false, Ordering::Relaxed);
                        return;
                    }
                    let up = *connected.borrow_and_update();
                    ctx.stats.connected.store(up, Ordering::Relaxed);
                    mark(&hub, up);
                }
                item = records.next() => match item {
                    Some(Ok(message)) => {
                        let record = match Record::parse(message.headers.as_ref(), message.payload.clone()) {
                            Ok(record) => Arc::new(record),
                            Err(error) => {
                                ctx.stats.invalid.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(code = error.code(), error = %error, subject = %message.subject, "snapshot record skipped");
                                continue;
                            }
                        };
                        let name = record.channel.to_string();
                        if let Some(tx) = channels.get(&name) {
                            tx.send_replace(Some(record));
                            continue;
                        }
                        let Some(handle) = hub.register_replica(record.channel.clone(), record.mode, &record.epoch) else {
                            tracing::warn!(channel = %name, "a local channel has this name; not replicated");
                            continue;
                        };
                        let (tx, rx) = watch::channel(Some(record));
                        channels.insert(name, tx);
                        ctx.stats.channels.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(run_channel(ctx.clone(), handle, rx, shutdown.clone()));
                    }
                    Some(Err(error)) => tracing::debug!(error = %error, "snapshot records consumer"),
                    None => break,
                }
            }
        }
    }
}

/// Marks every replica bus-stale (`up` false) or fresh again.
fn mark(hub: &Hub, up: bool) {
    for handle in hub.handles().iter().filter(|h| h.is_replica()) {
        if up {
            handle.replica_fresh();
        } else {
            handle.replica_stale("bus_down");
        }
    }
    if up {
        tracing::info!("market-data bus connected");
    } else {
        tracing::warn!("market-data bus lost; replica channels marked stale");
    }
}

type Frames = push::Ordered;

/// One replica: bases from records, applies frames, rebases after a break.
async fn run_channel(
    ctx: Arc<Ctx>,
    handle: Arc<ChannelHandle>,
    mut records: watch::Receiver<Option<Arc<Record>>>,
    shutdown: CancellationToken,
) {
    let name = handle.name().clone();
    let frames_subject = ctx.names.frames(&name);
    let snapshot_subject = ctx.names.snapshot(&name);
    let mut frames: Option<Frames> = None;
    // The stream sequence of the last frame read (where a new consumer resumes).
    let mut position = 0u64;
    // Set when the frames consumer ended: recreate it from `position`.
    let mut reopen = false;
    records.mark_changed();
    loop {
        if reopen {
            reopen = false;
            frames = open(&ctx, &frames_subject, position).await;
            if frames.is_none() {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                reopen = true;
                continue;
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = records.changed() => {
                if changed.is_err() {
                    return;
                }
                let record = records.borrow_and_update().clone();
                if let Some(record) = record
                    && needs_base(&handle, &record, position)
                    && let Some(at) = base(&ctx, &handle, &record)
                {
                    position = at;
                    reopen = true;
                }
            }
            item = next(&mut frames) => match item {
                Some(Ok(message)) => {
                    if let Ok(info) = message.info() {
                        position = info.stream_sequence;
                    }
                    if message.headers.as_ref().is_some_and(|h| h.get(subject::CLAIM).is_some()) {
                        // A new writer's claim: the frames of its epoch follow.
                        continue;
                    }
                    let frames = match batch::decode(message.headers.as_ref(), message.payload.clone()) {
                        Ok(frames) => frames,
                        Err(error) => {
                            // Counted and skipped: the next frame is then a gap, and rebases.
                            ctx.stats.invalid.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(channel = %name, code = error.code(), error = %error, "frames message skipped");
                            continue;
                        }
                    };
                    for (seq, text) in frames {
                        if !apply(&ctx, &handle, seq, text) {
                            if let Some(at) = rebase_from_newest(&ctx, &handle, &snapshot_subject).await {
                                position = at;
                                reopen = true;
                            }
                            break;
                        }
                    }
                    // A restart record that arrived before the frames it follows (the
                    // forwarder fell behind its hub): they are read now, so it applies. Without
                    // this the replica would wait for the channel's next frame, which an idle
                    // channel may never send.
                    let latest = records.borrow().clone();
                    if !reopen
                        && let Some(record) = latest
                        && overtaken(&handle, &record, position)
                        && let Some(at) = base(&ctx, &handle, &record)
                    {
                        position = at;
                        reopen = true;
                    }
                }
                Some(Err(error)) => tracing::debug!(channel = %name, error = %error, "frames consumer"),
                None => reopen = true,
            }
        }
    }
}

/// Applies one frame to the replica; `false` on a break (gap, another epoch, divergence),
/// after which the caller rebases from the newest snapshot record.
fn apply(ctx: &Ctx, handle: &ChannelHandle, seq: u64, text: Bytes) -> bool {
    match handle.replicate(seq, text) {
        Ok(_) => {
            ctx.stats.frames.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(ReplicaError::NotSynced) => true,
        Err(ReplicaError::Invalid(why)) => {
            ctx.stats.invalid.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(channel = %handle.name(), seq, error = %why, "replicated frame skipped");
            true
        }
        Err(error) => {
            ctx.stats.breaks.fetch_add(1, Ordering::Relaxed);
            tracing::info!(channel = %handle.name(), code = error.code(), error = %error, "replica break; rebasing from the newest snapshot record");
            false
        }
    }
}

/// Whether a record must (re)base the replica: it has none, the record is of another epoch (a
/// new owner), or the record is ahead of the replica although every frame stored before it has
/// been read (the forwarder fell behind its hub and restarted from this record: the frames in
/// between were never stored). A record ahead of frames still in flight changes nothing.
fn needs_base(handle: &ChannelHandle, record: &Record, position: u64) -> bool {
    !handle.replica_synced()
        || *record.epoch != *handle.epoch()
        || overtaken(handle, record, position)
}

/// Whether a record of the replica's epoch is ahead of it with every frame stored before it
/// read: the frames in between were never stored (the forwarder restarted from the record).
fn overtaken(handle: &ChannelHandle, record: &Record, position: u64) -> bool {
    handle.replica_synced()
        && *record.epoch == *handle.epoch()
        && record.seq > handle.seq()
        && record.from <= position
}

/// The next frame, or never when there is no consumer yet.
async fn next(
    frames: &mut Option<Frames>,
) -> Option<Result<jetstream::Message, push::OrderedError>> {
    match frames {
        Some(frames) => frames.next().await,
        None => std::future::pending().await,
    }
}

/// An ordered consumer of `subject`'s frames after stream sequence `after`.
async fn open(ctx: &Ctx, subject: &str, after: u64) -> Option<Frames> {
    let config = push::OrderedConfig {
        deliver_subject: ctx.client.new_inbox(),
        filter_subject: subject.to_string(),
        deliver_policy: DeliverPolicy::ByStartSequence {
            start_sequence: after + 1,
        },
        ..Default::default()
    };
    let opened = match ctx.frames.create_consumer(config).await {
        Ok(consumer) => consumer.messages().await.map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    opened
        .inspect_err(|error| tracing::warn!(subject, error = %error, "cannot open frames consumer"))
        .ok()
}

/// Bases the replica on `record`; returns the stream sequence its frames follow.
fn base(ctx: &Ctx, handle: &ChannelHandle, record: &Record) -> Option<u64> {
    match handle.replica_base(&record.epoch, record.seq, record.body()) {
        Ok(()) => {
            ctx.stats.rebases.fetch_add(1, Ordering::Relaxed);
            Some(record.from)
        }
        Err(error) => {
            ctx.stats.invalid.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(channel = %handle.name(), code = error.code(), error = %error, "snapshot record refused");
            None
        }
    }
}

/// After a break: the channel's newest record, if it moves the replica forward (or to a new
/// epoch). Otherwise the replica stays unsynced until the next record arrives (never a step
/// back in seq for live sessions).
async fn rebase_from_newest(ctx: &Ctx, handle: &ChannelHandle, subject: &str) -> Option<u64> {
    let message = match ctx.snapshots.direct_get_last_for_subject(subject).await {
        Ok(message) => message,
        Err(error) => {
            tracing::warn!(channel = %handle.name(), error = %error, "snapshot record lookup failed");
            return None;
        }
    };
    let record = Record::parse(Some(&message.headers), message.payload)
        .inspect_err(|_| {
            ctx.stats.invalid.fetch_add(1, Ordering::Relaxed);
        })
        .ok()?;
    if *record.epoch == *handle.epoch() && record.seq < handle.seq() {
        return None;
    }
    base(ctx, handle, &record)
}
