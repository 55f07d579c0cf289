//! The framed capture format (`tgcap`, what `tickgate record` writes): length-prefixed records
//! in one LZ4 frame.
//!
//! Inside the LZ4 frame (the standard format, so `lz4 -d` opens it) the content is
//! [`HEADER`], then one record after another, then an end record:
//!
//! | record | bytes |
//! |---|---|
//! | text frame (`ws`) | `0x01`, t (zigzag varint), c (varint), venue length (varint ≤ 255), venue, text length (varint ≤ [`MAX_PAYLOAD`]), text |
//! | any other record | `0x02`, length (varint ≤ [`MAX_PAYLOAD`]), the record as one JSON object (the `jsonl-gz` line) |
//! | end | `0x03`, number of records before it (varint) |
//!
//! Varints are LEB128 (7 bits a byte, low first). A text frame is stored as the venue sent it,
//! so reading one back is a length check, a UTF-8 check and one copy: no unescaping, and LZ4
//! inflates several times faster than gzip. The end record makes a file cut at a block
//! boundary (a crash, a full disk) a truncated capture rather than a shorter one.

use super::{CaptureRecord, RecordKind};
use std::io::{self, Read, Write};

/// The first bytes of the content (after LZ4 decompression).
pub const HEADER: &[u8] = b"tickgate capture 2\n";
/// The LZ4 frame magic number, the file's first four bytes.
pub const LZ4_MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];
/// The longest text frame or JSON record a capture may hold: a bound on what a corrupt length
/// can make the reader allocate. Far above any venue frame (Kraken's largest snapshots are
/// a few hundred KiB).
pub const MAX_PAYLOAD: usize = 64 << 20;
/// The longest venue name.
const MAX_VENUE: usize = 255;

const TAG_WS: u8 = 0x01;
const TAG_JSON: u8 = 0x02;
const TAG_END: u8 = 0x03;

/// The reader's buffer: decompressed content is read into it this much at a time.
const CHUNK: usize = 1 << 18;

/// Appends `value` as a LEB128 varint.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    (value >> 1) as i64 ^ -((value & 1) as i64)
}

/// Appends `record`'s framed encoding to `out`.
pub fn encode(record: &CaptureRecord, out: &mut Vec<u8>) -> io::Result<()> {
    match &record.kind {
        RecordKind::Ws { text } if record.v.len() <= MAX_VENUE && text.len() <= MAX_PAYLOAD => {
            out.push(TAG_WS);
            put_varint(out, zigzag(record.t));
            put_varint(out, record.c);
            put_varint(out, record.v.len() as u64);
            out.extend_from_slice(record.v.as_bytes());
            put_varint(out, text.len() as u64);
            out.extend_from_slice(text.as_bytes());
        }
        _ => {
            let json = serde_json::to_vec(record)?;
            if json.len() > MAX_PAYLOAD {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "a {} byte record is longer than a capture holds",
                        json.len()
                    ),
                ));
            }
            out.push(TAG_JSON);
            put_varint(out, json.len() as u64);
            out.extend_from_slice(&json);
        }
    }
    Ok(())
}

/// Appends the end record.
pub fn encode_end(records: u64, out: &mut Vec<u8>) {
    out.push(TAG_END);
    put_varint(out, records);
}

/// Writes a framed capture into `inner` (an LZ4 frame).
pub struct FramedWriter<W: Write> {
    out: lz4_flex::frame::FrameEncoder<W>,
    scratch: Vec<u8>,
    records: u64,
}

impl<W: Write> std::fmt::Debug for FramedWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FramedWriter")
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

impl<W: Write> FramedWriter<W> {
    /// Starts the frame and writes the header.
    pub fn new(inner: W) -> io::Result<Self> {
        // Linked blocks: a match may reach into the previous block (LZ4's 64 KiB window), which
        // compresses venue traffic (the same keys in every frame) a little better at no cost.
        // The content checksum (xxHash32) makes a flipped bit a corrupt capture, not a
        // different one.
        let info = lz4_flex::frame::FrameInfo::new()
            .block_size(lz4_flex::frame::BlockSize::Max256KB)
            .block_mode(lz4_flex::frame::BlockMode::Linked)
            .content_checksum(true);
        let mut out = lz4_flex::frame::FrameEncoder::with_frame_info(info, inner);
        out.write_all(HEADER)?;
        Ok(Self {
            out,
            scratch: Vec::with_capacity(1 << 12),
            records: 0,
        })
    }

    pub fn write(&mut self, record: &CaptureRecord) -> io::Result<()> {
        self.scratch.clear();
        encode(record, &mut self.scratch)?;
        self.out.write_all(&self.scratch)?;
        self.records += 1;
        Ok(())
    }

    /// Writes the end record, completes the frame and returns the inner writer and the
    /// records written.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.scratch.clear();
        encode_end(self.records, &mut self.scratch);
        self.out.write_all(&self.scratch)?;
        let inner = self.out.finish().map_err(io::Error::other)?;
        Ok((inner, self.records))
    }
}

/// What parsing the buffered bytes gave.
enum Parsed {
    /// A record was decoded into the slot; this many bytes consumed.
    Record(usize),
    /// The end record, with the count it carries; this many bytes consumed.
    End(u64, usize),
    /// The record is not complete: at least this many bytes are needed from its start.
    More(usize),
}

/// A byte cursor over the buffered content; running out means [`Parsed::More`].
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// Why a cursor read stopped: out of bytes (need at least this many) or a bad record.
enum Stop {
    More(usize),
    Bad(String),
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Result<u8, Stop> {
        let byte = *self.bytes.get(self.at).ok_or(Stop::More(self.at + 1))?;
        self.at += 1;
        Ok(byte)
    }

    fn varint(&mut self, what: &str) -> Result<u64, Stop> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                break;
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Stop::Bad(format!("its {what} is not a valid varint")))
    }

    fn length(&mut self, what: &str, max: usize) -> Result<usize, Stop> {
        let len = self.varint(what)?;
        match usize::try_from(len) {
            Ok(len) if len <= max => Ok(len),
            _ => Err(Stop::Bad(format!(
                "its {what} ({len}) is over the limit of {max}"
            ))),
        }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], Stop> {
        let end = self.at + len;
        let all: &'a [u8] = self.bytes;
        let bytes = all.get(self.at..end).ok_or(Stop::More(end))?;
        self.at = end;
        Ok(bytes)
    }

    fn text(&mut self, len: usize, what: &str) -> Result<&'a str, Stop> {
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|_| Stop::Bad(format!("its {what} is not UTF-8")))
    }
}

/// Decodes the record at the start of `bytes` into `slot` (reusing its buffers); `slot` is
/// only written once the whole record is there and valid.
fn parse(bytes: &[u8], slot: &mut CaptureRecord) -> Result<Parsed, String> {
    let mut cursor = Cursor { bytes, at: 0 };
    let result = (|| match cursor.byte()? {
        TAG_WS => {
            let t = unzigzag(cursor.varint("time")?);
            let c = cursor.varint("connection id")?;
            let venue_len = cursor.length("venue length", MAX_VENUE)?;
            let venue = cursor.text(venue_len, "venue")?;
            let text_len = cursor.length("text length", MAX_PAYLOAD)?;
            let text = cursor.text(text_len, "text")?;
            slot.t = t;
            slot.c = c;
            if slot.v != venue {
                slot.v.clear();
                slot.v.push_str(venue);
            }
            match &mut slot.kind {
                RecordKind::Ws { text: old } => {
                    old.clear();
                    old.push_str(text);
                }
                other => {
                    *other = RecordKind::Ws {
                        text: text.to_string(),
                    }
                }
            }
            Ok(Parsed::Record(cursor.at))
        }
        TAG_JSON => {
            let len = cursor.length("length", MAX_PAYLOAD)?;
            let json = cursor.take(len)?;
            *slot = serde_json::from_slice(json).map_err(|e| Stop::Bad(e.to_string()))?;
            Ok(Parsed::Record(cursor.at))
        }
        TAG_END => {
            let count = cursor.varint("record count")?;
            Ok(Parsed::End(count, cursor.at))
        }
        tag => Err(Stop::Bad(format!("unknown record type {tag:#04x}"))),
    })();
    match result {
        Ok(parsed) => Ok(parsed),
        Err(Stop::More(need)) => Ok(Parsed::More(need)),
        Err(Stop::Bad(why)) => Err(why),
    }
}

/// Reads the records of a framed capture's content (already decompressed: wrap the file in
/// an LZ4 frame decoder). Errors name the record by its number, from 1; a cut-off content is
/// [`io::ErrorKind::UnexpectedEof`], anything else wrong [`io::ErrorKind::InvalidData`].
pub struct FramedReader<R: Read> {
    src: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    header: bool,
    records: u64,
    finished: bool,
}

impl<R: Read> std::fmt::Debug for FramedReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FramedReader")
            .field("records", &self.records)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<R: Read> FramedReader<R> {
    pub fn new(src: R) -> Self {
        Self {
            src,
            buf: vec![0; CHUNK],
            pos: 0,
            end: 0,
            eof: false,
            header: false,
            records: 0,
            finished: false,
        }
    }

    /// Makes at least `need` bytes available from `pos`, or as many as there are.
    fn fill(&mut self, need: usize) -> io::Result<()> {
        if self.pos + need > self.buf.len() {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
            if need > self.buf.len() {
                self.buf.resize(need.next_multiple_of(CHUNK), 0);
            }
        }
        while self.end - self.pos < need && !self.eof {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(read) => self.end += read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn corrupt(&self, why: impl std::fmt::Display) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("record {}: {why}", self.records + 1),
        )
    }

    /// Decodes the next record into `slot`; `Ok(false)` after the end record (and nothing
    /// after it). After an error nothing more should be read.
    pub fn next_into(&mut self, slot: &mut CaptureRecord) -> io::Result<bool> {
        if self.finished {
            return Ok(false);
        }
        if !self.header {
            self.fill(HEADER.len())?;
            let got = &self.buf[self.pos..self.end];
            if !HEADER.starts_with(&got[..got.len().min(HEADER.len())]) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "not a tickgate capture (unknown header)",
                ));
            }
            if got.len() < HEADER.len() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "ends inside the header",
                ));
            }
            self.pos += HEADER.len();
            self.header = true;
        }
        loop {
            match parse(&self.buf[self.pos..self.end], slot).map_err(|why| self.corrupt(why))? {
                Parsed::Record(used) => {
                    self.pos += used;
                    self.records += 1;
                    return Ok(true);
                }
                Parsed::End(count, used) => {
                    if count != self.records {
                        return Err(self.corrupt(format!(
                            "the end record counts {count} records, the capture holds {}",
                            self.records
                        )));
                    }
                    self.pos += used;
                    self.fill(1)?;
                    if self.end > self.pos {
                        return Err(self.corrupt("data after the end record"));
                    }
                    self.finished = true;
                    return Ok(false);
                }
                Parsed::More(need) => {
                    if self.eof {
                        let why = if self.pos == self.end {
                            format!("ends after record {} without its end record", self.records)
                        } else {
                            format!("ends inside record {}", self.records + 1)
                        };
                        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, why));
                    }
                    self.fill(need)?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(t: i64, c: u64, venue: &str, text: &str) -> CaptureRecord {
        CaptureRecord {
            t,
            v: venue.into(),
            c,
            kind: RecordKind::Ws { text: text.into() },
        }
    }

    fn content(records: &[CaptureRecord]) -> Vec<u8> {
        let mut out = HEADER.to_vec();
        for record in records {
            encode(record, &mut out).unwrap();
        }
        encode_end(records.len() as u64, &mut out);
        out
    }

    /// Reads `bytes` (content, not LZ4) through a reader that hands out `step` bytes per read.
    fn read_all(bytes: &[u8], step: usize) -> io::Result<Vec<CaptureRecord>> {
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut reader = FramedReader::new(Trickle(bytes, step));
        let mut out = Vec::new();
        // Decoded over the previous record, as a recycled batch is.
        let mut slot = ws(9, 9, "other", "old text");
        while reader.next_into(&mut slot)? {
            out.push(slot.clone());
        }
        Ok(out)
    }

    fn sample() -> Vec<CaptureRecord> {
        vec![
            CaptureRecord {
                kind: RecordKind::Open {
                    symbols: vec!["BTC-USDT".parse().unwrap()],
                    standby: true,
                },
                ..ws(1, 1, "binance", "")
            },
            ws(i64::MIN, u64::MAX, "binance", "{\"e\":\"trade\"}"),
            ws(-1, 0, "kraken", ""),
            ws(
                i64::MAX,
                127,
                "kraken",
                "quote \" backslash \\ newline \n é ✓ 𝄞",
            ),
            CaptureRecord {
                kind: RecordKind::Rest {
                    key: "snapshot:BTC-USDT".into(),
                    body: Some("{\"lastUpdateId\":1}".into()),
                    error: None,
                },
                ..ws(5, 128, "binance", "")
            },
            ws(6, 2, "binance", &"x".repeat(CHUNK + 5)),
            CaptureRecord {
                kind: RecordKind::Tick,
                ..ws(7, 16_384, "binance", "")
            },
            ws(8, 3, "binance", "last"),
        ]
    }

    #[test]
    fn records_read_back_as_written_whatever_the_read_sizes() {
        let records = sample();
        let bytes = content(&records);
        for step in [1, 2, 3, 7, 64, 4096, CHUNK, usize::MAX] {
            assert_eq!(read_all(&bytes, step).unwrap(), records, "step {step}");
        }
        assert_eq!(read_all(&content(&[]), 5).unwrap(), vec![]);
    }

    #[test]
    fn varints_and_zigzag_round_trip_at_the_edges() {
        for value in [0, 1, 127, 128, 16_383, 16_384, u64::MAX / 2, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            let mut cursor = Cursor { bytes: &out, at: 0 };
            assert!(matches!(cursor.varint("v"), Ok(v) if v == value));
            assert_eq!(cursor.at, out.len());
        }
        for value in [0, 1, -1, i64::MIN, i64::MAX, 1_733_000_000_123_456] {
            assert_eq!(unzigzag(zigzag(value)), value);
        }
        // Eleven bytes, or a tenth byte with more than the last bit: refused.
        for bad in [vec![0xff; 11], [vec![0xff; 9], vec![0x02]].concat()] {
            let mut cursor = Cursor { bytes: &bad, at: 0 };
            assert!(matches!(cursor.varint("v"), Err(Stop::Bad(_))));
        }
    }

    #[test]
    fn a_cut_capture_is_truncated_at_every_length() {
        let bytes = content(&sample()[..5]);
        for cut in 0..bytes.len() {
            let error = read_all(&bytes[..cut], 4096).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
        }
        // Cut exactly between records: the end record is missing.
        let whole = content(&sample()[..2]);
        let cut = whole.len() - 2;
        let error = read_all(&whole[..cut], 4096).unwrap_err();
        assert_eq!(
            error.to_string(),
            "ends after record 2 without its end record"
        );
    }

    #[test]
    fn corrupt_contents_are_refused_with_the_record_named() {
        let good = content(&[ws(1, 1, "binance", "ok")]);
        let header = HEADER.len();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"tickgate capture 3\n".to_vec(), "unknown header"),
            (b"{\"t\":1}\n".to_vec(), "unknown header"),
            (
                [HEADER, &[0x09]].concat(),
                "record 1: unknown record type 0x09",
            ),
            (
                [HEADER, &[TAG_WS, 2, 1, 0x80, 0x02]].concat(),
                "record 1: its venue length (256) is over the limit of 255",
            ),
            (
                [
                    HEADER,
                    &[TAG_WS, 2, 1, 1, b'v', 0xff, 0xff, 0xff, 0xff, 0x7f],
                ]
                .concat(),
                "record 1: its text length (34359738367) is over the limit",
            ),
            (
                [HEADER, &[TAG_WS, 2, 1, 1, b'v', 2, 0xc3, 0x28]].concat(),
                "record 1: its text is not UTF-8",
            ),
            (
                [HEADER, &[TAG_WS, 2, 1, 1, 0xff, 0]].concat(),
                "record 1: its venue is not UTF-8",
            ),
            (
                [HEADER, &[TAG_JSON, 3], b"{x}"].concat(),
                "record 1: key must be a string",
            ),
            (
                [HEADER, &[TAG_END, 1]].concat(),
                "record 1: the end record counts 1 records, the capture holds 0",
            ),
            (
                [&good[..], b"x"].concat(),
                "record 2: data after the end record",
            ),
            (
                [&good[..header], &[TAG_WS], &[0xff; 10], &[0x7f]].concat(),
                "record 1: its time is not a valid varint",
            ),
        ];
        for (bytes, expected) in cases {
            let error = read_all(&bytes, 4096).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{expected}");
            assert!(error.to_string().contains(expected), "{error} / {expected}");
        }
        // A corrupt second record: the first was delivered, the error names the second.
        let second = ws(2, 1, "binance", "b");
        let mut bytes = content(&[ws(1, 1, "binance", "a"), second.clone()]);
        let mut encoded = Vec::new();
        encode(&second, &mut encoded).unwrap();
        let at = bytes.len() - 2 - encoded.len();
        assert_eq!(bytes[at], TAG_WS);
        bytes[at] = 0x7e;
        let error = read_all(&bytes, 4096).unwrap_err();
        assert_eq!(error.to_string(), "record 2: unknown record type 0x7e");
    }
}
