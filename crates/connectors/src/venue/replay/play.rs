//! Playing a whole capture as fast as possible in one pass, outside the gateway: what
//! `tickgate replay` and the replay benchmark run.
//!
//! A [`CaptureReader`] thread decompresses and decodes records ahead; records are applied in file order
//! through the same [`super::step`] as the replay venue (so sessions, sequencing, gap and
//! checksum checks are the live ones), and each venue's events are handed to the caller in
//! batches of up to [`super::BATCH`], the batch size of the replay venue at `speed = "max"`.

use super::{BATCH, Replayed, step, venue_spec};
use crate::conn::Protocol;
use crate::conn::record::CaptureReader;
use crate::conn::venue_protocol::Io;
use crate::venue::VenueKind;
use crate::{ConnectionState, FeedBatch, FeedEvent};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

/// Why a capture could not be played. [`ReplayError::code`] is stable (the CLI prints it).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot open capture {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("capture {path} is truncated: {source}")]
    Truncated {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("capture {path} is corrupt: {source}")]
    Corrupt {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown venue {0:?} (this build knows {known})", known = VenueKind::names())]
    UnknownVenue(String),
    #[error("capture {path} records no venue{which}", which = .venue.as_ref().map(|v| format!(" named {v:?}")).unwrap_or_default())]
    NoVenue { path: String, venue: Option<String> },
}

impl ReplayError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Open { .. } => "capture_unreadable",
            Self::Truncated { .. } => "capture_truncated",
            Self::Corrupt { .. } => "capture_corrupt",
            Self::UnknownVenue(_) => "unknown_venue",
            Self::NoVenue { .. } => "capture_without_venue",
        }
    }

    fn reading(path: &Path, source: std::io::Error) -> Self {
        let path = path.display().to_string();
        match source.kind() {
            std::io::ErrorKind::UnexpectedEof => Self::Truncated { path, source },
            _ => Self::Corrupt { path, source },
        }
    }
}

/// What a [`play`] went through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlayStats {
    /// Capture lines decoded (every venue's).
    pub records: u64,
    /// Records applied to the played venues' sessions.
    pub applied: u64,
    /// Events handed to the sink.
    pub events: u64,
    /// Venues played, in the order of their `venue` record.
    pub venues: Vec<String>,
    /// Whether the sink stopped the replay early.
    pub stopped: bool,
}

/// One venue of the capture being played.
struct Played {
    protocol: Arc<dyn Protocol>,
    sessions: HashMap<u64, Replayed>,
    batch: FeedBatch,
}

/// Plays `path` (only venue `only`, if given) and hands each venue's events to `sink` with the
/// venue's protocol (its name, configured instruments), in order, in batches; the sink drains the batch and may stop the replay. Each venue's events
/// open with a `connected` status and end with a "finished" one, as from the replay venue.
pub fn play(
    path: &Path,
    only: Option<&str>,
    mut sink: impl FnMut(&dyn Protocol, &mut FeedBatch) -> ControlFlow<()>,
) -> Result<PlayStats, ReplayError> {
    if let Some(name) = only
        && VenueKind::from_name(name).is_none()
    {
        return Err(ReplayError::UnknownVenue(name.to_string()));
    }
    let label = path.display().to_string();
    let mut reader = CaptureReader::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::InvalidData => ReplayError::reading(path, source),
        _ => ReplayError::Open {
            path: label.clone(),
            source,
        },
    })?;
    let mut played: Vec<Played> = Vec::new();
    let mut stats = PlayStats::default();
    let mut io = Io::default();
    while let Some(batch) = reader.next_batch() {
        let batch = batch.map_err(|e| ReplayError::reading(path, e))?;
        stats.records += batch.len() as u64;
        for record in &batch {
            if only.is_some_and(|name| name != record.v) {
                continue;
            }
            let index = match played
                .iter()
                .position(|p| p.protocol.venue().as_str() == record.v)
            {
                Some(index) => index,
                None => {
                    let Some(spec) = venue_spec(&record.kind) else {
                        // Traffic before its venue's record: the recorder never writes it.
                        continue;
                    };
                    if VenueKind::from_name(&record.v).is_none() {
                        return Err(ReplayError::UnknownVenue(record.v.clone()));
                    }
                    let protocol = super::super::protocol(&record.v, spec)
                        .map_err(|_| ReplayError::UnknownVenue(record.v.clone()))?;
                    stats.venues.push(record.v.clone());
                    played.push(Played {
                        protocol,
                        sessions: HashMap::new(),
                        batch: vec![FeedEvent::Status {
                            state: ConnectionState::Connected,
                            detail: format!("replaying {label}"),
                        }],
                    });
                    played.len() - 1
                }
            };
            let venue = &mut played[index];
            step(
                venue.protocol.as_ref(),
                &mut venue.sessions,
                record,
                &mut io,
                &mut venue.batch,
            );
            stats.applied += 1;
            if venue.batch.len() >= BATCH {
                stats.events += venue.batch.len() as u64;
                let flow = sink(venue.protocol.as_ref(), &mut venue.batch);
                venue.batch.clear();
                if flow.is_break() {
                    stats.stopped = true;
                    return Ok(stats);
                }
            }
        }
        reader.recycle(batch);
    }
    if played.is_empty() {
        return Err(ReplayError::NoVenue {
            path: label,
            venue: only.map(str::to_string),
        });
    }
    for venue in &mut played {
        venue.batch.push(FeedEvent::Status {
            state: ConnectionState::Connected,
            detail: format!("replay of {label} finished"),
        });
        stats.events += venue.batch.len() as u64;
        if sink(venue.protocol.as_ref(), &mut venue.batch).is_break() {
            stats.stopped = true;
            break;
        }
        venue.batch.clear();
    }
    Ok(stats)
}
