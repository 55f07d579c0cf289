//! Captures of raw venue traffic (`tickgate record`) and their file format.
//!
//! A capture is a gzip-compressed file of JSON lines, one [`CaptureRecord`] each, in the order
//! the sessions consumed them: a `venue` record per venue (its name and spec, so replay can
//! rebuild the same protocol), the instrument metadata, then per connection an `open` record
//! and **every input its session received** — text frames (`ws`), REST answers (`rest`),
//! resync commands, watchdog resubscriptions, ticks, overflows, rotations (`takeover`) and the
//! `close` — each with the receive time the session saw. Replaying them through the same
//! session code therefore reproduces the normalized output exactly. Outgoing frames are not
//! recorded: replay regenerates them and discards them.

use crate::settings::{FeedSettings, VenueSpec};
use flate2::Compression;
use flate2::write::GzEncoder;
use model::{Symbol, Timestamp};
use serde::{Deserialize, Serialize};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

/// Records buffered between connections and the writer thread.
const RECORD_QUEUE: usize = 65_536;

/// One line of a capture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureRecord {
    /// Gateway receive time, µs since the epoch.
    pub t: i64,
    /// Venue name.
    pub v: String,
    /// Connection id, unique within the venue for the capture.
    #[serde(default)]
    pub c: u64,
    #[serde(flatten)]
    pub kind: RecordKind,
}

/// What a capture line holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "lowercase")]
pub enum RecordKind {
    /// The venue's configuration, written once before its traffic.
    Venue {
        symbols: Vec<Symbol>,
        ws_url: Option<String>,
        rest_url: Option<String>,
        feed: FeedSettings,
    },
    /// A connection of the shard holding `symbols` opened (`standby`: the replacement
    /// connection of a make-before-break rotation).
    Open {
        symbols: Vec<Symbol>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        standby: bool,
    },
    /// A text frame received.
    Ws { text: String },
    /// A REST answer: `body` on success, `error` otherwise.
    Rest {
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// Instrument metadata answer, like `Rest`.
    Instruments {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
    /// Ingest asked for a fresh snapshot of `symbol`.
    Resync { symbol: Symbol },
    /// The staleness watchdog resubscribed `symbol`.
    Resubscribe { symbol: Symbol },
    /// The once-a-second session tick (timeouts, retries).
    Tick,
    /// Ingest fell behind and the connection's backlog was dropped: every book is rebuilt.
    Overflow,
    /// This (standby) connection took over from connection `old`.
    Takeover { old: u64 },
    /// The connection ended.
    Close { reason: String },
}

impl RecordKind {
    pub fn venue(spec: &VenueSpec) -> Self {
        Self::Venue {
            symbols: spec.symbols.clone(),
            ws_url: spec.ws_url.clone(),
            rest_url: spec.rest_url.clone(),
            feed: spec.feed.clone(),
        }
    }
}

/// Where connections send what they receive while recording. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<CaptureRecord>,
    dropped: Arc<AtomicU64>,
    next_conn: Arc<AtomicU64>,
}

/// Handle on the writer thread; [`RecorderHandle::finish`] waits for the file to be complete.
#[derive(Debug)]
pub struct RecorderHandle {
    thread: std::thread::JoinHandle<std::io::Result<u64>>,
    dropped: Arc<AtomicU64>,
}

impl Recorder {
    /// Creates `path` and starts the writer thread. Recording stops (and the file is
    /// completed) when every clone of the recorder is dropped.
    pub fn create(path: &Path) -> std::io::Result<(Self, RecorderHandle)> {
        let file = std::fs::File::create(path)?;
        let (tx, mut rx) = mpsc::channel::<CaptureRecord>(RECORD_QUEUE);
        let thread = std::thread::Builder::new()
            .name("tickgate-record".into())
            .spawn(move || {
                // Buffer in front of the compressor: serde writes many tiny pieces, and feeding
                // them to deflate one by one costs far more than the compression itself.
                let gzip = GzEncoder::new(BufWriter::new(file), Compression::fast());
                let mut out = BufWriter::with_capacity(1 << 16, gzip);
                let mut lines = 0u64;
                while let Some(record) = rx.blocking_recv() {
                    serde_json::to_writer(&mut out, &record)?;
                    out.write_all(b"\n")?;
                    lines += 1;
                }
                let gzip = out.into_inner().map_err(|e| e.into_error())?;
                gzip.finish()?.flush()?;
                Ok(lines)
            })?;
        let dropped = Arc::new(AtomicU64::new(0));
        Ok((
            Self {
                tx,
                dropped: dropped.clone(),
                next_conn: Arc::new(AtomicU64::new(1)),
            },
            RecorderHandle { thread, dropped },
        ))
    }

    /// A new connection id.
    pub fn connection_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues one record; never waits. A full queue drops the record and counts it.
    pub fn record(&self, venue: &str, conn: u64, t: Timestamp, kind: RecordKind) {
        let record = CaptureRecord {
            t: t.0,
            v: venue.to_string(),
            c: conn,
            kind,
        };
        if self.tx.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl RecorderHandle {
    /// Waits until every recorder clone is gone and the file is complete. Returns the lines
    /// written and the records dropped because the writer fell behind.
    pub fn finish(self) -> std::io::Result<(u64, u64)> {
        let lines = self
            .thread
            .join()
            .map_err(|_| std::io::Error::other("the capture writer panicked"))??;
        Ok((lines, self.dropped.load(Ordering::Relaxed)))
    }
}

/// Reads a capture: every line parsed, in order. A corrupt line is an error naming it.
pub fn read_capture(path: &Path) -> std::io::Result<Vec<CaptureRecord>> {
    let file = std::fs::File::open(path)?;
    let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(file));
    read_capture_lines(reader, &path.display().to_string())
}

/// Records per batch handed over by [`CaptureReader`]'s decoder thread.
const READ_BATCH: usize = 2048;
/// Batches the decoder thread may decode ahead of the consumer (bounds its memory).
const READ_AHEAD: usize = 8;

/// A capture read by a decoder thread (gunzip + line split + JSON parse) ahead of its consumer,
/// in batches over a bounded channel, so replay applies records on one core while another
/// decodes. Emptied batches can be handed back ([`CaptureReader::recycle`]) to reuse their
/// allocation. Memory stays bounded whatever the capture's size.
#[derive(Debug)]
pub struct CaptureReader {
    batches: std::sync::mpsc::Receiver<std::io::Result<Vec<CaptureRecord>>>,
    spare: std::sync::mpsc::SyncSender<Vec<CaptureRecord>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CaptureReader {
    /// Opens `path` (a missing or unreadable file is an error here, before any thread starts)
    /// and starts decoding it.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        use std::io::{Read, Seek};
        let mut file = std::fs::File::open(path)?;
        let name = path.display().to_string();
        // Not gzip at all is a corrupt capture, not a truncated one (what flate2 would say
        // of a file shorter than a gzip header).
        let mut magic = [0u8; 2];
        let is_gzip = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
        if !is_gzip {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{name}: not a gzip file"),
            ));
        }
        file.rewind()?;
        let (tx, batches) = std::sync::mpsc::sync_channel(READ_AHEAD);
        let (spare, spares) = std::sync::mpsc::sync_channel::<Vec<CaptureRecord>>(READ_AHEAD + 2);
        let thread = std::thread::Builder::new()
            .name("tickgate-capture".into())
            .spawn(move || {
                let gzip =
                    flate2::read::GzDecoder::new(std::io::BufReader::with_capacity(1 << 16, file));
                let mut reader = std::io::BufReader::with_capacity(1 << 18, gzip);
                decode_batches(&mut reader, &name, &tx, &spares);
            })?;
        Ok(Self {
            batches,
            spare,
            thread: Some(thread),
        })
    }

    /// The next batch of records in file order; `None` at the end of the capture. After an
    /// error nothing more follows.
    pub fn next_batch(&mut self) -> Option<std::io::Result<Vec<CaptureRecord>>> {
        self.batches.recv().ok()
    }

    /// Hands an emptied batch back to the decoder thread for reuse (dropped if it has enough).
    pub fn recycle(&self, mut batch: Vec<CaptureRecord>) {
        batch.clear();
        let _ = self.spare.try_send(batch);
    }
}

impl Drop for CaptureReader {
    fn drop(&mut self) {
        // Unblocks the decoder if it is waiting to hand over a batch; it then stops.
        let (_, closed) = std::sync::mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.batches, closed));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The decoder thread's loop: lines into records, `READ_BATCH` at a time, until the end, an
/// error (sent, then stop) or the consumer going away.
fn decode_batches(
    reader: &mut impl std::io::BufRead,
    name: &str,
    tx: &std::sync::mpsc::SyncSender<std::io::Result<Vec<CaptureRecord>>>,
    spares: &std::sync::mpsc::Receiver<Vec<CaptureRecord>>,
) {
    let mut line = Vec::with_capacity(1 << 12);
    let mut number = 0usize;
    let mut batch = Vec::with_capacity(READ_BATCH);
    loop {
        line.clear();
        let read = match reader.read_until(b'\n', &mut line) {
            Ok(read) => read,
            Err(error) => {
                let _ = tx.send(Err(std::io::Error::new(
                    error.kind(),
                    format!("{name}: after line {number}: {error}"),
                )));
                return;
            }
        };
        if read == 0 {
            if !batch.is_empty() {
                let _ = tx.send(Ok(batch));
            }
            return;
        }
        number += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if text.is_empty() {
            continue;
        }
        match serde_json::from_slice::<CaptureRecord>(text) {
            Ok(record) => batch.push(record),
            Err(error) => {
                let _ = tx.send(Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{name}: line {number}: {error}"),
                )));
                return;
            }
        }
        if batch.len() >= READ_BATCH {
            let next = spares
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(READ_BATCH));
            if tx.send(Ok(std::mem::replace(&mut batch, next))).is_err() {
                return;
            }
        }
    }
}

/// Parses the decompressed lines of a capture; `name` labels errors (the file's path).
pub fn read_capture_lines(
    reader: impl std::io::BufRead,
    name: &str,
) -> std::io::Result<Vec<CaptureRecord>> {
    let mut records = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{name}: line {}: {e}", index + 1),
            )
        })?;
        records.push(record);
    }
    Ok(records)
}
