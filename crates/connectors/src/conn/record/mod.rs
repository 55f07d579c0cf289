//! Captures of raw venue traffic (`tickgate record`) and their file formats.
//!
//! A capture holds [`CaptureRecord`]s in the order the sessions consumed them: a `venue`
//! record per venue (its name and spec, so replay can rebuild the same protocol), the
//! instrument metadata, then per connection an `open` record and **every input its session
//! received** — text frames (`ws`), REST answers (`rest`), resync commands, watchdog
//! resubscriptions, ticks, overflows, rotations (`takeover`) and the `close` — each with the
//! receive time the session saw. Replaying them through the same session code therefore
//! reproduces the normalized output exactly. Outgoing frames are not recorded: replay
//! regenerates them and discards them.
//!
//! Two formats ([`CaptureFormat`]), told apart by their first bytes when read: `tgcap`
//! ([`framed`]: length-prefixed records in an LZ4 frame, text frames stored raw; the
//! default) and `jsonl-gz` (gzip-compressed JSON lines, one record each; the first format,
//! still read, and written on request for tools such as `zcat | jq`).

use crate::settings::{FeedSettings, VenueSpec};
use flate2::Compression;
use flate2::write::GzEncoder;
use model::{Symbol, Timestamp};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

pub mod framed;

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

/// A capture file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaptureFormat {
    /// Length-prefixed records in an LZ4 frame, text frames stored as received ([`framed`]).
    #[default]
    Tgcap,
    /// Gzip-compressed JSON lines, one record each.
    JsonlGz,
}

impl CaptureFormat {
    /// Every format's name, as `tickgate record --format` takes it.
    pub const NAMES: &'static str = "tgcap, jsonl-gz";

    pub fn name(self) -> &'static str {
        match self {
            Self::Tgcap => "tgcap",
            Self::JsonlGz => "jsonl-gz",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "tgcap" => Some(Self::Tgcap),
            "jsonl-gz" => Some(Self::JsonlGz),
            _ => None,
        }
    }
}

/// Writes a capture file, record by record, in either format.
pub struct CaptureWriter {
    out: Writer,
}

enum Writer {
    Tgcap(framed::FramedWriter<BufWriter<std::fs::File>>),
    JsonlGz {
        out: BufWriter<GzEncoder<BufWriter<std::fs::File>>>,
        lines: u64,
    },
}

impl std::fmt::Debug for CaptureWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let format = match self.out {
            Writer::Tgcap(_) => CaptureFormat::Tgcap,
            Writer::JsonlGz { .. } => CaptureFormat::JsonlGz,
        };
        f.debug_struct("CaptureWriter")
            .field("format", &format.name())
            .finish_non_exhaustive()
    }
}

impl CaptureWriter {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path, format: CaptureFormat) -> std::io::Result<Self> {
        let file = BufWriter::with_capacity(1 << 16, std::fs::File::create(path)?);
        let out = match format {
            CaptureFormat::Tgcap => Writer::Tgcap(framed::FramedWriter::new(file)?),
            // Buffer in front of the compressor: serde writes many tiny pieces, and feeding
            // them to deflate one by one costs far more than the compression itself.
            CaptureFormat::JsonlGz => Writer::JsonlGz {
                out: BufWriter::with_capacity(1 << 16, GzEncoder::new(file, Compression::fast())),
                lines: 0,
            },
        };
        Ok(Self { out })
    }

    pub fn write(&mut self, record: &CaptureRecord) -> std::io::Result<()> {
        match &mut self.out {
            Writer::Tgcap(out) => out.write(record),
            Writer::JsonlGz { out, lines } => {
                serde_json::to_writer(&mut *out, record)?;
                out.write_all(b"\n")?;
                *lines += 1;
                Ok(())
            }
        }
    }

    /// Completes the file; returns the records written.
    pub fn finish(self) -> std::io::Result<u64> {
        match self.out {
            Writer::Tgcap(out) => {
                let (mut file, records) = out.finish()?;
                file.flush()?;
                Ok(records)
            }
            Writer::JsonlGz { out, lines } => {
                let gzip = out.into_inner().map_err(|e| e.into_error())?;
                gzip.finish()?.flush()?;
                Ok(lines)
            }
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
    /// Creates `path` in the default format ([`CaptureFormat::Tgcap`]) and starts the writer
    /// thread. Recording stops (and the file is completed) when every clone of the recorder is
    /// dropped.
    pub fn create(path: &Path) -> std::io::Result<(Self, RecorderHandle)> {
        Self::create_as(path, CaptureFormat::default())
    }

    /// [`Recorder::create`] in the given format.
    pub fn create_as(
        path: &Path,
        format: CaptureFormat,
    ) -> std::io::Result<(Self, RecorderHandle)> {
        let mut writer = CaptureWriter::create(path, format)?;
        let (tx, mut rx) = mpsc::channel::<CaptureRecord>(RECORD_QUEUE);
        let thread = std::thread::Builder::new()
            .name("tickgate-record".into())
            .spawn(move || {
                while let Some(record) = rx.blocking_recv() {
                    writer.write(&record)?;
                }
                writer.finish()
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

/// Reads a capture (either format): every record, in order. A corrupt record is an error
/// naming it.
pub fn read_capture(path: &Path) -> std::io::Result<Vec<CaptureRecord>> {
    let mut source = CaptureSource::open(path)?;
    let mut records = Vec::new();
    let mut slot = CaptureRecord::empty();
    while source.next_into(&mut slot)? {
        records.push(slot.clone());
    }
    Ok(records)
}

/// An open capture of either format, read record by record into a slot whose buffers are
/// reused. Errors start with the file's name and say where (`line N` of a `jsonl-gz`
/// capture, `record N` of a `tgcap` one); a capture cut short is
/// [`std::io::ErrorKind::UnexpectedEof`], anything else wrong
/// [`std::io::ErrorKind::InvalidData`] (or the I/O error).
pub struct CaptureSource {
    name: String,
    kind: SourceKind,
}

type FileReader = std::io::BufReader<std::fs::File>;

enum SourceKind {
    JsonlGz(JsonLines<std::io::BufReader<flate2::read::GzDecoder<FileReader>>>),
    Tgcap(framed::FramedReader<lz4_flex::frame::FrameDecoder<FileReader>>),
}

/// The decompressed lines of a `jsonl-gz` capture, read one record at a time into a reused
/// slot (the recorder's own rendering of a text frame by hand, anything else by serde).
struct JsonLines<R> {
    reader: R,
    line: Vec<u8>,
    number: usize,
}

impl<R: BufRead> JsonLines<R> {
    fn new(reader: R) -> Self {
        Self {
            reader,
            line: Vec::with_capacity(1 << 12),
            number: 0,
        }
    }

    /// The next record into `slot`; `Ok(false)` at the end. `name` labels errors.
    fn next_into(&mut self, slot: &mut CaptureRecord, name: &str) -> std::io::Result<bool> {
        loop {
            self.line.clear();
            let read = self
                .reader
                .read_until(b'\n', &mut self.line)
                .map_err(|error| {
                    std::io::Error::new(
                        error.kind(),
                        format!("{name}: after line {}: {error}", self.number),
                    )
                })?;
            if read == 0 {
                return Ok(false);
            }
            self.number += 1;
            let text = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            if text.is_empty() {
                continue;
            }
            decode_line(text, slot).map_err(|error| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{name}: line {}: {error}", self.number),
                )
            })?;
            return Ok(true);
        }
    }
}

impl std::fmt::Debug for CaptureSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureSource")
            .field("name", &self.name)
            .field("format", &self.format().name())
            .finish_non_exhaustive()
    }
}

impl CaptureSource {
    /// Opens `path` and tells its format from its first bytes (neither gzip nor LZ4 is
    /// [`std::io::ErrorKind::InvalidData`]).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        use std::io::{Read, Seek};
        let mut file = std::fs::File::open(path)?;
        let name = path.display().to_string();
        let mut magic = [0u8; 4];
        let mut got = 0;
        while got < magic.len() {
            match file.read(&mut magic[got..])? {
                0 => break,
                n => got += n,
            }
        }
        file.rewind()?;
        let file = std::io::BufReader::with_capacity(1 << 16, file);
        let kind = if got >= 2 && magic[..2] == [0x1f, 0x8b] {
            SourceKind::JsonlGz(JsonLines::new(std::io::BufReader::with_capacity(
                1 << 18,
                flate2::read::GzDecoder::new(file),
            )))
        } else if got == 4 && magic == framed::LZ4_MAGIC {
            SourceKind::Tgcap(framed::FramedReader::new(
                lz4_flex::frame::FrameDecoder::new(file),
            ))
        } else {
            // Not a capture at all is a corrupt capture, not a truncated one (what a
            // decompressor would say of a file shorter than its header).
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{name}: not a capture (neither a tgcap LZ4 frame nor a gzip file)"),
            ));
        };
        Ok(Self { name, kind })
    }

    /// The capture's format.
    pub fn format(&self) -> CaptureFormat {
        match self.kind {
            SourceKind::JsonlGz(_) => CaptureFormat::JsonlGz,
            SourceKind::Tgcap(_) => CaptureFormat::Tgcap,
        }
    }

    /// Decodes the next record into `slot`; `Ok(false)` at the end of the capture. After an
    /// error nothing more should be read.
    pub fn next_into(&mut self, slot: &mut CaptureRecord) -> std::io::Result<bool> {
        let name = &self.name;
        match &mut self.kind {
            SourceKind::JsonlGz(lines) => lines.next_into(slot, name),
            SourceKind::Tgcap(reader) => reader
                .next_into(slot)
                .map_err(|error| std::io::Error::new(error.kind(), format!("{name}: {error}"))),
        }
    }
}

/// Records per batch handed over by [`CaptureReader`]'s decoder thread.
const READ_BATCH: usize = 2048;
/// Batches the decoder thread may decode ahead of the consumer (bounds its memory).
const READ_AHEAD: usize = 8;

/// A capture (either format) read by a decoder thread (decompression + record decoding) ahead
/// of its consumer,
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
        let mut source = CaptureSource::open(path)?;
        let (tx, batches) = std::sync::mpsc::sync_channel(READ_AHEAD);
        let (spare, spares) = std::sync::mpsc::sync_channel::<Vec<CaptureRecord>>(READ_AHEAD + 2);
        let thread = std::thread::Builder::new()
            .name("tickgate-capture".into())
            .spawn(move || decode_batches(&mut source, &tx, &spares))?;
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

    /// Hands a consumed batch back to the decoder thread, which decodes over its records and
    /// so reuses their buffers (dropped if the decoder has enough spares).
    pub fn recycle(&self, batch: Vec<CaptureRecord>) {
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

/// The decoder thread's loop: records, `READ_BATCH` at a time, until the end, an error
/// (sent, then stop) or the consumer going away. A recycled batch still holds its records:
/// they are decoded over in place, so their strings' buffers are reused and the steady state
/// allocates nothing per record.
fn decode_batches(
    source: &mut CaptureSource,
    tx: &std::sync::mpsc::SyncSender<std::io::Result<Vec<CaptureRecord>>>,
    spares: &std::sync::mpsc::Receiver<Vec<CaptureRecord>>,
) {
    let mut batch = Vec::with_capacity(READ_BATCH);
    let mut filled = 0usize;
    loop {
        if filled == batch.len() {
            batch.push(CaptureRecord::empty());
        }
        match source.next_into(&mut batch[filled]) {
            Ok(true) => filled += 1,
            Ok(false) => {
                if filled > 0 {
                    batch.truncate(filled);
                    let _ = tx.send(Ok(batch));
                }
                return;
            }
            Err(error) => {
                let _ = tx.send(Err(error));
                return;
            }
        }
        if filled >= READ_BATCH {
            let next = spares
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(READ_BATCH));
            batch.truncate(filled);
            if tx.send(Ok(std::mem::replace(&mut batch, next))).is_err() {
                return;
            }
            filled = 0;
        }
    }
}

impl CaptureRecord {
    /// A placeholder a record is decoded into.
    pub fn empty() -> Self {
        Self {
            t: 0,
            v: String::new(),
            c: 0,
            kind: RecordKind::Tick,
        }
    }
}

/// Decodes one capture line into `slot`, reusing `slot`'s buffers for the common text-frame
/// line. Any line the fast path does not recognise goes through serde, which decides (and
/// words the error) exactly as before.
fn decode_line(line: &[u8], slot: &mut CaptureRecord) -> Result<(), serde_json::Error> {
    if decode_ws_line(line, slot).is_some() {
        return Ok(());
    }
    *slot = serde_json::from_slice(line)?;
    Ok(())
}

/// The recorder's own rendering of a text frame, `{"t":T,"v":"V","c":C,"k":"ws","text":"…"}`
/// (serde's field order, no whitespace), decoded by hand: one pass over the escaped text, no
/// intermediate values. `None` for any other shape or anything unusual (a `\u` escape, a raw
/// control character, a number serde would refuse): the caller falls back to serde.
fn decode_ws_line(line: &[u8], slot: &mut CaptureRecord) -> Option<()> {
    let rest = line.strip_prefix(b"{\"t\":")?;
    let (t, rest) = json_int(rest)?;
    let rest = rest.strip_prefix(b",\"v\":\"")?;
    let end = rest
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    if rest[end] != b'"' {
        return None;
    }
    let venue = std::str::from_utf8(&rest[..end]).ok()?;
    let rest = rest[end + 1..].strip_prefix(b",\"c\":")?;
    let (c, rest) = json_int(rest)?;
    let c = u64::try_from(c).ok()?;
    let rest = rest.strip_prefix(b",\"k\":\"ws\",\"text\":\"")?;
    let mut text = match &mut slot.kind {
        RecordKind::Ws { text } => std::mem::take(text).into_bytes(),
        _ => Vec::with_capacity(rest.len()),
    };
    text.clear();
    let tail = unescape_into(rest, &mut text)?;
    if tail != b"}" {
        return None;
    }
    let text = String::from_utf8(text).ok()?;
    slot.t = t;
    slot.v.clear();
    slot.v.push_str(venue);
    slot.c = c;
    slot.kind = RecordKind::Ws { text };
    Some(())
}

/// A JSON integer at the start of `bytes` (optional `-`, no leading zero, no fraction or
/// exponent: the next byte must be `,` or `}`), and what follows it.
fn json_int(bytes: &[u8]) -> Option<(i64, &[u8])> {
    let (negative, digits) = match bytes.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, bytes),
    };
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 18 || (len > 1 && digits[0] == b'0') {
        return None;
    }
    if !matches!(digits.get(len), Some(b',' | b'}')) {
        return None;
    }
    let value = digits[..len]
        .iter()
        .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
    Some((if negative { -value } else { value }, &digits[len..]))
}

/// Unescapes a JSON string body (after its opening quote) into `out` up to its closing quote;
/// returns what follows the quote. `None` on a `\u` escape, a raw control character or a
/// missing closing quote. Scans eight bytes at a time for the bytes that need a look (`"`,
/// `\\`, controls) and copies the runs between them whole.
fn unescape_into<'a>(bytes: &'a [u8], out: &mut Vec<u8>) -> Option<&'a [u8]> {
    // The output is never longer than the input, so it is sized once (plus a word of slack)
    // and written eight bytes at a time: a fixed-size copy is one move, where copying each
    // run between escapes was a `memcpy` call per run (most runs are a few bytes).
    let base = out.len();
    out.resize(base + bytes.len() + 8, 0);
    let mut w = base;
    let mut i = 0;
    let end = loop {
        let special = match bytes.get(i..i + 8) {
            Some(chunk) => {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                out[w..w + 8].copy_from_slice(&word);
                let flags = special_flags(u64::from_le_bytes(word));
                if flags == 0 {
                    i += 8;
                    w += 8;
                    continue;
                }
                let run = flags.trailing_zeros() as usize / 8;
                i += run;
                w += run;
                i
            }
            None => {
                let run = bytes[i..]
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
                out[w..w + run].copy_from_slice(&bytes[i..i + run]);
                i += run;
                w += run;
                i
            }
        };
        match bytes[special] {
            b'"' => break special,
            b'\\' => {
                out[w] = match bytes.get(special + 1)? {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    _ => return None,
                };
                w += 1;
                i = special + 2;
            }
            _ => return None, // a raw control character
        }
    };
    out.truncate(w);
    Some(&bytes[end + 1..])
}

/// The "has a zero byte" test for `"`, `\\` and control bytes in a little-endian word: the
/// lowest flagged byte is exact (higher flags may be borrow artefacts, and are never used).
fn special_flags(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    (quote.wrapping_sub(ONES) & !quote
        | backslash.wrapping_sub(ONES) & !backslash
        | word.wrapping_sub(ONES * 0x20) & !word)
        & HIGH
}

/// The index of the first `"`, `\\` or control byte at or after `from`, if any.
#[cfg(test)]
fn next_special(bytes: &[u8], mut from: usize) -> Option<usize> {
    while let Some(chunk) = bytes.get(from..from + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let flags = special_flags(u64::from_le_bytes(word));
        if flags != 0 {
            return Some(from + flags.trailing_zeros() as usize / 8);
        }
        from += 8;
    }
    bytes
        .get(from..)?
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|at| from + at)
}

/// Parses the decompressed lines of a `jsonl-gz` capture (the readers' own line decoder);
/// `name` labels errors (the file's path).
pub fn read_capture_lines(
    reader: impl std::io::BufRead,
    name: &str,
) -> std::io::Result<Vec<CaptureRecord>> {
    let mut lines = JsonLines::new(reader);
    let mut records = Vec::new();
    let mut slot = CaptureRecord::empty();
    while lines.next_into(&mut slot, name)? {
        records.push(std::mem::replace(&mut slot, CaptureRecord::empty()));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(t: i64, c: u64, text: &str) -> CaptureRecord {
        CaptureRecord {
            t,
            v: "binance".into(),
            c,
            kind: RecordKind::Ws { text: text.into() },
        }
    }

    /// Decodes `line` into a slot already holding `previous` (as a recycled batch does).
    fn decode_over(previous: CaptureRecord, line: &[u8]) -> Result<CaptureRecord, String> {
        let mut slot = previous;
        decode_line(line, &mut slot).map_err(|e| e.to_string())?;
        Ok(slot)
    }

    #[test]
    fn the_fast_path_decodes_what_the_recorder_writes_exactly_as_serde_does() {
        let texts = [
            r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","b":[["1.0","2"]]}"#,
            "",
            "quote \" backslash \\ slash / tab \t newline \n cr \r bs \u{8} ff \u{c}",
            "control \u{1} and \u{1f} (written as \\u escapes)",
            "unicode: é ✓ 𝄞, and a literal \\u0041 text",
            "ends with a backslash \\",
        ];
        let previous = [
            CaptureRecord::empty(),
            ws(9, 9, &"x".repeat(500)),
            CaptureRecord {
                kind: RecordKind::Close {
                    reason: "gone".into(),
                },
                ..ws(1, 1, "")
            },
        ];
        // An escape at every offset around the eight-byte words, alone and in pairs.
        let shifted = (0..20).flat_map(|k| {
            let (a, b) = ("a".repeat(k), "b".repeat(19 - k));
            [
                format!("{a}\"{b}"),
                format!("{a}\\{b}\n"),
                format!("{a}é\"\"{b}"),
            ]
        });
        let texts: Vec<String> = texts.iter().map(|t| t.to_string()).chain(shifted).collect();
        for (i, text) in texts.iter().enumerate() {
            for t in [0, 1_733_000_000_123_456, -5] {
                let record = ws(t, i as u64, text);
                let line = serde_json::to_vec(&record).unwrap();
                for slot in &previous {
                    assert_eq!(decode_over(slot.clone(), &line), Ok(record.clone()));
                }
            }
        }
    }

    #[test]
    fn the_word_scan_finds_the_first_special_byte_wherever_it_is() {
        let naive = |bytes: &[u8], from: usize| {
            (from..bytes.len()).find(|&i| matches!(bytes[i], b'"' | b'\\' | 0..0x20))
        };
        // Every byte value at every offset of a 19-byte run, with specials before and after
        // (borrow artefacts of the word test sit above a true match, never below).
        for value in 0..=255u8 {
            for at in 0..19 {
                let mut bytes = vec![b'a'; 19];
                bytes[at] = value;
                if at + 3 < 19 {
                    bytes[at + 3] = b'"';
                }
                for from in 0..19 {
                    assert_eq!(
                        next_special(&bytes, from),
                        naive(&bytes, from),
                        "{value} at {at}"
                    );
                }
            }
        }
        assert_eq!(next_special(b"", 0), None);
        assert_eq!(next_special(b"abc", 5), None);
    }

    #[test]
    fn other_records_and_other_renderings_go_through_serde() {
        let records = [
            CaptureRecord {
                kind: RecordKind::Rest {
                    key: "snapshot:BTC-USDT".into(),
                    body: Some("{\"lastUpdateId\":1}".into()),
                    error: None,
                },
                ..ws(3, 1, "")
            },
            CaptureRecord {
                kind: RecordKind::Tick,
                ..ws(4, 2, "")
            },
        ];
        for record in records {
            let line = serde_json::to_vec(&record).unwrap();
            assert_eq!(decode_over(ws(1, 1, "old"), &line), Ok(record));
        }
        // Valid JSON in another layout than the recorder's: same record.
        let spaced = br#"{ "t": 7, "v": "kraken", "c": 2, "k": "ws", "text": "hi" }"#;
        let mut expected = ws(7, 2, "hi");
        expected.v = "kraken".into();
        assert_eq!(
            decode_over(CaptureRecord::empty(), spaced),
            Ok(expected.clone())
        );
        let reordered = br#"{"k":"ws","text":"hi","t":7,"v":"kraken","c":2}"#;
        assert_eq!(decode_over(CaptureRecord::empty(), reordered), Ok(expected));
    }

    #[test]
    fn malformed_lines_are_refused_as_serde_refuses_them() {
        let bad: [&[u8]; 9] = [
            br#"{"t":01,"v":"binance","c":1,"k":"ws","text":"x"}"#,
            br#"{"t":1.5,"v":"binance","c":1,"k":"ws","text":"x"}"#,
            br#"{"t":1,"v":"binance","c":-1,"k":"ws","text":"x"}"#,
            br#"{"t":1,"v":"binance","c":1,"k":"ws","text":"x"} trailing"#,
            br#"{"t":1,"v":"binance","c":1,"k":"ws","text":"x"#,
            br#"{"t":1,"v":"binance","c":1,"k":"ws","text":"bad \q escape"}"#,
            b"{\"t\":1,\"v\":\"binance\",\"c\":1,\"k\":\"ws\",\"text\":\"raw \x01 control\"}",
            b"{\"t\":1,\"v\":\"binance\",\"c\":1,\"k\":\"ws\",\"text\":\"bad utf8 \xff\"}",
            br#"{"t":1,"v":"binance","c":1,"k":"nope"}"#,
        ];
        for line in bad {
            let fast = decode_over(ws(1, 1, "old"), line);
            let serde = serde_json::from_slice::<CaptureRecord>(line).map_err(|e| e.to_string());
            assert!(fast.is_err(), "{}", String::from_utf8_lossy(line));
            assert_eq!(fast, serde, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn a_capture_reads_back_in_order_across_recycled_batches() {
        let dir = std::env::temp_dir().join(format!("tickgate-record-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let count = READ_BATCH * 3 + 17;
        let records: Vec<CaptureRecord> = (0..count)
            .map(|i| match i % 5 {
                // Lengths vary so reused buffers shrink and grow.
                0 => CaptureRecord {
                    kind: RecordKind::Tick,
                    ..ws(i as i64, 1, "")
                },
                n => ws(i as i64, n as u64, &"\"é\\".repeat(i % 97)),
            })
            .collect();
        for format in [CaptureFormat::JsonlGz, CaptureFormat::Tgcap] {
            let path = dir.join(format!("batches.{}", format.name()));
            let mut writer = CaptureWriter::create(&path, format).unwrap();
            for record in &records {
                writer.write(record).unwrap();
            }
            assert_eq!(writer.finish().unwrap(), count as u64);
            let mut reader = CaptureReader::open(&path).unwrap();
            let mut read = Vec::new();
            while let Some(batch) = reader.next_batch() {
                let batch = batch.unwrap();
                assert!(batch.len() <= READ_BATCH);
                read.extend(batch.iter().cloned());
                reader.recycle(batch);
            }
            assert_eq!(read, records, "{format:?}");
            assert_eq!(read_capture(&path).unwrap(), records, "{format:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_tgcap_file_is_refused_never_read_short_or_different() {
        let dir = std::env::temp_dir().join(format!("tickgate-damage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("good.tgcap");
        let records: Vec<CaptureRecord> = (0..5_000)
            .map(|i| ws(i, 1, &format!("{{\"e\":\"trade\",\"p\":\"{i}.5\"}}")))
            .collect();
        let mut writer = CaptureWriter::create(&path, CaptureFormat::Tgcap).unwrap();
        for record in &records {
            writer.write(record).unwrap();
        }
        writer.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(read_capture(&path).unwrap(), records);
        let damaged = dir.join("damaged.tgcap");
        // Cut anywhere after the magic: truncated, whatever the cut lands on (a block
        // header, inside a block, the checksum, between blocks).
        for cut in (4..bytes.len()).step_by(bytes.len() / 97) {
            std::fs::write(&damaged, &bytes[..cut]).unwrap();
            let error = read_capture(&damaged).unwrap_err();
            assert_eq!(
                error.kind(),
                std::io::ErrorKind::UnexpectedEof,
                "cut {cut}: {error}"
            );
            assert!(
                error
                    .to_string()
                    .starts_with(&*damaged.display().to_string())
            );
        }
        // One flipped bit anywhere past the frame header: an error (a bad block, a bad record
        // or the content checksum), never other records.
        for at in (12..bytes.len()).step_by(bytes.len() / 61) {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            std::fs::write(&damaged, &flipped).unwrap();
            assert!(read_capture(&damaged).is_err(), "flip at {at}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
