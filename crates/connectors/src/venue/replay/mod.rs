//! The `replay` venue: plays a capture written by `tickgate record` back through the same
//! venue session code, so the normalized output is the same as live, and the same on every
//! run.
//!
//! A capture holds every input each session consumed, with the receive time it saw (see
//! [`crate::conn::record`]). Replay rebuilds each venue's [`Protocol`] from the recorded spec,
//! recreates sessions as connections open, and feeds them the recorded inputs in order through
//! [`crate::conn`]'s shared input path; nothing is sent anywhere. Events keep the recorded
//! receive times. Resync commands from ingest are ignored: the capture already holds the
//! resyncs of the live run at the point they happened.
//!
//! `speed`: `Some(f)` plays `f` times faster than recorded (1.0 = real time); `None` plays as
//! fast as ingest accepts.
//!
//! [`play`] (module `play`) runs a whole capture outside the gateway in one streaming pass, its
//! lines decoded on another thread: `tickgate replay` and the replay benchmark.

mod play;

pub use play::{PlayStats, ReplayError, play};

use crate::conn::input::apply;
use crate::conn::record::{CaptureReader, CaptureRecord, RecordKind, read_capture};
use crate::conn::venue_protocol::{Io, Protocol, Session};
use crate::settings::VenueSpec;
use crate::{ConnectionState, Connector, ConnectorContext, ConnectorError, FeedBatch, FeedEvent};
use model::{Instrument, Symbol, Timestamp, Venue};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The config name of the replay venue.
pub const VENUE: &str = "replay";

/// Events sent to ingest per batch at full speed.
const BATCH: usize = 1024;

/// Plays one recorded venue of a capture, streamed from the file (decoded on a thread of its
/// own, batch by batch): memory stays bounded whatever the capture's length.
#[derive(Debug)]
pub struct ReplayConnector {
    protocol: Arc<dyn Protocol>,
    path: PathBuf,
    /// This venue's records in the capture (counted when it was opened).
    count: u64,
    speed: Option<f64>,
    label: String,
}

/// Opens a capture: one connector per venue recorded in it, each publishing under that venue's
/// own name. The whole capture is read once here (streamed, not kept), so a truncated or
/// corrupt capture is a configuration error at startup, and each venue's records are counted.
pub fn open(path: &Path, speed: Option<f64>) -> Result<Vec<ReplayConnector>, ConnectorError> {
    let unreadable = |source| ConnectorError::Capture {
        path: path.display().to_string(),
        source,
    };
    let mut reader = CaptureReader::open(path).map_err(unreadable)?;
    let mut venues: Vec<(String, VenueSpec, u64)> = Vec::new();
    while let Some(batch) = reader.next_batch() {
        let batch = batch.map_err(unreadable)?;
        for record in &batch {
            if let Some(spec) = venue_spec(&record.kind) {
                venues.push((record.v.clone(), spec, 0));
            }
            if let Some(venue) = venues.iter_mut().find(|(v, ..)| *v == record.v) {
                venue.2 += 1;
            }
        }
        reader.recycle(batch);
    }
    let mut connectors = Vec::new();
    for (name, spec, count) in venues {
        connectors.push(ReplayConnector {
            protocol: super::protocol(&name, spec)?,
            path: path.to_path_buf(),
            count,
            speed,
            label: path.display().to_string(),
        });
    }
    if connectors.is_empty() {
        return Err(no_venue(path));
    }
    Ok(connectors)
}

fn no_venue(path: &Path) -> ConnectorError {
    ConnectorError::Config(format!("capture {} records no venue", path.display()))
}

/// The venue settings a `venue` record holds (what the recorded run was configured with).
fn venue_spec(kind: &RecordKind) -> Option<VenueSpec> {
    let RecordKind::Venue {
        symbols,
        ws_url,
        rest_url,
        feed,
    } = kind
    else {
        return None;
    };
    Some(VenueSpec {
        symbols: symbols.clone(),
        ws_url: ws_url.clone(),
        rest_url: rest_url.clone(),
        feed: feed.clone(),
    })
}

impl Connector for ReplayConnector {
    fn venue(&self) -> &Venue {
        self.protocol.venue()
    }

    fn instruments(&self) -> Vec<Instrument> {
        self.protocol.fallback_instruments()
    }

    fn run(
        self: Box<Self>,
        ctx: ConnectorContext,
    ) -> Pin<Box<dyn Future<Output = Result<(), ConnectorError>> + Send>> {
        let span = tracing::info_span!("replay", venue = %self.protocol.venue());
        Box::pin(tracing::Instrument::instrument(run(*self, ctx), span))
    }
}

/// One recorded connection being replayed.
struct Replayed {
    session: Box<dyn Session>,
    symbols: Vec<Symbol>,
    standby: bool,
}

async fn run(replay: ReplayConnector, mut ctx: ConnectorContext) -> Result<(), ConnectorError> {
    let venue = replay.protocol.venue().as_str().to_string();
    let unreadable = |source| ConnectorError::Capture {
        path: replay.label.clone(),
        source,
    };
    let mut reader = Some(CaptureReader::open(&replay.path).map_err(unreadable)?);
    let mut batch: FeedBatch = vec![FeedEvent::Status {
        state: ConnectionState::Connected,
        detail: format!("replaying {} ({} records)", replay.label, replay.count),
    }];
    let mut sessions: HashMap<u64, Replayed> = HashMap::new();
    let mut io = Io::default();
    let start = Instant::now();
    let mut first: Option<i64> = None;
    // The reader's channel blocks: each batch is awaited on the blocking pool.
    while let Some(mut current) = reader.take() {
        let (back, records) = tokio::task::spawn_blocking(move || {
            let records = current.next_batch();
            (current, records)
        })
        .await
        .map_err(|e| ConnectorError::Connection(format!("capture reader: {e}")))?;
        let Some(records) = records else {
            break;
        };
        let records = records.map_err(unreadable)?;
        for record in records.iter().filter(|r| r.v == venue) {
            if let Some(speed) = replay.speed {
                let first = *first.get_or_insert(record.t);
                let offset = (record.t.saturating_sub(first).max(0) as f64 / speed) as u64;
                let due = start + Duration::from_micros(offset);
                if due > Instant::now() {
                    if !send(&ctx, &mut batch).await? {
                        return Ok(());
                    }
                    tokio::select! {
                        () = ctx.shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep_until(due) => {}
                    }
                }
            }
            // Ingest's resync requests are answered by the recorded resyncs instead.
            while ctx.commands.try_recv().is_ok() {}
            step(
                replay.protocol.as_ref(),
                &mut sessions,
                record,
                &mut io,
                &mut batch,
            );
            if batch.len() >= BATCH && !send(&ctx, &mut batch).await? {
                return Ok(());
            }
        }
        back.recycle(records);
        reader = Some(back);
    }
    batch.push(FeedEvent::Status {
        state: ConnectionState::Connected,
        detail: format!("replay of {} finished", replay.label),
    });
    if !send(&ctx, &mut batch).await? {
        return Ok(());
    }
    // Keep the venue's channels (and their final books) until shutdown.
    loop {
        tokio::select! {
            () = ctx.shutdown.cancelled() => return Ok(()),
            command = ctx.commands.recv() => if command.is_none() { ctx.shutdown.cancelled().await; return Ok(()) },
        }
    }
}

/// Applies one record; what a live connection would have emitted goes into `out`. `io` is
/// scratch space, reset here, kept by the caller so its buffers are reused.
fn step(
    protocol: &dyn Protocol,
    sessions: &mut HashMap<u64, Replayed>,
    record: &CaptureRecord,
    io: &mut Io,
    out: &mut FeedBatch,
) {
    io.reset(Timestamp(record.t));
    match &record.kind {
        RecordKind::Venue { .. } => {}
        RecordKind::Instruments { body } => {
            if let Some(list) = body
                .as_deref()
                .and_then(|b| protocol.parse_instruments(b).ok())
            {
                out.push(FeedEvent::Instruments(list));
            }
        }
        RecordKind::Open { symbols, standby } => {
            let mut session = if *standby {
                protocol.standby_session(symbols)
            } else {
                protocol.session(symbols)
            };
            apply(session.as_mut(), &record.kind, symbols, io);
            sessions.insert(
                record.c,
                Replayed {
                    session,
                    symbols: symbols.clone(),
                    standby: *standby,
                },
            );
        }
        RecordKind::Takeover { old } => {
            let old = sessions.remove(old);
            if let (Some(old), Some(new)) = (old, sessions.get_mut(&record.c)) {
                new.session.take_over(old.session.as_ref(), io);
                new.standby = false;
            }
        }
        kind => {
            let Some(replayed) = sessions.get_mut(&record.c) else {
                return;
            };
            apply(replayed.session.as_mut(), kind, &replayed.symbols, io);
            if replayed.standby {
                return; // a standby connection's output is never forwarded (see the driver)
            }
            if matches!(kind, RecordKind::Close { .. }) {
                sessions.remove(&record.c);
            }
        }
    }
    out.append(&mut io.events);
}

/// Sends the batch (if any); false on shutdown.
async fn send(ctx: &ConnectorContext, batch: &mut FeedBatch) -> Result<bool, ConnectorError> {
    if batch.is_empty() {
        return Ok(true);
    }
    let events = std::mem::take(batch);
    tokio::select! {
        biased;
        () = ctx.shutdown.cancelled() => Ok(false),
        sent = ctx.events.send(events) => sent.map(|()| true).map_err(|_| ConnectorError::SinkClosed),
    }
}

/// Replays a whole capture synchronously (no pacing), returning every venue's events in order:
/// what the gateway's ingest stage receives. For tests, and the benchmark's baseline: it reads
/// the whole capture into memory first on the calling thread; [`play`] streams it instead.
pub fn replay_all(path: &Path) -> Result<Vec<(String, FeedEvent)>, ConnectorError> {
    let records = read_capture(path).map_err(|source| ConnectorError::Capture {
        path: path.display().to_string(),
        source,
    })?;
    let mut protocols = Vec::new();
    for record in &records {
        if let Some(spec) = venue_spec(&record.kind) {
            protocols.push(super::protocol(&record.v, spec)?);
        }
    }
    if protocols.is_empty() {
        return Err(no_venue(path));
    }
    let mut out = Vec::new();
    for protocol in &protocols {
        let venue = protocol.venue().as_str().to_string();
        let mut sessions = HashMap::new();
        let mut batch = Vec::new();
        let mut io = Io::default();
        for record in records.iter().filter(|r| r.v == venue) {
            step(
                protocol.as_ref(),
                &mut sessions,
                record,
                &mut io,
                &mut batch,
            );
        }
        out.extend(batch.into_iter().map(|e| (venue.clone(), e)));
    }
    Ok(out)
}
